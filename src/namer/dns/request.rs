//! Host names only a request supplied (`/$/inet/HOST/PORT` bound from the
//! request's name): the cores ask here, the control thread's runtime
//! resolves, and each answer goes back to the cores that asked, per name,
//! without a new snapshot. The core side is `table::names`.
//!
//! Bounded, because any client can make up names:
//! - one lookup per name at a time (cores asking for a name already being
//!   resolved wait for the same answer);
//! - at most `lookupsPerSecond` lookups started per second (a token bucket
//!   with a burst of as many): past it a name is answered "rate limited"
//!   at once, negative for a second, unless it had addresses: a refresh
//!   refused by the limit keeps them (clients making up names must not
//!   take working names away);
//! - at most `maxNames` answers kept here (and on each core); past it the
//!   oldest answer goes.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use config::DnsConfig;
use tokio::sync::mpsc;

use super::{lookup_host, DnsSettings, DnsStats, HostAnswer, Resolver};

/// How many asks the cores may have queued for the control thread; a core
/// finding it full fails the request at once (`dns/request/dropped`).
pub const ASK_QUEUE: usize = 1024;
/// How long a rate-limited name stays negative on a core.
const RATE_LIMITED_FOR: Duration = Duration::from_secs(1);

/// A core asking for a host name.
#[derive(Debug)]
pub struct Ask {
    pub host: Box<str>,
    pub core: usize,
}

/// The answer for a host name, sent to the cores that asked.
#[derive(Debug, Clone)]
pub struct Reply {
    pub host: Box<str>,
    pub answer: HostAnswer,
}

/// What a core holds to ask, and to hear the answers.
pub struct CoreChannel {
    pub core: usize,
    pub asks: mpsc::Sender<Ask>,
    pub replies: mpsc::UnboundedReceiver<Reply>,
    pub stats: Arc<DnsStats>,
    /// `corelink.dns` as the cores use it (cap, timeout).
    pub config: DnsConfig,
}

/// The control thread's end of every core's channel.
pub struct ControlChannels {
    asks: mpsc::Receiver<Ask>,
    replies: Vec<mpsc::UnboundedSender<Reply>>,
}

impl ControlChannels {
    /// The senders to every core, for other answers (`io.l5d.dnssrv`).
    pub fn repliers(&self) -> Vec<mpsc::UnboundedSender<Reply>> {
        self.replies.clone()
    }

    /// Asks queued (tests).
    pub fn asks_len(&mut self) -> usize {
        let mut n = 0;
        while self.asks.try_recv().is_ok() {
            n += 1;
        }
        n
    }
}

/// One channel per core, and the control thread's ends.
pub fn channels(workers: usize, config: &DnsConfig, stats: &Arc<DnsStats>) -> (ControlChannels, Vec<CoreChannel>) {
    let (ask_tx, ask_rx) = mpsc::channel(ASK_QUEUE);
    let mut replies = Vec::with_capacity(workers);
    let mut cores = Vec::with_capacity(workers);
    for core in 0..workers {
        let (tx, rx) = mpsc::unbounded_channel();
        replies.push(tx);
        cores.push(CoreChannel {
            core,
            asks: ask_tx.clone(),
            replies: rx,
            stats: stats.clone(),
            config: config.clone(),
        });
    }
    (ControlChannels { asks: ask_rx, replies }, cores)
}

/// The resolver and settings request names use.
#[derive(Clone)]
pub struct RequestResolver {
    pub resolver: Arc<Resolver>,
    pub config: DnsConfig,
    /// What a lookup of a relative name costs of `lookupsPerSecond`
    /// ([`super::names_per_lookup`]).
    pub names_per_lookup: u32,
}

/// Replaced when a reload changes `corelink.dns`. Locked by the control
/// thread's tasks only.
pub type Current = Arc<Mutex<Option<RequestResolver>>>;

