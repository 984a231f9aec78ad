//! Builders for the objects tests apply, shaped exactly like the fixtures in
//! `fixtures/` (which they use as templates): what a client would send to
//! create them, so without the server-set `uid`, `resourceVersion`,
//! `creationTimestamp` and `generation`, which `ApiServer::apply` sets.
//!
//! * [`service`]: a `ClusterIP` Service selecting `app=<name>`, labelled
//!   `app=<name>`, with a cluster IP in 10.96.0.0/16 derived from its name.
//! * [`endpoint_slice`]: an EndpointSlice as the endpointslice controller
//!   writes it: `generateName: <service>-`, the labels
//!   `kubernetes.io/service-name` and `endpointslice.kubernetes.io/managed-by`
//!   (plus the Service's `app`), an owner reference to the Service (its uid
//!   derived from the name, so it will not equal the uid the server gives the
//!   applied Service), and per endpoint a `targetRef` to a Pod whose name and
//!   uid derive from the service and the address. `addressType` follows the
//!   first address: IPv4, IPv6, else FQDN (IPv4 for no endpoints). An
//!   unnamed port gets `"name": ""`, as the controller writes it.
//! * [`config_map`]: a ConfigMap with `data`.

use crate::clock;
use serde_json::{json, Map, Value};
use std::net::IpAddr;

/// The fixture files, as compiled in.
pub mod fixtures {
    /// A multi-port Service: a named target port and a numbered one.
    pub const SERVICE: &str = include_str!("../fixtures/service.json");
    /// A single-port Service whose port has no name.
    pub const SERVICE_SINGLE_PORT: &str = include_str!("../fixtures/service-single-port.json");
    /// An IPv4 EndpointSlice: a ready, a not-ready and a terminating endpoint.
    pub const ENDPOINT_SLICE_IPV4: &str = include_str!("../fixtures/endpointslice-ipv4.json");
    /// An IPv6 EndpointSlice with one ready endpoint.
    pub const ENDPOINT_SLICE_IPV6: &str = include_str!("../fixtures/endpointslice-ipv6.json");
    pub const CONFIG_MAP: &str = include_str!("../fixtures/configmap.json");

    /// Every fixture, by file name.
    pub const ALL: [(&str, &str); 5] = [
        ("service.json", SERVICE),
        ("service-single-port.json", SERVICE_SINGLE_PORT),
        ("endpointslice-ipv4.json", ENDPOINT_SLICE_IPV4),
        ("endpointslice-ipv6.json", ENDPOINT_SLICE_IPV6),
        ("configmap.json", CONFIG_MAP),
    ];
}

/// A Service port (protocol TCP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServicePort<'a> {
    /// Required by the apiserver when a Service has more than one port.
    pub name: Option<&'a str>,
    pub port: u16,
    pub target_port: TargetPort<'a>,
}

/// A Service port's `targetPort`: a container port number or name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetPort<'a> {
    Number(u16),
    Name(&'a str),
}

/// One endpoint of an EndpointSlice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub addresses: Vec<String>,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    pub node_name: Option<String>,
    pub zone: Option<String>,
}

impl Endpoint {
    /// A ready (and serving) endpoint.
    pub fn ready(address: &str) -> Endpoint {
        Endpoint {
            addresses: vec![address.to_string()],
            ready: true,
            serving: true,
            terminating: false,
            node_name: None,
            zone: None,
        }
    }

    /// An endpoint whose pod is not ready (not serving, not terminating).
    pub fn not_ready(address: &str) -> Endpoint {
        Endpoint { ready: false, serving: false, ..Endpoint::ready(address) }
    }

    /// A terminating endpoint that still serves (not ready).
    pub fn terminating(address: &str) -> Endpoint {
        Endpoint { ready: false, serving: true, terminating: true, ..Endpoint::ready(address) }
    }

    pub fn on_node(mut self, node_name: &str) -> Endpoint {
        self.node_name = Some(node_name.to_string());
        self
    }

    pub fn in_zone(mut self, zone: &str) -> Endpoint {
        self.zone = Some(zone.to_string());
        self
    }
}

/// A fixture as a template: parsed, without the server-set metadata.
fn template(fixture: &str) -> Value {
    let mut object: Value =
        serde_json::from_str(fixture).unwrap_or_else(|error| panic!("fixture is not JSON: {error}"));
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in ["uid", "resourceVersion", "creationTimestamp", "generation"] {
            metadata.remove(field);
        }
    }
    object
}

