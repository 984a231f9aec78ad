//! The per-core route cache. A core resolves each destination once per
//! published snapshot; afterwards a request costs one atomic load (has a
//! snapshot been published?), its identifier's key, one hash lookup on it
//! (none on a connection whose last request had the same key: `LastRoute`,
//! which compares the request with the key rather than building it), and a
//! weighted pick. No lock anywhere.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use http1::RequestHead;
use naming::{NameTree, Pick};

use super::identifier::ClientContext;
use super::settings::ServerSettings;
use crate::balance::{Accrual, AccrualEvent, Balancer, Endpoint, LazyNow, RetryBudget, ServicePolicy, XorShift};
use crate::pool::PoolPolicy;
use crate::telemetry::metrics::{ClientStats, CoreMetrics, ServiceStats};
use config::RetryBudgetConfig;

use super::error::RouteError;
use super::names::{CoreNames, HostLookup};
use super::snapshot::{Endpoints, RequestHosts, RoutingSnapshot, SharedSnapshot, Unresolved};

/// Entries per router before the cache is cleared (a Host-header flood must
/// not grow memory without bound).
const MAX_CACHED: usize = 10_000;
/// Bytes of keys per router before the cache is cleared. The entry count
/// alone let 10,000 Host headers of 12 KiB each hold about 600 MB per router
/// and core (a failed entry's message shows the name, escaped: ~4× the key);
/// this keeps it near 10 MB. 10,000 ordinary keys (~100 bytes) fit.
const MAX_CACHED_KEY_BYTES: usize = 2 << 20;

/// One router's cached destinations on this core.
#[derive(Default)]
struct RouterCache {
    entries: HashMap<Box<[u8]>, Rc<Entry>>,
    /// The bytes of `entries`' keys.
    key_bytes: usize,
}

impl RouterCache {
    /// Caches `entry` under `key`, clearing the cache first when it would
    /// go past either bound.
    fn insert(&mut self, key: &[u8], entry: Rc<Entry>) {
        if self.entries.len() >= MAX_CACHED || self.key_bytes + key.len() > MAX_CACHED_KEY_BYTES {
            self.entries.clear();
            self.key_bytes = 0;
        }
        if self.entries.insert(key.into(), entry).is_none() {
            self.key_bytes += key.len();
        }
    }
}

/// Where one request goes, and the names linkerd puts in its context headers.
#[derive(Debug, Clone)]
pub struct Route {
    /// The endpoint chosen, and the destination's balancer (to choose
    /// another after a connect failure).
    pub endpoint: Rc<Endpoint>,
    pub destination: Rc<BoundEndpoints>,
    /// The logical name's classifier, retries and timeout.
    pub policy: Rc<ServicePolicy>,
    /// Leading path segments the identifier consumed (`io.l5d.path` with
    /// `consume: true`), stripped from the target sent upstream.
    pub consume: usize,
    /// Whether to send the `l5d-dst-*` context headers.
    pub context: bool,
    /// The logical name (`l5d-dst-service`), e.g. `/svc/serviceB`.
    pub service: Rc<str>,
    /// This core's metrics of the logical name (the bound name's are the
    /// destination's: [`Route::client_stats`]).
    pub service_stats: Rc<ServiceStats>,
}

/// How to speak TLS to one destination, derived once per core from its
/// client name.
#[derive(Debug)]
pub struct RouteTls {
    /// This core's rustls configuration for the destination's profile.
    pub config: Arc<rustls::ClientConfig>,
    /// The name sent as SNI and verified; None: noValidation without a name
    /// (the endpoint's address stands in).
    pub name: Option<rustls::pki_types::ServerName<'static>>,
    /// The same name as text, for logs and errors ("" when None).
    pub name_text: Rc<str>,
    /// False for noValidation: the peer's certificate is not checked.
    pub validates: bool,
    /// The pool key part: the core's configuration (its serial: a profile
    /// rebuilt by a reload or changed files gets a new one) and the name, so
    /// a connection verified for one identity, or under other trust roots,
    /// never carries a request for another.
    pub identity: Rc<str>,
}

