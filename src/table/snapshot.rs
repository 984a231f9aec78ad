//! The routing snapshot: config, dtabs and namer state compiled into one
//! immutable value, published with arc-swap. Workers load it without a lock;
//! each keeps its own cache of resolved destinations keyed by the snapshot's
//! generation (see `cache`). Compiling does no I/O: everything that can
//! block — reading namer directories, DNS, opening access logs, loading
//! certificates — is loaded beforehand into [`SnapshotInputs`] by `namer/`
//! and the control thread / start-up (`server::control::load_inputs`).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use naming::{BoundName, Delegator, Dtab, NameTree, Namers, Path};

use super::settings::ServerSettings;
use super::transform::{Target, Transformer};
use crate::namer::k8s::{resolve, ClusterView, ConfigMapDtab, Resolution};
use crate::namer::{FsState, NamerInputs, NamerState};
use crate::telemetry::access_log::AccessLog;
use crate::tls::{ClientTlsPolicy, ServerTls};
use config::{Config, NamerConfig, TransformerConfig};

use super::identifier::Identifiers;

pub struct RouterRoutes {
    pub label: String,
    pub dst_prefix: Path,
    pub identifiers: Identifiers,
    /// The dtab names are delegated through: the router's `dtab`, behind
    /// the configMap interpreter's (see [`effective_dtab`]).
    pub dtab: Dtab,
    /// With `interpreter: io.l5d.k8s.configMap`: its ConfigMap's dtab, as
    /// read when the snapshot was compiled (part of `dtab`).
    pub config_map_dtab: Option<Arc<ConfigMapDtab>>,
    /// The interpreter's transformers, applied to every bound address set
    /// (after the namer's).
    pub transformers: Vec<Transformer>,
    /// Honour `l5d-dtab` per-request overrides.
    pub dtab_headers: bool,
    /// Offer un-prefixed namer paths (`/io.l5d.fs/x`) to the namers.
    pub legacy_namer_paths: bool,
    /// Send `l5d-dst-*` context headers upstream.
    pub context_headers: bool,
    /// Which destinations speak TLS, verified against which name.
    pub client_tls: ClientTlsPolicy,
    /// The router's `client` section (balancer and failure accrual per
    /// client name).
    pub client: config::ClientConfig,
    /// The router's `service` section (classifier, retries, timeouts per
    /// logical name).
    pub service: config::ServiceConfig,
}

/// One configured namer: its `/#` prefix, its state and transformers.
pub struct ConfiguredNamer {
    pub prefix: Path,
    pub kind: NamerKind,
    /// Applied to the names it binds, before the router's.
    pub transformers: Vec<Transformer>,
}

pub enum NamerKind {
    /// `io.l5d.fs`: the directory's contents.
    Fs(FsState),
    /// `io.l5d.k8s`: what the watches of its API server knew.
    K8s {
        view: Arc<ClusterView>,
        label_selector: Option<String>,
        /// The API server, for error messages.
        api: String,
    },
    /// `io.l5d.dnssrv`: the records resolved so far, and how long a route
    /// bound through one may be cached (it marks the record used when
    /// bound: `namer::dnssrv::rebind_within`).
    DnsSrv { view: Arc<crate::namer::dnssrv::SrvView>, rebind: std::time::Duration },
}

/// Everything I/O-derived a snapshot is compiled from, loaded beforehand
/// (`server::control::load_inputs`): the namers' state and resolved host
/// names ([`NamerInputs`], from `namer/`), and per router its opened access
/// log, built server TLS and client TLS policy. Loading failures are kept
/// as results so [`RoutingSnapshot::compile_with`] reports them in config
/// order, with the same texts as before.
#[derive(Default)]
pub struct SnapshotInputs {
    pub namers: NamerInputs,
    /// One per configured router, in config order.
    pub routers: Vec<RouterInputs>,
}

/// One router's opened and built resources (see [`SnapshotInputs`]).
pub struct RouterInputs {
    /// `httpAccessLog`, opened (`None` when not configured).
    pub access_log: Option<Result<Arc<AccessLog>, String>>,
    /// Each server's TLS, built (`None` when the server has none).
    pub server_tls: Vec<Option<Result<Arc<ServerTls>, String>>>,
    pub client_tls: Result<ClientTlsPolicy, String>,
}

pub struct RoutingSnapshot {
    /// Increases with every published snapshot; per-core caches compare it.
    pub generation: u64,
    pub routers: Vec<RouterRoutes>,
    /// Settings of every configured server, routers in order and each
    /// router's servers in order (the index workers' listeners carry).
    pub servers: Vec<ServerSettings>,
    pub namers: Vec<ConfiguredNamer>,
    dns: HashMap<String, Vec<IpAddr>>,
    /// The configuration this snapshot was compiled from (`/config.json`).
    pub config: std::sync::Arc<Config>,
}

/// Where a bound name sends traffic.
#[derive(Debug, Clone, PartialEq)]
pub enum Endpoints {
    /// The addresses, and the client name (the bound id with any transformer
    /// prefix, e.g. `/%/io.l5d.port/4141/#/io.l5d.fs/serviceB`).
    /// Each address with its weight (an `io.l5d.fs` file's `* weight`, else 1).
    Addrs { client: String, addrs: Vec<(SocketAddr, f64)> },
    /// Bound, but nothing can be reached through it (with the reason).
    Unavailable(String),
    /// A host name only the request supplied is being resolved (the
    /// request waits for it, then asks again).
    Resolving(String),
}

