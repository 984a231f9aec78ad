//! Per-core state. One `CoreCtx` per worker thread, shared by its connection
//! tasks through `Rc`; `Cell`/`RefCell` only, never held across an await.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;

use crate::io::{Backend, MaybeTls};
use crate::pool::{HostSlots, Pool, SlotPermit};
use crate::table::CoreRoutes;

/// Size of the buffer an idle io_uring connection parks a read in.
const SMALL_BUFFER: usize = 512;
/// Free buffers kept per core; beyond that they are freed.
const MAX_FREE_BUFFERS: usize = 1024;

/// Pooled connections are per router, endpoint and TLS identity: routers may
/// differ in client settings, and a TLS connection verified for one name
/// must never carry a request meant for another (None: plaintext).
pub type PoolKey = (usize, SocketAddr, Option<Rc<str>>);

/// A connection to an upstream, counted in its bound name's `connections`
/// gauge while it lives, in use or pooled, and holding its endpoint's
/// `maxSize` slot when the pool is bounded.
pub struct Upstream<S> {
    pub conn: MaybeTls<S>,
    _open: crate::telemetry::metrics::OpenGuard,
    slot: Option<SlotPermit>,
}

impl<S> Upstream<S> {
    pub fn new(conn: MaybeTls<S>, open: crate::telemetry::metrics::OpenGuard, slot: Option<SlotPermit>) -> Self {
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

/// One request counted against its server's `maxConcurrentRequests` on
/// this core, until dropped (when its response head arrives, as finagle
/// releases its semaphore when the response future is satisfied).
#[derive(Debug)]
pub struct ConcurrencyPermit(Rc<Cell<usize>>);

impl Drop for ConcurrencyPermit {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

/// The worker's view of shutdown: set once draining starts; idle connections
/// waiting for their next request are woken and closed.
#[derive(Default)]
pub struct Shutdown {
    draining: Cell<bool>,
    notify: tokio::sync::Notify,
}

impl Shutdown {
    pub fn is_draining(&self) -> bool {
        self.draining.get()
    }

    pub fn start_draining(&self) {
        self.draining.set(true);
        self.notify.notify_waiters();
    }

    /// Resolves once draining has started.
    pub async fn draining(&self) {
        let notified = self.notify.notified();
        if self.draining.get() {
            return;
        }
        notified.await;
    }
}

pub struct CoreCtx<B: Backend> {
    pub core: usize,
    pub pool: RefCell<Pool<PoolKey, Upstream<B::Stream>>>,
    /// Open connections and waiters per pool key, for clients with a
    /// `maxSize` (no entry otherwise).
    slots: RefCell<std::collections::HashMap<PoolKey, Rc<HostSlots>>>,
    pub routes: CoreRoutes,
    pub shutdown: Shutdown,
    /// Open client connections on this core (for draining).
    pub active: Cell<usize>,
    buffer_size: usize,
    free: RefCell<Vec<Vec<u8>>>,
    free_small: RefCell<Vec<Vec<u8>>>,
    /// Access log lines waiting for the flush task, per log.
    access_lines: RefCell<Vec<(std::sync::Arc<crate::telemetry::access_log::AccessLog>, Vec<u8>)>>,
    /// Requests in flight per server index on this core, for servers with
    /// `maxConcurrentRequests` (created on first use).
    in_flight: RefCell<Vec<Option<Rc<Cell<usize>>>>>,
}

impl<B: Backend> CoreCtx<B> {
    pub fn new(core: usize, routes: CoreRoutes, buffer_size: usize) -> Rc<Self> {
        Rc::new(CoreCtx {
            core,
            pool: RefCell::new(Pool::new()),
            slots: RefCell::new(std::collections::HashMap::new()),
            routes,
            shutdown: Shutdown::default(),
            active: Cell::new(0),
            buffer_size,
            free: RefCell::new(Vec::new()),
            free_small: RefCell::new(Vec::new()),
            access_lines: RefCell::new(Vec::new()),
            in_flight: RefCell::new(Vec::new()),
        })
    }

    /// A `maxConcurrentRequests` permit on `server` if fewer than `max`
    /// (this core's share) of its requests are in flight here.
    pub fn admit(&self, server: usize, max: usize) -> Option<ConcurrencyPermit> {
        let count = {
            let mut all = self.in_flight.borrow_mut();
            if all.len() <= server {
                all.resize(server + 1, None);
            }
            all[server].get_or_insert_with(Default::default).clone()
        };
        if count.get() >= max {
            return None;
        }
        count.set(count.get() + 1);
        Some(ConcurrencyPermit(count))
    }

    /// The `maxSize` accounting of one pool key, created on first use.
    pub fn slots(&self, key: &PoolKey) -> Rc<HostSlots> {
        let mut all = self.slots.borrow_mut();
        if let Some(s) = all.get(key) {
            return s.clone();
        }
        all.entry(key.clone()).or_default().clone()
    }

    /// Forgets keys with nothing open and nobody waiting (from the sweeper).
    pub fn sweep_slots(&self) {
        // Open connections and waiters hold the other references.
        self.slots.borrow_mut().retain(|_, s| Rc::strong_count(s) > 1);
    }

    /// An empty buffer with `buffer_size` capacity, recycled when possible so
    /// a keep-alive connection allocates nothing per request.
    pub fn take_buffer(&self) -> Vec<u8> {
        self.free.borrow_mut().pop().unwrap_or_else(|| Vec::with_capacity(self.buffer_size))
    }

    pub fn give_buffer(&self, mut buf: Vec<u8>) {
        // Buffers that grew (a large head) or lost their allocation (a
        // cancelled read) are not recycled, so the pool stays uniform.
        if buf.capacity() != self.buffer_size {
            return;
        }
        let mut free = self.free.borrow_mut();
        if free.len() < MAX_FREE_BUFFERS {
            buf.clear();
            free.push(buf);
        }
    }

    pub fn take_small(&self) -> Vec<u8> {
        self.free_small.borrow_mut().pop().unwrap_or_else(|| Vec::with_capacity(SMALL_BUFFER))
    }

    pub fn give_small(&self, mut buf: Vec<u8>) {
        let mut free = self.free_small.borrow_mut();
        if buf.capacity() == SMALL_BUFFER && free.len() < MAX_FREE_BUFFERS {
            buf.clear();
            free.push(buf);
        }
    }

    /// Appends a finished request's access log line to this core's buffer
    /// for `log`; a full buffer goes to the writer at once.
    pub fn log_access(
        &self,
        log: &std::sync::Arc<crate::telemetry::access_log::AccessLog>,
        pending: &[u8],
        status: u16,
        size: u64,
    ) {
        let mut all = self.access_lines.borrow_mut();
        let i = match all.iter().position(|(l, _)| std::sync::Arc::ptr_eq(l, log)) {
            Some(i) => i,
            None => {
                all.push((log.clone(), Vec::with_capacity(4096)));
                all.len() - 1
            }
        };
        let buf = &mut all[i].1;
        crate::telemetry::access_log::finish_line(buf, pending, status, Some(size));
        if buf.len() >= crate::telemetry::access_log::FLUSH_AT {
            log.submit(std::mem::take(buf));
        }
    }

    /// Hands every buffered access log line to its writer.
    pub fn flush_access_logs(&self) {
        for (log, buf) in self.access_lines.borrow_mut().iter_mut() {
            if !buf.is_empty() {
                log.submit(std::mem::take(buf));
            }
        }
    }

    pub fn buffer_size(&self) -> usize {
        self.buffer_size
    }
}

#[cfg(test)]
impl CoreCtx<crate::io::epoll::Epoll> {
    /// One core's context over a one-router config, for unit tests.
    pub(super) fn for_tests() -> Rc<Self> {
        let config = config::Config::parse("routers:\n- protocol: http\n  servers: [{port: 1}]\n", "t").unwrap();
        let snapshot = crate::server::control::compile(&config, 1).unwrap();
        let routes = CoreRoutes::new(crate::table::SharedSnapshot::new(snapshot));
        CoreCtx::new(0, routes, 16384)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_are_counted_per_server_and_given_back_on_drop() {
        let ctx = CoreCtx::for_tests();
        let first = ctx.admit(0, 2).unwrap();
        let second = ctx.admit(0, 2).unwrap();
        assert!(ctx.admit(0, 2).is_none(), "full");
        assert!(ctx.admit(3, 1).is_some(), "another server has its own count");
        drop(first);
        assert!(ctx.admit(0, 2).is_some(), "a dropped permit is given back");
        drop(second);
    }
}
