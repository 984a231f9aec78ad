//! Uniform instrumentation, per core.
//!
//! Each worker owns a [`CoreMetrics`]: counters are `Cell`s and latency
//! histograms live in `RefCell`s, touched only by that core. Nothing on the
//! request path takes a lock or writes a cache line another core reads. The
//! admin server asks every core for a [`CoreSnapshot`] over a channel when it
//! is scraped ([`Scrape`]), merges them ([`merge`]) and renders linkerd's
//! flat JSON tree or Prometheus text (`admin`).
//!
//! Scopes follow linkerd 1.x: per server (`rt/<router>/server/<ip>/<port>/`),
//! per client, i.e. bound name (`rt/<router>/client/<id>/`), and per logical
//! service (`rt/<router>/service/<path>/`). Each core hands out `Rc` handles
//! to its scopes. The route cache keeps the client and service handles with
//! each resolved destination, so recording a request costs a few increments
//! and one histogram record per scope, with no lookup.

pub mod snapshot;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

pub use snapshot::{merge, CoreSnapshot, HistogramSnapshot, Merged, Scope, ScopeKind, ScopeSnapshot};

/// Latency histograms cover 1 µs to 60 s with 2 significant digits; longer
/// values are recorded as 60 s.
const MAX_LATENCY_US: u64 = 60_000_000;
/// Latency stats report the last 30–60 s, as linkerd's one-minute windows
/// do: two halves, rotated every 30 s.
const WINDOW_HALF: Duration = Duration::from_secs(30);
/// Client and service scopes per router and core; past this (a flood of
/// distinct Host headers), requests are counted in one overflow scope.
pub const MAX_SCOPES: usize = 1000;
pub const OVERFLOW_SCOPE: &str = "_overflow";

pub type Histogram = hdrhistogram::Histogram<u32>;

fn new_histogram() -> Histogram {
    // The bounds are constants that hdrhistogram accepts.
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 2).unwrap_or_else(|_| unreachable!("valid histogram bounds"))
}

#[derive(Debug, Default)]
pub struct Counter(Cell<u64>);

impl Counter {
    #[inline]
    pub fn incr(&self) {
        self.0.set(self.0.get() + 1);
    }
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.set(self.0.get() + n);
    }
    pub fn get(&self) -> u64 {
        self.0.get()
    }
}

/// A value that goes up and down (open connections).
#[derive(Debug, Default)]
pub struct Gauge(Cell<i64>);

impl Gauge {
    #[inline]
    pub fn incr(&self) {
        self.0.set(self.0.get() + 1);
    }
    #[inline]
    pub fn decr(&self) {
        self.0.set(self.0.get() - 1);
    }
    pub fn get(&self) -> i64 {
        self.0.get()
    }
}

/// A latency distribution over the last 30–60 s, in µs.
#[derive(Debug)]
pub struct Latency {
    current: RefCell<Histogram>,
    previous: RefCell<Histogram>,
    rotated: Cell<Instant>,
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            current: RefCell::new(new_histogram()),
            previous: RefCell::new(new_histogram()),
            rotated: Cell::new(Instant::now()),
        }
    }
}

impl Latency {
    #[inline]
    pub fn record(&self, elapsed: Duration, now: Instant) {
        if now.duration_since(self.rotated.get()) >= WINDOW_HALF {
            self.rotate(now);
        }
        let us = (elapsed.as_micros() as u64).clamp(1, MAX_LATENCY_US);
        self.current.borrow_mut().saturating_record(us);
    }

    #[cold]
    fn rotate(&self, now: Instant) {
        let mut current = self.current.borrow_mut();
        let mut previous = self.previous.borrow_mut();
        std::mem::swap(&mut *current, &mut *previous);
        current.reset();
        // Idle longer than a whole window: the previous half is stale too.
        if now.duration_since(self.rotated.get()) >= 2 * WINDOW_HALF {
            previous.reset();
        }
        self.rotated.set(now);
    }

