//! The client side of one connection: read a request head (with the slowloris
//! and idle timeouts), route it, run the exchange, and loop while keep-alive
//! holds. Pipelined requests wait in the read buffer and are answered in order.

use std::future::Future;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use http1::{BodyFraming, Limits, Version, HEADER_SLOTS};
use tokio::time::Instant;

use crate::io::{Backend, MaybeTls, Stream, TlsStream};
use crate::table::{LastRoute, ServerSettings};
use crate::telemetry::metrics::{ClientStats, Finished, ServerStats, ServiceStats, TlsServerStats};
use crate::tls::ServerTls;

use super::body::{consume, read_into, write_all};
use super::core::Core;
use super::error::ProxyError;
use super::exchange::{self, Downstream};
use super::parked;
use super::request::{Next, Prepared, RequestMeta};
use super::watchdog;

/// Counts the connection as open on its core while it lives (also while
/// parked), so draining knows when the core is done, and in its server's
/// `connections` gauge.
struct OpenConnection<B: Backend> {
    core: Rc<Core<B>>,
    stats: Rc<ServerStats>,
}

impl<B: Backend> OpenConnection<B> {
    fn new(core: Rc<Core<B>>, server: usize) -> Self {
        core.shutdown.connection_opened();
        let stats = core.metrics.server(server);
        stats.connects.incr();
        stats.connections.incr();
        OpenConnection { core, stats }
    }
}

impl<B: Backend> Drop for OpenConnection<B> {
    fn drop(&mut self) {
        self.core.shutdown.connection_closed();
        self.stats.connections.decr();
    }
}

/// How long a connection may sit idle in its (large) active task before it
/// is parked without one (`ParkedConnection`, ~100 bytes, in
/// `Core::parked`). It holds no buffer either way (see `wait_for_request`);
/// under load the next request arrives within microseconds and nothing is
/// spawned, while thousands of idle keep-alive connections cost little
/// memory (docs/io-backends.md has the measurements).
///
/// The hot wait is timed by the core's watchdog (`proxy::watchdog`, a tick
/// every 100 ms), not a tokio timer: under a closed-loop client every
/// request waits here, and a timer registered and removed per request cost
/// 553 (epoll) and 633 (io_uring) instructions of ~14,000 (docs/engine.md,
/// issue 16). A connection therefore parks between 1.0 and 1.2 s into its
/// idle time (later only if the core's event loop falls behind its ticks);
/// its idle timeout is still counted exactly, from when it went idle.
const HOT_IDLE: Duration = Duration::from_secs(1);

/// Serves one accepted client connection until it closes: the TLS handshake
/// first when the server terminates TLS.
pub async fn serve_connection<B: Backend>(
    core: Rc<Core<B>>,
    server: usize,
    downstream: B::Stream,
    peer: std::net::SocketAddr,
) {
    // The first request head's time counts from here, the TLS handshake
    // included: one `headerReadTimeoutMs` in all, as nginx's
    // `client_header_timeout` counts from the accept.
    let accepted = std::time::Instant::now();
    let open = OpenConnection::new(core, server);
    let settings = open.core.routes.server(server);
    let downstream = match &settings.tls {
        None => MaybeTls::Plain(downstream),
        Some(tls) => match accept_tls(&settings, tls, &open.stats.tls, downstream).await {
            Some(stream) => MaybeTls::Tls(stream),
            None => return,
        },
    };
    drop(settings);
    run_active(open, server, downstream, peer.ip(), Some(accepted)).await;
}

