//! One request/response exchange with an upstream: take a pooled connection
//! (or connect), send the head, stream the request body while relaying the
//! response, then decide whether each side's connection can be reused.
//!
//! The one retry: a pooled connection can turn out closed by the server after
//! we took it. If that shows before any byte of the response arrives and the
//! request is replay-safe (idempotent, or carries an Idempotency-Key, and its
//! whole body was sent with the head), it is sent once more on a fresh
//! connection, as Go's net/http and nginx do.

use std::cell::Cell;
use std::future::{pending, Future};
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use http1::{BodyFraming, BodyReader, ResponseHeadOptions, Version, HEADER_SLOTS};
use tokio::time::Instant;

use crate::balance::{next_backoff, Endpoint, InFlight, LazyNow, RetryBudget};
use crate::io::{Backend, MaybeTls, Stream, TlsStream};
use crate::table::{Route, RouteTls, ServerSettings};
use crate::telemetry::metrics::{ClientStats, OpenGuard};
use crate::telemetry::metrics::{ServerStats, ServiceStats};

use super::body::{consume, gather_body, pump_body, read_into, write_all, PumpError};
use super::core::{ConcurrencyPermit, Core};
use super::error::{ProxyError, Side};
use super::request::{Next, Prepared, RequestMeta};
use super::rules::{self, Ended, Fate, HeadFacts, HeadPlan};
use super::timed::{
    read_into_within, read_into_within_unless_paused, write_all_within, write_range_then_within, write_range_within,
};
use super::tunnel::{tunnel, TunnelEnd};
use super::upstream::{PoolKey, Upstream};
use crate::pool::SlotPermit;

/// The client connection as the exchange sees it, lent by `conn` for one
/// request.
pub(super) struct Downstream<'a, B: Backend> {
    pub core: &'a Core<B>,
    /// Index of the server (listener) the connection came in on.
    pub server: usize,
    pub settings: &'a ServerSettings,
    /// This server's metrics on this core.
    pub stats: &'a ServerStats,
    /// The client's socket.
    pub io: &'a MaybeTls<B::Stream>,
    /// Its read buffer: pipelined requests, or the rest of a streamed body.
    pub rbuf: &'a mut Vec<u8>,
    /// When the request's head started to be read.
    pub begun: std::time::Instant,
}

/// What an exchange ends with, for `conn` to record (and answer, when the
/// exchange failed before any of a response went out).
pub(super) struct Exchanged {
    pub next: Next,
    /// The status the request is recorded with.
    pub status: u16,
    /// Response body bytes sent (access log).
    pub sent: u64,
    /// Whether the request reached its route's destination: recorded in its
    /// metrics scopes (bound name, logical name) too.
    pub routed: bool,
    /// An error to answer the client with before recording the request.
    pub answer: Option<ProxyError>,
    /// When the exchange ended, and the request's latency (from the start
    /// of its head to then).
    pub at: std::time::Instant,
    pub latency: std::time::Duration,
}

/// How the response relay ended.
enum Relayed {
    Done(Ended),
    /// Switched protocols: both connections now carry raw bytes.
    Tunnel,
}

#[derive(Debug)]
enum RelayError {
    /// The upstream closed (or reset) before sending a single response byte.
    ClosedBeforeResponse(std::io::Error),
    /// A 5XX the classifier allows to retry, with room in the budget: not
    /// sent to the client.
    Retryable(u16),
    Failed(ProxyError),
}

/// What an exchange did, as far as it got. `run` owns it and reads it when
/// the exchange is over: a plain record rather than a return value because
/// the timers in `bounded` may drop the exchange midway, and what it did by
/// then (the status line sent, the endpoint tried) must survive that.
#[derive(Default)]
struct Progress {
    /// The final response head's status (0 until one arrives).
    status: u16,
    /// Response body bytes sent to the client (access log).
    sent: u64,
    /// Some of the response went to the client: an error can no longer be
    /// answered with a response of our own.
    started: bool,
    /// The endpoint that served the request (None until a connection to one
    /// is up): its accrual state and latency learn the outcome.
    endpoint: Option<Rc<Endpoint>>,
    /// When the response was relayed: the clock reading that returned the
    /// upstream connection to the pool also ends the exchange.
    relayed_at: Option<std::time::Instant>,
}

/// The server's side of one request, finagle's dispatch: until the response
/// head arrives it is under the server's `timeoutMs` and holds its
/// `maxConcurrentRequests` permit.
#[derive(Default)]
struct Dispatch {
    head_arrived: Cell<bool>,
    permit: Cell<Option<ConcurrencyPermit>>,
}

impl Dispatch {
    /// The final response head arrived (not a 1xx, not a 5XX about to be
    /// retried): the server timeout stops, the permit is released.
    fn head_arrived(&self) {
        self.head_arrived.set(true);
        drop(self.permit.take());
    }
}