/// Why a host name has no addresses (yet).
#[derive(Debug, Clone, PartialEq)]
pub enum Unresolved {
    Unavailable(String),
    /// Asked for; the answer will come (the name).
    Resolving(String),
}

/// Answers for host names the snapshot has none for: those only requests
/// supplied (each core's `table::names`).
pub trait RequestHosts {
    fn lookup(&self, host: &str) -> Result<Vec<IpAddr>, Unresolved>;

    /// What is being resolved holds for at most `within` (a cached route
    /// through an `io.l5d.dnssrv` record is bound again that often).
    fn expires_within(&self, _within: std::time::Duration) {}
}

/// No answers beyond the snapshot's: `corelink delegate`, tests.
pub struct NoRequestHosts;

impl RequestHosts for NoRequestHosts {
    fn lookup(&self, host: &str) -> Result<Vec<IpAddr>, Unresolved> {
        Err(Unresolved::Unavailable(format!("{host} is not a resolved address")))
    }
}

/// The snapshot's namers as the naming crate's [`Namers`] (a local type:
/// the orphan rule forbids implementing it for `[ConfiguredNamer]` here).
/// `/$/inet` names are not theirs: finagle binds them whatever their host
/// resolves to (`Namer.global`), so a host that does not exist fails the
/// request inside that binding ([`RoutingSnapshot::endpoints`]) and never
/// makes a dtab fall back.
struct SnapshotNamers<'a> {
    namers: &'a [ConfiguredNamer],
    /// Where an `io.l5d.dnssrv` record not looked up yet is asked for.
    hosts: &'a dyn RequestHosts,
}

impl Namers for SnapshotNamers<'_> {
    fn bind(&self, path: &Path) -> Option<NameTree<BoundName>> {
        if path.segment(0) != Some(b"#") {
            return None;
        }
        let rest = path.drop(1);
        let namer = self.namers.iter().find(|n| rest.starts_with(&n.prefix))?;
        let at = 1 + namer.prefix.len();
        match &namer.kind {
            NamerKind::Fs(state) => {
                let Some(service) = path.segment_str(at) else { return Some(NameTree::Neg) };
                if !state.services.contains_key(service) {
                    return Some(NameTree::Neg);
                }
                Some(NameTree::Leaf(BoundName::new(path.take(at + 1), path.drop(at + 1))))
            }
            NamerKind::DnsSrv { view, rebind } => {
                let Some(record) = path.segment_str(at) else { return Some(NameTree::Neg) };
                let bound = NameTree::Leaf(BoundName::new(path.take(at + 1), path.drop(at + 1)));
                let known = view.get(record);
                // Used: the control thread keeps refreshing it (a record
                // no route bound for `idleTtlSecs` is dropped).
                if let Some(r) = known {
                    r.used.touch();
                    self.hosts.expires_within(*rebind);
                }
                match known.map(|r| &r.state) {
                    Some(crate::namer::dnssrv::SrvState::Bound(_)) => Some(bound),
                    Some(crate::namer::dnssrv::SrvState::Neg(_)) => Some(NameTree::Neg),
                    // Not looked up yet: asking starts it (the request
                    // waits for the snapshot that has it).
                    None => {
                        let _ = self.hosts.lookup(&path.take(at + 1).show());
                        Some(bound)
                    }
                }
            }
            NamerKind::K8s { view, label_selector, .. } => {
                // linkerd's id: the prefix, then the lowercased segments.
                let (id, consumed) = match resolve(view, label_selector.as_deref(), &path.drop(at)) {
                    Resolution::Neg => return Some(NameTree::Neg),
                    Resolution::Bound { id, consumed, .. } => (id, consumed),
                    // Not yet known: bound by its own segments, so the dtab
                    // does not fall back before the first list says the
                    // Service is missing; its endpoints say why none.
                    Resolution::Pending => {
                        let consumed = 3 + usize::from(label_selector.is_some());
                        let id = (0..consumed).filter_map(|i| path.segment_str(at + i)).map(str::to_lowercase);
                        (id.collect(), consumed)
                    }
                };
                let id = Path::from_segments(id).ok()?;
                Some(NameTree::Leaf(BoundName::new(path.take(at).concat(&id), path.drop(at + consumed))))
            }
        }
    }
}

