//! This core's connections to upstreams: the idle pool, and the `maxSize`
//! accounting of each pool key.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use crate::io::{MaybeTls, Stream};
use crate::pool::{HostSlots, Pool, PoolLimits, SlotPermit};
use crate::telemetry::metrics::OpenGuard;

/// Pooled connections are per router, endpoint and TLS identity: routers may
/// differ in client settings, and a TLS connection verified for one name
/// must never carry a request meant for another.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PoolKey {
    pub router: usize,
    pub addr: SocketAddr,
    /// The verified TLS identity (configuration serial and name); None:
    /// plaintext.
    pub tls_identity: Option<Rc<str>>,
}

/// A connection to an upstream, counted in its bound name's `connections`
/// gauge while it lives, in use or pooled, and holding its endpoint's
/// `maxSize` slot when the pool is bounded.
pub struct Upstream<S> {
    pub conn: MaybeTls<S>,
    _open: OpenGuard,
    slot: Option<SlotPermit>,
}

impl<S> Upstream<S> {
    pub fn new(conn: MaybeTls<S>, open: OpenGuard, slot: Option<SlotPermit>) -> Self {
        Upstream { conn, _open: open, slot }
    }

    /// Its `maxSize` slot, moved to the connection that replaces it.
    pub fn take_slot(&mut self) -> Option<SlotPermit> {
        self.slot.take()
    }

    /// The connection went back to the pool: a request waiting for a slot
    /// of its endpoint may take it.
    #[inline]
    pub fn returned(&self) {
        if let Some(slot) = &self.slot {
            slot.returned();
        }
    }
}

impl<S> std::ops::Deref for Upstream<S> {
    type Target = MaybeTls<S>;
    fn deref(&self) -> &MaybeTls<S> {
        &self.conn
    }
}

/// The idle connections of one core, and the open/waiting counts of the
/// pool keys whose clients have a `maxSize`.
pub struct Upstreams<S> {
    idle: RefCell<Pool<PoolKey, Upstream<S>>>,
    /// No entry for keys without a `maxSize`.
    slots: RefCell<HashMap<PoolKey, Rc<HostSlots>>>,
}

impl<S: Stream> Upstreams<S> {
    pub fn new() -> Self {
        Upstreams { idle: RefCell::new(Pool::new()), slots: RefCell::new(HashMap::new()) }
    }

    /// The newest idle connection for `key` that is still clean.
    pub fn take_idle(&self, key: &PoolKey, now: Instant) -> Option<Upstream<S>> {
        loop {
            let conn = self.idle.borrow_mut().take(key, now)?;
            if !conn.has_unread_input() {
                return Some(conn);
            }
            // The server wrote past its last response, or hung up, while the
            // connection sat idle: drop it rather than misread those bytes.
            tracing::debug!(addr = %key.addr, "discarding a pooled connection with unread input");
        }
    }

    /// Keeps a connection whose exchange ended cleanly for the next request
    /// to `key`, and tells a request waiting for a slot of its endpoint.
    pub fn put_idle(&self, key: PoolKey, conn: Upstream<S>, now: Instant, limits: PoolLimits) {
        conn.returned();
        conn.watch_unread_input();
        self.idle.borrow_mut().put(key, conn, now, limits);
    }

    /// The `maxSize` accounting of one pool key, created on first use.
    pub fn slots(&self, key: &PoolKey) -> Rc<HostSlots> {
        let mut all = self.slots.borrow_mut();
        if let Some(s) = all.get(key) {
            return s.clone();
        }
        all.entry(key.clone()).or_default().clone()
    }

    /// Closes idle connections past their idle timeout or with unread
    /// input, and forgets keys with nothing open and nobody waiting.
    pub fn close_idle(&self, now: Instant) {
        self.idle.borrow_mut().sweep(now, |conn| !conn.has_unread_input());
        // Open connections and waiters hold the other references.
        self.slots.borrow_mut().retain(|_, s| Rc::strong_count(s) > 1);
    }

    /// Closes every idle connection (draining).
    pub fn close_all_idle(&self) {
        self.idle.borrow_mut().clear();
    }
}

impl<S: Stream> Default for Upstreams<S> {
    fn default() -> Self {
        Self::new()
    }
}
