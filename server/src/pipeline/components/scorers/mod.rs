//! Scorers in spec order (§2.7): Phoenix, weighted, author diversity,
//! out-of-network.

pub mod author_diversity_scorer;
pub mod oon_scorer;
pub mod phoenix_scorer;
pub mod weighted_scorer;

pub use author_diversity_scorer::AuthorDiversityScorer;
pub use oon_scorer::OonScorer;
pub use phoenix_scorer::PhoenixScorer;
pub use weighted_scorer::WeightedScorer;
