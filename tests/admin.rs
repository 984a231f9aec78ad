//! The admin server through the real binary: exact metrics after known
//! traffic (linkerd's JSON tree and Prometheus, parsed by a real parser), a
//! latency histogram against a backend that sleeps a known time, and the
//! endpoints' errors and shutdown. Every test runs on each I/O backend.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use common::backend::Backend;
use common::client::{get, Conn};
use common::{backends, metric, Corelink};

fn config(backend: SocketAddr) -> String {
    format!(
        "admin:\n  port: 0\nrouters:\n- protocol: http\n  label: out\n  dtab: |\n    /svc/b => /$/inet/{}/{};\n    /svc/dead => /$/inet/127.0.0.1/1;\n  servers:\n  - port: 0\ncorelink:\n  workers: 2\n  shutdownDelayMs: 0\n",
        backend.ip(),
        backend.port()
    )
}

#[test]
fn known_traffic_gives_exact_counts_in_json_and_prometheus() {
    let backend = Backend::start();
    for io in backends() {
        let proxy = Corelink::start(&config(backend.addr), io);
        let mut conn = Conn::open(proxy.addr());
        for _ in 0..25 {
            conn.send(b"GET / HTTP/1.1\r\nHost: b\r\n\r\n");
            assert_eq!(conn.read_response("GET").unwrap().status, 200);
        }
        assert_eq!(get(proxy.addr(), "/", "dead").unwrap().status, 502);
        let m = proxy.metrics();
        let server = format!("rt/out/server/127.0.0.1/{}", proxy.addr().port());
        assert_eq!(metric(&m, &format!("{server}/requests")), 26.0, "{io}");
        assert_eq!(metric(&m, &format!("{server}/success")), 25.0, "{io}");
        assert_eq!(metric(&m, &format!("{server}/failures")), 1.0, "{io}");
        assert_eq!(metric(&m, &format!("{server}/status/200")), 25.0, "{io}");
        assert_eq!(metric(&m, &format!("{server}/status/2XX")), 25.0, "{io}");
        assert_eq!(metric(&m, &format!("{server}/status/502")), 1.0, "{io}");
        assert_eq!(metric(&m, &format!("{server}/request_latency_ms.count")), 26.0, "{io}");
        let client = format!("rt/out/client/$/inet/{}/{}", backend.addr.ip(), backend.addr.port());
        assert_eq!(metric(&m, &format!("{client}/requests")), 25.0, "{io}");
        assert_eq!(metric(&m, &format!("{client}/connects")), 1.0, "{io}: one keep-alive client, one pooled upstream");
        assert_eq!(metric(&m, "rt/out/service/svc/b/requests"), 25.0, "{io}");
        assert_eq!(metric(&m, "rt/out/service/svc/dead/failures"), 1.0, "{io}");
        let per_core: f64 = m.iter().filter(|(k, _)| k.starts_with("corelink/core/")).map(|(_, v)| v).sum();
        assert_eq!(per_core, 26.0, "{io}");

        let rsp = get(proxy.admin, "/metrics", &proxy.admin.to_string()).unwrap();
        assert_eq!(rsp.status, 200);
        let text = String::from_utf8_lossy(&rsp.body).into_owned();
        let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
        let requests: f64 = scrape
            .samples
            .iter()
            .filter(|s| s.metric == "corelink_server_requests_total")
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum();
        assert_eq!(requests, 26.0, "{io}: {text}");
        let ok_200 = scrape.samples.iter().any(|s| {
            s.metric == "corelink_service_responses_total"
                && s.labels.get("service") == Some("/svc/b")
                && s.labels.get("status_code") == Some("200")
        });
        assert!(ok_200, "{io}: {text}");
        assert_eq!(get(proxy.admin, "/admin/metrics/prometheus", &proxy.admin.to_string()).unwrap().status, 200);
    }
}

/// A backend that answers after `delay`.
fn sleepy_backend(delay: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().map_while(Result::ok) {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        std::thread::sleep(delay);
                        if conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").is_err() {
                            return;
                        }
                        continue;
                    }
                    match conn.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn latency_percentiles_land_in_the_right_bucket() {
    let backend = sleepy_backend(Duration::from_millis(50));
    for io in backends() {
        let proxy = Corelink::start(&config(backend), io);
        let mut conn = Conn::open(proxy.addr());
        for _ in 0..10 {
            conn.send(b"GET / HTTP/1.1\r\nHost: b\r\n\r\n");
            assert_eq!(conn.read_response("GET").unwrap().status, 200);
        }
        let m = proxy.metrics();
        let p50 = metric(&m, &format!("rt/out/server/127.0.0.1/{}/request_latency_ms.p50", proxy.addr().port()));
        assert!((45.0..80.0).contains(&p50), "{io}: p50 {p50} ms for a 50 ms backend");
    }
}