/// Forwards one prepared request and relays its response. The request
/// stays with the caller and the exchange borrows it: moved in, it was
/// copied on each move and its route's `Rc`s cloned to outlive it
/// (docs/engine.md, issue 16).
pub(super) async fn run<B: Backend>(s: &mut Downstream<'_, B>, p: &mut Prepared, sbuf: Vec<u8>) -> Exchanged {
    let dispatch = Dispatch::default();
    if let Some(max) = s.settings.max_concurrent_requests {
        match s.core.admission.admit(s.server, max) {
            Some(permit) => dispatch.permit.set(Some(permit)),
            None => return nack(s, p, sbuf, max).await,
        }
    }
    let mut progress = Progress::default();
    let mut sbuf = sbuf;
    let mut ubuf = s.core.buffers.take();
    let mut wbuf = s.core.buffers.take();
    let total = p.route.policy.total_timeout;
    let server_timeout = s.settings.server_timeout;
    // Each arm builds its own future where it is awaited: the exchange's
    // future is large, and moving it into a local first costs a copy of it
    // on every request.
    let result = if total.is_none() && server_timeout.is_none() {
        exchange(s, p, &mut sbuf, &mut ubuf, &mut wbuf, &mut progress, &dispatch).await
    } else {
        let attempt = exchange(s, p, &mut sbuf, &mut ubuf, &mut wbuf, &mut progress, &dispatch);
        bounded(attempt, total, server_timeout, &dispatch).await
    };
    // A read or write that timed out comes back as I/O; name it.
    let result = result.map_err(ProxyError::classify_stall);
    let (destination, policy) = (&p.route.destination, &p.route.policy);
    s.core.buffers.give(sbuf);
    s.core.buffers.give(ubuf);
    s.core.buffers.give(wbuf);
    // One clock reading per request ends it: the relay's, when it ended
    // with the connection pooled (docs/engine.md, issue 16).
    let now = progress.relayed_at.unwrap_or_else(std::time::Instant::now);
    let latency = now.saturating_duration_since(s.begun);
    if let Some(endpoint) = progress.endpoint.take() {
        let success = match &result {
            Ok(_) => !policy.is_failure(progress.status),
            Err(e) => e.side() != Side::Upstream,
        };
        destination.accrue(&endpoint, success, now);
        destination.balancer.observe(&endpoint, latency, now);
    }
    let mut done = Exchanged {
        next: Next::Close,
        status: progress.status,
        sent: progress.sent,
        routed: true,
        answer: None,
        at: now,
        latency,
    };
    match result {
        Ok(next) => done.next = next,
        Err(e) => {
            s.stats.errors.record(e.label());
            if !progress.started {
                done.status = e.status();
                if e.answerable() {
                    done.answer = Some(e);
                }
            } else {
                // The status line went out: it is what the client saw. When
                // the response broke off on corelink's or the upstream's
                // side, the connection closes with a reset, so a client
                // whose body ends with the close (HTTP/1.0, or a
                // close-delimited response) cannot take the part it got for
                // the whole. A client that failed itself (stopped reading,
                // sent a bad body) gets the FIN it did before: its failure
                // can be noticed in the same turn as the response's last
                // write, and a reset would drop bytes still queued for it.
                tracing::debug!(router = %s.settings.label, error = %e, "response aborted after it started");
                if e.side() != Side::Client {
                    s.io.reset_on_close();
                }
            }
        }
    }
    done
}

/// The exchange under `service.totalTimeoutMs` (all of it) and the server's
/// `timeoutMs` (until the response head arrives): at most two timers per
/// exchange, each only when configured, none per read or write.
async fn bounded(
    exchange: impl Future<Output = Result<Next, ProxyError>>,
    total: Option<Duration>,
    server: Option<Duration>,
    dispatch: &Dispatch,
) -> Result<Next, ProxyError> {
    let now = Instant::now();
    let total_expired = async {
        let Some(limit) = total else { return pending().await };
        tokio::time::sleep_until(now + limit).await;
        ProxyError::TotalTimeout(limit)
    };
    let server_expired = async {
        let Some(limit) = server else { return pending().await };
        tokio::time::sleep_until(now + limit).await;
        if dispatch.head_arrived.get() {
            // The response is streaming: the server timeout is over.
            return pending().await;
        }
        ProxyError::ServerTimeout(limit)
    };
    // The exchange first: a response ready as a timer fires is not lost.
    tokio::select! {
        biased;
        r = exchange => r,
        e = total_expired => Err(e),
        e = server_expired => Err(e),
    }
}

/// Over this core's share of `maxConcurrentRequests`: finagle's nack at
/// once. The connection stays open when nothing of the request is left
/// unread (no body, or all of it arrived with the head), so a client can
/// retry on it as `Retry-After: 0` invites.
async fn nack<B: Backend>(s: &Downstream<'_, B>, p: &Prepared, sbuf: Vec<u8>, max: usize) -> Exchanged {
    s.core.buffers.give(sbuf);
    let e = ProxyError::MaxConcurrentRequests(max);
    tracing::debug!(router = %s.settings.label, error = %e, "request refused");
    s.stats.errors.record(e.label());
    let fate =
        rules::after_local_answer(p.body.is_done(), p.meta.keep_alive, p.meta.version, s.core.shutdown.is_draining());
    let close = fate == Fate::Close;
    let mut out = s.core.buffers.take();
    out.clear();
    http1::encode_nack_response(&mut out, close, p.meta.method == http1::Method::Head);
    let written = write_all_within(s.io, &mut out, s.settings.io_limits.client_write).await;
    s.core.buffers.give(out);
    let next = if close || written.is_err() { Next::Close } else { Next::KeepAlive };
    let at = std::time::Instant::now();
    let latency = at.saturating_duration_since(s.begun);
    Exchanged { next, status: e.status(), sent: 0, routed: false, answer: None, at, latency }
}

