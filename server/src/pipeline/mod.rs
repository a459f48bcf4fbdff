//! The candidate pipeline (spec §1): a generic framework over a query `Q`
//! and a candidate `C`, which the home mixer instantiates with its own
//! components.

pub mod components;
pub mod framework;
pub mod home_mixer;
pub mod util;
