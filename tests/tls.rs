//! Linker-to-linker TLS through the real binary: the linker-to-linker TLS scenario (plain
//! HTTP into sidecar A, TLS between the sidecars, plain HTTP out of sidecar
//! B) for each client TLS kind in each config form, every failure the issue
//! lists, mTLS, certificate reload, pooling and resumption. Certificates are
//! made at test time. Every test runs on each I/O backend.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::backend::Backend;
use common::certs::{Ca, Names};
use common::client::{get, Conn};
use common::tempdir::Dir;
use common::{backends, Corelink};

/// Sidecar B: terminates TLS with `tls` (YAML lines under `tls:`) and routes
/// everything to `backend`.
fn sidecar_b(backend: SocketAddr, tls: &str, io: &str) -> Corelink {
    Corelink::start(&tls_process(&[tls_router("incoming", backend, tls)]), io)
}

/// A router (an item of `routers:`) whose one server terminates TLS with
/// `tls` and that routes everything to `backend`.
fn tls_router(label: &str, backend: SocketAddr, tls: &str) -> String {
    format!(
        "- protocol: http\n  label: {label}\n  dtab: |\n    /svc/* => /$/inet/{}/{};\n  servers:\n  - port: 0\n    tls:\n{tls}",
        backend.ip(),
        backend.port()
    )
}

/// A config with these routers, one worker.
fn tls_process(routers: &[String]) -> String {
    format!("admin:\n  port: 0\nrouters:\n{}corelink:\n  workers: 1\n  shutdownDelayMs: 0\n", routers.concat())
}

fn server_tls(cert: &Path, key: &Path) -> String {
    format!("      certPath: {}\n      keyPath: {}\n", cert.display(), key.display())
}

/// Sidecar A: `/svc => /#/io.l5d.fs`, the fs namer pointing serviceB at
/// sidecar B, and `client` (YAML lines under `client:`).
fn sidecar_a(namer_dir: &Path, b: SocketAddr, client: &str, io: &str) -> Corelink {
    std::fs::write(namer_dir.join("serviceB"), format!("{} {}\n", b.ip(), b.port())).unwrap();
    let config = format!(
        "admin:\n  port: 0\nnamers:\n- kind: io.l5d.fs\n  rootDir: {}\nrouters:\n- protocol: http\n  label: outgoing\n  dtab: |\n    /svc => /#/io.l5d.fs;\n  servers:\n  - port: 0\n  client:\n{client}corelink:\n  workers: 1\n  shutdownDelayMs: 0\n",
        namer_dir.display()
    );
    Corelink::start(&config, io)
}

fn bound_path_client(ca: &Path) -> String {
    format!(
        "    tls:\n      kind: io.l5d.boundPath\n      caCertPath: {}\n      names:\n      - prefix: \"/#/io.l5d.fs/{{service}}\"\n        commonNamePattern: \"{{service}}\"\n",
        ca.display()
    )
}

/// The counter `name` of sidecar B's TLS server, from its admin metrics.
fn tls_counter(b: &Corelink, name: &str) -> u64 {
    server_metric(b, &format!("tls/{name}"))
}

/// The metric `name` of the (one) server of `proxy`
/// (`rt/<router>/server/<ip>/<port>/<name>`) from `/admin/metrics.json`.
fn server_metric(proxy: &Corelink, name: &str) -> u64 {
    let all = proxy.metrics();
    let suffix = format!("/{name}");
    let found = all.iter().find(|(k, _)| k.contains("/server/") && k.ends_with(&suffix));
    found.unwrap_or_else(|| panic!("no server metric {name} in {all:?}")).1 as u64
}

struct Scenario {
    _dir: Dir,
    backend: Backend,
    a: Corelink,
    b: Corelink,
}

/// The linker-to-linker TLS scenario with a CA, serviceB's certificate (`names`), and
/// sidecar A's client section made by `client(ca_path)`.
fn scenario(io: &str, names: Names, client: impl Fn(&Path, &Path) -> String) -> Scenario {
    let dir = Dir::new("tls");
    let ca = Ca::new("corelink test CA");
    let ca_path = ca.write(dir.path(), "ca.pem");
    let (cert, key) = ca.issue("serviceB", names).write(dir.path(), "serviceB");
    let backend = Backend::start();
    let b = sidecar_b(backend.addr, &server_tls(&cert, &key), io);
    let namers = dir.path().join("disco");
    std::fs::create_dir_all(&namers).unwrap();
    let a = sidecar_a(&namers, b.addr(), &client(&ca_path, dir.path()), io);
    Scenario { _dir: dir, backend, a, b }
}