/// A connection for the request: pooled, or new. A connect (or TLS
/// handshake) failure counts against that endpoint's accrual and the request
/// is requeued on another endpoint of the destination (nothing was sent, so
/// this is always safe), up to `maxEffort` endpoints and while the client's
/// `requeueBudget` has room. Returns the connection, whether it was pooled,
/// and the endpoint it goes to.
async fn acquire<B: Backend>(
    s: &Downstream<'_, B>,
    route: &Route,
    first: Rc<Endpoint>,
) -> Result<(Upstream<B::Stream>, bool, Rc<Endpoint>), ProxyError> {
    let tls = route.tls();
    let destination = &route.destination;
    let balancer = &destination.balancer;
    let mut endpoint = first;
    let mut tries = 1;
    loop {
        let addr = endpoint.addr;
        let key = PoolKey { router: s.settings.router, addr, tls_identity: tls.map(|t| t.identity.clone()) };
        let slot = loop {
            if let Some(conn) = s.core.upstreams.take_idle(&key, std::time::Instant::now()) {
                route.client_stats().pool_reused.incr();
                return Ok((conn, true, endpoint));
            }
            // Only a bounded pool (`maxSize`) has slots to count.
            let Some(max) = destination.pool.max_size else { break None };
            match slot_for(s, route, &key, max).await? {
                Slot::Connect(slot) => break Some(slot),
                Slot::Released => continue,
            }
        };
        let epoch = s.core.metrics.epoch();
        match connect::<B>(addr, route, s.settings.connect_timeout, epoch, slot).await {
            Ok(conn) => return Ok((conn, false, endpoint)),
            Err(e) if e.is_connection_failure() => {
                let now = std::time::Instant::now();
                destination.accrue(&endpoint, false, now);
                if tries >= balancer.max_effort() {
                    return Err(e);
                }
                if !destination.requeue.try_withdraw(now) {
                    route.client_stats().requeue_budget_exhausted.incr();
                    return Err(e);
                }
                let Some(other) = balancer.pick(&LazyNow::default(), Some(&endpoint)) else { return Err(e) };
                tracing::debug!(%addr, error = %e, next = %other.addr, "connect failed; requeued on another endpoint");
                route.client_stats().requeues.incr();
                endpoint = other;
                tries += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// What `hostConnectionPool.maxSize` allows a request that found no idle
/// connection.
enum Slot {
    /// Open a new connection, holding this slot.
    Connect(SlotPermit),
    /// It waited: a connection came back to the pool or closed; look again.
    Released,
}

/// A slot for a new connection to `key` when fewer than `max` (`maxSize`)
/// are open, or a wait for one among at most `maxWaiters` requests; past
/// that, the request fails at once (502, as linkerd answers finagle's
/// TooManyWaitersException).
async fn slot_for<B: Backend>(
    s: &Downstream<'_, B>,
    route: &Route,
    key: &PoolKey,
    max: usize,
) -> Result<Slot, ProxyError> {
    let policy = route.destination.pool;
    let slots = s.core.upstreams.slots(key);
    if let Some(permit) = slots.try_open(max) {
        return Ok(Slot::Connect(permit));
    }
    let stats = route.client_stats();
    if let Some(max_waiters) = policy.max_waiters.filter(|&m| slots.waiting() >= m) {
        stats.pool_too_many_waiters.incr();
        return Err(ProxyError::TooManyWaiters { addr: key.addr, max_size: max, max_waiters });
    }
    stats.pool_waited.incr();
    let _waiting = GaugeGuard::new(&stats.pool_waiters);
    slots.released().await;
    Ok(Slot::Released)
}

/// Counts one in a gauge while it lives (a request waiting for a slot).
struct GaugeGuard<'a>(&'a crate::telemetry::metrics::Gauge);

impl<'a> GaugeGuard<'a> {
    fn new(gauge: &'a crate::telemetry::metrics::Gauge) -> Self {
        gauge.incr();
        GaugeGuard(gauge)
    }
}

impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        self.0.decr();
    }
}

/// A new connection, counted in the bound name's metrics: TCP within the
/// connect timeout, then (for a TLS destination) a handshake within the same
/// budget again. `slot` is its place under `maxSize`, if bounded.
async fn connect<B: Backend>(
    addr: SocketAddr,
    route: &Route,
    limit: std::time::Duration,
    epoch: u32,
    slot: Option<SlotPermit>,
) -> Result<Upstream<B::Stream>, ProxyError> {
    let stats = route.client_stats();
    let started = std::time::Instant::now();
    let result = connect_inner::<B>(addr, route.tls(), stats, limit).await;
    let now = std::time::Instant::now();
    match result {
        Ok(conn) => {
            stats.connects.incr();
            stats.connect_latency.record(crate::telemetry::metrics::micros(now.duration_since(started)), epoch);
            Ok(Upstream::new(conn, OpenGuard::new(stats.clone()), slot))
        }
        Err(e) => {
            stats.connect_failures.incr();
            Err(e)
        }
    }
}

async fn connect_inner<B: Backend>(
    addr: SocketAddr,
    tls: Option<&RouteTls>,
    stats: &ClientStats,
    limit: std::time::Duration,
) -> Result<MaybeTls<B::Stream>, ProxyError> {
    let tcp = match tokio::time::timeout(limit, B::connect(addr)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(source)) => return Err(ProxyError::Connect { addr, source }),
        Err(_elapsed) => return Err(ProxyError::ConnectTimeout(addr)),
    };
    let Some(tls) = tls else { return Ok(MaybeTls::Plain(tcp)) };
    let name = tls.name.clone().unwrap_or_else(|| rustls::pki_types::ServerName::IpAddress(addr.ip().into()));
    let conn = rustls::client::UnbufferedClientConnection::new(tls.config.clone(), name)
        .map_err(|e| ProxyError::UpstreamTls { addr, reason: e.to_string() })?;
    let stream = Box::new(TlsStream::new(tcp, conn));
    match tokio::time::timeout(limit, stream.handshake()).await {
        Ok(Ok(())) => {
            let info = stream.info();
            stats.tls_handshakes.incr();
            if info.resumed {
                stats.tls_resumed.incr();
            }
            tracing::debug!(
                target: "corelink::tls",
                %addr,
                peer = %tls.name_text,
                verified = tls.validates,
                version = info.version,
                cipher = %info.cipher,
                resumed = info.resumed,
                "TLS connection established"
            );
            Ok(MaybeTls::Tls(stream))
        }
        Ok(Err(e)) => {
            let (label, reason) = match crate::io::tls_error(&e) {
                Some(tls_err) => {
                    (crate::tls::verify::reason_label(tls_err), crate::tls::verify::describe(tls_err, &tls.name_text))
                }
                None if e.kind() == std::io::ErrorKind::UnexpectedEof => (
                    "closed",
                    "the peer closed the connection during the TLS handshake (is it a TLS port?)".to_string(),
                ),
                None => ("io", e.to_string()),
            };
            stats.tls_failures.record(label);
            Err(ProxyError::UpstreamTls { addr, reason })
        }
        Err(_elapsed) => {
            stats.tls_failures.record("timeout");
            Err(ProxyError::TlsHandshakeTimeout(addr))
        }
    }
}

