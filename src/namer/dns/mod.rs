//! DNS: host names resolved with hickory-resolver, on the control thread's
//! runtime (never on a core). docs/dns.md describes the design.
//!
//! - this file: the resolver built from `corelink.dns` (the system's
//!   `/etc/resolv.conf` and `/etc/hosts` by default), TTL clamping, and
//!   [`lookup_host`], the one path from a host name to addresses that every
//!   user shares (names the config mentions, names requests supply, SRV
//!   targets).
//! - `names`: the names the config (dtabs, namer files, ConfigMap dtabs)
//!   mentions, each refreshed when its TTL runs out ([`ConfigNames`]).
//! - `request`: names only requests supply, resolved when a core asks,
//!   bounded (a capped cache, a lookup rate limit); the cores' side is
//!   `table::names`.

pub mod names;
pub mod request;

use std::net::IpAddr;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use config::DnsConfig;
use hickory_resolver::config::{LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::NetError;
use hickory_resolver::proto::rr::{Name, RData, Record};

pub use names::{ConfigNames, HostResolver, OneShot};

/// The resolver every DNS user of corelink shares.
pub type Resolver = hickory_resolver::TokioResolver;

/// DNS counters (admin metrics, docs/metrics.md). Written off the data
/// path, by the control thread's tasks.
#[derive(Debug, Default)]
pub struct DnsStats {
    /// Lookups of names the config mentions (first resolutions, refreshes).
    pub config_lookups: AtomicU64,
    /// Of those, lookups that failed or found no such host (the last
    /// answer kept).
    pub config_failures: AtomicU64,
    /// Refreshes that changed a config name's addresses.
    pub config_changes: AtomicU64,
    /// Lookups of names only requests supplied.
    pub request_lookups: AtomicU64,
    /// Of those, lookups that failed (timeouts, unreachable servers; not
    /// "no such host").
    pub request_failures: AtomicU64,
    /// Asks answered from the control thread's answers (another core asked
    /// first).
    pub request_cached: AtomicU64,
    /// Asks refused by `lookupsPerSecond`.
    pub request_rate_limited: AtomicU64,
    /// Answers dropped by `maxNames` (on the control thread and the cores).
    pub request_evicted: AtomicU64,
    /// Requests that could not ask (too many names pending on their core,
    /// or the queue to the control thread full).
    pub request_dropped: AtomicU64,
    /// Requests whose host is no valid DNS name (refused without a lookup).
    pub request_invalid: AtomicU64,
    /// Requests that waited for an answer, and those whose wait ran out.
    pub request_waits: AtomicU64,
    pub request_wait_timeouts: AtomicU64,
    /// The `io.l5d.dnssrv` namers'.
    pub srv: std::sync::Arc<crate::namer::dnssrv::SrvStats>,
}

/// Why no resolver could be built.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("cannot read the system's DNS configuration (/etc/resolv.conf): {0}")]
    SystemConf(NetError),
    #[error("cannot build the DNS resolver: {0}")]
    Build(NetError),
}

/// `corelink.dns` as durations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DnsSettings {
    pub min_ttl: Duration,
    pub max_ttl: Duration,
    pub negative_ttl: Duration,
    pub timeout: Duration,
}

impl From<&DnsConfig> for DnsSettings {
    fn from(c: &DnsConfig) -> DnsSettings {
        DnsSettings {
            min_ttl: Duration::from_secs(c.min_ttl_secs),
            max_ttl: Duration::from_secs(c.max_ttl_secs),
            negative_ttl: Duration::from_secs(c.negative_ttl_secs),
            timeout: Duration::from_millis(c.timeout_ms),
        }
    }
}

impl DnsSettings {
    /// A TTL within the floor and the ceiling.
    pub fn clamp(&self, ttl: Duration) -> Duration {
        ttl.clamp(self.min_ttl, self.max_ttl)
    }
}

