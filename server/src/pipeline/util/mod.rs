//! Helpers the release references but does not ship (spec §4.1), with our
//! documented choices (spec §4.2).

pub mod bloom;
pub mod snowflake;
pub mod tokenizer;