/// Retries of one request are bounded by the budget, and by this.
const MAX_RETRIES: u32 = 8;

/// What one attempt needs besides the request: where it goes, whether a
/// 5XX may be retried (and the budget that says so), and until when the
/// response head may take.
struct Attempt<'a> {
    addr: SocketAddr,
    retry: Option<(&'a RetryBudget, &'a ServiceStats)>,
    deadline: Option<(Instant, std::time::Duration)>,
    dispatch: &'a Dispatch,
    /// The request body is still being sent: the wait for the response
    /// head is not timed meanwhile (see `read_into_within_unless_paused`).
    body_sending: Cell<bool>,
}

#[allow(clippy::too_many_arguments)]
async fn exchange<B: Backend>(
    s: &mut Downstream<'_, B>,
    p: &mut Prepared,
    sbuf: &mut Vec<u8>,
    ubuf: &mut Vec<u8>,
    wbuf: &mut Vec<u8>,
    progress: &mut Progress,
    dispatch: &Dispatch,
) -> Result<Next, ProxyError> {
    let Prepared { meta, route, body } = p;
    let (policy, destination, service_stats) = (&route.policy, &route.destination, &route.service_stats);
    // Every request earns retry room; only whole, retryable requests use it.
    // The request's start time stands in for now: no clock read.
    destination.requeue.deposit(s.begun);
    if let Some(budget) = &policy.budget {
        budget.deposit(s.begun);
    }
    let retry_budget = policy.budget.as_ref().filter(|_| policy.may_retry(meta.method) && body.is_done());
    let (mut upstream, mut reused, mut endpoint) = acquire(s, route, route.endpoint.clone()).await?;
    // In flight on its endpoint (the balancers' load) until the attempt ends.
    let mut in_flight = InFlight::new(endpoint.clone());
    progress.endpoint = Some(endpoint.clone());
    // Only a request whose whole body already sits in `sbuf` can be resent.
    let replayable = rules::replayable(meta.replay_safe, body.is_done());
    let mut retries = 0;
    let mut backoff = std::time::Duration::ZERO;
    let relayed = loop {
        let addr = endpoint.addr;
        let attempt = Attempt {
            addr,
            retry: retry_budget.filter(|_| retries < MAX_RETRIES).map(|b| (b, &**service_stats)),
            deadline: destination.attempt_timeout.map(|limit| (Instant::now() + limit, limit)),
            dispatch,
            body_sending: Cell::new(!body.is_done()),
        };
        ubuf.clear();
        // Untimed: the head and at most one buffer of body go to an idle or
        // new connection, whose socket buffer takes them; a timer here would
        // cost every io_uring request one. What follows is timed.
        let sent = write_all(&upstream.conn, sbuf).await;
        let outcome = match sent {
            Err(e) => Err(RelayError::ClosedBeforeResponse(e)),
            Ok(()) if body.is_done() => relay_response(s, &upstream.conn, &attempt, meta, ubuf, wbuf, progress).await,
            Ok(()) => pump_and_relay(s, &upstream.conn, &attempt, body, meta, ubuf, wbuf, progress).await,
        };
        match outcome {
            Err(RelayError::ClosedBeforeResponse(e)) if reused && replayable => {
                tracing::debug!(%addr, error = %e, "pooled connection was closed; retrying on a new one");
                let epoch = s.core.metrics.epoch();
                // The new connection takes the closed one's maxSize slot.
                let slot = upstream.take_slot();
                drop(upstream);
                upstream = connect::<B>(addr, route, s.settings.connect_timeout, epoch, slot).await?;
                reused = false;
            }
            Err(RelayError::ClosedBeforeResponse(e)) => {
                return Err(if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    ProxyError::UpstreamClosed { addr }
                } else {
                    ProxyError::UpstreamIo { addr, source: e }
                })
            }
            Err(RelayError::Retryable(status)) => {
                // The response was not sent; its connection is dropped (its
                // body was not read). Another endpoint, if there is one.
                service_stats.retries.incr();
                retries += 1;
                destination.accrue(&endpoint, false, std::time::Instant::now());
                if let Some(config) = policy.backoff {
                    backoff = next_backoff(config, backoff, destination.balancer.rng());
                    tokio::time::sleep(backoff).await;
                }
                let next = destination
                    .balancer
                    .pick(&LazyNow::default(), Some(&endpoint))
                    .or_else(|| destination.balancer.pick(&LazyNow::default(), None))
                    .unwrap_or_else(|| endpoint.clone());
                tracing::debug!(%addr, status, next = %next.addr, retries, "retrying a failed response");
                // Its slot is free before the retry asks for one.
                drop(upstream);
                (upstream, reused, endpoint) = acquire(s, route, next).await?;
                in_flight = InFlight::new(endpoint.clone());
                progress.endpoint = Some(endpoint.clone());
            }
            Err(RelayError::Failed(e)) => return Err(e),
            Ok(r) => break r,
        }
    };
    let addr = endpoint.addr;
    let next = match relayed {
        Relayed::Done(ended) => {
            let connections = rules::settle(ended, s.core.shutdown.is_draining());
            if connections.upstream == Fate::Reuse {
                let now = std::time::Instant::now();
                progress.relayed_at = Some(now);
                s.core.upstreams.put_idle(
                    PoolKey { router: s.settings.router, addr, tls_identity: route.tls().map(|t| t.identity.clone()) },
                    upstream,
                    now,
                    destination.pool.limits,
                );
            }
            match connections.downstream {
                Fate::Close => Next::Close,
                Fate::Reuse => Next::KeepAlive,
            }
        }
        Relayed::Tunnel => {
            let client_pending = std::mem::take(s.rbuf);
            let upstream_pending = std::mem::take(ubuf);
            let idle = s.settings.io_limits.upstream_read.limit;
            let end = tunnel(s.io, &upstream.conn, client_pending, upstream_pending, s.core.buffers.size(), idle).await;
            if end == TunnelEnd::Idle {
                tracing::debug!(idle_ms = idle.as_millis() as u64, "a tunnel idle for bodyProgressTimeoutMs closed");
            }
            Next::Close
        }
    };
    drop(in_flight);
    Ok(next)
}

