//! Client-side load balancing and failure accrual, per core.
//!
//! Each core keeps one [`Endpoint`] per (router, address): its load (requests
//! in flight), its peak-EWMA latency and its accrual state. Keeping them by
//! address means a namer update that changes the address set does not lose
//! them, and requests in flight on a removed address finish normally (they
//! hold an `Rc`). A [`Balancer`] is the address set of one bound name with
//! its weights and the configured algorithm; the route cache keeps one per
//! resolved destination.
//!
//! linkerd 1.x's algorithms and defaults:
//! - `p2c` (default): two endpoints drawn by weight; the one with the lower
//!   load/weight wins.
//! - `ewma`: the same two draws; the lower peak-EWMA latency × (load + 1)
//!   wins (`decayTimeMs`, default 10 s).
//! - `heap`: the least loaded (load/weight) endpoint.
//! - `roundRobin`: each live endpoint in turn.
//! - `aperture`: p2c over a window of endpoints that grows when its average
//!   load passes `highLoad` (2.0) and shrinks under `lowLoad` (0.5), never
//!   below `minAperture` (1).
//!
//! Failure accrual (`io.l5d.consecutiveFailures`, 5, by default): an endpoint
//! that fails that many requests in a row is marked dead and gets nothing
//! until its backoff expires (jittered 5 s to 300 s by default); then one
//! probe request decides whether it comes back. With every endpoint dead, a
//! pick fails at once: the request gets 502 with `l5d-err`, not a hang.

pub mod accrual;
pub mod retry;

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

pub use accrual::{next_backoff, Accrual, AccrualEvent, Health};
pub use retry::{RetryBudget, ServicePolicy};

use config::{LoadBalancerConfig, LoadBalancerKind};

/// xorshift64*: a per-core pseudo-random sequence with no shared state,
/// good enough for weighted picks and request ids.
#[derive(Debug)]
pub struct XorShift(Cell<u64>);

impl XorShift {
    pub fn new(seed: u64) -> XorShift {
        XorShift(Cell::new(seed | 1))
    }

    pub fn next(&self) -> u64 {
        let mut x = self.0.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// The current time, read from the clock only if something asks: a pick
/// among live endpoints never needs it.
#[derive(Debug, Default)]
pub struct LazyNow(Cell<Option<Instant>>);

impl LazyNow {
    pub fn at(now: Instant) -> LazyNow {
        LazyNow(Cell::new(Some(now)))
    }

    pub fn get(&self) -> Instant {
        match self.0.get() {
            Some(t) => t,
            None => {
                let t = Instant::now();
                self.0.set(Some(t));
                t
            }
        }
    }
}

/// One upstream address, as this core sees it.
#[derive(Debug)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// Requests in flight.
    load: Cell<u32>,
    /// Peak EWMA of response latency, µs, and when it was last updated.
    ewma_us: Cell<f64>,
    ewma_at: Cell<Instant>,
    pub health: Health,
}

impl Endpoint {
    pub fn new(addr: SocketAddr) -> Endpoint {
        Endpoint {
            addr,
            load: Cell::new(0),
            ewma_us: Cell::new(0.0),
            ewma_at: Cell::new(Instant::now()),
            health: Health::default(),
        }
    }

    pub fn load(&self) -> u32 {
        self.load.get()
    }

    /// Folds one response latency into the peak EWMA: a slower response is
    /// taken at once, a faster one decays the estimate over `decay`.
    pub fn observe_latency(&self, latency: Duration, now: Instant, decay: Duration) {
        let rtt = latency.as_secs_f64() * 1e6;
        let old = self.ewma_us.get();
        if rtt > old {
            self.ewma_us.set(rtt);
        } else {
            let elapsed = now.saturating_duration_since(self.ewma_at.get()).as_secs_f64();
            let w = (-elapsed / decay.as_secs_f64().max(1e-3)).exp();
            self.ewma_us.set(old * w + rtt * (1.0 - w));
        }
        self.ewma_at.set(now);
    }

