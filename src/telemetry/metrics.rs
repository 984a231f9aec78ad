//! Uniform instrumentation, per core.
//!
//! Each worker owns a [`CoreMetrics`]: counters are `Cell`s and latency
//! histograms live in `RefCell`s, touched only by that core. Nothing on the
//! request path takes a lock or writes a cache line another core reads. The
//! admin server asks every core for a [`CoreSnapshot`] over a channel when it
//! is scraped ([`Scrape`]), merges them ([`merge`]) and renders linkerd's
//! flat JSON tree or Prometheus text ([`super::prometheus`], `admin`).
//!
//! Scopes follow linkerd 1.x: per server (`rt/<router>/server/<ip>/<port>/`),
//! per client, i.e. bound name (`rt/<router>/client/<id>/`), and per logical
//! service (`rt/<router>/service/<path>/`). Each core hands out `Rc` handles
//! to its scopes. The route cache keeps the client and service handles with
//! each resolved destination, so recording a request costs a few increments
//! and one histogram record per scope, with no lookup.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

pub use super::snapshot::{merge, CoreSnapshot, HistogramSnapshot, Merged, Scope, ScopeKind, ScopeSnapshot};

/// Latency histograms cover 1 µs to 60 s with 2 significant digits; longer
/// values are recorded as 60 s.
const MAX_LATENCY_US: u64 = 60_000_000;
/// Latency stats report the last 30–60 s, as linkerd's one-minute windows
/// do: two halves, rotated every 30 s.
pub const WINDOW_HALF: Duration = Duration::from_secs(30);
/// Client and service scopes per router and core; past this (a flood of
/// distinct Host headers), requests are counted in one overflow scope.
pub const MAX_SCOPES: usize = 1000;
/// Longest name given a scope of its own. Names are peer-controlled (a Host
/// header of up to 12 KiB): 1,000 of that length made every `/metrics`
/// scrape hundreds of megabytes. Longer names count in the overflow scope.
pub const MAX_SCOPE_NAME_BYTES: usize = 512;
pub const OVERFLOW_SCOPE: &str = "_overflow";

pub type Histogram = hdrhistogram::Histogram<u32>;

/// Whether requests are recorded (the `metrics` feature, on by default).
pub const ENABLED: bool = cfg!(feature = "metrics");

pub(super) fn new_histogram() -> Histogram {
    // The bounds are constants that hdrhistogram accepts.
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 2).unwrap_or_else(|_| unreachable!("valid histogram bounds"))
}

#[derive(Debug, Default)]
pub struct Counter(Cell<u64>);

impl Counter {
    #[inline]
    pub fn incr(&self) {
        if ENABLED {
            self.0.set(self.0.get() + 1);
        }
    }
    #[inline]
    pub fn add(&self, n: u64) {
        if ENABLED {
            self.0.set(self.0.get() + n);
        }
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
        if ENABLED {
            self.0.set(self.0.get() + 1);
        }
    }
    #[inline]
    pub fn decr(&self) {
        if ENABLED {
            self.0.set(self.0.get() - 1);
        }
    }
    pub fn get(&self) -> i64 {
        self.0.get()
    }
}

/// Log-linear buckets: exact below 256 µs, then 128 per power of two (under
/// 0.8 % relative error), up to [`MAX_LATENCY_US`]. Recording is a
/// leading-zeros count, two shifts and an add, cheaper than an HdrHistogram
/// record; the buckets become an HdrHistogram when scraped.
#[derive(Debug, Clone)]
struct Buckets {
    counts: Box<[u32]>,
    /// Bit `b` set: block `b` (buckets `64 b .. 64 b + 63`) may hold counts.
    /// A scrape visits only those blocks instead of reading all ~10 KiB.
    blocks: u64,
}

const BUCKETS: usize = bucket_of(MAX_LATENCY_US) + 1;
const BLOCK: usize = 64;
const _: () = assert!(BUCKETS <= BLOCK * 64, "one bit per block must cover every bucket");

#[inline]
const fn bucket_of(us: u64) -> usize {
    if us < 256 {
        us as usize
    } else {
        let shift = 63 - us.leading_zeros() - 7;
        256 + (shift as usize - 1) * 128 + ((us >> shift) as usize - 128)
    }
}

