//! The rules of linkerd's Kubernetes transformers, as pure functions over
//! resolved endpoints (no I/O, no tokio): the routing snapshot compiles a
//! [`DaemonSet`] from the [`ClusterView`] of its API server and a
//! [`LocalNode`] from the environment read at start-up (`namer/`), then
//! applies them while binding.
//!
//! - `io.l5d.k8s.daemonset` (linkerd's `DaemonSetTransformerConfig` over
//!   `SubnetGatewayTransformer` / `MetadataGatewayTransformer`, both a
//!   `GatewayTransformer`): every address is replaced by the DaemonSet pods
//!   "on the same node": in the same /24 (`Netmask("255.255.255.0")`), or with
//!   `hostNetwork` with the same `nodeName`. The result is a set: several
//!   addresses on one node give its pod once. Addresses with no pod on their
//!   node are dropped; when none is left the name has no addresses
//!   (linkerd's `Addr.Neg`).
//! - `io.l5d.k8s.localnode` (linkerd's `LocalNodeTransformerConfig` over
//!   `SubnetLocalTransformer` / `MetadataFiltertingNameTreeTransformer`):
//!   keeps the addresses in the /24 of `POD_IP`, or with `hostNetwork` those
//!   whose `nodeName` is `NODE_NAME`.
//!
//! linkerd's netmask compares addresses of the same family only and is
//! 4 bytes long, so an IPv6 address is never in anyone's /24: IPv6
//! endpoints need `hostNetwork: true` (node names). One deliberate
//! difference: linkerd's `MetadataGatewayTransformer` compares the
//! `nodeName`s as options, so an address without one would match DaemonSet
//! pods without one; here an address without a node name is on no node and
//! is dropped (as linkerd's localnode filter does).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use naming::Path;

use super::resolve::{resolve, Endpoint, Resolution};
use super::state::ClusterView;

/// An address being transformed: where to send, its weight (an `io.l5d.fs`
/// file's `* weight`, else 1) and its node when a k8s namer knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub addr: SocketAddr,
    pub weight: f64,
    pub node: Option<Arc<str>>,
}

impl Target {
    pub fn new(addr: SocketAddr, weight: f64) -> Target {
        Target { addr, weight, node: None }
    }
}

impl From<Endpoint> for Target {
    fn from(e: Endpoint) -> Target {
        Target { addr: e.addr, weight: 1.0, node: e.node }
    }
}

/// The /24 of an IPv4 address (linkerd's `Netmask("255.255.255.0")`), None
/// for IPv6 (another family than the mask's, so never local). An
/// IPv4-mapped IPv6 address counts as IPv4, as Java's `InetAddress` reads it.
pub fn subnet24(ip: IpAddr) -> Option<u32> {
    match ip.to_canonical() {
        IpAddr::V4(v4) => Some(u32::from(v4) & 0xffff_ff00),
        IpAddr::V6(_) => None,
    }
}

/// Whether two addresses are in the same /24.
pub fn same_subnet24(a: IpAddr, b: IpAddr) -> bool {
    matches!((subnet24(a), subnet24(b)), (Some(x), Some(y)) if x == y)
}

/// Why a DaemonSet's pods are not known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DaemonSetError {
    #[error("the Kubernetes API server ({api}) of the DaemonSet {namespace}/{service} has not been listed yet")]
    NotListed { api: String, namespace: String, service: String },
}

/// `io.l5d.k8s.daemonset`, compiled against one view of its API server:
/// the DaemonSet's ready pods, indexed by /24 or by node.
#[derive(Debug, Clone)]
pub struct DaemonSet {
    host_network: bool,
    /// By /24 (`host_network: false`) or node name (`true`), each set
    /// sorted by address.
    pods: Result<HashMap<PodKey, Vec<Endpoint>>, DaemonSetError>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum PodKey {
    Subnet(u32),
    Node(Arc<str>),
}

impl DaemonSet {
    /// Finds the DaemonSet's pods as the `io.l5d.k8s` namer binds
    /// `/<namespace>/<port>/<service>` in `view` (segments lowercased, named
    /// or numbered port, ready endpoints). A Service or port that does not
    /// exist is no pods (linkerd: the gateway tree is `~`, so every address
    /// is dropped). `api` names the API server in messages.
    pub fn compile(
        view: &ClusterView,
        namespace: &str,
        port: &str,
        service: &str,
        host_network: bool,
        api: &str,
    ) -> DaemonSet {
        let endpoints = match Path::from_segments([namespace, port, service].map(str::to_string)) {
            Ok(path) => match resolve(view, None, &path) {
                Resolution::Bound { endpoints, .. } => Ok(endpoints),
                Resolution::Neg => Ok(Vec::new()),
                Resolution::Pending => Err(DaemonSetError::NotListed {
                    api: api.to_string(),
                    namespace: namespace.to_string(),
                    service: service.to_string(),
                }),
            },
            // The config crate checked that each is one segment.
            Err(_) => Ok(Vec::new()),
        };
        DaemonSet::from_pods(endpoints, host_network)
    }

