//! Framework semantics (spec §1.2–1.4), one test per rule, with small
//! hand-written components.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use metrics::{SharedString, Unit};
use metrics_util::CompositeKey;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tracing_subscriber::layer::SubscriberExt;

use super::observe::{COMPONENT_DURATION, COMPONENT_OUTPUT};
use super::*;
use crate::telemetry::testing::SpanCapture;

#[derive(Debug, Clone, Default, PartialEq)]
struct Q {
    rid: String,
    size: usize,
    x: Option<i64>,
    y: Option<i64>,
}

impl PipelineQuery for Q {
    fn request_id(&self) -> &str {
        &self.rid
    }
    fn result_size(&self) -> usize {
        self.size
    }
}

fn query() -> Q {
    Q {
        rid: "r-1".into(),
        size: 100,
        ..Q::default()
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
struct C {
    id: i64,
    score: f64,
    a: Option<i64>,
    b: Option<i64>,
}

fn cand(id: i64) -> C {
    C { id, ..C::default() }
}

fn ids(v: &[C]) -> Vec<i64> {
    v.iter().map(|c| c.id).collect()
}

// ---- components -----------------------------------------------------------

struct SetX(Option<String>);
#[async_trait]
impl QueryHydrator<Q> for SetX {
    async fn hydrate(&self, q: &Q) -> Result<Q, ComponentError> {
        assert_eq!(q.y, None, "sees the original query");
        match &self.0 {
            Some(e) => Err(ComponentError::failed(e.clone())),
            None => Ok(Q {
                x: Some(1),
                ..Q::default()
            }),
        }
    }
    fn update(&self, q: &mut Q, h: Q) {
        q.x = h.x;
    }
}

struct SetY;
#[async_trait]
impl QueryHydrator<Q> for SetY {
    async fn hydrate(&self, q: &Q) -> Result<Q, ComponentError> {
        assert_eq!(q.x, None, "sees the original query");
        Ok(Q {
            y: Some(2),
            ..Q::default()
        })
    }
    fn update(&self, q: &mut Q, h: Q) {
        q.y = h.y;
    }
}

/// Returns `ids` after `delay`, or fails.
struct Src {
    ids: Vec<i64>,
    delay: Duration,
    fail: bool,
}
#[async_trait]
impl Source<Q, C> for Src {
    async fn get_candidates(&self, _: &Q) -> Result<Vec<C>, ComponentError> {
        tokio::time::sleep(self.delay).await;
        if self.fail {
            return Err(ComponentError::failed("source down"));
        }
        Ok(self.ids.iter().map(|&i| cand(i)).collect())
    }
}

fn src(ids: &[i64]) -> Src {
    Src {
        ids: ids.to_vec(),
        delay: Duration::ZERO,
        fail: false,
    }
}

/// Sets `a = 10·id`; asserts it sees no `b` (the snapshot).
struct HydA;
#[async_trait]
impl Hydrator<Q, C> for HydA {
    type Output = C;
    async fn hydrate(&self, _: &Q, cs: &[C]) -> Result<Vec<C>, ComponentError> {
        assert!(cs.iter().all(|c| c.b.is_none()), "one shared snapshot");
        Ok(cs
            .iter()
            .map(|c| C {
                a: Some(c.id * 10),
                ..C::default()
            })
            .collect())
    }
    fn update(&self, c: &mut C, h: C) {
        c.a = h.a;
    }
}

/// Sets `b = id`; asserts it sees no `a` (the snapshot).
struct HydB;
#[async_trait]
impl Hydrator<Q, C> for HydB {
    type Output = C;
    async fn hydrate(&self, _: &Q, cs: &[C]) -> Result<Vec<C>, ComponentError> {
        assert!(cs.iter().all(|c| c.a.is_none()), "one shared snapshot");
        Ok(cs
            .iter()
            .map(|c| C {
                b: Some(c.id),
                ..C::default()
            })
            .collect())
    }
    fn update(&self, c: &mut C, h: C) {
        c.b = h.b;
    }
}

/// Drops the last candidate: a length mismatch.
struct HydShort;
#[async_trait]
impl Hydrator<Q, C> for HydShort {
    type Output = C;
    async fn hydrate(&self, _: &Q, cs: &[C]) -> Result<Vec<C>, ComponentError> {
        Ok(cs[..cs.len().saturating_sub(1)]
            .iter()
            .map(|c| C {
                b: Some(-1),
                ..c.clone()
            })
            .collect())
    }
    fn update(&self, c: &mut C, h: C) {
        c.b = h.b;
    }
}

/// Removes candidates matching `pred`, or fails after dropping everything.
struct Drop<F: Fn(&C) -> bool + Send + Sync>(F, bool);
#[async_trait]
impl<F: Fn(&C) -> bool + Send + Sync> Filter<Q, C> for Drop<F> {
    async fn filter(&self, _: &Q, cs: &[C]) -> Result<FilterOutput, ComponentError> {
        if self.1 {
            return Err(ComponentError::failed("filter broke"));
        }
        Ok(FilterOutput::partition(cs, |c| !(self.0)(c)))
    }
}

/// Sleeps past any budget.
struct SlowFilter;
#[async_trait]
impl Filter<Q, C> for SlowFilter {
    async fn filter(&self, _: &Q, _: &[C]) -> Result<FilterOutput, ComponentError> {
        tokio::time::sleep(Duration::from_secs(30)).await;
        Ok(FilterOutput::default())
    }
}

/// score = a + `add` (sees earlier scorers' scores through `score`).
struct ScoreAdd {
    add: f64,
    fail: bool,
    short: bool,
}
#[async_trait]
impl Scorer<Q, C> for ScoreAdd {
    type Output = C;
    async fn score(&self, _: &Q, cs: &[C]) -> Result<Vec<C>, ComponentError> {
        if self.fail {
            return Err(ComponentError::failed("model down"));
        }
        let n = if self.short { cs.len() - 1 } else { cs.len() };
        Ok(cs[..n]
            .iter()
            .map(|c| C {
                score: c.score + self.add,
                ..C::default()
            })
            .collect())
    }
    fn update(&self, c: &mut C, s: C) {
        c.score = s.score;
    }
}

fn scorer(add: f64) -> ScoreAdd {
    ScoreAdd {
        add,
        fail: false,
        short: false,
    }
}

struct ByScore(Option<usize>, bool);
impl Selector<Q, C> for ByScore {
    fn enable(&self, _: &Q) -> bool {
        self.1
    }
    fn score(&self, c: &C) -> f64 {
        c.score
    }
    fn size(&self) -> Option<usize> {
        self.0
    }
}

/// Takes `delay` (blocking, like a long sort) before keeping the best `keep`.
struct SlowSelector {
    keep: usize,
    delay: Duration,
}
impl Selector<Q, C> for SlowSelector {
    fn score(&self, c: &C) -> f64 {
        c.score
    }
    fn size(&self) -> Option<usize> {
        std::thread::sleep(self.delay);
        Some(self.keep)
    }
}

/// The metrics recorded so far (reading drains histograms, so read once).
type Recorded = Vec<(CompositeKey, Option<Unit>, Option<SharedString>, DebugValue)>;

/// The values histogram `name` recorded under (stage, component).
fn histogram(recorded: &Recorded, name: &str, stage: Stage, component: &str) -> Vec<f64> {
    recorded
        .iter()
        .filter(|(k, ..)| {
            let key = k.key();
            let label = |l: &str| key.labels().find(|x| x.key() == l).map(|x| x.value());
            key.name() == name
                && label("stage") == Some(stage.as_str())
                && label("component") == Some(component)
        })
        .flat_map(|(.., v)| match v {
            DebugValue::Histogram(v) => v.iter().map(|f| f.0).collect(),
            _ => Vec::new(),
        })
        .collect()
}

/// Counts calls; disabled by `enabled = false`.
struct Counting {
    calls: Arc<AtomicUsize>,
    enabled: bool,
}
#[async_trait]
impl Source<Q, C> for Counting {
    fn enable(&self, _: &Q) -> bool {
        self.enabled
    }
    async fn get_candidates(&self, _: &Q) -> Result<Vec<C>, ComponentError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(vec![cand(99)])
    }
}

/// Waits for `go`, then reports the selected ids on `done`.
struct Report {
    go: Arc<tokio::sync::Notify>,
    done: tokio::sync::mpsc::UnboundedSender<Vec<i64>>,
}
#[async_trait]
impl SideEffect<Q, C> for Report {
    async fn run(&self, input: Arc<SideEffectInput<Q, C>>) -> Result<(), ComponentError> {
        self.go.notified().await;
        let _ = self.done.send(ids(&input.selected_candidates));
        Err(ComponentError::failed("ignored"))
    }
}

// ---- tests ------------------------------------------------------------------

#[tokio::test]
async fn query_hydrators_run_on_the_original_query_and_failures_are_skipped() {
    let p = CandidatePipeline::<Q, C>::new()
        .query_hydrator(SetX(None))
        .query_hydrator(SetY);
    let r = p.execute(query()).await;
    assert_eq!((r.query.x, r.query.y), (Some(1), Some(2)));

    let p = CandidatePipeline::<Q, C>::new()
        .query_hydrator(SetX(Some("uas down".into())))
        .query_hydrator(SetY);
    let r = p.execute(query()).await;
    assert_eq!(
        (r.query.x, r.query.y),
        (None, Some(2)),
        "failed one skipped"
    );
    assert_eq!(r.trace[0].outcome, Outcome::Failed("uas down".into()));
}

#[tokio::test]
async fn sources_concatenate_in_declaration_order_and_a_failure_adds_nothing() {
    let p = CandidatePipeline::<Q, C>::new()
        .source(Src {
            delay: Duration::from_millis(30), // finishes last, still first
            ..src(&[1, 2])
        })
        .source(Src {
            fail: true,
            ..src(&[7])
        })
        .source(src(&[3]));
    let r = p.execute(query()).await;
    assert_eq!(ids(&r.retrieved_candidates), vec![1, 2, 3]);
}

#[tokio::test]
async fn hydrators_share_one_snapshot_and_a_length_mismatch_is_skipped() {
    let p = CandidatePipeline::<Q, C>::new()
        .source(src(&[1, 2, 3]))
        .hydrator(HydA)
        .hydrator(HydShort)
        .hydrator(HydB);
    let r = p.execute(query()).await;
    let got: Vec<(Option<i64>, Option<i64>)> =
        r.retrieved_candidates.iter().map(|c| (c.a, c.b)).collect();
    assert_eq!(
        got,
        vec![
            (Some(10), Some(1)),
            (Some(20), Some(2)),
            (Some(30), Some(3))
        ],
        "HydShort's -1 must not appear"
    );
    let short = r
        .trace
        .iter()
        .find(|t| t.component == "HydShort")
        .expect("traced");
    assert_eq!(
        short.outcome,
        Outcome::LengthMismatch {
            expected: 3,
            got: 2
        }
    );
}

#[tokio::test]
async fn a_failing_filter_restores_its_input_and_removals_accumulate_in_order() {
    let p = CandidatePipeline::<Q, C>::new()
        .source(src(&[1, 2, 3, 4, 5, 6]))
        .filter(Drop(|c: &C| c.id % 2 == 1, false))
        .filter(Drop(|_: &C| true, true))
        .filter(Drop(|c: &C| c.id == 4, false));
    let r = p.execute(query()).await;
    assert_eq!(ids(&r.selected_candidates), vec![2, 6]);
    assert_eq!(ids(&r.filtered_candidates), vec![1, 3, 5, 4]);
    assert_eq!(ids(&r.retrieved_candidates), vec![1, 2, 3, 4, 5, 6]);
}

#[tokio::test]
async fn without_the_retrieved_snapshot_only_the_copy_is_left_out() {
    let build = || {
        CandidatePipeline::<Q, C>::new()
            .source(src(&[1, 2, 3, 4, 5, 6]))
            .hydrator(HydA)
            .filter(Drop(|c: &C| c.id % 2 == 1, false))
    };
    let full = build().execute(query()).await;
    let lean = build().without_retrieved_snapshot().execute(query()).await;
    assert_eq!(full.retrieved_count, 6);
    assert_eq!(ids(&full.retrieved_candidates), vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(lean.retrieved_count, 6, "the count stays");
    assert!(lean.retrieved_candidates.is_empty(), "no copy kept");
    // Everything else is the same run.
    assert_eq!(lean.selected_candidates, full.selected_candidates);
    assert_eq!(lean.filtered_candidates, full.filtered_candidates);
    assert_eq!(ids(&lean.selected_candidates), vec![2, 4, 6]);
    let outcomes = |r: &PipelineResult<Q, C>| -> Vec<_> {
        r.trace
            .iter()
            .map(|t| (t.component, t.outcome.clone()))
            .collect()
    };
    assert_eq!(outcomes(&lean), outcomes(&full));
}

/// Answers fixed positions, whatever its input.
struct Positions(FilterOutput);
#[async_trait]
impl Filter<Q, C> for Positions {
    async fn filter(&self, _: &Q, _: &[C]) -> Result<FilterOutput, ComponentError> {
        Ok(self.0.clone())
    }
}

#[tokio::test]
async fn a_filter_naming_positions_wrongly_fails_and_its_input_goes_on() {
    let bad = [
        (vec![0, 1, 2], vec![2]), // 2 twice
        (vec![0, 1], vec![]),     // 2 missing
        (vec![0, 1, 2], vec![7]), // out of range, one too many
        (vec![0, 1, 3], vec![]),  // out of range
    ];
    for (kept, removed) in bad {
        let p = CandidatePipeline::<Q, C>::new()
            .source(src(&[1, 2, 3]))
            .filter(Positions(FilterOutput { kept, removed }));
        let r = p.execute(query()).await;
        assert_eq!(ids(&r.selected_candidates), vec![1, 2, 3]);
        assert!(r.filtered_candidates.is_empty());
        let run = r
            .trace
            .iter()
            .find(|t| t.stage == Stage::Filter)
            .expect("ran");
        assert!(
            matches!(&run.outcome, Outcome::Failed(m) if m.contains("each of its 3 inputs once")),
            "{:?}",
            run.outcome
        );
    }
    // A reordering answer is followed: kept in its order, removed in its.
    let p = CandidatePipeline::<Q, C>::new()
        .source(src(&[1, 2, 3, 4]))
        .filter(Positions(FilterOutput {
            kept: vec![3, 0],
            removed: vec![2, 1],
        }));
    let r = p.execute(query()).await;
    assert_eq!(ids(&r.selected_candidates), vec![4, 1]);
    assert_eq!(ids(&r.filtered_candidates), vec![3, 2]);
}

#[test]
fn filter_positions_move_each_candidate_once_in_either_order() {
    let out = FilterOutput::partition(&[10, 11, 12, 13], |x| x % 2 == 0);
    assert_eq!(
        out,
        FilterOutput {
            kept: vec![0, 2],
            removed: vec![1, 3]
        }
    );
    assert!(out.is_valid_for(4) && !out.is_valid_for(5) && !out.is_valid_for(3));
    let words = || vec!["a".to_owned(), "b".into(), "c".into(), "d".into()];
    assert_eq!(
        out.apply(words()),
        (
            vec!["a".to_owned(), "c".into()],
            vec!["b".to_owned(), "d".into()]
        )
    );
    let shuffled = FilterOutput {
        kept: vec![2, 0],
        removed: vec![3, 1],
    };
    assert!(shuffled.is_valid_for(4));
    assert_eq!(
        shuffled.apply(words()),
        (
            vec!["c".to_owned(), "a".into()],
            vec!["d".to_owned(), "b".into()]
        )
    );
    assert_eq!(
        FilterOutput::keep_all(3).apply(vec![1, 2, 3]),
        (vec![1, 2, 3], vec![])
    );
}

#[tokio::test]
async fn scorers_run_in_order_and_a_failed_or_short_one_is_skipped() {
    let p = CandidatePipeline::<Q, C>::new()
        .source(src(&[1, 2]))
        .scorer(scorer(1.0))
        .scorer(ScoreAdd {
            fail: true,
            ..scorer(100.0)
        })
        .scorer(ScoreAdd {
            short: true,
            ..scorer(1000.0)
        })
        .scorer(scorer(0.5)); // sees the first scorer's 1.0
    let r = p.execute(query()).await;
    let scores: Vec<f64> = r.selected_candidates.iter().map(|c| c.score).collect();
    assert_eq!(scores, vec![1.5, 1.5]);
}

#[tokio::test]
async fn selector_sorts_stably_descending_with_nan_last_then_truncates() {
    struct SetScores;
    #[async_trait]
    impl Scorer<Q, C> for SetScores {
        type Output = C;
        async fn score(&self, _: &Q, cs: &[C]) -> Result<Vec<C>, ComponentError> {
            let s = [1.0, 3.0, f64::NAN, 3.0, 2.0];
            Ok(cs
                .iter()
                .map(|c| C {
                    score: s[(c.id - 1) as usize],
                    ..C::default()
                })
                .collect())
        }
        fn update(&self, c: &mut C, s: C) {
            c.score = s.score;
        }
    }
    let base = || {
        CandidatePipeline::<Q, C>::new()
            .source(src(&[1, 2, 3, 4, 5]))
            .scorer(SetScores)
    };
    let r = base().selector(ByScore(None, true)).execute(query()).await;
    // Equal 3.0s keep their order (2 before 4); NaN goes last.
    assert_eq!(ids(&r.selected_candidates), vec![2, 4, 5, 1, 3]);
    let r = base()
        .selector(ByScore(Some(2), true))
        .execute(query())
        .await;
    assert_eq!(r.selected_candidates.len(), 2);
    let r = base()
        .selector(ByScore(Some(2), false))
        .execute(query())
        .await;
    assert_eq!(ids(&r.selected_candidates), vec![1, 2, 3, 4, 5], "disabled");
}

#[tokio::test]
async fn result_size_truncates_and_truncated_candidates_are_not_filtered() {
    let p = CandidatePipeline::<Q, C>::new()
        .source(src(&[1, 2, 3, 4]))
        .post_selection_filter(Drop(|c: &C| c.id == 1, false));
    let r = p.execute(Q { size: 2, ..query() }).await;
    assert_eq!(ids(&r.selected_candidates), vec![2, 3]);
    assert_eq!(ids(&r.filtered_candidates), vec![1]);
}

#[tokio::test]
async fn disabled_components_are_never_called() {
    let calls = Arc::new(AtomicUsize::new(0));
    let p = CandidatePipeline::<Q, C>::new().source(Counting {
        calls: calls.clone(),
        enabled: false,
    });
    let r = p.execute(query()).await;
    assert!(r.retrieved_candidates.is_empty());
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert!(r.trace.is_empty());
}

#[tokio::test]
async fn side_effects_are_spawned_not_awaited() {
    let go = Arc::new(tokio::sync::Notify::new());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let p = CandidatePipeline::<Q, C>::new()
        .source(src(&[1, 2, 3]))
        .side_effect(Report {
            go: go.clone(),
            done: tx,
        });
    // If execute awaited the side effect it would wait for `go` forever.
    let r = tokio::time::timeout(Duration::from_secs(5), p.execute(query()))
        .await
        .expect("execute returns before its side effect finishes");
    assert_eq!(ids(&r.selected_candidates), vec![1, 2, 3]);
    assert!(rx.try_recv().is_err(), "side effect still waiting");
    go.notify_one();
    let seen = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("side effect ran")
        .expect("sent");
    assert_eq!(seen, vec![1, 2, 3]);
}

#[tokio::test]
async fn an_overrunning_component_counts_as_failed() {
    let p = CandidatePipeline::<Q, C>::new()
        .with_budget(Some(Duration::from_millis(50)))
        .source(src(&[1, 2]))
        .source(Src {
            delay: Duration::from_secs(30),
            ..src(&[9])
        })
        .filter(SlowFilter);
    let r = tokio::time::timeout(Duration::from_secs(5), p.execute(query()))
        .await
        .expect("the budget bounds the request");
    assert_eq!(ids(&r.retrieved_candidates), vec![1, 2]);
    assert_eq!(
        ids(&r.selected_candidates),
        vec![1, 2],
        "filter input restored"
    );
    let timed_out = r
        .trace
        .iter()
        .filter(|t| t.outcome == Outcome::TimedOut)
        .count();
    assert_eq!(timed_out, 2);
}

#[tokio::test]
async fn the_selector_is_observed_like_every_other_component() {
    let recorder = DebuggingRecorder::new();
    let snapshots = recorder.snapshotter();
    let _recorder = metrics::set_default_local_recorder(&recorder);
    let capture = SpanCapture::default();
    let _spans =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(capture.clone()));
    let r = CandidatePipeline::<Q, C>::new()
        .with_budget(Some(Duration::from_secs(5)))
        .source(src(&[1, 2, 3]))
        .selector(ByScore(Some(2), true))
        .execute(query())
        .await;
    assert_eq!(r.selected_candidates.len(), 2);

    let recorded = snapshots.snapshot().into_vec();
    let durations = histogram(&recorded, COMPONENT_DURATION, Stage::Selector, "ByScore");
    assert_eq!(durations.len(), 1, "one latency sample for the selector");
    assert_eq!(
        histogram(&recorded, COMPONENT_OUTPUT, Stage::Selector, "ByScore"),
        vec![2.0],
        "output size after truncation"
    );
    let spans = capture.spans();
    let selector = spans
        .iter()
        .find(|s| s.name == "component" && s.field("stage") == "Selector")
        .expect("a component span for the selector");
    assert_eq!(selector.field("component"), "ByScore");
    assert_eq!(selector.field("request_id"), "r-1");
    let run = r.trace.last().expect("traced");
    assert_eq!(
        (run.stage, run.component, run.output_len),
        (Stage::Selector, "ByScore", Some(2))
    );
}

#[tokio::test]
async fn a_selector_slower_than_the_budget_still_selects() {
    let budget = Duration::from_millis(100);
    let r = CandidatePipeline::<Q, C>::new()
        .with_budget(Some(budget))
        .source(src(&[1, 2, 3]))
        .scorer(scorer(1.0))
        .selector(SlowSelector {
            keep: 2,
            delay: budget * 3,
        })
        .execute(query())
        .await;
    assert_eq!(
        ids(&r.selected_candidates),
        vec![1, 2],
        "truncated: not passed through"
    );
    let run = r.trace.last().expect("traced");
    assert_eq!((run.stage, &run.outcome), (Stage::Selector, &Outcome::Ok));
    assert!(run.duration >= budget, "the overrun is measured");
}

use proptest::strategy::Strategy as _;

proptest::proptest! {
    /// The selector's (score, position) sort gives exactly what a stable
    /// sort of the candidates themselves gives: ties in input order, NaN
    /// last, -0.0 equal to 0.0, then the cut.
    #[test]
    fn selecting_by_keys_equals_a_stable_sort_of_the_candidates(
        scores in proptest::collection::vec(
            proptest::prop_oneof![
                (-3i32..3).prop_map(f64::from),
                proptest::strategy::Just(f64::NAN),
                proptest::strategy::Just(-0.0),
                proptest::strategy::Just(f64::INFINITY),
            ],
            0..40,
        ),
        size in proptest::option::of(0usize..45),
    ) {
        let candidates: Vec<C> = scores
            .iter()
            .enumerate()
            .map(|(i, &score)| C { id: i as i64, score, ..C::default() })
            .collect();
        let key = |c: &C| if c.score.is_nan() { f64::NEG_INFINITY } else { c.score + 0.0 };
        let mut want = candidates.clone();
        want.sort_by(|a, b| key(b).total_cmp(&key(a)));
        if let Some(n) = size {
            want.truncate(n);
        }
        let got = ByScore(size, true).select(&query(), candidates);
        proptest::prop_assert_eq!(ids(&got), ids(&want));
    }
}

proptest::proptest! {
    /// An in-order partition applied in place gives what filtering the
    /// input by side gives: kept and removed in input order, positions
    /// named on neither side dropped.
    #[test]
    fn applying_an_in_order_partition_equals_filtering_by_side(
        sides in proptest::collection::vec(0u8..3, 0..40),
    ) {
        let input: Vec<String> = (0..sides.len()).map(|i| i.to_string()).collect();
        let on = |side: u8| -> Vec<usize> {
            (0..sides.len()).filter(|&i| sides[i] == side).collect()
        };
        let out = FilterOutput { kept: on(1), removed: on(2) };
        let pick = |side: u8| -> Vec<String> { on(side).iter().map(|&i| input[i].clone()).collect() };
        proptest::prop_assert_eq!(out.apply(input.clone()), (pick(1), pick(2)));
    }
}
