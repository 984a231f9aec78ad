//! The Kubernetes deployment's configs (`deploy/kubernetes/*/config.yaml`)
//! as written, through the real binary, with certificates from `corelink
//! certs` and the `io.l5d.k8s` parts reaching the test Kubernetes API server
//! in-cluster (TLS, bearer token, `KUBERNETES_SERVICE_HOST`/`PORT`), on every
//! I/O backend:
//! - per pod: servicea's and serviceb's sidecars;
//! - per node: the corelinks of two "nodes" (two loopback /24s, as each
//!   Kubernetes node has its pod /24), with the daemonset and localnode
//!   transformers.
//!
//! Only what a pod has and a test cannot are changed: the ports and
//! addresses (loopback), the paths of the mounted Secret and service-account
//! files, and the application's port. Each change is checked to have applied,
//! so these tests fail when a manifest changes shape under them.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::backend::Backend;
use common::certs::api_server_certificates;
use common::{backends, client, Corelink};
use k8s_testapi::objects::{self, Endpoint, ServicePort, TargetPort};
use k8s_testapi::ApiServer;

/// The `linkerd.yaml` key of the ConfigMap in `file` (a `|` block scalar
/// indented by four spaces, as the manifests write it).
fn embedded_config(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines().skip_while(|l| *l != "  linkerd.yaml: |");
    assert!(lines.next().is_some(), "{file}: no `  linkerd.yaml: |` key");
    let mut config = String::new();
    for line in lines {
        if line.is_empty() {
            config.push('\n');
        } else if let Some(rest) = line.strip_prefix("    ") {
            config.push_str(rest);
            config.push('\n');
        } else {
            break;
        }
    }
    config
}

/// `text` with every `from` replaced by `to`; panics when there is none.
fn replace(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "the config no longer contains {from:?}:\n{text}");
    text.replace(from, to)
}

