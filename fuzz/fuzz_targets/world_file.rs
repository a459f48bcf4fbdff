//! Fuzz target: `foryou_server::fuzz::world_file`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| foryou_server::fuzz::world_file(data));
