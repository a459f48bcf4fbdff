//! Fuzz target: `foryou_server::fuzz::bloom_filter_entry`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| foryou_server::fuzz::bloom_filter_entry(data));