// The bound name, its TLS and its metrics are read from the destination,
// not copied into the route: a route is moved several times per request,
// and at 128 bytes or less a move is a few register copies instead of a
// `memcpy` call (docs/engine.md, issue 16).
impl Route {
    pub fn context_headers(&self) -> [(&'static str, &[u8]); 2] {
        [("l5d-dst-service", self.service.as_bytes()), ("l5d-dst-client", self.client().as_bytes())]
    }

    /// The bound (client) name (`l5d-dst-client`), e.g. `/$/inet/127.0.0.1/8080`.
    pub fn client(&self) -> &Rc<str> {
        &self.destination.client
    }

    /// TLS to this destination (None: plaintext). A destination whose TLS
    /// policy failed is never routed to (`RouteTable::pick`).
    pub fn tls(&self) -> Option<&RouteTls> {
        self.destination.tls.as_ref().ok().and_then(Option::as_deref)
    }

    /// This core's metrics of the bound name.
    pub fn client_stats(&self) -> &Rc<ClientStats> {
        &self.destination.stats
    }
}

/// A bound name with its endpoints, as cached per core.
#[derive(Debug)]
pub struct BoundEndpoints {
    client: Rc<str>,
    /// The TLS this destination gets, or why it cannot have any (a strict
    /// boundPath with no matching prefix, an invalid derived name).
    tls: Result<Option<Rc<RouteTls>>, Rc<str>>,
    stats: Rc<ClientStats>,
    pub balancer: Balancer,
    /// `requestAttemptTimeoutMs`: how long one attempt may wait for its
    /// response head.
    pub attempt_timeout: Option<std::time::Duration>,
    /// `hostConnectionPool`, per core.
    pub pool: PoolPolicy,
    /// `requeueBudget`: connect failures moved to another endpoint.
    pub requeue: Rc<RetryBudget>,
}

impl BoundEndpoints {
    /// Tells failure accrual how a request to `endpoint` went, and counts
    /// what changed in the client's `failure_accrual/*` metrics.
    pub fn accrue(&self, endpoint: &Endpoint, success: bool, now: std::time::Instant) {
        match self.balancer.accrual.on_result(&endpoint.health, success, now) {
            AccrualEvent::None => {}
            AccrualEvent::Removed => self.stats.accrual_removals.incr(),
            AccrualEvent::Revived => {
                self.stats.accrual_probes.incr();
                self.stats.accrual_revivals.incr();
            }
            AccrualEvent::ProbeFailed => self.stats.accrual_probes.incr(),
        }
    }
}

#[derive(Debug)]
enum Cached {
    Routed {
        service: Rc<str>,
        stats: Rc<ServiceStats>,
        policy: Rc<ServicePolicy>,
        tree: NameTree<Rc<BoundEndpoints>>,
    },
    /// The name cannot be routed (no route, no endpoints, unidentifiable),
    /// cached for the generation.
    Failed(RouteError),
}

pub struct RouteTable {
    shared: SharedSnapshot,
    /// Scratch buffer for identification keys (reused: no allocation).
    key: RefCell<Vec<u8>>,
    state: RefCell<State>,
    rng: XorShift,
    /// This core's metrics: client and service scopes are handed to the
    /// cache entries that route to them.
    metrics: Rc<CoreMetrics>,
    /// This core's endpoints by (router, address): load, latency and
    /// accrual state outlive cache entries and snapshots.
    endpoints: RefCell<HashMap<(usize, SocketAddr), Rc<Endpoint>>>,
    /// This core's `requeueBudget` per (router, client name): like the
    /// endpoints, it outlives cache entries and snapshots.
    requeue_budgets: RefCell<RequeueBudgets>,
    workers: usize,
    /// Answers for host names only requests supplied.
    names: CoreNames,
}

struct State {
    snapshot: Arc<RoutingSnapshot>,
    /// The snapshot's [`SharedSnapshot::version`].
    version: u64,
    per_router: Vec<RouterCache>,
    /// This core's copies of the servers' settings (`Rc`, so handing them to
    /// a request touches no shared cache line).
    servers: Vec<Rc<ServerSettings>>,
    /// Per router, this core's rustls client configurations (one per TLS
    /// profile, each with its own session cache: resumption per core).
    client_tls: Vec<Vec<crate::tls::client::CoreConfig>>,
    /// The same configurations by template, carried to the next snapshot so
    /// unchanged profiles keep their TLS sessions.
    tls_by_template: crate::tls::client::CoreConfigs,
}

impl State {
    fn new(
        snapshot: Arc<RoutingSnapshot>,
        version: u64,
        known: &crate::tls::client::CoreConfigs,
        workers: usize,
    ) -> State {
        let per_router = snapshot.routers.iter().map(|_| RouterCache::default()).collect();
        let servers = snapshot.servers.iter().map(|s| Rc::new(s.for_core(workers))).collect();
        let mut client_tls = Vec::with_capacity(snapshot.routers.len());
        let mut tls_by_template = crate::tls::client::CoreConfigs::new();
        for router in &snapshot.routers {
            client_tls.push(router.client_tls.per_core(known, &mut tls_by_template));
        }
        State { snapshot, version, per_router, servers, client_tls, tls_by_template }
    }
}

impl RouteTable {
    /// A route cache with metrics of its own (tests and benchmarks).
    pub fn new(shared: SharedSnapshot) -> Self {
        let snapshot = shared.load_full();
        let routers: Vec<String> = snapshot.routers.iter().map(|r| r.label.clone()).collect();
        Self::with_metrics(shared, Rc::new(CoreMetrics::new(0, &routers, &[])), 1)
    }