    fn snapshot(&self, now: Instant) -> Histogram {
        if now.duration_since(self.rotated.get()) >= WINDOW_HALF {
            self.rotate(now);
        }
        let mut h = self.previous.borrow().clone();
        // Same bounds on both: adding cannot fail.
        let _ = h.add(&*self.current.borrow());
        h
    }
}

/// Status codes seen, with counts: a short list (a scope sees a handful).
#[derive(Debug, Default)]
pub struct Statuses(RefCell<Vec<(u16, u64)>>);

impl Statuses {
    #[inline]
    pub fn record(&self, status: u16) {
        let mut v = self.0.borrow_mut();
        match v.iter_mut().find(|(s, _)| *s == status) {
            Some((_, n)) => *n += 1,
            None => v.push((status, 1)),
        }
    }
    fn snapshot(&self) -> Vec<(u16, u64)> {
        self.0.borrow().clone()
    }
}

/// What every scope counts about requests: linkerd's `requests`, `success`,
/// `failures`, `status/<code>`, `request_latency_ms`.
#[derive(Debug, Default)]
pub struct RequestStats {
    pub requests: Counter,
    pub success: Counter,
    pub failures: Counter,
    pub statuses: Statuses,
    pub latency: Latency,
}

impl RequestStats {
    /// A finished request. A 5xx (from upstream or from corelink) is a
    /// failure, as linkerd's default classifier (`nonRetryable5XX`) says.
    #[inline]
    pub fn record(&self, status: u16, elapsed: Duration, now: Instant) {
        self.requests.incr();
        if status >= 500 {
            self.failures.incr();
        } else {
            self.success.incr();
        }
        self.statuses.record(status);
        self.latency.record(elapsed, now);
    }

    fn snapshot_into(&self, s: &mut ScopeSnapshot, now: Instant) {
        s.counters.push(("requests", self.requests.get()));
        s.counters.push(("success", self.success.get()));
        s.counters.push(("failures", self.failures.get()));
        s.statuses = self.statuses.snapshot();
        s.histograms.push(("request_latency_ms", HistogramSnapshot(self.latency.snapshot(now))));
    }
}

/// One server (listener) of a router.
#[derive(Debug, Default)]
pub struct ServerStats {
    pub requests: RequestStats,
    /// Connections accepted (`connects`) and open now (`connections`).
    pub connects: Counter,
    pub connections: Gauge,
    /// Requests that failed before reaching an upstream, by error label.
    pub errors: Errors,
}

/// Counts by a short static label (an error kind, a TLS failure reason).
#[derive(Debug, Default)]
pub struct Errors(RefCell<Vec<(&'static str, u64)>>);

impl Errors {
    pub fn record(&self, label: &'static str) {
        let mut v = self.0.borrow_mut();
        match v.iter_mut().find(|(l, _)| *l == label) {
            Some((_, n)) => *n += 1,
            None => v.push((label, 1)),
        }
    }
    fn snapshot(&self) -> Vec<(&'static str, u64)> {
        self.0.borrow().clone()
    }
}

/// One bound name (linkerd's client), e.g. `/#/io.l5d.fs/serviceB`.
#[derive(Debug, Default)]
pub struct ClientStats {
    pub requests: RequestStats,
    /// New upstream connections (`connects`), and those in use or pooled
    /// now (`connections`).
    pub connects: Counter,
    pub connections: Gauge,
    pub connect_latency: Latency,
    /// Requests sent on a pooled connection (`pool_reused`) and connection
    /// attempts that failed (`connect_failures`).
    pub pool_reused: Counter,
    pub connect_failures: Counter,
    /// TLS handshakes completed, resumed, and failed by reason.
    pub tls_handshakes: Counter,
    pub tls_resumed: Counter,
    pub tls_failures: Errors,
}

/// One logical name (linkerd's service), e.g. `/svc/serviceB`.
#[derive(Debug, Default)]
pub struct ServiceStats {
    pub requests: RequestStats,
}

/// Keeps a connection counted as open in a gauge while it lives.
pub struct OpenGuard(Rc<ClientStats>);

impl OpenGuard {
    pub fn new(stats: Rc<ClientStats>) -> Self {
        stats.connections.incr();
        OpenGuard(stats)
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.connections.decr();
    }
}

impl std::fmt::Debug for OpenGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpenGuard")
    }
}