    /// From the DaemonSet's pods as resolved (or why they are not known).
    pub fn from_pods(pods: Result<Vec<Endpoint>, DaemonSetError>, host_network: bool) -> DaemonSet {
        let pods = pods.map(|pods| {
            let mut index: HashMap<PodKey, Vec<Endpoint>> = HashMap::new();
            for pod in pods {
                if let Some(key) = pod_key(host_network, pod.addr.ip(), pod.node.as_ref()) {
                    index.entry(key).or_default().push(pod);
                }
            }
            for pods in index.values_mut() {
                pods.sort_unstable_by_key(|p| p.addr);
                pods.dedup_by_key(|p| p.addr);
            }
            index
        });
        DaemonSet { host_network, pods }
    }

    /// Replaces every target by the DaemonSet pods on its node, each pod
    /// once, sorted by address, with weight 1 and the pod's own node name
    /// (linkerd's gateway addresses carry their own metadata); targets with
    /// no pod on their node are dropped.
    pub fn apply(&self, targets: &[Target]) -> Result<Vec<Target>, DaemonSetError> {
        let pods = self.pods.as_ref().map_err(Clone::clone)?;
        let mut out: Vec<&Endpoint> = targets
            .iter()
            .filter_map(|t| pod_key(self.host_network, t.addr.ip(), t.node.as_ref()))
            .filter_map(|key| pods.get(&key))
            .flatten()
            .collect();
        out.sort_unstable_by_key(|p| p.addr);
        out.dedup_by_key(|p| p.addr);
        Ok(out.into_iter().map(|p| Target::from(p.clone())).collect())
    }
}

/// Where an address is for matching: its /24, or its node (None: IPv6 by
/// subnet, or no node name by node, which match nothing).
fn pod_key(host_network: bool, ip: IpAddr, node: Option<&Arc<str>>) -> Option<PodKey> {
    if host_network {
        node.map(|n| PodKey::Node(n.clone()))
    } else {
        subnet24(ip).map(PodKey::Subnet)
    }
}

/// The environment variables `io.l5d.k8s.localnode` reads, as read at
/// start-up (or at a reload) by `namer/`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalNodeEnv {
    pub pod_ip: Option<String>,
    pub node_name: Option<String>,
}

impl LocalNodeEnv {
    /// Reads `POD_IP` and `NODE_NAME` (unset, empty or not Unicode: None).
    pub fn from_env() -> LocalNodeEnv {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        LocalNodeEnv { pod_ip: var("POD_IP"), node_name: var("NODE_NAME") }
    }
}

/// Why `io.l5d.k8s.localnode` cannot run here: a start-up error, as in
/// linkerd (whose initializer throws).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocalNodeError {
    #[error(
        "io.l5d.k8s.localnode needs the environment variable POD_IP, set to this pod's IP (downward API: fieldRef status.podIP), and it is not set"
    )]
    NoPodIp,
    #[error(
        "io.l5d.k8s.localnode with hostNetwork: true needs the environment variable NODE_NAME, set to this node's name (downward API: fieldRef spec.nodeName), and it is not set"
    )]
    NoNodeName,
    #[error("io.l5d.k8s.localnode: the environment variable POD_IP is {0:?}, not an IP address")]
    BadPodIp(String),
}

/// `io.l5d.k8s.localnode`, compiled: what "this node" is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalNode {
    /// The /24 of `POD_IP`.
    PodIp(IpAddr),
    /// `NODE_NAME` (`hostNetwork: true`).
    NodeName(Arc<str>),
}

impl LocalNode {
    pub fn compile(env: &LocalNodeEnv, host_network: bool) -> Result<LocalNode, LocalNodeError> {
        if host_network {
            let name = env.node_name.as_deref().ok_or(LocalNodeError::NoNodeName)?;
            return Ok(LocalNode::NodeName(Arc::from(name.trim())));
        }
        let ip = env.pod_ip.as_deref().ok_or(LocalNodeError::NoPodIp)?.trim();
        ip.parse().map(LocalNode::PodIp).map_err(|_| LocalNodeError::BadPodIp(ip.to_string()))
    }

    /// What linkerd appends to the transformer prefix: the IP or node name.
    pub fn segment(&self) -> String {
        match self {
            LocalNode::PodIp(ip) => ip.to_string(),
            LocalNode::NodeName(n) => n.to_string(),
        }
    }

