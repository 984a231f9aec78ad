//! `io.l5d.dnssrv`: `/#<prefix>/<record>` binds to the addresses of the SRV
//! record's targets (each target resolved, A and AAAA, by
//! `dns::lookup_host`) and their ports, refreshed every
//! `refreshIntervalSeconds` on the control thread's runtime.
//!
//! As linkerd's `DnsSrvNamer`, a record is looked up the first time a
//! request binds it (a core asks, `dns::request`, and the request waits
//! for the snapshot that has it), then kept refreshed. NXDOMAIN, an answer
//! without SRV records (or whose targets do not resolve) and a server that
//! does not answer bind `~`, so the dtab falls back; weight and priority
//! are ignored. Two corelink extensions, off by default: `srvWeights` (the
//! weights reach the balancer) and `keepLastGoodSecs` (the last good set
//! serves on, for a bounded time, while the server does not answer; never
//! after NXDOMAIN). docs/dns.md has the details.
//!
//! Bounded, because the dtab may let clients choose the record: a record
//! no request bound for `idleTtlSecs` stops being refreshed and is dropped;
//! at most `MAX_TARGETS` targets of an answer are used; at most
//! `LOOKUPS_IN_FLIGHT` SRV queries and as many target lookups per namer run
//! at once, of which `TARGET_LOOKUPS_PER_RECORD` for one record.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use config::{DnsConfig, DnsSrvNamerConfig};
use hickory_resolver::proto::rr::RData;
use tokio::runtime::Runtime;
use tokio::sync::{Notify, Semaphore};

use super::dns::request::{Ask, Reply};
use super::dns::{build_resolver, lookup_host, DnsSettings, HostAnswer, Resolver};

/// What one record binds to.
#[derive(Debug, Clone, PartialEq)]
pub enum SrvState {
    /// `~` (why: NXDOMAIN, no SRV records, no target resolved, no answer).
    Neg(String),
    /// Each target address with its weight (1 unless `srvWeights`).
    Bound(Vec<(SocketAddr, f64)>),
}

/// The targets of one answer used at most (sorted by priority, then name
/// and port, so the same answer keeps the same ones whatever order the
/// server rotates them in). A UDP answer holds a few dozen, a TCP one
/// thousands: resolving each every refresh cost 4,000 queries a refresh
/// for one 2,000-target record. linkerd and finagle have no cap; MongoDB's
/// drivers have `srvMaxHosts` for the same reason.
pub const MAX_TARGETS: usize = 100;
/// Lookups of SRV targets one namer runs at once, at most: each holds a
/// socket or two until answered or timed out. SRV queries have as many
/// of their own, so records whose targets are slow cannot hold up the
/// first answer of another record.
pub const LOOKUPS_IN_FLIGHT: usize = 16;
/// Target lookups one record runs at once, at most: a record whose (up to
/// `MAX_TARGETS`) targets all time out holds a quarter of its namer's
/// permits, not all of them, for as long as they take.
pub const TARGET_LOOKUPS_PER_RECORD: usize = 4;
/// A route bound through a record is bound again at least this often (at
/// most half `idleTtlSecs`), so a record that only cached routes use is
/// still seen used.
const REBIND_AT_MOST: Duration = Duration::from_secs(60);

/// Set by the cores when they bind a record; taken by the control thread,
/// which drops records unused for `idleTtlSecs`.
#[derive(Debug, Default)]
pub struct UseMark(AtomicBool);

impl UseMark {
    /// Marks the record used. Loads first: every core shares the flag, so
    /// it is written once per sweep rather than once per bind.
    pub fn touch(&self) {
        if !self.0.load(Ordering::Relaxed) {
            self.0.store(true, Ordering::Relaxed);
        }
    }

    fn take(&self) -> bool {
        self.0.swap(false, Ordering::Relaxed)
    }
}

/// One record as a snapshot has it.
#[derive(Debug, Clone)]
pub struct SrvRecord {
    pub state: SrvState,
    pub used: Arc<UseMark>,
}

/// Records are the same when they bind the same (the mark is not state).
impl PartialEq for SrvRecord {
    fn eq(&self, other: &SrvRecord) -> bool {
        self.state == other.state
    }
}

/// One namer's records as last resolved; a record being resolved for the
/// first time is absent.
pub type SrvView = BTreeMap<String, SrvRecord>;