/// A token bucket: `rate` per second, a burst of as many.
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// Lets a lookup start when a token is there, whatever it costs, and
    /// takes its `cost` (at most the burst), going into debt if need be:
    /// the next lookup waits until the debt is paid. Waiting for `cost`
    /// tokens instead let a flood of one-token lookups (absolute names)
    /// keep the bucket below a relative name's cost forever.
    fn take(&mut self, rate: u32, cost: u32, now: Instant) -> bool {
        let rate = f64::from(rate);
        let cost = f64::from(cost.max(1)).min(rate.max(1.0));
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * rate).min(rate);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= cost;
            true
        } else {
            false
        }
    }
}

/// What looking `host` up costs of the rate: the names the resolver may
/// try. Request-supplied names keep the system's search domains, as
/// linkerd's (the JVM resolver applied them), so each is counted. An
/// absolute name and an `io.l5d.dnssrv` record (`/#…`, looked up
/// absolute) cost one.
fn cost(host: &str, names_per_lookup: u32) -> u32 {
    if host.ends_with('.') || host.starts_with('/') {
        1
    } else {
        names_per_lookup
    }
}

/// An answer kept here, until it expires.
struct Kept {
    answer: HostAnswer,
    expires: Instant,
}

/// The answers, capped: past the cap the oldest negative answer goes
/// first (a flood of made-up names leaves only those), then the oldest
/// with addresses, so a flood does not push working names out.
#[derive(Default)]
struct Answers {
    by_name: HashMap<Box<str>, Kept>,
    /// Names in the order they were answered, negative and not (a name
    /// whose answer changed kind may be in the other too: skipped there).
    negative: VecDeque<Box<str>>,
    positive: VecDeque<Box<str>>,
}

fn has_addrs(answer: &HostAnswer) -> bool {
    matches!(answer, HostAnswer::Addrs { .. })
}

impl Answers {
    fn fresh(&self, host: &str, now: Instant) -> Option<&HostAnswer> {
        self.by_name.get(host).filter(|k| k.expires > now).map(|k| &k.answer)
    }

    fn insert(&mut self, host: Box<str>, answer: HostAnswer, now: Instant, cap: usize, stats: &DnsStats) {
        let expires = now + answer.ttl();
        let addrs = has_addrs(&answer);
        let before = self.by_name.insert(host.clone(), Kept { answer, expires });
        if before.is_none_or(|k| has_addrs(&k.answer) != addrs) {
            match addrs {
                true => self.positive.push_back(host),
                false => self.negative.push_back(host),
            }
        }
        while self.by_name.len() > cap {
            let Some(oldest) = self.oldest(false).or_else(|| self.oldest(true)) else { break };
            self.by_name.remove(&oldest);
            stats.request_evicted.fetch_add(1, Ordering::Relaxed);
        }
        // The queues can hold names removed or changed since; keep them
        // from outgrowing the map when names come back.
        let by_name = &self.by_name;
        for (queue, addrs) in [(&mut self.negative, false), (&mut self.positive, true)] {
            if queue.len() > 2 * cap.max(1) {
                queue.retain(|h| by_name.get(h).is_some_and(|k| has_addrs(&k.answer) == addrs));
            }
        }
    }

    /// Takes the oldest name of one kind still kept as that kind.
    fn oldest(&mut self, addrs: bool) -> Option<Box<str>> {
        let queue = if addrs { &mut self.positive } else { &mut self.negative };
        while let Some(name) = queue.pop_front() {
            if self.by_name.get(&name).is_some_and(|k| has_addrs(&k.answer) == addrs) {
                return Some(name);
            }
        }
        None
    }

    fn previous_addrs(&self, host: &str) -> Option<Vec<IpAddr>> {
        match self.by_name.get(host).map(|k| &k.answer) {
            Some(HostAnswer::Addrs { ips, .. }) => Some(ips.clone()),
            _ => None,
        }
    }
}

/// The answer to an ask the rate limit refused: a refresh keeps the name's
/// last addresses (docs/dns.md: "a failed refresh keeps the last
/// addresses"), a new name is negative for a second.
fn rate_limited(answers: &Answers, host: &str, rate: u32) -> HostAnswer {
    match answers.previous_addrs(host) {
        Some(ips) => HostAnswer::Addrs { ips, ttl: RATE_LIMITED_FOR },
        None => HostAnswer::Failed {
            error: format!("over corelink.dns.lookupsPerSecond ({rate})"),
            retry: RATE_LIMITED_FOR,
        },
    }
}

