//! Every way a proxied request can fail, with the side that failed. Each maps
//! to exactly one status, one `l5d-err` text and one metric label, following
//! linkerd 1.x (docs/errors.md has the table).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use crate::http1::ParseError;

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
    #[error("No hosts are available for {0}")]
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
}

impl ProxyError {
    pub fn side(&self) -> Side {
        match self {
            ProxyError::BadRequest(_)
            | ProxyError::UnknownDestination(_)
            | ProxyError::CallDepthExceeded(_)
            | ProxyError::RequestTooLarge
            | ProxyError::ClientIo(_) => Side::Client,
            ProxyError::NoRoute(_)
            | ProxyError::NoEndpoints(_)
            | ProxyError::TotalTimeout(_)
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

    /// The status answered to the client, when nothing of the response has
    /// been sent yet.
    pub fn status(&self) -> u16 {
        match self {
            ProxyError::BadRequest(e) => e.request_status(),
            ProxyError::UnknownDestination(_) | ProxyError::CallDepthExceeded(_) => 400,
            ProxyError::RequestTooLarge => 413,
            ProxyError::TotalTimeout(_) | ProxyError::AttemptTimeout { .. } => 503,
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
    }
}