/// How long a route bound through one of `config`'s records may be cached
/// before it is bound again (and the record marked used).
pub fn rebind_within(config: &DnsSrvNamerConfig) -> Duration {
    (Duration::from_secs(config.idle_ttl_secs) / 2).min(REBIND_AT_MOST)
}

/// What a lookup of an SRV record said.
#[derive(Debug, Clone, PartialEq)]
pub enum SrvAnswer {
    Bound(Vec<(SocketAddr, f64)>),
    /// NXDOMAIN or nothing usable: negative whatever came before.
    Neg(String),
    /// No answer (timeout, refused, SERVFAIL).
    Failed(String),
}

/// What one namer's lookups share: the bound on those in flight, and the
/// counters.
pub struct Lookups {
    /// Target lookups.
    pub permits: Semaphore,
    /// SRV queries.
    pub srv_permits: Semaphore,
    pub stats: Arc<SrvStats>,
}

impl Lookups {
    pub fn new(stats: Arc<SrvStats>) -> Lookups {
        Lookups { permits: Semaphore::new(LOOKUPS_IN_FLIGHT), srv_permits: Semaphore::new(LOOKUPS_IN_FLIGHT), stats }
    }
}

/// One SRV target: (priority, target, port, weight).
type Target = (u16, String, u16, u16);

/// Looks one record up, then (at most [`MAX_TARGETS`] of) its targets, at
/// most [`LOOKUPS_IN_FLIGHT`] lookups of the namer at once.
pub async fn lookup_srv(
    resolver: &Resolver,
    record: &str,
    settings: &DnsSettings,
    weights: bool,
    lookups: &Lookups,
) -> SrvAnswer {
    let mut srvs = match srv_targets(resolver, record, settings, lookups).await {
        Ok(srvs) => srvs,
        Err(answer) => return answer,
    };
    if srvs.is_empty() {
        return SrvAnswer::Neg(format!("{record}: no SRV records"));
    }
    srvs.sort();
    srvs.dedup();
    if srvs.len() > MAX_TARGETS {
        let dropped = srvs.len() - MAX_TARGETS;
        lookups.stats.targets_dropped.fetch_add(dropped as u64, Ordering::Relaxed);
        tracing::debug!(record, targets = srvs.len(), dropped, "io.l5d.dnssrv: targets past the cap ignored");
        srvs.truncate(MAX_TARGETS);
    }
    // In order, TARGET_LOOKUPS_PER_RECORD at a time, each also holding one
    // of the namer's LOOKUPS_IN_FLIGHT permits (across its records).
    use futures::StreamExt;
    let lookups_of_targets: Vec<_> =
        srvs.iter().map(|(_, target, _, _)| resolve_target(resolver, target, settings, lookups)).collect();
    let answers: Vec<HostAnswer> =
        futures::stream::iter(lookups_of_targets).buffered(TARGET_LOOKUPS_PER_RECORD).collect().await;
    let mut addrs = Vec::new();
    for ((_, _, port, weight), answer) in srvs.iter().zip(answers) {
        if let HostAnswer::Addrs { ips, .. } = answer {
            // RFC 2782: weight 0 is "a very small chance", not none.
            let w = if weights { f64::from(*weight).max(0.01) } else { 1.0 };
            addrs.extend(ips.into_iter().map(|ip| (SocketAddr::new(ip, *port), w)));
        }
    }
    if addrs.is_empty() {
        return SrvAnswer::Neg(format!("{record}: no SRV target resolved"));
    }
    addrs.sort_by_key(|a| a.0);
    addrs.dedup_by(|a, b| a.0 == b.0);
    SrvAnswer::Bound(addrs)
}

/// One target's addresses, once one of the namer's permits is free.
async fn resolve_target(resolver: &Resolver, target: &str, settings: &DnsSettings, lookups: &Lookups) -> HostAnswer {
    let Ok(_permit) = lookups.permits.acquire().await else {
        return HostAnswer::Failed { error: "lookups closed".into(), retry: settings.negative_ttl };
    };
    lookup_host(resolver, target, settings).await
}