/// The request body is still streaming: pump it up while the response comes
/// down (a server may answer early, or send `100 Continue` first).
#[allow(clippy::too_many_arguments)]
async fn pump_and_relay<B: Backend>(
    s: &mut Downstream<'_, B>,
    upstream: &MaybeTls<B::Stream>,
    attempt: &Attempt<'_>,
    body: &mut BodyReader,
    meta: &RequestMeta,
    ubuf: &mut Vec<u8>,
    wbuf: &mut Vec<u8>,
    progress: &mut Progress,
) -> Result<Relayed, RelayError> {
    let addr = attempt.addr;
    let budget = s.settings.max_request_body;
    let buffer_size = s.core.buffers.size();
    let downstream = s.io;
    let mut rbuf = std::mem::take(s.rbuf);
    let outcome = {
        let limits = (s.settings.io_limits.client_read, s.settings.io_limits.upstream_write);
        let pump = pump_body(downstream, upstream, body, &mut rbuf, buffer_size, budget, limits);
        // The wait for the response head is timed once the body is sent.
        let relay = relay_response(s, upstream, attempt, meta, ubuf, wbuf, progress);
        tokio::pin!(pump, relay);
        let mut pump_finished = false;
        // The body's send upstream failed (not stalled: a write timeout
        // still ends the exchange at once): the relay goes on alone. A
        // server that answers early (a 413, say) and closes with the body
        // unread resets the connection, and the reset that fails the send
        // comes right behind the answer, which the client should get.
        let mut send_failed = None;
        loop {
            tokio::select! {
                // The pump first: when the body's last send and the
                // response's end complete in the same loop turn (the server
                // answers once it has the whole body, so on io_uring both
                // completions are often reaped together), the body counts
                // as sent. Polled the other way round, the response would
                // end first and both connections close for nothing.
                biased;
                r = &mut pump, if !pump_finished && send_failed.is_none() => match r {
                    Ok(trailers_dropped) => {
                        pump_finished = true;
                        attempt.body_sending.set(false);
                        if trailers_dropped > 0 {
                            s.stats.request_trailers_dropped.add(u64::from(trailers_dropped));
                        }
                    }
                    Err(PumpError::ReceiverIo(e)) if super::timed::stalled(&e).is_none() => {
                        attempt.body_sending.set(false);
                        send_failed = Some(e);
                    }
                    Err(e) => break Err(e),
                },
                r = &mut relay => break match (r, send_failed) {
                    // No answer after the failed send: that failure is the error.
                    (r, Some(e)) if !matches!(r, Ok(Relayed::Done(_))) => Err(PumpError::ReceiverIo(e)),
                    // After a failed send the pump never finished, so an
                    // answer closes both connections.
                    (r, _) => Ok((r, pump_finished)),
                },
            }
        }
    };
    *s.rbuf = rbuf;
    match outcome {
        Ok((Ok(Relayed::Done(ended)), pump_finished)) => {
            Ok(Relayed::Done(Ended { request_body_sent: pump_finished, ..ended }))
        }
        Ok((relayed, _)) => relayed,
        Err(PumpError::Framing(e)) => Err(RelayError::Failed(ProxyError::BadRequest(e))),
        Err(PumpError::TooLarge) => Err(RelayError::Failed(ProxyError::RequestTooLarge)),
        Err(PumpError::SenderClosed) => {
            Err(RelayError::Failed(ProxyError::ClientIo(std::io::ErrorKind::UnexpectedEof.into())))
        }
        Err(PumpError::SenderIo(e)) => Err(RelayError::Failed(ProxyError::ClientIo(e))),
        Err(PumpError::ReceiverIo(e)) => Err(RelayError::Failed(ProxyError::UpstreamIo { addr, source: e })),
    }
}