/// Builds the resolver `corelink.dns` describes. Its own cache is off:
/// corelink keeps every answer it uses (with the TTL clamped), and a cache
/// under it would hand back an answer older than the ceiling allows.
pub fn build_resolver(config: &DnsConfig) -> Result<Resolver, DnsError> {
    let mut builder = if config.servers.is_empty() {
        Resolver::builder_tokio().map_err(DnsError::SystemConf)?
    } else {
        let servers = config
            .servers
            .iter()
            .map(|addr| {
                let mut server = NameServerConfig::udp_and_tcp(addr.ip());
                for c in &mut server.connections {
                    c.port = addr.port();
                }
                server
            })
            .collect();
        let mut builder =
            Resolver::builder_with_config(ResolverConfig::from_name_servers(servers), TokioRuntimeProvider::default());
        // Named servers answer alone: /etc/hosts is the system's view.
        builder.options_mut().use_hosts_file = ResolveHosts::Never;
        builder
    };
    let options = builder.options_mut();
    options.cache_size = 0;
    // One attempt per server within the resolution timeout: a request
    // waits for this, and the refresh loops retry on their own schedule.
    options.timeout = Duration::from_millis(config.timeout_ms);
    options.attempts = 1;
    // Both families, as linkerd's inet namer (the JVM) returns both.
    options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    // CNAME records stay in answers: `owned_ips` follows the chain.
    options.preserve_intermediates = true;
    builder.build().map_err(DnsError::Build)
}

/// CNAME links followed from the asked name, at most (resolvers stop at
/// about as many; a longer chain is a loop or an attack).
const MAX_CNAME_CHAIN: usize = 16;

/// The addresses of an answer that belong to the asked name: A and AAAA
/// records owned by `asked` or by a name its CNAME chain (within the
/// answer) leads to. hickory returns every address record of the answer
/// section, and a server may put others there: they are not this name's.
fn owned_ips(asked: &Name, answers: &[Record]) -> Vec<IpAddr> {
    let mut chain: Vec<&Name> = vec![asked];
    for _ in 0..MAX_CNAME_CHAIN {
        let next = answers.iter().find_map(|r| match &r.data {
            RData::CNAME(target) if chain.iter().any(|n| n.eq_ignore_root(&r.name)) => {
                Some(&target.0).filter(|t| !chain.iter().any(|n| n.eq_ignore_root(t)))
            }
            _ => None,
        });
        match next {
            Some(target) => chain.push(target),
            None => break,
        }
    }
    answers
        .iter()
        .filter(|r| chain.iter().any(|n| n.eq_ignore_root(&r.name)))
        .filter_map(|r| r.data.ip_addr())
        .collect()
}

/// How many names a lookup of a relative host name (no final `.`) may try
/// with `config`'s resolver: the name itself, and the name in each search
/// domain (resolv.conf's `search`, or its `domain`), each asked A and AAAA.
/// hickory tries them in turn until one answers, so a name that does not
/// exist costs all of them. Named servers (`corelink.dns.servers`) have no
/// search list: 1.
pub fn names_per_lookup(config: &DnsConfig) -> u32 {
    if !config.servers.is_empty() {
        return 1;
    }
    match hickory_resolver::system_conf::read_system_conf() {
        Ok((conf, _)) => names_tried(conf.domain(), conf.search()),
        // `build_resolver` fails the same way: no lookups at all.
        Err(_) => 1,
    }
}

fn names_tried(
    domain: Option<&hickory_resolver::proto::rr::Name>,
    search: &[hickory_resolver::proto::rr::Name],
) -> u32 {
    let extra = domain.is_some_and(|d| !search.contains(d));
    u32::try_from(1 + search.len() + usize::from(extra)).unwrap_or(u32::MAX)
}

/// What a lookup said about a host name.
#[derive(Debug, Clone, PartialEq)]
pub enum HostAnswer {
    /// Its addresses, usable for `ttl` (clamped).
    Addrs { ips: Vec<IpAddr>, ttl: Duration },
    /// NXDOMAIN, or no address records: negative for `ttl`.
    NoSuchHost { ttl: Duration },
    /// The lookup failed (timeout, refused, unreachable server): ask again
    /// after `retry`.
    Failed { error: String, retry: Duration },
}

impl HostAnswer {
    /// How long the answer stands before the name is asked again.
    pub fn ttl(&self) -> Duration {
        match self {
            HostAnswer::Addrs { ttl, .. } | HostAnswer::NoSuchHost { ttl } => *ttl,
            HostAnswer::Failed { retry, .. } => *retry,
        }
    }
}