/// The SRV query (holding one of the namer's SRV permits): the answer's
/// targets, or the namer's answer when there are none to resolve.
async fn srv_targets(
    resolver: &Resolver,
    record: &str,
    settings: &DnsSettings,
    lookups: &Lookups,
) -> Result<Vec<Target>, SrvAnswer> {
    let Ok(_permit) = lookups.srv_permits.acquire().await else {
        return Err(SrvAnswer::Failed(format!("{record}: lookups closed")));
    };
    // Absolute, as linkerd's `Name.fromString(address, Name.root)`: no
    // search domains.
    let name = if record.ends_with('.') { record.to_string() } else { format!("{record}.") };
    match tokio::time::timeout(settings.timeout, resolver.srv_lookup(name.as_str())).await {
        Ok(Ok(lookup)) => Ok(lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::SRV(srv) => Some((srv.priority, srv.target.to_string(), srv.port, srv.weight)),
                _ => None,
            })
            .collect()),
        Ok(Err(e)) if e.is_nx_domain() => Err(SrvAnswer::Neg(format!("{record}: no such record (NXDOMAIN)"))),
        Ok(Err(e)) if e.is_no_records_found() => Err(SrvAnswer::Neg(format!("{record}: no SRV records"))),
        Ok(Err(e)) => Err(SrvAnswer::Failed(format!("{record}: {e}"))),
        Err(_) => Err(SrvAnswer::Failed(format!("{record}: no answer within {} ms", settings.timeout.as_millis()))),
    }
}

/// Counters of every `io.l5d.dnssrv` namer (admin metrics).
#[derive(Debug, Default)]
pub struct SrvStats {
    /// Lookups that bound addresses, bound `~`, and that got no answer.
    pub successes: AtomicU64,
    pub negative: AtomicU64,
    pub failures: AtomicU64,
    /// Failed lookups after which the last good set kept serving
    /// (`keepLastGoodSecs`).
    pub kept_last_good: AtomicU64,
    /// Records dropped past `corelink.dns.maxNames` per namer.
    pub evicted: AtomicU64,
    /// Records dropped because no request bound them for `idleTtlSecs`.
    pub expired: AtomicU64,
    /// Targets of answers past [`MAX_TARGETS`], not resolved.
    pub targets_dropped: AtomicU64,
}

struct Record {
    state: Option<SrvState>,
    /// When the set in `state` was last confirmed by an answer.
    good_at: Option<Instant>,
    /// Set by the cores when they bind it.
    used: Arc<UseMark>,
    /// When the control thread last saw `used` set (or started the record).
    last_used: Instant,
}

impl Record {
    fn new(now: Instant) -> Record {
        Record { state: None, good_at: None, used: Arc::default(), last_used: now }
    }
}

/// One namer's records, shared by its refresh tasks and the control thread.
struct Shared {
    records: Mutex<BTreeMap<String, Record>>,
    dirty: AtomicBool,
    changed: Arc<Notify>,
    stats: Arc<SrvStats>,
}

impl Shared {
    fn store(&self, prefix: &str, record: &str, answer: SrvAnswer, keep: Duration) {
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        let Some(r) = records.get_mut(record) else { return };
        let now = Instant::now();
        let state = match answer {
            SrvAnswer::Bound(addrs) => {
                self.stats.successes.fetch_add(1, Ordering::Relaxed);
                r.good_at = Some(now);
                SrvState::Bound(addrs)
            }
            SrvAnswer::Neg(why) => {
                self.stats.negative.fetch_add(1, Ordering::Relaxed);
                r.good_at = None;
                SrvState::Neg(why)
            }
            SrvAnswer::Failed(error) => {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                let within = r.good_at.is_some_and(|t| now.duration_since(t) < keep);
                match &r.state {
                    Some(SrvState::Bound(addrs)) if within => {
                        self.stats.kept_last_good.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(namer = prefix, record, %error, addrs = addrs.len(), "io.l5d.dnssrv: no answer; the last good set keeps serving (keepLastGoodSecs)");
                        return;
                    }
                    _ => {
                        tracing::warn!(namer = prefix, record, %error, "io.l5d.dnssrv: no answer; the record binds negative");
                        SrvState::Neg(error)
                    }
                }
            }
        };
        if r.state.as_ref() != Some(&state) {
            r.state = Some(state);
            self.dirty.store(true, Ordering::Release);
            self.changed.notify_one();
        }
    }
}

/// One configured `io.l5d.dnssrv` namer's watches.
struct NamerWatch {
    config: DnsSrvNamerConfig,
    servers: Arc<Servers>,
    settings: DnsSettings,
    shared: Arc<Shared>,
    lookups: Arc<Lookups>,
    tasks: BTreeMap<String, tokio::task::JoinHandle<()>>,
    /// Records in the order they were first asked for (eviction order).
    order: VecDeque<String>,
}

