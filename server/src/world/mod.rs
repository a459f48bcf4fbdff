//! The demo world: its data ([`World`]), the seeded generator, the JSON
//! Lines file format and the embedded services that answer from it.

pub mod format;
pub mod generate;
pub mod model;
pub mod services;

pub use format::{WorldFileError, read_world, write_world};
pub use generate::{WorldSpec, generate};
pub use model::{Engagement, Label, LabelAction, LabelScope, Post, User, World};
pub use services::WorldServices;
