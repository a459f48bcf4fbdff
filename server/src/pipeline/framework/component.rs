//! The component kinds of spec §1.1 and their contracts.
//!
//! Every kind has `enable(query)` (default true; checked once per request
//! just before its stage; a disabled component is never called) and `name()`
//! (default: the last path segment of the type name, used in logs and
//! metrics). Async methods go through `async_trait` so components can be
//! held as trait objects in declaration order.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

/// What the framework needs from a query.
pub trait PipelineQuery: Clone + Send + Sync + 'static {
    /// The id every log line of this request carries.
    fn request_id(&self) -> &str;
    /// How many candidates the final truncation keeps (spec §1.2 step 9).
    fn result_size(&self) -> usize;
}

/// Why a component's call did not count.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ComponentError {
    /// The component reported a failure.
    #[error("{0}")]
    Failed(String),
    /// The call overran the per-component time budget (our addition: the
    /// original has no timeouts).
    #[error("timed out after {0:?}")]
    TimedOut(Duration),
    /// A hydrator or scorer returned a different number of candidates than
    /// it was given.
    #[error("length_mismatch expected={expected} got={got}")]
    LengthMismatch {
        /// Candidates given.
        expected: usize,
        /// Candidates returned.
        got: usize,
    },
}

impl ComponentError {
    /// A failure with this message.
    pub fn failed(msg: impl Into<String>) -> Self {
        Self::Failed(msg.into())
    }
}

/// The last path segment of a type name, without generic arguments:
/// `foryou_server::x::AgeFilter<T>` → `AgeFilter`.
pub fn short_type_name(full: &'static str) -> &'static str {
    let base = full.split('<').next().unwrap_or(full);
    base.rsplit("::").next().unwrap_or(base)
}

/// Spec §1.1 QueryHydrator: computes some fields of the query from the
/// original (un-hydrated) query; `update` copies just those fields.
#[async_trait]
pub trait QueryHydrator<Q>: Send + Sync {
    /// Name in logs and metrics.
    fn name(&self) -> &'static str {
        short_type_name(std::any::type_name::<Self>())
    }
    /// Whether to run for this query.
    fn enable(&self, _query: &Q) -> bool {
        true
    }
    /// A query carrying the hydrated fields.
    async fn hydrate(&self, query: &Q) -> Result<Q, ComponentError>;
    /// Copies the fields this hydrator owns from `hydrated` into `query`.
    fn update(&self, query: &mut Q, hydrated: Q);
}

/// Spec §1.1 Source: produces candidates for the hydrated query.
#[async_trait]
pub trait Source<Q, C>: Send + Sync {
    /// Name in logs and metrics.
    fn name(&self) -> &'static str {
        short_type_name(std::any::type_name::<Self>())
    }
    /// Whether to run for this query.
    fn enable(&self, _query: &Q) -> bool {
        true
    }
    /// The candidates.
    async fn get_candidates(&self, query: &Q) -> Result<Vec<C>, ComponentError>;
}

/// Spec §1.1 Hydrator (pre- and post-selection): one output per input, in
/// the same order; never drops a candidate.
#[async_trait]
pub trait Hydrator<Q, C>: Send + Sync {
    /// Name in logs and metrics.
    fn name(&self) -> &'static str {
        short_type_name(std::any::type_name::<Self>())
    }
    /// Whether to run for this query.
    fn enable(&self, _query: &Q) -> bool {
        true
    }
    /// What it finds for one candidate: the fields it owns (deviation:
    /// the original returns whole candidates; see `patches`).
    type Output: Send + 'static;
    /// One output per input, in order.
    async fn hydrate(
        &self,
        query: &Q,
        candidates: &[C],
    ) -> Result<Vec<Self::Output>, ComponentError>;
    /// Writes `hydrated` into the fields this hydrator owns.
    fn update(&self, candidate: &mut C, hydrated: Self::Output);
}

