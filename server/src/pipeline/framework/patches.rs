//! Hydrators and scorers as the framework keeps them: each returns one
//! small output per candidate (its `Output`: only the fields it owns), and
//! the framework applies them with the component's `update`. [`Patcher`]
//! erases the output type so components of different outputs share a list.
//!
//! Why outputs and not whole candidates (the original's shape): building a
//! default candidate per input cost every hydrator and scorer ~1 150
//! candidates of ~360 bytes a request, and each default candidate cloned
//! and dropped two shared empty `Arc`s (`Arc<str>`, `Arc<[i64]>`), whose
//! one reference count all threads write.

use std::sync::Arc;

use async_trait::async_trait;

use super::component::{ComponentError, Hydrator, Scorer};

/// Writes a component's outputs into the candidates.
type Apply<C> = Box<dyn FnOnce(&mut [C]) + Send>;

/// One component's outputs for a list of candidates, with the component's
/// `update` to apply them.
pub struct Patches<C> {
    len: usize,
    apply: Apply<C>,
}

impl<C> Patches<C> {
    /// Outputs `out`, one per candidate, applied by `update`.
    fn new<O: Send + 'static>(out: Vec<O>, update: impl Fn(&mut C, O) + Send + 'static) -> Self
    where
        C: 'static,
    {
        Self {
            len: out.len(),
            apply: Box::new(move |candidates: &mut [C]| {
                for (c, o) in candidates.iter_mut().zip(out) {
                    update(c, o);
                }
            }),
        }
    }

    /// Outputs held (the framework skips a component whose count is not
    /// the candidates').
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Writes each output into its candidate, in order.
    pub fn apply(self, candidates: &mut [C]) {
        (self.apply)(candidates)
    }
}

/// A hydrator or a scorer with its output type erased.
#[async_trait]
pub trait Patcher<Q, C>: Send + Sync {
    /// Name in logs and metrics.
    fn name(&self) -> &'static str;
    /// Whether to run for this query.
    fn enable(&self, query: &Q) -> bool;
    /// The component's outputs for `candidates`.
    async fn run(&self, query: &Q, candidates: &[C]) -> Result<Patches<C>, ComponentError>;
}

/// A [`Hydrator`] as a [`Patcher`].
pub struct HydratorPatcher<H>(pub Arc<H>);

#[async_trait]
impl<Q, C, H> Patcher<Q, C> for HydratorPatcher<H>
where
    Q: Sync,
    C: Send + Sync + 'static,
    H: Hydrator<Q, C> + 'static,
{
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn enable(&self, query: &Q) -> bool {
        self.0.enable(query)
    }

    async fn run(&self, query: &Q, candidates: &[C]) -> Result<Patches<C>, ComponentError> {
        let out = self.0.hydrate(query, candidates).await?;
        let h = Arc::clone(&self.0);
        Ok(Patches::new(out, move |c, o| h.update(c, o)))
    }
}

/// A [`Scorer`] as a [`Patcher`].
pub struct ScorerPatcher<S>(pub Arc<S>);

#[async_trait]
impl<Q, C, S> Patcher<Q, C> for ScorerPatcher<S>
where
    Q: Sync,
    C: Send + Sync + 'static,
    S: Scorer<Q, C> + 'static,
{
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn enable(&self, query: &Q) -> bool {
        self.0.enable(query)
    }

    async fn run(&self, query: &Q, candidates: &[C]) -> Result<Patches<C>, ComponentError> {
        let out = self.0.score(query, candidates).await?;
        let s = Arc::clone(&self.0);
        Ok(Patches::new(out, move |c, o| s.update(c, o)))
    }
}
