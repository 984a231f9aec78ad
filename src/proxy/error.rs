//! Every way a proxied request can fail, with the side that failed. Each maps
//! to exactly one status, one `l5d-err` text and one metric label, following
//! linkerd 1.x (docs/errors.md has the table).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use http1::ParseError;

use crate::table::RouteError;

use super::timed::{stalled, IoLimit, IoOp, IoSetting};

/// Which side of the proxy a failure belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Upstream,
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("{0}")]
    BadRequest(ParseError),
    #[error("Unknown destination: {0}")]
    UnknownDestination(String),
    #[error("Maximum number of calls ({0}) has been exceeded. Please check for proxy loops.")]
    CallDepthExceeded(usize),
    #[error("request body larger than maxRequestKB")]
    RequestTooLarge,
    #[error("{0}")]
    NoRoute(String),
    /// The text is the routing table's, which starts with linkerd's "No
    /// hosts are available for ..." (see `table::cache`).
    #[error("{0}")]
    NoEndpoints(String),
    #[error("connection to {addr} failed: {source}")]
    Connect { addr: SocketAddr, source: io::Error },
    #[error("connection to {0} timed out")]
    ConnectTimeout(SocketAddr),
    #[error("upstream {addr} failed: {source}")]
    UpstreamIo { addr: SocketAddr, source: io::Error },
    #[error("upstream {addr} closed the connection before responding")]
    UpstreamClosed { addr: SocketAddr },
    #[error("invalid response from upstream {addr}: {error}")]
    UpstreamGarbage { addr: SocketAddr, error: ParseError },
    #[error("response body larger than maxResponseKB")]
    ResponseTooLarge,
    #[error("request exceeded totalTimeoutMs ({} ms)", .0.as_millis())]
    TotalTimeout(Duration),
    #[error("client connection failed: {0}")]
    ClientIo(io::Error),
    /// No TLS can be set up for this destination (a strict boundPath with no
    /// matching prefix, an invalid derived name).
    #[error("{0}")]
    TlsPolicy(String),
    /// The TLS handshake with the upstream failed: `reason` says which check.
    #[error("TLS to {addr} failed: {reason}")]
    UpstreamTls { addr: SocketAddr, reason: String },
    #[error("TLS handshake with {0} timed out")]
    TlsHandshakeTimeout(SocketAddr),
    #[error("no response from {addr} within requestAttemptTimeoutMs ({} ms)", .limit.as_millis())]
    AttemptTimeout { addr: SocketAddr, limit: Duration },
    /// `hostConnectionPool`: `max_size` connections to `addr` are busy and
    /// `max_waiters` requests already wait for one (numbers per core).
    #[error(
        "too many waiters: {max_waiters} requests already wait for one of the {max_size} connections to {addr} (hostConnectionPool.maxWaiters, per core)"
    )]
    TooManyWaiters { addr: SocketAddr, max_size: usize, max_waiters: usize },
    /// The server's `timeoutMs` (finagle's server timeout) passed before the
    /// response head arrived.
    #[error("no response within the server's timeoutMs ({} ms)", .0.as_millis())]
    ServerTimeout(Duration),
    /// One read or write of a body (or of the response head to the client)
    /// waited longer than its limit; see `timed::IoLimit`.
    #[error("{0}")]
    Stalled(IoLimit),
    /// `maxConcurrentRequests` (this core's share) requests are in flight:
    /// answered with finagle's nack, not an `l5d-err` (the request was not
    /// processed and is safe to retry).
    #[error("over maxConcurrentRequests ({0} per core): nacked")]
    MaxConcurrentRequests(usize),
}

/// The route table's failures, answered as linkerd answers them: a request
/// no identifier can name (or with a bad `l5d-dtab`) is the client's 400,
/// the rest are 502s of their own kind.
impl From<RouteError> for ProxyError {
    fn from(e: RouteError) -> ProxyError {
        match e {
            RouteError::Unidentified(why) => ProxyError::UnknownDestination(why),
            e @ (RouteError::DtabHeaderNotUtf8 | RouteError::InvalidDtabHeader(_)) => {
                ProxyError::UnknownDestination(e.to_string())
            }
            RouteError::NoRoute(why) => ProxyError::NoRoute(why),
            RouteError::NoEndpoints(why) => ProxyError::NoEndpoints(why),
            RouteError::TlsPolicy(why) => ProxyError::TlsPolicy(why),
            // Handled before (the request waits); here only if it could not.
            RouteError::Resolving(host) => ProxyError::NoEndpoints(format!("{host}: no DNS answer yet")),
        }
    }
}