    fn ewma_cost(&self) -> f64 {
        // An endpoint with no latency yet gets a small, non-zero cost so its
        // load still counts.
        self.ewma_us.get().max(1.0) * f64::from(self.load.get() + 1)
    }
}

/// Counts a request as in flight on its endpoint while it lives.
#[derive(Debug)]
pub struct InFlight(pub Rc<Endpoint>);

impl InFlight {
    pub fn new(endpoint: Rc<Endpoint>) -> InFlight {
        endpoint.load.set(endpoint.load.get() + 1);
        InFlight(endpoint)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.load.set(self.0.load.get().saturating_sub(1));
    }
}

/// The endpoints of one bound name, and how to choose among them.
#[derive(Debug)]
pub struct Balancer {
    endpoints: Vec<(Rc<Endpoint>, f64)>,
    /// Prefix sums of the weights: a weighted draw is a binary search.
    cumulative: Vec<f64>,
    config: LoadBalancerConfig,
    pub accrual: Rc<Accrual>,
    rng: XorShift,
    cursor: Cell<usize>,
    aperture: Cell<usize>,
}

impl Balancer {
    /// `endpoints`: (endpoint, weight); weights ≤ 0 were dropped by the namer.
    pub fn new(endpoints: Vec<(Rc<Endpoint>, f64)>, config: LoadBalancerConfig, accrual: Rc<Accrual>) -> Balancer {
        let cumulative = endpoints
            .iter()
            .scan(0.0, |sum, (_, w)| {
                *sum += w;
                Some(*sum)
            })
            .collect();
        let seed = (endpoints.as_ptr() as u64) ^ 0x9E37_79B9_7F4A_7C15;
        let aperture = (config.min_aperture.unwrap_or(1) as usize).clamp(1, endpoints.len().max(1));
        Balancer {
            endpoints,
            cumulative,
            config,
            accrual,
            rng: XorShift::new(seed),
            cursor: Cell::new(0),
            aperture: Cell::new(aperture),
        }
    }

    pub fn len(&self) -> usize {
        self.endpoints.len()
    }

    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    pub fn addrs(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.endpoints.iter().map(|(e, _)| e.addr)
    }