    /// `workers`: how many cores share linkerd's per-host pool limits.
    pub fn with_metrics(shared: SharedSnapshot, metrics: Rc<CoreMetrics>, workers: usize) -> Self {
        Self::with_names(shared, metrics, workers, CoreNames::none())
    }

    /// With `names`: this core's answers for host names only requests
    /// supply (asked of the control thread).
    pub fn with_names(shared: SharedSnapshot, metrics: Rc<CoreMetrics>, workers: usize, names: CoreNames) -> Self {
        let version = shared.version();
        let snapshot = shared.load_full();
        let seed = (&shared as *const SharedSnapshot as u64) ^ 0x9E37_79B9_7F4A_7C15;
        RouteTable {
            shared,
            key: RefCell::new(Vec::with_capacity(256)),
            state: RefCell::new(State::new(snapshot, version, &Default::default(), workers)),
            rng: XorShift::new(seed),
            metrics,
            endpoints: RefCell::new(HashMap::new()),
            requeue_budgets: RefCell::new(HashMap::new()),
            workers,
            names,
        }
    }

    /// This core's request-supplied host names.
    pub fn names(&self) -> &CoreNames {
        &self.names
    }

    /// Adopts a newer published snapshot, if any, dropping this core's cache.
    fn refresh(&self, state: &mut State) {
        let version = self.shared.version();
        if version != state.version {
            *state = State::new(self.shared.load_full(), version, &state.tls_by_template, self.workers);
        }
    }

    fn parts<'a>(&'a self, tls_configs: &'a [crate::tls::client::CoreConfig]) -> CoreParts<'a> {
        CoreParts {
            tls_configs,
            metrics: &self.metrics,
            endpoints: &self.endpoints,
            requeue_budgets: &self.requeue_budgets,
            workers: self.workers,
            names: &self.names,
        }
    }

    /// This core's metrics.
    pub fn metrics(&self) -> &Rc<CoreMetrics> {
        &self.metrics
    }

    /// The current settings of server `index` (see `RoutingSnapshot::servers`).
    pub fn server(&self, index: usize) -> Rc<ServerSettings> {
        let mut state = self.state.borrow_mut();
        self.refresh(&mut state);
        state.servers[index].clone()
    }

    /// Routes one request of `router`, from a server that honours or clears
    /// its clients' linkerd context.
    pub fn route(
        &self,
        router: usize,
        head: &RequestHead<'_, '_>,
        context: ClientContext,
    ) -> Result<Route, RouteError> {
        self.route_after(router, head, context, &mut LastRoute::default())
    }