/// Everything one core records.
#[derive(Debug)]
pub struct CoreMetrics {
    pub core: usize,
    /// By server index (the routing snapshot's order, which a reload cannot
    /// change: new listeners need a restart).
    servers: Vec<(Scope, Rc<ServerStats>)>,
    clients: RefCell<Vec<HashMap<Rc<str>, Rc<ClientStats>>>>,
    services: RefCell<Vec<HashMap<Rc<str>, Rc<ServiceStats>>>>,
    router_labels: Vec<String>,
    /// Requests this core finished (all routers).
    pub requests: Counter,
}

impl CoreMetrics {
    /// `servers`: (router index, router label, `ip/port`) of each server.
    pub fn new(core: usize, routers: &[String], servers: &[(usize, String)]) -> CoreMetrics {
        CoreMetrics {
            core,
            servers: servers
                .iter()
                .map(|(router, addr)| {
                    let scope = Scope { kind: ScopeKind::Server, router: routers[*router].clone(), name: addr.clone() };
                    (scope, Rc::new(ServerStats::default()))
                })
                .collect(),
            clients: RefCell::new(routers.iter().map(|_| HashMap::new()).collect()),
            services: RefCell::new(routers.iter().map(|_| HashMap::new()).collect()),
            router_labels: routers.to_vec(),
            requests: Counter::default(),
        }
    }

    pub fn server(&self, index: usize) -> Rc<ServerStats> {
        self.servers[index].1.clone()
    }

    /// The stats of bound name `id` on `router`, created on first use.
    pub fn client(&self, router: usize, id: &str) -> Rc<ClientStats> {
        scope(&mut self.clients.borrow_mut()[router], id)
    }

    /// The stats of logical name `path` on `router`, created on first use.
    pub fn service(&self, router: usize, path: &str) -> Rc<ServiceStats> {
        scope(&mut self.services.borrow_mut()[router], path)
    }

    /// A copy of everything, for the admin server to merge.
    pub fn snapshot(&self) -> CoreSnapshot {
        let now = Instant::now();
        let mut scopes = Vec::new();
        for (scope, s) in &self.servers {
            let mut snap = ScopeSnapshot::new(scope.clone());
            s.requests.snapshot_into(&mut snap, now);
            snap.counters.push(("connects", s.connects.get()));
            snap.gauges.push(("connections", s.connections.get()));
            snap.labelled.push(("errors", s.errors.snapshot()));
            scopes.push(snap);
        }
        for (router, map) in self.clients.borrow().iter().enumerate() {
            for (id, c) in map {
                let scope =
                    Scope { kind: ScopeKind::Client, router: self.router_labels[router].clone(), name: id.to_string() };
                let mut snap = ScopeSnapshot::new(scope);
                c.requests.snapshot_into(&mut snap, now);
                snap.counters.push(("connects", c.connects.get()));
                snap.counters.push(("connect_failures", c.connect_failures.get()));
                snap.counters.push(("pool_reused", c.pool_reused.get()));
                snap.counters.push(("tls/handshakes", c.tls_handshakes.get()));
                snap.counters.push(("tls/resumed", c.tls_resumed.get()));
                snap.gauges.push(("connections", c.connections.get()));
                snap.histograms.push(("connect_latency_ms", HistogramSnapshot(c.connect_latency.snapshot(now))));
                snap.labelled.push(("tls/failures", c.tls_failures.snapshot()));
                scopes.push(snap);
            }
        }
        for (router, map) in self.services.borrow().iter().enumerate() {
            for (path, s) in map {
                let scope = Scope {
                    kind: ScopeKind::Service,
                    router: self.router_labels[router].clone(),
                    name: path.to_string(),
                };
                let mut snap = ScopeSnapshot::new(scope);
                s.requests.snapshot_into(&mut snap, now);
                scopes.push(snap);
            }
        }
        CoreSnapshot { core: self.core, requests: self.requests.get(), scopes }
    }
}

