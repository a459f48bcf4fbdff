//! Process roles: what `foryou serve` (every role in one process), `foryou
//! thunder` and `foryou phoenix serve` run, with what they share: binding
//! and reflection ([`listen`]), graceful shutdown ([`shutdown`]) and the
//! typed start-up error ([`RoleError`]).

pub mod engine_setup;
pub mod error;
pub mod listen;
pub mod phoenix;
pub mod priority;
pub mod readiness;
pub mod serve;
pub mod shutdown;
pub mod thunder;

pub use error::RoleError;
