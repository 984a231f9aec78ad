//! Failure accrual: when an endpoint is marked dead, and when it is tried
//! again (linkerd 1.x `client.failureAccrual`).

use std::cell::Cell;
use std::time::{Duration, Instant};

use super::XorShift;
use config::{BackoffConfig, FailureAccrualConfig, FailureAccrualPolicy};

/// linkerd's default: 5 consecutive failures.
pub const DEFAULT_FAILURES: u32 = 5;
/// linkerd's default backoff: jittered between 5 s and 300 s.
pub const DEFAULT_BACKOFF: BackoffConfig = BackoffConfig::Jittered { min_ms: 5_000, max_ms: 300_000 };
/// `io.l5d.successRateWindowed` judges a window only after this many
/// responses (one failure is not a success rate).
const MIN_WINDOW_SAMPLES: u32 = 5;

/// One endpoint's accrual state.
#[derive(Debug, Default)]
pub struct Health {
    consecutive_failures: Cell<u32>,
    /// Success-rate EWMA and how many responses it has seen.
    success_rate: Cell<f64>,
    samples: Cell<u32>,
    /// `successRateWindowed`: this window's start and counts.
    window_start: Cell<Option<Instant>>,
    window_ok: Cell<u32>,
    window_total: Cell<u32>,
    /// Marked dead until then; after it, one probe request is let through.
    dead_until: Cell<Option<Instant>>,
    probing: Cell<bool>,
    /// The last backoff, for jittered growth.
    backoff: Cell<Duration>,
}

impl Health {
    pub fn is_dead(&self, now: Instant) -> bool {
        self.dead_until.get().is_some_and(|until| now < until)
    }
}

/// linkerd's `backoff`, for failure accrual and for retries alike: constant,
/// or decorrelated jitter, a random wait between the minimum and three times
/// the previous one, capped at the maximum (`previous` is zero at first).
pub fn next_backoff(config: BackoffConfig, previous: Duration, rng: &XorShift) -> Duration {
    match config {
        BackoffConfig::Constant { ms } => Duration::from_millis(ms),
        BackoffConfig::Jittered { min_ms, max_ms } => {
            let low = min_ms.min(max_ms);
            let high = (previous.as_millis() as u64).saturating_mul(3).clamp(low, max_ms.max(low));
            Duration::from_millis(low + rng.next() % (high - low + 1))
        }
    }
}

/// What one outcome did to an endpoint's accrual state (for the
/// `failure_accrual/*` counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccrualEvent {
    /// Nothing changed state.
    None,
    /// Alive, now marked dead.
    Removed,
    /// A probe succeeded: alive again.
    Revived,
    /// A probe failed: dead for another backoff.
    ProbeFailed,
}

#[derive(Debug)]
pub struct Accrual {
    policy: FailureAccrualPolicy,
    backoff: BackoffConfig,
    rng: XorShift,
}

impl Default for Accrual {
    fn default() -> Self {
        Accrual::new(FailureAccrualPolicy::ConsecutiveFailures { failures: DEFAULT_FAILURES }, None)
    }
}

impl Accrual {
    pub fn new(policy: FailureAccrualPolicy, backoff: Option<BackoffConfig>) -> Accrual {
        Accrual { policy, backoff: backoff.unwrap_or(DEFAULT_BACKOFF), rng: XorShift::new(0x2545_F491_4F6C_DD1D) }
    }

    pub fn from_config(config: Option<&FailureAccrualConfig>) -> Accrual {
        match config {
            Some(c) => Accrual::new(c.policy.clone(), c.backoff),
            None => Accrual::default(),
        }
    }

    /// Whether a request may go to this endpoint now: alive, or past its
    /// backoff with no probe in flight.
    #[inline]
    pub fn available(&self, h: &Health, now: &super::LazyNow) -> bool {
        match h.dead_until.get() {
            None => true,
            Some(until) => now.get() >= until && !h.probing.get(),
        }
    }

    /// A request was sent to this endpoint: past its backoff, it is the probe.
    #[inline]
    pub fn on_pick(&self, h: &Health, now: &super::LazyNow) {
        if h.dead_until.get().is_some_and(|until| now.get() >= until) {
            h.probing.set(true);
        }
    }

