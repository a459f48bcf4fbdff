//! Helpers the release references but does not ship (spec §4.1), with our
//! documented choices (spec §4.2), and the cache that lets the tokenizer
//! run once per post rather than once per request.

pub mod bloom;
pub mod snowflake;
pub mod tokenizer;
pub mod tweet_token_cache;
