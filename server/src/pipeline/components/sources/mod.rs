//! Sources (spec §2.4), run concurrently; the merged list is Phoenix's
//! candidates, then Thunder's.

pub mod phoenix_source;
pub mod thunder_source;

pub use phoenix_source::PhoenixSource;
pub use thunder_source::ThunderSource;
