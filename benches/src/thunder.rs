//! Thunder bench setup: a store filled with the seeded synthetic stream
//! (`follows` authors × ~`posts_per_author` posts over the last 47 h), and
//! the in-process request (retrieval + `score_recent` + proto conversion).

use std::sync::Arc;

use foryou_proto::v1 as pb;
use foryou_server::clock::{Clock, SystemClock};
use foryou_server::grpc::in_network_posts::retrieve_recent;
use foryou_server::thunder::events::{PostEvent, apply_events};
use foryou_server::thunder::synth::{SynthSpec, synth_events};
use foryou_server::thunder::{IdSet, PostStore, RetrievalQuery, ThunderParams, score_recent};

/// The synthetic event stream for `authors` × `posts_per_author`.
pub fn thunder_events(authors: u32, posts_per_author: u32, seed: u64) -> Vec<PostEvent> {
    let spec = SynthSpec {
        authors,
        posts_per_author,
        ..SynthSpec::new(SystemClock::new().unix_s(), seed)
    };
    synth_events(&spec)
}

/// A ready store (events applied, `finalize_init` run) with the CLI's
/// 100 ms request budget.
pub fn thunder_store(authors: u32, posts_per_author: u32, seed: u64) -> Arc<PostStore> {
    let params = ThunderParams {
        request_timeout: std::time::Duration::from_millis(100),
        ..ThunderParams::default()
    };
    let store = Arc::new(PostStore::new(params, Arc::new(SystemClock::new())));
    apply_events(&store, thunder_events(authors, posts_per_author, seed));
    store.finalize_init();
    store
}

/// One GetInNetworkPosts without the transport: default max_results (1200),
/// answered as the proto posts the service would send.
pub fn in_process_request(
    store: &PostStore,
    following: &[i64],
    exclude: &IdSet,
    requester: i64,
) -> Vec<pb::LightPost> {
    let max = store.params().max_posts_to_return;
    retrieve_recent(store, following, exclude, requester, false, max)
        .iter()
        .map(pb::LightPost::from)
        .collect()
}

/// The same request through the spec's reference passes: every survivor
/// collected, then `score_recent` (the baseline the fused walk is timed
/// against).
pub fn in_process_request_reference(
    store: &PostStore,
    following: &[i64],
    exclude: &IdSet,
    requester: i64,
) -> Vec<pb::LightPost> {
    let q = RetrievalQuery {
        user_ids: following,
        exclude,
        requester,
        start: store.clock().monotonic(),
    };
    let mut posts = store.get_all_posts_by_users(&q).posts;
    score_recent(&mut posts, store.params().max_posts_to_return);
    posts.iter().map(pb::LightPost::from).collect()
}

/// Current unix time (for callers that need "now" without a clock).
pub fn now_s() -> i64 {
    SystemClock::new().unix_s()
}
