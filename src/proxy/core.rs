//! Per-core state. One `Core` per worker thread, shared by its connection
//! tasks through `Rc`; `Cell`/`RefCell` only, never held across an await.
//! Each field is one concern with its own type, so a reader sees from a
//! call (`core.buffers.take()`, `core.upstreams.take_idle(..)`) what it
//! touches.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use super::buffers::Buffers;
use super::conn::ParkedConnection;
use super::parked::Parked;
use super::upstream::Upstreams;
use crate::io::Backend;
use crate::table::RouteTable;
use crate::telemetry::access_log::CoreLines;
use crate::telemetry::metrics::CoreMetrics;

pub struct Core<B: Backend> {
    /// This core's view of the routing snapshot and its resolved
    /// destinations.
    pub routes: RouteTable,
    /// This core's metrics (also handed to route entries by `routes`).
    pub metrics: Rc<CoreMetrics>,
    /// Idle upstream connections and `maxSize` accounting.
    pub upstreams: Upstreams<B::Stream>,
    pub buffers: Buffers,
    /// `maxConcurrentRequests` per server on this core.
    pub admission: Admission,
    /// Access log lines waiting for their writer.
    pub access_logs: CoreLines,
    pub shutdown: Shutdown,
    /// Idle keep-alive client connections, parked without a task.
    pub parked: Parked<ParkedConnection<B>>,
}

impl<B: Backend> Core<B> {
    pub fn new(routes: RouteTable, buffer_size: usize) -> Rc<Self> {
        Rc::new(Core {
            metrics: routes.metrics().clone(),
            routes,
            upstreams: Upstreams::new(),
            buffers: Buffers::new(buffer_size),
            admission: Admission::default(),
            access_logs: CoreLines::default(),
            shutdown: Shutdown::default(),
            parked: Parked::default(),
        })
    }
}

/// Requests in flight per server index on this core, for servers with
/// `maxConcurrentRequests` (created on first use).
#[derive(Default)]
pub struct Admission {
    in_flight: RefCell<Vec<Option<Rc<Cell<usize>>>>>,
}

impl Admission {
    /// A permit on `server` if fewer than `max` (this core's share) of its
    /// requests are in flight here.
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
/// waiting for their next request are woken and closed. It also counts the
/// open client connections, so the worker knows when draining is done.
#[derive(Default)]
pub struct Shutdown {
    draining: Cell<bool>,
    notify: tokio::sync::Notify,
    open_connections: Cell<usize>,
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

    pub fn connection_opened(&self) {
        self.open_connections.set(self.open_connections.get() + 1);
    }

    pub fn connection_closed(&self) {
        self.open_connections.set(self.open_connections.get() - 1);
    }

    /// Client connections open on this core (also while parked).
    pub fn open_connections(&self) -> usize {
        self.open_connections.get()
    }
}

#[cfg(test)]
impl Core<crate::io::epoll::Epoll> {
    /// One core over a one-router config, for unit tests.
    pub(super) fn for_tests() -> Rc<Self> {
        let config = config::Config::parse("routers:\n- protocol: http\n  servers: [{port: 1}]\n", "t").unwrap();
        let snapshot = crate::server::control::compile(&config, 1).unwrap();
        let routes = RouteTable::new(crate::table::SharedSnapshot::new(snapshot));
        Core::new(routes, 16384)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_are_counted_per_server_and_given_back_on_drop() {
        let admission = Admission::default();
        let first = admission.admit(0, 2).unwrap();
        let second = admission.admit(0, 2).unwrap();
        assert!(admission.admit(0, 2).is_none(), "full");
        assert!(admission.admit(3, 1).is_some(), "another server has its own count");
        drop(first);
        assert!(admission.admit(0, 2).is_some(), "a dropped permit is given back");
        drop(second);
    }
}
