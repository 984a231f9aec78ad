//! The `io.l5d.k8s` namer through the real binary, against the test
//! Kubernetes API server (`crates/k8s-testapi`), on every I/O backend.
//!
//! The "pods" are tiny HTTP servers on distinct loopback addresses
//! (127.0.0.2, 127.0.0.3, …) sharing one port, as a Deployment's pods share
//! their container port; each answers with its own address, so a test sees
//! which endpoint served a request. Everything is on loopback and every wait
//! is bounded.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::certs::api_server_certificates;
use common::named::{ask, pods_on, served_by, wait_for, wait_served_by, Answer, NamedServer as Pod};
use common::{backends, Corelink};
use k8s_testapi::objects::{self, Endpoint, ServicePort, TargetPort};
use k8s_testapi::{ApiServer, WatchFault};

// ------------------------------------------------------------------ pods

/// The address of the `i`th pod: 127.0.0.2, 127.0.0.3, …
fn pod_ip(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, (i / 250) as u8, (2 + i % 250) as u8))
}

/// `n` pods on 127.0.0.2, 127.0.0.3, … sharing one port.
fn pods(n: usize) -> Vec<Pod> {
    pods_on(&(0..n).map(pod_ip).collect::<Vec<_>>())
}

// ------------------------------------------------------------ traffic

/// Requests sent back to back from another thread until stopped: each one's
/// send time and result.
struct Load {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Vec<(Instant, Answer)>>,
}

impl Load {
    fn start(addr: SocketAddr, host: &str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let (st, host) = (stop.clone(), host.to_string());
        let handle = std::thread::spawn(move || {
            let mut out = Vec::new();
            while !st.load(Ordering::SeqCst) {
                let at = Instant::now();
                out.push((at, ask(addr, &host)));
                std::thread::sleep(Duration::from_millis(2));
            }
            out
        });
        Load { stop, handle }
    }

    fn finish(self) -> Vec<(Instant, Answer)> {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().unwrap()
    }
}

fn failures(samples: &[(Instant, Answer)]) -> Vec<&Answer> {
    samples.iter().map(|(_, r)| r).filter(|r| !matches!(r, Ok((200, _)))).collect()
}

/// Whether `pod` served a request that was sent more than a second after
/// `gone` (when the API server showed it gone).
fn assert_not_served_after(pod: &Pod, gone: Instant, what: &str) {
    if let Some(last) = pod.last_served() {
        assert!(
            last <= gone + Duration::from_secs(1),
            "{what}: {} served {:?} after the API server showed it gone",
            pod.ip(),
            last.duration_since(gone)
        );
    }
}

// ------------------------------------------------------------ objects

fn http_service(name: &str) -> serde_json::Value {
    objects::service(
        "prod",
        name,
        &[ServicePort { name: Some("http"), port: 80, target_port: TargetPort::Name("http") }],
    )
}

fn slice(name: &str, service: &str, port: u16, ready: &[&Pod]) -> serde_json::Value {
    let endpoints: Vec<Endpoint> = ready.iter().map(|p| Endpoint::ready(&p.ip())).collect();
    objects::endpoint_slice("prod", name, service, &[(Some("http"), port)], &endpoints)
}

fn config(api: SocketAddr, namer_extra: &str, dtab: &str) -> String {
    format!(
        "admin:\n  port: 0\nnamers:\n- kind: io.l5d.k8s\n  host: {}\n  port: {}\n{namer_extra}routers:\n- protocol: http\n  label: out\n  dtab: |\n{}\n  servers:\n  - port: 0\ncorelink:\n  workers: 2\n  shutdownDelayMs: 0\n",
        api.ip(),
        api.port(),
        dtab.lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n"),
    )
}

const NS_DTAB: &str = "/svc => /ns/prod/http;\n/ns => /#/io.l5d.k8s;";

fn watch_metric(corelink: &Corelink, api: SocketAddr, resource: &str, name: &str) -> f64 {
    corelink.metric_ending(&format!("namer/io.l5d.k8s/{api}/{resource}/{name}"))
}

// -------------------------------------------------------------- tests