/// What a filter kept and removed, as positions in its input: `kept` in
/// the order the candidates go on, `removed` in removal order. Together
/// they name every position once. Positions, not candidates: the filter
/// only borrows its input, so the framework moves each candidate once and
/// restores a failed filter's input without having copied it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterOutput {
    /// Positions of the candidates that go on, in their new order.
    pub kept: Vec<usize>,
    /// Positions of the candidates removed, in removal order.
    pub removed: Vec<usize>,
}

impl FilterOutput {
    /// Keeps the candidates for which `keep` is true; both sides stay in
    /// input order.
    pub fn partition<C>(candidates: &[C], mut keep: impl FnMut(&C) -> bool) -> Self {
        let mut out = Self {
            kept: Vec::with_capacity(candidates.len()),
            removed: Vec::new(),
        };
        for (i, c) in candidates.iter().enumerate() {
            if keep(c) {
                out.kept.push(i);
            } else {
                out.removed.push(i);
            }
        }
        out
    }

    /// Keeps every candidate of `n`.
    pub fn keep_all(n: usize) -> Self {
        Self {
            kept: (0..n).collect(),
            removed: Vec::new(),
        }
    }

    /// Whether it names each of `n` positions exactly once.
    pub fn is_valid_for(&self, n: usize) -> bool {
        if self.kept.len() + self.removed.len() != n {
            return false;
        }
        let mut seen = vec![false; n];
        self.kept
            .iter()
            .chain(&self.removed)
            .all(|&i| i < n && !std::mem::replace(&mut seen[i], true))
    }

    /// Moves `input` apart into (kept, removed). `self` must be valid for
    /// `input.len()` ([`Self::is_valid_for`]); positions it does not name
    /// are dropped.
    pub fn apply<C>(&self, input: Vec<C>) -> (Vec<C>, Vec<C>) {
        let in_order = |v: &[usize]| v.windows(2).all(|w| w[0] < w[1]);
        if in_order(&self.kept) && in_order(&self.removed) {
            // A plain partition, in place: the kept stay in `input`'s
            // buffer (nothing moves when nothing is removed, and only
            // those after the first removal move down), the removed are
            // moved out once.
            let mut kept = input;
            if self.kept.len() == kept.len() {
                return (kept, Vec::new());
            }
            let mut side = vec![0u8; kept.len()];
            for &i in &self.kept {
                side[i] = 1;
            }
            for &i in &self.removed {
                side[i] = 2;
            }
            let mut next = side.iter();
            let out: Vec<C> = kept.extract_if(.., |_| next.next() != Some(&1)).collect();
            let removed = out
                .into_iter()
                .zip(side.iter().filter(|&&s| s != 1))
                .filter(|&(_, &s)| s == 2)
                .map(|(c, _)| c)
                .collect();
            return (kept, removed);
        }
        let mut slots: Vec<Option<C>> = input.into_iter().map(Some).collect();
        let kept = take_positions(&mut slots, self.kept.iter().copied());
        let removed = take_positions(&mut slots, self.removed.iter().copied());
        (kept, removed)
    }
}

/// Moves the candidates at `positions` out of `slots`, in that order
/// (a position out of range or already taken is skipped).
fn take_positions<C>(slots: &mut [Option<C>], positions: impl Iterator<Item = usize>) -> Vec<C> {
    positions
        .filter_map(|i| slots.get_mut(i).and_then(Option::take))
        .collect()
}

/// Spec §1.1 Filter: looks at the list, says what it keeps and removes. On
/// error the framework keeps the filter's input as it was (fail-open).
#[async_trait]
pub trait Filter<Q, C>: Send + Sync {
    /// Name in logs and metrics.
    fn name(&self) -> &'static str {
        short_type_name(std::any::type_name::<Self>())
    }
    /// Whether to run for this query.
    fn enable(&self, _query: &Q) -> bool {
        true
    }
    /// Splits `candidates` into kept and removed, by position.
    async fn filter(&self, query: &Q, candidates: &[C]) -> Result<FilterOutput, ComponentError>;
}