/// The lowest value and width of bucket `i`.
pub(super) fn bucket_range(i: usize) -> (u64, u64) {
    if i < 256 {
        (i as u64, 1)
    } else {
        let shift = (i - 256) / 128 + 1;
        ((((i - 256) % 128 + 128) as u64) << shift, 1u64 << shift)
    }
}

impl Buckets {
    fn new() -> Self {
        Buckets { counts: vec![0; BUCKETS].into_boxed_slice(), blocks: 0 }
    }

    #[inline]
    fn record(&mut self, i: usize) {
        self.counts[i] = self.counts[i].saturating_add(1);
        self.blocks |= 1 << (i / BLOCK);
    }

    fn clear(&mut self) {
        for range in touched(self.blocks) {
            self.counts[range].fill(0);
        }
        self.blocks = 0;
    }
}

/// The bucket ranges of the blocks set in `blocks`, in order.
fn touched(mut blocks: u64) -> impl Iterator<Item = std::ops::Range<usize>> {
    std::iter::from_fn(move || {
        if blocks == 0 {
            return None;
        }
        let block = blocks.trailing_zeros() as usize;
        blocks &= blocks - 1;
        Some(block * BLOCK..((block + 1) * BLOCK).min(BUCKETS))
    })
}

/// The non-empty buckets of two halves, summed: what a core hands the admin
/// (the touched blocks only; the admin thread builds the HdrHistogram).
fn sparse(a: &Buckets, b: &Buckets) -> Vec<(u32, u64)> {
    let mut out = Vec::new();
    for range in touched(a.blocks | b.blocks) {
        for (i, (&x, &y)) in a.counts[range.clone()].iter().zip(&b.counts[range.clone()]).enumerate() {
            if (x | y) != 0 {
                out.push(((range.start + i) as u32, u64::from(x) + u64::from(y)));
            }
        }
    }
    out
}

/// A latency distribution over the last 30–60 s, in µs: two halves, the
/// current one and the one before. The core's sweeper advances the window
/// epoch every 30 s ([`CoreMetrics::advance_window`]); a histogram notices a
/// new epoch on its next record or snapshot and rotates, so recording costs
/// one integer compare for the window.
#[derive(Debug)]
pub struct Latency {
    current: RefCell<Buckets>,
    previous: RefCell<Buckets>,
    epoch: Cell<u32>,
}

impl Default for Latency {
    fn default() -> Self {
        Latency { current: RefCell::new(Buckets::new()), previous: RefCell::new(Buckets::new()), epoch: Cell::new(0) }
    }
}

impl Latency {
    #[inline]
    pub fn record(&self, us: u64, epoch: u32) {
        self.record_bucket(latency_bucket(us), epoch);
    }

    /// Records a latency whose bucket is `bucket` (see [`latency_bucket`]).
    #[inline]
    fn record_bucket(&self, bucket: usize, epoch: u32) {
        if !ENABLED {
            return;
        }
        if epoch != self.epoch.get() {
            self.rotate(epoch);
        }
        self.current.borrow_mut().record(bucket);
    }

    #[cold]
    fn rotate(&self, epoch: u32) {
        let mut current = self.current.borrow_mut();
        let mut previous = self.previous.borrow_mut();
        if epoch.wrapping_sub(self.epoch.get()) == 1 {
            std::mem::swap(&mut *current, &mut *previous);
        } else {
            // Idle a whole window or more: the previous half is stale too.
            previous.clear();
        }
        current.clear();
        self.epoch.set(epoch);
    }

    fn snapshot(&self, epoch: u32) -> HistogramSnapshot {
        if epoch != self.epoch.get() {
            self.rotate(epoch);
        }
        HistogramSnapshot::from_buckets(sparse(&self.previous.borrow(), &self.current.borrow()))
    }
}

/// The bucket a latency of `us` microseconds is counted in.
#[inline]
fn latency_bucket(us: u64) -> usize {
    bucket_of(us.min(MAX_LATENCY_US))
}