fn assert_reaches_backend(s: &Scenario, io: &str, what: &str) {
    let before = s.backend.requests();
    let rsp = get(s.a.addr(), "/", "serviceB").unwrap();
    assert_eq!(rsp.status, 200, "{what} on {io}: {:?} {}", rsp.header("l5d-err"), String::from_utf8_lossy(&rsp.body));
    assert_eq!(s.backend.requests(), before + 1, "{what} on {io}");
    assert!(tls_counter(&s.b, "handshakes") >= 1, "{what} on {io}: the hop between the sidecars was not TLS");
}

fn assert_fails_with(s: &Scenario, io: &str, what: &str, expected: &str) {
    let before = s.backend.requests();
    let rsp = get(s.a.addr(), "/", "serviceB").unwrap();
    let err = rsp.header("l5d-err").unwrap_or_default().replace('+', " ");
    assert_eq!(rsp.status, 502, "{what} on {io}: {err}");
    assert!(err.contains(expected), "{what} on {io}: l5d-err {err:?} should say {expected:?}");
    assert_eq!(s.backend.requests(), before, "{what} on {io}: nothing may reach serviceB");
}

#[test]
fn bound_path_2016_form_end_to_end() {
    for io in backends() {
        let s = scenario(io, Names::CnAndSan, |ca, _| bound_path_client(ca));
        assert_reaches_backend(&s, io, "boundPath");
    }
}

#[test]
fn bound_path_with_cn_only_certificates_as_the_write_up_makes_them() {
    for io in backends() {
        let s = scenario(io, Names::CnOnly, |ca, _| bound_path_client(ca));
        assert_reaches_backend(&s, io, "boundPath, CN-only certificate");
    }
}

#[test]
fn static_2016_form_and_linkerd_1_form() {
    for io in backends() {
        let s = scenario(io, Names::CnAndSan, |ca, _| {
            format!(
                "    tls:\n      kind: io.l5d.static\n      commonName: serviceB\n      caCertPath: {}\n",
                ca.display()
            )
        });
        assert_reaches_backend(&s, io, "static (2016)");
        let s = scenario(io, Names::CnOnly, |ca, _| {
            format!("    tls:\n      commonName: serviceB\n      trustCerts:\n      - {}\n", ca.display())
        });
        assert_reaches_backend(&s, io, "static (linkerd 1.x)");
    }
}

#[test]
fn per_prefix_configs_form_derives_the_name_from_the_bound_path() {
    for io in backends() {
        let s = scenario(io, Names::CnAndSan, |ca, _| {
            format!(
                "    kind: io.l5d.static\n    configs:\n    - prefix: \"/#/io.l5d.fs/{{service}}\"\n      tls:\n        commonName: \"{{service}}\"\n        trustCerts: [{}]\n",
                ca.display()
            )
        });
        assert_reaches_backend(&s, io, "configs form");
    }
}

#[test]
fn no_validation_encrypts_without_checking_and_warns() {
    for io in backends() {
        // A certificate for another name, from a CA nobody trusts: accepted.
        let s = scenario(io, Names::CnAndSan, |_, _| "    tls:\n      kind: io.l5d.noValidation\n".to_string());
        assert_reaches_backend(&s, io, "noValidation (2016)");
        let warned =
            s.a.stderr_lines().iter().any(|l| l.contains("router outgoing") && l.contains("NOT authenticated"));
        assert!(warned, "noValidation must warn at start-up, naming the router");
        let s = scenario(io, Names::CnAndSan, |_, _| "    tls:\n      disableValidation: true\n".to_string());
        assert_reaches_backend(&s, io, "disableValidation (linkerd 1.x)");
    }
}

#[test]
fn wrong_name_unknown_ca_and_expired_certificates_fail_with_502() {
    for io in backends() {
        let s = scenario(io, Names::CnAndSan, |ca, _| {
            format!("    tls:\n      commonName: serviceC\n      trustCerts: [{}]\n", ca.display())
        });
        assert_fails_with(&s, io, "wrong name", "not valid for serviceC");
        let s = scenario(io, Names::CnOnly, |ca, _| {
            format!("    tls:\n      commonName: serviceC\n      trustCerts: [{}]\n", ca.display())
        });
        assert_fails_with(&s, io, "wrong CN", "not valid for serviceC");
        let s = scenario(io, Names::CnAndSan, |_, dir| {
            let other = Ca::new("some other CA");
            let path = other.write(dir, "other-ca.pem");
            format!("    tls:\n      commonName: serviceB\n      trustCerts: [{}]\n", path.display())
        });
        assert_fails_with(&s, io, "unknown CA", "unknown CA");

        // Expired: sidecar B serves a certificate that ended yesterday.
        let dir = Dir::new("tls-expired");
        let ca = Ca::new("ca");
        let ca_path = ca.write(dir.path(), "ca.pem");
        let (cert, key) = ca.issue_valid("serviceB", Names::CnAndSan, -30, -1).write(dir.path(), "b");
        let backend = Backend::start();
        let b = sidecar_b(backend.addr, &server_tls(&cert, &key), io);
        let namers = dir.path().join("disco");
        std::fs::create_dir_all(&namers).unwrap();
        let a = sidecar_a(&namers, b.addr(), &bound_path_client(&ca_path), io);
        let s = Scenario { _dir: dir, backend, a, b };
        assert_fails_with(&s, io, "expired", "expired");
    }
}

