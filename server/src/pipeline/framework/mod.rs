//! The candidate-pipeline framework (spec §1), generic over a query `Q` and a
//! candidate `C`.
//!
//! - [`component`]: the seven component kinds and their contracts.
//! - [`execute`]: [`CandidatePipeline`] and the order and semantics of each
//!   stage (concurrency, fail-open filters, skipped hydrators and scorers,
//!   stable selection, truncation, spawned side effects).
//! - [`result`]: what a run returns, including a per-component trace.
//! - [`observe`]: the one place components are timed, logged and counted,
//!   and where the per-component time budget is enforced.

pub mod component;
pub mod execute;
pub mod observe;
pub mod patches;
pub mod result;

pub use component::{
    ComponentError, Filter, FilterOutput, Hydrator, PipelineQuery, QueryHydrator, Scorer, Selector,
    SideEffect, SideEffectInput, Source, short_type_name,
};
pub use execute::CandidatePipeline;
pub use observe::Stage;
pub use result::{ComponentRun, Outcome, PipelineResult};

#[cfg(test)]
mod tests;