/// The server side of a TLS handshake, bounded by the header read timeout
/// (a client that connects and sends nothing is a slowloris all the same).
/// Failures close the connection and are counted; a plaintext HTTP client
/// gets a plaintext 400 first, as nginx answers one.
async fn accept_tls<S: Stream>(
    settings: &ServerSettings,
    tls: &ServerTls,
    counters: &TlsServerStats,
    io: S,
) -> Option<Box<TlsStream<S>>> {
    let conn = match rustls::server::UnbufferedServerConnection::new(tls.config()) {
        Ok(conn) => conn,
        Err(e) => {
            tracing::warn!(router = %settings.label, error = %e, "cannot start a TLS session");
            return None;
        }
    };
    let stream = Box::new(TlsStream::new(io, conn));
    match tokio::time::timeout(settings.header_read_timeout, stream.handshake()).await {
        Ok(Ok(())) => {
            counters.handshakes.incr();
            if stream.resumed() {
                counters.resumed.incr();
            }
            Some(stream)
        }
        Ok(Err(e)) if stream.peer_spoke_plaintext() => {
            counters.plaintext_refused.incr();
            tracing::debug!(router = %settings.label, error = %e, "plaintext HTTP on a TLS port");
            let answer = async {
                stream.write_plaintext(plaintext_on_tls_port()).await?;
                Stream::flush(&*stream).await
            };
            let _ = tokio::time::timeout(Duration::from_secs(1), answer).await;
            None
        }
        Ok(Err(e)) => {
            counters.failures.incr();
            tracing::debug!(router = %settings.label, error = %e, "TLS handshake failed");
            None
        }
        Err(_elapsed) => {
            counters.timeouts.incr();
            None
        }
    }
}

/// The answer to a plaintext HTTP client on a TLS port, sent in plaintext
/// before the connection is closed, the way nginx answers one.
fn plaintext_on_tls_port() -> Vec<u8> {
    let mut out = Vec::new();
    http1::encode_error_response(&mut out, 400, "The plain HTTP request was sent to a TLS port", true);
    out
}

/// The active phase: requests are read, routed and exchanged until the
/// connection closes or goes idle for longer than [`HOT_IDLE`]. `accepted`:
/// when a new connection was accepted (None: a parked one resumed).
async fn run_active<B: Backend>(
    open: OpenConnection<B>,
    server: usize,
    downstream: MaybeTls<B::Stream>,
    peer: std::net::IpAddr,
    accepted: Option<std::time::Instant>,
) {
    let core = open.core.clone();
    let first = accepted.is_some();
    let opened = accepted.unwrap_or_else(std::time::Instant::now);
    let mut session = Session {
        core: &core,
        server,
        settings: core.routes.server(server),
        downstream: &downstream,
        rbuf: Vec::new(),
        stats: open.stats.clone(),
        begun: opened,
        idle_since: opened,
        peer,
        pending_log: Vec::new(),
        resolving: None,
        last_route: LastRoute::default(),
    };
    let mut first = first;
    let parked = loop {
        match session.next_request(first).await {
            Next::KeepAlive => first = false,
            Next::Close => break None,
            Next::Park(remaining) => break Some(remaining),
        }
    };
    // The last response reaches the client before the connection closes or
    // parks, within the client write timeout as every write: on io_uring a
    // small write returns before its send completes, and dropping the
    // stream (a close, a parked connection's idle timeout) cancels a send
    // the socket has not taken. One that cannot be flushed is not parked,
    // and counts as the failed write it is (on epoll the write itself
    // failed and the exchange counted it).
    let flushed = match super::timed::flush_within(&downstream, session.settings.io_limits.client_write).await {
        Ok(()) => true,
        Err(e) => {
            let e = ProxyError::ClientIo(e).classify_stall();
            session.stats.errors.record(e.label());
            tracing::debug!(error = %e, "the last response did not reach the client");
            false
        }
    };
    let parked = parked.filter(|_| flushed);
    let rbuf = std::mem::take(&mut session.rbuf);
    core.buffers.give(rbuf);
    drop(session);
    if let Some(remaining) = parked {
        // Still waiting for its first request: its head stays timed from
        // the accept when it resumes.
        let accepted = first.then(|| AcceptedAt::of(opened));
        park(ParkedConnection { open, server: server as u32, downstream, peer, accepted }, remaining);
    }
}

/// An idle keep-alive connection in `Core::parked`: its stream and what
/// resuming it needs, and nothing else (no task, no buffer, no timer).
pub struct ParkedConnection<B: Backend> {
    open: OpenConnection<B>,
    server: u32,
    downstream: MaybeTls<B::Stream>,
    peer: std::net::IpAddr,
    /// When it was accepted, while it has sent no request yet.
    accepted: Option<AcceptedAt>,
}