#[test]
fn plaintext_peer_and_silent_peer_fail_with_502() {
    for io in backends() {
        let dir = Dir::new("tls-plain-peer");
        let ca = Ca::new("ca");
        let ca_path = ca.write(dir.path(), "ca.pem");
        let namers = dir.path().join("disco");
        std::fs::create_dir_all(&namers).unwrap();
        // serviceB's "sidecar" is a plaintext HTTP server.
        let plain = Backend::start();
        let a = sidecar_a(&namers, plain.addr, &bound_path_client(&ca_path), io);
        let rsp = get(a.addr(), "/", "serviceB").unwrap();
        let err = rsp.header("l5d-err").unwrap_or_default().replace('+', " ");
        assert_eq!(rsp.status, 502, "{io}: {err}");
        assert!(err.contains("TLS"), "{io}: {err}");
        assert_eq!(plain.requests(), 0, "{io}: a plaintext peer must not get the request");

        // A peer that accepts and never answers the ClientHello.
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = sidecar_a(&namers, silent.local_addr().unwrap(), &bound_path_client(&ca_path), io);
        let started = Instant::now();
        let rsp = get(a.addr(), "/", "serviceB").unwrap();
        let err = rsp.header("l5d-err").unwrap_or_default().replace('+', " ");
        assert_eq!(rsp.status, 502, "{io}: {err}");
        assert!(err.contains("timed out"), "{io}: {err}");
        assert!(started.elapsed() < Duration::from_secs(15), "{io}: the handshake must be bounded");
    }
}

#[test]
fn plaintext_client_on_a_tls_port_is_refused_and_counted() {
    for io in backends() {
        let s = scenario(io, Names::CnAndSan, |ca, _| bound_path_client(ca));
        let mut conn = Conn::open(s.b.addr());
        conn.send(b"GET / HTTP/1.1\r\nHost: serviceB\r\n\r\n");
        let rsp = conn.read_response("GET").unwrap();
        assert_eq!(rsp.status, 400, "{io}");
        assert!(conn.is_closed(Duration::from_secs(5)), "{io}");
        assert_eq!(tls_counter(&s.b, "plaintext_refused"), 1, "{io}");
        assert_eq!(s.backend.requests(), 0, "{io}");
    }
}

#[test]
fn mutual_tls_accepts_a_client_certificate_and_refuses_none() {
    for io in backends() {
        let dir = Dir::new("tls-mtls");
        let ca = Ca::new("ca");
        let ca_path = ca.write(dir.path(), "ca.pem");
        let (cert, key) = ca.issue("serviceB", Names::CnAndSan).write(dir.path(), "b");
        let (a_cert, a_key) = ca.issue("serviceA", Names::CnAndSan).write(dir.path(), "a");
        let backend = Backend::start();
        let tls = format!(
            "{}      caCertPath: {}\n      requireClientAuth: true\n",
            server_tls(&cert, &key),
            ca_path.display()
        );
        let b = sidecar_b(backend.addr, &tls, io);
        let namers = dir.path().join("disco");
        std::fs::create_dir_all(&namers).unwrap();
        let without = format!("    tls:\n      commonName: serviceB\n      trustCerts: [{}]\n", ca_path.display());
        let a = sidecar_a(&namers, b.addr(), &without, io);
        let rsp = get(a.addr(), "/", "serviceB").unwrap();
        assert_eq!(rsp.status, 502, "{io}: no client certificate must be refused");
        assert_eq!(backend.requests(), 0, "{io}");
        let with = format!(
            "{without}      clientAuth:\n        certPath: {}\n        keyPath: {}\n",
            a_cert.display(),
            a_key.display()
        );
        let a = sidecar_a(&namers, b.addr(), &with, io);
        let rsp = get(a.addr(), "/", "serviceB").unwrap();
        assert_eq!(rsp.status, 200, "{io}: {:?}", rsp.header("l5d-err"));
        assert_eq!(backend.requests(), 1, "{io}");
    }
}

