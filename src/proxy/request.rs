//! What the client connection (`conn`) hands the exchange for one request,
//! and what it does next: the types both sides share, so neither imports
//! the other.

use std::time::Duration;

use http1::{BodyReader, Method, Version};

use crate::table::Route;

/// What the exchange needs to know about the request once its head is gone
/// from the buffer.
#[derive(Debug, Clone, Copy)]
pub(super) struct RequestMeta {
    pub method: Method,
    pub version: Version,
    pub keep_alive: bool,
    pub upgrade: bool,
    /// Safe to send again on a fresh connection if a pooled one turns out dead.
    pub replay_safe: bool,
}

pub(super) struct Prepared {
    pub meta: RequestMeta,
    pub route: Route,
    pub body: BodyReader,
}

/// What the client connection does after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    KeepAlive,
    Close,
    /// Idle for `HOT_IDLE` (conn): move to a small task for the rest of the idle
    /// timeout.
    Park(Duration),
}
