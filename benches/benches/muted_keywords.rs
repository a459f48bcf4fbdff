//! MutedKeywordFilter (spec §2.6.9) at serving shape: 1200 candidates of the
//! demo world (its 1200 newest posts: originals, replies and "RT @name: …"
//! retweets, a third of them given emoji, links, accents, full-width or CJK
//! text) against a viewer with 20 muted keywords (single words, phrases,
//! `#`/`@` forms, text that needs NFKC). Two rows per run:
//!
//! - `filter`: the filter alone on candidates CoreDataCandidateHydrator has
//!   already hydrated (the filter's own time in a request);
//! - `core_data+filter`: that hydrator (over the embedded services) and the
//!   filter, so whatever the hydrator does for the filter is counted too.
//!
//! Results: `results/muted_keywords_cpu_2026-12-03.md`.

use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use foryou_server::pipeline::components::filters::MutedKeywordFilter;
use foryou_server::pipeline::components::hydrators::CoreDataCandidateHydrator;
use foryou_server::pipeline::framework::{Filter, Hydrator};
use foryou_server::pipeline::home_mixer::{PostCandidate, ScoredPostsQuery};
use foryou_server::world::{World, WorldServices, WorldSpec, generate};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Candidates per request (Thunder's MAX_POSTS_TO_RETURN).
const CANDIDATES: usize = 1200;

/// The viewer's muted keywords: two words and a phrase of the demo
/// vocabulary and one phrase of `EXTRAS` (so about a fifth of the posts
/// go), the rest phrases, `#`/`@` forms, full-width and CJK text.
const KEYWORDS: [&str; 20] = [
    "penalty",
    "starship",
    "rust compiler",
    "spoilers",
    "red wedding",
    "game of thrones",
    "World Cup",
    "Breaking News",
    "new album",
    "ＮＦＴ drop",
    "déjà vu",
    "大阪",
    "#giveaway",
    "@elonmusk",
    "ai art",
    "politics",
    "Café racer",
    "spicy pasta",
    "ｌａｔｔｅ art",
    "mars rover",
];

/// What real posts carry besides words.
const EXTRAS: [&str; 8] = [
    " 🔥🔥",
    " https://t.co/Zx81kQ",
    " — café au lait ☕",
    " ＦＵＬＬ　ＷＩＤＴＨ",
    " 東京で会いましょう",
    " @friend_42 what do you think?",
    " Déjà vu!!",
    " #Crypto #NFT",
];

/// Polls a future the embedded services complete without waiting.
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the embedded services and filters answer without waiting"),
    }
}

/// The demo world with extras on a third of the texts, and its newest posts
/// as bare candidates.
fn world_and_candidates() -> (World, Vec<PostCandidate>) {
    let now_ms = 1_764_000_000_000;
    let mut world = generate(&WorldSpec::demo(7, now_ms));
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    // In id order, so the seeded choices do not depend on the map's order.
    let mut ids: Vec<i64> = world.posts.keys().copied().collect();
    ids.sort_unstable();
    for id in &ids {
        let Some(post) = world.posts.get_mut(id).filter(|p| !p.text.is_empty()) else {
            continue;
        };
        if rng.random_bool(1.0 / 3.0) {
            let mut text = post.text.to_string();
            for _ in 0..rng.random_range(1..=2) {
                text.push_str(EXTRAS[rng.random_range(0..EXTRAS.len())]);
            }
            post.text = text.into();
        }
    }
    let candidates = ids
        .iter()
        .rev()
        .filter_map(|id| world.posts.get(id))
        .take(CANDIDATES)
        .map(|p| PostCandidate {
            tweet_id: p.id,
            author_id: p.author,
            ..PostCandidate::default()
        })
        .collect();
    (world, candidates)
}

fn muted_keywords(c: &mut Criterion) {
    let (world, bare) = world_and_candidates();
    let hydrator = CoreDataCandidateHydrator::new(Arc::new(WorldServices::new(Arc::new(world))));
    let mut q = ScoredPostsQuery {
        user_id: 1,
        request_id: "bench-1".into(),
        result_size: 35,
        ..ScoredPostsQuery::default()
    };
    q.user_features.muted_keywords = KEYWORDS.iter().map(|k| (*k).to_owned()).collect();

    let hydrate = |candidates: Vec<PostCandidate>| {
        let hydrated = ready(hydrator.hydrate(&q, &candidates)).expect("embedded core data");
        candidates
            .into_iter()
            .zip(hydrated)
            .map(|(mut c, h)| {
                hydrator.update(&mut c, h);
                c
            })
            .collect::<Vec<_>>()
    };
    let filter = |candidates: &[PostCandidate]| {
        ready(MutedKeywordFilter.filter(&q, candidates)).expect("filter")
    };

    let hydrated = hydrate(bare.clone());
    let bytes: usize = hydrated.iter().map(|c| c.tweet_text.len()).sum();
    let out = filter(&hydrated);
    eprintln!(
        "muted_keywords: {} candidates, mean text {} bytes, {} muted keywords: {} kept, {} removed",
        hydrated.len(),
        bytes / hydrated.len().max(1),
        KEYWORDS.len(),
        out.kept.len(),
        out.removed.len()
    );

    let mut g = c.benchmark_group("muted_keywords/cpu");
    g.bench_function(
        format!("filter/cands={CANDIDATES}/kw={}", KEYWORDS.len()),
        |b| b.iter(|| filter(&hydrated)),
    );
    g.bench_function(
        format!("core_data+filter/cands={CANDIDATES}/kw={}", KEYWORDS.len()),
        |b| {
            b.iter_batched(
                || bare.clone(),
                |c| filter(&hydrate(c)),
                BatchSize::SmallInput,
            )
        },
    );
    g.finish();
}

criterion_group!(benches, muted_keywords);
criterion_main!(benches);
