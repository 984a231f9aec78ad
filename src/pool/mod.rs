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
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::time::{Duration, Instant};

/// Idle connections per key (the router and endpoint; the TLS work adds the
/// verified identity), each with the limits of the router that returned it.
pub struct Pool<K, S> {
    idle: HashMap<K, Vec<Idle<S>>, BuildHasherDefault<FxHasher>>,
}

/// The multiply-rotate hash rustc uses (FxHash). Pool keys are the router
/// index and an endpoint address, which come from the config and the namers,
/// never from a client, so a fast unseeded hash is safe here; std's SipHash
/// measured ~4 % of a proxied request's instructions (callgrind).
#[derive(Default)]
pub struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }

    fn write_u16(&mut self, n: u16) {
        self.write_u64(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

struct Idle<S> {
    stream: S,
    expires: Instant,
}

/// How long an idle connection is kept and how many per key.
#[derive(Debug, Clone, Copy)]
pub struct PoolLimits {
    pub max_idle: usize,
    pub idle_timeout: Duration,
}

impl<K: Hash + Eq, S> Default for Pool<K, S> {
    fn default() -> Self {
        Pool { idle: HashMap::default() }
    }
}

impl<K: Hash + Eq, S> Pool<K, S> {
    pub fn new() -> Self {
        Self::default()
    }

    /// The most recently returned live connection for `key`, if any.
    pub fn take(&mut self, key: &K, now: Instant) -> Option<S> {
        let list = self.idle.get_mut(key)?;
        while let Some(conn) = list.pop() {
            if now < conn.expires {
                return Some(conn.stream);
            }
        }
        None
    }

    /// Returns a reusable connection. Beyond `max_idle` for the key the oldest
    /// idle connection is closed, keeping the warmest ones.
    pub fn put(&mut self, key: K, stream: S, now: Instant, limits: PoolLimits) {
        if limits.max_idle == 0 || limits.idle_timeout.is_zero() {
            return;
        }
        let list = self.idle.entry(key).or_default();
        if list.len() >= limits.max_idle {
            list.remove(0);
        }
        list.push(Idle { stream, expires: now + limits.idle_timeout });
    }

    /// Closes connections past their idle timeout, and those `healthy` says
    /// are not (a server that hung up, or wrote past its response while the
    /// connection sat idle). Run periodically.
    pub fn sweep(&mut self, now: Instant, healthy: impl Fn(&S) -> bool) {
        self.idle.retain(|_, list| {
            list.retain(|c| now < c.expires && healthy(&c.stream));
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

    const LIMITS: PoolLimits = PoolLimits { max_idle: 2, idle_timeout: Duration::from_secs(10) };

    #[test]
    fn newest_first_and_bounded() {
        let t0 = Instant::now();
        let mut pool = Pool::new();
        pool.put(1, "a", t0, LIMITS);
        pool.put(1, "b", t0, LIMITS);
        pool.put(1, "c", t0, LIMITS);
        assert_eq!(pool.idle_count(), 2);
        assert_eq!(pool.take(&1, t0), Some("c"));
        assert_eq!(pool.take(&1, t0), Some("b"));
        assert_eq!(pool.take(&1, t0), None);
        assert_eq!(pool.take(&2, t0), None);
    }

    #[test]
    fn idle_timeout_expires_connections() {
        let t0 = Instant::now();
        let short = PoolLimits { max_idle: 4, idle_timeout: Duration::from_secs(1) };
        let mut pool = Pool::new();
        pool.put(1, 1, t0, short);
        pool.put(1, 2, t0 + Duration::from_millis(900), short);
        assert_eq!(pool.take(&1, t0 + Duration::from_millis(1500)), Some(2));
        assert_eq!(pool.take(&1, t0 + Duration::from_millis(1500)), None);
        pool.put(1, 3, t0 + Duration::from_secs(2), short);
        pool.sweep(t0 + Duration::from_secs(2), |&s| s != 3);
        assert_eq!(pool.idle_count(), 0, "an unhealthy connection is swept");
        pool.put(1, 3, t0, short);
        pool.sweep(t0 + Duration::from_secs(2), |_| true);
        assert_eq!(pool.idle_count(), 0);
    }
}
