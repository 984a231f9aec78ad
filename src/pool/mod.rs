//! Per-core pool of idle upstream connections, keyed by endpoint (the TLS work
//! adds the verified identity to the key). Owned by one core's event loop and
//! used through `&mut`: no lock, no atomic.
//!
//! A connection goes back only after its response was read completely with
//! definite framing and the upstream did not ask to close; that is the
//! caller's decision (`proxy::exchange`). Idle connections are taken newest
//! first (the least likely to have been closed by the server) and dropped
//! after `idle_timeout`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub struct Pool<S> {
    idle: HashMap<SocketAddr, Vec<Idle<S>>>,
    max_idle_per_endpoint: usize,
    idle_timeout: Duration,
}

struct Idle<S> {
    stream: S,
    since: Instant,
}

impl<S> Pool<S> {
    pub fn new(max_idle_per_endpoint: usize, idle_timeout: Duration) -> Self {
        Pool {
            idle: HashMap::new(),
            max_idle_per_endpoint,
            idle_timeout,
        }
    }

    pub fn set_limits(&mut self, max_idle_per_endpoint: usize, idle_timeout: Duration) {
        self.max_idle_per_endpoint = max_idle_per_endpoint;
        self.idle_timeout = idle_timeout;
    }

    /// The most recently returned live connection to `addr`, if any.
    pub fn take(&mut self, addr: SocketAddr, now: Instant) -> Option<S> {
        let list = self.idle.get_mut(&addr)?;
        while let Some(conn) = list.pop() {
            if now.saturating_duration_since(conn.since) < self.idle_timeout {
                return Some(conn.stream);
            }
            // Older than the idle timeout: everything below it is older still.
            list.clear();
        }
        None
    }

    /// Returns a reusable connection. Beyond the per-endpoint bound the oldest
    /// idle connection is closed, keeping the warmest ones.
    pub fn put(&mut self, addr: SocketAddr, stream: S, now: Instant) {
        if self.max_idle_per_endpoint == 0 {
            return;
        }
        let list = self.idle.entry(addr).or_default();
        if list.len() >= self.max_idle_per_endpoint {
            list.remove(0);
        }
        list.push(Idle { stream, since: now });
    }

    /// Closes connections idle longer than the timeout. Run periodically.
    pub fn sweep(&mut self, now: Instant) {
        let timeout = self.idle_timeout;
        self.idle.retain(|_, list| {
            list.retain(|c| now.saturating_duration_since(c.since) < timeout);
            !list.is_empty()
        });
    }

    /// Closes everything (shutdown).
    pub fn clear(&mut self) {
        self.idle.clear();
    }

    pub fn idle_count(&self) -> usize {
        self.idle.values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn newest_first_and_bounded() {
        let t0 = Instant::now();
        let mut pool = Pool::new(2, Duration::from_secs(10));
        pool.put(addr(1), "a", t0);
        pool.put(addr(1), "b", t0);
        pool.put(addr(1), "c", t0);
        assert_eq!(pool.idle_count(), 2);
        assert_eq!(pool.take(addr(1), t0), Some("c"));
        assert_eq!(pool.take(addr(1), t0), Some("b"));
        assert_eq!(pool.take(addr(1), t0), None);
        assert_eq!(pool.take(addr(2), t0), None);
    }

    #[test]
    fn idle_timeout_expires_connections() {
        let t0 = Instant::now();
        let mut pool = Pool::new(4, Duration::from_secs(1));
        pool.put(addr(1), 1, t0);
        pool.put(addr(1), 2, t0 + Duration::from_millis(900));
        assert_eq!(
            pool.take(addr(1), t0 + Duration::from_millis(1500)),
            Some(2)
        );
        pool.put(addr(1), 3, t0);
        pool.sweep(t0 + Duration::from_secs(2));
        assert_eq!(pool.idle_count(), 0);
    }
}
