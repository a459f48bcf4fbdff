//! Side effects (spec §2.9), spawned after the response is formed.

pub mod cache_request_info_side_effect;

pub use cache_request_info_side_effect::CacheRequestInfoSideEffect;