impl RoutingSnapshot {
    /// Compiles `config` with inputs loaded beforehand. Does no I/O: no
    /// file, DNS or API access happens here; a missing input is an error.
    pub fn compile_with(config: &Config, inputs: &SnapshotInputs, generation: u64) -> Result<RoutingSnapshot, String> {
        let mut routers = Vec::with_capacity(config.routers.len());
        let mut servers = Vec::new();
        for (i, r) in config.routers.iter().enumerate() {
            let dtab = Dtab::parse(&r.dtab).map_err(|e| format!("routers[{i}].dtab: {e}"))?;
            let config_map_dtab = r
                .interpreter
                .config_map
                .as_ref()
                .map(|c| inputs.namers.config_maps.get(c).cloned().unwrap_or_default());
            let dtab = effective_dtab(config_map_dtab.as_deref(), dtab);
            let dst_prefix = Path::parse(&r.dst_prefix).map_err(|e| format!("routers[{i}].dstPrefix: {e}"))?;
            let identifiers = Identifiers::from_config(r.identifiers()).map_err(|e| format!("routers[{i}]: {e}"))?;
            let loaded = inputs.routers.get(i).ok_or_else(|| format!("routers[{i}]: inputs not loaded"))?;
            let access_log = match &loaded.access_log {
                Some(log) => Some(log.clone().map_err(|e| format!("routers[{i}].httpAccessLog: {e}"))?),
                None => None,
            };
            for (j, server) in r.servers.iter().enumerate() {
                let mut settings = ServerSettings::from_config(config, i, server);
                settings.access_log = access_log.clone();
                if server.tls.is_some() {
                    let tls = loaded.server_tls.get(j).cloned().flatten();
                    let tls = tls.ok_or_else(|| format!("routers[{i}].servers[{j}].tls: not loaded"))?;
                    settings.tls = Some(tls.map_err(|e| format!("routers[{i}].servers[{j}].tls: {e}"))?);
                }
                servers.push(settings);
            }
            let client_tls = loaded.client_tls.clone().map_err(|e| format!("routers[{i}].client.tls: {e}"))?;
            routers.push(RouterRoutes {
                label: r.label().to_string(),
                dst_prefix,
                identifiers,
                dtab,
                config_map_dtab,
                transformers: compile_transformers(
                    &r.interpreter.transformers,
                    &inputs.namers,
                    &format!("routers[{i}].interpreter"),
                )?,
                dtab_headers: r.dtab_headers,
                legacy_namer_paths: r.legacy_namer_paths,
                context_headers: r.context_headers,
                client_tls,
                client: r.client.clone(),
                service: r.service.clone(),
            });
        }
        let mut namers = Vec::new();
        for (i, namer) in config.namers.iter().enumerate() {
            let prefix = Path::parse(namer.prefix()).map_err(|e| format!("namers[{i}].prefix: {e}"))?;
            let state = inputs.namers.namers.get(i).cloned();
            let kind = match (namer, state) {
                (NamerConfig::Fs { .. }, Some(NamerState::Fs(state))) => NamerKind::Fs(state),
                (NamerConfig::Fs { .. }, _) => NamerKind::Fs(FsState::default()),
                (NamerConfig::DnsSrv(d), state) => NamerKind::DnsSrv {
                    view: match state {
                        Some(NamerState::DnsSrv(view)) => view,
                        _ => Arc::default(),
                    },
                    rebind: crate::namer::dnssrv::rebind_within(d),
                },
                (NamerConfig::K8s(k), state) => NamerKind::K8s {
                    view: match state {
                        Some(NamerState::K8s(view)) => view,
                        _ => Arc::default(),
                    },
                    label_selector: k.label_selector.clone(),
                    api: crate::namer::k8s::api_label(&k.api),
                },
            };
            let transformers = compile_transformers(namer.transformers(), &inputs.namers, &format!("namers[{i}]"))?;
            namers.push(ConfiguredNamer { prefix, kind, transformers });
        }
        Ok(RoutingSnapshot {
            generation,
            routers,
            servers,
            namers,
            dns: inputs.namers.dns.clone(),
            config: std::sync::Arc::new(config.clone()),
        })
    }

    /// Delegates `name` through the router's dtab (plus a per-request dtab)
    /// to a bound tree.
    pub fn bind(&self, router: usize, name: &Path, local: Option<&Dtab>) -> Result<NameTree<BoundName>, String> {
        self.bind_with(router, name, local, &NoRequestHosts)
    }

    /// [`RoutingSnapshot::bind`], asking `hosts` for the `io.l5d.dnssrv`
    /// records not looked up yet (the request waits for them).
    pub fn bind_with(
        &self,
        router: usize,
        name: &Path,
        local: Option<&Dtab>,
        hosts: &dyn RequestHosts,
    ) -> Result<NameTree<BoundName>, String> {
        let routes = &self.routers[router];
        let namers = SnapshotNamers { namers: &self.namers, hosts };
        let delegator = Delegator::new(&routes.dtab, &namers).with_legacy_unprefixed_namers(routes.legacy_namer_paths);
        let delegator = match local {
            Some(local) => delegator.with_local(local),
            None => delegator,
        };
        delegator.bind(name).map_err(|e| e.to_string())
    }

    /// Explains how `path` delegates on `router` (linkerd's delegator): every
    /// rewrite step and the resulting bound tree, with the transformers as
    /// linkerd shows them (a namer's in the bound id, the interpreter's as
    /// `transformation` steps).
    pub fn delegate(&self, router: usize, path: &Path, local: Option<&Dtab>) -> naming::Delegation {
        let routes = &self.routers[router];
        let namers = SnapshotNamers { namers: &self.namers, hosts: &NoRequestHosts };
        let delegator = Delegator::new(&routes.dtab, &namers).with_legacy_unprefixed_namers(routes.legacy_namer_paths);
        let delegation = match local {
            Some(local) => delegator.with_local(local).delegate(path),
            None => delegator.delegate(path),
        };
        let prefixed = |t: &Transformer, b: &BoundName| -> BoundName {
            match Path::parse(&t.prefix) {
                Ok(prefix) => BoundName::new(prefix.concat(&b.id), b.residual.clone()),
                Err(_) => b.clone(),
            }
        };
        delegation.transformed(&|b: &BoundName| {
            let namer = self.namer_of(&b.id).map_or(&[][..], |n| &n.transformers[..]);
            let named = namer.iter().fold(b.clone(), |b, t| prefixed(t, &b));
            let mut steps = Vec::with_capacity(routes.transformers.len());
            let mut current = named.clone();
            for t in &routes.transformers {
                current = prefixed(t, &current);
                steps.push((t.name.to_string(), current.clone()));
            }
            (named, steps)
        })
    }

    /// The namer that bound `id` (`/$/inet` names have none).
    fn namer_of(&self, id: &Path) -> Option<&ConfiguredNamer> {
        if id.segment(0) != Some(b"#") {
            return None;
        }
        self.namers.iter().find(|n| id.drop(1).starts_with(&n.prefix))
    }