/// When a parked connection was accepted, in four bytes rather than an
/// `Instant`'s sixteen (a parked connection is all an idle one costs): the
/// milliseconds since a process-wide epoch, wrapping. Read back while the
/// connection waits for its first request, which is at most
/// `headerReadTimeoutMs` later, so the wrap (every 49 days) does not matter.
#[derive(Clone, Copy)]
struct AcceptedAt(u32);

impl AcceptedAt {
    /// Set at first use, an hour back, so that a connection accepted just
    /// before it is after it.
    fn epoch() -> std::time::Instant {
        static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        *EPOCH.get_or_init(|| {
            let now = std::time::Instant::now();
            now.checked_sub(Duration::from_secs(3600)).unwrap_or(now)
        })
    }

    fn millis(at: std::time::Instant) -> u32 {
        at.saturating_duration_since(Self::epoch()).as_millis() as u32
    }

    fn of(at: std::time::Instant) -> AcceptedAt {
        AcceptedAt(Self::millis(at))
    }

    /// The instant it stands for (to the millisecond, never in the future).
    fn instant(self) -> std::time::Instant {
        let now = std::time::Instant::now();
        let age = Self::millis(now).wrapping_sub(self.0);
        now.checked_sub(Duration::from_millis(u64::from(age))).unwrap_or(now)
    }
}

/// Parks the connection for the rest of its idle timeout; it resumes in a
/// new active task when the client sends (or closes), and is closed when
/// the timeout passes or draining starts (see [`watch_parked`]).
fn park<B: Backend>(connection: ParkedConnection<B>, remaining: Duration) {
    connection.downstream.release_idle_buffers();
    let core = connection.open.core.clone();
    let key = core.parked.insert(connection, std::time::Instant::now() + remaining);
    // The first poll registers the key's waker with the stream (on io_uring
    // the receive is already in flight): bytes that came meanwhile resume it.
    resume_if_ready(&core, key);
}

/// Polls a parked connection's stream with its key's waker: resumes it in
/// a new active task if the client sent something, closes it at end of
/// stream or on an error, leaves it parked otherwise.
fn resume_if_ready<B: Backend>(core: &Core<B>, key: parked::Key) {
    let waker = parked::waker(key);
    let mut cx = std::task::Context::from_waker(&waker);
    let polled = core.parked.with(key, |c| c.downstream.poll_readable(&mut cx));
    match polled {
        None | Some(std::task::Poll::Pending) => {}
        Some(std::task::Poll::Ready(Ok(true))) => {
            if let Some(c) = core.parked.remove(key) {
                let accepted = c.accepted.map(AcceptedAt::instant);
                tokio::task::spawn_local(run_active(c.open, c.server as usize, c.downstream, c.peer, accepted));
            }
        }
        Some(std::task::Poll::Ready(_closed_or_failed)) => {
            drop(core.parked.remove(key));
        }
    }
}

