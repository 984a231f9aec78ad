//! Load balancing and failure accrual through the real binary, with
//! backends started here that can be slow or die. Every test runs on each
//! I/O backend.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::client::{get, Conn};
use common::{backends, Corelink};

/// A keep-alive HTTP/1.1 backend answering 200 after `delay`; it counts the
/// requests it answers and can be killed (its port then refuses).
struct Upstream {
    addr: SocketAddr,
    served: Arc<AtomicUsize>,
    alive: Arc<AtomicBool>,
}

impl Upstream {
    fn start(delay: Duration) -> Upstream {
        Self::start_with(delay, 200)
    }

    fn start_with(delay: Duration, status: u16) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let served = Arc::new(AtomicUsize::new(0));
        let alive = Arc::new(AtomicBool::new(true));
        let (s, a) = (served.clone(), alive.clone());
        std::thread::spawn(move || {
            while a.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (s, a) = (s.clone(), a.clone());
                        std::thread::spawn(move || serve(conn, delay, status, &s, &a));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
            // The listener drops here: new connections are refused.
        });
        Upstream { addr, served, alive }
    }

    fn served(&self) -> usize {
        self.served.load(Ordering::SeqCst)
    }

    fn kill(&self) {
        self.alive.store(false, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn serve(mut conn: TcpStream, delay: Duration, status: u16, served: &AtomicUsize, alive: &AtomicBool) {
    conn.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while alive.load(Ordering::SeqCst) {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            buf.drain(..end + 4);
            std::thread::sleep(delay);
            if !alive.load(Ordering::SeqCst) {
                return;
            }
            served.fetch_add(1, Ordering::SeqCst);
            let response = format!("HTTP/1.1 {status} X\r\nContent-Length: 2\r\n\r\nok");
            if conn.write_all(response.as_bytes()).is_err() {
                return;
            }
            continue;
        }
        match conn.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return,
        }
    }
}

/// A port nothing listens on.
fn dead_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// corelink with an `io.l5d.fs` namer: serviceB is `lines` (`addr [* weight]`),
/// and `client` is YAML under `client:`.
fn proxy(dir: &common::tempdir::Dir, lines: &[String], client: &str, io: &str) -> Corelink {
    proxy_with(dir, lines, client, "", io)
}

/// As [`proxy`], with `router` (YAML at router level, e.g. `  service: ...`).
fn proxy_with(dir: &common::tempdir::Dir, lines: &[String], client: &str, router: &str, io: &str) -> Corelink {
    let disco = dir.path().join("disco");
    std::fs::create_dir_all(&disco).unwrap();
    std::fs::write(disco.join("serviceB"), lines.join("\n") + "\n").unwrap();
    let config = format!(
        "admin:\n  port: 0\nnamers:\n- kind: io.l5d.fs\n  rootDir: {}\nrouters:\n- protocol: http\n  label: out\n  dtab: |\n    /svc => /#/io.l5d.fs;\n  servers:\n  - port: 0\n  client:\n{client}{router}corelink:\n  workers: 1\n  shutdownDelayMs: 0\n",
        disco.display()
    );
    Corelink::start(&config, io)
}

fn line(addr: SocketAddr) -> String {
    format!("{} {}", addr.ip(), addr.port())
}

#[test]
fn a_killed_endpoint_costs_no_failed_requests() {
    for io in backends() {
        let dir = common::tempdir::Dir::new("balance-kill");
        let ups: Vec<Upstream> = (0..3).map(|_| Upstream::start(Duration::ZERO)).collect();
        let lines: Vec<String> = ups.iter().map(|u| line(u.addr)).collect();
        let proxy = proxy(&dir, &lines, "    hostConnectionPool:\n      maxIdle: 0\n", io);
        let mut conn = Conn::open(proxy.addr());
        let mut failed = 0;
        let mut at_kill = 0;
        for i in 0..300 {
            if i == 100 {
                at_kill = ups[2].served();
                ups[2].kill();
            }
            conn.send(b"GET / HTTP/1.1\r\nHost: serviceB\r\n\r\n");
            if conn.read_response("GET").unwrap().status != 200 {
                failed += 1;
            }
        }
        assert_eq!(failed, 0, "{io}: connect failures must move to another endpoint");
        assert_eq!(ups[2].served(), at_kill, "{io}: nothing reaches a killed endpoint");
        let total: usize = ups.iter().map(Upstream::served).sum();
        assert_eq!(total, 300, "{io}");
        eprintln!("{io}: shares {:?}", ups.iter().map(Upstream::served).collect::<Vec<_>>());
    }
}