    /// The index of the router with this label.
    pub fn router_index(&self, label: &str) -> Option<usize> {
        self.routers.iter().position(|r| r.label == label)
    }

    /// The addresses of `host`: an IP address as it is, a name the config
    /// mentions from the snapshot's answers, any other name (only a request
    /// supplied it) from `hosts`, this core's answers.
    fn resolve_host(&self, host: &str, hosts: &dyn RequestHosts) -> Result<Vec<IpAddr>, Unresolved> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        match self.dns.get(host) {
            Some(ips) if !ips.is_empty() => Ok(ips.clone()),
            Some(_) => Err(Unresolved::Unavailable(format!("{host} resolved to no address"))),
            None => hosts.lookup(host),
        }
    }

    /// The one path from a bound inet leaf (`/$/inet/HOST/PORT`, and any
    /// namer that binds to a host and port) to its addresses.
    pub fn inet_targets(&self, host: &str, port: u16, hosts: &dyn RequestHosts) -> Result<Vec<Target>, Unresolved> {
        let ips = self.resolve_host(host, hosts)?;
        Ok(ips.into_iter().map(|ip| Target::new(SocketAddr::new(ip, port), 1.0)).collect())
    }

    /// The addresses behind a bound id, after the namer's and the router's
    /// transformers; request-supplied host names are looked up in `hosts`.
    pub fn endpoints(&self, router: usize, bound: &BoundName, hosts: &dyn RequestHosts) -> Endpoints {
        let id = &bound.id;
        // `/$/inet/HOST/PORT` and `/$/io.buoyant.rinet/PORT/HOST` alike.
        let (mut targets, namer_transformers): (Vec<Target>, &[Transformer]) = if let Some(inet) =
            naming::inet::inet_address(id)
        {
            let (Ok(host), Ok(port)) = (std::str::from_utf8(inet.host), std::str::from_utf8(inet.port)) else {
                return Endpoints::Unavailable(format!("invalid inet address {id}"));
            };
            let Ok(port) = port.parse::<u16>() else {
                return Endpoints::Unavailable(format!("invalid port in {id}"));
            };
            match self.inet_targets(host, port, hosts) {
                Ok(targets) => (targets, &[]),
                Err(Unresolved::Unavailable(e)) => return Endpoints::Unavailable(e),
                Err(Unresolved::Resolving(host)) => return Endpoints::Resolving(host),
            }
        } else if let Some(namer) = self.namers.iter().find(|n| id.drop(1).starts_with(&n.prefix)) {
            let at = 1 + namer.prefix.len();
            match &namer.kind {
                NamerKind::Fs(state) => {
                    let service = id.segment_str(at).unwrap_or_default();
                    let entries = state.services.get(service).map(Vec::as_slice).unwrap_or_default();
                    let mut targets = Vec::new();
                    let mut problems = Vec::new();
                    for entry in entries.iter().filter(|e| e.weight > 0.0) {
                        match self.resolve_host(&entry.host, &NoRequestHosts) {
                            Ok(ips) => targets.extend(
                                ips.into_iter().map(|ip| Target::new(SocketAddr::new(ip, entry.port), entry.weight)),
                            ),
                            Err(Unresolved::Unavailable(e) | Unresolved::Resolving(e)) => problems.push(e),
                        }
                    }
                    if targets.is_empty() {
                        let why =
                            if problems.is_empty() { format!("{id} has no addresses") } else { problems.join("; ") };
                        return Endpoints::Unavailable(why);
                    }
                    (targets, &namer.transformers)
                }
                NamerKind::DnsSrv { view, .. } => {
                    let record = id.segment_str(at).unwrap_or_default();
                    match view.get(record).map(|r| &r.state) {
                        Some(crate::namer::dnssrv::SrvState::Bound(addrs)) => {
                            (addrs.iter().map(|(a, w)| Target::new(*a, *w)).collect(), &namer.transformers)
                        }
                        Some(crate::namer::dnssrv::SrvState::Neg(why)) => return Endpoints::Unavailable(why.clone()),
                        None => return Endpoints::Unavailable(format!("{id}: not looked up yet")),
                    }
                }
                NamerKind::K8s { view, label_selector, api } => {
                    match resolve(view, label_selector.as_deref(), &id.drop(at)) {
                        Resolution::Bound { endpoints, .. } if !endpoints.is_empty() => {
                            (endpoints.into_iter().map(Target::from).collect(), &namer.transformers)
                        }
                        Resolution::Bound { .. } => {
                            return Endpoints::Unavailable(format!("{id} has no ready endpoints"))
                        }
                        Resolution::Pending => {
                            return Endpoints::Unavailable(format!(
                                "{id}: the Kubernetes API server ({api}) has not been listed yet"
                            ))
                        }
                        // Bound earlier in this snapshot: cannot happen.
                        Resolution::Neg => return Endpoints::Unavailable(format!("{id} does not exist")),
                    }
                }
            }
        } else {
            return Endpoints::Unavailable(format!("no namer resolves {id}"));
        };
        let mut client = id.show();
        for t in namer_transformers.iter().chain(&self.routers[router].transformers) {
            client = format!("{}{client}", t.prefix);
            targets = match t.apply(targets) {
                Ok(targets) => targets,
                Err(why) => return Endpoints::Unavailable(format!("{client}: {why}")),
            };
        }
        if targets.is_empty() {
            return Endpoints::Unavailable(format!("{client}: no address left after the transformers"));
        }
        Endpoints::Addrs { client, addrs: targets.into_iter().map(|t| (t.addr, t.weight)).collect() }
    }
}