impl ProxyError {
    pub fn side(&self) -> Side {
        match self {
            ProxyError::BadRequest(_)
            | ProxyError::UnknownDestination(_)
            | ProxyError::CallDepthExceeded(_)
            | ProxyError::RequestTooLarge
            | ProxyError::ClientIo(_) => Side::Client,
            ProxyError::Stalled(l) => match l.op {
                IoOp::ClientRead | IoOp::ClientWrite => Side::Client,
                IoOp::UpstreamRead | IoOp::UpstreamWrite => Side::Upstream,
            },
            ProxyError::NoRoute(_)
            | ProxyError::NoEndpoints(_)
            | ProxyError::TotalTimeout(_)
            | ProxyError::ServerTimeout(_)
            | ProxyError::MaxConcurrentRequests(_)
            | ProxyError::TooManyWaiters { .. }
            | ProxyError::TlsPolicy(_) => Side::Internal,
            ProxyError::Connect { .. }
            | ProxyError::ConnectTimeout(_)
            | ProxyError::UpstreamIo { .. }
            | ProxyError::UpstreamClosed { .. }
            | ProxyError::UpstreamGarbage { .. }
            | ProxyError::ResponseTooLarge
            | ProxyError::UpstreamTls { .. }
            | ProxyError::TlsHandshakeTimeout(_)
            | ProxyError::AttemptTimeout { .. } => Side::Upstream,
        }
    }

    /// Connecting to the endpoint failed (TCP or TLS): nothing was sent, so
    /// the request may go to another endpoint.
    pub fn is_connection_failure(&self) -> bool {
        matches!(
            self,
            ProxyError::Connect { .. }
                | ProxyError::ConnectTimeout(_)
                | ProxyError::UpstreamTls { .. }
                | ProxyError::TlsHandshakeTimeout(_)
        )
    }

    /// A read or write that timed out (see `timed`) as the error it is: the
    /// body loops report it as plain I/O, carrying the limit that fired.
    pub fn classify_stall(self) -> ProxyError {
        match &self {
            ProxyError::ClientIo(e) | ProxyError::UpstreamIo { source: e, .. } => match stalled(e) {
                Some(limit) => ProxyError::Stalled(limit),
                None => self,
            },
            _ => self,
        }
    }

    /// Whether an error response may still be written: not when a write to
    /// the client timed out (part of a head may be out, and the client is
    /// not reading anyway).
    pub fn answerable(&self) -> bool {
        !matches!(self, ProxyError::Stalled(l) if l.op == IoOp::ClientWrite)
    }

    /// The status answered to the client, when nothing of the response has
    /// been sent yet.
    pub fn status(&self) -> u16 {
        match self {
            ProxyError::BadRequest(e) => e.request_status(),
            ProxyError::UnknownDestination(_) | ProxyError::CallDepthExceeded(_) => 400,
            ProxyError::RequestTooLarge => 413,
            ProxyError::Stalled(l) if matches!(l.op, IoOp::ClientRead | IoOp::ClientWrite) => 408,
            ProxyError::TotalTimeout(_)
            | ProxyError::AttemptTimeout { .. }
            | ProxyError::ServerTimeout(_)
            | ProxyError::MaxConcurrentRequests(_) => 503,
            ProxyError::ClientIo(_) => 400,
            _ => 502,
        }
    }

