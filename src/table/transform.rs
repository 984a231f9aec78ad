//! linkerd's transformers, compiled into the routing snapshot: each rewrites
//! the addresses of a bound name and puts its prefix in front of the client
//! name (linkerd's `prefix ++ id`, so `/%/io.l5d.port/4141/#/io.l5d.fs/b`).
//! A namer's `transformers` apply first, then the router interpreter's, each
//! list in order, as linkerd wraps the namer and then the interpreter.
//!
//! Compiling reads only what the snapshot's inputs carry (the daemonset's
//! [`ClusterView`](crate::namer::ClusterView), the `POD_IP`/`NODE_NAME` read
//! by `namer/`); applying is pure, except `io.l5d.localhost`, which lists
//! the host's interface addresses.

use std::net::{IpAddr, SocketAddr};

use config::TransformerConfig;

pub use crate::namer::k8s::transform::Target;
use crate::namer::k8s::transform::{DaemonSet, LocalNode, LocalNodeError};
use crate::namer::NamerInputs;

/// One transformer, ready to apply.
#[derive(Debug, Clone)]
pub struct Transformer {
    /// Its `kind` (`io.l5d.k8s.daemonset`), as `corelink delegate` shows it.
    pub name: &'static str,
    /// What goes in front of the client name (`/%/...`).
    pub prefix: String,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Port(u16),
    Localhost,
    DaemonSet(DaemonSet),
    LocalNode(LocalNode),
}

impl Transformer {
    /// Compiles `config` with the inputs the snapshot is built from; fails
    /// only for `io.l5d.k8s.localnode` without its environment variable.
    pub fn compile(config: &TransformerConfig, inputs: &NamerInputs) -> Result<Transformer, LocalNodeError> {
        let prefix = config.client_prefix();
        let (prefix, kind) = match config {
            TransformerConfig::Port { port, .. } => (prefix, Kind::Port(*port)),
            TransformerConfig::Localhost { .. } => (prefix, Kind::Localhost),
            TransformerConfig::DaemonSet(d) => {
                let view = inputs.k8s.get(&d.api).cloned().unwrap_or_default();
                let api = crate::namer::k8s::api_label(&d.api);
                let ds = DaemonSet::compile(&view, &d.namespace, &d.port, &d.service, d.host_network, &api);
                (prefix, Kind::DaemonSet(ds))
            }
            TransformerConfig::LocalNode { host_network, .. } => {
                let local = LocalNode::compile(&inputs.local_node, *host_network)?;
                // linkerd: `prefix ++ Path.Utf8(ip or node name)`.
                (format!("{prefix}/{}", local.segment()), Kind::LocalNode(local))
            }
        };
        Ok(Transformer { name: config.kind(), prefix, kind })
    }

    /// The transformed addresses, or why there are none to know.
    pub fn apply(&self, targets: Vec<Target>) -> Result<Vec<Target>, String> {
        Ok(match &self.kind {
            Kind::Port(port) => {
                targets.into_iter().map(|t| Target { addr: SocketAddr::new(t.addr.ip(), *port), ..t }).collect()
            }
            Kind::Localhost => {
                let local = local_addresses();
                targets.into_iter().filter(|t| t.addr.ip().is_loopback() || local.contains(&t.addr.ip())).collect()
            }
            Kind::DaemonSet(ds) => ds.apply(&targets).map_err(|e| e.to_string())?,
            Kind::LocalNode(local) => local.apply(targets),
        })
    }
}

/// The addresses of this host's interfaces.
fn local_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut ifaddrs: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs allocates a list we walk read-only and free below.
    if unsafe { libc::getifaddrs(&mut ifaddrs) } != 0 {
        return out;
    }
    let mut cur = ifaddrs;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned.
        let addr = unsafe { (*cur).ifa_addr };
        if !addr.is_null() {
            // SAFETY: ifa_addr points to a sockaddr of the family it names.
            unsafe {
                match i32::from((*addr).sa_family) {
                    libc::AF_INET => {
                        let sin = &*(addr as *const libc::sockaddr_in);
                        out.push(IpAddr::from(u32::from_be(sin.sin_addr.s_addr).to_be_bytes()));
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(addr as *const libc::sockaddr_in6);
                        out.push(IpAddr::from(sin6.sin6_addr.s6_addr));
                    }
                    _ => {}
                }
            }
        }
        // SAFETY: as above.
        cur = unsafe { (*cur).ifa_next };
    }
    // SAFETY: frees the list getifaddrs allocated, once.
    unsafe { libc::freeifaddrs(ifaddrs) };
    out
}
