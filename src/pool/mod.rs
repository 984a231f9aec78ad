//! Per-core pool of idle upstream connections, keyed by endpoint (the TLS work
//! adds the verified identity to the key). Owned by one core's event loop and
//! used through `&mut`: no lock, no atomic.
//!
//! A connection goes back only after its response was read completely with
//! definite framing and the upstream did not ask to close; that is the
//! caller's decision (`proxy::exchange`). Idle connections are taken newest
//! first (the least likely to have been closed by the server) and dropped
//! after `idle_timeout`, except the `min_idle` oldest (linkerd's `minSize`).
//!
//! [`HostSlots`] bounds the connections open to one endpoint (linkerd's
//! `maxSize`) and counts the requests waiting for one (`maxWaiters`).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
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
    /// The `min_idle` of the limits it was returned with.
    min_idle: usize,
}

/// How long an idle connection is kept and how many per key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolLimits {
    pub max_idle: usize,
    pub idle_timeout: Duration,
    /// Idle connections kept past `idle_timeout` (linkerd's `minSize`, per
    /// core): the first requests after a quiet spell find them warm.
    pub min_idle: usize,
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
            // After the pop, `list.len()` is this connection's position.
            if now < conn.expires || list.len() < conn.min_idle {
                return Some(conn.stream);
            }
        }
        None
    }

    /// Returns a reusable connection. Beyond `max_idle` for the key the oldest
    /// idle connection is closed, keeping the warmest ones.
    pub fn put(&mut self, key: K, stream: S, now: Instant, limits: PoolLimits) {
        if limits.max_idle == 0 || (limits.idle_timeout.is_zero() && limits.min_idle == 0) {
            return;
        }
        let list = self.idle.entry(key).or_default();
        if list.len() >= limits.max_idle {
            list.remove(0);
        }
        list.push(Idle { stream, expires: now + limits.idle_timeout, min_idle: limits.min_idle });
    }

    /// Closes connections past their idle timeout (beyond the `min_idle`
    /// oldest), and those `healthy` says are not (a server that hung up, or
    /// wrote past its response while the connection sat idle). Run
    /// periodically.
    pub fn sweep(&mut self, now: Instant, healthy: impl Fn(&S) -> bool) {
        self.idle.retain(|_, list| {
            let mut position = 0;
            list.retain(|c| {
                let keep = (now < c.expires || position < c.min_idle) && healthy(&c.stream);
                position += usize::from(keep);
                keep
            });
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

/// `hostConnectionPool` for one client on one core. corelink's pools are per
/// core, so linkerd's per-host numbers are divided among the workers
/// (rounded up): with `maxSize: 10` and 4 workers each core opens at most 3
/// connections to an endpoint, 12 in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolPolicy {
    pub limits: PoolLimits,
    /// `maxSize`: connections open to one endpoint (None: unbounded).
    pub max_size: Option<usize>,
    /// `maxWaiters`: requests waiting for a connection once `maxSize` are
    /// open; past it a request fails at once (None: unbounded).
    pub max_waiters: Option<usize>,
}

impl PoolPolicy {
    pub fn new(config: &config::HostConnectionPool, cores: usize) -> PoolPolicy {
        use config::{DEFAULT_POOL_IDLE_MS, DEFAULT_POOL_MAX_IDLE};
        let per_core = |n: usize| n.div_ceil(cores.max(1));
        PoolPolicy {
            limits: PoolLimits {
                max_idle: config.max_idle.unwrap_or(DEFAULT_POOL_MAX_IDLE),
                idle_timeout: Duration::from_millis(config.idle_time_ms.unwrap_or(DEFAULT_POOL_IDLE_MS)),
                min_idle: config.min_size.map_or(0, per_core),
            },
            max_size: config.max_size.map(|n| per_core(n).max(1)),
            max_waiters: config.max_waiters.map(per_core),
        }
    }
}

/// The connections open to one endpoint on one core (in use or idle), for
/// `hostConnectionPool.maxSize`, and the requests waiting for one of them to
/// come back or close (`maxWaiters`). Single-threaded: `Cell`s and wakers,
/// no lock.
#[derive(Debug, Default)]
pub struct HostSlots {
    open: Cell<usize>,
    waiting: Cell<usize>,
    /// Bumped whenever a connection is returned or closed: a waiter that
    /// saw an older value has something to retry.
    releases: Cell<u64>,
    wakers: RefCell<Vec<Waker>>,
}

impl HostSlots {
    /// A slot for a new connection if fewer than `max` are open.
    pub fn try_open(self: &Rc<Self>, max: usize) -> Option<SlotPermit> {
        if self.open.get() >= max {
            return None;
        }
        self.open.set(self.open.get() + 1);
        Some(SlotPermit(self.clone()))
    }

    pub fn open(&self) -> usize {
        self.open.get()
    }

    pub fn waiting(&self) -> usize {
        self.waiting.get()
    }

    /// Waits until a connection is returned to the pool or closed, counted
    /// among the waiters meanwhile. Dropping the future stops waiting.
    pub fn released(self: &Rc<Self>) -> Released {
        self.waiting.set(self.waiting.get() + 1);
        Released { slots: self.clone(), seen: self.releases.get() }
    }

    /// A connection came back idle or closed: every waiter checks again
    /// (there are at most `maxWaiters` of them).
    pub fn release(&self) {
        self.releases.set(self.releases.get().wrapping_add(1));
        for waker in self.wakers.take() {
            waker.wake();
        }
    }
}

/// One open connection's place in its endpoint's [`HostSlots`], given back
/// (and a waiter woken) when the connection closes.
#[derive(Debug)]
pub struct SlotPermit(Rc<HostSlots>);

impl SlotPermit {
    /// The connection went back to the pool: a waiter may take it.
    pub fn returned(&self) {
        self.0.release();
    }
}

impl Drop for SlotPermit {
    fn drop(&mut self) {
        self.0.open.set(self.0.open.get() - 1);
        self.0.release();
    }
}

/// See [`HostSlots::released`].
pub struct Released {
    slots: Rc<HostSlots>,
    seen: u64,
}

impl Future for Released {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.slots.releases.get() != self.seen {
            return Poll::Ready(());
        }
        let mut wakers = self.slots.wakers.borrow_mut();
        if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
            wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

impl Drop for Released {
    fn drop(&mut self) {
        self.slots.waiting.set(self.slots.waiting.get() - 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: PoolLimits = PoolLimits { max_idle: 2, idle_timeout: Duration::from_secs(10), min_idle: 0 };

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
        let short = PoolLimits { max_idle: 4, idle_timeout: Duration::from_secs(1), min_idle: 0 };
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

    #[test]
    fn policy_divides_per_host_limits_among_cores() {
        let config = config::HostConnectionPool {
            min_size: Some(3),
            max_size: Some(10),
            max_waiters: Some(0),
            ..Default::default()
        };
        let policy = PoolPolicy::new(&config, 4);
        assert_eq!(policy.max_size, Some(3));
        assert_eq!(policy.max_waiters, Some(0));
        assert_eq!(policy.limits.min_idle, 1);
        let one = PoolPolicy::new(&config::HostConnectionPool { max_size: Some(1), ..Default::default() }, 4);
        assert_eq!(one.max_size, Some(1), "never zero");
        let unbounded = PoolPolicy::new(&Default::default(), 2);
        assert_eq!((unbounded.max_size, unbounded.max_waiters, unbounded.limits.min_idle), (None, None, 0));
    }

    #[test]
    fn min_idle_connections_outlive_the_idle_timeout() {
        let t0 = Instant::now();
        let limits = PoolLimits { max_idle: 4, idle_timeout: Duration::from_secs(1), min_idle: 2 };
        let mut pool = Pool::new();
        for conn in 1..=3 {
            pool.put(1, conn, t0, limits);
        }
        let later = t0 + Duration::from_secs(5);
        pool.sweep(later, |_| true);
        assert_eq!(pool.idle_count(), 2, "the two oldest stay");
        pool.sweep(later, |&c| c != 1);
        assert_eq!(pool.idle_count(), 1, "an unhealthy one still goes");
        assert_eq!(pool.take(&1, later), Some(2));
        assert_eq!(pool.take(&1, later), None);
    }

    #[test]
    fn host_slots_bound_open_connections_and_wake_waiters() {
        let slots = Rc::new(HostSlots::default());
        let first = slots.try_open(2).expect("a slot");
        let second = slots.try_open(2).expect("a slot");
        assert!(slots.try_open(2).is_none(), "maxSize reached");
        assert_eq!(slots.open(), 2);

        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut wait = Box::pin(slots.released());
        assert_eq!(slots.waiting(), 1);
        assert!(wait.as_mut().poll(&mut cx).is_pending());
        first.returned();
        assert!(wait.as_mut().poll(&mut cx).is_ready(), "a returned connection wakes the waiter");
        drop(wait);
        assert_eq!(slots.waiting(), 0);

        let mut wait = Box::pin(slots.released());
        assert!(wait.as_mut().poll(&mut cx).is_pending());
        drop(second);
        assert_eq!(slots.open(), 1);
        assert!(wait.as_mut().poll(&mut cx).is_ready(), "a closed connection wakes the waiter");
        drop(wait);
        drop(first);
        assert_eq!((slots.open(), slots.waiting()), (0, 0));
    }
}