    fn unit(&self) -> f64 {
        (self.rng.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A weighted random draw among the first `within` endpoints that
    /// `usable` accepts (None when none does). A binary search over the
    /// weights, retried a few times if it lands on an unusable endpoint; a
    /// linear pass over the usable ones after that.
    fn draw(&self, within: usize, usable: &dyn Fn(&Endpoint) -> bool) -> Option<usize> {
        if within == 0 {
            return None;
        }
        let total = self.cumulative[within - 1];
        for _ in 0..4 {
            let point = self.unit() * total;
            let i = self.cumulative[..within].partition_point(|c| *c <= point).min(within - 1);
            if usable(&self.endpoints[i].0) {
                return Some(i);
            }
        }
        let candidates = &self.endpoints[..within];
        let total: f64 = candidates.iter().filter(|(e, _)| usable(e)).map(|(_, w)| w).sum();
        if total <= 0.0 {
            return None;
        }
        let mut point = self.unit() * total;
        let mut last = None;
        for (i, (e, w)) in candidates.iter().enumerate() {
            if !usable(e) {
                continue;
            }
            last = Some(i);
            if point < *w {
                return Some(i);
            }
            point -= w;
        }
        last
    }

    /// Chooses an endpoint for a request, skipping `avoid` (the endpoint a
    /// connect just failed on). None: every endpoint is marked dead.
    pub fn pick(&self, now: &LazyNow, avoid: Option<&Endpoint>) -> Option<Rc<Endpoint>> {
        let accrual = &self.accrual;
        let usable =
            |e: &Endpoint| -> bool { !avoid.is_some_and(|a| std::ptr::eq(a, e)) && accrual.available(&e.health, now) };
        let n = self.endpoints.len();
        let chosen = match self.config.kind {
            LoadBalancerKind::RoundRobin => {
                let start = self.cursor.get();
                let found = (0..n).map(|k| (start + k) % n).find(|&i| usable(&self.endpoints[i].0));
                if let Some(i) = found {
                    self.cursor.set(i + 1);
                }
                found
            }
            LoadBalancerKind::Heap => self
                .endpoints
                .iter()
                .enumerate()
                .filter(|(_, (e, _))| usable(e))
                .min_by(|(_, (a, wa)), (_, (b, wb))| (f64::from(a.load()) / wa).total_cmp(&(f64::from(b.load()) / wb)))
                .map(|(i, _)| i),
            LoadBalancerKind::P2c | LoadBalancerKind::Ewma => self.two_choices(n, &usable),
            LoadBalancerKind::Aperture => {
                let within = self.adjust_aperture(n);
                self.two_choices(within, &usable).or_else(|| self.two_choices(n, &usable))
            }
        }?;
        let endpoint = self.endpoints[chosen].0.clone();
        accrual.on_pick(&endpoint.health, now);
        Some(endpoint)
    }

    fn two_choices(&self, within: usize, usable: &dyn Fn(&Endpoint) -> bool) -> Option<usize> {
        if within == 1 {
            // One candidate (a service with one replica is common): nothing
            // to draw or compare. The draws below would pick it, then try
            // four times and scan for a second one in vain.
            return usable(&self.endpoints[0].0).then_some(0);
        }
        let a = self.draw(within, usable)?;
        // Two distinct endpoints (as linkerd's p2c): a second draw of the
        // same one would compare it with itself.
        let first = &*self.endpoints[a].0;
        let others = |e: &Endpoint| !std::ptr::eq(e, first) && usable(e);
        let Some(b) = self.draw(within, &others) else { return Some(a) };
        // Weights already shaped the draws; p2c also divides the load by
        // the weight (a heavier endpoint takes more concurrent load).
        let cost = |i: usize| -> f64 {
            let (e, w) = &self.endpoints[i];
            match self.config.kind {
                LoadBalancerKind::Ewma => e.ewma_cost(),
                _ => f64::from(e.load()) / w,
            }
        };
        // Ties go to the first draw, so sequential traffic (no load) follows
        // the weights.
        Some(if cost(b) < cost(a) { b } else { a })
    }

    /// Grows or shrinks the aperture by the average load inside it.
    fn adjust_aperture(&self, n: usize) -> usize {
        let min = (self.config.min_aperture.unwrap_or(1) as usize).clamp(1, n.max(1));
        let mut size = self.aperture.get().clamp(min, n.max(1));
        let load: u32 = self.endpoints[..size].iter().map(|(e, _)| e.load()).sum();
        let average = f64::from(load) / size as f64;
        if average > self.config.high_load.unwrap_or(2.0) && size < n {
            size += 1;
        } else if average < self.config.low_load.unwrap_or(0.5) && size > min {
            size -= 1;
        }
        self.aperture.set(size);
        size
    }

    /// Endpoints tried for one request when connecting fails (`maxEffort`).
    pub fn max_effort(&self) -> u32 {
        self.config.max_effort.max(1)
    }

    /// Feeds a response latency to `ewma` (other algorithms do not use it).
    pub fn observe(&self, endpoint: &Endpoint, latency: Duration, now: Instant) {
        if self.config.kind == LoadBalancerKind::Ewma {
            endpoint.observe_latency(latency, now, self.decay());
        }
    }

    /// This balancer's pseudo-random sequence (retry backoff jitter).
    pub fn rng(&self) -> &XorShift {
        &self.rng
    }

    /// `ewma`'s decay time.
    pub fn decay(&self) -> Duration {
        Duration::from_millis(self.config.decay_time_ms.unwrap_or(10_000))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use config::FailureAccrualPolicy;

    fn endpoints(weights: &[f64]) -> Vec<(Rc<Endpoint>, f64)> {
        weights
            .iter()
            .enumerate()
            .map(|(i, w)| (Rc::new(Endpoint::new(SocketAddr::from(([127, 0, 0, 1], 1000 + i as u16)))), *w))
            .collect()
    }

    fn balancer(kind: LoadBalancerKind, weights: &[f64]) -> Balancer {
        let config = LoadBalancerConfig { kind, ..Default::default() };
        Balancer::new(endpoints(weights), config, Rc::new(Accrual::default()))
    }

    fn shares(b: &Balancer, picks: usize) -> Vec<f64> {
        let mut counts = vec![0usize; b.len()];
        let now = LazyNow::default();
        for _ in 0..picks {
            let e = b.pick(&now, None).unwrap();
            counts[b.endpoints.iter().position(|(x, _)| Rc::ptr_eq(x, &e)).unwrap()] += 1;
        }
        counts.iter().map(|c| *c as f64 / picks as f64).collect()
    }

    #[test]
    fn idle_traffic_follows_the_weights() {
        for kind in [LoadBalancerKind::P2c, LoadBalancerKind::Ewma] {
            let s = shares(&balancer(kind, &[1.0, 3.0]), 20_000);
            assert!((s[1] - 0.75).abs() < 0.02, "{kind:?}: {s:?}");
        }
        let s = shares(&balancer(LoadBalancerKind::RoundRobin, &[1.0, 1.0, 1.0]), 3_000);
        assert!(s.iter().all(|x| (x - 1.0 / 3.0).abs() < 0.001), "{s:?}");
    }

    #[test]
    fn p2c_and_heap_avoid_the_loaded_endpoint() {
        for kind in [LoadBalancerKind::P2c, LoadBalancerKind::Heap] {
            let b = balancer(kind, &[1.0, 1.0]);
            let busy: Vec<InFlight> = (0..10).map(|_| InFlight::new(b.endpoints[0].0.clone())).collect();
            let s = shares(&b, 1_000);
            assert!(s[1] > 0.7, "{kind:?}: {s:?}");
            drop(busy);
        }
    }

    #[test]
    fn ewma_prefers_the_fast_endpoint() {
        let b = balancer(LoadBalancerKind::Ewma, &[1.0, 1.0]);
        let now = Instant::now();
        b.endpoints[0].0.observe_latency(Duration::from_millis(50), now, b.decay());
        b.endpoints[1].0.observe_latency(Duration::from_millis(1), now, b.decay());
        let s = shares(&b, 2_000);
        assert!(s[1] > 0.7, "{s:?}");
    }

    #[test]
    fn dead_endpoints_get_nothing_and_all_dead_fails_fast() {
        let config = LoadBalancerConfig::default();
        let accrual = Rc::new(Accrual::new(FailureAccrualPolicy::ConsecutiveFailures { failures: 2 }, None));
        let b = Balancer::new(endpoints(&[1.0, 1.0]), config, accrual.clone());
        let now = Instant::now();
        let lazy = LazyNow::at(now);
        let first = b.endpoints[0].0.clone();
        accrual.on_result(&first.health, false, now);
        accrual.on_result(&first.health, false, now);
        assert!(!accrual.available(&first.health, &lazy));
        for _ in 0..100 {
            assert!(!Rc::ptr_eq(&b.pick(&lazy, None).unwrap(), &first));
        }
        let second = b.endpoints[1].0.clone();
        accrual.on_result(&second.health, false, now);
        accrual.on_result(&second.health, false, now);
        assert!(b.pick(&lazy, None).is_none(), "all dead: no endpoint, at once");
    }

    #[test]
    fn one_endpoint_is_taken_without_a_draw() {
        for kind in [LoadBalancerKind::P2c, LoadBalancerKind::Ewma, LoadBalancerKind::Aperture] {
            let config = LoadBalancerConfig { kind, ..Default::default() };
            let accrual = Rc::new(Accrual::new(FailureAccrualPolicy::ConsecutiveFailures { failures: 1 }, None));
            let b = Balancer::new(endpoints(&[1.0]), config, accrual.clone());
            let only = b.endpoints[0].0.clone();
            let now = Instant::now();
            let lazy = LazyNow::at(now);
            let state = b.rng.0.get();
            assert!(Rc::ptr_eq(&b.pick(&lazy, None).unwrap(), &only), "{kind:?}");
            assert_eq!(b.rng.0.get(), state, "{kind:?}: no random number drawn");
            assert!(b.pick(&lazy, Some(&only)).is_none(), "{kind:?}: avoided, nothing else");
            accrual.on_result(&only.health, false, now);
            assert!(b.pick(&lazy, None).is_none(), "{kind:?}: dead, nothing else");
        }
    }

    #[test]
    fn aperture_grows_under_load() {
        let config =
            LoadBalancerConfig { kind: LoadBalancerKind::Aperture, min_aperture: Some(1), ..Default::default() };
        let b = Balancer::new(endpoints(&[1.0; 8]), config, Rc::new(Accrual::default()));
        let now = LazyNow::default();
        let mut held = Vec::new();
        for _ in 0..40 {
            held.push(InFlight::new(b.pick(&now, None).unwrap()));
        }
        assert!(b.aperture.get() > 1, "aperture {}", b.aperture.get());
        drop(held);
        for _ in 0..20 {
            let _ = b.pick(&now, None);
        }
        assert_eq!(b.aperture.get(), 1);
    }
}
