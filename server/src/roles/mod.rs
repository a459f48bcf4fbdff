//! Process roles: what `foryou thunder` (and later `foryou serve`) run.

pub mod listen;
pub mod phoenix;
pub mod serve;
pub mod shutdown;
pub mod thunder;