#[test]
fn the_write_ups_name_resolves_through_the_dtab_to_the_service() {
    for io in backends() {
        let api = ApiServer::start();
        let pods = pods(1);
        let port = pods[0].addr.port();
        api.apply(objects::service(
            "prod",
            "serviceb",
            &[ServicePort { name: Some("router"), port: 4141, target_port: TargetPort::Name("router") }],
        ));
        api.apply(objects::endpoint_slice(
            "prod",
            "serviceb-x1",
            "serviceb",
            &[(Some("router"), port)],
            &[Endpoint::ready(&pods[0].ip())],
        ));
        let corelink = Corelink::start(&config(api.addr(), "", "/svc => /ns/prod/router;\n/ns => /#/io.l5d.k8s;"), io);
        // /svc/serviceB → /ns/prod/router/serviceB → /#/io.l5d.k8s/prod/router/serviceB,
        // which finds the Service `serviceb` (segments are lowercased).
        assert_eq!(served_by(corelink.addr(), "serviceB"), pods[0].ip(), "{io}");
        let watches = api.requests().into_iter().filter(|r| r.is_watch()).collect::<Vec<_>>();
        assert!(
            watches.iter().any(|r| r.path == "/apis/discovery.k8s.io/v1/endpointslices"
                && r.query_param("allowWatchBookmarks").as_deref() == Some("true")
                && r.query_param("labelSelector").as_deref() == Some("kubernetes.io/service-name")
                && r.query_param("resourceVersion").is_some()),
            "{io}: {watches:?}"
        );
        assert_eq!(watch_metric(&corelink, api.addr(), "endpointslices", "synced"), 1.0, "{io}");
    }
}

#[test]
fn scaling_from_one_to_three_endpoints_and_back_under_load_fails_nothing() {
    for io in backends() {
        let api = ApiServer::start();
        let pods = pods(3);
        let port = pods[0].addr.port();
        api.apply(http_service("web"));
        api.apply(slice("web-a", "web", port, &[&pods[0]]));
        let corelink = Corelink::start(&config(api.addr(), "", NS_DTAB), io);
        let load = Load::start(corelink.addr(), "web");
        std::thread::sleep(Duration::from_millis(200));
        api.apply(slice("web-a", "web", port, &[&pods[0], &pods[1], &pods[2]]));
        let up = Instant::now();
        while pods.iter().any(|p| p.last_served().is_none_or(|t| t < up)) {
            assert!(up.elapsed() < Duration::from_secs(3), "{io}: not every new endpoint served");
            std::thread::sleep(Duration::from_millis(10));
        }
        let scale_up = up.elapsed();
        // Scale back: the two pods leave the slice but keep serving a while,
        // as terminating pods do during their grace period.
        api.apply(slice("web-a", "web", port, &[&pods[0]]));
        let down = Instant::now();
        std::thread::sleep(Duration::from_millis(1500));
        let samples = load.finish();
        assert!(samples.len() > 100, "{io}: only {} requests", samples.len());
        assert!(failures(&samples).is_empty(), "{io}: failed: {:?}", failures(&samples));
        for pod in &pods[1..] {
            assert_not_served_after(pod, down, io);
        }
        eprintln!("{io}: {} requests, all served; 3 endpoints serving {scale_up:?} after the change", samples.len());
    }
}

#[test]
fn a_service_split_over_two_slices_is_served_by_both() {
    for io in backends() {
        let api = ApiServer::start();
        let pods = pods(120);
        let port = pods[0].addr.port();
        api.apply(http_service("big"));
        let first: Vec<&Pod> = pods[..100].iter().collect();
        api.apply(slice("big-a", "big", port, &first));
        let corelink = Corelink::start(&config(api.addr(), "", NS_DTAB), io);
        assert!(served_by(corelink.addr(), "big").starts_with("127.0."), "{io}");
        // Scaled to 120: the controller keeps 100 per slice and adds a
        // second slice for the rest.
        let second: Vec<&Pod> = pods[100..].iter().collect();
        api.apply(slice("big-b", "big", port, &second));
        let start = Instant::now();
        let mut seen = std::collections::HashSet::new();
        while !second.iter().any(|p| seen.contains(&p.ip())) {
            assert!(start.elapsed() < Duration::from_secs(5), "{io}: no endpoint of the second slice served");
            seen.insert(served_by(corelink.addr(), "big"));
        }
        // Each slice counts on its own: removing the second leaves the first.
        api.delete("EndpointSlice", "prod", "big-b");
        let gone = Instant::now();
        std::thread::sleep(Duration::from_millis(1100));
        for _ in 0..200 {
            let ip = served_by(corelink.addr(), "big");
            assert!(first.iter().any(|p| p.ip() == ip), "{io}: {ip} served after its slice was deleted");
        }
        for pod in &second {
            assert_not_served_after(pod, gone, io);
        }
    }
}