#[test]
fn pooled_tls_connections_are_reused_and_new_ones_resume() {
    for io in backends() {
        let s = scenario(io, Names::CnAndSan, |ca, _| bound_path_client(ca));
        let mut conn = Conn::open(s.a.addr());
        for _ in 0..20 {
            conn.send(b"GET / HTTP/1.1\r\nHost: serviceB\r\n\r\n");
            assert_eq!(conn.read_response("GET").unwrap().status, 200, "{io}");
        }
        assert_eq!(tls_counter(&s.b, "handshakes"), 1, "{io}: 20 requests must share one pooled TLS connection");

        // With no idle connections kept, each request needs a new TLS
        // connection: all but the first resume the session.
        let s = scenario(io, Names::CnAndSan, |ca, _| {
            format!("{}    hostConnectionPool:\n      maxIdle: 0\n", bound_path_client(ca))
        });
        let mut conn = Conn::open(s.a.addr());
        for _ in 0..5 {
            conn.send(b"GET / HTTP/1.1\r\nHost: serviceB\r\n\r\n");
            assert_eq!(conn.read_response("GET").unwrap().status, 200, "{io}");
        }
        assert_eq!(tls_counter(&s.b, "handshakes"), 5, "{io}");
        assert_eq!(tls_counter(&s.b, "resumed"), 4, "{io}: new connections to a known peer must resume");
    }
}