/// Resolves one host name (A and AAAA), bounded by the resolution timeout.
/// The one path from a host name to addresses: names the config mentions,
/// names requests supply and SRV targets all come through here.
pub async fn lookup_host(resolver: &Resolver, host: &str, settings: &DnsSettings) -> HostAnswer {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return HostAnswer::Addrs { ips: vec![ip], ttl: settings.max_ttl };
    }
    let lookup = tokio::time::timeout(settings.timeout, resolver.lookup_ip(host)).await;
    match lookup {
        Ok(Ok(found)) => {
            let mut ips = owned_ips(found.query().name(), found.as_lookup().answers());
            ips.sort();
            ips.dedup();
            if ips.is_empty() {
                return HostAnswer::NoSuchHost { ttl: settings.negative_ttl };
            }
            let ttl = found.valid_until().saturating_duration_since(std::time::Instant::now());
            HostAnswer::Addrs { ips, ttl: settings.clamp(ttl) }
        }
        Ok(Err(e)) if e.is_nx_domain() || e.is_no_records_found() => {
            HostAnswer::NoSuchHost { ttl: settings.negative_ttl }
        }
        Ok(Err(e)) => HostAnswer::Failed { error: e.to_string(), retry: settings.negative_ttl },
        Err(_) => HostAnswer::Failed {
            error: format!("no answer within {} ms", settings.timeout.as_millis()),
            retry: settings.negative_ttl,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_are_clamped_to_the_floor_and_the_ceiling() {
        let s = DnsSettings::from(&DnsConfig { min_ttl_secs: 2, max_ttl_secs: 60, ..Default::default() });
        assert_eq!(s.clamp(Duration::ZERO), Duration::from_secs(2));
        assert_eq!(s.clamp(Duration::from_secs(30)), Duration::from_secs(30));
        assert_eq!(s.clamp(Duration::from_secs(86_400)), Duration::from_secs(60));
    }

    #[test]
    fn only_the_asked_names_addresses_are_used() {
        let name = |n: &str| Name::from_ascii(n).unwrap();
        let a = |owner: &str, ip: &str| Record::from_rdata(name(owner), 60, RData::from(ip.parse::<IpAddr>().unwrap()));
        let cname = |owner: &str, target: &str| {
            Record::from_rdata(name(owner), 60, RData::CNAME(hickory_resolver::proto::rr::rdata::CNAME(name(target))))
        };
        let answers = [
            cname("web.test.", "lb.test."),
            a("lb.test.", "10.0.0.1"),
            a("WEB.test.", "10.0.0.2"),
            a("other.test.", "10.0.0.66"),
            cname("other.test.", "web.test."),
            cname("lb.test.", "web.test."),
        ];
        let ips = owned_ips(&name("web.test."), &answers);
        assert_eq!(ips, ["10.0.0.1".parse::<IpAddr>().unwrap(), "10.0.0.2".parse().unwrap()]);
        assert!(owned_ips(&name("none.test."), &answers).is_empty());
    }

    #[test]
    fn a_lookup_may_try_the_name_and_each_search_domain() {
        let name = |n: &str| hickory_resolver::proto::rr::Name::from_ascii(n).unwrap();
        let search = [name("ns.svc.cluster.local."), name("svc.cluster.local."), name("cluster.local.")];
        assert_eq!(names_tried(None, &[]), 1);
        assert_eq!(names_tried(None, &search), 4);
        assert_eq!(names_tried(Some(&name("cluster.local.")), &search), 4, "the domain is in the list");
        assert_eq!(names_tried(Some(&name("example.com.")), &[]), 2);
        let named = DnsConfig { servers: vec!["127.0.0.2:53".parse().unwrap()], ..Default::default() };
        assert_eq!(names_per_lookup(&named), 1, "named servers: no search list");
    }

    #[test]
    fn ip_literals_and_hosts_file_names_resolve() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let resolver = rt.block_on(async { build_resolver(&DnsConfig::default()) }).unwrap();
        let s = DnsSettings::from(&DnsConfig::default());
        let literal = rt.block_on(lookup_host(&resolver, "127.0.0.9", &s));
        assert_eq!(literal, HostAnswer::Addrs { ips: vec!["127.0.0.9".parse().unwrap()], ttl: s.max_ttl });
        match rt.block_on(lookup_host(&resolver, "localhost", &s)) {
            HostAnswer::Addrs { ips, .. } => assert!(ips.iter().all(IpAddr::is_loopback), "{ips:?}"),
            other => panic!("{other:?}"),
        }
    }
}