#[test]
fn a_dropped_watch_and_a_410_gone_recover_without_a_restart() {
    for io in backends() {
        let api = ApiServer::start();
        let pods = pods(2);
        let port = pods[0].addr.port();
        api.apply(http_service("web"));
        api.apply(slice("web-a", "web", port, &[&pods[0]]));
        let corelink = Corelink::start(&config(api.addr(), "", NS_DTAB), io);
        let load = Load::start(corelink.addr(), "web");
        wait_served_by(corelink.addr(), "web", &pods[0].ip(), Duration::from_secs(2));

        // A watch cut mid-stream: reconnected at once, from where it was.
        api.drop_watches();
        api.apply(slice("web-a", "web", port, &[&pods[1]]));
        let gone = Instant::now();
        let took = wait_served_by(corelink.addr(), "web", &pods[1].ip(), Duration::from_secs(2));
        std::thread::sleep(Duration::from_millis(1100));
        assert_not_served_after(&pods[0], gone, io);
        eprintln!("{io}: after a dropped watch, the change served in {took:?}");

        // The watch cut, a change made meanwhile, the history compacted past
        // it: resuming from the last version seen gets 410 Gone, so the namer
        // lists again.
        api.set_available(false);
        api.apply(slice("web-a", "web", port, &[&pods[0]]));
        api.expire_history();
        let gone = Instant::now();
        api.set_available(true);
        let took = wait_served_by(corelink.addr(), "web", &pods[0].ip(), Duration::from_secs(2));
        std::thread::sleep(Duration::from_millis(1100));
        assert_not_served_after(&pods[1], gone, io);
        eprintln!("{io}: after 410 Gone, the change served in {took:?}");

        let samples = load.finish();
        assert!(failures(&samples).is_empty(), "{io}: failed: {:?}", failures(&samples));
        assert!(watch_metric(&corelink, api.addr(), "endpointslices", "reconnects") >= 2.0, "{io}");
        assert!(watch_metric(&corelink, api.addr(), "endpointslices", "relists") >= 1.0, "{io}");
        let relists: Vec<_> = api
            .requests()
            .into_iter()
            .filter(|r| r.path == "/apis/discovery.k8s.io/v1/endpointslices" && !r.is_watch())
            .collect();
        assert!(relists.len() >= 2, "{io}: the 410 made a new list: {relists:?}");
        let logs = corelink.stderr_lines().join("\n");
        assert!(logs.contains("io.l5d.k8s: watch"), "{io}: restarts are logged:\n{logs}");
        assert!(logs.contains("410"), "{io}: the 410 is logged:\n{logs}");
    }
}