    /// Routes one request of `router` on a connection whose last request
    /// went to `last`, and remembers where this one goes. A server that
    /// clears its clients' context routes as if their `l5d-*` fields were
    /// not there: no `l5d-dtab`, no `l5d-*` identifier header.
    pub fn route_after(
        &self,
        router: usize,
        head: &RequestHead<'_, '_>,
        client_context: ClientContext,
        last: &mut LastRoute,
    ) -> Result<Route, RouteError> {
        let mut state = self.state.borrow_mut();
        self.refresh(&mut state);
        let State { snapshot, version, per_router, client_tls, .. } = &mut *state;
        let tls_configs: &[crate::tls::client::CoreConfig] = &client_tls[router];
        let routes = &snapshot.routers[router];
        let context = routes.context_headers;
        // A per-request dtab (`l5d-dtab`, when the router honours it) makes
        // the result specific to this request: resolved, never cached.
        let local_dtab = match routes.dtab_headers && client_context == ClientContext::Honoured {
            true => head.headers.iter().find(|h| h.name.eq_ignore_ascii_case("l5d-dtab")),
            false => None,
        };
        // The connection's last destination, when this request would have
        // the same key under the same snapshot: no key built, no hash, no
        // map.
        if local_dtab.is_none() {
            let last_key = last
                .entry(*version, router)
                .filter(|(key, e)| e.is_fresh() && routes.identifiers.matches(head, client_context, key));
            if let Some((key, entry)) = last_key {
                return self.pick(&entry.cached, routes.identifiers.consumed_segments(key), context);
            }
        }
        let mut key = self.key.borrow_mut();
        routes.identifiers.key(head, client_context, &mut key).map_err(RouteError::Unidentified)?;
        let key: &[u8] = &key;
        let consume = routes.identifiers.consumed_segments(key);
        if let Some(h) = local_dtab {
            let text = std::str::from_utf8(h.value).map_err(|_| RouteError::DtabHeaderNotUtf8)?;
            let local = naming::Dtab::parse(text).map_err(|e| RouteError::InvalidDtabHeader(e.to_string()))?;
            let core = self.parts(tls_configs);
            let entry = resolve(snapshot, router, key, Some(&local), &core)?;
            return self.pick(&entry.cached, consume, context);
        }
        let cache = &mut per_router[router];
        // One hash on a hit (the common case); the key is client-controlled,
        // so the map keeps std's seeded SipHash against collision floods.
        let entry = match cache.entries.get(key).filter(|e| e.is_fresh()) {
            Some(entry) => entry.clone(),
            None => {
                let core = self.parts(tls_configs);
                let entry = Rc::new(resolve(snapshot, router, key, None, &core)?);
                cache.insert(key, entry.clone());
                entry
            }
        };
        let route = self.pick(&entry.cached, consume, context);
        last.remember(*version, router, key, entry);
        route
    }

    /// Chooses an endpoint from a resolved destination.
    fn pick(&self, entry: &Cached, consume: usize, context: bool) -> Result<Route, RouteError> {
        match entry {
            Cached::Routed { service, stats, policy, tree } => {
                let pick = tree.pick(self.random());
                match pick {
                    Pick::Leaf(bound) => {
                        let Some(endpoint) = bound.balancer.pick(&LazyNow::default(), None) else {
                            return Err(RouteError::NoEndpoints(format!(
                                "No hosts are available for {service}: every endpoint of {} is marked dead (failure accrual)",
                                bound.client
                            )));
                        };
                        if let Err(why) = &bound.tls {
                            return Err(RouteError::TlsPolicy(why.to_string()));
                        }
                        Ok(Route {
                            endpoint,
                            destination: bound.clone(),
                            policy: policy.clone(),
                            consume,
                            context,
                            service: service.clone(),
                            service_stats: stats.clone(),
                        })
                    }
                    _ => Err(RouteError::NoRoute(format!("Unable to route request: {service} has no bound name"))),
                }
            }
            Cached::Failed(e) => Err(e.clone()),
        }
    }

    /// A per-core pseudo-random number (request ids, weighted picks).
    pub fn random(&self) -> u64 {
        self.rng.next()
    }
}

/// A cached destination, and until when it holds when it used
/// request-supplied host names (their answers expire; others last the
/// generation).
#[derive(Debug)]
struct Entry {
    cached: Cached,
    expires: Option<Instant>,
}

impl Entry {
    /// Whether the entry still holds. Only an entry with request-supplied
    /// host names reads the clock.
    fn is_fresh(&self) -> bool {
        self.expires.is_none_or(|e| Instant::now() < e)
    }
}

/// Where a connection's last request went. A keep-alive connection nearly
/// always asks for the same destination again: its next request with the
/// same identification key, under the same snapshot, takes the entry from
/// here, without hashing the key and looking it up in the core's map
/// (docs/engine.md, issue 16). A new snapshot, or another key, goes
/// through the map again.
#[derive(Debug, Default)]
pub struct LastRoute(Option<Remembered>);

#[derive(Debug)]
struct Remembered {
    /// The snapshot version, router and key the entry was found for.
    version: u64,
    router: usize,
    key: Vec<u8>,
    entry: Rc<Entry>,
}

impl LastRoute {
    /// The remembered key and entry, if they were found under this
    /// snapshot for this router (whether the request has that key is the
    /// caller's to compare: `Identifiers::matches`).
    fn entry(&self, version: u64, router: usize) -> Option<(&[u8], &Rc<Entry>)> {
        let r = self.0.as_ref()?;
        (r.version == version && r.router == router).then_some((&r.key[..], &r.entry))
    }

