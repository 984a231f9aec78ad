//! Retries of failed responses (linkerd 1.x `service.retries` and
//! `service.responseClassifier`), bounded by a retry budget.
//!
//! A response is retried only when the classifier calls it a retryable
//! failure for the request's method, the whole request is still in hand (it
//! went out in one piece with its head; streamed bodies are never retried),
//! and the budget has room. The budget is linkerd's: over the last `ttlSecs`
//! seconds, retries may be `percentCanRetry` of the requests, plus a reserve
//! of `minRetriesPerSec` per second so a quiet service can still retry. A
//! failing upstream therefore sees at most that much extra load.

use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

use http1::Method;

use config::{BackoffConfig, ResponseClassifier, RetriesConfig, RetryBudgetConfig, ServiceConfig};

/// A service's retry policy, resolved per logical name.
#[derive(Debug)]
pub struct ServicePolicy {
    pub classifier: ResponseClassifier,
    pub total_timeout: Option<Duration>,
    /// Present when the classifier can retry anything.
    pub budget: Option<RetryBudget>,
    pub backoff: Option<BackoffConfig>,
}

impl ServicePolicy {
    /// The router's `service` section for `name`, with every matching
    /// `io.l5d.static` prefix config applied in order (later ones override).
    pub fn resolve(service: &ServiceConfig, name: &str) -> ServicePolicy {
        let mut classifier = service.response_classifier.unwrap_or_default();
        let mut total = service.total_timeout_ms;
        let mut retries: Option<RetriesConfig> = service.retries;
        if service.kind == config::ServiceKind::Static {
            for c in naming::prefix::matching(&service.configs, name, |c| &c.prefix) {
                classifier = c.response_classifier.unwrap_or(classifier);
                total = c.total_timeout_ms.or(total);
                retries = c.retries.or(retries);
            }
        }
        let retrying = !matches!(classifier, ResponseClassifier::NonRetryable5XX | ResponseClassifier::AllSuccessful);
        let retries = retries.unwrap_or_default();
        ServicePolicy {
            classifier,
            total_timeout: total.map(Duration::from_millis),
            budget: retrying.then(|| RetryBudget::new(retries.budget)),
            backoff: retries.backoff,
        }
    }

    /// Whether a 5XX to this method may be retried (before the budget).
    pub fn may_retry(&self, method: Method) -> bool {
        match self.classifier {
            ResponseClassifier::NonRetryable5XX | ResponseClassifier::AllSuccessful => false,
            ResponseClassifier::RetryableRead5XX => {
                matches!(method, Method::Get | Method::Head | Method::Options | Method::Trace)
            }
            ResponseClassifier::RetryableIdempotent5XX => matches!(
                method,
                Method::Get | Method::Head | Method::Options | Method::Trace | Method::Put | Method::Delete
            ),
            ResponseClassifier::RetryableAll5XX => true,
        }
    }

    /// Whether a response is a failure (for failure accrual and metrics).
    pub fn is_failure(&self, status: u16) -> bool {
        self.classifier != ResponseClassifier::AllSuccessful && status >= 500
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    second: u64,
    requests: u32,
    retries: u32,
}

/// linkerd's retry budget over a sliding window of `ttlSecs` one-second
/// slots, per core and service.
#[derive(Debug)]
pub struct RetryBudget {
    config: RetryBudgetConfig,
    start: Instant,
    slots: RefCell<Vec<Slot>>,
    /// The current slot and when its second ends: a deposit within it is
    /// one compare and an increment (every request deposits; callgrind
    /// measured ~60 instructions a request for the full computation).
    current: Cell<(Instant, usize)>,
}

impl RetryBudget {
    pub fn new(config: RetryBudgetConfig) -> RetryBudget {
        let ttl = config.ttl_secs.clamp(1, 60) as usize;
        let start = Instant::now();
        RetryBudget { config, start, slots: RefCell::new(vec![Slot::default(); ttl]), current: Cell::new((start, 0)) }
    }

    fn slot<'a>(&self, slots: &'a mut [Slot], now: Instant) -> &'a mut Slot {
        let second = now.saturating_duration_since(self.start).as_secs() + 1;
        let n = slots.len();
        let index = (second % n as u64) as usize;
        self.current.set((self.start + Duration::from_secs(second), index));
        let slot = &mut slots[index];
        if slot.second != second {
            *slot = Slot { second, requests: 0, retries: 0 };
        }
        slot
    }

    pub fn config(&self) -> &RetryBudgetConfig {
        &self.config
    }

    /// Every request (first attempts) earns retry room.
    #[inline]
    pub fn deposit(&self, now: Instant) {
        let mut slots = self.slots.borrow_mut();
        let (until, index) = self.current.get();
        if now < until {
            slots[index].requests += 1;
        } else {
            self.slot(&mut slots, now).requests += 1;
        }
    }

    /// Takes room for one retry, if the window has it.
    pub fn try_withdraw(&self, now: Instant) -> bool {
        let mut slots = self.slots.borrow_mut();
        let current = self.slot(&mut slots, now).second;
        let ttl = slots.len() as u64;
        let (mut requests, mut retries) = (0u64, 0u64);
        for s in slots.iter().filter(|s| s.second + ttl > current) {
            requests += u64::from(s.requests);
            retries += u64::from(s.retries);
        }
        let allowed =
            f64::from(self.config.min_retries_per_sec) * ttl as f64 + self.config.percent_can_retry * requests as f64;
        if (retries as f64) < allowed {
            self.slot(&mut slots, now).retries += 1;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_allows_a_percentage_plus_a_reserve() {
        let b = RetryBudget::new(RetryBudgetConfig { min_retries_per_sec: 0, percent_can_retry: 0.2, ttl_secs: 10 });
        let now = Instant::now();
        for _ in 0..100 {
            b.deposit(now);
        }
        let granted = (0..100).filter(|_| b.try_withdraw(now)).count();
        assert_eq!(granted, 20);
        let reserve =
            RetryBudget::new(RetryBudgetConfig { min_retries_per_sec: 1, percent_can_retry: 0.0, ttl_secs: 5 });
        assert_eq!((0..100).filter(|_| reserve.try_withdraw(now)).count(), 5);
        // The window slides: after ttl the old retries no longer count.
        let later = now + Duration::from_secs(6);
        assert_eq!((0..100).filter(|_| reserve.try_withdraw(later)).count(), 5);
    }

    #[test]
    fn classifiers_pick_the_methods() {
        let mut config = ServiceConfig::default();
        let p = ServicePolicy::resolve(&config, "/svc/a");
        assert!(p.budget.is_none() && !p.may_retry(Method::Get));
        config.response_classifier = Some(ResponseClassifier::RetryableRead5XX);
        let p = ServicePolicy::resolve(&config, "/svc/a");
        assert!(p.may_retry(Method::Get) && !p.may_retry(Method::Post) && !p.may_retry(Method::Put));
        config.response_classifier = Some(ResponseClassifier::RetryableIdempotent5XX);
        assert!(ServicePolicy::resolve(&config, "/svc/a").may_retry(Method::Delete));
        config.response_classifier = Some(ResponseClassifier::AllSuccessful);
        assert!(!ServicePolicy::resolve(&config, "/svc/a").is_failure(503));
    }
}
