//! Candidate hydrators: the five of spec §2.5 (concurrent on the sourced
//! list) and the post-selection VF hydrator (§2.8.2).

pub mod core_data_candidate_hydrator;
pub mod gizmoduck_candidate_hydrator;
pub mod in_network_candidate_hydrator;
pub mod subscription_hydrator;
pub mod vf_candidate_hydrator;
pub mod video_duration_candidate_hydrator;

pub use core_data_candidate_hydrator::CoreDataCandidateHydrator;
pub use gizmoduck_candidate_hydrator::GizmoduckCandidateHydrator;
pub use in_network_candidate_hydrator::InNetworkCandidateHydrator;
pub use subscription_hydrator::SubscriptionHydrator;
pub use vf_candidate_hydrator::VfCandidateHydrator;
pub use video_duration_candidate_hydrator::VideoDurationCandidateHydrator;
