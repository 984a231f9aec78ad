//! Routing through the real binary: Host-based routing, weighted unions, hot
//! reload (good, bad, and under load). Every test runs on each I/O backend.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::backend::Backend;
use common::client::{get, Conn};
use common::{backends, Corelink};

/// A process-wide number from `/admin/metrics.json` (`corelink/<name>`).
fn process_metric(proxy: &Corelink, name: &str) -> u64 {
    common::metric(&proxy.metrics(), &format!("corelink/{name}")) as u64
}

fn inet(addr: SocketAddr) -> String {
    format!("/$/inet/{}/{}", addr.ip(), addr.port())
}

fn config(dtab: &str) -> String {
    format!(
        "admin:\n  port: 0\nrouters:\n- protocol: http\n  label: r\n  dtab: |\n    {dtab}\n  servers:\n  - port: 0\ncorelink:\n  workers: 2\n  shutdownDelayMs: 0\n"
    )
}

/// Writes a new config over the running one (atomically, via rename, as
/// config management tools and Kubernetes do).
fn rewrite(proxy: &Corelink, text: &str) {
    let path = proxy.dir.path().join("corelink.yaml");
    let tmp = proxy.dir.path().join("corelink.yaml.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
}

/// Sends requests until one reaches `backend` (by its request counter), or
/// gives up after `limit`.
fn wait_until_routed_to(proxy: &Corelink, backend: &Backend, host: &str, limit: Duration) -> Duration {
    let started = Instant::now();
    while started.elapsed() < limit {
        let before = backend.requests();
        let rsp = get(proxy.addr(), "/", host).unwrap();
        if rsp.status == 200 && backend.requests() > before {
            return started.elapsed();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("traffic for {host} never reached the new backend within {limit:?}");
}

#[test]
fn routes_by_host_to_different_backends() {
    let (a, b) = (Backend::start(), Backend::start());
    for io in backends() {
        let dtab = format!("/svc/a => {}; /svc/b => {};", inet(a.addr), inet(b.addr));
        let proxy = Corelink::start(&config(&dtab), io);
        let (a0, b0) = (a.requests(), b.requests());
        for _ in 0..5 {
            assert_eq!(get(proxy.addr(), "/", "a").unwrap().status, 200);
        }
        for _ in 0..3 {
            assert_eq!(get(proxy.addr(), "/", "b").unwrap().status, 200);
        }
        assert_eq!((a.requests() - a0, b.requests() - b0), (5, 3), "{io}");
        // The upstream sees linkerd's context headers.
        let rsp = get(proxy.addr(), "/headers", "a").unwrap();
        let seen = String::from_utf8_lossy(&rsp.body).to_string();
        assert!(seen.contains("l5d-dst-service: /svc/a"), "{io}: {seen}");
        assert!(seen.contains(&format!("l5d-dst-client: {}", inet(a.addr))), "{io}: {seen}");
        // A request id is added when the client sent none, and kept when it did.
        let id = seen.lines().find_map(|l| l.strip_prefix("l5d-reqid: ")).unwrap_or_default();
        assert!(id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()), "{io}: {seen}");
        let mut c = Conn::open(proxy.addr());
        c.send(b"GET /headers HTTP/1.1\r\nHost: a\r\nl5d-reqid: mine\r\n\r\n");
        let seen = String::from_utf8_lossy(&c.read_response("GET").unwrap().body).to_string();
        assert_eq!(seen.matches("l5d-reqid").count(), 1, "{io}: {seen}");
        assert!(seen.contains("l5d-reqid: mine"), "{io}: {seen}");
    }
}

#[test]
fn weighted_union_splits_traffic_by_weight() {
    let (a, b) = (Backend::start(), Backend::start());
    for io in backends() {
        let dtab = format!("/svc/w => 0.3 * {} & 0.7 * {};", inet(a.addr), inet(b.addr));
        let proxy = Corelink::start(&config(&dtab), io);
        let (a0, b0) = (a.requests(), b.requests());
        let total = 2000;
        let mut c = Conn::open(proxy.addr());
        for _ in 0..total {
            c.send(b"GET / HTTP/1.1\r\nHost: w\r\n\r\n");
            assert_eq!(c.read_response("GET").unwrap().status, 200);
        }
        let share_a = (a.requests() - a0) as f64 / total as f64;
        assert_eq!(a.requests() - a0 + b.requests() - b0, total);
        assert!((share_a - 0.3).abs() <= 0.05, "{io}: share of the 0.3 branch was {share_a:.3}");
    }
}

#[test]
fn reload_applies_a_new_dtab_without_restart() {
    let (a, b) = (Backend::start(), Backend::start());
    for io in backends() {
        let proxy = Corelink::start(&config(&format!("/svc/x => {};", inet(a.addr))), io);
        let before = a.requests();
        assert_eq!(get(proxy.addr(), "/", "x").unwrap().status, 200);
        assert_eq!(a.requests(), before + 1);
        rewrite(&proxy, &config(&format!("/svc/x => {};", inet(b.addr))));
        let took = wait_until_routed_to(&proxy, &b, "x", Duration::from_secs(3));
        assert!(took < Duration::from_secs(1) + Duration::from_millis(500), "{io}: reload took {took:?}");
        // SIGHUP also reloads (here: back to a).
        std::fs::write(proxy.dir.path().join("corelink.yaml"), config(&format!("/svc/x => {};", inet(a.addr))))
            .unwrap();
        proxy.signal(libc::SIGHUP);
        wait_until_routed_to(&proxy, &a, "x", Duration::from_secs(3));
        assert!(process_metric(&proxy, "config/reloads") >= 2, "{io}: reloads are counted");
        assert_eq!(process_metric(&proxy, "config/reloads_refused"), 0, "{io}");
    }
}

/// A connection remembers where its last request went (`LastRoute`); a
/// reload must still move its next requests. The client keeps the
/// connection busy (a request every 20 ms), so it never parks and the
/// session that remembers the route lives on across the reload.
#[test]
fn reload_moves_a_kept_alive_connection() {
    let (a, b) = (Backend::start(), Backend::start());
    for io in backends() {
        let proxy = Corelink::start(&config(&format!("/svc/x => {};", inet(a.addr))), io);
        let mut c = Conn::open(proxy.addr());
        let send = |c: &mut Conn| {
            c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
            assert_eq!(c.read_response("GET").unwrap().status, 200, "{io}");
        };
        let before = a.requests();
        send(&mut c);
        send(&mut c);
        assert_eq!(a.requests(), before + 2, "{io}");
        rewrite(&proxy, &config(&format!("/svc/x => {};", inet(b.addr))));
        let started = Instant::now();
        loop {
            let before = b.requests();
            send(&mut c);
            if b.requests() > before {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(3), "{io}: the kept-alive connection never moved");
            std::thread::sleep(Duration::from_millis(20));
        }
        let before = (a.requests(), b.requests());
        send(&mut c);
        assert_eq!((a.requests(), b.requests()), (before.0, before.1 + 1), "{io}: and stays moved");
    }
}

#[test]
fn bad_reloads_are_refused_and_the_old_config_keeps_serving() {
    let a = Backend::start();
    for io in backends() {
        let good = config(&format!("/svc/x => {};", inet(a.addr)));
        let proxy = Corelink::start(&good, io);
        for (bad, why) in [
            (good.replace("label: r", "label: r\n  bogusKey: 1"), "bogusKey"),
            (config("/svc/x => => oops;"), "dtab"),
            (good.replace("  - port: 0", "  - port: 1"), "needs a restart"),
        ] {
            rewrite(&proxy, &bad);
            // The reload is seen at the watcher's next poll: wait for its
            // refusal (bounded) rather than for a fixed time, which a loaded
            // machine overran. `stderr_lines` hands each line over once.
            let mut log = String::new();
            let started = Instant::now();
            while !(log.contains("config reload refused") && log.contains(why))
                && started.elapsed() < Duration::from_secs(10)
            {
                std::thread::sleep(Duration::from_millis(50));
                for line in proxy.stderr_lines() {
                    log.push_str(&line);
                    log.push('\n');
                }
            }
            assert!(log.contains("config reload refused") && log.contains(why), "{io}: {why}: {log}");
            let rsp = get(proxy.addr(), "/", "x").unwrap();
            assert_eq!(rsp.status, 200, "{io}: still serving after a bad reload ({why})");
        }
        assert!(process_metric(&proxy, "config/reloads_refused") >= 3, "{io}: refusals are counted");
        assert_eq!(process_metric(&proxy, "config/reloads"), 0, "{io}");
    }
}

#[test]
fn reloads_under_load_fail_no_request() {
    let (a, b) = (Backend::start(), Backend::start());
    for io in backends() {
        let proxy = Corelink::start(&config(&format!("/svc/x => {};", inet(a.addr))), io);
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let addr = proxy.addr();
        let load: Vec<_> = (0..4)
            .map(|_| {
                let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
                std::thread::spawn(move || {
                    let mut c = Conn::open(addr);
                    let deadline = Instant::now() + Duration::from_secs(20);
                    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                        c.send(b"GET /bytes/100 HTTP/1.1\r\nHost: x\r\n\r\n");
                        match c.read_response("GET") {
                            Ok(r) if r.status == 200 && r.body.len() == 100 => ok.fetch_add(1, Ordering::Relaxed),
                            _ => {
                                c = Conn::open(addr);
                                failed.fetch_add(1, Ordering::Relaxed)
                            }
                        };
                    }
                })
            })
            .collect();
        for i in 0..8 {
            let target = if i % 2 == 0 { b.addr } else { a.addr };
            rewrite(&proxy, &config(&format!("/svc/x => {};", inet(target))));
            std::thread::sleep(Duration::from_millis(350));
        }
        stop.store(true, Ordering::Relaxed);
        for t in load {
            t.join().unwrap();
        }
        let reloads = proxy.stderr_lines().iter().filter(|l| l.contains("config reloaded")).count();
        assert!(reloads >= 6, "{io}: only {reloads} reloads happened");
        assert!(ok.load(Ordering::Relaxed) > 100, "{io}: too little load to mean anything");
        assert_eq!(failed.load(Ordering::Relaxed), 0, "{io}: requests failed during reloads");
    }
}

#[test]
fn fs_namer_changes_apply_without_restart() {
    let (a, b) = (Backend::start(), Backend::start());
    for io in backends() {
        let disco = common::tempdir::Dir::new("disco");
        std::fs::write(disco.path().join("serviceB"), format!("{} {}\n", a.addr.ip(), a.addr.port())).unwrap();
        let text = format!(
            "admin:\n  port: 0\nnamers:\n- kind: io.l5d.fs\n  rootDir: {}\nrouters:\n- protocol: http\n  label: r\n  dtab: |\n    /svc => /#/io.l5d.fs;\n  servers:\n  - port: 0\ncorelink:\n  workers: 2\n  shutdownDelayMs: 0\n",
            disco.path().display()
        );
        let proxy = Corelink::start(&text, io);
        let before = a.requests();
        let rsp = get(proxy.addr(), "/headers", "serviceB").unwrap();
        assert_eq!(rsp.status, 200, "{io}");
        assert_eq!(a.requests(), before + 1);
        assert!(String::from_utf8_lossy(&rsp.body).contains("l5d-dst-client: /#/io.l5d.fs/serviceB"), "{io}");
        // An unknown service: the namer does not have it.
        let rsp = get(proxy.addr(), "/", "serviceC").unwrap();
        assert_eq!(rsp.status, 502, "{io}");
        // Move serviceB to backend b, Kubernetes-style: write a new file and
        // rename it over the old one.
        let tmp = disco.path().join(".serviceB.tmp");
        std::fs::write(&tmp, format!("{} {}\n", b.addr.ip(), b.addr.port())).unwrap();
        std::fs::rename(&tmp, disco.path().join("serviceB")).unwrap();
        let took = wait_until_routed_to(&proxy, &b, "serviceB", Duration::from_secs(3));
        assert!(took < Duration::from_secs(1), "{io}: the namer change took {took:?}");
        assert!(process_metric(&proxy, "routing/namer_updates") >= 1, "{io}: namer updates are counted");
        assert_eq!(process_metric(&proxy, "workers"), 2, "{io}");
        assert_eq!(process_metric(&proxy, "io/uring"), u64::from(io == "uring"), "{io}");
    }
}

#[test]
fn per_request_dtab_only_when_enabled_and_clear_context_strips_it() {
    let (a, b) = (Backend::start(), Backend::start());
    for io in backends() {
        let dtab = format!("/svc/x => {};", inet(a.addr));
        let override_header = format!("l5d-dtab: /svc/x => {}", inet(b.addr));
        // Off by default: the header is ignored (and forwarded as is).
        let proxy = Corelink::start(&config(&dtab), io);
        let mut c = Conn::open(proxy.addr());
        let before = a.requests();
        c.send(format!("GET / HTTP/1.1\r\nHost: x\r\n{override_header}\r\n\r\n").as_bytes());
        assert_eq!(c.read_response("GET").unwrap().status, 200);
        assert_eq!(a.requests(), before + 1, "{io}: l5d-dtab must be ignored by default");
        drop(proxy);
        // Enabled: the override wins for that request only.
        let proxy = Corelink::start(&config(&dtab).replace("  label: r\n", "  label: r\n  dtabHeaders: true\n"), io);
        let mut c = Conn::open(proxy.addr());
        let before = b.requests();
        c.send(format!("GET / HTTP/1.1\r\nHost: x\r\n{override_header}\r\n\r\n").as_bytes());
        assert_eq!(c.read_response("GET").unwrap().status, 200);
        assert_eq!(b.requests(), before + 1, "{io}: l5d-dtab honoured when enabled");
        // clearContext strips the client's l5d-* headers before forwarding.
        drop(proxy);
        let cleared = config(&dtab).replace("  - port: 0\n", "  - port: 0\n    clearContext: true\n");
        let proxy = Corelink::start(&cleared, io);
        let mut c = Conn::open(proxy.addr());
        c.send(b"GET /headers HTTP/1.1\r\nHost: x\r\nl5d-ctx-trace: secret\r\n\r\n");
        let seen = String::from_utf8_lossy(&c.read_response("GET").unwrap().body).to_string();
        assert!(!seen.contains("l5d-ctx-trace"), "{io}: {seen}");
        assert!(seen.contains("l5d-dst-service: /svc/x"), "{io}: {seen}");
    }
}

#[test]
fn delegate_explains_a_route_on_the_cli_and_the_admin_port() {
    let out = std::process::Command::new(common::binary())
        .args([
            "delegate",
            "--dtab",
            "/svc => /#/io.l5d.fs; /svc/b => 0.3*/$/inet/127.0.0.1/1 & 0.7*/$/inet/127.0.0.1/2",
            "/svc/b",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().last(), Some("=> 0.30*/$/inet/127.0.0.1/1 & 0.70*/$/inet/127.0.0.1/2"), "{text}");
    assert!(text.contains("[/svc=>/#/io.l5d.fs] -> ~"), "{text}");

    // The `=>` line is what the data path binds: the first alternative that
    // is not negative, with the residual beside the bound id (finagle's
    // `Name.Bound`), while the trace above keeps every alternative.
    let delegate = |dtab: &str, path: &str| {
        let out =
            std::process::Command::new(common::binary()).args(["delegate", "--dtab", dtab, path]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let text = delegate("/svc => /$/inet/127.0.0.1/8080 | /$/inet/127.0.0.1/9090", "/svc/foobar");
    assert_eq!(text.lines().last(), Some("=> /$/inet/127.0.0.1/8080 (residual /foobar)"), "{text}");
    assert!(text.contains("/$/inet/127.0.0.1/9090/foobar"), "the trace keeps the other alternative: {text}");
    let text = delegate("/svc => /#/io.l5d.fs | /$/inet/127.0.0.1/9090", "/svc/foobar");
    assert_eq!(text.lines().last(), Some("=> /$/inet/127.0.0.1/9090 (residual /foobar)"), "{text}");
    let text = delegate("/svc => /#/io.l5d.fs", "/svc/foobar");
    assert_eq!(text.lines().last(), Some("=> ~"), "{text}");

    let a = Backend::start();
    let proxy = Corelink::start(&config(&format!("/svc/x => {};", inet(a.addr))), "epoll");
    let mut c = Conn::open(proxy.admin);
    c.send(b"GET /delegator.json?path=/svc/x&dtab=/svc/y%3D%3E/svc/x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let rsp = c.read_response("GET").unwrap();
    assert_eq!(rsp.status, 200);
    let json = String::from_utf8_lossy(&rsp.body);
    assert!(json.contains(&format!("\"bound\":{{\"id\":\"{}\"", inet(a.addr))), "{json}");
    let rsp = get(proxy.admin, "/delegator.json", &proxy.admin.to_string()).unwrap();
    assert_eq!(rsp.status, 400);
}

/// A dtab of one wide union whose branches all lead back to the same lookup
/// (`/svc=>/a; /a=>/a&/a&…`), in an `l5d-dtab` header and in a delegator
/// query: the bind stops at its step budget and says so, the trace stops at
/// its weight bound and says so, and the proxy serves on. (The steps each
/// takes are counted in crates/naming's unit tests, not timed here.)
#[test]
fn a_wide_union_of_loops_is_cut_off_in_a_header_and_in_the_delegator() {
    let a = Backend::start();
    let wide = format!("/svc/x=>/a;/a=>{}", vec!["/a"; 2500].join("&"));
    for io in backends() {
        let dtab = format!("/svc/y => {};", inet(a.addr));
        let proxy = Corelink::start(&config(&dtab).replace("  label: r\n", "  label: r\n  dtabHeaders: true\n"), io);
        let mut c = Conn::open(proxy.addr());
        c.send(format!("GET / HTTP/1.1\r\nHost: x\r\nl5d-dtab: {wide}\r\n\r\n").as_bytes());
        let rsp = c.read_response("GET").unwrap();
        let body = String::from_utf8_lossy(&rsp.body);
        assert!(rsp.status >= 400 && body.contains("more than 1000 lookups"), "{io}: {} {body}", rsp.status);
        assert_eq!(get(proxy.addr(), "/", "y").unwrap().status, 200, "{io}: still serving");

        // The admin's request line is limited to 4 KiB: 600 branches fit.
        let query = format!("/svc/x%3D%3E/a%3B/a%3D%3E{}", vec!["/a"; 600].join("%26"));
        let mut c = Conn::open(proxy.admin);
        c.send(format!("GET /delegator.json?path=/svc/x&dtab={query} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes());
        let rsp = c.read_response("GET").unwrap();
        assert_eq!(rsp.status, 200, "{io}");
        let json = String::from_utf8_lossy(&rsp.body);
        assert!(json.len() < 1 << 20, "{io}: {} bytes of trace", json.len());
        assert!(json.contains("delegation trace too large"), "{io}: {}", &json[..json.len().min(2000)]);
    }
}

/// Every linkerd example passes `corelink check` as it is, run where its
/// relative paths point (examples/linkerd: demo certificates, disco/).
#[test]
fn every_linkerd_example_passes_check() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/linkerd");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let out = std::process::Command::new(common::binary())
            .args(["check", "--config"])
            .arg(path.file_name().unwrap())
            .current_dir(&dir)
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{}: {text}", path.display());
        assert!(text.contains(": ok"), "{text}");
        checked += 1;
    }
    assert!(checked >= 7, "{checked}");
}

/// `legacyNamerPaths: true` lets a pre-0.6 dtab (`/svc => /io.l5d.fs`, no
/// `/#`) reach the fs namer; without it the path is negative, as in linkerd
/// 1.x.
#[test]
fn legacy_unprefixed_namer_paths_are_opt_in() {
    let backend = Backend::start();
    for io in backends() {
        let disco = common::tempdir::Dir::new("legacy-disco");
        std::fs::write(disco.path().join("serviceB"), format!("127.0.0.1 {}\n", backend.addr.port())).unwrap();
        for (legacy, status) in [(true, 200), (false, 502)] {
            let text = format!(
                "admin:\n  port: 0\nnamers:\n- kind: io.l5d.fs\n  rootDir: {}\nrouters:\n- protocol: http\n  label: r\n  legacyNamerPaths: {legacy}\n  dtab: |\n    /svc => /io.l5d.fs;\n  servers:\n  - port: 0\ncorelink:\n  workers: 1\n  shutdownDelayMs: 0\n",
                disco.path().display()
            );
            let proxy = Corelink::start(&text, io);
            assert_eq!(get(proxy.addr(), "/", "serviceB").unwrap().status, status, "{io} legacy={legacy}");
        }
    }
}
