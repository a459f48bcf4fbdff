//! External services as traits, each with an embedded implementation (the
//! demo world's live in `world::services`, Thunder's and Phoenix's call the
//! in-process services). A deployment plugs in its own clients behind the
//! same traits.

pub mod breaker;
pub mod error;
pub mod following;
pub mod gizmoduck;
pub mod impressions;
pub mod phoenix;
pub mod request_info;
pub mod thunder;
pub mod tweet_entities;
pub mod user_actions;
pub mod user_features;
pub mod visibility;

pub use breaker::{BreakerOpen, BreakerPolicy, BreakerState, CircuitBreaker};
pub use error::ClientError;

/// A client's answer keyed by post or user id: foldhash (ids are not
/// attacker-chosen keys into a long-lived table, and a request builds and
/// reads several of these maps of ~1 200 entries; SipHash was the core-data
/// hydrator's largest cost).
pub type IdMap<V> = std::collections::HashMap<i64, V, foldhash::fast::RandomState>;
pub use following::{FollowingLookup, InMemoryFollowing, LookupError};
pub use gizmoduck::{GizmoduckClient, UserProfile};
pub use impressions::ImpressionStore;
pub use phoenix::{EmbeddedPhoenix, PhoenixRankerClient, PhoenixRetrievalClient, RemotePhoenix};
pub use request_info::{InMemoryRequestInfo, RequestInfoStore};
pub use thunder::{EmbeddedThunder, InNetworkPostsClient, RemoteThunder};
pub use tweet_entities::{CoreData, MediaEntity, TweetEntityClient};
pub use user_actions::{RawAction, UserActionSequenceClient};
pub use user_features::UserFeaturesClient;
pub use visibility::{
    SafetyAction, SafetyLevel, ViewerContext, VisibilityClient, VisibilityReason,
};
