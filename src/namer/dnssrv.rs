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

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use config::{DnsConfig, DnsSrvNamerConfig};
use hickory_resolver::proto::rr::RData;
use tokio::runtime::Runtime;
use tokio::sync::Notify;

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

/// One namer's records as last resolved; a record being resolved for the
/// first time is absent.
pub type SrvView = BTreeMap<String, SrvState>;

/// What a lookup of an SRV record said.
#[derive(Debug, Clone, PartialEq)]
pub enum SrvAnswer {
    Bound(Vec<(SocketAddr, f64)>),
    /// NXDOMAIN or nothing usable: negative whatever came before.
    Neg(String),
    /// No answer (timeout, refused, SERVFAIL).
    Failed(String),
}

/// Looks one record up, then its targets.
pub async fn lookup_srv(resolver: &Resolver, record: &str, settings: &DnsSettings, weights: bool) -> SrvAnswer {
    // Absolute, as linkerd's `Name.fromString(address, Name.root)`: no
    // search domains.
    let name = if record.ends_with('.') { record.to_string() } else { format!("{record}.") };
    let srvs = match tokio::time::timeout(settings.timeout, resolver.srv_lookup(name.as_str())).await {
        Ok(Ok(lookup)) => lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::SRV(srv) => Some((srv.target.to_string(), srv.port, srv.weight)),
                _ => None,
            })
            .collect::<Vec<_>>(),
        Ok(Err(e)) if e.is_nx_domain() => return SrvAnswer::Neg(format!("{record}: no such record (NXDOMAIN)")),
        Ok(Err(e)) if e.is_no_records_found() => return SrvAnswer::Neg(format!("{record}: no SRV records")),
        Ok(Err(e)) => return SrvAnswer::Failed(format!("{record}: {e}")),
        Err(_) => return SrvAnswer::Failed(format!("{record}: no answer within {} ms", settings.timeout.as_millis())),
    };
    if srvs.is_empty() {
        return SrvAnswer::Neg(format!("{record}: no SRV records"));
    }
    let answers = futures::future::join_all(srvs.iter().map(|(t, _, _)| lookup_host(resolver, t, settings))).await;
    let mut addrs = Vec::new();
    for ((_, port, weight), answer) in srvs.iter().zip(answers) {
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
}

struct Record {
    state: Option<SrvState>,
    /// When the set in `state` was last confirmed by an answer.
    good_at: Option<Instant>,
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
    tasks: BTreeMap<String, tokio::task::JoinHandle<()>>,
    /// Records in the order they were first asked for (eviction order).
    order: VecDeque<String>,
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
            if known {
                // Answered already: the snapshot published has it.
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

    /// Every namer's records now, by prefix.
    pub fn views(&self) -> BTreeMap<String, Arc<SrvView>> {
        self.namers
            .iter()
            .map(|(prefix, w)| {
                let records = w.shared.records.lock().unwrap_or_else(|p| p.into_inner());
                let view = records.iter().filter_map(|(k, r)| r.state.clone().map(|s| (k.clone(), s))).collect();
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

/// Starts the refresh task of one record (evicting the oldest past `cap`).
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
    watch
        .shared
        .records
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(record.clone(), Record { state: None, good_at: None });
    watch.order.push_back(record.clone());
    let (servers, shared, settings, prefix2, record2) =
        (watch.servers.clone(), watch.shared.clone(), watch.settings, prefix.to_string(), record.clone());
    let interval = Duration::from_secs(watch.config.refresh_interval_secs);
    let keep = Duration::from_secs(watch.config.keep_last_good_secs);
    let weights = watch.config.srv_weights;
    let task = rt.spawn(async move {
        loop {
            let answer = match servers.resolver().await {
                Ok(resolver) => lookup_srv(&resolver, &record2, &settings, weights).await,
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
            records: Mutex::new([("r".to_string(), Record { state: None, good_at: None })].into_iter().collect()),
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