#[test]
fn every_endpoint_dead_fails_fast_with_502() {
    for io in backends() {
        let dir = common::tempdir::Dir::new("balance-dead");
        let lines = vec![line(dead_port()), line(dead_port())];
        let proxy = proxy(
            &dir,
            &lines,
            "    failureAccrual:\n      kind: io.l5d.consecutiveFailures\n      failures: 2\n      backoff:\n        kind: constant\n        ms: 60000\n",
            io,
        );
        for _ in 0..3 {
            let rsp = get(proxy.addr(), "/", "serviceB").unwrap();
            assert_eq!(rsp.status, 502, "{io}");
        }
        let started = Instant::now();
        let rsp = get(proxy.addr(), "/", "serviceB").unwrap();
        let err = rsp.header("l5d-err").unwrap_or_default().replace('+', " ");
        assert_eq!(rsp.status, 502, "{io}");
        assert!(err.contains("marked dead"), "{io}: {err}");
        assert!(started.elapsed() < Duration::from_millis(500), "{io}: must fail fast");
        assert_eq!(client_metric(&proxy, "failure_accrual/removals"), 2, "{io}: both endpoints marked dead once");
        assert_eq!(client_metric(&proxy, "failure_accrual/probes"), 0, "{io}: the backoff has not expired");
    }
}

#[test]
fn a_failed_probe_is_counted() {
    for io in backends() {
        let dir = common::tempdir::Dir::new("balance-revive");
        let flaky = Upstream::start_with(Duration::ZERO, 500);
        let lines = vec![line(flaky.addr)];
        let client = "    failureAccrual:\n      kind: io.l5d.consecutiveFailures\n      failures: 2\n      backoff:\n        kind: constant\n        ms: 300\n";
        let proxy = proxy(&dir, &lines, client, io);
        for _ in 0..2 {
            assert_eq!(get(proxy.addr(), "/", "serviceB").unwrap().status, 500, "{io}");
        }
        assert_eq!(get(proxy.addr(), "/", "serviceB").unwrap().status, 502, "{io}: marked dead");
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(get(proxy.addr(), "/", "serviceB").unwrap().status, 500, "{io}: the probe goes through, and fails");
        assert_eq!(client_metric(&proxy, "failure_accrual/removals"), 1, "{io}");
        assert_eq!(client_metric(&proxy, "failure_accrual/probes"), 1, "{io}");
        assert_eq!(client_metric(&proxy, "failure_accrual/revivals"), 0, "{io}");
    }
}

#[test]
fn weights_from_the_namer_split_traffic() {
    for io in backends() {
        let dir = common::tempdir::Dir::new("balance-weights");
        let (a, b) = (Upstream::start(Duration::ZERO), Upstream::start(Duration::ZERO));
        let lines = vec![format!("{} * 1", line(a.addr)), format!("{} * 3", line(b.addr))];
        let proxy = proxy(&dir, &lines, "    loadBalancer:\n      kind: p2c\n", io);
        let mut conn = Conn::open(proxy.addr());
        for _ in 0..2000 {
            conn.send(b"GET / HTTP/1.1\r\nHost: serviceB\r\n\r\n");
            assert_eq!(conn.read_response("GET").unwrap().status, 200);
        }
        let share = a.served() as f64 / 2000.0;
        eprintln!("{io}: weight 1 of 4 got {:.1} %", share * 100.0);
        assert!((share - 0.25).abs() <= 0.05, "{io}: {share}");
    }
}