/// Microseconds in a duration, without 128-bit arithmetic.
#[inline]
pub fn micros(d: Duration) -> u64 {
    d.as_secs().saturating_mul(1_000_000) + u64::from(d.subsec_micros())
}

/// Status codes seen, with counts: a short list (a scope sees a handful).
#[derive(Debug, Default)]
pub struct Statuses(RefCell<Vec<(u16, u64)>>);

impl Statuses {
    #[inline]
    pub fn record(&self, status: u16) {
        if !ENABLED {
            return;
        }
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
/// `failures`, `status/<code>`, `request_latency_ms`. (`requests` is
/// `success + failures`, not counted twice.)
#[derive(Debug, Default)]
pub struct RequestStats {
    pub success: Counter,
    pub failures: Counter,
    pub statuses: Statuses,
    pub latency: Latency,
}

/// A finished request as each scope that counts it (server, client,
/// service) records it: its outcome and latency bucket worked out once, not
/// once per scope (docs/engine.md, issue 16).
#[derive(Debug, Clone, Copy)]
pub struct Finished {
    status: u16,
    /// A 5xx (from upstream or from corelink) is a failure, as linkerd's
    /// default classifier (`nonRetryable5XX`) says.
    failure: bool,
    bucket: usize,
    epoch: u32,
}

impl Finished {
    #[inline]
    pub fn new(status: u16, us: u64, epoch: u32) -> Finished {
        Finished { status, failure: status >= 500, bucket: latency_bucket(us), epoch }
    }
}

impl RequestStats {
    /// A finished request (one scope; see [`Finished`] for several).
    #[inline]
    pub fn record(&self, status: u16, us: u64, epoch: u32) {
        self.add(Finished::new(status, us, epoch));
    }

    // Always inlined: `Session::finish` adds each request to three scopes,
    // and as a call each paid its register saves and restores (~11
    // instructions, a third of what it does; docs/engine.md, issue 16).
    #[inline(always)]
    pub fn add(&self, request: Finished) {
        if !ENABLED {
            return;
        }
        if request.failure {
            self.failures.incr();
        } else {
            self.success.incr();
        }
        self.statuses.record(request.status);
        self.latency.record_bucket(request.bucket, request.epoch);
    }

    pub fn requests(&self) -> u64 {
        self.success.get() + self.failures.get()
    }

    fn snapshot_into(&self, s: &mut ScopeSnapshot, epoch: u32) {
        s.counters.push(("requests", self.requests()));
        s.counters.push(("success", self.success.get()));
        s.counters.push(("failures", self.failures.get()));
        s.statuses = self.statuses.snapshot();
        s.histograms.push(("request_latency_ms", self.latency.snapshot(epoch)));
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
    /// TLS ClientHellos refused on this plaintext server (a client set up
    /// for TLS pointed at the wrong port).
    pub tls_on_plaintext: Counter,
    /// Trailer fields dropped because RFC 9110 §6.5.1 forbids them there
    /// (`Content-Length`, `Host`, …): in request bodies from clients, and
    /// in response bodies relayed to them.
    pub request_trailers_dropped: Counter,
    pub response_trailers_dropped: Counter,
    /// Server TLS handshakes: completed, of which resumed, failed, plaintext
    /// HTTP clients refused, and clients that never finished.
    pub tls: TlsServerStats,
    /// Whether this server terminates TLS (its `tls/*` counters are shown).
    terminates_tls: bool,
}

#[derive(Debug, Default)]
pub struct TlsServerStats {
    pub handshakes: Counter,
    pub resumed: Counter,
    pub failures: Counter,
    pub plaintext_refused: Counter,
    pub timeouts: Counter,
}

/// Counts by a short static label (an error kind, a TLS failure reason).
#[derive(Debug, Default)]
pub struct Errors(RefCell<Vec<(&'static str, u64)>>);

impl Errors {
    pub fn record(&self, label: &'static str) {
        if !ENABLED {
            return;
        }
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
    /// `hostConnectionPool`: requests that waited for a connection
    /// (`pool_num_waited`), waiting now (`pool_waiters`), refused past
    /// `maxWaiters` (`pool_num_too_many_waiters`); finagle's names.
    pub pool_waited: Counter,
    pub pool_waiters: Gauge,
    pub pool_too_many_waiters: Counter,
    /// Connect failures moved to another endpoint (`retries/requeues`), and
    /// those the `requeueBudget` refused (`retries/budget_exhausted`).
    pub requeues: Counter,
    pub requeue_budget_exhausted: Counter,
    /// Failure accrual: endpoints marked dead (`failure_accrual/removals`),
    /// brought back by a successful probe (`failure_accrual/revivals`), and
    /// probes sent (`failure_accrual/probes`).
    pub accrual_removals: Counter,
    pub accrual_revivals: Counter,
    pub accrual_probes: Counter,
}

/// One logical name (linkerd's service), e.g. `/svc/serviceB`.
#[derive(Debug, Default)]
pub struct ServiceStats {
    pub requests: RequestStats,
    /// Responses retried, and retries the budget refused.
    pub retries: Counter,
    pub budget_exhausted: Counter,
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
    /// The latency window's epoch (see [`Latency`]).
    epoch: Cell<u32>,
}

impl CoreMetrics {
    /// `servers`: (router index, `ip/port`, terminates TLS) of each server.
    pub fn new(core: usize, routers: &[String], servers: &[(usize, String, bool)]) -> CoreMetrics {
        CoreMetrics {
            core,
            servers: servers
                .iter()
                .map(|(router, addr, tls)| {
                    let scope = Scope { kind: ScopeKind::Server, router: routers[*router].clone(), name: addr.clone() };
                    (scope, Rc::new(ServerStats { terminates_tls: *tls, ..Default::default() }))
                })
                .collect(),
            clients: RefCell::new(routers.iter().map(|_| HashMap::new()).collect()),
            services: RefCell::new(routers.iter().map(|_| HashMap::new()).collect()),
            router_labels: routers.to_vec(),
            epoch: Cell::new(0),
        }
    }

    /// The current latency window epoch, read once per request.
    #[inline]
    pub fn epoch(&self) -> u32 {
        self.epoch.get()
    }

    /// Starts a new half of the latency windows (every 30 s, from the
    /// core's sweeper).
    pub fn advance_window(&self) {
        self.epoch.set(self.epoch.get().wrapping_add(1));
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
        let now = self.epoch.get();
        let mut scopes = Vec::new();
        for (scope, s) in &self.servers {
            let mut snap = ScopeSnapshot::new(scope.clone());
            s.requests.snapshot_into(&mut snap, now);
            snap.counters.push(("connects", s.connects.get()));
            snap.gauges.push(("connections", s.connections.get()));
            snap.labelled.push(("errors", s.errors.snapshot()));
            snap.counters.push(("tls_on_plaintext", s.tls_on_plaintext.get()));
            snap.counters.push(("request_trailers_dropped", s.request_trailers_dropped.get()));
            snap.counters.push(("response_trailers_dropped", s.response_trailers_dropped.get()));
            if s.terminates_tls {
                let t = &s.tls;
                snap.counters.push(("tls/handshakes", t.handshakes.get()));
                snap.counters.push(("tls/resumed", t.resumed.get()));
                snap.counters.push(("tls/handshake_failures", t.failures.get()));
                snap.counters.push(("tls/plaintext_refused", t.plaintext_refused.get()));
                snap.counters.push(("tls/handshake_timeouts", t.timeouts.get()));
            }
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
                snap.counters.push(("pool_num_waited", c.pool_waited.get()));
                snap.gauges.push(("pool_waiters", c.pool_waiters.get()));
                snap.counters.push(("pool_num_too_many_waiters", c.pool_too_many_waiters.get()));
                snap.counters.push(("retries/requeues", c.requeues.get()));
                snap.counters.push(("retries/budget_exhausted", c.requeue_budget_exhausted.get()));
                snap.counters.push(("failure_accrual/removals", c.accrual_removals.get()));
                snap.counters.push(("failure_accrual/revivals", c.accrual_revivals.get()));
                snap.counters.push(("failure_accrual/probes", c.accrual_probes.get()));
                snap.counters.push(("tls/handshakes", c.tls_handshakes.get()));
                snap.counters.push(("tls/resumed", c.tls_resumed.get()));
                snap.gauges.push(("connections", c.connections.get()));
                snap.histograms.push(("connect_latency_ms", c.connect_latency.snapshot(now)));
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
                snap.counters.push(("retries/total", s.retries.get()));
                snap.counters.push(("retries/budget_exhausted", s.budget_exhausted.get()));
                scopes.push(snap);
            }
        }
        let requests = self.servers.iter().map(|(_, s)| s.requests.requests()).sum();
        CoreSnapshot { core: self.core, requests, scopes }
    }
}

fn scope<T: Default>(map: &mut HashMap<Rc<str>, Rc<T>>, name: &str) -> Rc<T> {
    if let Some(s) = map.get(name) {
        return s.clone();
    }
    let key: &str = if map.len() >= MAX_SCOPES || name.len() > MAX_SCOPE_NAME_BYTES { OVERFLOW_SCOPE } else { name };
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
        s.record(200, 3_000, 0);
        s.record(503, 30_000, 0);
        s.record(200, 0, 0);
        assert_eq!((s.requests(), s.success.get(), s.failures.get()), (3, 2, 1));
        assert_eq!(s.statuses.snapshot(), vec![(200, 2), (503, 1)]);
        let h = s.latency.snapshot(0).histogram();
        assert_eq!(h.len(), 3);
        assert!(h.value_at_quantile(0.5) >= 2_900 && h.value_at_quantile(0.5) <= 3_100);
        // One half later the window still holds them; two halves later not.
        assert_eq!(s.latency.snapshot(1).histogram().len(), 3);
        s.record(200, 10, 1);
        assert_eq!(s.latency.snapshot(1).histogram().len(), 4);
        assert_eq!(s.latency.snapshot(3).histogram().len(), 0);
    }

    #[test]
    fn buckets_cover_the_range_contiguously() {
        let mut next = 0;
        for i in 0..BUCKETS {
            let (low, width) = bucket_range(i);
            assert_eq!(low, next, "bucket {i}");
            assert_eq!(bucket_of(low), i);
            assert_eq!(bucket_of(low + width - 1), i);
            next = low + width;
        }
        assert!(next > MAX_LATENCY_US);
        // Relative width stays under 1 %.
        for v in [300u64, 5_000, 123_456, 59_999_999] {
            let (_, width) = bucket_range(bucket_of(v));
            assert!((width as f64) / (v as f64) < 0.01, "{v}");
        }
    }

    #[test]
    fn micros_match_std() {
        for d in [Duration::ZERO, Duration::from_nanos(1_999), Duration::from_millis(1_500), Duration::from_secs(90)] {
            assert_eq!(micros(d), d.as_micros() as u64);
        }
    }

    #[test]
    fn scopes_are_bounded() {
        let m = CoreMetrics::new(0, &["r".to_string()], &[]);
        for i in 0..MAX_SCOPES + 10 {
            m.service(0, &format!("/svc/{i}")).requests.success.incr();
        }
        let snap = m.snapshot();
        assert_eq!(snap.scopes.len(), MAX_SCOPES + 1);
        let overflow = snap.scopes.iter().find(|s| s.scope.name == OVERFLOW_SCOPE).unwrap();
        assert_eq!(overflow.counter("requests"), Some(10));
    }

    #[test]
    fn long_names_count_in_the_overflow_scope() {
        let m = CoreMetrics::new(0, &["r".to_string()], &[]);
        let long = format!("/svc/{}", "x".repeat(MAX_SCOPE_NAME_BYTES));
        m.service(0, &long).requests.success.incr();
        m.service(0, "/svc/short").requests.success.incr();
        let snap = m.snapshot();
        assert!(snap.scopes.iter().all(|s| s.scope.name.len() <= MAX_SCOPE_NAME_BYTES), "no scope for the long name");
        let overflow = snap.scopes.iter().find(|s| s.scope.name == OVERFLOW_SCOPE).unwrap();
        assert_eq!(overflow.counter("requests"), Some(1));
    }
}
