//! The routing snapshot: config, dtabs and (later) namer state compiled into
//! one immutable value, published with arc-swap. Workers load it without a
//! lock; each keeps its own cache of resolved destinations keyed by the
//! snapshot's generation (see `cache`).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::Config;
use crate::proxy::RouterSettings;

use super::delegate::{BoundName, Delegator, EmptyNamers};
use super::dtab::Dtab;
use super::identifier::Identifier;
use super::name_tree::NameTree;
use super::path::Path;

pub struct RouterRoutes {
    pub label: String,
    pub dst_prefix: Path,
    pub identifier: Identifier,
    pub dtab: Dtab,
}

pub struct RoutingSnapshot {
    /// Increases with every published snapshot; per-core caches compare it.
    pub generation: u64,
    pub routers: Vec<RouterRoutes>,
    /// Settings of every configured server, routers in order and each
    /// router's servers in order (the index workers' listeners carry).
    pub servers: Vec<RouterSettings>,
    /// `/$/inet` host names found in the dtabs, resolved when the snapshot was
    /// built, off the data path. Workers never block on DNS.
    resolved_hosts: HashMap<String, Vec<IpAddr>>,
}

/// Where a bound name sends traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoints {
    Addrs(Vec<SocketAddr>),
    /// Bound, but nothing can be reached through it (with the reason).
    Unavailable(String),
}

impl RoutingSnapshot {
    pub fn compile(config: &Config, generation: u64) -> Result<RoutingSnapshot, String> {
        let mut routers = Vec::with_capacity(config.routers.len());
        let mut servers = Vec::new();
        let mut resolved_hosts = HashMap::new();
        for (i, r) in config.routers.iter().enumerate() {
            let dtab = Dtab::parse(&r.dtab).map_err(|e| format!("routers[{i}].dtab: {e}"))?;
            let dst_prefix = Path::parse(&r.dst_prefix).map_err(|e| format!("routers[{i}].dstPrefix: {e}"))?;
            for dentry in dtab.dentries() {
                collect_inet_hosts(&dentry.dst, &mut resolved_hosts);
            }
            servers.extend(r.servers.iter().map(|server| RouterSettings::from_config(config, i, server)));
            routers.push(RouterRoutes {
                label: r.label().to_string(),
                dst_prefix,
                identifier: Identifier::from_config(&r.identifier()),
                dtab,
            });
        }
        Ok(RoutingSnapshot { generation, routers, servers, resolved_hosts })
    }

    /// Delegates `name` through the router's dtab to a bound tree.
    pub fn bind(&self, router: usize, name: &Path) -> Result<NameTree<BoundName>, String> {
        let routes = &self.routers[router];
        Delegator::new(&routes.dtab, &EmptyNamers).bind(name).map_err(|e| e.to_string())
    }

    /// The addresses behind a bound id (`/$/inet/HOST/PORT`).
    pub fn endpoints(&self, bound: &BoundName) -> Endpoints {
        let id = &bound.id;
        if id.len() == 4 && id.segment(0) == Some(b"$") && id.segment(1) == Some(b"inet") {
            let (Some(host), Some(port)) = (id.segment_str(2), id.segment_str(3)) else {
                return Endpoints::Unavailable(format!("invalid inet address {id}"));
            };
            let Ok(port) = port.parse::<u16>() else {
                return Endpoints::Unavailable(format!("invalid port in {id}"));
            };
            if let Ok(ip) = host.parse::<IpAddr>() {
                return Endpoints::Addrs(vec![SocketAddr::new(ip, port)]);
            }
            return match self.resolved_hosts.get(host) {
                Some(ips) if !ips.is_empty() => {
                    Endpoints::Addrs(ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect())
                }
                Some(_) => Endpoints::Unavailable(format!("{host} resolved to no address")),
                None => Endpoints::Unavailable(format!("{host} is not a resolved address")),
            };
        }
        Endpoints::Unavailable(format!("no namer resolves {id}"))
    }
}

/// Finds `/$/inet/HOST/...` leaves with a non-IP HOST and resolves them now.
fn collect_inet_hosts(tree: &NameTree<Path>, out: &mut HashMap<String, Vec<IpAddr>>) {
    match tree {
        NameTree::Leaf(p) => {
            if p.len() >= 4 && p.segment(0) == Some(b"$") && p.segment(1) == Some(b"inet") {
                if let Some(host) = p.segment_str(2) {
                    if host.parse::<IpAddr>().is_err() && !out.contains_key(host) {
                        let ips = (host, 0u16)
                            .to_socket_addrs()
                            .map(|addrs| addrs.map(|a| a.ip()).collect())
                            .unwrap_or_default();
                        out.insert(host.to_string(), ips);
                    }
                }
            }
        }
        NameTree::Alt(ts) => ts.iter().for_each(|t| collect_inet_hosts(t, out)),
        NameTree::Union(ws) => ws.iter().for_each(|w| collect_inet_hosts(&w.tree, out)),
        NameTree::Neg | NameTree::Fail | NameTree::Empty => {}
    }
}

/// The published snapshot, shared by every core.
#[derive(Clone)]
pub struct SharedSnapshot(Arc<ArcSwap<RoutingSnapshot>>);

impl SharedSnapshot {
    pub fn new(snapshot: RoutingSnapshot) -> Self {
        SharedSnapshot(Arc::new(ArcSwap::from_pointee(snapshot)))
    }

    pub fn load(&self) -> arc_swap::Guard<Arc<RoutingSnapshot>> {
        self.0.load()
    }

    pub fn load_full(&self) -> Arc<RoutingSnapshot> {
        self.0.load_full()
    }

    pub fn publish(&self, snapshot: RoutingSnapshot) {
        self.0.store(Arc::new(snapshot));
    }
}
