//! The admin dashboard in a real browser: headless Chromium (Debian's
//! `chromium`) loads `/` from the real binary after known traffic; the numbers
//! the page shows must match `/admin/metrics.json`, and a screenshot is
//! taken. Skips with a notice when Chromium is not installed (`.ci/run`
//! installs it).

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::backend::Backend;
use common::certs::{Ca, Names};
use common::client::{get, Conn};
use common::{backends, free_port, metric, Corelink};

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"].iter().find_map(|name| {
        let found = Command::new("sh").arg("-c").arg(format!("command -v {name}")).output().ok()?;
        let path = String::from_utf8(found.stdout).ok()?.trim().to_string();
        (found.status.success() && !path.is_empty()).then(|| PathBuf::from(path))
    })
}

/// Runs headless Chromium on `url` with `args`, bounded in time; returns
/// its standard output.
fn run_chromium(browser: &Path, profile: &Path, url: &str, args: &[&str]) -> String {
    let mut child = Command::new(browser)
        .args(["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars"])
        .arg(format!("--user-data-dir={}", profile.display()))
        // Virtual time: the page's timers run (several refreshes) without
        // the test waiting for them in real time.
        .arg("--virtual-time-budget=5000")
        .args(args)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if started.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            panic!("chromium did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    out
}

/// The `data-value` of the element showing `field` for `router`.
fn shown(dom: &str, router: &str, field: &str) -> String {
    let key = format!("data-router=\"{router}\" data-field=\"{field}\" data-value=\"");
    let at = dom.find(&key).unwrap_or_else(|| panic!("the page shows no {field} for {router}:\n{dom}")) + key.len();
    dom[at..].split('"').next().unwrap().to_string()
}

/// One corelink, two routers as in the linker-to-linker TLS scenario: `out` (plaintext in,
/// TLS to `in`) and `in` (terminates TLS, forwards to the backend).
fn two_routers(backend: SocketAddr, dir: &Path, io: &str) -> Corelink {
    let ca = Ca::new("dashboard test CA");
    let ca_path = ca.write(dir, "ca.pem");
    let (cert, key) = ca.issue("serviceB", Names::CnAndSan).write(dir, "serviceB");
    let in_port = free_port();
    let config = format!(
        "admin:\n  port: 0\nrouters:\n\
         - protocol: http\n  label: out\n  dtab: |\n    /svc/b => /$/inet/127.0.0.1/{in_port};\n  servers:\n  - port: 0\n  client:\n    tls:\n      commonName: serviceB\n      trustCerts: [{ca}]\n\
         - protocol: http\n  label: in\n  dtab: /svc => /$/inet/{ip}/{port};\n  servers:\n  - port: {in_port}\n    tls:\n      certPath: {cert}\n      keyPath: {key}\n\
         corelink:\n  workers: 1\n  shutdownDelayMs: 0\n",
        ca = ca_path.display(),
        ip = backend.ip(),
        port = backend.port(),
        cert = cert.display(),
        key = key.display(),
    );
    Corelink::start(&config, io)
}

#[test]
fn the_dashboard_shows_what_the_metrics_endpoint_says() {
    let Some(browser) = chromium() else {
        eprintln!("SKIPPED: chromium is not installed (apt-get install -y chromium)");
        return;
    };
    let backend = Backend::start();
    for io in backends() {
        let dir = common::tempdir::Dir::new("dashboard");
        let proxy = two_routers(backend.addr, dir.path(), io);
        // Known traffic: 40 requests through both routers (one TLS
        // connection, pooled), and 2 that fail in `out` (no route).
        let mut conn = Conn::open(proxy.routers[0]);
        for _ in 0..40 {
            conn.send(b"GET / HTTP/1.1\r\nHost: b\r\n\r\n");
            assert_eq!(conn.read_response("GET").unwrap().status, 200, "{io}");
        }
        drop(conn);
        for _ in 0..2 {
            assert_eq!(get(proxy.routers[0], "/", "nowhere").unwrap().status, 502, "{io}");
        }
        std::thread::sleep(Duration::from_millis(200));

        let url = format!("http://{}/?interval=500", proxy.admin);
        let profile = dir.path().join("chromium-profile");
        let dom = run_chromium(&browser, &profile, &url, &["--dump-dom"]);
        let m = proxy.metrics();
        let refreshes: u32 =
            dom.split("data-refreshes=\"").nth(1).and_then(|r| r.split('"').next()).unwrap().parse().unwrap();
        assert!(refreshes >= 2, "{io}: the page refreshes by itself ({refreshes})");

        for (router, addr, requests, success) in
            [("out", proxy.routers[0], 42.0, 40.0), ("in", proxy.routers[1], 40.0, 40.0)]
        {
            let server = format!("rt/{router}/server/{}/{}", addr.ip(), addr.port());
            assert_eq!(metric(&m, &format!("{server}/requests")), requests, "{io} {router}");
            assert_eq!(metric(&m, &format!("{server}/success")), success, "{io} {router}");
            let on_page = |field: &str| shown(&dom, router, field);
            assert_eq!(on_page("requests"), requests.to_string(), "{io} {router}");
            let rate: f64 = on_page("success_rate").parse().unwrap();
            assert!((rate - 100.0 * success / requests).abs() < 1e-9, "{io} {router}: success rate {rate}");
            for quantile in ["p50", "p99"] {
                let page: f64 = on_page(quantile).parse().unwrap();
                let endpoint = metric(&m, &format!("{server}/request_latency_ms.{quantile}"));
                assert_eq!(page, endpoint, "{io} {router}: {quantile}");
            }
            assert_eq!(on_page("rate"), "0", "{io} {router}: no traffic since the page opened");
            let connections = metric(&m, &format!("{server}/connections"));
            assert_eq!(on_page("connections"), connections.to_string(), "{io} {router}");
        }
        // `in` terminates TLS: one handshake (the pooled connection from `out`).
        assert_eq!(metric(&m, &format!("rt/in/server/127.0.0.1/{}/tls/handshakes", proxy.routers[1].port())), 1.0);
        assert_eq!(shown(&dom, "in", "tls_handshakes"), "1", "{io}");
        assert_eq!(shown(&dom, "out", "tls_handshakes"), "0", "{io}");
        // The displayed text, not only the attributes: 95.24 % for `out`.
        assert!(dom.contains(">95.24<"), "{io}: the success rate is displayed rounded");

        let shot = dir.path().join("dashboard.png");
        run_chromium(
            &browser,
            &profile,
            &url,
            &["--window-size=1280,900", &format!("--screenshot={}", shot.display())],
        );
        let png = std::fs::read(&shot).expect("a screenshot");
        assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{io}: a real screenshot ({} bytes)", png.len());
        if let Some(keep) = std::env::var_os("CORELINK_DASHBOARD_PNG") {
            std::fs::copy(&shot, keep).unwrap();
        }
    }
}