/// A Service like `fixtures/service.json`.
pub fn service(namespace: &str, name: &str, ports: &[ServicePort]) -> Value {
    let mut object = template(fixtures::SERVICE);
    object["metadata"]["name"] = json!(name);
    object["metadata"]["namespace"] = json!(namespace);
    object["metadata"]["labels"] = json!({"app": name});
    object["spec"]["selector"] = json!({"app": name});
    let cluster_ip = cluster_ip(namespace, name);
    object["spec"]["clusterIP"] = json!(cluster_ip);
    object["spec"]["clusterIPs"] = json!([cluster_ip]);
    object["spec"]["ports"] = ports.iter().map(service_port).collect();
    object
}

fn service_port(port: &ServicePort) -> Value {
    let mut entry = Map::new();
    if let Some(name) = port.name {
        entry.insert("name".into(), json!(name));
    }
    entry.insert("protocol".into(), json!("TCP"));
    entry.insert("port".into(), json!(port.port));
    let target = match port.target_port {
        TargetPort::Number(number) => json!(number),
        TargetPort::Name(name) => json!(name),
    };
    entry.insert("targetPort".into(), target);
    Value::Object(entry)
}

/// A stable cluster IP in 10.96.0.0/16 (never .0 or .255 in the last octet).
fn cluster_ip(namespace: &str, name: &str) -> String {
    let hash = clock::hash_str(&format!("{namespace}/{name}"));
    format!("10.96.{}.{}", (hash >> 8) % 256, 1 + hash % 254)
}

/// An EndpointSlice like `fixtures/endpointslice-ipv4.json`.
pub fn endpoint_slice(
    namespace: &str,
    name: &str,
    service: &str,
    ports: &[(Option<&str>, u16)],
    endpoints: &[Endpoint],
) -> Value {
    let mut object = template(fixtures::ENDPOINT_SLICE_IPV4);
    let metadata = &mut object["metadata"];
    metadata["name"] = json!(name);
    metadata["generateName"] = json!(format!("{service}-"));
    metadata["namespace"] = json!(namespace);
    metadata["labels"] = json!({
        "app": service,
        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
        "kubernetes.io/service-name": service,
    });
    metadata["annotations"]["endpoints.kubernetes.io/last-change-trigger-time"] = json!(clock::rfc3339_now());
    metadata["ownerReferences"][0]["name"] = json!(service);
    metadata["ownerReferences"][0]["uid"] =
        json!(clock::uid_from_seed(clock::hash_str(&format!("Service/{namespace}/{service}"))));
    object["addressType"] = json!(address_type(endpoints));
    object["endpoints"] = endpoints.iter().map(|endpoint| endpoint_entry(namespace, service, endpoint)).collect();
    object["ports"] =
        ports.iter().map(|(name, port)| json!({"name": name.unwrap_or(""), "protocol": "TCP", "port": port})).collect();
    object
}

fn address_type(endpoints: &[Endpoint]) -> &'static str {
    let first = endpoints.iter().flat_map(|endpoint| endpoint.addresses.first()).next();
    match first.map(|address| address.parse::<IpAddr>()) {
        None | Some(Ok(IpAddr::V4(_))) => "IPv4",
        Some(Ok(IpAddr::V6(_))) => "IPv6",
        Some(Err(_)) => "FQDN",
    }
}

fn endpoint_entry(namespace: &str, service: &str, endpoint: &Endpoint) -> Value {
    let first_address = endpoint.addresses.first().map(String::as_str).unwrap_or("");
    let pod_seed = clock::hash_str(&format!("Pod/{namespace}/{service}/{first_address}"));
    let mut entry = Map::new();
    entry.insert("addresses".into(), json!(endpoint.addresses));
    entry.insert(
        "conditions".into(),
        json!({"ready": endpoint.ready, "serving": endpoint.serving, "terminating": endpoint.terminating}),
    );
    entry.insert(
        "targetRef".into(),
        json!({
            "kind": "Pod",
            "namespace": namespace,
            "name": pod_name(service, pod_seed),
            "uid": clock::uid_from_seed(pod_seed),
        }),
    );
    if let Some(node_name) = &endpoint.node_name {
        entry.insert("nodeName".into(), json!(node_name));
    }
    if let Some(zone) = &endpoint.zone {
        entry.insert("zone".into(), json!(zone));
    }
    Value::Object(entry)
}