    /// Short, stable label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            ProxyError::BadRequest(_) => "bad_request",
            ProxyError::UnknownDestination(_) => "unknown_destination",
            ProxyError::CallDepthExceeded(_) => "call_depth_exceeded",
            ProxyError::RequestTooLarge => "request_too_large",
            ProxyError::NoRoute(_) => "no_route",
            ProxyError::NoEndpoints(_) => "no_endpoints",
            ProxyError::Connect { .. } => "connect_failed",
            ProxyError::ConnectTimeout(_) => "connect_timeout",
            ProxyError::UpstreamIo { .. } => "upstream_io",
            ProxyError::UpstreamClosed { .. } => "upstream_closed",
            ProxyError::UpstreamGarbage { .. } => "upstream_invalid_response",
            ProxyError::ResponseTooLarge => "response_too_large",
            ProxyError::TotalTimeout(_) => "timeout",
            ProxyError::ClientIo(_) => "client_io",
            ProxyError::TlsPolicy(_) => "tls_policy",
            ProxyError::UpstreamTls { .. } => "upstream_tls",
            ProxyError::TlsHandshakeTimeout(_) => "tls_handshake_timeout",
            ProxyError::AttemptTimeout { .. } => "attempt_timeout",
            ProxyError::TooManyWaiters { .. } => "too_many_waiters",
            ProxyError::ServerTimeout(_) => "server_timeout",
            ProxyError::Stalled(l) => match (l.setting, l.op) {
                (IoSetting::ReadTimeout, _) => "read_timeout",
                (IoSetting::WriteTimeout, _) => "write_timeout",
                (IoSetting::BodyProgress, IoOp::ClientRead | IoOp::ClientWrite) => "client_body_timeout",
                (IoSetting::BodyProgress, IoOp::UpstreamRead | IoOp::UpstreamWrite) => "upstream_body_timeout",
            },
            ProxyError::MaxConcurrentRequests(_) => "max_concurrent_requests",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_table() {
        assert_eq!(ProxyError::UnknownDestination("x".into()).status(), 400);
        assert_eq!(ProxyError::BadRequest(ParseError::HeadTooLarge).status(), 431);
        assert_eq!(ProxyError::NoRoute("x".into()).status(), 502);
        assert_eq!(ProxyError::ConnectTimeout(SocketAddr::from(([127, 0, 0, 1], 1))).status(), 502);
        assert_eq!(ProxyError::TotalTimeout(Duration::from_secs(1)).status(), 503);
        let addr = SocketAddr::from(([127, 0, 0, 1], 1));
        assert_eq!(ProxyError::TooManyWaiters { addr, max_size: 1, max_waiters: 0 }.status(), 502);
        assert_eq!(ProxyError::ServerTimeout(Duration::from_secs(1)).status(), 503);
        assert_eq!(ProxyError::MaxConcurrentRequests(1).status(), 503);
    }

    #[test]
    fn route_errors_keep_their_status_text_and_label() {
        let cases = [
            (
                RouteError::Unidentified("no Host header".into()),
                400,
                "Unknown destination: no Host header",
                "unknown_destination",
            ),
            (RouteError::DtabHeaderNotUtf8, 400, "Unknown destination: l5d-dtab is not UTF-8", "unknown_destination"),
            (
                RouteError::InvalidDtabHeader("x".into()),
                400,
                "Unknown destination: invalid l5d-dtab: x",
                "unknown_destination",
            ),
            (RouteError::NoRoute("no".into()), 502, "no", "no_route"),
            (
                RouteError::NoEndpoints("No hosts are available for none".into()),
                502,
                "No hosts are available for none",
                "no_endpoints",
            ),
            (RouteError::TlsPolicy("strict".into()), 502, "strict", "tls_policy"),
        ];
        for (route, status, text, label) in cases {
            let e = ProxyError::from(route);
            assert_eq!((e.status(), e.to_string().as_str(), e.label()), (status, text, label));
        }
    }

    #[test]
    fn stalls_are_classified_by_operation_and_setting() {
        let ms = Duration::from_millis(300);
        let limits = super::super::timed::IoLimits::new(Some(ms), None, Duration::from_secs(60));
        let timed_out = |l: IoLimit| io::Error::new(io::ErrorKind::TimedOut, l);
        let e = ProxyError::ClientIo(timed_out(limits.client_read)).classify_stall();
        assert_eq!((e.status(), e.label(), e.side(), e.answerable()), (408, "read_timeout", Side::Client, true));
        let e = ProxyError::ClientIo(timed_out(limits.client_write)).classify_stall();
        assert_eq!((e.label(), e.answerable()), ("client_body_timeout", false));
        let addr = SocketAddr::from(([127, 0, 0, 1], 1));
        let e = ProxyError::UpstreamIo { addr, source: timed_out(limits.upstream_read) }.classify_stall();
        assert_eq!((e.status(), e.label(), e.side()), (502, "upstream_body_timeout", Side::Upstream));
        let e = ProxyError::ClientIo(io::ErrorKind::TimedOut.into()).classify_stall();
        assert_eq!(e.label(), "client_io", "a kernel ETIMEDOUT stays an I/O error");
    }
}