#[test]
fn watches_answered_with_an_error_event_list_again_with_backoff_instead_of_spinning() {
    for io in backends() {
        let api = ApiServer::start();
        let pods = pods(2);
        let port = pods[0].addr.port();
        api.apply(http_service("web"));
        api.apply(slice("web-a", "web", port, &[&pods[0]]));
        let corelink = Corelink::start(&config(api.addr(), "", NS_DTAB), io);
        wait_served_by(corelink.addr(), "web", &pods[0].ip(), Duration::from_secs(2));

        // Every watch now gets the ERROR event kube-apiserver sends when the
        // version is ahead of it (`504 Too large resource version`); resuming
        // from that version can never work, so the change below is seen only
        // by listing again.
        api.fail_watches(Some(WatchFault::VersionAhead));
        api.drop_watches();
        api.apply(slice("web-a", "web", port, &[&pods[1]]));
        let took = wait_served_by(corelink.addr(), "web", &pods[1].ip(), Duration::from_secs(4));
        eprintln!("{io}: with every watch failing, the change served in {took:?} by listing again");
        // And the retries back off (up to 2 s apart) rather than spin.
        let watches = || api.requests().iter().filter(|r| r.is_watch()).count();
        let before = watches();
        std::thread::sleep(Duration::from_secs(2));
        let during = watches() - before;
        assert!(during <= 12, "{io}: {during} watch requests in 2 s");
        assert!(watch_metric(&corelink, api.addr(), "endpointslices", "errors") >= 1.0, "{io}");
        assert!(watch_metric(&corelink, api.addr(), "endpointslices", "relists") >= 1.0, "{io}");
        let logs = corelink.stderr_lines().join("\n");
        assert!(logs.contains("error event 504 Timeout: Too large resource version"), "{io}: logged:\n{logs}");

        // Healthy again: the next watch holds and delivers changes.
        api.fail_watches(None);
        let healthy = Instant::now();
        while api.open_watches() < 2 {
            assert!(healthy.elapsed() < Duration::from_secs(4), "{io}: not watching again");
            std::thread::sleep(Duration::from_millis(10));
        }
        api.apply(slice("web-a", "web", port, &[&pods[0]]));
        wait_served_by(corelink.addr(), "web", &pods[0].ip(), Duration::from_secs(2));
    }
}

#[test]
fn while_the_api_server_is_down_known_endpoints_keep_serving() {
    for io in backends() {
        let api = ApiServer::start();
        let pods = pods(2);
        let port = pods[0].addr.port();
        api.apply(http_service("web"));
        api.apply(slice("web-a", "web", port, &[&pods[0]]));
        let corelink = Corelink::start(&config(api.addr(), "", NS_DTAB), io);
        let load = Load::start(corelink.addr(), "web");
        api.set_available(false);
        std::thread::sleep(Duration::from_millis(1500));
        assert!(watch_metric(&corelink, api.addr(), "endpointslices", "errors") >= 1.0, "{io}");
        let age = watch_metric(&corelink, api.addr(), "endpointslices", "last_event_age_ms");
        assert!(age >= 1000.0, "{io}: the age of the last event grows while down: {age}");
        api.apply(slice("web-a", "web", port, &[&pods[1]]));
        api.set_available(true);
        // Retried at most 2 s apart (the backoff's cap).
        let took = wait_served_by(corelink.addr(), "web", &pods[1].ip(), Duration::from_secs(4));
        let samples = load.finish();
        assert!(failures(&samples).is_empty(), "{io}: failed: {:?}", failures(&samples));
        eprintln!("{io}: the API server back, the change served in {took:?}");
        api.bookmark();
        std::thread::sleep(Duration::from_millis(100));
        let age = watch_metric(&corelink, api.addr(), "endpointslices", "last_event_age_ms");
        assert!(age < 1000.0, "{io}: a bookmark counts as a sign of life: {age}");
    }
}

#[test]
fn a_deleted_service_falls_back_through_the_dtab() {
    for io in backends() {
        let api = ApiServer::start();
        let pods = pods(1);
        let fallback = Pod::start("127.0.0.1");
        let port = pods[0].addr.port();
        api.apply(http_service("web"));
        api.apply(slice("web-a", "web", port, &[&pods[0]]));
        let dtab =
            format!("/svc => /ns/prod/http | /$/inet/127.0.0.1/{};\n/ns => /#/io.l5d.k8s;", fallback.addr.port());
        let corelink = Corelink::start(&config(api.addr(), "", &dtab), io);
        assert_eq!(served_by(corelink.addr(), "web"), pods[0].ip(), "{io}");
        assert_eq!(served_by(corelink.addr(), "nosuchservice"), "127.0.0.1", "{io}: a missing Service is `~`");
        // Endpoints all not ready: bound but empty, so no fall-back.
        api.apply(objects::endpoint_slice(
            "prod",
            "web-a",
            "web",
            &[(Some("http"), port)],
            &[Endpoint::not_ready(&pods[0].ip())],
        ));
        wait_for(corelink.addr(), "web", Duration::from_secs(1), |r| matches!(r, Ok((s, _)) if *s >= 500));
        // Ready again, then the Service deleted: falls back within a second.
        api.apply(slice("web-a", "web", port, &[&pods[0]]));
        wait_served_by(corelink.addr(), "web", &pods[0].ip(), Duration::from_secs(1));
        api.delete("Service", "prod", "web");
        api.delete("EndpointSlice", "prod", "web-a");
        let gone = Instant::now();
        let took = wait_served_by(corelink.addr(), "web", "127.0.0.1", Duration::from_secs(1));
        std::thread::sleep(Duration::from_millis(1100));
        assert_not_served_after(&pods[0], gone, io);
        eprintln!("{io}: the deleted Service fell back in {took:?}");
    }
}