/// Where asks for `io.l5d.dnssrv` records (keys `/#<prefix>/<record>`)
/// go: the control thread takes them (`namer::dnssrv`), woken by `wake`.
pub struct SrvHandoff {
    pub asks: Arc<crate::namer::dnssrv::SrvAsks>,
    pub wake: Arc<tokio::sync::Notify>,
}

/// Serves the cores' asks until every core's sender is gone. Runs on the
/// control thread's runtime.
pub async fn serve(channels: ControlChannels, current: Current, stats: Arc<DnsStats>, srv: SrvHandoff) {
    let ControlChannels { mut asks, replies } = channels;
    let mut answers = Answers::default();
    // Cores waiting per name being resolved (a bit per core).
    let mut in_flight: HashMap<Box<str>, Vec<usize>> = HashMap::new();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Reply>();
    let mut bucket = Bucket { tokens: 0.0, at: Instant::now() };
    let mut first = true;
    let send = |cores: &[usize], reply: &Reply| {
        for &c in cores {
            if let Some(tx) = replies.get(c) {
                let _ = tx.send(reply.clone());
            }
        }
    };
    loop {
        tokio::select! {
            ask = asks.recv() => {
                let Some(Ask { host, core }) = ask else { return };
                let Some(RequestResolver { resolver, config, names_per_lookup }) = current.lock().ok().and_then(|c| c.clone()) else {
                    let reply = Reply { host, answer: HostAnswer::Failed { error: "no DNS resolver".into(), retry: RATE_LIMITED_FOR } };
                    send(&[core], &reply);
                    continue;
                };
                let now = Instant::now();
                if first {
                    bucket.tokens = f64::from(config.lookups_per_second);
                    first = false;
                }
                if let Some(answer) = answers.fresh(&host, now) {
                    stats.request_cached.fetch_add(1, Ordering::Relaxed);
                    send(&[core], &Reply { host, answer: answer.clone() });
                    continue;
                }
                if let Some(waiting) = in_flight.get_mut(&host) {
                    if !waiting.contains(&core) {
                        waiting.push(core);
                    }
                    continue;
                }
                if !bucket.take(config.lookups_per_second, cost(&host, names_per_lookup), now) {
                    stats.request_rate_limited.fetch_add(1, Ordering::Relaxed);
                    send(&[core], &Reply { answer: rate_limited(&answers, &host, config.lookups_per_second), host });
                    continue;
                }
                // An SRV record's first lookup (the same rate limit): the
                // control thread starts its watch and answers once a
                // snapshot has it.
                if host.starts_with('/') {
                    srv.asks.push(Ask { host, core });
                    srv.wake.notify_one();
                    continue;
                }
                stats.request_lookups.fetch_add(1, Ordering::Relaxed);
                in_flight.insert(host.clone(), vec![core]);
                let done = done_tx.clone();
                let settings = DnsSettings::from(&config);
                tokio::spawn(async move {
                    let answer = lookup_host(&resolver, &host, &settings).await;
                    let _ = done.send(Reply { host, answer });
                });
            }
            Some(Reply { host, mut answer }) = done_rx.recv() => {
                let cap = current.lock().ok().and_then(|c| c.as_ref().map(|c| c.config.max_names)).unwrap_or(1);
                if let HostAnswer::Failed { error, retry } = &answer {
                    stats.request_failures.fetch_add(1, Ordering::Relaxed);
                    // A failed refresh keeps the name's last addresses.
                    if let Some(ips) = answers.previous_addrs(&host) {
                        tracing::warn!(host = %host, %error, kept = ips.len(), "DNS resolution failed");
                        answer = HostAnswer::Addrs { ips, ttl: *retry };
                    }
                }
                let reply = Reply { host: host.clone(), answer: answer.clone() };
                answers.insert(host.clone(), answer, Instant::now(), cap, &stats);
                let waiting = in_flight.remove(&host).unwrap_or_default();
                send(&waiting, &reply);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_allows_a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = Bucket { tokens: 10.0, at: t0 };
        assert_eq!((0..20).filter(|_| b.take(10, 1, t0)).count(), 10);
        assert!(!b.take(10, 1, t0 + Duration::from_millis(50)));
        assert!(b.take(10, 1, t0 + Duration::from_millis(160)));
    }

    #[test]
    fn each_name_a_lookup_may_try_counts_against_the_rate() {
        // resolv.conf with 5 search domains: a relative name may try 6.
        assert_eq!(cost("redis", 6), 6);
        assert_eq!(cost("redis.example.com.", 6), 1, "absolute");
        assert_eq!(cost("/#/io.l5d.dnssrv/_http._tcp.web", 6), 1, "SRV records are absolute");
        let t0 = Instant::now();
        let mut b = Bucket { tokens: 100.0, at: t0 };
        assert_eq!((0..100).filter(|_| b.take(100, 6, t0)).count(), 17, "100 names a second: 17 lookups");
        // A cost past the burst still passes once the bucket is full.
        let mut b = Bucket { tokens: 3.0, at: t0 };
        assert!(b.take(3, 6, t0));
        // A relative name starts with one token, as an absolute one does:
        // one-token lookups that keep the bucket below its cost cannot shut
        // it out. Its debt is paid before anything else starts.
        let mut b = Bucket { tokens: 1.2, at: t0 };
        assert!(b.take(100, 6, t0), "a relative name needs a token, not its cost, to start");
        let mut b = Bucket { tokens: 1.0, at: t0 };
        assert!(b.take(100, 6, t0));
        assert!(!b.take(100, 1, t0 + Duration::from_millis(50)), "5 tokens of debt, 5 refilled: none left");
        assert!(b.take(100, 1, t0 + Duration::from_millis(61)));
    }

    #[test]
    fn answers_are_capped_oldest_first() {
        let stats = DnsStats::default();
        let mut a = Answers::default();
        let now = Instant::now();
        let neg = HostAnswer::NoSuchHost { ttl: Duration::from_secs(5) };
        for i in 0..10 {
            a.insert(format!("h{i}").into(), neg.clone(), now, 4, &stats);
        }
        assert_eq!(a.by_name.len(), 4);
        assert!(a.fresh("h9", now).is_some() && a.fresh("h0", now).is_none());
        assert_eq!(stats.request_evicted.load(Ordering::Relaxed), 6);
        assert!(a.fresh("h9", now + Duration::from_secs(6)).is_none(), "expired");
    }

    #[test]
    fn negative_answers_are_evicted_before_addresses() {
        let stats = DnsStats::default();
        let mut a = Answers::default();
        let now = Instant::now();
        let web = HostAnswer::Addrs { ips: vec!["10.0.0.1".parse().unwrap()], ttl: Duration::from_secs(1) };
        a.insert("web".into(), web, now, 4, &stats);
        let neg = HostAnswer::NoSuchHost { ttl: Duration::from_secs(5) };
        for i in 0..100 {
            a.insert(format!("r{i}").into(), neg.clone(), now, 4, &stats);
        }
        assert_eq!(a.by_name.len(), 4);
        assert!(a.previous_addrs("web").is_some(), "the flood pushed a working name out");
        assert!(a.negative.len() <= 8 && a.positive.len() <= 8);
    }

    #[test]
    fn a_rate_limited_refresh_keeps_the_last_addresses() {
        let stats = DnsStats::default();
        let mut a = Answers::default();
        let now = Instant::now();
        let ips: Vec<IpAddr> = vec!["10.0.0.1".parse().unwrap()];
        a.insert("web".into(), HostAnswer::Addrs { ips: ips.clone(), ttl: Duration::from_secs(1) }, now, 4, &stats);
        // Expired, and refused by the limit: the addresses serve on.
        assert_eq!(rate_limited(&a, "web", 10), HostAnswer::Addrs { ips, ttl: RATE_LIMITED_FOR });
        assert!(matches!(rate_limited(&a, "new", 10), HostAnswer::Failed { .. }));
    }
}