/// This core's one task for its parked connections: resumes those whose
/// clients sent something, closes those whose idle timeout passed (one
/// timer, at the earliest deadline), and closes all of them when draining
/// starts.
pub async fn watch_parked<B: Backend>(core: Rc<Core<B>>) {
    let mut woken = Vec::new();
    loop {
        for key in woken.drain(..) {
            resume_if_ready(&core, key);
        }
        if core.shutdown.is_draining() {
            drop(core.parked.all());
        }
        drop(core.parked.expired(std::time::Instant::now()));
        let timer = core.parked.arm_timer();
        let sleep = async {
            match timer {
                Some(at) => tokio::time::sleep_until(Instant::from_std(at)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            // Woken keys first: a connection whose request arrives in the
            // same turn as its idle deadline is resumed, not closed unread.
            biased;
            () = std::future::poll_fn(|cx| parked::poll_woken(cx, &mut woken)) => {}
            () = sleep => {}
            () = core.shutdown.draining(), if !core.shutdown.is_draining() => {}
        }
    }
}

enum Waited {
    Ready,
    Closed,
    StillIdle(Duration),
}

struct Session<'a, B: Backend> {
    core: &'a Core<B>,
    /// Index of the server (listener) this connection came in on.
    server: usize,
    /// That server's settings from the current routing snapshot, refreshed
    /// before each request so a reload applies to open connections too.
    settings: Rc<ServerSettings>,
    /// The client's socket (downstream; the server's is upstream).
    downstream: &'a MaybeTls<B::Stream>,
    /// Client read buffer. Empty (and returned to the core) while idle.
    rbuf: Vec<u8>,
    /// This server's metrics on this core.
    stats: Rc<ServerStats>,
    /// When the current request's head started to be read (its latency is
    /// measured from here to the end of its response).
    begun: std::time::Instant,
    /// When the connection last went idle (opened, resumed, or its last
    /// response ended): its idle timeout counts from here.
    idle_since: std::time::Instant,
    /// The client's address (access log).
    peer: std::net::IpAddr,
    /// The current request's access log line so far (empty unless the
    /// router has `httpAccessLog`).
    pending_log: Vec<u8>,
    /// A host name the current request's destination waits for (set by
    /// `try_prepare`, taken by `wait_for_host`).
    resolving: Option<String>,
    /// Where the last request went: the next one, usually to the same
    /// destination, skips the route cache's hash lookup.
    last_route: LastRoute,
}

impl<B: Backend> Session<'_, B> {
    async fn next_request(&mut self, first: bool) -> Next {
        self.settings = self.core.routes.server(self.server);
        if self.rbuf.is_empty() {
            match self.wait_for_request(first).await {
                Waited::Ready => {}
                Waited::Closed => return Next::Close,
                Waited::StillIdle(remaining) => return Next::Park(remaining),
            }
        }
        // The send buffer is taken only once a head is complete, so a
        // connection waiting for the rest of a head holds one buffer.
        let mut sbuf = Vec::new();
        let mut prepared = match self.read_head(&mut sbuf, first).await {
            Ok(p) => p,
            Err(close) => {
                self.core.buffers.give(sbuf);
                return close;
            }
        };
        let mut downstream = Downstream {
            core: self.core,
            server: self.server,
            settings: &self.settings,
            stats: &self.stats,
            io: self.downstream,
            rbuf: &mut self.rbuf,
            begun: self.begun,
        };
        let done = exchange::run(&mut downstream, &mut prepared, sbuf).await;
        if let Some(e) = &done.answer {
            self.respond_error(e).await;
        }
        let route = &prepared.route;
        let route = done.routed.then(|| (&**route.client_stats(), &*route.service_stats));
        self.finish(done.status, done.sent, route, done.latency);
        // The clock reading the exchange ended with; no other is taken.
        self.idle_since = done.at;
        done.next
    }

    /// Idle between requests: hold no buffer, wake on data, EOF, the idle
    /// timeout, or the start of draining. After [`HOT_IDLE`] the caller
    /// parks the connection in a smaller task. The read buffer goes back to
    /// the core now and is taken again when the next request arrives: on
    /// epoll the wait is tokio's readiness (no syscall more than reading
    /// would cost), on io_uring a receive from the buffer ring, which stays
    /// in flight when the wait is dropped and is taken over by the parked
    /// task, so no byte is lost.
    async fn wait_for_request(&mut self, first: bool) -> Waited {
        if self.core.shutdown.is_draining() && !first {
            return Waited::Closed;
        }
        if self.rbuf.capacity() != 0 {
            let rbuf = std::mem::take(&mut self.rbuf);
            self.core.buffers.give(rbuf);
        }
        let limit = if first { self.settings.header_read_timeout } else { self.settings.idle_timeout };
        // A first request's time counts from the accept (`idle_since`), so
        // what a TLS handshake took is gone; later ones wait from the end
        // of the last exchange, just now (no clock read per request).
        let left = if first { limit.saturating_sub(self.idle_since.elapsed()) } else { limit };
        // No draining wake-up here: registering with the shutdown `Notify`
        // twice per request costs more than it saves. A connection idle when
        // draining starts is closed within the hot wait (1.2 s), by `park`.
        let waited = if left > HOT_IDLE {
            // The usual case (idleTimeMs defaults to 10 s): the coarse
            // deadline, then park for what is left of the idle timeout.
            watchdog::within(HOT_IDLE, self.downstream.wait_readable()).await
        } else {
            // A limit of 1 s or less ends the connection, where a coarse
            // deadline could be 20 % late or more: a tokio timer, as precise
            // as the configured limit.
            tokio::time::timeout(left, self.downstream.wait_readable()).await.map_err(|_elapsed| watchdog::Expired)
        };
        match waited {
            Ok(Ok(true)) => {
                self.rbuf = self.core.buffers.take();
                Waited::Ready
            }
            Ok(Ok(false)) | Ok(Err(_)) => Waited::Closed,
            Err(watchdog::Expired) if left > HOT_IDLE && !self.core.shutdown.is_draining() => {
                // The hot wait ran a tick or two past HOT_IDLE: park for the
                // rest of the limit as counted by the clock.
                match limit.checked_sub(self.idle_since.elapsed()) {
                    Some(remaining) if !remaining.is_zero() => Waited::StillIdle(remaining),
                    _ => Waited::Closed,
                }
            }
            Err(watchdog::Expired) => Waited::Closed,
        }
    }

    /// Reads until a complete head is parsed, then routes it and encodes the
    /// forwarded head (plus any body bytes already read) into `sbuf`. The
    /// head has `headerReadTimeoutMs` from now, or for a connection's first
    /// request from its accept (which the wait for its first byte and the
    /// TLS handshake count against too).
    async fn read_head(&mut self, sbuf: &mut Vec<u8>, first: bool) -> Result<Prepared, Next> {
        // One clock read serves the head timeout and the request's latency.
        let start = std::time::Instant::now();
        let counted_from = if first { self.idle_since } else { start };
        let deadline = Instant::from_std(counted_from) + self.settings.header_read_timeout;
        self.begun = start;
        self.pending_log.clear();
        let limits = self.settings.limits;
        let mut waited = false;
        loop {
            if !self.rbuf.is_empty() {
                let prepared = match self.try_prepare(&limits, sbuf) {
                    // Its destination has a host name being resolved: wait
                    // for the answer (once), then route it again.
                    Ok(None) if self.resolving.is_some() => match self.wait_for_host(waited).await {
                        Ok(()) => {
                            waited = true;
                            continue;
                        }
                        Err(e) => Err(e),
                    },
                    other => other,
                };
                match prepared {
                    Ok(Some(p)) => return Ok(p),
                    Ok(None) => {}
                    Err(ProxyError::BadRequest(_)) if self.settings.tls.is_none() && starts_like_tls(&self.rbuf) => {
                        self.stats.tls_on_plaintext.incr();
                        tracing::debug!(router = %self.settings.label, "TLS ClientHello on a plaintext port; closed");
                        return Err(Next::Close);
                    }
                    Err(e) => {
                        self.respond_error(&e).await;
                        self.stats.errors.record(e.label());
                        self.finish(e.status(), 0, None, self.begun.elapsed());
                        return Err(Next::Close);
                    }
                }
            }
            // A timed-out read drops the buffer with it: note first whether
            // any byte of a request had arrived.
            let had_bytes = !self.rbuf.is_empty();
            let read = read_into(self.downstream, &mut self.rbuf, self.core.buffers.size());
            match by_deadline(deadline, read).await {
                Ok(Ok(0)) | Ok(Err(_)) => return Err(Next::Close),
                Ok(Ok(_)) => {}
                // Nothing of a request yet: an idle connection, closed quietly.
                Err(HeadTimedOut) if !had_bytes => return Err(Next::Close),
                Err(HeadTimedOut) => {
                    let mut out = Vec::new();
                    if self.settings.clear_context {
                        http1::encode_cleared_error_response(&mut out, 408, true);
                    } else {
                        let message = format!(
                            "request head not received within {} ms",
                            self.settings.header_read_timeout.as_millis()
                        );
                        http1::encode_error_response(&mut out, 408, &message, true);
                    }
                    let _ = tokio::time::timeout(Duration::from_secs(1), write_all(self.downstream, &mut out)).await;
                    return Err(Next::Close);
                }
            }
        }
    }

    /// Waits for the answer for the host name `try_prepare` found being
    /// resolved, bounded by the resolution timeout and the server's
    /// `timeoutMs`. A request waits once: asked again, it fails.
    async fn wait_for_host(&mut self, waited: bool) -> Result<(), ProxyError> {
        let Some(host) = self.resolving.take() else { return Ok(()) };
        let names = self.core.routes.names();
        let limit = names.wait_limit(self.settings.server_timeout);
        let Some(wait) = names.wait(&host).filter(|_| !waited) else {
            return Err(ProxyError::NoEndpoints(format!("{host}: no DNS answer yet")));
        };
        let timed_out = tokio::time::timeout(limit, wait).await.is_err();
        self.core.routes.names().count_wait(timed_out);
        if timed_out {
            return Err(ProxyError::NoEndpoints(format!("{host}: no DNS answer within {} ms", limit.as_millis())));
        }
        Ok(())
    }

    fn try_prepare(&mut self, limits: &Limits, sbuf: &mut Vec<u8>) -> Result<Option<Prepared>, ProxyError> {
        let mut slots = [MaybeUninit::uninit(); HEADER_SLOTS];
        let Some(mut head) = http1::parse_request(&self.rbuf, &mut slots, limits).map_err(ProxyError::BadRequest)?
        else {
            return Ok(None);
        };
        if head.via_hops > self.settings.max_call_depth {
            return Err(ProxyError::CallDepthExceeded(self.settings.max_call_depth));
        }
        if self.settings.access_log.is_some() {
            self.pending_log.clear();
            crate::telemetry::access_log::start_line(&mut self.pending_log, self.peer, &head);
        }
        let route = match self.core.routes.route_after(
            self.settings.router,
            &head,
            self.settings.client_context(),
            &mut self.last_route,
        ) {
            Err(crate::table::RouteError::Resolving(host)) => {
                self.resolving = Some(host);
                return Ok(None);
            }
            route => route?,
        };
        if let (Some(max), BodyFraming::Length(n)) = (self.settings.max_request_body, head.framing) {
            if n > max {
                return Err(ProxyError::RequestTooLarge);
            }
        }
        // An upgrade carrying a body is forwarded as a plain request: the
        // tunnel would otherwise start in the middle of a streamed body.
        if head.framing != BodyFraming::Empty {
            head.upgrade = None;
        }
        let upgrade = head.upgrade.is_some();
        let replay_safe =
            head.method.is_idempotent() || head.headers.iter().any(|h| h.name.eq_ignore_ascii_case("idempotency-key"));
        let meta = RequestMeta {
            method: head.method,
            version: head.version,
            keep_alive: head.keep_alive,
            upgrade,
            replay_safe,
        };
        if sbuf.capacity() == 0 {
            *sbuf = self.core.buffers.take();
        }
        sbuf.clear();
        if route.consume > 0 {
            head.target = crate::table::consume_segments(head.target, route.consume);
        }
        // linkerd's context headers, and an `l5d-reqid` when the request has
        // none of its own (or its own was cleared as untrusted, or may be
        // dropped as a field its `Connection` names: the upstream always
        // gets one).
        let [service, client] = route.context_headers();
        let mut reqid = [0u8; 16];
        let with_id;
        let mut extra: &[(&str, &[u8])] = if !route.context {
            &[]
        } else if !self.settings.clear_context
            && head.headers.iter().any(|h| h.name.eq_ignore_ascii_case("l5d-reqid"))
            && !(head.connection_names_fields && http1::connection_names(head.headers, "l5d-reqid"))
        {
            with_id = [service, client, ("", &[][..])];
            &with_id[..2]
        } else {
            hex_id(self.core.routes.random(), &mut reqid);
            with_id = [service, client, ("l5d-reqid", &reqid[..])];
            &with_id
        };
        // HTTP/1.0 may omit Host; what goes upstream is HTTP/1.1, which must
        // carry one (RFC 9112 §3.2). The encoder writes the target's authority
        // when there is one; without, the address of the endpoint chosen
        // first stands in (the head is encoded once; a requeue to another
        // endpoint keeps it).
        let added_host;
        let with_host;
        if head.version == Version::Http10 && head.host.is_none() {
            added_host = route.endpoint.addr.to_string();
            let mut fields = [("Host", added_host.as_bytes()); 4];
            fields[1..=extra.len()].copy_from_slice(extra);
            with_host = fields;
            extra = &with_host[..=extra.len()];
        }
        http1::encode_request_head_with(sbuf, &head, extra, self.settings.clear_context);
        let head_len = head.head_len;
        let mut body = head.framing.reader();

        // Body bytes that arrived with the head go out with it, in one write:
        // a chunked body re-encoded, any other (or none) as it came.
        let rest = &self.rbuf[head_len..];
        let consumed = if body.rewrites() {
            let progress = body.forward(rest, sbuf).map_err(ProxyError::BadRequest)?;
            if progress.trailers_dropped > 0 {
                self.stats.request_trailers_dropped.add(u64::from(progress.trailers_dropped));
            }
            progress.consumed
        } else {
            let progress = body.advance(rest, |_| {}).map_err(ProxyError::BadRequest)?;
            sbuf.extend_from_slice(&rest[..progress.consumed]);
            progress.consumed
        };
        consume(&mut self.rbuf, head_len + consumed);
        Ok(Some(Prepared { meta, route, body }))
    }

    /// Records a finished request in this server's metrics, and in its
    /// destination's (bound name, logical name) when it was routed. `sent`
    /// is the response body bytes sent (access log).
    fn finish(&self, status: u16, sent: u64, route: Option<(&ClientStats, &ServiceStats)>, latency: Duration) {
        if crate::telemetry::metrics::ENABLED {
            let us = crate::telemetry::metrics::micros(latency);
            let request = Finished::new(status, us, self.core.metrics.epoch());
            self.stats.requests.add(request);
            if let Some((client, service)) = route {
                client.requests.add(request);
                service.requests.add(request);
            }
        }
        if let Some(log) = &self.settings.access_log {
            if self.pending_log.is_empty() {
                // The head never parsed: a line all the same.
                let mut line = Vec::new();
                crate::telemetry::access_log::start_unparsed(&mut line, self.peer);
                self.core.access_logs.record(log, &line, status, 0);
            } else {
                self.core.access_logs.record(log, &self.pending_log, status, sent);
            }
        }
    }

    /// Answers an error corelink itself detected; the connection closes after
    /// (the request's body, if any, was not read, so the stream is out of sync).
    async fn respond_error(&mut self, e: &ProxyError) {
        tracing::debug!(router = %self.settings.label, error = %e, side = ?e.side(), "request failed");
        let mut out = self.core.buffers.take();
        out.clear();
        if self.settings.clear_context {
            http1::encode_cleared_error_response(&mut out, e.status(), true);
        } else {
            http1::encode_error_response(&mut out, e.status(), &e.to_string(), true);
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), write_all(self.downstream, &mut out)).await;
        self.core.buffers.give(out);
    }
}