#[test]
fn label_selector_binds_only_services_carrying_the_label() {
    for io in backends() {
        let api = ApiServer::start();
        let pods = pods(1);
        let fallback = Pod::start("127.0.0.1");
        let port = pods[0].addr.port();
        let mut service = http_service("web");
        service["metadata"]["labels"]["version"] = serde_json::json!("v1");
        api.apply(service.clone());
        api.apply(slice("web-a", "web", port, &[&pods[0]]));
        // Host v1 → /svc/v1 → /#/io.l5d.k8s/prod/http/web/v1.
        let dtab = format!("/svc => /#/io.l5d.k8s/prod/http/web | /$/inet/127.0.0.1/{};", fallback.addr.port());
        let corelink = Corelink::start(&config(api.addr(), "  labelSelector: version\n", &dtab), io);
        assert_eq!(served_by(corelink.addr(), "v1"), pods[0].ip(), "{io}");
        assert_eq!(served_by(corelink.addr(), "V1"), pods[0].ip(), "{io}: the label value is lowercased too");
        assert_eq!(served_by(corelink.addr(), "v2"), "127.0.0.1", "{io}");
        service["metadata"]["labels"]["version"] = serde_json::json!("v2");
        api.apply(service);
        wait_served_by(corelink.addr(), "v1", "127.0.0.1", Duration::from_secs(1));
        assert_eq!(served_by(corelink.addr(), "v2"), pods[0].ip(), "{io}");
    }
}

