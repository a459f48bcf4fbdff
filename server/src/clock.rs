//! Time sources. Components never read the clock themselves: a [`Clock`] is
//! injected so tests control wall time (retention) and monotonic time (request
//! budgets) exactly.

use std::fmt::Debug;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A source of wall-clock and monotonic time.
pub trait Clock: Send + Sync + Debug {
    /// Wall-clock time in unix seconds (retention and post ages).
    fn unix_s(&self) -> i64;
    /// Wall-clock time in unix milliseconds (home-mixer ages and stamps).
    fn unix_ms(&self) -> i64 {
        self.unix_s().saturating_mul(1000)
    }
    /// Monotonic time since an arbitrary origin (time budgets, latencies).
    fn monotonic(&self) -> Duration;
}

/// The real clock.
#[derive(Debug)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    /// A system clock whose monotonic origin is now.
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn unix_s(&self) -> i64 {
        // A clock before 1970 reads as 0: every post then looks to be in the
        // future and is rejected, which is the safe side.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }

    fn unix_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }

    fn monotonic(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// The real clock shifted by a fixed offset: serving a saved world runs
/// time forward from the world's "now", so its posts keep their ages.
#[derive(Debug)]
pub struct OffsetClock {
    inner: SystemClock,
    offset_ms: i64,
}

impl OffsetClock {
    /// A clock that reads `start_ms` now and advances in real time.
    pub fn starting_at(start_ms: i64) -> Self {
        let inner = SystemClock::new();
        let offset_ms = start_ms.saturating_sub(inner.unix_ms());
        Self { inner, offset_ms }
    }
}

impl Clock for OffsetClock {
    fn unix_s(&self) -> i64 {
        self.unix_ms().div_euclid(1000)
    }

    fn unix_ms(&self) -> i64 {
        self.inner.unix_ms().saturating_add(self.offset_ms)
    }

    fn monotonic(&self) -> Duration {
        self.inner.monotonic()
    }
}

/// A clock driven by the test: wall time is set by hand, and every read of
/// the monotonic time advances it by a fixed step (zero by default), which
/// makes time budgets expire after an exact number of checks.
#[derive(Debug, Default)]
pub struct ManualClock {
    unix_s: AtomicI64,
    mono_ns: AtomicU64,
    step_ns: AtomicU64,
}

impl ManualClock {
    /// A manual clock reading `unix_s`, monotonic time 0, step 0.
    pub fn new(unix_s: i64) -> Self {
        Self {
            unix_s: AtomicI64::new(unix_s),
            ..Self::default()
        }
    }

    /// Sets the wall time.
    pub fn set_unix_s(&self, unix_s: i64) {
        self.unix_s.store(unix_s, Ordering::SeqCst);
    }

    /// Moves wall and monotonic time forward by `d`.
    pub fn advance(&self, d: Duration) {
        self.unix_s.fetch_add(
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Ordering::SeqCst,
        );
        self.mono_ns.fetch_add(duration_ns(d), Ordering::SeqCst);
    }

    /// Makes every monotonic read advance the clock by `step` after reading.
    pub fn set_monotonic_step(&self, step: Duration) {
        self.step_ns.store(duration_ns(step), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn unix_s(&self) -> i64 {
        self.unix_s.load(Ordering::SeqCst)
    }

    fn monotonic(&self) -> Duration {
        let step = self.step_ns.load(Ordering::SeqCst);
        Duration::from_nanos(self.mono_ns.fetch_add(step, Ordering::SeqCst))
    }
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_steps_on_every_monotonic_read() {
        let c = ManualClock::new(100);
        c.set_monotonic_step(Duration::from_millis(10));
        assert_eq!(c.monotonic(), Duration::ZERO);
        assert_eq!(c.monotonic(), Duration::from_millis(10));
        c.advance(Duration::from_secs(5));
        assert_eq!(c.unix_s(), 105);
        assert_eq!(c.monotonic(), Duration::from_millis(5020));
    }

    #[test]
    fn offset_clock_starts_at_the_given_time_and_runs_forward() {
        let c = OffsetClock::starting_at(1_000_000_000_000);
        let t = c.unix_ms();
        assert!((1_000_000_000_000..1_000_000_060_000).contains(&t), "{t}");
        assert_eq!(c.unix_s(), c.unix_ms().div_euclid(1000));
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock::new().unix_s() > 1_577_836_800);
    }
}