impl NamerWatch {
    /// Drops the records no core marked used for `idleTtlSecs` (their
    /// refreshes stop; a request binding one again looks it up anew).
    /// Records still waiting for their first answer stay. Returns how many
    /// went.
    fn expire_idle(&mut self, now: Instant) -> usize {
        let idle = Duration::from_secs(self.config.idle_ttl_secs);
        let mut gone = Vec::new();
        {
            let mut records = self.shared.records.lock().unwrap_or_else(|p| p.into_inner());
            for (name, r) in records.iter_mut() {
                if r.used.take() {
                    r.last_used = now;
                } else if r.state.is_some() && now.duration_since(r.last_used) >= idle {
                    gone.push(name.clone());
                }
            }
            for name in &gone {
                records.remove(name);
            }
        }
        if gone.is_empty() {
            return 0;
        }
        for name in &gone {
            if let Some(task) = self.tasks.remove(name) {
                task.abort();
            }
        }
        let tasks = &self.tasks;
        self.order.retain(|r| tasks.contains_key(r));
        self.shared.dirty.store(true, Ordering::Release);
        gone.len()
    }
}

impl Drop for NamerWatch {
    fn drop(&mut self) {
        self.tasks.values().for_each(|t| t.abort());
    }
}

/// Asks for SRV records the cores sent (`dns::request` hands them over
/// here; the control thread takes them).
#[derive(Default)]
pub struct SrvAsks {
    asks: Mutex<Vec<Ask>>,
}

impl SrvAsks {
    pub fn push(&self, ask: Ask) {
        self.asks.lock().unwrap_or_else(|p| p.into_inner()).push(ask);
    }

