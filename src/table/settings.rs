//! One server's settings, compiled into the snapshot (`RoutingSnapshot::servers`)
//! and copied per core by the route cache: limits, timeouts, TLS and the
//! access log, plus the per-operation I/O limits the proxy's bounded reads
//! and writes apply.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http1::Limits;

use crate::telemetry::access_log::AccessLog;

/// One server's settings, which the data path reads for every request.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Index of the router in the config (and the routing snapshot).
    pub router: usize,
    pub label: String,
    pub limits: Limits,
    pub max_call_depth: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub connect_timeout: Duration,
    /// Enforced only when streaming is disabled (linkerd semantics).
    pub max_request_body: Option<u64>,
    pub max_response_body: Option<u64>,
    /// `clearContext` (or the router's `contextHeaders: false`): drop the
    /// client's `l5d-*` and `Dtab-Local` headers (untrusted clients), and
    /// `l5d-*` from responses, as linkerd's clearContext does.
    pub clear_context: bool,
    /// `timeoutMs`: from dispatch to the response head (503 past it).
    pub server_timeout: Option<Duration>,
    /// `maxConcurrentRequests`: the whole server's limit here; the route
    /// cache replaces it with this core's share ([`ServerSettings::for_core`]).
    pub max_concurrent_requests: Option<usize>,
    /// Per read and write of a body: `socketOptions.readTimeoutMs` /
    /// `writeTimeoutMs` and `corelink.bodyProgressTimeoutMs`.
    pub io_limits: IoLimits,
    /// `tls`: this server terminates TLS (set when the snapshot is compiled).
    pub tls: Option<Arc<crate::tls::ServerTls>>,
    /// `httpAccessLog` of the router (set when the snapshot is compiled).
    pub access_log: Option<Arc<AccessLog>>,
}

impl ServerSettings {
    /// Whether this server's requests are routed with their client's
    /// linkerd context (see [`ClientContext`]).
    pub fn client_context(&self) -> super::ClientContext {
        super::ClientContext::cleared(self.clear_context)
    }

    /// What the data path needs to know about one server of a router.
    pub fn from_config(config: &config::Config, router_index: usize, server: &config::ServerConfig) -> ServerSettings {
        use config::DEFAULT_SERVER_IDLE_MS;
        let router = &config.routers[router_index];
        let idle = server.server_session.idle_time_ms.unwrap_or(DEFAULT_SERVER_IDLE_MS);
        let limited = !router.streaming_enabled;
        ServerSettings {
            router: router_index,
            label: router.label().to_string(),
            limits: http1::Limits { max_headers: config.corelink.max_headers, ..router.limits() },
            max_call_depth: router.max_call_depth_for(server),
            // docs/config.md: `contextHeaders: false` is `clearContext: true`
            // on every server of the router.
            clear_context: server.clear_context || !router.context_headers,
            server_timeout: server.timeout_ms.map(Duration::from_millis),
            max_concurrent_requests: server.max_concurrent_requests,
            io_limits: IoLimits::new(
                server.socket_options.read_timeout_ms.map(Duration::from_millis),
                server.socket_options.write_timeout_ms.map(Duration::from_millis),
                Duration::from_millis(config.corelink.body_progress_timeout_ms),
            ),
            header_read_timeout: Duration::from_millis(config.corelink.header_read_timeout_ms),
            idle_timeout: Duration::from_millis(idle),
            connect_timeout: Duration::from_millis(config.corelink.connect_timeout_ms),
            max_request_body: limited.then_some(router.max_request_kb * 1024),
            max_response_body: limited.then_some(router.max_response_kb * 1024),
            tls: None,
            access_log: None,
        }
    }

    /// This core's copy. `maxConcurrentRequests` is divided among the
    /// workers and rounded up, as `hostConnectionPool`'s limits are: each
    /// core counts its own requests in a `Cell`, where one counter for the
    /// whole server would be a cache line every core writes twice per
    /// request. The price: a busy core may nack while another has room.
    pub fn for_core(&self, workers: usize) -> ServerSettings {
        ServerSettings {
            max_concurrent_requests: self.max_concurrent_requests.map(|n| n.div_ceil(workers.max(1))),
            ..self.clone()
        }
    }
}

