//! Fuzz target: `foryou_server::fuzz::post_events`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| foryou_server::fuzz::post_events(data));