fn scope<T: Default>(map: &mut HashMap<Rc<str>, Rc<T>>, name: &str) -> Rc<T> {
    if let Some(s) = map.get(name) {
        return s.clone();
    }
    let key: &str = if map.len() >= MAX_SCOPES { OVERFLOW_SCOPE } else { name };
    map.entry(Rc::from(key)).or_default().clone()
}

/// How the admin server reaches the cores: one channel per worker; a scrape
/// sends each a reply channel and waits (bounded) for their snapshots.
#[derive(Clone, Default)]
pub struct Scrape {
    cores: std::sync::Arc<std::sync::Mutex<Vec<tokio::sync::mpsc::UnboundedSender<ScrapeRequest>>>>,
}

pub type ScrapeRequest = tokio::sync::oneshot::Sender<CoreSnapshot>;

impl Scrape {
    /// Registers a core; the worker answers requests on the receiver.
    pub fn register(&self) -> tokio::sync::mpsc::UnboundedReceiver<ScrapeRequest> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        if let Ok(mut cores) = self.cores.lock() {
            cores.push(tx);
        }
        rx
    }

    /// Every core's snapshot (cores that do not answer within `limit`, e.g.
    /// exiting, are left out).
    pub async fn collect(&self, limit: Duration) -> Vec<CoreSnapshot> {
        let senders: Vec<_> = match self.cores.lock() {
            Ok(c) => c.clone(),
            Err(_) => return Vec::new(),
        };
        let mut waiting = Vec::new();
        for tx in senders {
            let (reply, rx) = tokio::sync::oneshot::channel();
            if tx.send(reply).is_ok() {
                waiting.push(rx);
            }
        }
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + limit;
        for rx in waiting {
            if let Ok(Ok(s)) = tokio::time::timeout_at(deadline, rx).await {
                out.push(s);
            }
        }
        out.sort_by_key(|s| s.core);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_stats_classify_and_window() {
        let s = RequestStats::default();
        let now = Instant::now();
        s.record(200, Duration::from_millis(3), now);
        s.record(503, Duration::from_millis(30), now);
        s.record(200, Duration::from_micros(0), now);
        assert_eq!((s.requests.get(), s.success.get(), s.failures.get()), (3, 2, 1));
        assert_eq!(s.statuses.snapshot(), vec![(200, 2), (503, 1)]);
        let h = s.latency.snapshot(now);
        assert_eq!(h.len(), 3);
        assert!(h.value_at_quantile(0.5) >= 2_900 && h.value_at_quantile(0.5) <= 3_100);
        // 30 s later the window rotates; 60 s later it is empty.
        assert_eq!(s.latency.snapshot(now + WINDOW_HALF).len(), 3);
        assert_eq!(s.latency.snapshot(now + 3 * WINDOW_HALF).len(), 0);
    }

    #[test]
    fn scopes_are_bounded() {
        let m = CoreMetrics::new(0, &["r".to_string()], &[]);
        for i in 0..MAX_SCOPES + 10 {
            m.service(0, &format!("/svc/{i}")).requests.requests.incr();
        }
        let snap = m.snapshot();
        assert_eq!(snap.scopes.len(), MAX_SCOPES + 1);
        let overflow = snap.scopes.iter().find(|s| s.scope.name == OVERFLOW_SCOPE).unwrap();
        assert_eq!(overflow.counter("requests"), Some(10));
    }
}