#[test]
fn admin_errors_and_shutdown() {
    let backend = Backend::start();
    for io in backends() {
        let mut proxy = Corelink::start(&config(backend.addr), io);
        assert_eq!(get(proxy.admin, "/admin/ping", &proxy.admin.to_string()).unwrap().status, 200);
        assert_eq!(get(proxy.admin, "/nope", &proxy.admin.to_string()).unwrap().status, 404);
        assert_eq!(
            get(proxy.admin, "/admin/shutdown", &proxy.admin.to_string()).unwrap().status,
            405,
            "{io}: GET must not shut down"
        );
        let mut c = Conn::open(proxy.admin);
        c.send(b"POST /admin/metrics.json HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(c.read_response("POST").unwrap().status, 405);
        let mut c = Conn::open(proxy.admin);
        c.send(b"POST /admin/shutdown HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(c.read_response("POST").unwrap().status, 200);
        assert_eq!(proxy.wait_exit(Duration::from_secs(15)), Some(0), "{io}: graceful exit");
    }
}

/// Idle admin connections cannot take every descriptor: past 256 open at
/// once a connection is answered 503 and closed, and one that sends no
/// request head within 5 s is closed.
#[test]
fn idle_admin_connections_are_bounded_in_number_and_time() {
    let backend = Backend::start();
    for io in backends() {
        let proxy = Corelink::start(&config(backend.addr), io);
        let idle: Vec<std::net::TcpStream> =
            (0..256).map(|_| std::net::TcpStream::connect(proxy.admin).unwrap()).collect();
        // Each is accepted (and holds its place) before the next check.
        std::thread::sleep(Duration::from_millis(300));
        let mut over = std::net::TcpStream::connect(proxy.admin).unwrap();
        over.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut answer = String::new();
        let _ = over.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 503 "), "{io}: {answer:?}");
        assert!(answer.contains("too many admin connections"), "{io}: {answer:?}");
        // The idle ones are closed once their head limit passes.
        let mut first = &idle[0];
        first.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let started = std::time::Instant::now();
        assert_eq!(first.read(&mut [0u8; 16]).unwrap_or(0), 0, "{io}");
        assert!(started.elapsed() < Duration::from_secs(6), "{io}: closed after {:?}", started.elapsed());
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(get(proxy.admin, "/admin/ping", &proxy.admin.to_string()).unwrap().status, 200, "{io}");
        drop(idle);
    }
}

/// A DNS-rebinding page reaches the admin under its own host name and reads
/// it as same-origin, and a plain-http page's same-origin GET carries no
/// `Sec-Fetch-*` or `Origin`: on loopback the admin answers only requests
/// that name an address or localhost.
#[test]
fn on_loopback_the_admin_answers_only_requests_naming_an_address() {
    let backend = Backend::start();
    for io in backends() {
        let proxy = Corelink::start(&config(backend.addr), io);
        let status = |host: &str| {
            let mut c = Conn::open(proxy.admin);
            c.send(format!("GET /config.json HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes());
            c.read_response("GET").unwrap()
        };
        let port = proxy.admin.port();
        let refused = status(&format!("evil.example:{port}"));
        assert_eq!(refused.status, 403, "{io}");
        assert!(String::from_utf8_lossy(&refused.body).contains("DNS-rebinding"), "{io}");
        assert_eq!(status("evil.example").status, 403, "{io}");
        assert_eq!(status(&proxy.admin.to_string()).status, 200, "{io}");
        assert_eq!(status(&format!("localhost:{port}")).status, 200, "{io}");
        assert_eq!(status("127.0.0.1").status, 200, "{io}");
    }
}

/// A page of another site can POST text/plain to the admin without a CORS
/// preflight: state-changing requests a browser marks as cross-site are
/// refused, while probes without `Origin` and the admin's own origin work.
#[test]
fn cross_site_shutdown_is_refused() {
    let backend = Backend::start();
    for io in backends() {
        let mut proxy = Corelink::start(&config(backend.addr), io);
        let post = |headers: &str| {
            let mut c = Conn::open(proxy.admin);
            c.send(
                format!(
                    "POST /admin/shutdown HTTP/1.1\r\nHost: {}\r\n{headers}Content-Type: text/plain\r\nContent-Length: 0\r\n\r\n",
                    proxy.admin
                )
                .as_bytes(),
            );
            c.read_response("POST").unwrap().status
        };
        for headers in [
            "Origin: http://evil.example\r\n",
            "Origin: null\r\n",
            &format!("Origin: http://localhost.evil.example:{}\r\n", proxy.admin.port()),
            "Sec-Fetch-Site: cross-site\r\n",
            "Sec-Fetch-Site: same-site\r\n",
            &format!("Origin: http://{}\r\nSec-Fetch-Site: cross-site\r\n", proxy.admin),
        ] {
            assert_eq!(post(headers), 403, "{io}: {headers:?} must be refused");
        }
        assert_eq!(
            get(proxy.admin, "/admin/ping", &proxy.admin.to_string()).unwrap().status,
            200,
            "{io}: still running"
        );
        // The admin's own origin (its dashboard) may.
        assert_eq!(post(&format!("Origin: http://{}\r\nSec-Fetch-Site: same-origin\r\n", proxy.admin)), 200);
        assert_eq!(proxy.wait_exit(Duration::from_secs(15)), Some(0), "{io}: graceful exit");
    }
}

#[test]
fn config_json_is_the_effective_config_without_key_material() {
    let backend = Backend::start();
    let dir = common::tempdir::Dir::new("admin-config");
    let leaf = common::certs::Ca::new("corelink test CA").issue("serviceB", common::certs::Names::CnAndSan);
    let (cert, key) = leaf.write(dir.path(), "serviceB");
    let key_body = leaf.key_pem.lines().nth(1).unwrap().to_string();
    for io in backends() {
        let config = format!(
            "admin:\n  port: 0\nrouters:\n- protocol: http\n  label: in\n  dtab: /svc => /$/inet/{}/{};\n  servers:\n  - port: 0\n    tls:\n      certPath: {}\n      keyPath: {}\ncorelink:\n  workers: 1\n  shutdownDelayMs: 0\n",
            backend.addr.ip(),
            backend.addr.port(),
            cert.display(),
            key.display()
        );
        let proxy = Corelink::start(&config, io);
        let rsp = get(proxy.admin, "/config.json", &proxy.admin.to_string()).unwrap();
        assert_eq!(rsp.status, 200, "{io}");
        assert_eq!(rsp.header("content-type"), Some("application/json"), "{io}");
        let body = String::from_utf8_lossy(&rsp.body).into_owned();
        assert!(body.contains(&format!("\"keyPath\": \"{}\"", key.display())), "{io}: the key path is shown\n{body}");
        assert!(!body.contains(&key_body) && !body.contains("PRIVATE KEY"), "{io}: never the key itself");
        assert!(body.contains("\"label\": \"in\""), "{io}: {body}");
        assert!(body.contains("\"kind\": \"io.l5d.header.token\""), "{io}: defaults are filled in\n{body}");
        assert!(body.contains("\"workers\": 1"), "{io}: {body}");
        let mut c = Conn::open(proxy.admin);
        c.send(b"DELETE /config.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        assert_eq!(c.read_response("DELETE").unwrap().status, 405, "{io}");
    }
}

#[test]
fn log_level_comes_from_the_config_unless_rust_log_is_set() {
    let dir = common::tempdir::Dir::new("log-level");
    let write = |level: &str| {
        let path = dir.path().join(format!("{}.yaml", level.replace(',', "_")));
        std::fs::write(
            &path,
            format!("routers:\n- protocol: http\n  dtab: /svc => /$/inet/127.0.0.1/1;\n  servers:\n  - port: 1\ncorelink:\n  logLevel: {level}\n"),
        )
        .unwrap();
        path
    };
    let check = |path: &std::path::Path, rust_log: Option<&str>| {
        let mut command = std::process::Command::new(common::binary());
        command.args(["check", "--config"]).arg(path).env_remove("RUST_LOG");
        if let Some(level) = rust_log {
            command.env("RUST_LOG", level);
        }
        let out = command.output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let debug = write("debug");
    let (ok, stderr) = check(&debug, None);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("log level set from the config"), "logLevel: debug logs debug lines: {stderr}");
    let (_, stderr) = check(&debug, Some("warn"));
    assert!(!stderr.contains("log level set"), "RUST_LOG wins: {stderr}");
    let (ok, stderr) = check(&write("warn,corelink::logging=debug"), None);
    assert!(ok && stderr.contains("log level set from the config"), "per-target directives: {stderr}");
    let (ok, stderr) = check(&write("loud=="), None);
    assert!(!ok, "an invalid level is a config error");
    assert!(stderr.contains("corelink.logLevel") && stderr.contains(".yaml:7:"), "{stderr}");
}