/// Sends `requests` from `clients` concurrent keep-alive connections.
fn concurrent_load(addr: SocketAddr, clients: usize, requests: usize) {
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            std::thread::spawn(move || {
                let mut conn = Conn::open(addr);
                for _ in 0..requests / clients {
                    conn.send(b"GET / HTTP/1.1\r\nHost: serviceB\r\n\r\n");
                    assert_eq!(conn.read_response("GET").unwrap().status, 200);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn a_slow_endpoint_gets_less_traffic() {
    for io in backends() {
        for kind in ["p2c", "ewma"] {
            let dir = common::tempdir::Dir::new("balance-slow");
            let fast = Upstream::start(Duration::ZERO);
            let slow = Upstream::start(Duration::from_millis(20));
            let lines = vec![line(fast.addr), line(slow.addr)];
            let proxy = proxy(&dir, &lines, &format!("    loadBalancer:\n      kind: {kind}\n"), io);
            concurrent_load(proxy.addr(), 8, 800);
            let share = slow.served() as f64 / 800.0;
            eprintln!("{io} {kind}: the slow endpoint got {:.1} % of 800 requests", share * 100.0);
            // Even split would be 50 %: p2c measured ~5 %, ewma ~1.5 % here.
            let limit = if kind == "ewma" { 0.10 } else { 0.15 };
            assert!(share < limit, "{io} {kind}: slow share {share}");
        }
    }
}

/// A service-scope metric from `/admin/metrics.json`.
fn service_metric(proxy: &Corelink, name: &str) -> u64 {
    proxy.metric_ending(&format!("/service/svc/serviceB/{name}")) as u64
}

/// A metric of serviceB's client (`rt/out/client/#/io.l5d.fs/serviceB/…`).
fn client_metric(proxy: &Corelink, name: &str) -> u64 {
    proxy.metric_ending(&format!("/client/#/io.l5d.fs/serviceB/{name}")) as u64
}

#[test]
fn retryable_failures_are_retried_on_healthy_endpoints() {
    for io in backends() {
        let dir = common::tempdir::Dir::new("balance-retry");
        let (good, bad) = (Upstream::start(Duration::ZERO), Upstream::start_with(Duration::ZERO, 503));
        let lines = vec![line(good.addr), line(bad.addr)];
        let service = "  service:\n    responseClassifier:\n      kind: io.l5d.http.retryableRead5XX\n";
        let client = "    failureAccrual:\n      kind: none\n";
        let proxy = proxy_with(&dir, &lines, client, service, io);
        let mut conn = Conn::open(proxy.addr());
        for _ in 0..100 {
            conn.send(b"GET / HTTP/1.1\r\nHost: serviceB\r\n\r\n");
            assert_eq!(conn.read_response("GET").unwrap().status, 200, "{io}");
        }
        // POST is not retryable with retryableRead5XX: some reach the client as 503.
        let mut failed_posts = 0;
        for _ in 0..40 {
            conn.send(b"POST / HTTP/1.1\r\nHost: serviceB\r\nContent-Length: 0\r\n\r\n");
            if conn.read_response("POST").unwrap().status == 503 {
                failed_posts += 1;
            }
        }
        assert!(failed_posts > 0, "{io}");
        let retries = service_metric(&proxy, "retries/total");
        assert_eq!(retries as usize, bad.served() - failed_posts, "{io}: every 503 to a GET was retried");
    }
}

#[test]
fn the_retry_budget_bounds_retry_traffic_when_everything_fails() {
    for io in backends() {
        let dir = common::tempdir::Dir::new("balance-budget");
        let ups: Vec<Upstream> = (0..2).map(|_| Upstream::start_with(Duration::ZERO, 503)).collect();
        let lines: Vec<String> = ups.iter().map(|u| line(u.addr)).collect();
        let service = "  service:\n    responseClassifier:\n      kind: io.l5d.http.retryableRead5XX\n    retries:\n      budget:\n        minRetriesPerSec: 0\n        percentCanRetry: 0.2\n        ttlSecs: 10\n";
        let proxy = proxy_with(&dir, &lines, "    failureAccrual:\n      kind: none\n", service, io);
        let mut conn = Conn::open(proxy.addr());
        for _ in 0..500 {
            conn.send(b"GET / HTTP/1.1\r\nHost: serviceB\r\n\r\n");
            assert_eq!(conn.read_response("GET").unwrap().status, 503, "{io}");
        }
        let attempts: usize = ups.iter().map(Upstream::served).sum();
        eprintln!("{io}: 500 requests, {attempts} attempts");
        assert!(attempts <= 600, "{io}: {attempts} attempts exceed the 20 % budget");
        assert!(attempts >= 590, "{io}: the budget was not used ({attempts})");
        assert!(service_metric(&proxy, "retries/budget_exhausted") >= 390, "{io}");
    }
}

#[test]
fn attempt_and_total_timeouts_answer_503() {
    for io in backends() {
        let dir = common::tempdir::Dir::new("balance-timeouts");
        let slow = Upstream::start(Duration::from_millis(600));
        let lines = vec![line(slow.addr)];
        let proxy = proxy(&dir, &lines, "    requestAttemptTimeoutMs: 100\n", io);
        let started = Instant::now();
        let rsp = get(proxy.addr(), "/", "serviceB").unwrap();
        let err = rsp.header("l5d-err").unwrap_or_default().replace('+', " ");
        assert_eq!(rsp.status, 503, "{io}: {err}");
        assert!(err.contains("requestAttemptTimeoutMs"), "{io}: {err}");
        assert!(started.elapsed() < Duration::from_millis(500), "{io}");

        let proxy = proxy_with(
            &dir,
            &lines,
            "    failureAccrual:\n      kind: none\n",
            "  service:\n    totalTimeoutMs: 100\n",
            io,
        );
        let started = Instant::now();
        let rsp = get(proxy.addr(), "/", "serviceB").unwrap();
        let err = rsp.header("l5d-err").unwrap_or_default().replace('+', " ");
        assert_eq!(rsp.status, 503, "{io}: {err}");
        assert!(err.contains("totalTimeoutMs"), "{io}: {err}");
        assert!(started.elapsed() < Duration::from_millis(500), "{io}");
    }
}

#[test]
fn pool_max_waiters_exceeded_fails_fast_with_502() {
    for io in backends() {
        let dir = common::tempdir::Dir::new("balance-waiters");
        let slow = Upstream::start(Duration::from_millis(600));
        let lines = vec![line(slow.addr)];
        let client = "    hostConnectionPool:\n      maxSize: 1\n      maxWaiters: 1\n";
        let proxy = proxy(&dir, &lines, client, io);
        let addr = proxy.addr();
        // The first request holds the only connection; the second waits for
        // it; the third finds the waiting line full.
        let first = std::thread::spawn(move || get(addr, "/", "serviceB").unwrap().status);
        std::thread::sleep(Duration::from_millis(100));
        let second = std::thread::spawn(move || {
            let started = Instant::now();
            (get(addr, "/", "serviceB").unwrap().status, started.elapsed())
        });
        std::thread::sleep(Duration::from_millis(100));
        let started = Instant::now();
        let rsp = get(addr, "/", "serviceB").unwrap();
        let err = rsp.header("l5d-err").unwrap_or_default().replace('+', " ");
        assert_eq!(rsp.status, 502, "{io}: {err}");
        assert!(err.contains("maxWaiters"), "{io}: {err}");
        assert!(started.elapsed() < Duration::from_millis(300), "{io}: must fail fast");
        assert_eq!(first.join().unwrap(), 200, "{io}");
        let (status, waited) = second.join().unwrap();
        assert_eq!(status, 200, "{io}");
        assert!(waited >= Duration::from_millis(900), "{io}: the waiter had to wait for the connection ({waited:?})");
        assert_eq!(client_metric(&proxy, "connects"), 1, "{io}: maxSize 1");
        assert_eq!(client_metric(&proxy, "pool_num_waited"), 1, "{io}");
        assert_eq!(client_metric(&proxy, "pool_num_too_many_waiters"), 1, "{io}");
        assert_eq!(client_metric(&proxy, "pool_waiters"), 0, "{io}");
        assert_eq!(client_metric(&proxy, "pool_reused"), 1, "{io}: the waiter took the returned connection");
    }
}

#[test]
fn min_size_keeps_idle_connections_past_their_idle_time() {
    for io in backends() {
        let dir = common::tempdir::Dir::new("balance-minsize");
        let up = Upstream::start(Duration::ZERO);
        let lines = vec![line(up.addr)];
        for (pool, kept) in [("minSize: 1, idleTimeMs: 100", 1), ("idleTimeMs: 100", 0)] {
            let client = format!("    hostConnectionPool: {{{pool}}}\n");
            let proxy = proxy(&dir, &lines, &client, io);
            assert_eq!(get(proxy.addr(), "/", "serviceB").unwrap().status, 200, "{io}");
            // Past the idle time and at least one sweep (every second).
            std::thread::sleep(Duration::from_millis(2100));
            assert_eq!(client_metric(&proxy, "connections"), kept, "{io} {pool}");
            assert_eq!(get(proxy.addr(), "/", "serviceB").unwrap().status, 200, "{io}");
            assert_eq!(client_metric(&proxy, "pool_reused"), kept, "{io} {pool}");
        }
    }
}

#[test]
fn the_requeue_budget_bounds_requeues_of_connect_failures() {
    for io in backends() {
        let dir = common::tempdir::Dir::new("balance-requeue");
        let up = Upstream::start(Duration::ZERO);
        let lines = vec![line(up.addr), line(dead_port())];
        // Round robin sends every other request to the dead endpoint, and
        // without accrual it stays in rotation: each of those needs a requeue.
        let client = "    loadBalancer: {kind: roundRobin}\n    failureAccrual: {kind: none}\n    requeueBudget: {minRetriesPerSec: 0, percentCanRetry: 0.25, ttlSecs: 10}\n    hostConnectionPool: {maxIdle: 0}\n";
        let proxy = proxy(&dir, &lines, client, io);
        let mut failed = 0;
        for _ in 0..200 {
            match get(proxy.addr(), "/", "serviceB").unwrap().status {
                200 => {}
                502 => failed += 1,
                other => panic!("{io}: {other}"),
            }
        }
        let requeues = client_metric(&proxy, "retries/requeues");
        let exhausted = client_metric(&proxy, "retries/budget_exhausted");
        eprintln!("{io}: 200 requests, {requeues} requeued, {failed} failed");
        assert!(requeues <= 50, "{io}: {requeues} requeues exceed 25 % of 200 requests");
        assert!(requeues >= 45, "{io}: the budget was not used ({requeues})");
        assert_eq!(exhausted, failed, "{io}: every refused requeue is a failed request");
        assert_eq!(up.served() as u64, 200 - failed, "{io}");
    }
}
