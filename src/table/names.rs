//! Per core: the answers for host names only requests supplied (a bound
//! `/$/inet/HOST/PORT` whose HOST the snapshot has no answer for). A miss
//! asks the control thread (`namer::dns::request`) and the request waits
//! for the answer, which arrives on this core's channel and is kept here,
//! per name, until its TTL runs out: no snapshot is compiled for it.
//!
//! Nothing here locks or blocks: the entries are this core's (`RefCell`),
//! an ask is a `try_send`, and a waiting request is woken by the task that
//! takes the answers in (`server::worker`).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::namer::dns::request::{Ask, CoreChannel, Reply};
use crate::namer::dns::{DnsStats, HostAnswer};

/// Names being resolved for this core's requests at once, at most: past it
/// a new name fails at once (`dns/request/dropped`).
const MAX_PENDING: usize = 256;
/// A stale answer serves this long more while its refresh is under way.
const STALE_GRACE: Duration = Duration::from_secs(1);
/// A name that could not be asked for is negative this long.
const DROPPED_FOR: Duration = Duration::from_secs(1);

/// What a core knows of a request-supplied host name.
#[derive(Debug, Clone, PartialEq)]
pub enum HostLookup {
    /// Its addresses, usable until the instant.
    Addrs(Vec<IpAddr>, Instant),
    /// No addresses (why), until the instant.
    Negative(String, Instant),
    /// Asked; the request waits ([`CoreNames::wait`]).
    Resolving,
}

/// Wakes the requests waiting for one name.
#[derive(Default)]
struct Waiter {
    done: Cell<bool>,
    wakers: RefCell<Vec<Waker>>,
}

/// Resolves once the name's answer arrived (or it was dropped).
pub struct Wait(Rc<Waiter>);

impl Future for Wait {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0.done.get() {
            return Poll::Ready(());
        }
        let mut wakers = self.0.wakers.borrow_mut();
        if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
            wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

enum Entry {
    Pending(Rc<Waiter>),
    Known { answer: Result<Vec<IpAddr>, Rc<str>>, expires: Instant, refreshing: bool },
}

struct Channel {
    core: usize,
    asks: tokio::sync::mpsc::Sender<Ask>,
    stats: Arc<DnsStats>,
    max_names: usize,
    timeout: Duration,
}

/// This core's request-supplied names.
pub struct CoreNames {
    channel: Option<Channel>,
    entries: RefCell<HashMap<Box<str>, Entry>>,
    pending: Cell<usize>,
}

impl CoreNames {
    /// No resolution at request time (tests, benchmarks): such names are
    /// "not a resolved address".
    pub fn none() -> CoreNames {
        CoreNames { channel: None, entries: RefCell::default(), pending: Cell::new(0) }
    }

    /// Asks through `channel` (whose reply end the caller hands to
    /// [`CoreNames::answer`]'s task).
    pub fn new(channel: &CoreChannel) -> CoreNames {
        CoreNames {
            channel: Some(Channel {
                core: channel.core,
                asks: channel.asks.clone(),
                stats: channel.stats.clone(),
                max_names: channel.config.max_names,
                timeout: Duration::from_millis(channel.config.timeout_ms),
            }),
            entries: RefCell::default(),
            pending: Cell::new(0),
        }
    }

    /// How long a request may wait for a name: the resolution timeout, and
    /// never past the server's own `timeoutMs`.
    pub fn wait_limit(&self, server_timeout: Option<Duration>) -> Duration {
        let dns = self.channel.as_ref().map_or(Duration::ZERO, |c| c.timeout);
        server_timeout.map_or(dns, |t| t.min(dns))
    }