/// Spec §1.1 Scorer: the hydrator contract; scorers run in order and each
/// sees the fields earlier scorers set.
#[async_trait]
pub trait Scorer<Q, C>: Send + Sync {
    /// Name in logs and metrics.
    fn name(&self) -> &'static str {
        short_type_name(std::any::type_name::<Self>())
    }
    /// Whether to run for this query.
    fn enable(&self, _query: &Q) -> bool {
        true
    }
    /// What it computes for one candidate: the fields it owns (deviation:
    /// the original returns whole candidates; see `patches`).
    type Output: Send + 'static;
    /// One output per input, in order.
    async fn score(&self, query: &Q, candidates: &[C])
    -> Result<Vec<Self::Output>, ComponentError>;
    /// Writes `scored` into the fields this scorer owns.
    fn update(&self, candidate: &mut C, scored: Self::Output);
}

/// Spec §1.1 Selector: a stable descending sort by `score`, then truncation
/// to `size`.
///
/// Deviation: the original compares with `partial_cmp` and calls NaN equal
/// to everything, which is not an order (where a NaN lands depends on the
/// sort's internals, and Rust's sort may panic on it). We sort NaN last,
/// like a missing score, with a total order; -0.0 and 0.0 tie.
pub trait Selector<Q, C>: Send + Sync {
    /// Name in logs and metrics.
    fn name(&self) -> &'static str {
        short_type_name(std::any::type_name::<Self>())
    }
    /// Whether to run for this query (otherwise the list passes through).
    fn enable(&self, _query: &Q) -> bool {
        true
    }
    /// The sort key.
    fn score(&self, candidate: &C) -> f64;
    /// How many to keep; `None` keeps all.
    fn size(&self) -> Option<usize> {
        None
    }
    /// Sorts by score, highest first (stable; NaN last), and truncates to
    /// `size`. The (score, position) pairs are sorted, not the candidates:
    /// each key is computed once and each kept candidate moved once.
    fn select(&self, _query: &Q, candidates: Vec<C>) -> Vec<C> {
        let key = |c: &C| {
            let s = self.score(c);
            if s.is_nan() {
                f64::NEG_INFINITY
            } else {
                s + 0.0
            }
        };
        let mut order: Vec<(f64, usize)> = candidates
            .iter()
            .enumerate()
            .map(|(i, c)| (key(c), i))
            .collect();
        order.sort_by(|a, b| b.0.total_cmp(&a.0));
        if let Some(n) = self.size() {
            order.truncate(n);
        }
        let mut slots: Vec<Option<C>> = candidates.into_iter().map(Some).collect();
        take_positions(&mut slots, order.iter().map(|&(_, i)| i))
    }
}

/// What side effects see: the final query and the selected candidates.
#[derive(Debug)]
pub struct SideEffectInput<Q, C> {
    /// The hydrated query.
    pub query: Arc<Q>,
    /// The final list, after truncation.
    pub selected_candidates: Vec<C>,
}

/// Spec §1.1 SideEffect: runs after the response is formed, in a spawned
/// task; its result is ignored.
#[async_trait]
pub trait SideEffect<Q, C>: Send + Sync {
    /// Name in logs and metrics.
    fn name(&self) -> &'static str {
        short_type_name(std::any::type_name::<Self>())
    }
    /// Whether to run, given the final query.
    fn enable(&self, _query: Arc<Q>) -> bool {
        true
    }
    /// Does the work.
    async fn run(&self, input: Arc<SideEffectInput<Q, C>>) -> Result<(), ComponentError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_type_name_is_the_last_segment_without_generics() {
        assert_eq!(short_type_name("a::b::AgeFilter"), "AgeFilter");
        assert_eq!(short_type_name("a::b::Dedup<x::y::Z>"), "Dedup");
        assert_eq!(short_type_name("Plain"), "Plain");
    }
}