/// `corelink certs ca` and `certs issue` for `names`, in the Secret's file
/// layout (`cacertificate.pem`, `certificate.pem`, `key.pem` per name).
fn certificates(dir: &Path, names: &[&str]) {
    let run = |args: &[&str]| {
        let out = Command::new(common::binary()).args(args).output().unwrap();
        assert!(out.status.success(), "corelink {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let ca = dir.join("ca");
    run(&["certs", "ca", "--out", ca.to_str().unwrap()]);
    for name in names {
        let out = dir.join(name);
        run(&["certs", "issue", "--ca", ca.to_str().unwrap(), "--name", name, "--out", out.to_str().unwrap()]);
        std::fs::copy(ca.join("cacertificate.pem"), out.join("cacertificate.pem")).unwrap();
    }
}

/// Every `inCluster: true` (not in a comment) followed by `tokenPath` and
/// `caCertPath` at the same indentation: the files the kubelet mounts at
/// their default paths.
fn service_account_files(config: &str, token: &Path, api_ca: &Path) -> String {
    let mut out = String::new();
    let mut found = 0;
    for line in config.lines() {
        out.push_str(line);
        out.push('\n');
        if line.trim_start() == "inCluster: true" {
            let indent = &line[..line.len() - line.trim_start().len()];
            out.push_str(&format!(
                "{indent}tokenPath: {}\n{indent}caCertPath: {}\n",
                token.display(),
                api_ca.display()
            ));
            found += 1;
        }
    }
    assert!(found > 0, "the config no longer has `inCluster: true`:\n{config}");
    out
}

/// One pod's config: the ConfigMap's, with this pod's certificate
/// directory, the service-account files, loopback ephemeral ports and the
/// application's port.
fn pod_config(manifest: &str, certs: &Path, token: &Path, api_ca: &Path, app_port: u16) -> String {
    let mut c = replace(manifest, "/certificates/", &format!("{}/", certs.display()));
    c = service_account_files(&c, token, api_ca);
    for port in ["9990", "4141", "4143"] {
        c = replace(&c, &format!("port: {port}\n"), "port: 0\n");
    }
    c = replace(&c, "ip: 0.0.0.0\n", "ip: 127.0.0.1\n");
    c = replace(&c, "/$/inet/127.0.0.1/8080;", &format!("/$/inet/127.0.0.1/{app_port};"));
    // The test kills the processes; no need to serve on after SIGTERM.
    replace(&c, "shutdownDelayMs: 5000", "shutdownDelayMs: 0")
}

#[test]
fn the_sidecar_config_routes_servicea_to_serviceb_over_tls_through_the_k8s_namer() {
    let manifest = embedded_config("deploy/kubernetes/sidecar/config.yaml");
    for io in backends() {
        let dir = common::tempdir::Dir::new("deploy");
        certificates(dir.path(), &["servicea", "serviceb"]);
        let (api_ca, api_cert, api_key) = api_server_certificates();
        let api = ApiServer::start_tls(&api_cert, &api_key, "sa-token");
        let (token, ca_path) = (dir.path().join("token"), dir.path().join("ca.crt"));
        std::fs::write(&token, "sa-token\n").unwrap();
        std::fs::write(&ca_path, &api_ca).unwrap();
        let api_port = api.addr().port().to_string();
        let env = [("KUBERNETES_SERVICE_HOST", "127.0.0.1"), ("KUBERNETES_SERVICE_PORT", api_port.as_str())];

        // serviceb's pod: the application and its sidecar. Its incoming
        // router (TLS) is what the Service's port "router" points at.
        let app = Backend::start();
        let b_config = pod_config(&manifest, &dir.path().join("serviceb"), &token, &ca_path, app.addr.port());
        let sidecar_b = Corelink::start_with_env(&b_config, io, &env);
        let incoming = sidecar_b.routers[1];
        api.apply(objects::service(
            "prod",
            "serviceb",
            &[ServicePort { name: Some("router"), port: 4143, target_port: TargetPort::Name("incoming") }],
        ));
        api.apply(objects::endpoint_slice(
            "prod",
            "serviceb-x1",
            "serviceb",
            &[(Some("router"), incoming.port())],
            &[Endpoint::ready(&incoming.ip().to_string())],
        ));

        // servicea's sidecar; the application is this test.
        let a_config = pod_config(&manifest, &dir.path().join("servicea"), &token, &ca_path, common::free_port());
        let sidecar_a = Corelink::start_with_env(&a_config, io, &env);
        let outgoing = sidecar_a.routers[0];

        // The write-up's request, lowercase as Kubernetes names are, and as
        // written there (the namer lowercases the Service's name).
        for host in ["serviceb", "serviceB"] {
            let mut answer = None;
            for _ in 0..100 {
                let rsp = client::get(outgoing, "/hello", host).unwrap();
                if rsp.status == 200 {
                    answer = Some(rsp);
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let rsp = answer.unwrap_or_else(|| panic!("{io}: Host {host} never reached serviceb"));
            assert_eq!(rsp.body, b"ok", "{io}: {host}");
        }
        assert!(app.requests() >= 2, "{io}");
        // Over TLS, verified as serviceb: sidecar B counted the handshake.
        let key = format!("rt/incoming/server/{}/{}/tls/handshakes", incoming.ip(), incoming.port());
        let handshakes = common::metric(&sidecar_b.metrics(), &key);
        assert!(handshakes >= 1.0, "{io}: {handshakes} TLS handshakes on serviceb's incoming router");
        // The namer read the API as a pod does.
        assert!(
            api.requests().iter().all(|r| r.authorization.as_deref() == Some("Bearer sa-token")),
            "{io}: every API request carries the service-account token"
        );
    }
}

/// An application pod on `ip`: answers every request with "hello from
/// <ip>" (one request per connection).
fn app_on(ip: &str) -> SocketAddr {
    let listener = TcpListener::bind((ip, 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match conn.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let body = format!("hello from {}", addr.ip());
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    addr
}

/// A port free on every one of `ips` (the DaemonSet's pods share their
/// container port, and its Service's EndpointSlice has one number for it).
fn port_free_on(ips: &[&str]) -> u16 {
    for _ in 0..50 {
        let port = common::free_port();
        if ips.iter().all(|ip| TcpListener::bind((*ip, port)).is_ok()) {
            return port;
        }
    }
    panic!("no port free on all of {ips:?}");
}

#[test]
fn the_daemonset_config_routes_across_nodes_over_tls_through_the_k8s_transformers() {
    let manifest = embedded_config("deploy/kubernetes/daemonset/config.yaml");
    // Two nodes: node-1's pods on 127.0.1.0/24, node-2's on 127.0.2.0/24.
    let nodes = [("node-1", "127.0.1.1"), ("node-2", "127.0.2.1")];
    for io in backends() {
        let dir = common::tempdir::Dir::new("deploy-ds");
        certificates(dir.path(), &["corelink"]);
        let certs = dir.path().join("corelink");
        let (api_ca, api_cert, api_key) = api_server_certificates();
        let api = ApiServer::start_tls(&api_cert, &api_key, "sa-token");
        let (token, ca_path) = (dir.path().join("token"), dir.path().join("ca.crt"));
        std::fs::write(&token, "sa-token\n").unwrap();
        std::fs::write(&ca_path, &api_ca).unwrap();
        let api_port = api.addr().port().to_string();

        // serviceb runs on node-2 only; its Service's port is named "http".
        let app = app_on("127.0.2.2");
        api.apply(objects::service(
            "prod",
            "serviceb",
            &[ServicePort { name: Some("http"), port: 8080, target_port: TargetPort::Name("http") }],
        ));
        api.apply(objects::endpoint_slice(
            "prod",
            "serviceb-x1",
            "serviceb",
            &[(Some("http"), app.port())],
            &[Endpoint::ready("127.0.2.2").on_node("node-2")],
        ));

        // The DaemonSet: one corelink per node, its incoming router on the
        // same port on each (the Service corelink's port "incoming").
        let incoming_port = port_free_on(&[nodes[0].1, nodes[1].1]);
        let mut corelinks = Vec::new();
        for (node, ip) in nodes {
            let mut c = replace(&manifest, "/certificates/", &format!("{}/", certs.display()));
            c = service_account_files(&c, &token, &ca_path);
            c = replace(&c, "ip: 0.0.0.0\n", &format!("ip: {ip}\n"));
            c = replace(&c, "port: 9990\n", "port: 0\n");
            c = replace(&c, "port: 4141\n", "port: 0\n");
            c = replace(&c, "port: 4143\n", &format!("port: {incoming_port}\n"));
            c = replace(&c, "shutdownDelayMs: 5000", "shutdownDelayMs: 0");
            let env = [
                ("KUBERNETES_SERVICE_HOST", "127.0.0.1"),
                ("KUBERNETES_SERVICE_PORT", api_port.as_str()),
                ("POD_IP", ip),
                ("NODE_NAME", node),
            ];
            corelinks.push(Corelink::start_with_env(&c, io, &env));
        }
        api.apply(objects::service(
            "prod",
            "corelink",
            &[ServicePort { name: Some("incoming"), port: 4143, target_port: TargetPort::Name("incoming") }],
        ));
        api.apply(objects::endpoint_slice(
            "prod",
            "corelink-x1",
            "corelink",
            &[(Some("incoming"), incoming_port)],
            &[Endpoint::ready(nodes[0].1).on_node(nodes[0].0), Endpoint::ready(nodes[1].1).on_node(nodes[1].0)],
        ));

        // servicea on node-1 sends through its node's corelink
        // (http_proxy=$(NODE_NAME):4141): node-1's outgoing router, then TLS
        // to node-2's incoming router, then serviceb.
        let outgoing = corelinks[0].routers[0];
        let mut body = None;
        for _ in 0..100 {
            if let Ok(rsp) = client::get(outgoing, "/", "serviceb") {
                if rsp.status == 200 {
                    body = Some(String::from_utf8_lossy(&rsp.body).into_owned());
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(body.as_deref(), Some("hello from 127.0.2.2"), "{io}: through node-1's corelink");
        let handshakes = |i: usize| {
            let key = format!("rt/incoming/server/{}/{incoming_port}/tls/handshakes", nodes[i].1);
            common::metric(&corelinks[i].metrics(), &key)
        };
        assert!(handshakes(1) >= 1.0, "{io}: the hop to node-2's corelink is TLS");
        assert_eq!(handshakes(0), 0.0, "{io}: node-1's own incoming router is not on the way");
        assert!(
            api.requests().iter().all(|r| r.authorization.as_deref() == Some("Bearer sa-token")),
            "{io}: every API request carries the service-account token"
        );
    }
}
