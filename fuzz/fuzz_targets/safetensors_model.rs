//! Fuzz target: `foryou_server::fuzz::safetensors_model`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| foryou_server::fuzz::safetensors_model(data));