    /// Counts a request that waited, and whether its wait ran out.
    pub fn count_wait(&self, timed_out: bool) {
        if let Some(c) = &self.channel {
            c.stats.request_waits.fetch_add(1, Ordering::Relaxed);
            if timed_out {
                c.stats.request_wait_timeouts.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The addresses of `host`, asking the control thread when it has no
    /// usable answer here.
    pub fn lookup(&self, host: &str, now: Instant) -> HostLookup {
        let Some(channel) = &self.channel else {
            return HostLookup::Negative(format!("{host} is not a resolved address"), now + DROPPED_FOR);
        };
        // A resolver could only refuse it: no ask, no share of the rate.
        // (`/#/…`: an `io.l5d.dnssrv` record, asked for by its path.)
        if !host.starts_with('/') && !naming::inet::is_dns_host_name(host.as_bytes()) {
            channel.stats.request_invalid.fetch_add(1, Ordering::Relaxed);
            return HostLookup::Negative(format!("{host}: not a valid DNS host name"), now + DROPPED_FOR);
        }
        let mut entries = self.entries.borrow_mut();
        match entries.get_mut(host) {
            Some(Entry::Pending(_)) => return HostLookup::Resolving,
            Some(Entry::Known { answer, expires, .. }) if *expires > now => {
                return match answer {
                    Ok(ips) => HostLookup::Addrs(ips.clone(), *expires),
                    Err(why) => HostLookup::Negative(why.to_string(), *expires),
                }
            }
            // Stale addresses serve while they are asked for again.
            Some(Entry::Known { answer: Ok(ips), refreshing, .. }) => {
                if !*refreshing {
                    *refreshing = self.ask(channel, host);
                }
                return HostLookup::Addrs(ips.clone(), now + STALE_GRACE);
            }
            Some(Entry::Known { .. }) | None => {}
        }
        if self.pending.get() >= MAX_PENDING || !self.ask(channel, host) {
            return HostLookup::Negative(format!("{host}: too many host names being resolved"), now + DROPPED_FOR);
        }
        if entries.len() >= channel.max_names && !entries.contains_key(host) {
            evict(&mut entries, channel.max_names, now, &channel.stats);
        }
        entries.insert(host.into(), Entry::Pending(Rc::default()));
        self.pending.set(self.pending.get() + 1);
        HostLookup::Resolving
    }

    fn ask(&self, channel: &Channel, host: &str) -> bool {
        let sent = channel.asks.try_send(Ask { host: host.into(), core: channel.core }).is_ok();
        if !sent {
            channel.stats.request_dropped.fetch_add(1, Ordering::Relaxed);
        }
        sent
    }

    /// What a request whose name is being resolved awaits (None: nothing
    /// is pending for `host` any more).
    pub fn wait(&self, host: &str) -> Option<Wait> {
        match self.entries.borrow().get(host) {
            Some(Entry::Pending(w)) => Some(Wait(w.clone())),
            _ => None,
        }
    }

    /// Takes an answer from the control thread in, waking who waits for it.
    pub fn answer(&self, reply: Reply) {
        let Reply { host, answer } = reply;
        // An `io.l5d.dnssrv` record (`/#…`): the snapshot has it now; only
        // wake who waits (nothing is kept: the snapshot is the answer).
        if host.starts_with('/') {
            if let Some(Entry::Pending(waiter)) = self.entries.borrow_mut().remove(&host) {
                self.pending.set(self.pending.get().saturating_sub(1));
                waiter.done.set(true);
                waiter.wakers.take().into_iter().for_each(Waker::wake);
            }
            return;
        }
        let expires = Instant::now() + answer.ttl();
        let mut entries = self.entries.borrow_mut();
        let answer = match answer {
            HostAnswer::Addrs { ips, .. } => Ok(ips),
            HostAnswer::NoSuchHost { .. } => Err(Rc::from(format!("{host}: no such host"))),
            // A failed refresh (a timeout, the rate limit) keeps the
            // addresses this core had, until the next try: only a name the
            // server says does not exist loses them.
            HostAnswer::Failed { error, .. } => match entries.get(&host) {
                Some(Entry::Known { answer: Ok(ips), .. }) => Ok(ips.clone()),
                _ => Err(Rc::from(format!("{host}: {error}"))),
            },
        };
        let known = Entry::Known { answer, expires, refreshing: false };
        if let Some(Entry::Pending(waiter)) = entries.insert(host, known) {
            self.pending.set(self.pending.get().saturating_sub(1));
            waiter.done.set(true);
            waiter.wakers.take().into_iter().for_each(Waker::wake);
        }
    }

    /// Entries held (tests).
    pub fn len(&self) -> usize {
        self.entries.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Makes room, until below `cap`: negative answers go first (expired
/// ones, then the others: a flood of made-up names leaves many, each
/// lasting a second or `negativeTtlSecs`), then expired addresses (which
/// still serve while they are asked again), then addresses, each in
/// whatever order the map has them. Pending names stay (their requests
/// wait for them; at most `MAX_PENDING`).
fn evict(entries: &mut HashMap<Box<str>, Entry>, cap: usize, now: Instant, stats: &DnsStats) {
    let before = entries.len();
    let mut over = entries.len().saturating_sub(cap.saturating_sub(1));
    // From the first to go to the last: (addresses?, expired only?).
    for (addrs, expired_only) in [(false, true), (false, false), (true, true), (true, false)] {
        if over == 0 {
            break;
        }
        entries.retain(|_, e| {
            let goes = match e {
                Entry::Known { answer, expires, .. } => answer.is_ok() == addrs && (!expired_only || *expires <= now),
                Entry::Pending(_) => false,
            };
            // Expired negatives all go: they are of no use any more, and
            // one pass spares the next asks a pass each.
            if goes && (over > 0 || (!addrs && expired_only)) {
                over = over.saturating_sub(1);
                false
            } else {
                true
            }
        });
    }
    stats.request_evicted.fetch_add((before - entries.len()) as u64, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::namer::dns::request::channels;

    fn reply(host: &str, answer: HostAnswer) -> Reply {
        Reply { host: host.into(), answer }
    }

    #[test]
    fn a_miss_asks_once_and_the_answer_wakes_the_wait() {
        let stats = Arc::new(DnsStats::default());
        let config = config::DnsConfig { max_names: 3, ..Default::default() };
        let (mut control, cores) = channels(1, &config, &stats);
        let names = CoreNames::new(&cores[0]);
        let now = Instant::now();
        assert_eq!(names.lookup("a.test", now), HostLookup::Resolving);
        assert_eq!(names.lookup("a.test", now), HostLookup::Resolving, "asked once");
        let wait = names.wait("a.test").unwrap();
        assert_eq!(control.asks_len(), 1);
        let ips = vec!["10.0.0.1".parse().unwrap()];
        names.answer(reply("a.test", HostAnswer::Addrs { ips: ips.clone(), ttl: Duration::from_secs(30) }));
        assert!(wait.0.done.get());
        assert!(matches!(names.lookup("a.test", now), HostLookup::Addrs(got, _) if got == ips));
        // Stale: still served, asked again once.
        let later = now + Duration::from_secs(31);
        assert!(matches!(names.lookup("a.test", later), HostLookup::Addrs(..)));
        assert!(matches!(names.lookup("a.test", later), HostLookup::Addrs(..)));
        assert_eq!(control.asks_len(), 1, "the stale name asked again once");
        // Negative answers stand until their TTL.
        assert_eq!(names.lookup("b.test", now), HostLookup::Resolving);
        names.answer(reply("b.test", HostAnswer::NoSuchHost { ttl: Duration::from_secs(5) }));
        assert!(matches!(names.lookup("b.test", now), HostLookup::Negative(..)));
        // Capped: a fourth and fifth name evict answers, never past the cap.
        for h in ["c.test", "d.test", "e.test"] {
            assert_eq!(names.lookup(h, now), HostLookup::Resolving);
            assert!(names.len() <= 3, "{}", names.len());
        }
        assert!(stats.request_evicted.load(Ordering::Relaxed) >= 2);
    }

    #[test]
    fn a_failed_refresh_keeps_the_addresses_and_negatives_are_evicted_first() {
        let stats = Arc::new(DnsStats::default());
        let config = config::DnsConfig { max_names: 3, ..Default::default() };
        let (_control, cores) = channels(1, &config, &stats);
        let names = CoreNames::new(&cores[0]);
        let now = Instant::now();
        let ips: Vec<IpAddr> = vec!["10.0.0.1".parse().unwrap()];
        assert_eq!(names.lookup("web.test", now), HostLookup::Resolving);
        names.answer(reply("web.test", HostAnswer::Addrs { ips: ips.clone(), ttl: Duration::from_secs(30) }));
        // The refresh is refused (rate limit, timeout): the addresses stay.
        let refused = HostAnswer::Failed { error: "over lookupsPerSecond".into(), retry: Duration::from_secs(1) };
        names.answer(reply("web.test", refused.clone()));
        assert!(matches!(names.lookup("web.test", now), HostLookup::Addrs(got, _) if got == ips));
        // NXDOMAIN is the server's word: it does replace them.
        names.answer(reply("web.test", HostAnswer::NoSuchHost { ttl: Duration::from_secs(5) }));
        assert!(matches!(names.lookup("web.test", now), HostLookup::Negative(..)));
        names.answer(reply("web.test", HostAnswer::Addrs { ips: ips.clone(), ttl: Duration::from_secs(30) }));
        // Made-up names, refused, fill the map: they go before the good one.
        for i in 0..10 {
            let h = format!("r{i}.test");
            assert_eq!(names.lookup(&h, now), HostLookup::Resolving);
            names.answer(reply(&h, refused.clone()));
        }
        assert!(names.len() <= 3);
        assert!(matches!(names.lookup("web.test", now), HostLookup::Addrs(got, _) if got == ips));
    }

    #[test]
    fn a_host_that_is_no_dns_name_is_refused_without_asking() {
        let stats = Arc::new(DnsStats::default());
        let (mut control, cores) = channels(1, &config::DnsConfig::default(), &stats);
        let names = CoreNames::new(&cores[0]);
        let now = Instant::now();
        for host in ["127.0.0.1:HTTP", "a..b", "a b"] {
            assert!(
                matches!(names.lookup(host, now), HostLookup::Negative(why, _) if why.contains("not a valid DNS host name"))
            );
        }
        assert_eq!(control.asks_len(), 0, "nothing asked");
        assert_eq!(stats.request_invalid.load(Ordering::Relaxed), 3);
        assert!(names.is_empty(), "nothing kept");
    }
}