    /// The outcome of a request to this endpoint (a connect failure or a
    /// response the classifier calls a failure is `false`).
    pub fn on_result(&self, h: &Health, success: bool, now: Instant) -> AccrualEvent {
        if h.dead_until.get().is_some() {
            if !h.probing.get() {
                // A request picked before the endpoint died: not the probe.
                return AccrualEvent::None;
            }
            h.probing.set(false);
            if success {
                self.revive(h);
                return AccrualEvent::Revived;
            }
            self.mark_dead(h, now);
            return AccrualEvent::ProbeFailed;
        }
        if success {
            h.consecutive_failures.set(0);
        } else {
            h.consecutive_failures.set(h.consecutive_failures.get() + 1);
        }
        let dead = match &self.policy {
            FailureAccrualPolicy::None => false,
            FailureAccrualPolicy::ConsecutiveFailures { failures } => {
                h.consecutive_failures.get() >= (*failures).max(1)
            }
            FailureAccrualPolicy::SuccessRate { success_rate, requests } => {
                let n = (*requests).max(1);
                let x = if success { 1.0 } else { 0.0 };
                let samples = h.samples.get().saturating_add(1);
                h.samples.set(samples);
                let sr =
                    if samples == 1 { x } else { h.success_rate.get() + (x - h.success_rate.get()) / f64::from(n) };
                h.success_rate.set(sr);
                samples >= n && sr < *success_rate
            }
            FailureAccrualPolicy::SuccessRateWindowed { success_rate, window_secs } => {
                let window = Duration::from_secs(u64::from((*window_secs).max(1)));
                if h.window_start.get().is_none_or(|start| now.saturating_duration_since(start) >= window) {
                    h.window_start.set(Some(now));
                    h.window_ok.set(0);
                    h.window_total.set(0);
                }
                h.window_total.set(h.window_total.get() + 1);
                if success {
                    h.window_ok.set(h.window_ok.get() + 1);
                }
                let total = h.window_total.get();
                total >= MIN_WINDOW_SAMPLES && f64::from(h.window_ok.get()) / f64::from(total) < *success_rate
            }
        };
        if dead {
            self.mark_dead(h, now);
            return AccrualEvent::Removed;
        }
        AccrualEvent::None
    }

    fn mark_dead(&self, h: &Health, now: Instant) {
        let backoff = self.next_backoff(h.backoff.get());
        h.backoff.set(backoff);
        h.dead_until.set(Some(now + backoff));
        tracing::debug!(backoff_ms = backoff.as_millis() as u64, "endpoint marked dead");
    }

    fn revive(&self, h: &Health) {
        h.dead_until.set(None);
        h.consecutive_failures.set(0);
        h.samples.set(0);
        h.window_start.set(None);
        h.backoff.set(Duration::ZERO);
    }

    /// Constant, or decorrelated jitter: a random time between the minimum
    /// and three times the previous backoff, capped.
    fn next_backoff(&self, previous: Duration) -> Duration {
        next_backoff(self.backoff, previous, &self.rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::LazyNow;

    #[test]
    fn consecutive_failures_mark_dead_and_one_probe_decides() {
        let a = Accrual::new(
            FailureAccrualPolicy::ConsecutiveFailures { failures: 3 },
            Some(BackoffConfig::Constant { ms: 100 }),
        );
        let h = Health::default();
        let t0 = Instant::now();
        a.on_result(&h, false, t0);
        a.on_result(&h, false, t0);
        a.on_result(&h, true, t0);
        a.on_result(&h, false, t0);
        a.on_result(&h, false, t0);
        let at = LazyNow::at;
        assert!(a.available(&h, &at(t0)), "a success resets the count");
        assert_eq!(a.on_result(&h, false, t0), AccrualEvent::Removed);
        assert!(!a.available(&h, &at(t0)));
        assert_eq!(a.on_result(&h, false, t0), AccrualEvent::None, "picked before it died: not the probe");
        let later = t0 + Duration::from_millis(100);
        assert!(a.available(&h, &at(later)));
        a.on_pick(&h, &at(later));
        assert!(!a.available(&h, &at(later)), "one probe at a time");
        assert_eq!(a.on_result(&h, false, later), AccrualEvent::ProbeFailed);
        assert!(!a.available(&h, &at(later + Duration::from_millis(50))), "a failed probe: dead again");
        let again = later + Duration::from_millis(100);
        a.on_pick(&h, &at(again));
        assert_eq!(a.on_result(&h, true, again), AccrualEvent::Revived);
        assert!(a.available(&h, &at(again)) && !h.is_dead(again), "a good probe revives");
    }

    #[test]
    fn jittered_backoff_stays_within_bounds_and_grows() {
        let a = Accrual::new(FailureAccrualPolicy::None, Some(BackoffConfig::Jittered { min_ms: 10, max_ms: 1000 }));
        let mut previous = Duration::ZERO;
        for _ in 0..100 {
            let next = a.next_backoff(previous);
            assert!(next >= Duration::from_millis(10) && next <= Duration::from_millis(1000), "{next:?}");
            assert!(next <= (previous * 3).max(Duration::from_millis(10)));
            previous = next;
        }
    }

    #[test]
    fn success_rate_policies() {
        let a = Accrual::new(FailureAccrualPolicy::SuccessRate { success_rate: 0.8, requests: 10 }, None);
        let h = Health::default();
        let now = Instant::now();
        for i in 0..10 {
            a.on_result(&h, i % 2 == 0, now);
        }
        assert!(h.is_dead(now), "50 % over 10 requests is under 80 %");
        let w = Accrual::new(FailureAccrualPolicy::SuccessRateWindowed { success_rate: 0.9, window_secs: 30 }, None);
        let h = Health::default();
        for _ in 0..3 {
            w.on_result(&h, false, now);
        }
        assert!(!h.is_dead(now), "too few responses to judge");
        for _ in 0..2 {
            w.on_result(&h, false, now);
        }
        assert!(h.is_dead(now));
    }
}