/// `<service>-<9 chars>-<5 chars>`, shaped like a Deployment's pod names.
fn pod_name(service: &str, seed: u64) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut bits = seed;
    let mut next = || {
        let symbol = ALPHABET[(bits % ALPHABET.len() as u64) as usize] as char;
        bits /= ALPHABET.len() as u64;
        symbol
    };
    let template_hash: String = (0..9).map(|_| next()).collect();
    let suffix: String = (0..5).map(|_| next()).collect();
    format!("{service}-{template_hash}-{suffix}")
}

/// A ConfigMap like `fixtures/configmap.json`.
pub fn config_map(namespace: &str, name: &str, data: &[(&str, &str)]) -> Value {
    let mut object = template(fixtures::CONFIG_MAP);
    object["metadata"]["name"] = json!(name);
    object["metadata"]["namespace"] = json!(namespace);
    object["data"] = data.iter().map(|(key, value)| (key.to_string(), json!(value))).collect::<Map<_, _>>().into();
    object
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The set of key paths of a JSON value (array elements merged), to
    /// compare the shape of a built object with its fixture.
    fn shape(value: &Value, prefix: &str, out: &mut std::collections::BTreeSet<String>) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    let path = format!("{prefix}/{key}");
                    out.insert(path.clone());
                    shape(child, &path, out);
                }
            }
            Value::Array(items) => {
                for item in items {
                    shape(item, &format!("{prefix}[]"), out);
                }
            }
            _ => {}
        }
    }

    fn shape_of(value: &Value) -> std::collections::BTreeSet<String> {
        let mut out = std::collections::BTreeSet::new();
        shape(value, "", &mut out);
        out
    }

    #[test]
    fn built_objects_have_the_fixture_shapes() {
        let built_service = service(
            "prod",
            "web",
            &[
                ServicePort { name: Some("http"), port: 80, target_port: TargetPort::Name("http") },
                ServicePort { name: Some("admin"), port: 9990, target_port: TargetPort::Number(9990) },
            ],
        );
        assert_eq!(shape_of(&built_service), shape_of(&template(fixtures::SERVICE)));

        let built_slice = endpoint_slice(
            "prod",
            "web-x7k2p",
            "web",
            &[(Some("http"), 8080), (Some("admin"), 9990)],
            &[
                Endpoint::ready("10.244.1.12").on_node("node-a").in_zone("zone-a"),
                Endpoint::not_ready("10.244.2.7").on_node("node-b").in_zone("zone-b"),
                Endpoint::terminating("10.244.3.21").on_node("node-c").in_zone("zone-a"),
            ],
        );
        let fixture = template(fixtures::ENDPOINT_SLICE_IPV4);
        assert_eq!(shape_of(&built_slice), shape_of(&fixture));
        assert_eq!(built_slice["endpoints"][1]["conditions"], fixture["endpoints"][1]["conditions"]);
        assert_eq!(built_slice["endpoints"][2]["conditions"], fixture["endpoints"][2]["conditions"]);
        assert_eq!(built_slice["ports"], fixture["ports"]);
        assert_eq!(built_slice["metadata"]["labels"], fixture["metadata"]["labels"]);

        let built_map = config_map(
            "prod",
            "l5d-dtabs",
            &[
                ("default", "/svc => /#/io.l5d.k8s/prod/http;"),
                ("overrides", "/svc/web => /#/io.l5d.k8s/prod/admin/web;"),
            ],
        );
        assert_eq!(shape_of(&built_map), shape_of(&template(fixtures::CONFIG_MAP)));
    }

    #[test]
    fn address_types_and_unnamed_ports() {
        let v6 = endpoint_slice("prod", "web-v6", "web", &[(None, 8080)], &[Endpoint::ready("fd00:10:244:1::c")]);
        assert_eq!(v6["addressType"], "IPv6");
        assert_eq!(v6["ports"], json!([{"name": "", "protocol": "TCP", "port": 8080}]));
        let empty = endpoint_slice("prod", "web-empty", "web", &[], &[]);
        assert_eq!(empty["addressType"], "IPv4");
        assert_eq!(empty["endpoints"], json!([]));
        let single =
            service("prod", "cache", &[ServicePort { name: None, port: 6379, target_port: TargetPort::Number(6379) }]);
        assert_eq!(shape_of(&single), shape_of(&template(fixtures::SERVICE_SINGLE_PORT)));
    }
}