    fn take(&self) -> Vec<Ask> {
        std::mem::take(&mut *self.asks.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Every `io.l5d.dnssrv` namer's records, on the control thread's runtime.
pub struct SrvNamers {
    rt: Arc<Runtime>,
    changed: Arc<Notify>,
    /// By prefix.
    namers: BTreeMap<String, NamerWatch>,
    dns: DnsConfig,
    pub asks: Arc<SrvAsks>,
    /// Cores waiting for a record's first answer, by its key (the bound
    /// id, `/#<prefix>/<record>`); answered once a snapshot has it.
    waiting: HashMap<String, Vec<usize>>,
    replies: Vec<tokio::sync::mpsc::UnboundedSender<Reply>>,
    pub stats: Arc<SrvStats>,
}

impl SrvNamers {
    pub fn new(rt: Arc<Runtime>, changed: Arc<Notify>, stats: Arc<SrvStats>) -> SrvNamers {
        SrvNamers {
            rt,
            changed,
            namers: BTreeMap::new(),
            dns: DnsConfig::default(),
            asks: Arc::default(),
            waiting: HashMap::new(),
            replies: Vec::new(),
            stats,
        }
    }

    /// Where answers for the cores go.
    pub fn set_replies(&mut self, replies: Vec<tokio::sync::mpsc::UnboundedSender<Reply>>) {
        self.replies = replies;
    }

    /// Takes the config's `io.l5d.dnssrv` namers: a namer whose settings
    /// changed starts over, one no longer configured stops.
    pub fn reconcile(&mut self, config: &config::Config) {
        let wanted: BTreeMap<String, DnsSrvNamerConfig> = config
            .namers
            .iter()
            .filter_map(|n| match n {
                config::NamerConfig::DnsSrv(d) => Some((d.prefix.clone(), d.clone())),
                _ => None,
            })
            .collect();
        let dns_changed = self.dns != config.corelink.dns;
        self.dns = config.corelink.dns.clone();
        self.namers.retain(|prefix, w| !dns_changed && wanted.get(prefix) == Some(&w.config));
        for (prefix, c) in wanted {
            if self.namers.contains_key(&prefix) {
                continue;
            }
            let servers = {
                let _guard = self.rt.enter();
                Servers::new(&c.dns_hosts, &self.dns)
            };
            if let Servers::Fixed(Err(e)) = &servers {
                tracing::error!(namer = %prefix, error = %e, "io.l5d.dnssrv: no resolver; its records will not resolve");
            }
            let shared = Arc::new(Shared {
                records: Mutex::default(),
                dirty: AtomicBool::new(false),
                changed: self.changed.clone(),
                stats: self.stats.clone(),
            });
            let settings = DnsSettings::from(&self.dns);
            let watch = NamerWatch {
                config: c,
                servers: Arc::new(servers),
                settings,
                shared,
                lookups: Arc::new(Lookups::new(self.stats.clone())),
                tasks: BTreeMap::new(),
                order: VecDeque::new(),
            };
            self.namers.insert(prefix, watch);
        }
    }

    /// Starts watching the records the cores asked for (a record's first
    /// answer marks the namers changed; [`SrvNamers::published`] then wakes
    /// its requests). Records already answered are answered at once.
    pub fn take_asks(&mut self) {
        let unpublished = self.has_changed();
        for Ask { host: key, core } in self.asks.take() {
            let Some((prefix, record)) = self.split(&key) else {
                self.reply(&key, &[core]);
                continue;
            };
            let Some(watch) = self.namers.get_mut(&prefix) else {
                self.reply(&key, &[core]);
                continue;
            };
            let known = watch
                .shared
                .records
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&record)
                .is_some_and(|r| r.state.is_some());
            // Answered already, and nothing waits to be published (the
            // publish spacing can hold a change back while asks are taken):
            // the snapshot published has it. Otherwise the core waits for
            // the next publish, which replies to it.
            if known && !unpublished {
                self.reply(&key, &[core]);
                continue;
            }
            let waiting = self.waiting.entry(key.to_string()).or_default();
            if !waiting.contains(&core) {
                waiting.push(core);
            }
            if watch.tasks.contains_key(&record) {
                continue;
            }
            start(&self.rt, watch, &prefix, record, self.dns.max_names, &self.stats);
        }
    }

    /// `/#<prefix>/<record>` into the prefix of a configured namer and the
    /// record.
    fn split(&self, key: &str) -> Option<(String, String)> {
        let rest = key.strip_prefix("/#")?;
        let (prefix, _) = self
            .namers
            .iter()
            .find(|(p, _)| rest.strip_prefix(p.as_str()).is_some_and(|r| r.starts_with('/') && r.len() > 1))?;
        let record = rest[prefix.len() + 1..].to_string();
        Some((prefix.clone(), record))
    }

    fn reply(&self, key: &str, cores: &[usize]) {
        // No addresses, no TTL: the core only wakes its waiting requests,
        // which bind again through the snapshot.
        let reply = Reply { host: key.into(), answer: HostAnswer::Addrs { ips: Vec::new(), ttl: Duration::ZERO } };
        for &c in cores {
            if let Some(tx) = self.replies.get(c) {
                let _ = tx.send(reply.clone());
            }
        }
    }

    /// Whether a record's state changed since the last call (and forgets it).
    pub fn take_changed(&self) -> bool {
        let mut any = false;
        for w in self.namers.values() {
            any |= w.shared.dirty.swap(false, Ordering::AcqRel);
        }
        any
    }

    /// Whether a record's state changed since [`SrvNamers::take_changed`]
    /// (left for it).
    pub fn has_changed(&self) -> bool {
        self.namers.values().any(|w| w.shared.dirty.load(Ordering::Acquire))
    }

    /// Drops every namer's records no request bound for its `idleTtlSecs`
    /// (a change, published as any other).
    pub fn expire_idle(&mut self) {
        let now = Instant::now();
        for (prefix, w) in &mut self.namers {
            let gone = w.expire_idle(now);
            if gone > 0 {
                self.stats.expired.fetch_add(gone as u64, Ordering::Relaxed);
                tracing::debug!(namer = %prefix, records = gone, "io.l5d.dnssrv: idle records dropped (idleTtlSecs)");
            }
        }
    }

    /// Every namer's records now, by prefix.
    pub fn views(&self) -> BTreeMap<String, Arc<SrvView>> {
        self.namers
            .iter()
            .map(|(prefix, w)| {
                let records = w.shared.records.lock().unwrap_or_else(|p| p.into_inner());
                let view = records
                    .iter()
                    .filter_map(|(k, r)| {
                        let state = r.state.clone()?;
                        Some((k.clone(), SrvRecord { state, used: r.used.clone() }))
                    })
                    .collect();
                (prefix.clone(), Arc::new(view))
            })
            .collect()
    }

    /// After a snapshot with the current views was published: wakes the
    /// requests waiting for records that now have an answer.
    pub fn published(&mut self) {
        let views = self.views();
        let ready: Vec<String> = self
            .waiting
            .keys()
            .filter(|key| self.split(key).is_some_and(|(p, r)| views.get(&p).is_some_and(|v| v.contains_key(&r))))
            .cloned()
            .collect();
        for key in ready {
            if let Some(cores) = self.waiting.remove(&key) {
                self.reply(&key, &cores);
            }
        }
        // Records evicted before their first answer: their requests stop
        // waiting (and fail or ask again).
        let stale: Vec<String> = self
            .waiting
            .keys()
            .filter(|k| {
                self.split(k).is_none_or(|(p, r)| !self.namers.get(&p).is_some_and(|w| w.tasks.contains_key(&r)))
            })
            .cloned()
            .collect();
        for key in stale {
            if let Some(cores) = self.waiting.remove(&key) {
                self.reply(&key, &cores);
            }
        }
    }
}

/// Where one namer's lookups go (`dnsHosts`). Empty or all addresses: one
/// resolver, built when the namer starts. With host names among them (as
/// linkerd's docs write them, `ns0.example.org`; dnsjava resolved them
/// with the system's resolver): the names are resolved with
/// `corelink.dns`'s resolver before the first lookup and again when their
/// TTL runs out, and the namer's resolver is built anew when their
/// addresses change. A name that stops resolving keeps its last addresses.
enum Servers {
    Fixed(Result<Arc<Resolver>, String>),
    Named(Box<NamedServers>),
}

struct NamedServers {
    hosts: Vec<String>,
    /// `corelink.dns`: resolves the names, and is the template of the
    /// namer's resolver.
    dns: DnsConfig,
    names: Result<Arc<Resolver>, String>,
    current: tokio::sync::Mutex<CurrentServers>,
}

#[derive(Default)]
struct CurrentServers {
    /// Each host's last addresses.
    known: HashMap<String, Vec<IpAddr>>,
    /// The addresses `resolver` asks, and when to resolve the names again.
    addrs: Vec<IpAddr>,
    resolver: Option<Arc<Resolver>>,
    due: Option<Instant>,
    /// Why there is no resolver (yet).
    why: String,
}

/// `dns` with `servers` (port 53) as its servers, or as it is for none.
fn with_servers(dns: &DnsConfig, servers: &[IpAddr]) -> DnsConfig {
    match servers.is_empty() {
        true => dns.clone(),
        false => DnsConfig { servers: servers.iter().map(|ip| SocketAddr::new(*ip, 53)).collect(), ..dns.clone() },
    }
}

fn built(config: &DnsConfig) -> Result<Arc<Resolver>, String> {
    build_resolver(config).map(Arc::new).map_err(|e| e.to_string())
}

impl Servers {
    /// Within the runtime (the resolvers need its context).
    fn new(hosts: &[String], dns: &DnsConfig) -> Servers {
        match hosts.iter().map(|h| h.parse::<IpAddr>().ok()).collect::<Option<Vec<IpAddr>>>() {
            Some(ips) => Servers::Fixed(built(&with_servers(dns, &ips))),
            None => Servers::Named(Box::new(NamedServers {
                hosts: hosts.to_vec(),
                dns: dns.clone(),
                names: built(dns),
                current: tokio::sync::Mutex::default(),
            })),
        }
    }

    async fn resolver(&self) -> Result<Arc<Resolver>, String> {
        match self {
            Servers::Fixed(r) => r.clone(),
            Servers::Named(n) => n.resolver().await,
        }
    }
}

impl NamedServers {
    async fn resolver(&self) -> Result<Arc<Resolver>, String> {
        let mut current = self.current.lock().await;
        let now = Instant::now();
        if current.due.is_some_and(|due| now < due) {
            return current.resolver.clone().ok_or_else(|| current.why.clone());
        }
        let names = match &self.names {
            Ok(r) => r.clone(),
            Err(e) => return Err(format!("dnsHosts: {e}")),
        };
        let settings = DnsSettings::from(&self.dns);
        let answers = futures::future::join_all(self.hosts.iter().map(|h| lookup_host(&names, h, &settings))).await;
        let mut due = now + settings.max_ttl;
        let mut problems = Vec::new();
        for (host, answer) in self.hosts.iter().zip(answers) {
            due = due.min(now + answer.ttl());
            match answer {
                HostAnswer::Addrs { ips, .. } => {
                    current.known.insert(host.clone(), ips);
                }
                HostAnswer::NoSuchHost { .. } => problems.push(format!("{host}: no such host")),
                HostAnswer::Failed { error, .. } => problems.push(format!("{host}: {error}")),
            }
        }
        current.due = Some(due);
        if !problems.is_empty() {
            current.why = format!("dnsHosts: {}", problems.join("; "));
            tracing::warn!(problems = %current.why, "io.l5d.dnssrv: a DNS server's name did not resolve; its last addresses (if any) kept");
        }
        let mut addrs: Vec<IpAddr> = current.known.values().flatten().copied().collect();
        addrs.sort();
        addrs.dedup();
        if !addrs.is_empty() && (current.resolver.is_none() || addrs != current.addrs) {
            match built(&with_servers(&self.dns, &addrs)) {
                Ok(r) => {
                    tracing::info!(servers = ?addrs, "io.l5d.dnssrv: asking the DNS servers dnsHosts names");
                    current.resolver = Some(r);
                    current.addrs = addrs;
                }
                Err(e) => current.why = format!("dnsHosts: {e}"),
            }
        }
        current.resolver.clone().ok_or_else(|| current.why.clone())
    }
}

/// Starts the refresh task of one record (evicting the oldest past `cap`).
fn start(rt: &Runtime, watch: &mut NamerWatch, prefix: &str, record: String, cap: usize, stats: &SrvStats) {
    while watch.order.len() >= cap.max(1) {
        let Some(oldest) = watch.order.pop_front() else { break };
        if let Some(task) = watch.tasks.remove(&oldest) {
            task.abort();
        }
        watch.shared.records.lock().unwrap_or_else(|p| p.into_inner()).remove(&oldest);
        watch.shared.dirty.store(true, Ordering::Release);
        stats.evicted.fetch_add(1, Ordering::Relaxed);
    }
    watch.shared.records.lock().unwrap_or_else(|p| p.into_inner()).insert(record.clone(), Record::new(Instant::now()));
    watch.order.push_back(record.clone());
    let (servers, shared, settings, prefix2, record2) =
        (watch.servers.clone(), watch.shared.clone(), watch.settings, prefix.to_string(), record.clone());
    let lookups = watch.lookups.clone();
    let interval = Duration::from_secs(watch.config.refresh_interval_secs);
    let keep = Duration::from_secs(watch.config.keep_last_good_secs);
    let weights = watch.config.srv_weights;
    let task = rt.spawn(async move {
        loop {
            let answer = match servers.resolver().await {
                Ok(resolver) => lookup_srv(&resolver, &record2, &settings, weights, &lookups).await,
                Err(why) => SrvAnswer::Failed(format!("{record2}: {why}")),
            };
            shared.store(&prefix2, &record2, answer, keep);
            tokio::time::sleep(interval).await;
        }
    });
    watch.tasks.insert(record, task);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> Shared {
        Shared {
            records: Mutex::new([("r".to_string(), Record::new(Instant::now()))].into_iter().collect()),
            dirty: AtomicBool::new(false),
            changed: Arc::default(),
            stats: Arc::default(),
        }
    }

    fn state(s: &Shared) -> Option<SrvState> {
        s.records.lock().unwrap()["r"].state.clone()
    }

    #[test]
    fn no_answer_binds_negative_unless_the_last_good_set_is_kept() {
        let good = SrvAnswer::Bound(vec![("10.0.0.1:80".parse().unwrap(), 1.0)]);
        let off = shared();
        off.store("/p", "r", good.clone(), Duration::ZERO);
        off.store("/p", "r", SrvAnswer::Failed("timeout".into()), Duration::ZERO);
        assert!(matches!(state(&off), Some(SrvState::Neg(_))));
        let on = shared();
        on.store("/p", "r", good.clone(), Duration::from_secs(60));
        on.store("/p", "r", SrvAnswer::Failed("timeout".into()), Duration::from_secs(60));
        assert!(matches!(state(&on), Some(SrvState::Bound(_))));
        assert_eq!(on.stats.kept_last_good.load(Ordering::Relaxed), 1);
        // Never after NXDOMAIN.
        on.store("/p", "r", SrvAnswer::Neg("NXDOMAIN".into()), Duration::from_secs(60));
        on.store("/p", "r", SrvAnswer::Failed("timeout".into()), Duration::from_secs(60));
        assert!(matches!(state(&on), Some(SrvState::Neg(_))));
    }
}
