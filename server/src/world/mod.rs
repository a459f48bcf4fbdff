//! The demo world: its data ([`World`]), the seeded generator, the JSON
//! Lines file format and the embedded services that answer from it.

pub mod format;
pub mod generate;
pub mod model;
pub mod services;

pub use format::{
    WorldFileError, WorldRules, read_world, read_world_for, read_world_from, write_world,
};
pub use generate::{GENERATED_SURFACES, WorldSpec, generate};
pub use model::{Engagement, Label, LabelAction, LabelScope, Post, User, World};
pub use services::WorldServices;