/// Which operation waited too long; it decides the side, status and label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoOp {
    /// Reading the request body from the client.
    ClientRead,
    /// Writing the response (head or body) to the client.
    ClientWrite,
    /// Writing the request body to the upstream.
    UpstreamWrite,
    /// Reading the response body from the upstream.
    UpstreamRead,
}

/// The setting a limit comes from (named in `l5d-err` and the logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoSetting {
    ReadTimeout,
    WriteTimeout,
    BodyProgress,
}

impl IoSetting {
    pub fn key(self) -> &'static str {
        match self {
            IoSetting::ReadTimeout => "socketOptions.readTimeoutMs",
            IoSetting::WriteTimeout => "socketOptions.writeTimeoutMs",
            IoSetting::BodyProgress => "corelink.bodyProgressTimeoutMs",
        }
    }
}

/// How long one operation may wait, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoLimit {
    pub op: IoOp,
    pub limit: Duration,
    pub setting: IoSetting,
}

impl IoLimit {
    /// The tighter of a socket option (if set) and the body progress
    /// timeout: both bound the same wait, so the first to expire wins.
    fn tighter(op: IoOp, socket: Option<(Duration, IoSetting)>, body: Duration) -> IoLimit {
        match socket {
            Some((limit, setting)) if limit < body => IoLimit { op, limit, setting },
            _ => IoLimit { op, limit: body, setting: IoSetting::BodyProgress },
        }
    }
}

impl fmt::Display for IoLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.op {
            IoOp::ClientRead => "no request body bytes from the client",
            IoOp::ClientWrite => "the client read no response bytes",
            IoOp::UpstreamWrite => "the upstream read no request body bytes",
            IoOp::UpstreamRead => "no response bytes from the upstream",
        };
        write!(f, "{what} for {} ms ({})", self.limit.as_millis(), self.setting.key())
    }
}

impl std::error::Error for IoLimit {}

/// The per-operation limits of one server, resolved once per snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoLimits {
    pub client_read: IoLimit,
    pub client_write: IoLimit,
    pub upstream_read: IoLimit,
    pub upstream_write: IoLimit,
}

impl IoLimits {
    /// `read`/`write`: the server's `socketOptions` (client side only, as in
    /// linkerd, where they are server socket options); `body`: the corelink
    /// body progress timeout, which bounds both sides.
    pub fn new(read: Option<Duration>, write: Option<Duration>, body: Duration) -> IoLimits {
        IoLimits {
            client_read: IoLimit::tighter(IoOp::ClientRead, read.map(|d| (d, IoSetting::ReadTimeout)), body),
            client_write: IoLimit::tighter(IoOp::ClientWrite, write.map(|d| (d, IoSetting::WriteTimeout)), body),
            upstream_read: IoLimit::tighter(IoOp::UpstreamRead, None, body),
            upstream_write: IoLimit::tighter(IoOp::UpstreamWrite, None, body),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(extra: &str) -> ServerSettings {
        let text = format!("routers:\n- protocol: http\n  servers:\n  - port: 1\n{extra}");
        let config = config::Config::parse(&text, "t").unwrap();
        ServerSettings::from_config(&config, 0, &config.routers[0].servers[0])
    }

    #[test]
    fn max_concurrent_requests_is_divided_among_the_workers_rounded_up() {
        let s = settings("    maxConcurrentRequests: 10\n");
        assert_eq!(s.for_core(1).max_concurrent_requests, Some(10));
        assert_eq!(s.for_core(4).max_concurrent_requests, Some(3));
        assert_eq!(settings("    maxConcurrentRequests: 1\n").for_core(4).max_concurrent_requests, Some(1));
        assert_eq!(settings("").for_core(4).max_concurrent_requests, None);
    }
}