/// What the relay decided from one response head.
struct ResponseMeta {
    status: u16,
    framing: BodyFraming,
    informational: bool,
    upstream_keep_alive: bool,
    plan: HeadPlan,
    /// `clearContext` and an `l5d-err` response: the client gets the head
    /// with an empty body; upstream's body is not read.
    drop_body: bool,
    /// The length of the head at the front of `ubuf` (left there: see
    /// `stream_response_body`).
    head_len: usize,
}

/// Reads the response (relaying any 1xx first) and streams it to the client.
async fn relay_response<B: Backend>(
    s: &Downstream<'_, B>,
    upstream: &MaybeTls<B::Stream>,
    attempt: &Attempt<'_>,
    meta: &RequestMeta,
    ubuf: &mut Vec<u8>,
    wbuf: &mut Vec<u8>,
    progress: &mut Progress,
) -> Result<Relayed, RelayError> {
    let failed = RelayError::Failed;
    let addr = attempt.addr;
    let mut received_any = false;
    // The 1xx heads relayed so far, in bytes: together they may take no
    // more than one head (`max_head_bytes`). Unbounded, an upstream
    // streaming `HTTP/1.1 100\r\n\r\n` forever held the exchange and cost
    // a write to the client per 16 bytes (Go's client stops likewise).
    let mut informational_bytes = 0;
    loop {
        let rsp = loop {
            if !ubuf.is_empty() {
                match encode_response_head(s, meta, ubuf, wbuf) {
                    Ok(Some(rsp)) => break rsp,
                    Ok(None) => {}
                    Err(error) => return Err(failed(ProxyError::UpstreamGarbage { addr, error })),
                }
            }
            // Each read of the head is bounded like a body's: without a
            // requestAttemptTimeoutMs, an upstream that accepted the request
            // and never answers (or answers a byte a minute) would hold the
            // exchange, its buffers and a maxSize slot forever, whether or
            // not the client is still there (nginx: proxy_read_timeout).
            // Not while the request body is still being sent: an upload
            // longer than the limit is not an upstream that is late.
            let size = s.core.buffers.size();
            let read = match attempt.deadline {
                None => {
                    let limit = s.settings.io_limits.upstream_read;
                    read_into_within_unless_paused(upstream, ubuf, size, limit, &attempt.body_sending).await
                }
                Some((deadline, limit)) => {
                    match tokio::time::timeout_at(deadline, read_into(upstream, ubuf, size)).await {
                        Ok(r) => r,
                        Err(_elapsed) => return Err(failed(ProxyError::AttemptTimeout { addr, limit })),
                    }
                }
            };
            match read {
                // Not "closed": a stall is not retried on another connection.
                Err(e) if super::timed::stalled(&e).is_some() => {
                    return Err(failed(ProxyError::UpstreamIo { addr, source: e }))
                }
                Ok(0) if !received_any => {
                    return Err(RelayError::ClosedBeforeResponse(std::io::ErrorKind::UnexpectedEof.into()))
                }
                Ok(0) => return Err(failed(ProxyError::UpstreamClosed { addr })),
                Ok(_) => received_any = true,
                Err(e) if !received_any => return Err(RelayError::ClosedBeforeResponse(e)),
                Err(e) => return Err(failed(ProxyError::UpstreamIo { addr, source: e })),
            }
        };
        if !rsp.informational {
            progress.status = rsp.status;
        }
        // The head stays at the front of `ubuf` only for a body streamed
        // after it (`stream_response_body` writes the encoded head in its
        // place); every other way on reads from the first byte after it.
        if rsp.informational || rsp.framing == BodyFraming::Tunnel || rsp.drop_body {
            consume(ubuf, rsp.head_len);
        }
        let to_client = s.settings.io_limits.client_write;
        if rsp.informational {
            informational_bytes += rsp.head_len;
            if informational_bytes > s.settings.limits.max_head_bytes {
                let error = http1::ParseError::InformationalTooLarge;
                return Err(failed(ProxyError::UpstreamGarbage { addr, error }));
            }
            // 1xx are relayed to HTTP/1.1 clients only (RFC 9110 §15.2).
            if !wbuf.is_empty() {
                write_all_within(s.io, wbuf, to_client).await.map_err(|e| failed(ProxyError::ClientIo(e)))?;
                progress.started = true;
            }
            continue;
        }
        if let Some((budget, stats)) = attempt.retry {
            if rsp.status >= 500 {
                if budget.try_withdraw(std::time::Instant::now()) {
                    return Err(RelayError::Retryable(rsp.status));
                }
                stats.budget_exhausted.incr();
            }
        }
        attempt.dispatch.head_arrived();
        if rsp.framing == BodyFraming::Tunnel {
            write_all_within(s.io, wbuf, to_client).await.map_err(|e| failed(ProxyError::ClientIo(e)))?;
            progress.started = true;
            return Ok(Relayed::Tunnel);
        }
        if rsp.drop_body {
            // Rare (a downstream linkerd's error at an edge): the unread body
            // goes with the upstream connection rather than being drained.
            write_all_within(s.io, wbuf, to_client).await.map_err(|e| failed(ProxyError::ClientIo(e)))?;
            progress.started = true;
            return Ok(Relayed::Done(Ended {
                downstream: rsp.plan.downstream,
                upstream_keep_alive: rsp.upstream_keep_alive,
                body_dropped: true,
                request_body_sent: true,
                bytes_after_response: false,
            }));
        }
        let mut body = rsp.framing.reader();
        let streamed = (rsp.head_len, rsp.plan.dechunk);
        let leftover = stream_response_body(s, upstream, addr, &mut body, ubuf, wbuf, streamed, progress).await?;
        // `pump_and_relay` corrects `request_body_sent` when the body was
        // still streaming.
        return Ok(Relayed::Done(Ended {
            downstream: rsp.plan.downstream,
            upstream_keep_alive: rsp.upstream_keep_alive,
            body_dropped: false,
            request_body_sent: true,
            bytes_after_response: leftover,
        }));
    }
}