    fn remember(&mut self, version: u64, router: usize, key: &[u8], entry: Rc<Entry>) {
        match &mut self.0 {
            // The key's buffer is reused: no allocation once the connection
            // has seen a key this long.
            Some(r) => {
                r.version = version;
                r.router = router;
                r.key.clear();
                r.key.extend_from_slice(key);
                r.entry = entry;
            }
            None => self.0 = Some(Remembered { version, router, key: key.to_vec(), entry }),
        }
    }
}

/// This core's answers for request-supplied host names, as the snapshot
/// asks for them during one resolution: notes the earliest expiry, and the
/// name the request must wait for.
struct Hosts<'a> {
    names: &'a CoreNames,
    now: Instant,
    expires: Cell<Option<Instant>>,
    resolving: RefCell<Option<String>>,
}

impl RequestHosts for Hosts<'_> {
    fn lookup(&self, host: &str) -> Result<Vec<IpAddr>, Unresolved> {
        let (result, until) = match self.names.lookup(host, self.now) {
            HostLookup::Addrs(ips, until) => (Ok(ips), until),
            HostLookup::Negative(why, until) => (Err(Unresolved::Unavailable(why)), until),
            HostLookup::Resolving => {
                self.resolving.borrow_mut().get_or_insert_with(|| host.to_string());
                return Err(Unresolved::Resolving(host.to_string()));
            }
        };
        self.expires.set(Some(self.expires.get().map_or(until, |e| e.min(until))));
        result
    }

    fn expires_within(&self, within: std::time::Duration) {
        let until = self.now + within;
        self.expires.set(Some(self.expires.get().map_or(until, |e| e.min(until))));
    }
}

/// Resolves a destination on a cache miss: identify, delegate, find endpoints.
fn resolve(
    snapshot: &RoutingSnapshot,
    router: usize,
    key: &[u8],
    local: Option<&naming::Dtab>,
    core: &CoreParts<'_>,
) -> Result<Entry, RouteError> {
    let for_generation = |cached| Ok(Entry { cached, expires: None });
    let routes = &snapshot.routers[router];
    let name = match routes.identifiers.name(&routes.dst_prefix, key) {
        Ok(name) => name,
        Err(e) => return for_generation(Cached::Failed(RouteError::Unidentified(e))),
    };
    let service: Rc<str> = name.show().into();
    let dtab_text = routes.dtab.show();
    let hosts =
        Hosts { names: core.names, now: Instant::now(), expires: Cell::new(None), resolving: RefCell::new(None) };
    let bound = match snapshot.bind_with(router, &name, local, &hosts) {
        Ok(tree) => tree,
        Err(e) => {
            return Ok(Entry {
                cached: Cached::Failed(RouteError::NoRoute(format!("Unable to route {service}: {e}"))),
                expires: hosts.expires.get(),
            })
        }
    };
    // linkerd's text for a name that binds to nothing or to no addresses.
    let no_hosts = || -> String {
        format!(
            "No hosts are available for {service}, Dtab.base=[{dtab_text}], Dtab.local=[]. Remote Info: Not Available"
        )
    };
    let mut unavailable = Vec::new();
    let tree = bound.map(&mut |b| match snapshot.endpoints(router, b, &hosts) {
        Endpoints::Addrs { client, addrs } => {
            let tls = route_tls(&routes.client_tls, core.tls_configs, &client);
            if matches!(tls, Ok(None)) && routes.client_tls.encrypts_only_some_names() {
                warn_plaintext(&routes.label, &client);
            }
            let stats = core.metrics.client(router, &client);
            Some(Rc::new(core.bound(router, &routes.client, client.into(), tls, stats, &addrs)))
        }
        Endpoints::Unavailable(why) => {
            unavailable.push(why);
            None
        }
        Endpoints::Resolving(_) => None,
    });
    // A name being resolved: the request waits for it and is routed again
    // (nothing is cached meanwhile).
    if let Some(host) = hosts.resolving.take() {
        return Err(RouteError::Resolving(host));
    }
    // Leaves without endpoints become Neg, so a union sends nothing there.
    let tree = prune(tree).simplify();
    let cached = match tree {
        NameTree::Neg | NameTree::Fail | NameTree::Empty if unavailable.is_empty() => {
            Cached::Failed(RouteError::NoRoute(no_hosts()))
        }
        NameTree::Neg | NameTree::Fail | NameTree::Empty => {
            Cached::Failed(RouteError::NoEndpoints(format!("{} ({})", no_hosts(), unavailable.join("; "))))
        }
        tree => {
            let stats = core.metrics.service(router, &service);
            let policy = Rc::new(ServicePolicy::resolve(&routes.service, &service));
            Cached::Routed { service, stats, policy, tree }
        }
    };
    Ok(Entry { cached, expires: hosts.expires.get() })
}