    /// Whether `target` is on this node.
    pub fn keeps(&self, target: &Target) -> bool {
        match self {
            LocalNode::PodIp(ip) => same_subnet24(*ip, target.addr.ip()),
            LocalNode::NodeName(name) => target.node.as_deref() == Some(&**name),
        }
    }

    /// The targets on this node, in order.
    pub fn apply(&self, targets: Vec<Target>) -> Vec<Target> {
        targets.into_iter().filter(|t| self.keeps(t)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(addr: &str, node: Option<&str>) -> Target {
        Target { addr: addr.parse().unwrap(), weight: 1.0, node: node.map(Arc::from) }
    }

    fn pods(list: &[(&str, Option<&str>)]) -> Vec<Endpoint> {
        list.iter().map(|(a, n)| Endpoint { addr: a.parse().unwrap(), node: n.map(Arc::from) }).collect()
    }

    fn addrs(targets: &[Target]) -> Vec<String> {
        targets.iter().map(|t| t.addr.to_string()).collect()
    }

    #[test]
    fn subnets_are_ipv4_slash_24s() {
        let cases: &[(&str, &str, bool)] = &[
            ("10.0.0.1", "10.0.0.255", true),
            ("10.0.0.1", "10.0.1.1", false),
            ("10.1.0.1", "10.0.0.1", false),
            ("127.0.1.5", "127.0.1.200", true),
            ("127.0.1.5", "127.0.2.5", false),
            // linkerd's netmask compares same-length addresses only.
            ("fd00::1", "fd00::2", false),
            ("10.0.0.1", "fd00::1", false),
            ("::ffff:10.0.0.1", "10.0.0.7", true),
        ];
        for (a, b, want) in cases {
            assert_eq!(same_subnet24(a.parse().unwrap(), b.parse().unwrap()), *want, "{a} {b}");
        }
    }

    /// linkerd's `DaemonSetTransformerTest` cases, then corelink's.
    #[test]
    fn daemonset_by_subnet() {
        let ds = DaemonSet::from_pods(
            Ok(pods(&[("1.1.1.1:4141", None), ("1.1.2.1:4141", None), ("1.1.3.1:4141", None)])),
            false,
        );
        let cases: &[(&[&str], &[&str])] = &[
            (&["1.1.1.55:8888"], &["1.1.1.1:4141"]),
            (&["1.1.2.55:8888"], &["1.1.2.1:4141"]),
            (&["1.1.3.55:8888"], &["1.1.3.1:4141"]),
            // No pod in that /24: dropped; none left is nothing.
            (&["1.1.4.55:8888"], &[]),
            (&["1.1.4.55:8888", "1.1.2.9:80"], &["1.1.2.1:4141"]),
            // Several on one node: that node's pod, once; sorted.
            (&["1.1.3.7:80", "1.1.1.8:80", "1.1.3.9:81", "1.1.1.2:80"], &["1.1.1.1:4141", "1.1.3.1:4141"]),
            (&["[fd00::1]:80"], &[]),
            (&[], &[]),
        ];
        for (input, want) in cases {
            let input: Vec<Target> = input.iter().map(|a| t(a, Some("n"))).collect();
            let got = ds.apply(&input).unwrap();
            assert_eq!(addrs(&got), *want, "{input:?}");
            assert!(got.iter().all(|t| t.weight == 1.0 && t.node.is_none()));
        }
        // Two pods in one /24 (a rollout): both.
        let ds = DaemonSet::from_pods(Ok(pods(&[("1.1.1.1:4141", None), ("1.1.1.2:4141", None)])), false);
        assert_eq!(addrs(&ds.apply(&[t("1.1.1.9:80", None)]).unwrap()), ["1.1.1.1:4141", "1.1.1.2:4141"]);
    }

    #[test]
    fn daemonset_by_node_name() {
        let ds = DaemonSet::from_pods(
            Ok(pods(&[
                ("7.7.7.1:4141", Some("7.7.7.1")),
                ("7.7.7.2:4141", Some("7.7.7.2")),
                ("7.7.7.3:4141", Some("7.7.7.3")),
                ("7.7.7.4:4141", None),
            ])),
            true,
        );
        /// (address, node name).
        type At = (&'static str, Option<&'static str>);
        let cases: &[(&[At], &[&str])] = &[
            (&[("1.1.1.55:8888", Some("7.7.7.1"))], &["7.7.7.1:4141"]),
            (&[("1.1.1.55:8888", Some("7.7.7.2"))], &["7.7.7.2:4141"]),
            (&[("1.1.1.55:8888", Some("7.7.7.3"))], &["7.7.7.3:4141"]),
            // The subnet does not matter; the node does.
            (&[("7.7.7.1:80", Some("7.7.7.3"))], &["7.7.7.3:4141"]),
            (&[("1.1.1.55:8888", Some("elsewhere"))], &[]),
            // No node name: on no node (linkerd would match pods without one).
            (&[("1.1.1.55:8888", None)], &[]),
            (
                &[("1.1.1.1:80", Some("7.7.7.2")), ("1.1.1.2:80", Some("7.7.7.2")), ("[fd00::1]:80", Some("7.7.7.1"))],
                &["7.7.7.1:4141", "7.7.7.2:4141"],
            ),
        ];
        for (input, want) in cases {
            let input: Vec<Target> = input.iter().map(|(a, n)| t(a, *n)).collect();
            let got = ds.apply(&input).unwrap();
            assert_eq!(addrs(&got), *want, "{input:?}");
        }
        // The pods keep their node names for a later transformer.
        let got = ds.apply(&[t("1.1.1.1:80", Some("7.7.7.2"))]).unwrap();
        assert_eq!(got[0].node.as_deref(), Some("7.7.7.2"));
    }

    #[test]
    fn daemonset_not_listed_is_an_error_and_missing_is_empty() {
        let err = DaemonSetError::NotListed { api: "a".into(), namespace: "n".into(), service: "s".into() };
        let ds = DaemonSet::from_pods(Err(err.clone()), false);
        assert_eq!(ds.apply(&[t("1.1.1.1:80", None)]), Err(err));
        let view = ClusterView { synced: true, ..Default::default() };
        let ds = DaemonSet::compile(&view, "kube-system", "incoming", "l5d", false, "localhost:8001");
        assert_eq!(ds.apply(&[t("1.1.1.1:80", None)]), Ok(vec![]));
        let ds = DaemonSet::compile(&ClusterView::default(), "kube-system", "incoming", "l5d", false, "x:1");
        assert!(matches!(ds.apply(&[]), Err(DaemonSetError::NotListed { .. })));
    }

    /// linkerd's `LocalnodeTransformerTest` cases, then corelink's.
    #[test]
    fn localnode_filters() {
        let by_ip = LocalNode::PodIp("1.1.1.1".parse().unwrap());
        let by_node = LocalNode::NodeName(Arc::from("7.7.7.7"));
        let input = || {
            vec![
                t("1.1.1.2:8888", Some("7.7.7.7")),
                t("1.1.1.3:8888", Some("7.7.7.7")),
                t("1.1.2.2:8888", Some("7.7.7.8")),
                t("1.1.2.3:8888", Some("7.7.7.8")),
                t("1.1.2.4:8888", None),
                t("[fd00::1]:8888", Some("7.7.7.7")),
            ]
        };
        assert_eq!(addrs(&by_ip.apply(input())), ["1.1.1.2:8888", "1.1.1.3:8888"]);
        assert_eq!(addrs(&by_node.apply(input())), ["1.1.1.2:8888", "1.1.1.3:8888", "[fd00::1]:8888"]);
        let weighted = vec![Target { weight: 3.0, ..t("1.1.1.9:80", None) }];
        assert_eq!(by_ip.apply(weighted.clone()), weighted, "weights stay");
        assert_eq!(by_ip.segment(), "1.1.1.1");
        assert_eq!(by_node.segment(), "7.7.7.7");
    }

    #[test]
    fn localnode_needs_its_environment() {
        let env = |ip: Option<&str>, node: Option<&str>| LocalNodeEnv {
            pod_ip: ip.map(str::to_string),
            node_name: node.map(str::to_string),
        };
        let cases: &[(LocalNodeEnv, bool, Result<LocalNode, LocalNodeError>)] = &[
            (env(Some("10.1.2.3"), None), false, Ok(LocalNode::PodIp("10.1.2.3".parse().unwrap()))),
            (env(Some(" 10.1.2.3\n"), None), false, Ok(LocalNode::PodIp("10.1.2.3".parse().unwrap()))),
            (env(None, Some("n1")), false, Err(LocalNodeError::NoPodIp)),
            (env(Some("pod"), None), false, Err(LocalNodeError::BadPodIp("pod".into()))),
            (env(Some("10.1.2.3"), Some("n1")), true, Ok(LocalNode::NodeName(Arc::from("n1")))),
            (env(Some("10.1.2.3"), None), true, Err(LocalNodeError::NoNodeName)),
        ];
        for (e, host_network, want) in cases {
            assert_eq!(&LocalNode::compile(e, *host_network), want, "{e:?} {host_network}");
        }
        assert!(LocalNodeError::NoPodIp.to_string().contains("POD_IP"));
        assert!(LocalNodeError::NoNodeName.to_string().contains("NODE_NAME"));
    }
}
