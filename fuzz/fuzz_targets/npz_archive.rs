//! Fuzz target: `foryou_server::fuzz::npz_archive`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| foryou_server::fuzz::npz_archive(data));
