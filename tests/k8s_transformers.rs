//! The `io.l5d.k8s.daemonset` and `io.l5d.k8s.localnode` transformers
//! through the real binary, against the test Kubernetes API server
//! (`crates/k8s-testapi`), on every I/O backend.
//!
//! Loopback stands in for the cluster: "node a" is 127.0.1.0/24 and "node b"
//! 127.0.2.0/24 (each Kubernetes node has its own pod /24, which is what the
//! transformers rely on); endpoints also carry `nodeName: a` or `b`. The
//! "pods" are tiny HTTP servers answering with their own address, so a test
//! sees which one served a request. Every wait is bounded.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::named::{ask, pods_on, wait_for, Answer, NamedServer as Pod};
use common::{backends, client, Corelink};
use k8s_testapi::objects::{self, Endpoint, ServicePort, TargetPort};
use k8s_testapi::ApiServer;

// ------------------------------------------------------------------ pods

/// Pods on each of `ips`, sharing one port (as a DaemonSet's or a
/// Deployment's pods share their container port).
fn pods(ips: &[&str]) -> Vec<Pod> {
    pods_on(&ips.iter().map(|ip| ip.parse().unwrap()).collect::<Vec<_>>())
}

// ------------------------------------------------------------ traffic

/// Who served `n` requests (a 200's body), as a sorted set; a panic for
/// anything else.
fn served_by(addr: SocketAddr, host: &str, n: usize) -> Vec<String> {
    let mut seen: Vec<String> = (0..n)
        .map(|_| match ask(addr, host) {
            Ok((200, body)) => body,
            other => panic!("{host}: {other:?}"),
        })
        .collect();
    seen.sort();
    seen.dedup();
    seen
}

