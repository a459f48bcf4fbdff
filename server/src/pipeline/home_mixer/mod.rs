//! The home mixer's instantiation of the pipeline: its query, its candidate
//! and its tunables. Components live in `pipeline::components`.

pub mod build;
pub mod candidate;
pub mod params;
pub mod query;

pub use build::{HomeMixerDeps, HomeMixerPipeline, build_pipeline};
pub use candidate::{Action, PhoenixScores, PostCandidate, ServedType};
pub use params::{Params, ParamsError, Weights};
pub use query::{
    AggregatedAction, BloomFilterEntry, ScoredPostsQuery, UserActionSequence, UserFeatures,
};