/// Per (router, client name): that client's requeue budget on this core.
type RequeueBudgets = HashMap<(usize, Rc<str>), Rc<RetryBudget>>;

/// What a cache miss needs from its core.
struct CoreParts<'a> {
    tls_configs: &'a [crate::tls::client::CoreConfig],
    metrics: &'a CoreMetrics,
    endpoints: &'a RefCell<HashMap<(usize, SocketAddr), Rc<Endpoint>>>,
    requeue_budgets: &'a RefCell<RequeueBudgets>,
    workers: usize,
    names: &'a CoreNames,
}

/// Endpoints kept per core before those no destination uses are dropped.
const MAX_ENDPOINTS: usize = 10_000;

/// Drops the entries nobody else holds once the map has `MAX_ENDPOINTS` or
/// more and is full. After a scan the map has room for as many entries
/// again as it kept, so the next scan waits until that many new keys came:
/// a core with more than `MAX_ENDPOINTS` in use scans once per doubling,
/// not on every bind (which made a snapshot cost names × endpoints), even
/// when binds only meet known keys. Returns whether it scanned.
fn prune_unused<K: Eq + std::hash::Hash, V>(map: &mut HashMap<K, Rc<V>>) -> bool {
    if map.len() < MAX_ENDPOINTS || map.len() < map.capacity() {
        return false;
    }
    map.retain(|_, v| Rc::strong_count(v) > 1);
    map.reserve(map.len());
    true
}

impl CoreParts<'_> {
    /// One bound name as this core routes to it: its endpoints, the
    /// balancer, accrual, pool and requeue budget its client config gives.
    fn bound(
        &self,
        router: usize,
        client: &config::ClientConfig,
        name: Rc<str>,
        tls: Result<Option<Rc<RouteTls>>, Rc<str>>,
        stats: Rc<ClientStats>,
        addrs: &[(SocketAddr, f64)],
    ) -> BoundEndpoints {
        let mut all = self.endpoints.borrow_mut();
        prune_unused(&mut all);
        let endpoints = addrs
            .iter()
            .map(|(addr, weight)| {
                let e = all.entry((router, *addr)).or_insert_with(|| Rc::new(Endpoint::new(*addr))).clone();
                (e, *weight)
            })
            .collect();
        let params = EffectiveClient::resolve(client, &name);
        let balancer =
            Balancer::new(endpoints, params.load_balancer, Rc::new(Accrual::from_config(params.accrual.as_ref())));
        let requeue = self.requeue_budget(router, &name, params.requeue_budget);
        BoundEndpoints {
            client: name,
            tls,
            stats,
            balancer,
            attempt_timeout: params.attempt_timeout_ms.map(std::time::Duration::from_millis),
            pool: PoolPolicy::new(&params.pool, self.workers),
            requeue,
        }
    }

    /// The client's requeue budget on this core, kept across cache entries
    /// (and snapshots) while its config stays the same.
    fn requeue_budget(&self, router: usize, name: &Rc<str>, config: RetryBudgetConfig) -> Rc<RetryBudget> {
        let mut all = self.requeue_budgets.borrow_mut();
        prune_unused(&mut all);
        let entry = all.entry((router, name.clone())).or_insert_with(|| Rc::new(RetryBudget::new(config)));
        if *entry.config() != config {
            *entry = Rc::new(RetryBudget::new(config));
        }
        entry.clone()
    }
}

/// One client name's parameters as in effect: the router's `client`
/// section, with every matching `io.l5d.static` prefix config (each a
/// `config::ClientParams`) applied in order, later ones overriding, as
/// linkerd does.
struct EffectiveClient {
    load_balancer: config::LoadBalancerConfig,
    accrual: Option<config::FailureAccrualConfig>,
    attempt_timeout_ms: Option<u64>,
    pool: config::HostConnectionPool,
    requeue_budget: RetryBudgetConfig,
}