/// The dtab a router delegates through: with the configMap interpreter, the
/// ConfigMap's dtab **then** the router's, as linkerd's `ConfiguredDtabNamer`
/// binds with `configuredDtab ++ baseDtab` (a later dentry is tried first,
/// so for a prefix both define the router's own entry wins, and the
/// ConfigMap's is its fall-back). Not yet read: the router's alone.
pub fn effective_dtab(config_map: Option<&ConfigMapDtab>, router: Dtab) -> Dtab {
    match config_map {
        Some(c) if !c.dtab.is_empty() => c.dtab.concat(&router),
        _ => router,
    }
}

/// Compiles one list of transformers (`at` is where it is in the config:
/// `namers[0]`, `routers[1].interpreter`).
fn compile_transformers(
    configs: &[TransformerConfig],
    inputs: &NamerInputs,
    at: &str,
) -> Result<Vec<Transformer>, String> {
    configs
        .iter()
        .enumerate()
        .map(|(j, t)| Transformer::compile(t, inputs).map_err(|e| format!("{at}.transformers[{j}]: {e}")))
        .collect()
}

/// The published snapshot, shared by every core.
#[derive(Clone)]
pub struct SharedSnapshot(Arc<Published>);

struct Published {
    current: ArcSwap<RoutingSnapshot>,
    /// Counts the publications, bumped after each: a core asks on every
    /// request whether the snapshot changed, and one atomic load answers
    /// that, where loading the snapshot takes an arc-swap debt slot
    /// (docs/engine.md, issue 16).
    version: AtomicU64,
}

impl SharedSnapshot {
    pub fn new(snapshot: RoutingSnapshot) -> Self {
        SharedSnapshot(Arc::new(Published { current: ArcSwap::from_pointee(snapshot), version: AtomicU64::new(0) }))
    }

    pub fn load(&self) -> arc_swap::Guard<Arc<RoutingSnapshot>> {
        self.0.current.load()
    }

    pub fn load_full(&self) -> Arc<RoutingSnapshot> {
        self.0.current.load_full()
    }

    /// How many snapshots were published after the first. Read before
    /// [`SharedSnapshot::load_full`], it never claims a snapshot newer than
    /// the one loaded: the count moves only after the store.
    pub fn version(&self) -> u64 {
        self.0.version.load(Ordering::Acquire)
    }

