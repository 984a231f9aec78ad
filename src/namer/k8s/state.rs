//! What the `io.l5d.k8s` namer keeps of the API server's objects: compact
//! Services and EndpointSlices (ports, addresses, readiness; not the rest of
//! the object, whose `managedFields` alone outweigh it), kept per API server
//! by the watches ([`ClusterStore`]) and handed to the routing snapshot as an
//! immutable [`ClusterView`]. Pure: converting from the `k8s-openapi` types
//! and updating the maps do no I/O.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// The label every EndpointSlice of a Service carries (the EndpointSlice
/// controller sets it; hand-made slices must too).
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// `(namespace, name)`.
pub type ObjectKey = (String, String);

/// The label keys of Services the namer reads: the `labelSelector` keys of
/// the namers on one API server. Only those labels are kept (Helm and
/// operators put half a dozen on every Service; none of the others is read).
pub type LabelKeys = Arc<BTreeSet<String>>;

/// A Service's port: `port`, mapped to `targetPort` (a number, or the name
/// of a container port resolved per pod in the EndpointSlices).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePortInfo {
    pub port: u16,
    pub target: TargetPort,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetPort {
    Number(u16),
    Name(String),
}

/// What the namer needs of a Service: the labels a `labelSelector` reads,
/// and its TCP ports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceInfo {
    /// Only those whose key is among the store's [`LabelKeys`].
    pub labels: BTreeMap<String, String>,
    pub ports: Vec<ServicePortInfo>,
}

/// One port of an EndpointSlice (TCP only; unnamed ports have the name "").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlicePort {
    pub name: String,
    pub port: u16,
}

/// One endpoint of a slice: its (first) address and conditions, as the
/// EndpointSlice API defines them (`ready` absent means ready; `serving`
/// absent means as `ready`; `terminating` absent means not terminating).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointInfo {
    pub ip: IpAddr,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    /// `nodeName`: for the daemonset and localnode transformers.
    pub node_name: Option<Arc<str>>,
}

/// What the namer needs of an EndpointSlice.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SliceInfo {
    /// The `kubernetes.io/service-name` label.
    pub service: String,
    pub ports: Vec<SlicePort>,
    pub endpoints: Vec<EndpointInfo>,
}

/// The slices of one Service, by slice name.
pub type ServiceSlices = BTreeMap<String, Arc<SliceInfo>>;

/// An immutable picture of one API server's Services and EndpointSlices, as
/// the routing snapshot receives it. Cloning copies two maps of `Arc`s.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    /// Both watches have completed their first list: until then the namer
    /// cannot tell a missing Service from one not yet seen.
    pub synced: bool,
    pub services: HashMap<ObjectKey, Arc<ServiceInfo>>,
    /// By `(namespace, service name)`.
    pub slices: HashMap<ObjectKey, Arc<ServiceSlices>>,
    /// The label keys `services` were listed with: a `labelSelector` key
    /// outside them (one a reload just added) is not known yet.
    pub label_keys: LabelKeys,
}

impl ClusterView {
    /// The number of endpoints held (for logs and tests).
    pub fn endpoint_count(&self) -> usize {
        self.slices.values().flat_map(|s| s.values()).map(|s| s.endpoints.len()).sum()
    }
}

/// The watched state of one API server, updated by the watches' events.
#[derive(Debug, Clone, Default)]
pub struct ClusterStore {
    view: ClusterView,
    /// The labels of Services to keep.
    label_keys: LabelKeys,
    services_synced: bool,
    slices_synced: bool,
    /// `(namespace, slice name)` → the service it was filed under, so a
    /// deletion (or a relabelled slice) finds it.
    slice_owner: HashMap<ObjectKey, String>,
}