/// Parses a response head at the start of `ubuf` and encodes what the client
/// gets into `wbuf`. The head stays in `ubuf` (`ResponseMeta::head_len`).
fn encode_response_head<B: Backend>(
    s: &Downstream<'_, B>,
    meta: &RequestMeta,
    ubuf: &[u8],
    wbuf: &mut Vec<u8>,
) -> Result<Option<ResponseMeta>, http1::ParseError> {
    let mut slots = [MaybeUninit::uninit(); HEADER_SLOTS];
    let Some(head) = http1::parse_response(ubuf, &mut slots, meta.method, meta.upgrade, &s.settings.limits)? else {
        return Ok(None);
    };
    // linkerd's clearContext sends an `l5d-err` response (an error of a
    // linkerd further on) with its l5d-* fields removed and an empty body.
    let clear_context = s.settings.clear_context;
    let drop_body = clear_context
        && !head.informational
        && matches!(head.framing, BodyFraming::Length(_) | BodyFraming::Chunked | BodyFraming::CloseDelimited)
        && head.headers.iter().any(|h| h.name.eq_ignore_ascii_case("l5d-err"));
    let plan = rules::plan_head(HeadFacts {
        request_keep_alive: meta.keep_alive,
        request_version: meta.version,
        framing: head.framing,
        drop_body,
        draining: s.core.shutdown.is_draining(),
    });
    let client_close = plan.downstream == Fate::Close;
    wbuf.clear();
    if !head.informational || meta.version == Version::Http11 {
        let opts = ResponseHeadOptions {
            close: client_close && !head.informational,
            keep_alive_http10: meta.version == Version::Http10 && !client_close,
            dechunk: plan.dechunk,
            clear_context,
            empty_body: drop_body,
        };
        http1::encode_response_head(wbuf, &head, opts);
    }
    let rsp = ResponseMeta {
        status: head.status,
        framing: head.framing,
        informational: head.informational,
        upstream_keep_alive: head.keep_alive,
        plan,
        drop_body,
        head_len: head.head_len,
    };
    Ok(Some(rsp))
}