    pub fn publish(&self, snapshot: RoutingSnapshot) {
        self.0.current.store(Arc::new(snapshot));
        self.0.version.fetch_add(1, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dtab: &str) -> Config {
        let text = format!("routers:\n- protocol: http\n  dtab: |\n    {dtab}\n  servers: [{{port: 1}}]\n");
        Config::parse(&text, "t").unwrap()
    }

    fn endpoints_of(snapshot: &RoutingSnapshot, path: &str) -> Endpoints {
        let bound = snapshot.bind(0, &Path::parse(path).unwrap(), None).unwrap();
        let NameTree::Leaf(leaf) = bound else { panic!("not a leaf: {bound:?}") };
        snapshot.endpoints(0, &leaf, &NoRequestHosts)
    }

    #[test]
    fn inet_names_in_the_dtab_are_resolved_ahead() {
        let c = config("/svc => /$/inet/localhost;");
        let snapshot = crate::server::control::compile(&c, 1).unwrap();
        match endpoints_of(&snapshot, "/svc/8080") {
            Endpoints::Addrs { client, addrs } => {
                assert_eq!(client, "/$/inet/localhost/8080");
                assert!(addrs.iter().all(|(a, _)| a.port() == 8080 && a.ip().is_loopback()), "{addrs:?}");
            }
            other => panic!("{other:?}"),
        }
    }

    /// rinet ids resolve as inet ones do: an IP literal at once, a host name
    /// named in the dtab ahead (like `/$/inet/localhost`), a host only the
    /// request supplies not at all, a port that is not a number never.
    #[test]
    fn rinet_names_resolve_like_inet_names() {
        let c = config(
            "/ph => /$/io.buoyant.rinet; /svc => /ph/80; /svc => /$/io.buoyant.porthostPfx/ph; /local => /$/io.buoyant.rinet/8080/localhost;",
        );
        let snapshot = crate::server::control::compile(&c, 1).unwrap();
        let ip = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(
            endpoints_of(&snapshot, "/svc/127.0.0.1:8080"),
            Endpoints::Addrs {
                client: "/$/io.buoyant.rinet/8080/127.0.0.1".into(),
                addrs: vec![(ip("127.0.0.1:8080"), 1.0)]
            }
        );
        assert_eq!(
            endpoints_of(&snapshot, "/svc/10.1.2.3"),
            Endpoints::Addrs {
                client: "/$/io.buoyant.rinet/80/10.1.2.3".into(),
                addrs: vec![(ip("10.1.2.3:80"), 1.0)]
            }
        );
        // Unlike finagle's InetResolver, an IPv6 literal is an address here,
        // as it is for /$/inet.
        assert_eq!(
            endpoints_of(&snapshot, "/$/io.buoyant.rinet/443/::1"),
            Endpoints::Addrs { client: "/$/io.buoyant.rinet/443/::1".into(), addrs: vec![(ip("[::1]:443"), 1.0)] }
        );
        match endpoints_of(&snapshot, "/local/x") {
            Endpoints::Addrs { client, addrs } => {
                assert_eq!(client, "/$/io.buoyant.rinet/8080/localhost");
                assert!(
                    !addrs.is_empty() && addrs.iter().all(|(a, _)| a.port() == 8080 && a.ip().is_loopback()),
                    "{addrs:?}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            endpoints_of(&snapshot, "/svc/unlisted.example"),
            Endpoints::Unavailable("unlisted.example is not a resolved address".into())
        );
        assert_eq!(
            endpoints_of(&snapshot, "/$/io.buoyant.rinet/http/127.0.0.1"),
            Endpoints::Unavailable("invalid port in /$/io.buoyant.rinet/http/127.0.0.1".into())
        );
        // The inet form of the same address gives the same addresses.
        let inet = endpoints_of(&snapshot, "/$/inet/127.0.0.1/8080");
        assert_eq!(
            inet,
            Endpoints::Addrs { client: "/$/inet/127.0.0.1/8080".into(), addrs: vec![(ip("127.0.0.1:8080"), 1.0)] }
        );
    }

    #[test]
    fn port_transformer_rewrites_addresses_and_prefixes_the_client_name() {
        let text = "routers:\n- protocol: http\n  dtab: /svc => /$/inet/127.0.0.1/8080;\n  interpreter:\n    kind: default\n    transformers:\n    - kind: io.l5d.port\n      port: 4141\n  servers: [{port: 1}]\n";
        let c = Config::parse(text, "t").unwrap();
        let snapshot = crate::server::control::compile(&c, 1).unwrap();
        assert_eq!(
            endpoints_of(&snapshot, "/svc"),
            Endpoints::Addrs {
                client: "/%/io.l5d.port/4141/$/inet/127.0.0.1/8080".into(),
                addrs: vec![("127.0.0.1:4141".parse().unwrap(), 1.0)]
            }
        );
    }

    fn config_map_snapshot(router_dtab: &str, config_map: Option<ConfigMapDtab>) -> RoutingSnapshot {
        let text = format!(
            "routers:\n- protocol: http\n  dtab: |\n    {router_dtab}\n  interpreter:\n    kind: io.l5d.k8s.configMap\n    experimental: true\n    name: dtabs\n    filename: d\n  servers: [{{port: 1}}]\n"
        );
        let c = Config::parse(&text, "t").unwrap();
        let mut dns = crate::namer::dns::OneShot::new(&c.corelink.dns);
        let mut namers = NamerInputs::load(&c, None, &Default::default(), &mut dns);
        let key = c.routers[0].interpreter.config_map.clone().unwrap();
        namers.set_config_maps(config_map.into_iter().map(|d| (key.clone(), Arc::new(d))).collect(), &mut dns);
        RoutingSnapshot::compile_with(&c, &crate::server::control::load_inputs(&c, &namers), 1).unwrap()
    }

    fn read(dtab: &str) -> ConfigMapDtab {
        ConfigMapDtab {
            dtab: Dtab::parse(dtab).unwrap(),
            source: crate::namer::k8s::configmap::Source::Key,
            refused: None,
        }
    }

    fn addr_of(snapshot: &RoutingSnapshot, path: &str) -> Option<SocketAddr> {
        match snapshot.bind(0, &Path::parse(path).unwrap(), None) {
            Ok(NameTree::Leaf(leaf)) => match snapshot.endpoints(0, &leaf, &NoRequestHosts) {
                Endpoints::Addrs { addrs, .. } => Some(addrs[0].0),
                Endpoints::Unavailable(_) | Endpoints::Resolving(_) => None,
            },
            _ => None,
        }
    }

    #[test]
    fn the_config_map_dtab_goes_in_front_of_the_routers() {
        let router = "/svc/own => /$/inet/127.0.0.1/1;";
        let snapshot = config_map_snapshot(
            router,
            Some(read("/svc/web => /$/inet/127.0.0.1/2; /svc/own => /$/inet/127.0.0.1/3;")),
        );
        assert_eq!(
            snapshot.routers[0].dtab.show(),
            "/svc/web=>/$/inet/127.0.0.1/2;/svc/own=>/$/inet/127.0.0.1/3;/svc/own=>/$/inet/127.0.0.1/1"
        );
        assert_eq!(addr_of(&snapshot, "/svc/web"), Some("127.0.0.1:2".parse().unwrap()));
        // Both define /svc/own: the router's own entry, later, wins.
        assert_eq!(addr_of(&snapshot, "/svc/own"), Some("127.0.0.1:1".parse().unwrap()));
        assert!(snapshot.routers[0].config_map_dtab.as_ref().is_some_and(|d| d.synced()));
        // A router entry that binds negative falls back to the ConfigMap's.
        let snapshot = config_map_snapshot("/svc/own => ~;", Some(read("/svc/own => /$/inet/127.0.0.1/3;")));
        assert_eq!(addr_of(&snapshot, "/svc/own"), Some("127.0.0.1:3".parse().unwrap()));
    }

    #[test]
    fn before_the_config_map_is_read_or_when_it_is_empty_the_routers_dtab_serves_alone() {
        let router = "/svc/own => /$/inet/127.0.0.1/1;";
        let pending = config_map_snapshot(router, None);
        assert_eq!(pending.routers[0].dtab.show(), "/svc/own=>/$/inet/127.0.0.1/1");
        assert!(pending.routers[0].config_map_dtab.as_ref().is_some_and(|d| !d.synced()));
        let empty = config_map_snapshot(router, Some(ConfigMapDtab::default()));
        assert_eq!(addr_of(&empty, "/svc/own"), Some("127.0.0.1:1".parse().unwrap()));
        assert_eq!(addr_of(&empty, "/svc/web"), None);
        // A router without the interpreter has no ConfigMap dtab at all.
        let plain = crate::server::control::compile(&config(router), 1).unwrap();
        assert!(plain.routers[0].config_map_dtab.is_none());
    }

    #[test]
    fn host_names_in_the_config_map_dtab_are_resolved_ahead() {
        let snapshot = config_map_snapshot("/x => /y;", Some(read("/svc => /$/inet/localhost;")));
        match endpoints_of(&snapshot, "/svc/8080") {
            Endpoints::Addrs { addrs, .. } => assert!(addrs.iter().all(|(a, _)| a.ip().is_loopback()), "{addrs:?}"),
            other => panic!("{other:?}"),
        }
    }

    fn k8s_snapshot(dtab: &str, view: ClusterView) -> RoutingSnapshot {
        let text = format!(
            "namers:\n- kind: io.l5d.k8s\nrouters:\n- protocol: http\n  dtab: |\n    {dtab}\n  servers: [{{port: 1}}]\n"
        );
        let c = Config::parse(&text, "t").unwrap();
        let config::NamerConfig::K8s(k) = &c.namers[0] else { panic!() };
        let views = [(k.api.clone(), Arc::new(view))].into_iter().collect();
        let namers = NamerInputs::load(&c, None, &views, &mut crate::namer::dns::OneShot::new(&c.corelink.dns));
        RoutingSnapshot::compile_with(&c, &crate::server::control::load_inputs(&c, &namers), 1).unwrap()
    }

    fn cluster(ready: bool) -> ClusterView {
        use crate::namer::k8s::state::{ClusterStore, EndpointInfo, ServiceInfo, SliceInfo, SlicePort};
        let mut store = ClusterStore::default();
        let key = ("prod".to_string(), "serviceb".to_string());
        store.replace_services(vec![(key.clone(), ServiceInfo::default())]);
        let endpoint = |ip: &str| EndpointInfo {
            ip: ip.parse().unwrap(),
            ready,
            serving: ready,
            terminating: false,
            node_name: None,
        };
        let slice = SliceInfo {
            service: "serviceb".into(),
            ports: vec![SlicePort { name: "router".into(), port: 4141 }],
            endpoints: vec![endpoint("10.1.0.2"), endpoint("10.1.0.1")],
        };
        store.replace_slices(vec![(("prod".to_string(), "serviceb-x1".to_string()), slice)]);
        store.view()
    }

    #[test]
    fn k8s_names_bind_through_the_dtab_and_fall_back_when_missing() {
        let dtab = "/svc => /ns/prod/router | /$/inet/127.0.0.1/9999; /ns => /#/io.l5d.k8s;";
        let snapshot = k8s_snapshot(dtab, cluster(true));
        // The write-up's name: segments lowercased, the named port looked up.
        assert_eq!(
            endpoints_of(&snapshot, "/svc/serviceB"),
            Endpoints::Addrs {
                client: "/#/io.l5d.k8s/prod/router/serviceb".into(),
                addrs: vec![("10.1.0.1:4141".parse().unwrap(), 1.0), ("10.1.0.2:4141".parse().unwrap(), 1.0)],
            }
        );
        // A residual path stays residual.
        let bound = snapshot.bind(0, &Path::parse("/svc/serviceB/extra").unwrap(), None).unwrap();
        let NameTree::Leaf(leaf) = bound else { panic!("{bound:?}") };
        assert_eq!(leaf.id.show(), "/#/io.l5d.k8s/prod/router/serviceb");
        assert_eq!(leaf.residual.show(), "/extra");
        // No such Service: `~`, so the alternative serves.
        assert_eq!(
            endpoints_of(&snapshot, "/svc/serviceC"),
            Endpoints::Addrs {
                client: "/$/inet/127.0.0.1/9999".into(),
                addrs: vec![("127.0.0.1:9999".parse().unwrap(), 1.0)]
            }
        );
        // Endpoints that exist but none ready: bound, nothing to send to, no
        // fall-back.
        let snapshot = k8s_snapshot(dtab, cluster(false));
        match endpoints_of(&snapshot, "/svc/serviceB") {
            Endpoints::Unavailable(why) => assert!(why.contains("no ready endpoints"), "{why}"),
            other => panic!("{other:?}"),
        }
        // Before the first list nothing is negative: no fall-back either.
        let snapshot = k8s_snapshot(dtab, ClusterView::default());
        match endpoints_of(&snapshot, "/svc/serviceC") {
            Endpoints::Unavailable(why) => assert!(why.contains("has not been listed yet"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    /// Two nodes: `serviceb` has an endpoint on each (10.1.1.5 on a,
    /// 10.1.2.5 on b); the DaemonSet `linkerd/l5d` has a pod on node a only.
    fn two_nodes() -> ClusterView {
        use crate::namer::k8s::state::{ClusterStore, EndpointInfo, ServiceInfo, SliceInfo, SlicePort};
        let mut store = ClusterStore::default();
        let key = |ns: &str, n: &str| (ns.to_string(), n.to_string());
        store.replace_services(vec![
            (key("prod", "serviceb"), ServiceInfo::default()),
            (key("linkerd", "l5d"), ServiceInfo::default()),
        ]);
        let ep = |ip: &str, node: &str| EndpointInfo {
            ip: ip.parse().unwrap(),
            ready: true,
            serving: true,
            terminating: false,
            node_name: Some(Arc::from(node)),
        };
        let slice = |service: &str, port: (&str, u16), endpoints| SliceInfo {
            service: service.into(),
            ports: vec![SlicePort { name: port.0.into(), port: port.1 }],
            endpoints,
        };
        store.replace_slices(vec![
            (
                key("prod", "serviceb-1"),
                slice("serviceb", ("http", 8080), vec![ep("10.1.1.5", "a"), ep("10.1.2.5", "b")]),
            ),
            (key("linkerd", "l5d-1"), slice("l5d", ("incoming", 4141), vec![ep("10.1.1.2", "a")])),
        ]);
        store.view()
    }

    fn transformer_snapshot(
        view: ClusterView,
        transformers: &str,
        env: crate::namer::LocalNodeEnv,
    ) -> Result<RoutingSnapshot, String> {
        let text = format!(
            "namers:\n- kind: io.l5d.k8s\nrouters:\n- protocol: http\n  dtab: /svc => /#/io.l5d.k8s/prod/http;\n  interpreter:\n    transformers:\n{transformers}  servers: [{{port: 1}}]\n"
        );
        let c = Config::parse(&text, "t").unwrap();
        let config::NamerConfig::K8s(k) = &c.namers[0] else { panic!() };
        let views = [(k.api.clone(), Arc::new(view))].into_iter().collect();
        let mut namers = NamerInputs::load(&c, None, &views, &mut crate::namer::dns::OneShot::new(&c.corelink.dns));
        namers.local_node = env;
        RoutingSnapshot::compile_with(&c, &crate::server::control::load_inputs(&c, &namers), 1)
    }

    #[test]
    fn k8s_transformers_rewrite_addresses_and_client_names() {
        let env = |ip: Option<&str>, node: Option<&str>| crate::namer::LocalNodeEnv {
            pod_ip: ip.map(str::to_string),
            node_name: node.map(str::to_string),
        };
        let ds = "    - {kind: io.l5d.k8s.daemonset, namespace: linkerd, service: l5d, port: incoming}\n";
        let snapshot = transformer_snapshot(two_nodes(), ds, env(None, None)).unwrap();
        // Both endpoints map to the node-a pod's /24 or to nothing: node a's
        // pod, once.
        assert_eq!(
            endpoints_of(&snapshot, "/svc/serviceb"),
            Endpoints::Addrs {
                client: "/%/io.l5d.k8s.daemonset/linkerd/incoming/l5d/#/io.l5d.k8s/prod/http/serviceb".into(),
                addrs: vec![("10.1.1.2:4141".parse().unwrap(), 1.0)],
            }
        );
        // localnode then daemonset, in order: on node b nothing is left.
        let both = format!("    - {{kind: io.l5d.k8s.localnode}}\n{ds}");
        let snapshot = transformer_snapshot(two_nodes(), &both, env(Some("10.1.2.77"), None)).unwrap();
        match endpoints_of(&snapshot, "/svc/serviceb") {
            Endpoints::Unavailable(why) => assert_eq!(
                why,
                "/%/io.l5d.k8s.daemonset/linkerd/incoming/l5d/%/io.l5d.k8s.localnode/10.1.2.77/#/io.l5d.k8s/prod/http/serviceb: no address left after the transformers"
            ),
            other => panic!("{other:?}"),
        }
        let ln = "    - {kind: io.l5d.k8s.localnode, hostNetwork: true}\n";
        let snapshot = transformer_snapshot(two_nodes(), ln, env(None, Some("b"))).unwrap();
        assert_eq!(
            endpoints_of(&snapshot, "/svc/serviceb"),
            Endpoints::Addrs {
                client: "/%/io.l5d.k8s.localnode/b/#/io.l5d.k8s/prod/http/serviceb".into(),
                addrs: vec![("10.1.2.5:8080".parse().unwrap(), 1.0)],
            }
        );
        // A missing variable fails the compile, naming the transformer.
        let err = transformer_snapshot(two_nodes(), ln, env(Some("10.1.2.77"), None)).err().unwrap();
        assert!(err.starts_with("routers[0].interpreter.transformers[0]: io.l5d.k8s.localnode with hostNetwork: true needs the environment variable NODE_NAME"), "{err}");
        // The DaemonSet's API server not listed yet: no addresses, saying why.
        let snapshot = transformer_snapshot(ClusterView::default(), ds, env(None, None)).unwrap();
        assert!(matches!(endpoints_of(&snapshot, "/svc/serviceb"), Endpoints::Unavailable(_)));
    }

    #[test]
    fn delegate_shows_transformers_as_linkerd() {
        let text = "namers:\n- kind: io.l5d.fs\n  rootDir: /nonexistent\n  transformers:\n  - {kind: io.l5d.port, port: 4141}\nrouters:\n- protocol: http\n  dtab: /svc => /#/io.l5d.fs | /$/inet/127.0.0.1/1;\n  interpreter:\n    transformers:\n    - {kind: io.l5d.port, port: 4142, prefix: /p}\n  servers: [{port: 1}]\n";
        let c = Config::parse(text, "t").unwrap();
        let snapshot = crate::server::control::compile(&c, 1).unwrap();
        let d = snapshot.delegate(0, &Path::parse("/svc/b").unwrap(), None);
        let shown = d.render_text();
        // The inet name falls back (the fs directory has no `b`): only the
        // router's transformer applies to it.
        assert!(shown.contains("/$/inet/127.0.0.1/1/b [/svc=>/#/io.l5d.fs | /$/inet/127.0.0.1/1] -> bound /$/inet/127.0.0.1/1 -> transformed by io.l5d.port"), "{shown}");
        assert!(shown.contains("=> /%/p/$/inet/127.0.0.1/1 (residual /b)"), "{shown}");
    }
}