impl EffectiveClient {
    fn resolve(client: &config::ClientConfig, name: &str) -> EffectiveClient {
        let mut p = EffectiveClient {
            load_balancer: client.load_balancer.clone(),
            accrual: client.failure_accrual.clone(),
            attempt_timeout_ms: client.request_attempt_timeout_ms,
            pool: client.host_connection_pool.clone(),
            requeue_budget: client.requeue_budget.unwrap_or_default(),
        };
        if client.kind != config::ClientKind::Static {
            return p;
        }
        for c in naming::prefix::matching(&client.configs, name, |c| &c.prefix) {
            let c = &c.params;
            if let Some(l) = &c.load_balancer {
                p.load_balancer = l.clone();
            }
            if let Some(a) = &c.failure_accrual {
                p.accrual = Some(a.clone());
            }
            p.attempt_timeout_ms = c.request_attempt_timeout_ms.or(p.attempt_timeout_ms);
            if let Some(pool) = &c.host_connection_pool {
                p.pool = pool.clone();
            }
            p.requeue_budget = c.requeue_budget.unwrap_or(p.requeue_budget);
        }
        p
    }
}

/// Says that a destination goes in plaintext because no client TLS prefix
/// matches its name: once per (router, destination) on each core, for the
/// first `PLAINTEXT_WARNINGS` destinations (routes are resolved again on
/// every snapshot and for every `l5d-dtab` request, so without the set a
/// few destinations would spend the budget and a new one go unlogged).
fn warn_plaintext(router: &str, client: &str) {
    const PLAINTEXT_WARNINGS: usize = 100;
    thread_local! {
        static WARNED: RefCell<std::collections::HashSet<(String, String)>> = RefCell::default();
    }
    WARNED.with(|warned| {
        let mut warned = warned.borrow_mut();
        let key = (router.to_owned(), client.to_owned());
        if warned.len() > PLAINTEXT_WARNINGS || warned.contains(&key) {
            return;
        }
        if warned.len() == PLAINTEXT_WARNINGS {
            tracing::warn!(router, "more destinations match no client TLS prefix; no more of them are logged");
        } else {
            tracing::warn!(
                router,
                client,
                "{client} matches no client TLS prefix: requests to it are sent in PLAINTEXT"
            );
        }
        warned.insert(key);
    });
}

/// The TLS of one destination, from its client name.
fn route_tls(
    policy: &crate::tls::ClientTlsPolicy,
    configs: &[crate::tls::client::CoreConfig],
    client: &str,
) -> Result<Option<Rc<RouteTls>>, Rc<str>> {
    let Some(target) = policy.target(client)? else { return Ok(None) };
    let name = match &target.name {
        Some(n) => Some(crate::tls::client::server_name(n)?),
        None => None,
    };
    // The configuration's serial, not the profile's index: a reload that
    // changes a profile's verification keeps its index.
    let config = &configs[target.profile];
    let identity = format!("{}:{}", config.serial, target.name.as_deref().unwrap_or(""));
    Ok(Some(Rc::new(RouteTls {
        config: config.rustls.clone(),
        name,
        name_text: target.name.as_deref().unwrap_or("").into(),
        validates: target.validates,
        identity: identity.into(),
    })))
}

fn prune(tree: NameTree<Option<Rc<BoundEndpoints>>>) -> NameTree<Rc<BoundEndpoints>> {
    match tree {
        NameTree::Leaf(Some(b)) => NameTree::Leaf(b),
        NameTree::Leaf(None) => NameTree::Neg,
        NameTree::Alt(ts) => NameTree::Alt(ts.into_iter().map(prune).collect()),
        NameTree::Union(ws) => {
            NameTree::Union(ws.into_iter().map(|w| naming::Weighted::new(w.weight, prune(w.tree))).collect())
        }
        NameTree::Neg => NameTree::Neg,
        NameTree::Fail => NameTree::Fail,
        NameTree::Empty => NameTree::Empty,
    }
}

#[cfg(test)]
mod tests {
    use std::mem::MaybeUninit;

    use super::*;

    fn snapshot(dtab: &str, generation: u64) -> RoutingSnapshot {
        let text = format!("routers:\n- protocol: http\n  dtab: |\n    {dtab}\n  servers: [{{port: 1}}]\n");
        let config = config::Config::parse(&text, "t").unwrap();
        crate::server::control::compile(&config, generation).unwrap()
    }

    /// The bound name a request with `Host: host` is routed to.
    fn client_of(table: &RouteTable, host: &str, last: &mut LastRoute) -> String {
        let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
        let mut slots = [MaybeUninit::uninit(); http1::HEADER_SLOTS];
        let head = http1::parse_request(request.as_bytes(), &mut slots, &http1::Limits::default()).unwrap().unwrap();
        table
            .route_after(0, &head, ClientContext::Honoured, last)
            .map(|r| r.client().to_string())
            .unwrap_or_else(|e| format!("error: {e}"))
    }