/// Asks until `n` requests in a row are all 200s served by exactly `want`
/// (a sorted set), within `limit`; returns how long it took.
fn wait_only(addr: SocketAddr, host: &str, want: &[String], limit: Duration) -> Duration {
    let start = Instant::now();
    let mut last = Vec::new();
    while start.elapsed() < limit {
        let mut seen: Vec<Answer> = (0..10).map(|_| ask(addr, host)).collect();
        if seen.iter().all(|r| matches!(r, Ok((200, _)))) {
            let mut bodies: Vec<String> = seen.drain(..).filter_map(|r| r.ok().map(|(_, b)| b)).collect();
            bodies.sort();
            bodies.dedup();
            if bodies == want {
                return start.elapsed();
            }
        }
        last = seen;
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("{host}: not served by exactly {want:?} within {limit:?}; last answers {last:?}");
}

// ------------------------------------------------------------ objects

/// The application Service `prod/web` (named port `http`) and its slice.
fn web(api: &ApiServer, port: u16, endpoints: &[Endpoint]) {
    api.apply(objects::service(
        "prod",
        "web",
        &[ServicePort { name: Some("http"), port: 80, target_port: TargetPort::Name("http") }],
    ));
    api.apply(objects::endpoint_slice("prod", "web-1", "web", &[(Some("http"), port)], endpoints));
}

/// The DaemonSet's Service `linkerd/l5d` (named port `incoming`, Service
/// port 4141) and its slice.
fn daemonset(api: &ApiServer, port: u16, endpoints: &[Endpoint]) {
    api.apply(objects::service(
        "linkerd",
        "l5d",
        &[ServicePort { name: Some("incoming"), port: 4141, target_port: TargetPort::Name("incoming") }],
    ));
    api.apply(objects::endpoint_slice("linkerd", "l5d-1", "l5d", &[(Some("incoming"), port)], endpoints));
}

fn on(ip: &str, node: &str) -> Endpoint {
    Endpoint::ready(ip).on_node(node)
}

/// A k8s namer on `api` (with `namer_extra` lines), one router sending
/// `/svc/<service>` to `prod/http/<service>`, with `router_extra` lines.
fn config(api: SocketAddr, namer_extra: &str, router_extra: &str) -> String {
    format!(
        "admin:\n  port: 0\nnamers:\n- kind: io.l5d.k8s\n  host: {}\n  port: {}\n{namer_extra}routers:\n- protocol: http\n  label: out\n  dtab: /svc => /#/io.l5d.k8s/prod/http;\n{router_extra}  servers:\n  - port: 0\ncorelink:\n  workers: 2\n  shutdownDelayMs: 0\n",
        api.ip(),
        api.port(),
    )
}

/// The router's interpreter with one daemonset transformer on `api`.
fn daemonset_interpreter(api: SocketAddr, extra: &str) -> String {
    format!(
        "  interpreter:\n    transformers:\n    - kind: io.l5d.k8s.daemonset\n      namespace: linkerd\n      service: l5d\n      port: incoming\n      k8sHost: {}\n      k8sPort: {}\n{extra}",
        api.ip(),
        api.port()
    )
}

// -------------------------------------------------------------- tests

#[test]
fn daemonset_by_subnet_sends_to_the_pod_on_the_endpoints_node_and_follows_it() {
    for io in backends() {
        let api = ApiServer::start();
        let apps = pods(&["127.0.1.10", "127.0.2.10"]);
        let ds = pods(&["127.0.1.2", "127.0.2.2", "127.0.1.3"]);
        let (app_port, ds_port) = (apps[0].addr.port(), ds[0].addr.port());
        // The app on node a only; the DaemonSet on both nodes.
        web(&api, app_port, &[on("127.0.1.10", "a")]);
        daemonset(&api, ds_port, &[on("127.0.1.2", "a"), on("127.0.2.2", "b")]);
        let corelink = Corelink::start(&config(api.addr(), "", &daemonset_interpreter(api.addr(), "")), io);
        assert_eq!(served_by(corelink.addr(), "web", 20), [ds[0].ip()], "{io}: node a's DaemonSet pod");
        // The client name carries linkerd's transformer prefix.
        let client = "client/%/io.l5d.k8s.daemonset/linkerd/incoming/l5d/#/io.l5d.k8s/prod/http/web/requests";
        assert!(corelink.metric_ending(client) >= 20.0, "{io}");
        // linkerd's delegator shows the transformation.
        let rsp = client::get(corelink.admin, "/delegator.json?path=/svc/web", &corelink.admin.to_string()).unwrap();
        let body = String::from_utf8_lossy(&rsp.body);
        assert!(
            body.contains("\"type\":\"transformation\",\"path\":\"/#/io.l5d.k8s/prod/http/web\"")
                && body.contains("\"name\":\"io.l5d.k8s.daemonset\"")
                && body.contains("\"id\":\"/%/io.l5d.k8s.daemonset/linkerd/incoming/l5d/#/io.l5d.k8s/prod/http/web\""),
            "{io}: {body}"
        );

        // Endpoints on both nodes: both DaemonSet pods, each once.
        web(&api, app_port, &[on("127.0.1.10", "a"), on("127.0.1.11", "a"), on("127.0.2.10", "b")]);
        wait_only(corelink.addr(), "web", &[ds[0].ip(), ds[1].ip()], Duration::from_secs(1));

        // Node a's DaemonSet pod moves (rescheduled with a new IP): followed
        // within a second, the old one no longer used.
        web(&api, app_port, &[on("127.0.1.10", "a")]);
        wait_only(corelink.addr(), "web", &[ds[0].ip()], Duration::from_secs(1));
        daemonset(&api, ds_port, &[on("127.0.1.3", "a"), on("127.0.2.2", "b")]);
        let took = wait_only(corelink.addr(), "web", &[ds[2].ip()], Duration::from_secs(1));

        // No DaemonSet pod on node a: its endpoint is dropped; nothing left
        // is no hosts (502).
        daemonset(&api, ds_port, &[on("127.0.2.2", "b")]);
        wait_for(corelink.addr(), "web", Duration::from_secs(1), |r| matches!(r, Ok((502, _))));
        web(&api, app_port, &[on("127.0.1.10", "a"), on("127.0.2.10", "b")]);
        wait_only(corelink.addr(), "web", &[ds[1].ip()], Duration::from_secs(1));
        eprintln!("{io}: DaemonSet pod move followed in {took:?}");
    }
}

#[test]
fn daemonset_with_host_network_matches_node_names_on_another_api_server() {
    for io in backends() {
        // The app on one API server (the namer's), the DaemonSet on another:
        // the transformer's k8sHost/k8sPort are watched too.
        let api = ApiServer::start();
        let ds_api = ApiServer::start();
        let apps = pods(&["127.0.1.10", "127.0.2.10"]);
        // hostNetwork pods: the nodes' own addresses, all in one /24 here so
        // only the node names can tell them apart.
        let ds = pods(&["127.0.3.1", "127.0.3.2"]);
        web(&api, apps[0].addr.port(), &[on("127.0.1.10", "a")]);
        daemonset(&ds_api, ds[0].addr.port(), &[on("127.0.3.1", "a"), on("127.0.3.2", "b")]);
        let interpreter = daemonset_interpreter(ds_api.addr(), "      hostNetwork: true\n");
        let corelink = Corelink::start(&config(api.addr(), "", &interpreter), io);
        assert_eq!(served_by(corelink.addr(), "web", 20), [ds[0].ip()], "{io}");
        // The endpoint now on node b: node b's pod.
        web(&api, apps[0].addr.port(), &[on("127.0.1.10", "b")]);
        wait_only(corelink.addr(), "web", &[ds[1].ip()], Duration::from_secs(1));
        assert!(ds_api.requests().iter().any(|r| r.is_watch()), "{io}: the DaemonSet's API server is watched");
    }
}

#[test]
fn localnode_keeps_only_this_nodes_endpoints() {
    for io in backends() {
        let api = ApiServer::start();
        let apps = pods(&["127.0.1.10", "127.0.1.11", "127.0.2.10"]);
        let port = apps[0].addr.port();
        web(&api, port, &[on("127.0.1.10", "a"), on("127.0.1.11", "a"), on("127.0.2.10", "b")]);

        // By POD_IP's /24, on the namer's transformers.
        let namer = "  transformers:\n  - kind: io.l5d.k8s.localnode\n";
        let corelink = Corelink::start_with_env(&config(api.addr(), namer, ""), io, &[("POD_IP", "127.0.1.99")]);
        assert_eq!(served_by(corelink.addr(), "web", 40), [apps[0].ip(), apps[1].ip()], "{io}");
        let client = "client/%/io.l5d.k8s.localnode/127.0.1.99/#/io.l5d.k8s/prod/http/web/requests";
        assert!(corelink.metric_ending(client) >= 40.0, "{io}");
        // An endpoint leaving the service is no longer used.
        web(&api, port, &[on("127.0.1.10", "a"), on("127.0.2.10", "b")]);
        wait_only(corelink.addr(), "web", &[apps[0].ip()], Duration::from_secs(1));
        drop(corelink);

        // By NODE_NAME, in the router's interpreter.
        let interpreter = "  interpreter:\n    transformers:\n    - {kind: io.l5d.k8s.localnode, hostNetwork: true}\n";
        let corelink = Corelink::start_with_env(&config(api.addr(), "", interpreter), io, &[("NODE_NAME", "b")]);
        assert_eq!(served_by(corelink.addr(), "web", 20), [apps[2].ip()], "{io}");
        // Nothing on this node: no hosts.
        web(&api, port, &[on("127.0.1.10", "a")]);
        wait_for(corelink.addr(), "web", Duration::from_secs(1), |r| matches!(r, Ok((502, _))));
    }
}

#[test]
fn transformers_compose_in_order_namer_first() {
    for io in backends() {
        let api = ApiServer::start();
        let ds = pods(&["127.0.1.2", "127.0.2.2"]);
        // The app's endpoints need not listen: only the DaemonSet pods serve.
        web(&api, 9, &[on("127.0.1.10", "a"), on("127.0.2.10", "b")]);
        daemonset(&api, ds[0].addr.port(), &[on("127.0.1.2", "a"), on("127.0.2.2", "b")]);
        // localnode (namer) keeps node a's endpoint, then the daemonset
        // (router) maps it to node a's pod.
        let namer = "  transformers:\n  - {kind: io.l5d.k8s.localnode, hostNetwork: true}\n";
        let corelink = Corelink::start_with_env(
            &config(api.addr(), namer, &daemonset_interpreter(api.addr(), "")),
            io,
            &[("NODE_NAME", "a")],
        );
        assert_eq!(served_by(corelink.addr(), "web", 20), [ds[0].ip()], "{io}");
        let client = "client/%/io.l5d.k8s.daemonset/linkerd/incoming/l5d/%/io.l5d.k8s.localnode/a/#/io.l5d.k8s/prod/http/web/requests";
        assert!(corelink.metric_ending(client) >= 20.0, "{io}");
    }
}

#[test]
fn localnode_without_its_environment_variable_does_not_start() {
    let api = ApiServer::start();
    let namer = "  transformers:\n  - kind: io.l5d.k8s.localnode\n";
    let text = config(api.addr(), namer, "");
    let err = match Corelink::try_start(&text, backends()[0]) {
        Ok(_) => panic!("started without POD_IP"),
        Err(e) => e,
    };
    assert!(
        err.contains("namers[0].transformers[0]: io.l5d.k8s.localnode needs the environment variable POD_IP"),
        "{err}"
    );
}

#[test]
fn check_accepts_linkerds_keys_and_points_at_wrong_ones() {
    let dir = common::tempdir::Dir::new("k8s-transformers-check");
    let check = |name: &str, text: &str, env: &[(&str, &str)]| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let out = std::process::Command::new(common::binary())
            .args(["check", "--config"])
            .arg(&path)
            .env_remove("POD_IP")
            .env_remove("NODE_NAME")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.success(), stdout, stderr, path.display().to_string())
    };
    let good = "namers:\n- kind: io.l5d.k8s\n  transformers:\n  - kind: io.l5d.k8s.localnode\nrouters:\n- protocol: http\n  dtab: /svc => /#/io.l5d.k8s/prod/http;\n  interpreter:\n    transformers:\n    - kind: io.l5d.k8s.daemonset\n      namespace: linkerd\n      service: l5d\n      port: incoming\n      k8sHost: localhost\n      k8sPort: 8001\n      hostNetwork: true\n  servers:\n  - port: 4140\n";
    let (ok, stdout, stderr, _) = check("good.yaml", good, &[("POD_IP", "10.1.2.3")]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("transformers: io.l5d.k8s.daemonset (the pod of linkerd/l5d port incoming on the same node, from http://localhost:8001)"), "{stdout}");
    assert!(stdout.contains("transformers: io.l5d.k8s.localnode (the /24 of $POD_IP)"), "{stdout}");
    // Without POD_IP (check usually runs outside the pod): passes with a
    // warning at the transformer saying `corelink run` would refuse.
    let (ok, _, stderr, path) = check("good.yaml", good, &[]);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains(&format!("{path}:4:5: warning: namers[0].transformers[0]: io.l5d.k8s.localnode reads POD_IP when corelink starts, and it is not set here")),
        "{stderr}"
    );
    let wrong = good.replace("      k8sPort: 8001\n", "      port_: 8001\n");
    let (ok, _, stderr, path) = check("wrong.yaml", &wrong, &[("POD_IP", "10.1.2.3")]);
    assert!(!ok);
    assert!(
        stderr.contains(&format!("{path}:15:7: routers[0].interpreter.transformers[0].port_: unknown key")),
        "{stderr}"
    );
    let missing = good.replace("      service: l5d\n", "");
    let (ok, _, stderr, path) = check("missing.yaml", &missing, &[("POD_IP", "10.1.2.3")]);
    assert!(!ok);
    assert!(
        stderr.contains(&format!("{path}:10:7: routers[0].interpreter.transformers[0].service: missing required key")),
        "{stderr}"
    );
}
