//! The home mixer's components, one per file, grouped by kind.

pub mod filters;
pub mod hydrators;
pub mod query_hydrators;
pub mod scorers;
pub mod selectors;
pub mod side_effects;
pub mod sources;
