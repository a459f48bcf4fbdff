//! Query hydrators (spec §2.3), run concurrently on the original query.

pub mod user_action_seq_query_hydrator;
pub mod user_features_query_hydrator;

pub use user_action_seq_query_hydrator::UserActionSeqQueryHydrator;
pub use user_features_query_hydrator::UserFeaturesQueryHydrator;
