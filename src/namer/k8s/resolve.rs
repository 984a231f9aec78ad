//! linkerd's `EndpointsNamer` rules over EndpointSlices, as a pure function:
//! (watched state, path) → negative, not yet known, or bound to addresses.
//! No I/O, no tokio: the routing snapshot calls it while binding.
//!
//! A path under the namer's prefix is `/<namespace>/<port>/<service>` (then
//! `/<label value>` when `labelSelector` is set), then any residual. Those
//! segments are lowercased (linkerd's `MultiNsNamer`), so `/prod/http/serviceB`
//! finds the Service `serviceb`.
//!
//! - The Service must exist (and, with `labelSelector: K`, carry the label
//!   `K=<label value>`); otherwise the name is negative (`~`), so a dtab
//!   alternative takes over.
//! - A **named** port is looked up among the ports of the Service's
//!   EndpointSlices (each slice may map the name to its own number); no slice
//!   with that port name (a Service scaled to zero has slices without ports)
//!   is negative.
//! - A **numbered** port is a port of the Service, mapped to its
//!   `targetPort`: a number is used as is for every endpoint, a name is looked
//!   up as above. A Service without that port is negative.
//! - Only ready endpoints are used (`ready` absent means ready); when none
//!   is ready, the serving-but-terminating ones are (Kubernetes' own rule for
//!   terminating endpoints). Endpoints that exist but are none of these bind
//!   to an empty set: bound, so the dtab does not fall back, but nothing to
//!   send to (linkerd's behaviour).

use std::net::SocketAddr;
use std::sync::Arc;

use naming::Path;

use super::state::{ClusterView, EndpointInfo, ServiceSlices, TargetPort};

/// What a path under the namer's prefix resolves to.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolution {
    /// No such Service or port: `~`.
    Neg,
    /// The watches have not completed their first list: the name may exist.
    Pending,
    /// Bound: `consumed` segments (lowercased in `id`) form the bound id;
    /// the endpoints, sorted by address, each address once (possibly none).
    Bound { id: Vec<String>, consumed: usize, endpoints: Vec<Endpoint> },
}

/// A bound endpoint: its address and the node it runs on (linkerd's
/// `nodeName` address metadata, which the k8s transformers read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub node: Option<Arc<str>>,
}

/// Resolves `rest` (the path after `/#/<prefix>`) against `view`.
pub fn resolve(view: &ClusterView, label_selector: Option<&str>, rest: &Path) -> Resolution {
    let consumed = 3 + usize::from(label_selector.is_some());
    if rest.len() < consumed {
        return Resolution::Neg;
    }
    let mut id = Vec::with_capacity(consumed);
    for i in 0..consumed {
        match rest.segment_str(i) {
            Some(s) => id.push(s.to_lowercase()),
            None => return Resolution::Neg,
        }
    }
    if !view.synced {
        return Resolution::Pending;
    }
    let (namespace, port, service) = (&id[0], &id[1], &id[2]);
    let key = (namespace.clone(), service.clone());
    let Some(svc) = view.services.get(&key) else { return Resolution::Neg };
    if let Some(label) = label_selector {
        if !view.label_keys.contains(label) {
            // The Services were listed without this label (a reload just
            // added the key): not known until they are listed again.
            return Resolution::Pending;
        }
        if svc.labels.get(label) != Some(&id[3]) {
            return Resolution::Neg;
        }
    }
    let empty = ServiceSlices::new();
    let slices = view.slices.get(&key).map_or(&empty, |s| &**s);
    let candidates = match port.parse::<u16>() {
        Ok(number) => match svc.ports.iter().find(|p| p.port == number).map(|p| &p.target) {
            None => None,
            Some(TargetPort::Number(target)) => {
                Some(slices.values().flat_map(|s| s.endpoints.iter().map(|e| (e, *target))).collect::<Vec<_>>())
            }
            Some(TargetPort::Name(name)) => named_port(slices, name),
        },
        Err(_) => named_port(slices, port),
    };
    let Some(candidates) = candidates else { return Resolution::Neg };
    let ready: Vec<_> = candidates.iter().filter(|(e, _)| e.ready).collect();
    let chosen =
        if ready.is_empty() { candidates.iter().filter(|(e, _)| e.serving && e.terminating).collect() } else { ready };
    let mut endpoints: Vec<Endpoint> = chosen
        .into_iter()
        .map(|(e, port)| Endpoint { addr: SocketAddr::new(e.ip, *port), node: e.node_name.clone() })
        .collect();
    endpoints.sort_unstable_by_key(|e| e.addr);
    endpoints.dedup_by_key(|e| e.addr);
    Resolution::Bound { id, consumed, endpoints }
}