#[test]
fn certificate_files_changed_on_disk_are_picked_up_without_restart() {
    for io in backends() {
        let dir = Dir::new("tls-reload");
        let (old_ca, new_ca) = (Ca::new("old CA"), Ca::new("new CA"));
        let new_ca_path = new_ca.write(dir.path(), "new-ca.pem");
        // Kubernetes mounts secrets as `..data -> ..2024_x/` with the files
        // as symlinks through `..data`; an update swaps `..data`.
        let v1 = dir.path().join("..v1");
        let v2 = dir.path().join("..v2");
        std::fs::create_dir_all(&v1).unwrap();
        std::fs::create_dir_all(&v2).unwrap();
        old_ca.issue("serviceB", Names::CnAndSan).write(&v1, "tls");
        new_ca.issue("serviceB", Names::CnAndSan).write(&v2, "tls");
        let data = dir.path().join("..data");
        std::os::unix::fs::symlink(&v1, &data).unwrap();
        let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        std::os::unix::fs::symlink("..data/tls.crt", &cert).unwrap();
        std::os::unix::fs::symlink("..data/tls.key", &key).unwrap();

        let backend = Backend::start();
        let b = sidecar_b(backend.addr, &server_tls(&cert, &key), io);
        let namers = dir.path().join("disco");
        std::fs::create_dir_all(&namers).unwrap();
        let a = sidecar_a(&namers, b.addr(), &bound_path_client(&new_ca_path), io);
        // Sidecar A trusts only the new CA: refused until B serves the new pair.
        assert_eq!(get(a.addr(), "/", "serviceB").unwrap().status, 502, "{io}");
        let tmp = dir.path().join("..data.tmp");
        std::os::unix::fs::symlink(&v2, &tmp).unwrap();
        std::fs::rename(&tmp, &data).unwrap();
        let started = Instant::now();
        loop {
            let rsp = get(a.addr(), "/", "serviceB").unwrap();
            if rsp.status == 200 {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(15), "{io}: the new certificate was never served");
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(b.stderr_lines().iter().any(|l| l.contains("server TLS files reloaded")), "{io}");
    }
}

#[test]
fn strict_bound_path_fails_unmatched_names_and_lax_sends_plaintext() {
    for io in backends() {
        let dir = Dir::new("tls-strict");
        let ca = Ca::new("ca");
        let ca_path = ca.write(dir.path(), "ca.pem");
        let backend = Backend::start();
        let client = |strict: bool| {
            format!(
                "    tls:\n      kind: io.l5d.boundPath\n      caCertPath: {}\n      strict: {strict}\n      names:\n      - prefix: \"/#/io.l5d.k8s/{{service}}\"\n        commonNamePattern: \"{{service}}\"\n",
                ca_path.display()
            )
        };
        let namers = dir.path().join("disco");
        std::fs::create_dir_all(&namers).unwrap();
        let a = sidecar_a(&namers, backend.addr, &client(true), io);
        let rsp = get(a.addr(), "/", "serviceB").unwrap();
        let err = rsp.header("l5d-err").unwrap_or_default().replace('+', " ");
        assert_eq!(rsp.status, 502, "{io}");
        assert!(err.contains("matches no boundPath"), "{io}: {err}");
        assert_eq!(backend.requests(), 0);
        let a = sidecar_a(&namers, backend.addr, &client(false), io);
        assert_eq!(get(a.addr(), "/", "serviceB").unwrap().status, 200, "{io}");
        assert!(a.stderr_lines().iter().any(|l| l.contains("router outgoing") && l.contains("PLAINTEXT")), "{io}");
    }
}

#[test]
fn a_name_outside_the_static_clients_tls_prefixes_goes_in_plaintext_with_a_warning() {
    for io in backends() {
        let dir = Dir::new("tls-partial");
        let ca = Ca::new("ca");
        let ca_path = ca.write(dir.path(), "ca.pem");
        let backend = Backend::start();
        // TLS only for names under /#/io.l5d.k8s; the fs namer binds
        // serviceB under /#/io.l5d.fs.
        let client = format!(
            "    kind: io.l5d.static\n    configs:\n    - prefix: \"/#/io.l5d.k8s/{{service}}\"\n      tls:\n        commonName: \"{{service}}\"\n        trustCerts: [{}]\n",
            ca_path.display()
        );
        let namers = dir.path().join("disco");
        std::fs::create_dir_all(&namers).unwrap();
        let a = sidecar_a(&namers, backend.addr, &client, io);
        assert_eq!(get(a.addr(), "/", "serviceB").unwrap().status, 200, "{io}");
        assert_eq!(backend.requests(), 1, "{io}: the backend speaks plaintext");
        // A namer change makes serviceB's route resolved again; serviceC is
        // a new destination, warned about in its turn.
        std::fs::write(namers.join("serviceC"), format!("{} {}\n", backend.addr.ip(), backend.addr.port())).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while get(a.addr(), "/", "serviceC").unwrap().status != 200 {
            assert!(std::time::Instant::now() < deadline, "{io}: serviceC never routed");
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(get(a.addr(), "/", "serviceB").unwrap().status, 200, "{io}");
        // Log lines are handed over once: read them once.
        let lines = a.stderr_lines();
        let warnings = |name: &str| {
            let needle = format!("/#/io.l5d.fs/{name} matches no client TLS prefix");
            lines.iter().filter(|l| l.contains("WARN") && l.contains(&needle) && l.contains("PLAINTEXT")).count()
        };
        assert_eq!((warnings("serviceB"), warnings("serviceC")), (1, 1), "{io}: {lines:?}");
    }
}

#[test]
fn tls_client_on_a_plaintext_port_is_closed_without_an_answer_and_counted() {
    // A real ClientHello, as a client configured for TLS sends it.
    let config = rustls::ClientConfig::builder_with_provider(corelink::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let mut hello = Vec::new();
    let name = rustls::pki_types::ServerName::try_from("serviceB").unwrap();
    let mut tls = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    tls.write_tls(&mut hello).unwrap();
    for io in backends() {
        let backend = Backend::start();
        let proxy = Corelink::start(&common::simple_config(backend.addr, "", ""), io);
        let mut conn = Conn::open(proxy.addr());
        conn.send(&hello);
        assert!(conn.is_closed(Duration::from_secs(5)), "{io}");
        assert!(conn.take_buffered().is_empty(), "{io}: a plaintext answer would be garbage to a TLS client");
        assert_eq!(server_metric(&proxy, "tls_on_plaintext"), 1, "{io}");
        assert_eq!(backend.requests(), 0);
    }
}

/// A TLS client of the test's own (rustls, blocking, outside corelink) that
/// trusts `ca`, presents no certificate and keeps its sessions (rustls's
/// default in-memory cache), so its next connection offers a ticket.
fn ticket_keeping_client(ca: &Path) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(corelink::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// One request to serviceB over a new connection from `client`: the status
/// and whether the session was resumed, or the TLS (or socket) error.
fn get_over_tls(client: &Arc<rustls::ClientConfig>, addr: SocketAddr) -> Result<(u16, bool), String> {
    let name = rustls::pki_types::ServerName::try_from("serviceB").unwrap();
    let conn = rustls::ClientConnection::new(client.clone(), name).unwrap();
    let socket = TcpStream::connect(addr).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, socket);
    tls.write_all(b"GET / HTTP/1.1\r\nHost: serviceB\r\n\r\n").map_err(|e| e.to_string())?;
    let mut head = Vec::new();
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let mut chunk = [0u8; 4096];
        let n = tls.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed before the response".into());
        }
        head.extend_from_slice(&chunk[..n]);
    }
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut rsp = httparse::Response::new(&mut headers);
    rsp.parse(&head).unwrap();
    let resumed = tls.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
    Ok((rsp.code.unwrap(), resumed))
}

/// Replaces `path` in one step, as a deployment tool would.
fn replace_file(path: &Path, contents: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Sends requests for serviceB through `a` until one gets `status`, for up
/// to 10 s; returns the last status.
fn wait_for_status(a: &Corelink, status: u16) -> u16 {
    let started = Instant::now();
    loop {
        let got = get(a.addr(), "/", "serviceB").unwrap().status;
        if got == status || started.elapsed() > Duration::from_secs(10) {
            return got;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_ticket_does_not_resume_on_a_server_of_the_same_process_that_requires_client_certificates() {
    for io in backends() {
        let dir = Dir::new("tls-ticket-scope");
        let ca = Ca::new("ca");
        let ca_path = ca.write(dir.path(), "ca.pem");
        let (cert, key) = ca.issue("serviceB", Names::CnAndSan).write(dir.path(), "b");
        let backend = Backend::start();
        // Two servers with the same certificate: one open to any client, one
        // requiring a client certificate.
        let open = server_tls(&cert, &key);
        let mtls = format!("{open}      caCertPath: {}\n      requireClientAuth: true\n", ca_path.display());
        let config = tls_process(&[tls_router("open", backend.addr, &open), tls_router("mtls", backend.addr, &mtls)]);
        let b = Corelink::start(&config, io);
        let client = ticket_keeping_client(&ca_path);
        assert_eq!(get_over_tls(&client, b.routers[0]), Ok((200, false)), "{io}");
        assert_eq!(get_over_tls(&client, b.routers[0]), Ok((200, true)), "{io}: tickets work where they were issued");
        let refused = get_over_tls(&client, b.routers[1]);
        assert!(
            refused.as_ref().is_err_and(|e| e.contains("CertificateRequired")),
            "{io}: a client without a certificate got {refused:?} from the mTLS server"
        );
        assert_eq!(backend.requests(), 2, "{io}");
    }
}

#[test]
fn a_session_from_the_real_server_does_not_resume_on_an_impostor_in_the_same_process() {
    for io in backends() {
        let dir = Dir::new("tls-impostor");
        let (ca, unknown) = (Ca::new("ca"), Ca::new("unknown CA"));
        let ca_path = ca.write(dir.path(), "ca.pem");
        let (cert, key) = ca.issue("serviceB", Names::CnAndSan).write(dir.path(), "b");
        let (fake_cert, fake_key) = unknown.issue("serviceB", Names::CnAndSan).write(dir.path(), "fake");
        let (real, impostor) = (Backend::start(), Backend::start());
        let b = Corelink::start(
            &tls_process(&[
                tls_router("real", real.addr, &server_tls(&cert, &key)),
                tls_router("impostor", impostor.addr, &server_tls(&fake_cert, &fake_key)),
            ]),
            io,
        );
        let namers = dir.path().join("disco");
        std::fs::create_dir_all(&namers).unwrap();
        // A new connection per request, so each one offers the session.
        let client = format!(
            "    tls:\n      commonName: serviceB\n      trustCerts: [{}]\n    hostConnectionPool:\n      maxIdle: 0\n",
            ca_path.display()
        );
        let a = sidecar_a(&namers, b.routers[0], &client, io);
        assert_eq!(get(a.addr(), "/", "serviceB").unwrap().status, 200, "{io}");
        assert_eq!(real.requests(), 1, "{io}");

        // serviceB now resolves to the impostor's port.
        let moved = b.routers[1];
        replace_file(&namers.join("serviceB"), &format!("{} {}\n", moved.ip(), moved.port()));
        let started = Instant::now();
        let rsp = loop {
            let before = real.requests();
            let rsp = get(a.addr(), "/", "serviceB").unwrap();
            if real.requests() == before || started.elapsed() > Duration::from_secs(5) {
                break rsp;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let err = rsp.header("l5d-err").unwrap_or_default().replace('+', " ");
        assert_eq!(impostor.requests(), 0, "{io}: the impostor was trusted through a resumed session");
        assert_eq!(rsp.status, 502, "{io}: {err}");
        assert!(err.contains("unknown CA"), "{io}: {err}");
    }
}

#[test]
fn a_reload_that_requires_client_certificates_invalidates_older_tickets() {
    for io in backends() {
        let dir = Dir::new("tls-reload-tickets");
        let ca = Ca::new("ca");
        let ca_path = ca.write(dir.path(), "ca.pem");
        let (cert, key) = ca.issue("serviceB", Names::CnAndSan).write(dir.path(), "b");
        let backend = Backend::start();
        let tls = |required: bool| {
            format!(
                "{}      caCertPath: {}\n      requireClientAuth: {required}\n",
                server_tls(&cert, &key),
                ca_path.display()
            )
        };
        let b = sidecar_b(backend.addr, &tls(false), io);
        let client = ticket_keeping_client(&ca_path);
        assert_eq!(get_over_tls(&client, b.addr()), Ok((200, false)), "{io}");
        assert_eq!(get_over_tls(&client, b.addr()), Ok((200, true)), "{io}");

        replace_file(
            &b.dir.path().join("corelink.yaml"),
            &tls_process(&[tls_router("incoming", backend.addr, &tls(true))]),
        );
        b.wait_for_log("config reloaded", Duration::from_secs(5))
            .unwrap_or_else(|log| panic!("{io}: no reload: {log:?}"));
        let refused = get_over_tls(&client, b.addr());
        assert!(
            refused.as_ref().is_err_and(|e| e.contains("CertificateRequired")),
            "{io}: a ticket from before the reload got {refused:?}"
        );
        assert_eq!(backend.requests(), 2, "{io}");
    }
}

#[test]
fn a_pooled_connection_is_not_reused_once_its_trust_roots_changed() {
    for io in backends() {
        let dir = Dir::new("tls-pool-roots");
        let (ca, other) = (Ca::new("ca"), Ca::new("another CA"));
        let ca_path = ca.write(dir.path(), "ca.pem");
        let (cert, key) = ca.issue("serviceB", Names::CnAndSan).write(dir.path(), "b");
        let backend = Backend::start();
        let b = sidecar_b(backend.addr, &server_tls(&cert, &key), io);
        let namers = dir.path().join("disco");
        std::fs::create_dir_all(&namers).unwrap();
        let client = format!("    tls:\n      commonName: serviceB\n      trustCerts: [{}]\n", ca_path.display());
        let a = sidecar_a(&namers, b.addr(), &client, io);
        assert_eq!(get(a.addr(), "/", "serviceB").unwrap().status, 200, "{io}");
        assert_eq!(tls_counter(&b, "handshakes"), 1, "{io}");

        // The CA that issued serviceB's certificate is no longer trusted
        // (say it was compromised): the idle connection made under it must
        // not carry the next request.
        replace_file(&ca_path, &other.cert_pem);
        a.wait_for_log("client TLS files changed", Duration::from_secs(10))
            .unwrap_or_else(|log| panic!("{io}: no update: {log:?}"));
        let rsp = get(a.addr(), "/", "serviceB").unwrap();
        let err = rsp.header("l5d-err").unwrap_or_default().replace('+', " ");
        assert_eq!(rsp.status, 502, "{io}: the connection from before the change was reused: {err}");
        assert!(err.contains("unknown CA") || err.contains("UnknownIssuer"), "{io}: {err}");
        assert_eq!(backend.requests(), 1, "{io}");
    }
}

/// Between the sidecars, forwards A's bytes to B and B's back until B has
/// been quiet for `quiet` after sending something, then closes the
/// connection towards A with a FIN, as an on-path attacker injecting one
/// would: no close_notify, and what B sends after the pause never arrives.
fn relay_that_cuts_off(b: SocketAddr, quiet: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let Ok((mut to_a, _)) = listener.accept() else { return };
        let mut to_b = TcpStream::connect(b).unwrap();
        let (mut a_in, mut b_out) = (to_a.try_clone().unwrap(), to_b.try_clone().unwrap());
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut a_in, &mut b_out);
        });
        to_b.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let mut last: Option<Instant> = None;
        let mut chunk = [0u8; 16 * 1024];
        let deadline = Instant::now() + Duration::from_secs(10);
        while last.is_none_or(|t| t.elapsed() < quiet) && Instant::now() < deadline {
            match to_b.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => {
                    last = Some(Instant::now());
                    if to_a.write_all(&chunk[..n]).is_err() {
                        return;
                    }
                }
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(_) => break,
            }
        }
        let _ = to_a.shutdown(std::net::Shutdown::Write);
        std::thread::sleep(Duration::from_secs(2));
    });
    addr
}

#[test]
fn a_close_delimited_body_cut_short_between_the_sidecars_is_not_passed_on_as_complete() {
    use common::raw_backend::{Action, RawBackend};
    // serviceB answers with a body that ends with its connection, in two
    // parts 1.5 s apart; the relay cuts the hop in the pause.
    let backend = RawBackend::start_with(Arc::new(|_: &common::raw_backend::Request| {
        vec![
            Action::Send(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello".to_vec()),
            Action::Sleep(Duration::from_millis(1500)),
            Action::Send(b" world".to_vec()),
            Action::Close,
        ]
    }));
    for io in backends() {
        let dir = Dir::new("tls-cut");
        let ca = Ca::new("ca");
        let ca_path = ca.write(dir.path(), "ca.pem");
        let (cert, key) = ca.issue("serviceB", Names::CnAndSan).write(dir.path(), "b");
        let b = sidecar_b(backend.addr, &server_tls(&cert, &key), io);
        let relay = relay_that_cuts_off(b.addr(), Duration::from_millis(600));
        let namers = dir.path().join("disco");
        std::fs::create_dir_all(&namers).unwrap();
        let client = format!("    tls:\n      commonName: serviceB\n      trustCerts: [{}]\n", ca_path.display());
        let a = sidecar_a(&namers, relay, &client, io);
        let mut c = Conn::open(a.addr());
        c.stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.send(b"GET / HTTP/1.1\r\nHost: serviceB\r\n\r\n");
        let (got, end) = c.read_until_closed();
        let text = String::from_utf8_lossy(&got);
        assert!(!text.contains("world"), "{io}: the relay passed the second part: {text}");
        assert_eq!(end, Err(std::io::ErrorKind::ConnectionReset), "{io}: the cut body looked complete: {text}");
    }
}

/// Sidecar A's client section: serviceB's name and CA, and a client
/// certificate.
fn client_with_certificate(ca: &Path, cert: &Path, key: &Path) -> String {
    format!(
        "    tls:\n      commonName: serviceB\n      trustCerts: [{}]\n      clientAuth:\n        certPath: {}\n        keyPath: {}\n",
        ca.display(),
        cert.display(),
        key.display()
    )
}

#[test]
fn a_servers_client_ca_bundle_changed_on_disk_is_picked_up_without_restart() {
    for io in backends() {
        let dir = Dir::new("tls-ca-bundle");
        let (ca, clients_ca) = (Ca::new("ca"), Ca::new("clients' CA"));
        let ca_path = ca.write(dir.path(), "ca.pem");
        let bundle = ca.write(dir.path(), "client-cas.pem");
        let (cert, key) = ca.issue("serviceB", Names::CnAndSan).write(dir.path(), "b");
        let (a_cert, a_key) = clients_ca.issue("serviceA", Names::CnAndSan).write(dir.path(), "a");
        let backend = Backend::start();
        let tls = format!(
            "{}      caCertPath: {}\n      requireClientAuth: true\n",
            server_tls(&cert, &key),
            bundle.display()
        );
        let b = sidecar_b(backend.addr, &tls, io);
        let namers = dir.path().join("disco");
        std::fs::create_dir_all(&namers).unwrap();
        let a = sidecar_a(&namers, b.addr(), &client_with_certificate(&ca_path, &a_cert, &a_key), io);
        assert_eq!(get(a.addr(), "/", "serviceB").unwrap().status, 502, "{io}: serviceA's CA is not trusted yet");

        replace_file(&bundle, &format!("{}{}", ca.cert_pem, clients_ca.cert_pem));
        assert_eq!(wait_for_status(&a, 200), 200, "{io}: the new client CA bundle was never used");
        assert!(b.stderr_lines().iter().any(|l| l.contains("server TLS files reloaded")), "{io}");
    }
}

#[test]
fn a_client_certificate_changed_on_disk_is_picked_up_without_restart() {
    for io in backends() {
        let dir = Dir::new("tls-client-cert");
        let (ca, other) = (Ca::new("ca"), Ca::new("some other CA"));
        let ca_path = ca.write(dir.path(), "ca.pem");
        let (cert, key) = ca.issue("serviceB", Names::CnAndSan).write(dir.path(), "b");
        // serviceA starts with a certificate serviceB does not trust.
        let (a_cert, a_key) = other.issue("serviceA", Names::CnAndSan).write(dir.path(), "a");
        let backend = Backend::start();
        let tls = format!(
            "{}      caCertPath: {}\n      requireClientAuth: true\n",
            server_tls(&cert, &key),
            ca_path.display()
        );
        let b = sidecar_b(backend.addr, &tls, io);
        let namers = dir.path().join("disco");
        std::fs::create_dir_all(&namers).unwrap();
        let a = sidecar_a(&namers, b.addr(), &client_with_certificate(&ca_path, &a_cert, &a_key), io);
        assert_eq!(get(a.addr(), "/", "serviceB").unwrap().status, 502, "{io}: the first certificate is not trusted");

        let renewed = ca.issue("serviceA", Names::CnAndSan);
        replace_file(&a_key, &renewed.key_pem);
        replace_file(&a_cert, &renewed.cert_pem);
        assert_eq!(wait_for_status(&a, 200), 200, "{io}: the new client certificate was never presented");
    }
}