/// A request id as 16 lower-case hex digits.
#[inline(always)]
fn hex_id(id: u64, out: &mut [u8; 16]) {
    // Eight nibbles to eight bytes at a time (nibble k to byte k, so the
    // big-endian bytes are in order), then each byte 0..=15 to its digit:
    // `+ 6` carries into bit 4 exactly for 10..=15, which take the letters.
    // (Digit by digit through a table, it was ~80 instructions a request.)
    let spread = |half: u32| {
        let x = u64::from(half);
        let x = (x | x << 16) & 0x0000_ffff_0000_ffff;
        let x = (x | x << 8) & 0x00ff_00ff_00ff_00ff;
        let x = (x | x << 4) & 0x0f0f_0f0f_0f0f_0f0f;
        let letters = ((x + 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101;
        (x + 0x3030_3030_3030_3030 + letters * (b'a' - b'0' - 10) as u64).to_be_bytes()
    };
    out[..8].copy_from_slice(&spread((id >> 32) as u32));
    out[8..].copy_from_slice(&spread(id as u32));
}

/// The request head was not read by its deadline (`headerReadTimeoutMs`).
struct HeadTimedOut;

/// `op` by `deadline`, as `tokio::time::timeout_at`, but the timer is made
/// only when `op` has to wait: after `wait_for_request` the head is usually
/// there already, and the read completes on its first poll with no `Sleep`
/// built, registered or dropped (docs/engine.md, issue 16).
fn by_deadline<F: Future>(deadline: Instant, op: F) -> ByDeadline<F> {
    ByDeadline { op, deadline, sleep: None }
}

pin_project_lite::pin_project! {
    #[must_use = "futures do nothing unless awaited"]
    struct ByDeadline<F> {
        #[pin]
        op: F,
        deadline: Instant,
        #[pin]
        sleep: Option<tokio::time::Sleep>,
    }
}

impl<F: Future> Future for ByDeadline<F> {
    type Output = Result<F::Output, HeadTimedOut>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Poll::Ready(done) = this.op.poll(cx) {
            return Poll::Ready(Ok(done));
        }
        loop {
            if let Some(sleep) = this.sleep.as_mut().as_pin_mut() {
                return sleep.poll(cx).map(|()| Err(HeadTimedOut));
            }
            this.sleep.set(Some(tokio::time::sleep_until(*this.deadline)));
        }
    }
}

/// A TLS handshake record (content type 22, version 3.x) where a request
/// line should be: no HTTP method starts with byte 0x16.
fn starts_like_tls(buf: &[u8]) -> bool {
    buf.len() >= 2 && buf[0] == 0x16 && buf[1] == 0x03
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::io::epoll::Epoll;

    /// `Prepared` is moved by value about six times per request (built,
    /// returned, matched, awaited, handed to the exchange). At 184 bytes, as
    /// a re-encoder in `BodyReader` once made it, those moves became memcpy
    /// calls costing 2 % of a plaintext request (callgrind); keep it small.
    #[test]
    fn prepared_stays_small() {
        assert!(std::mem::size_of::<Prepared>() <= 144, "{}", std::mem::size_of::<Prepared>());
        assert!(std::mem::size_of::<http1::BodyReader>() <= 40);
    }

    /// `by_deadline` answers as `timeout_at`: a ready read at once (even
    /// past the deadline), a read that has to wait when it completes, and
    /// one that does not by the deadline with `HeadTimedOut`.
    #[test]
    fn reads_by_the_deadline() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        rt.block_on(async {
            let past = Instant::now();
            assert!(matches!(by_deadline(past, async { 7 }).await, Ok(7)));
            let soon = Instant::now() + Duration::from_millis(20);
            let late = std::future::pending::<()>();
            assert!(matches!(by_deadline(soon, late).await, Err(HeadTimedOut)));
            assert!(Instant::now() >= soon);
            let later = Instant::now() + Duration::from_secs(5);
            let waits = async {
                tokio::time::sleep(Duration::from_millis(10)).await;
                8
            };
            assert!(matches!(by_deadline(later, waits).await, Ok(8)));
        });
    }

    #[test]
    fn request_ids_are_sixteen_hex_digits() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut ids = vec![0, 1, 9, 10, 15, 16, u64::MAX, 0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210];
        for _ in 0..1000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ids.push(x);
        }
        for id in ids {
            let mut out = [0u8; 16];
            hex_id(id, &mut out);
            assert_eq!(std::str::from_utf8(&out).unwrap(), format!("{id:016x}"));
        }
    }

    #[test]
    fn an_accept_time_in_four_bytes_reads_back_to_the_millisecond() {
        let accepted = std::time::Instant::now() - Duration::from_millis(1234);
        let back = AcceptedAt::of(accepted).instant();
        let error = if back > accepted { back - accepted } else { accepted - back };
        assert!(error <= Duration::from_millis(2), "{error:?}");
        assert!(back <= std::time::Instant::now());
    }

    /// An idle keep-alive connection costs its task's future, allocated once
    /// when the task is spawned: keep an eye on its size.
    #[test]
    fn connection_future_size() {
        let core = Core::for_tests();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let stream = tokio::net::TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
            let (accepted, _) = listener.accept().unwrap();
            drop(accepted);
            let downstream = crate::io::epoll::EpollStream::for_tests(stream);
            let fut = serve_connection::<Epoll>(core, 0, downstream, "127.0.0.1:1".parse().unwrap());
            eprintln!("serve_connection future: {} bytes", std::mem::size_of_val(&fut));
            // A parked connection is one of these in `Core::parked`, and nothing else.
            let parked = std::mem::size_of::<ParkedConnection<Epoll>>();
            let parked_uring = std::mem::size_of::<ParkedConnection<crate::io::uring::Uring>>();
            eprintln!("parked connection: {parked} bytes (epoll), {parked_uring} (io_uring)");
            assert!(parked <= 128 && parked_uring <= 128);
            assert!(std::mem::size_of_val(&fut) < 16 * 1024);
        });
    }
}