/// Sends the encoded head in `wbuf` together with the first body bytes, then
/// streams the rest with one buffer. `ubuf` starts with the upstream's head
/// (`head_len` bytes), the body bytes that came with it after. Returns
/// whether the upstream sent bytes past the end of the response (then its
/// connection must not be reused).
///
/// When the encoded head is no longer than the upstream's (the usual case),
/// it is written over the end of the upstream's head, right before the
/// body bytes, and head and body go out in one write from `ubuf`: the first
/// buffer of body is not copied (before: once to the front of `ubuf`, once
/// behind the head in `wbuf`).
#[allow(clippy::too_many_arguments)]
async fn stream_response_body<B: Backend>(
    s: &Downstream<'_, B>,
    upstream: &MaybeTls<B::Stream>,
    addr: SocketAddr,
    body: &mut BodyReader,
    ubuf: &mut Vec<u8>,
    wbuf: &mut Vec<u8>,
    (head_len, dechunk): (usize, bool),
    progress: &mut Progress,
) -> Result<bool, RelayError> {
    let failed = RelayError::Failed;
    let mut budget = s.settings.max_response_body;
    // The first round sends the head in wbuf; later rounds write straight
    // from ubuf, except for a chunked body, copied into wbuf: de-chunked
    // payload, or re-encoded chunks (`BodyReader::forward`).
    let mut head_pending = true;
    let copies = dechunk || body.rewrites();
    // Where the unread bytes in ubuf start: after the head, then 0.
    let mut start = head_len.min(ubuf.len());
    loop {
        if ubuf.len() > start || head_pending {
            let input = &ubuf[start..];
            let step = if dechunk {
                body.advance(input, |data| wbuf.extend_from_slice(data))
            } else {
                body.forward(input, wbuf)
            }
            .map_err(|error| failed(ProxyError::UpstreamGarbage { addr, error }))?;
            if let Some(left) = budget.as_mut() {
                *left = left.checked_sub(step.consumed as u64).ok_or(failed(ProxyError::ResponseTooLarge))?;
            }
            if step.trailers_dropped > 0 {
                s.stats.response_trailers_dropped.add(u64::from(step.trailers_dropped));
            }
            let end = start + step.consumed;
            // More of the body already received in whole buffers (an io_uring
            // bundle; never on epoll or TLS) goes out in the same send.
            let waiting = if copies || step.done { None } else { upstream.take_received_buffer() };
            let (mut gathered, mut ended) = (0, None);
            let limit = s.settings.io_limits.client_write;
            let sent = if copies {
                write_all_within(s.io, wbuf, limit).await
            } else {
                let (out, range) = if head_pending && wbuf.len() <= start {
                    let from = start - wbuf.len();
                    ubuf[from..start].copy_from_slice(wbuf);
                    (&mut *ubuf, from..end)
                } else if head_pending {
                    wbuf.extend_from_slice(&ubuf[start..end]);
                    let len = wbuf.len();
                    (&mut *wbuf, 0..len)
                } else {
                    (&mut *ubuf, start..end)
                };
                match waiting {
                    None => write_range_within(s.io, out, range, limit).await,
                    Some(first) => {
                        let more = gather_body(first, upstream, body, &mut budget).map_err(|e| failed(e.at(addr)))?;
                        (gathered, ended) = (more.consumed, more.ended);
                        write_range_then_within(s.io, out, range, more.bufs, limit).await
                    }
                }
            };
            sent.map_err(|e| failed(ProxyError::ClientIo(e)))?;
            progress.started = true;
            progress.sent += (step.consumed + gathered) as u64;
            head_pending = false;
            wbuf.clear();
            consume(ubuf, end);
            start = 0;
            if step.done {
                return Ok(!ubuf.is_empty());
            }
            if let Some(bytes_after) = ended {
                return Ok(bytes_after);
            }
        }
        match read_into_within(upstream, ubuf, s.core.buffers.size(), s.settings.io_limits.upstream_read).await {
            // A body that ends with the connection ends only with a clean
            // end: over TLS a TCP close without close_notify may be an
            // on-path FIN cutting it short (RFC 9112 §9.8), so the client
            // is cut off too rather than told the body was complete.
            Ok(0) => {
                if body.finish_on_close() && upstream.ended_cleanly() {
                    let _ = s.io.shutdown_write().await;
                    return Ok(false);
                }
                return Err(failed(ProxyError::UpstreamClosed { addr }));
            }
            Ok(_) => {}
            Err(e) => return Err(failed(ProxyError::UpstreamIo { addr, source: e })),
        }
    }
}