    /// A connection's remembered route holds for its key under its
    /// snapshot only: another key, or a newly published snapshot (even one
    /// with the same generation number), routes afresh.
    #[test]
    fn the_last_route_holds_for_one_key_under_one_snapshot() {
        let shared = SharedSnapshot::new(snapshot("/svc/a => /$/inet/127.0.0.1/1; /svc/b => /$/inet/127.0.0.1/2", 1));
        let table = RouteTable::new(shared.clone());
        let mut last = LastRoute::default();
        assert_eq!(client_of(&table, "a", &mut last), "/$/inet/127.0.0.1/1");
        assert_eq!(client_of(&table, "a", &mut last), "/$/inet/127.0.0.1/1");
        assert_eq!(client_of(&table, "b", &mut last), "/$/inet/127.0.0.1/2", "another key");
        assert_eq!(client_of(&table, "a", &mut last), "/$/inet/127.0.0.1/1", "and back");

        shared.publish(snapshot("/svc/a => /$/inet/127.0.0.1/3; /svc/b => /$/inet/127.0.0.1/2", 1));
        assert_eq!(client_of(&table, "a", &mut last), "/$/inet/127.0.0.1/3", "a new snapshot");
        assert_eq!(client_of(&table, "a", &mut last), "/$/inet/127.0.0.1/3");

        // A route remembered by another connection under the old snapshot
        // is not taken either.
        let mut other = LastRoute::default();
        assert_eq!(client_of(&table, "b", &mut other), "/$/inet/127.0.0.1/2");
        shared.publish(snapshot("/svc/b => /$/inet/127.0.0.1/4", 2));
        assert_eq!(client_of(&table, "b", &mut other), "/$/inet/127.0.0.1/4");
        assert!(client_of(&table, "a", &mut last).starts_with("error: "), "a is no longer routed");
    }

    /// A flood of long Host headers is bounded by the bytes of its keys, not
    /// only by their count.
    #[test]
    fn long_keys_are_bounded_by_bytes() {
        let table = RouteTable::new(SharedSnapshot::new(snapshot("/svc => /$/inet/127.0.0.1/1", 1)));
        let mut last = LastRoute::default();
        let mut most = 0;
        // 5,000-byte names (a bound path may hold 8 KiB), 3 MB of them.
        for i in 0..600 {
            let host = format!("h{i}-{}", "x".repeat(5_000));
            assert_eq!(client_of(&table, &host, &mut last), "/$/inet/127.0.0.1/1");
            let state = table.state.borrow();
            let cache = &state.per_router[0];
            assert!(cache.key_bytes <= MAX_CACHED_KEY_BYTES, "{} bytes of keys", cache.key_bytes);
            assert_eq!(cache.key_bytes, cache.entries.keys().map(|k| k.len()).sum::<usize>());
            most = most.max(cache.entries.len());
        }
        assert!((100..600).contains(&most), "{most} entries at most");
    }

    #[test]
    fn unused_entries_are_pruned_at_most_once_per_doubling_when_all_are_in_use() {
        let mut map: HashMap<usize, Rc<()>> = HashMap::new();
        let held: Vec<Rc<()>> = (0..MAX_ENDPOINTS * 3).map(|_| Rc::new(())).collect();
        let mut scans = 0;
        for (i, v) in held.iter().enumerate() {
            scans += usize::from(prune_unused(&mut map));
            map.insert(i, v.clone());
        }
        assert!(scans <= 3, "{scans} scans for {} inserts, every one in use", held.len());
        // Full, every entry in use, and binds that meet only known keys:
        // one scan, not one per bind.
        let mut full: HashMap<usize, Rc<()>> = HashMap::new();
        let mut i = 0;
        while full.len() < MAX_ENDPOINTS || full.len() < full.capacity() {
            full.insert(i, held[i % held.len()].clone());
            i += 1;
        }
        let rescans: usize = (0..1_000).map(|_| usize::from(prune_unused(&mut full))).sum();
        assert_eq!(rescans, 1, "binds of known keys after a scan that freed nothing");
        // Entries nobody holds go at the next scan.
        let mut map: HashMap<usize, Rc<()>> = HashMap::new();
        let mut scanned = false;
        for i in 0..MAX_ENDPOINTS * 3 {
            scanned |= prune_unused(&mut map);
            map.insert(i, Rc::new(()));
        }
        assert!(scanned && map.len() < MAX_ENDPOINTS * 3, "unused entries were dropped: {}", map.len());
    }
}