/// Every endpoint of the slices that have a TCP port called `name`, with
/// that slice's number for it; None when no slice has such a port.
fn named_port<'v>(slices: &'v ServiceSlices, name: &str) -> Option<Vec<(&'v EndpointInfo, u16)>> {
    let mut found = false;
    let mut out = Vec::new();
    for slice in slices.values() {
        if let Some(p) = slice.ports.iter().find(|p| p.name == name) {
            found = true;
            out.extend(slice.endpoints.iter().map(|e| (e, p.port)));
        }
    }
    found.then_some(out)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::super::state::{ClusterStore, ServiceInfo, ServicePortInfo, SliceInfo, SlicePort};
    use super::*;

    /// `(namespace, name, labels, [(port, target)])`; a target that parses
    /// as a number is a number.
    type Svc = (&'static str, &'static str, &'static [(&'static str, &'static str)], &'static [(u16, &'static str)]);
    /// `(namespace, slice, service, [(port name, number)], [(ip, ready, serving, terminating)])`.
    type Slice = (
        &'static str,
        &'static str,
        &'static str,
        &'static [(&'static str, u16)],
        &'static [(&'static str, Option<bool>, Option<bool>, Option<bool>)],
    );

    fn view(services: &[Svc], slices: &[Slice]) -> ClusterView {
        let keys = services.iter().flat_map(|(_, _, labels, _)| labels.iter().map(|(k, _)| k.to_string()));
        let mut store = ClusterStore::keeping(Arc::new(keys.chain(["track".to_string()]).collect()));
        let services = services
            .iter()
            .map(|(ns, name, labels, ports)| {
                let info = ServiceInfo {
                    labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
                    ports: ports
                        .iter()
                        .map(|(port, target)| ServicePortInfo {
                            port: *port,
                            target: match target.parse() {
                                Ok(n) => TargetPort::Number(n),
                                Err(_) => TargetPort::Name(target.to_string()),
                            },
                        })
                        .collect(),
                };
                ((ns.to_string(), name.to_string()), info)
            })
            .collect();
        store.replace_services(services);
        let slices = slices
            .iter()
            .map(|(ns, name, service, ports, endpoints)| {
                let info = SliceInfo {
                    service: service.to_string(),
                    ports: ports.iter().map(|(n, p)| SlicePort { name: n.to_string(), port: *p }).collect(),
                    endpoints: endpoints
                        .iter()
                        .map(|(ip, ready, serving, terminating)| {
                            let ready = ready.unwrap_or(true);
                            super::super::state::EndpointInfo {
                                ip: ip.parse().unwrap(),
                                ready,
                                serving: serving.unwrap_or(ready),
                                terminating: terminating.unwrap_or(false),
                                node_name: None,
                            }
                        })
                        .collect(),
                };
                ((ns.to_string(), name.to_string()), info)
            })
            .collect();
        store.replace_slices(slices);
        store.view()
    }

    fn bound(addrs: &[&str]) -> Result<Vec<SocketAddr>, &'static str> {
        Ok(addrs.iter().map(|a| a.parse().unwrap()).collect())
    }

    const NEG: Result<Vec<SocketAddr>, &str> = Err("neg");

    fn run(view: &ClusterView, selector: Option<&str>, path: &str) -> Result<Vec<SocketAddr>, &'static str> {
        match resolve(view, selector, &Path::parse(path).unwrap()) {
            Resolution::Neg => Err("neg"),
            Resolution::Pending => Err("pending"),
            Resolution::Bound { endpoints, .. } => Ok(endpoints.into_iter().map(|e| e.addr).collect()),
        }
    }

    const READY: (Option<bool>, Option<bool>, Option<bool>) = (None, None, None);
    const NOT_READY: (Option<bool>, Option<bool>, Option<bool>) = (Some(false), Some(false), Some(false));
    const TERMINATING: (Option<bool>, Option<bool>, Option<bool>) = (Some(false), Some(true), Some(true));

    macro_rules! ep {
        ($ip:expr, $c:expr) => {
            ($ip, $c.0, $c.1, $c.2)
        };
    }

    #[test]
    fn table() {
        let services: &[Svc] = &[
            ("prod", "serviceb", &[("version", "v1")], &[(80, "http"), (81, "9091"), (82, "admin")]),
            ("prod", "empty", &[], &[(80, "http")]),
            ("prod", "zero", &[], &[(80, "http"), (81, "9091")]),
            ("prod", "draining", &[], &[(80, "http")]),
            ("prod", "split", &[], &[(80, "http")]),
            ("prod", "v6", &[], &[(80, "http")]),
        ];
        let slices: &[Slice] = &[
            (
                "prod",
                "serviceb-1",
                "serviceb",
                &[("http", 8080)],
                &[ep!("10.0.0.2", READY), ep!("10.0.0.1", READY), ep!("10.0.0.3", NOT_READY)],
            ),
            // The same name on another number in another slice.
            ("prod", "serviceb-2", "serviceb", &[("http", 8081)], &[ep!("10.0.1.1", READY)]),
            ("prod", "empty-1", "empty", &[("http", 8080)], &[ep!("10.0.2.1", NOT_READY)]),
            ("prod", "zero-1", "zero", &[], &[]),
            (
                "prod",
                "draining-1",
                "draining",
                &[("http", 8080)],
                &[ep!("10.0.3.1", TERMINATING), ep!("10.0.3.2", NOT_READY)],
            ),
            ("prod", "split-1", "split", &[("http", 8080)], &[ep!("10.0.4.1", READY), ep!("10.0.4.2", READY)]),
            ("prod", "split-2", "split", &[("http", 8080)], &[ep!("10.0.4.2", READY), ep!("10.0.4.3", READY)]),
            ("prod", "v6-1", "v6", &[("http", 8080)], &[ep!("fd00::1", READY)]),
            // Slices of a Service that does not exist (deleted; the slices
            // not yet collected).
            ("prod", "gone-1", "gone", &[("http", 8080)], &[ep!("10.0.5.1", READY)]),
        ];
        let v = view(services, slices);
        let cases: &[(&str, Result<Vec<SocketAddr>, &str>)] = &[
            // Named port, lowercased segments, slices merged, not-ready left out.
            ("/prod/http/serviceB", bound(&["10.0.0.1:8080", "10.0.0.2:8080", "10.0.1.1:8081"])),
            ("/PROD/HTTP/serviceb/extra/residual", bound(&["10.0.0.1:8080", "10.0.0.2:8080", "10.0.1.1:8081"])),
            // Numbered port: the Service port's targetPort, a name ...
            ("/prod/80/serviceb", bound(&["10.0.0.1:8080", "10.0.0.2:8080", "10.0.1.1:8081"])),
            // ... or a number, for every endpoint.
            ("/prod/81/serviceb", bound(&["10.0.0.1:9091", "10.0.0.2:9091", "10.0.1.1:9091"])),
            // A targetPort name no slice has; a port the Service lacks; a
            // port name no slice has.
            ("/prod/82/serviceb", NEG),
            ("/prod/83/serviceb", NEG),
            ("/prod/grpc/serviceb", NEG),
            // No such Service, even with slices; no such namespace.
            ("/prod/http/gone", NEG),
            ("/staging/http/serviceb", NEG),
            // Too short.
            ("/prod/http", NEG),
            // Endpoints that exist but none ready: bound, empty.
            ("/prod/http/empty", bound(&[])),
            // Scaled to zero: no ports in the slices, so a named port is
            // negative; a numbered port with a numeric target binds (empty),
            // as linkerd's does.
            ("/prod/http/zero", NEG),
            ("/prod/80/zero", NEG),
            ("/prod/81/zero", bound(&[])),
            // Nothing ready: serving-and-terminating endpoints are used.
            ("/prod/http/draining", bound(&["10.0.3.1:8080"])),
            // An endpoint in two slices (mid-move) counts once.
            ("/prod/http/split", bound(&["10.0.4.1:8080", "10.0.4.2:8080", "10.0.4.3:8080"])),
            ("/prod/http/v6", bound(&["[fd00::1]:8080"])),
        ];
        for (path, want) in cases {
            assert_eq!(&run(&v, None, path), want, "{path}");
        }
    }

    #[test]
    fn ids_and_residuals() {
        let v = view(&[("prod", "serviceb", &[], &[(80, "8080")])], &[]);
        let Resolution::Bound { id, consumed, .. } = resolve(&v, None, &Path::parse("/Prod/80/ServiceB/a/B").unwrap())
        else {
            panic!()
        };
        assert_eq!(id, vec!["prod", "80", "serviceb"]);
        assert_eq!(consumed, 3);
    }

    #[test]
    fn label_selector_takes_the_segment_after_the_service() {
        let services: &[Svc] = &[("prod", "web", &[("version", "v1")], &[(80, "http")])];
        let slices: &[Slice] = &[("prod", "web-1", "web", &[("http", 8080)], &[ep!("10.0.0.1", READY)])];
        let v = view(services, slices);
        assert_eq!(run(&v, Some("version"), "/prod/http/web/v1"), bound(&["10.0.0.1:8080"]));
        assert_eq!(run(&v, Some("version"), "/prod/http/web/V1/rest"), bound(&["10.0.0.1:8080"]));
        assert_eq!(run(&v, Some("version"), "/prod/http/web/v2"), NEG);
        assert_eq!(run(&v, Some("version"), "/prod/http/web"), NEG, "the label value is required");
        assert_eq!(run(&v, Some("track"), "/prod/http/web/v1"), NEG, "a Service without the label");
        assert_eq!(run(&v, Some("tier"), "/prod/http/web/v1"), Err("pending"), "a key not listed with");
        let Resolution::Bound { consumed, .. } =
            resolve(&v, Some("version"), &Path::parse("/prod/http/web/v1/rest").unwrap())
        else {
            panic!()
        };
        assert_eq!(consumed, 4);
    }

    #[test]
    fn nothing_is_negative_before_the_first_list() {
        let v = ClusterView::default();
        assert_eq!(run(&v, None, "/prod/http/web"), Err("pending"));
        assert_eq!(run(&v, None, "/prod/http"), NEG, "too short is negative whatever the state");
        let _ = Arc::new(v);
    }
}