#[test]
fn a_reload_adding_a_label_selector_lists_again_while_known_names_keep_serving() {
    for io in backends() {
        let api = ApiServer::start();
        let pods = pods(1);
        let fallback = Pod::start("127.0.0.1");
        let port = pods[0].addr.port();
        let mut service = http_service("web");
        service["metadata"]["labels"]["version"] = serde_json::json!("v1");
        api.apply(service);
        api.apply(slice("web-a", "web", port, &[&pods[0]]));
        let corelink = Corelink::start(&config(api.addr(), "", NS_DTAB), io);
        assert_eq!(served_by(corelink.addr(), "web"), pods[0].ip(), "{io}");
        let load = Load::start(corelink.addr(), "web");
        std::thread::sleep(Duration::from_millis(100));
        // A second namer on the same API server reads the label `version`,
        // which the Services were listed without (no namer read a label).
        let dtab =
            format!("{NS_DTAB}\n/svc/v1 => /#/k8sv/prod/http/web/v1 | /$/inet/127.0.0.1/{};", fallback.addr.port());
        let namer = format!(
            "- kind: io.l5d.k8s\n  prefix: /k8sv\n  host: {}\n  port: {}\n  labelSelector: version\n",
            api.addr().ip(),
            api.addr().port()
        );
        let text = config(api.addr(), &namer, &dtab);
        let (path, tmp) = (corelink.dir.path().join("corelink.yaml"), corelink.dir.path().join("corelink.yaml.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        // Bound (not `~`, which would fall back) once listed with the label.
        let took = wait_served_by(corelink.addr(), "v1", &pods[0].ip(), Duration::from_secs(5));
        eprintln!("{io}: the new labelSelector served {took:?} after the reload");
        assert!(fallback.last_served().is_none(), "{io}: the label was taken for missing");
        let samples = load.finish();
        assert!(failures(&samples).is_empty(), "{io}: known names kept serving: {:?}", failures(&samples));
    }
}

#[test]
fn named_and_numbered_ports() {
    for io in backends() {
        let api = ApiServer::start();
        let pods = pods(1);
        let fallback = Pod::start("127.0.0.1");
        let port = pods[0].addr.port();
        api.apply(objects::service(
            "prod",
            "web",
            &[
                // A numbered Service port whose target is a container port name ...
                ServicePort { name: Some("http"), port: 80, target_port: TargetPort::Name("http") },
                // ... and one whose target is a number.
                ServicePort { name: Some("direct"), port: 8080, target_port: TargetPort::Number(port) },
            ],
        ));
        api.apply(slice("web-a", "web", port, &[&pods[0]]));
        let fb = fallback.addr.port();
        let dtab = format!(
            "/svc/named => /#/io.l5d.k8s/prod/http/web;\n/svc/number => /#/io.l5d.k8s/prod/80/web;\n/svc/target => /#/io.l5d.k8s/prod/8080/web;\n/svc/noport => /#/io.l5d.k8s/prod/81/web | /$/inet/127.0.0.1/{fb};\n/svc/noname => /#/io.l5d.k8s/prod/grpc/web | /$/inet/127.0.0.1/{fb};"
        );
        let corelink = Corelink::start(&config(api.addr(), "", &dtab), io);
        for host in ["named", "number", "target"] {
            assert_eq!(served_by(corelink.addr(), host), pods[0].ip(), "{io}: {host}");
        }
        for host in ["noport", "noname"] {
            assert_eq!(served_by(corelink.addr(), host), "127.0.0.1", "{io}: {host} is `~`");
        }
        // Scaled to zero, the slice has no ports: the named port is gone.
        api.apply(objects::endpoint_slice("prod", "web-a", "web", &[], &[]));
        wait_for(corelink.addr(), "named", Duration::from_secs(1), |r| matches!(r, Ok((s, _)) if *s >= 500));
    }
}

// ------------------------------------------------------- in-cluster TLS

#[test]
fn in_cluster_over_tls_with_a_bearer_token_that_rotates() {
    for io in backends() {
        let (ca, cert, key) = api_server_certificates();
        let api = ApiServer::start_tls(&cert, &key, "token-one");
        let dir = common::tempdir::Dir::new("k8s-sa");
        let (token_path, ca_path) = (dir.path().join("token"), dir.path().join("ca.crt"));
        std::fs::write(&token_path, "token-one\n").unwrap();
        std::fs::write(&ca_path, &ca).unwrap();
        let pods = pods(2);
        let port = pods[0].addr.port();
        api.apply(http_service("web"));
        api.apply(slice("web-a", "web", port, &[&pods[0]]));
        let text = format!(
            "admin:\n  port: 0\nnamers:\n- kind: io.l5d.k8s\n  inCluster: true\n  tokenPath: {}\n  caCertPath: {}\nrouters:\n- protocol: http\n  dtab: |\n    /svc => /#/io.l5d.k8s/prod/http;\n  servers:\n  - port: 0\ncorelink:\n  workers: 2\n  shutdownDelayMs: 0\n",
            token_path.display(),
            ca_path.display()
        );
        let api_port = api.addr().port().to_string();
        let env = [("KUBERNETES_SERVICE_HOST", "127.0.0.1"), ("KUBERNETES_SERVICE_PORT", api_port.as_str())];
        let corelink = Corelink::start_with_env(&text, io, &env);
        assert_eq!(served_by(corelink.addr(), "web"), pods[0].ip(), "{io}");
        assert!(
            api.requests().iter().all(|r| r.authorization.as_deref() == Some("Bearer token-one")),
            "{io}: every request carries the token"
        );
        // The kubelet rotates the token file; the API server takes only the
        // new token from now on; open watches go on, the next requests use
        // the new token.
        std::fs::write(&token_path, "token-two\n").unwrap();
        api.set_token("token-two");
        let before = api.requests().len();
        api.drop_watches();
        api.apply(slice("web-a", "web", port, &[&pods[1]]));
        wait_served_by(corelink.addr(), "web", &pods[1].ip(), Duration::from_secs(2));
        let later = &api.requests()[before..];
        assert!(!later.is_empty(), "{io}");
        assert!(later.iter().all(|r| r.authorization.as_deref() == Some("Bearer token-two")), "{io}: {later:?}");
    }
}
