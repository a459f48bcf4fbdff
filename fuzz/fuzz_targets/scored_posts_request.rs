//! Fuzz target: `foryou_server::fuzz::scored_posts_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| foryou_server::fuzz::scored_posts_request(data));