fn key(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Option<ObjectKey> {
    Some((meta.namespace.clone()?, meta.name.clone()?))
}

/// A port number from the API (an `i32`), if it is one.
fn port_number(n: i32) -> Option<u16> {
    u16::try_from(n).ok().filter(|&p| p != 0)
}

fn is_tcp(protocol: Option<&str>) -> bool {
    protocol.is_none_or(|p| p.eq_ignore_ascii_case("TCP"))
}

impl ServiceInfo {
    /// The Service's key and what the namer keeps of it (of its labels,
    /// those in `label_keys`); None without a name or namespace.
    pub fn from_k8s(service: &Service, label_keys: &BTreeSet<String>) -> Option<(ObjectKey, ServiceInfo)> {
        let key = key(&service.metadata)?;
        let labels = match &service.metadata.labels {
            Some(labels) if !label_keys.is_empty() => {
                labels.iter().filter(|(k, _)| label_keys.contains(*k)).map(|(k, v)| (k.clone(), v.clone())).collect()
            }
            _ => BTreeMap::new(),
        };
        let ports = service
            .spec
            .as_ref()
            .and_then(|s| s.ports.as_ref())
            .map(|ports| {
                ports
                    .iter()
                    .filter(|p| is_tcp(p.protocol.as_deref()))
                    .filter_map(|p| {
                        let port = port_number(p.port)?;
                        let target = match &p.target_port {
                            None => TargetPort::Number(port),
                            Some(IntOrString::Int(n)) => TargetPort::Number(port_number(*n)?),
                            Some(IntOrString::String(s)) => match s.parse::<i32>() {
                                // The API server stores `"8080"` as a name;
                                // kube-proxy reads it as the number.
                                Ok(n) => TargetPort::Number(port_number(n)?),
                                Err(_) => TargetPort::Name(s.clone()),
                            },
                        };
                        Some(ServicePortInfo { port, target })
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some((key, ServiceInfo { labels, ports }))
    }
}

impl SliceInfo {
    /// The slice's key and what the namer keeps of it; None without a name,
    /// namespace or `kubernetes.io/service-name` label. Endpoints of FQDN
    /// slices, and addresses that are not IPs, are left out; of an
    /// endpoint's addresses only the first counts (the API defines no
    /// meaning for the others, and kube-proxy ignores them).
    pub fn from_k8s(slice: &EndpointSlice) -> Option<(ObjectKey, SliceInfo)> {
        let key = key(&slice.metadata)?;
        let service = slice.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?.clone();
        let ports = slice
            .ports
            .as_ref()
            .map(|ports| {
                ports
                    .iter()
                    .filter(|p| is_tcp(p.protocol.as_deref()))
                    .filter_map(|p| {
                        Some(SlicePort { name: p.name.clone().unwrap_or_default(), port: port_number(p.port?)? })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let ip_slice = matches!(slice.address_type.as_str(), "IPv4" | "IPv6");
        let endpoints = slice
            .endpoints
            .iter()
            .filter(|_| ip_slice)
            .filter_map(|e| {
                let ip = e.addresses.first()?.parse::<IpAddr>().ok()?;
                let c = e.conditions.as_ref();
                let ready = c.and_then(|c| c.ready).unwrap_or(true);
                Some(EndpointInfo {
                    ip,
                    ready,
                    serving: c.and_then(|c| c.serving).unwrap_or(ready),
                    terminating: c.and_then(|c| c.terminating).unwrap_or(false),
                    node_name: e.node_name.as_deref().map(Arc::from),
                })
            })
            .collect();
        Some((key, SliceInfo { service, ports, endpoints }))
    }
}

impl ClusterStore {
    /// An empty store that keeps the Services' labels in `label_keys`.
    pub fn keeping(label_keys: LabelKeys) -> ClusterStore {
        ClusterStore { label_keys, ..Default::default() }
    }

    /// This store's contents, keeping `label_keys` (more than it did) from
    /// now on. What it knows keeps serving; the new keys are known once the
    /// Services are listed again.
    pub fn keeping_more(&self, label_keys: LabelKeys) -> ClusterStore {
        ClusterStore { label_keys, ..self.clone() }
    }

    pub fn label_keys(&self) -> &LabelKeys {
        &self.label_keys
    }

    /// An immutable copy for a routing snapshot.
    pub fn view(&self) -> ClusterView {
        self.view.clone()
    }

    pub fn synced(&self) -> bool {
        self.view.synced
    }

    fn update_synced(&mut self) {
        self.view.synced = self.services_synced && self.slices_synced;
    }

    /// A Service was added or modified. Returns whether anything the namer
    /// uses changed.
    pub fn apply_service(&mut self, key: ObjectKey, info: ServiceInfo) -> bool {
        match self.view.services.get(&key) {
            Some(old) if **old == info => false,
            _ => {
                self.view.services.insert(key, Arc::new(info));
                true
            }
        }
    }

    pub fn delete_service(&mut self, key: &ObjectKey) -> bool {
        self.view.services.remove(key).is_some()
    }

    /// An EndpointSlice was added or modified.
    pub fn apply_slice(&mut self, key: ObjectKey, info: SliceInfo) -> bool {
        let (namespace, name) = key;
        let owner = (namespace.clone(), info.service.clone());
        let mut changed = false;
        // A slice relabelled to another service leaves the old one.
        if let Some(previous) = self.slice_owner.get(&(namespace.clone(), name.clone())) {
            if *previous != info.service {
                let old_owner = (namespace.clone(), previous.clone());
                changed |= self.remove_from(&old_owner, &name);
            }
        }
        self.slice_owner.insert((namespace, name.clone()), info.service.clone());
        let slices = self.view.slices.entry(owner).or_default();
        if slices.get(&name).is_some_and(|old| **old == info) {
            return changed;
        }
        Arc::make_mut(slices).insert(name, Arc::new(info));
        true
    }

    pub fn delete_slice(&mut self, key: &ObjectKey) -> bool {
        let Some(service) = self.slice_owner.remove(key) else { return false };
        self.remove_from(&(key.0.clone(), service), &key.1)
    }

    fn remove_from(&mut self, owner: &ObjectKey, slice: &str) -> bool {
        let Some(slices) = self.view.slices.get_mut(owner) else { return false };
        let removed = Arc::make_mut(slices).remove(slice).is_some();
        if slices.is_empty() {
            self.view.slices.remove(owner);
        }
        removed
    }

    /// A full list of Services replaces what was known (after a start or a
    /// `410 Gone`): objects missing from it were deleted meanwhile.
    pub fn replace_services(&mut self, services: Vec<(ObjectKey, ServiceInfo)>) -> bool {
        let new: HashMap<ObjectKey, ServiceInfo> = services.into_iter().collect();
        let mut changed = new.len() != self.view.services.len();
        let old = std::mem::take(&mut self.view.services);
        for (key, info) in new {
            match old.get(&key) {
                Some(o) if **o == info => {
                    self.view.services.insert(key, o.clone());
                }
                _ => {
                    changed = true;
                    self.view.services.insert(key, Arc::new(info));
                }
            }
        }
        changed |= !self.services_synced || self.view.label_keys != self.label_keys;
        self.view.label_keys = self.label_keys.clone();
        self.services_synced = true;
        self.update_synced();
        changed
    }

    /// A full list of EndpointSlices replaces what was known.
    pub fn replace_slices(&mut self, slices: Vec<(ObjectKey, SliceInfo)>) -> bool {
        let before = std::mem::take(&mut self.view.slices);
        self.slice_owner.clear();
        for (key, info) in slices {
            self.apply_slice(key, info);
        }
        let changed = before.len() != self.view.slices.len()
            || self.view.slices.iter().any(|(k, v)| before.get(k).is_none_or(|b| **b != **v))
            || !self.slices_synced;
        self.slices_synced = true;
        self.update_synced();
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice_json(service: &str, ports: serde_json::Value, endpoints: serde_json::Value) -> EndpointSlice {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": format!("{service}-abc"), "namespace": "prod",
                         "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4",
            "ports": ports,
            "endpoints": endpoints,
        }))
        .unwrap()
    }

    #[test]
    fn slices_keep_tcp_ports_first_addresses_and_conditions() {
        let slice = slice_json(
            "web",
            serde_json::json!([{"name": "http", "port": 8080, "protocol": "TCP"},
                               {"name": "dns", "port": 53, "protocol": "UDP"},
                               {"port": 9000}]),
            serde_json::json!([
                {"addresses": ["10.0.0.1", "10.0.0.9"]},
                {"addresses": ["10.0.0.2"], "conditions": {"ready": false, "serving": true, "terminating": true},
                 "nodeName": "n1"},
                {"addresses": ["not-an-ip"]},
            ]),
        );
        let (key, info) = SliceInfo::from_k8s(&slice).unwrap();
        assert_eq!(key, ("prod".to_string(), "web-abc".to_string()));
        assert_eq!(info.service, "web");
        assert_eq!(
            info.ports,
            vec![SlicePort { name: "http".into(), port: 8080 }, SlicePort { name: String::new(), port: 9000 }]
        );
        assert_eq!(info.endpoints.len(), 2);
        assert!(info.endpoints[0].ready && info.endpoints[0].serving && !info.endpoints[0].terminating);
        assert_eq!(info.endpoints[0].ip, "10.0.0.1".parse::<IpAddr>().unwrap());
        let e = &info.endpoints[1];
        assert!(!e.ready && e.serving && e.terminating && e.node_name.as_deref() == Some("n1"));
    }

    #[test]
    fn services_map_ports_to_target_ports() {
        let service: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "prod", "labels": {"version": "v1"}},
            "spec": {"ports": [
                {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
                {"port": 81, "targetPort": 8081},
                {"port": 82},
                {"port": 53, "protocol": "UDP", "targetPort": 53},
            ]},
        }))
        .unwrap();
        let (_, info) = ServiceInfo::from_k8s(&service, &BTreeSet::new()).unwrap();
        assert!(info.labels.is_empty(), "no labelSelector: no label is kept");
        assert_eq!(
            info.ports,
            vec![
                ServicePortInfo { port: 80, target: TargetPort::Name("http".into()) },
                ServicePortInfo { port: 81, target: TargetPort::Number(8081) },
                ServicePortInfo { port: 82, target: TargetPort::Number(82) },
            ]
        );
    }

    #[test]
    fn store_files_slices_by_service_and_reports_changes() {
        let mut store = ClusterStore::default();
        let info = |service: &str| SliceInfo { service: service.into(), ..Default::default() };
        let k = |n: &str| ("prod".to_string(), n.to_string());
        assert!(store.apply_slice(k("a-1"), info("a")));
        assert!(!store.apply_slice(k("a-1"), info("a")), "same contents: no change");
        assert!(store.apply_slice(k("a-2"), info("a")));
        assert_eq!(store.view().slices[&k("a")].len(), 2);
        // Relabelled to another service: moves.
        assert!(store.apply_slice(k("a-2"), info("b")));
        assert_eq!(store.view().slices[&k("a")].len(), 1);
        assert_eq!(store.view().slices[&k("b")].len(), 1);
        assert!(store.delete_slice(&k("a-1")));
        assert!(!store.view().slices.contains_key(&k("a")));
        assert!(!store.delete_slice(&k("a-1")));
        // A relist drops what it does not contain, and syncs.
        assert!(!store.synced());
        assert!(store.replace_slices(vec![(k("c-1"), info("c"))]));
        assert!(store.replace_services(vec![]));
        assert!(store.synced());
        let view = store.view();
        assert_eq!(view.slices.keys().collect::<Vec<_>>(), vec![&k("c")]);
        assert!(!store.replace_slices(vec![(k("c-1"), info("c"))]), "the same list again changes nothing");
    }

    #[test]
    fn only_the_labels_a_label_selector_reads_are_kept() {
        let service: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "prod", "labels": {
                "version": "v1", "app.kubernetes.io/name": "web", "helm.sh/chart": "web-1.2.3"}},
        }))
        .unwrap();
        let keys: BTreeSet<String> = ["version".to_string(), "track".to_string()].into();
        let (_, info) = ServiceInfo::from_k8s(&service, &keys).unwrap();
        assert_eq!(info.labels, BTreeMap::from([("version".to_string(), "v1".to_string())]));
    }

    #[test]
    fn a_store_keeping_more_label_keys_serves_on_and_knows_them_after_the_next_list() {
        let one: LabelKeys = Arc::new(["version".to_string()].into());
        let mut store = ClusterStore::keeping(one.clone());
        let info = |labels: &[(&str, &str)]| ServiceInfo {
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ports: vec![],
        };
        let k = ("prod".to_string(), "web".to_string());
        store.replace_services(vec![(k.clone(), info(&[("version", "v1")]))]);
        store.replace_slices(vec![]);
        assert_eq!(store.view().label_keys, one);
        let two: LabelKeys = Arc::new(["version".to_string(), "track".to_string()].into());
        let mut more = store.keeping_more(two.clone());
        assert!(more.synced() && more.view().services.contains_key(&k), "what is known keeps serving");
        assert_eq!(more.view().label_keys, one, "the new key is not known before a list");
        assert!(more.replace_services(vec![(k, info(&[("version", "v1"), ("track", "stable")]))]));
        assert_eq!(more.view().label_keys, two);
    }
}
