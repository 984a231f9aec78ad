//! DNS through the real binary against a real DNS server (Knot, started per
//! test on its own loopback address, port 53; see `common::dns`): host
//! names the config mentions, refreshed by TTL. Skipped with a notice where
//! knotd is missing or port 53 cannot be bound.
//!
//! The "pods" are tiny HTTP servers on 127.0.1.x sharing one port, each
//! answering with its own address, so a test sees which one served.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use common::dns::DnsServer;
use common::named::{ask, pods_on, served_by, NamedServer as Pod};
use common::Corelink;

/// `n` pods on 127.0.1.(base), 127.0.1.(base+1), … sharing one port.
fn pods(base: u8, n: u8) -> Vec<Pod> {
    pods_on(&(0..n).map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 1, base + i))).collect::<Vec<_>>())
}

fn config(dtab: &str, dns: &str) -> String {
    format!(
        "admin:\n  port: 0\nrouters:\n- protocol: http\n  label: r\n  dtab: |\n    {dtab}\n  servers:\n  - port: 0\n{dns}  workers: 2\n  shutdownDelayMs: 0\n"
    )
}

fn process_metric(proxy: &Corelink, name: &str) -> u64 {
    common::metric(&proxy.metrics(), &format!("corelink/{name}")) as u64
}

/// Asks until the pod named `name` answers, every answer meanwhile a 200
/// (zero failed requests across the change); returns how long it took.
fn switch_to(proxy: &Corelink, host: &str, name: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        match ask(proxy.addr(), host) {
            Ok((200, body)) if body == name => return start.elapsed(),
            Ok((200, _)) => {}
            other => panic!("{host}: a request failed during the change: {other:?}"),
        }
        assert!(start.elapsed() < limit, "{host}: {name} did not answer within {limit:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn config_names_follow_their_ttl_and_keep_the_last_answer_when_the_server_stops() {
    let Some(mut dns) = DnsServer::start("127.0.0.2", 1, "web A 127.0.1.1") else { return };
    let pods = pods(1, 2);
    let port = pods[0].port();
    let dtab = format!("/svc => /$/inet/web.corelink.test/{port};");
    let proxy = Corelink::start(&config(&dtab, &dns.corelink_dns("    minTtlSecs: 1\n")), "epoll");
    assert_eq!(served_by(proxy.addr(), "web"), "127.0.1.1");
    // TTL 1 s: the new address serves within the TTL, plus the control
    // thread's compile, with no request failing meanwhile.
    dns.set_records("web A 127.0.1.2");
    let took = switch_to(&proxy, "web", "127.0.1.2", Duration::from_secs(5));
    assert!(took < Duration::from_millis(2_500), "a 1 s TTL took {took:?}");
    assert!(process_metric(&proxy, "dns/config/changes") >= 1);
    // The server stops answering: the last answer keeps serving through
    // several failed refreshes.
    dns.pause(true);
    let failures = process_metric(&proxy, "dns/config/failures");
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        assert_eq!(served_by(proxy.addr(), "web"), "127.0.1.2");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(process_metric(&proxy, "dns/config/failures") > failures, "refreshes were tried and failed");
    dns.pause(false);
}

#[test]
fn a_long_ttl_is_not_asked_again_before_it_runs_out() {
    let Some(mut dns) = DnsServer::start("127.0.0.3", 30, "web A 127.0.1.11") else { return };
    let pods = pods(11, 2);
    let port = pods[0].port();
    let dtab = format!("/svc => /$/inet/web.corelink.test/{port};");
    let proxy = Corelink::start(&config(&dtab, &dns.corelink_dns("")), "epoll");
    assert_eq!(served_by(proxy.addr(), "web"), "127.0.1.11");
    let lookups = process_metric(&proxy, "dns/config/lookups");
    dns.set_records("web A 127.0.1.12");
    // Well inside the 30 s TTL: the old answer stands, no lookup was made.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(served_by(proxy.addr(), "web"), "127.0.1.11");
    assert_eq!(process_metric(&proxy, "dns/config/lookups"), lookups);
}

/// `minTtlSecs: 0` and `negativeTtlSecs: 0` are valid: a name with a 0 s
/// TTL, and one that does not exist, are still asked at most once a second.
#[test]
fn config_names_are_asked_at_most_once_a_second() {
    let Some(dns) = DnsServer::start("127.0.0.17", 0, "web A 127.0.1.98") else { return };
    let pods = pods(98, 1);
    let port = pods[0].port();
    let dtab = format!("/svc/web => /$/inet/web.corelink.test/{port}; /svc/nope => /$/inet/nope.corelink.test/{port};");
    let extra = "    minTtlSecs: 0\n    negativeTtlSecs: 0\n";
    let proxy = Corelink::start(&config(&dtab, &dns.corelink_dns(extra)), "epoll");
    assert_eq!(served_by(proxy.addr(), "web"), "127.0.1.98");
    let before = process_metric(&proxy, "dns/config/lookups");
    std::thread::sleep(Duration::from_secs(3));
    let asked = process_metric(&proxy, "dns/config/lookups") - before;
    // Two names, 3 s, once a second each (and a tick of slack each).
    assert!(asked <= 8, "{asked} lookups of two names in 3 s");
}

// ------------------------------------------- names only requests supply

/// A router naming requests by their first two path segments (host, port),
/// bound with `/$/inet`: `GET /web.corelink.test/8080/` goes to
/// `/$/inet/web.corelink.test/8080`, a name no config mentions.
fn request_config(dtab: &str, dns: &str) -> String {
    format!(
        "admin:\n  port: 0\nrouters:\n- protocol: http\n  label: r\n  identifier:\n    kind: io.l5d.path\n    segments: 2\n    consume: true\n  dtab: |\n    {dtab}\n  servers:\n  - port: 0\n{dns}  workers: 2\n  shutdownDelayMs: 0\n"
    )
}

fn ask_path(proxy: &Corelink, path: &str) -> Result<(u16, String), String> {
    let rsp = common::client::get(proxy.addr(), path, "client").map_err(|e| e.to_string())?;
    Ok((rsp.status, String::from_utf8_lossy(&rsp.body).into_owned()))
}

#[test]
fn request_names_are_resolved_while_the_request_waits_and_follow_their_ttl() {
    let Some(mut dns) = DnsServer::start("127.0.0.4", 1, "web A 127.0.1.21") else { return };
    let pods = pods(21, 3);
    let port = pods[0].port();
    let dtab = format!("/svc => /$/inet | /$/inet/127.0.1.23/{port};");
    let extra = "    minTtlSecs: 1\n    negativeTtlSecs: 1\n";
    let proxy = Corelink::start(&request_config(&dtab, &dns.corelink_dns(extra)), "epoll");
    let web = format!("/web.corelink.test/{port}/");
    // The first request waits for the answer instead of failing.
    assert_eq!(ask_path(&proxy, &web), Ok((200, "127.0.1.21".to_string())));
    assert!(process_metric(&proxy, "dns/request/lookups") >= 1);
    assert!(process_metric(&proxy, "dns/request/waits") >= 1);
    assert_eq!(process_metric(&proxy, "routing/namer_updates"), 0, "no snapshot per answer");
    // TTL 1 s: the new address serves within it (plus the stale grace),
    // no request failing meanwhile.
    dns.set_records("web A 127.0.1.22");
    let start = Instant::now();
    loop {
        match ask_path(&proxy, &web) {
            Ok((200, b)) if b == "127.0.1.22" => break,
            Ok((200, _)) => {}
            other => panic!("a request failed during the change: {other:?}"),
        }
        assert!(start.elapsed() < Duration::from_secs(5), "the new address never served");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(start.elapsed() < Duration::from_millis(3_500), "a 1 s TTL took {:?}", start.elapsed());
    // NXDOMAIN fails inside the binding (finagle's /$/inet always binds):
    // 502 saying why, and the dtab's alternative is not taken.
    let nope = common::client::get(proxy.addr(), &format!("/nope.corelink.test/{port}/"), "client").unwrap();
    assert_eq!(nope.status, 502);
    let body = String::from_utf8_lossy(&nope.body);
    assert!(body.contains("(nope.corelink.test: no such host)"), "{body}");
    assert_eq!(pods[2].last_served(), None, "the alternative /$/inet/127.0.1.23 was never used");
    // ... briefly: once the name exists, it serves after the negative TTL.
    dns.set_records("web A 127.0.1.22\nnope A 127.0.1.21");
    let start = Instant::now();
    while ask_path(&proxy, &format!("/nope.corelink.test/{port}/")) != Ok((200, "127.0.1.21".to_string())) {
        assert!(start.elapsed() < Duration::from_secs(5), "the negative answer was kept too long");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_request_waits_no_longer_than_the_resolution_timeout() {
    let Some(dns) = DnsServer::start("127.0.0.5", 1, "web A 127.0.1.31") else { return };
    let pods = pods(31, 1);
    let port = pods[0].port();
    let extra = "    timeoutMs: 400\n";
    let proxy = Corelink::start(&request_config("/svc => /$/inet;", &dns.corelink_dns(extra)), "epoll");
    assert_eq!(ask_path(&proxy, &format!("/web.corelink.test/{port}/")), Ok((200, "127.0.1.31".to_string())));
    dns.pause(true);
    let start = Instant::now();
    let answer = ask_path(&proxy, &format!("/other.corelink.test/{port}/"));
    let took = start.elapsed();
    assert!(matches!(answer, Ok((502, _))), "{answer:?}");
    assert!(took >= Duration::from_millis(350) && took < Duration::from_millis(1_500), "waited {took:?}");
    // The name resolved before keeps serving.
    assert_eq!(ask_path(&proxy, &format!("/web.corelink.test/{port}/")), Ok((200, "127.0.1.31".to_string())));
    dns.pause(false);
}

#[test]
fn a_flood_of_random_names_is_rate_limited_and_capped() {
    let Some(_dns) = DnsServer::start("127.0.0.6", 5, "web A 127.0.1.41") else { return };
    let pods = pods(41, 1);
    let port = pods[0].port();
    let extra = "    lookupsPerSecond: 20\n    maxNames: 30\n";
    let proxy = Corelink::start(&request_config("/svc => /$/inet;", &_dns.corelink_dns(extra)), "epoll");
    let start = Instant::now();
    let mut failed = 0;
    for i in 0..400 {
        match ask_path(&proxy, &format!("/r{i}x.corelink.test/{port}/")) {
            Ok((502, _)) => failed += 1,
            other => panic!("r{i}x: {other:?}"),
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    assert_eq!(failed, 400);
    let lookups = process_metric(&proxy, "dns/request/lookups") as f64;
    // The burst (20) plus 20 per second, whatever the clients send.
    assert!(lookups <= 20.0 + 20.0 * elapsed + 2.0, "{lookups} lookups in {elapsed:.1} s");
    assert!(process_metric(&proxy, "dns/request/rate_limited") > 0);
    assert!(process_metric(&proxy, "dns/request/evicted") > 0, "answers past maxNames were dropped");
    // A real name still resolves and serves (once the bucket has refilled).
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(ask_path(&proxy, &format!("/web.corelink.test/{port}/")), Ok((200, "127.0.1.41".to_string())));
}

/// A flood of made-up names uses up the lookup rate and fills the maps, but
/// a name that resolved keeps serving through it: its refreshes refused by
/// the limit keep its addresses, and the cores evict the flood's negative
/// answers before it.
#[test]
fn a_flood_of_random_names_does_not_break_a_working_name() {
    let Some(dns) = DnsServer::start("127.0.0.16", 1, "web A 127.0.1.97") else { return };
    let pods = pods(97, 1);
    let port = pods[0].port();
    let extra = "    lookupsPerSecond: 5
    maxNames: 8
    minTtlSecs: 1
";
    let proxy = Corelink::start(&request_config("/svc => /$/inet;", &dns.corelink_dns(extra)), "epoll");
    let web = format!("/web.corelink.test/{port}/");
    assert_eq!(ask_path(&proxy, &web), Ok((200, "127.0.1.97".to_string())));
    let stop = std::sync::atomic::AtomicBool::new(false);
    let addr = proxy.addr();
    std::thread::scope(|s| {
        let flood = s.spawn(|| {
            let mut i = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = common::client::get(addr, &format!("/f{i}x.corelink.test/{port}/"), "client");
                i += 1;
            }
            i
        });
        let until = Instant::now() + Duration::from_secs(5);
        let (mut failures, mut asked) = (Vec::new(), 0);
        while Instant::now() < until {
            asked += 1;
            match ask_path(&proxy, &web) {
                Ok((200, _)) => {}
                other => failures.push(other),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let flooded = flood.join().unwrap();
        assert!(
            failures.is_empty(),
            "{} of web's {asked} requests failed during {flooded} made-up names: {:?}",
            failures.len(),
            &failures[..failures.len().min(3)]
        );
    });
    assert!(process_metric(&proxy, "dns/request/rate_limited") > 0);
    assert!(process_metric(&proxy, "dns/request/evicted") > 0);
}

/// Only the asked name's addresses are used, found through its CNAME chain
/// (the server answers the chain in one message).
#[test]
fn request_names_resolve_through_cname_chains() {
    let Some(dns) = DnsServer::start("127.0.0.18", 1, "web CNAME lb\nlb CNAME pool\npool A 127.0.1.99") else {
        return;
    };
    let pods = pods(99, 1);
    let port = pods[0].port();
    let proxy = Corelink::start(&request_config("/svc => /$/inet;", &dns.corelink_dns("")), "epoll");
    assert_eq!(ask_path(&proxy, &format!("/web.corelink.test/{port}/")), Ok((200, "127.0.1.99".to_string())));
}

/// linkerd's `proxy.yaml` (`porthostPfx`, `rinet`) with host names only
/// requests supply, resolved at request time by the test's DNS server:
/// `Host: web…:PORT` reaches web's PORT, `Host: www…` port 80 (where port 80
/// can be bound), and a host that does not exist fails inside its binding
/// with a 502 saying so: the earlier dentry (`/svc => /ph/80`) is not taken.
#[test]
fn linkerd_proxy_example_resolves_the_hosts_requests_name() {
    let Some(dns) = DnsServer::start("127.0.0.10", 1, "web A 127.0.1.71\nwww A 127.0.1.72") else { return };
    let web = Pod::on(std::net::TcpListener::bind("127.0.1.71:0").unwrap(), "web");
    let www = match std::net::TcpListener::bind("127.0.1.72:80") {
        Ok(l) => Some(Pod::on(l, "www")),
        Err(e) => {
            eprintln!("notice: Host without a port not tested: cannot bind 127.0.1.72:80 ({e})");
            None
        }
    };
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/linkerd/proxy.yaml");
    let example = std::fs::read_to_string(path).unwrap();
    let text = example.replace("  - port: 4140\n", "  - port: 0\n");
    assert_ne!(text, example, "the example's server port moved");
    let text = format!("admin:\n  port: 0\n{text}{}  workers: 2\n  shutdownDelayMs: 0\n", dns.corelink_dns(""));
    for io in common::backends() {
        let proxy = Corelink::start(&text, io);
        assert_eq!(served_by(proxy.addr(), &format!("web.corelink.test:{}", web.port())), "web", "{io}");
        if www.is_some() {
            assert_eq!(served_by(proxy.addr(), "www.corelink.test"), "www", "{io}");
        }
        let nope = common::client::get(proxy.addr(), "/", &format!("nope.corelink.test:{}", web.port())).unwrap();
        let body = String::from_utf8_lossy(&nope.body);
        assert_eq!(nope.status, 502, "{io}: {body}");
        assert!(body.contains("/svc/nope.corelink.test:"), "{io}: {body}");
        assert!(body.contains("(nope.corelink.test: no such host)"), "{io}: {body}");
        assert!(process_metric(&proxy, "dns/request/lookups") >= 2, "{io}");
    }
}

// ------------------------------------------------------- io.l5d.dnssrv

/// A router on the Host header, with an `io.l5d.dnssrv` namer on `dns`:
/// `web` and `gone` are SRV records, each falling back to 127.0.1.(fb).
fn srv_config(dns: &DnsServer, port: u16, fallback: &str, namer_extra: &str) -> String {
    format!(
        "admin:\n  port: 0\nnamers:\n- kind: io.l5d.dnssrv\n  experimental: true\n  refreshIntervalSeconds: 1\n  dnsHosts: [\"{ip}\"]\n{namer_extra}routers:\n- protocol: http\n  label: r\n  dtab: |\n    /dnssrv => /#/io.l5d.dnssrv;\n    /svc/web => /dnssrv/_http._tcp.web.corelink.test | /$/inet/{fallback}/{port};\n    /svc/gone => /dnssrv/_http._tcp.gone.corelink.test | /$/inet/{fallback}/{port};\n  servers:\n  - port: 0\ncorelink:\n  workers: 2\n  shutdownDelayMs: 0\n  dns:\n    timeoutMs: 500\n",
        ip = dns.ip
    )
}

fn srv_records(port: u16, targets: &[(&str, u16, &str)]) -> String {
    let mut zone = String::new();
    for (name, weight, ip) in targets {
        zone.push_str(&format!("_http._tcp.web SRV 0 {weight} {port} {name}\n{name} A {ip}\n"));
    }
    zone
}

#[test]
fn dnssrv_binds_the_targets_follows_changes_and_falls_back() {
    let pods = pods(51, 4);
    let port = pods[0].port();
    let zone = srv_records(port, &[("a", 30, "127.0.1.51"), ("b", 10, "127.0.1.52")]);
    let Some(mut dns) = DnsServer::start("127.0.0.7", 1, &zone) else { return };
    let proxy = Corelink::start(&srv_config(&dns, port, "127.0.1.54", ""), "epoll");
    // Both targets serve (weights ignored by default: about half each).
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..200 {
        *seen.entry(served_by(proxy.addr(), "web")).or_insert(0) += 1;
    }
    assert_eq!(seen.keys().collect::<Vec<_>>(), ["127.0.1.51", "127.0.1.52"], "{seen:?}");
    assert!(seen["127.0.1.52"] > 60, "weights are ignored by default: {seen:?}");
    // NXDOMAIN binds negative: the dtab falls back.
    assert_eq!(served_by(proxy.addr(), "gone"), "127.0.1.54");
    // The record set changes (a reload): picked up within the refresh
    // interval (1 s, plus the lookup and a snapshot), no request failing.
    dns.set_records(&srv_records(port, &[("a", 30, "127.0.1.51"), ("c", 10, "127.0.1.53")]));
    let took = switch_to(&proxy, "web", "127.0.1.53", Duration::from_secs(5));
    assert!(took < Duration::from_millis(2_500), "took {took:?}");
    // The server stops answering: negative (linkerd's rule), the fall-back
    // serves.
    dns.pause(true);
    let start = Instant::now();
    while served_by(proxy.addr(), "web") != "127.0.1.54" {
        assert!(start.elapsed() < Duration::from_secs(5), "never fell back");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(process_metric(&proxy, "namer/io.l5d.dnssrv/lookup_failures") > 0);
    dns.pause(false);
}

#[test]
fn dnssrv_extensions_weigh_targets_and_keep_the_last_good_set() {
    let pods = pods(61, 3);
    let port = pods[0].port();
    let zone = srv_records(port, &[("a", 10, "127.0.1.61"), ("b", 30, "127.0.1.62")]);
    let Some(dns) = DnsServer::start("127.0.0.8", 1, &zone) else { return };
    let extra = "  srvWeights: true\n  keepLastGoodSecs: 30\n";
    let proxy = Corelink::start(&srv_config(&dns, port, "127.0.1.63", extra), "epoll");
    assert_eq!(served_by(proxy.addr(), "gone"), "127.0.1.63");
    // SRV weights 10:30 reach the balancer, as io.l5d.fs weights do.
    let mut conn = common::client::Conn::open(proxy.addr());
    let mut light = 0;
    for _ in 0..2000 {
        conn.send(b"GET / HTTP/1.1\r\nHost: web\r\n\r\n");
        let rsp = conn.read_response("GET").unwrap();
        assert_eq!(rsp.status, 200);
        light += usize::from(rsp.body == b"127.0.1.61");
    }
    let share = light as f64 / 2000.0;
    assert!((share - 0.25).abs() <= 0.05, "weight 10 of 40 got {share}");
    // The server stops answering: the last good set keeps serving.
    dns.pause(true);
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        let by = served_by(proxy.addr(), "web");
        assert!(by == "127.0.1.61" || by == "127.0.1.62", "{by}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(process_metric(&proxy, "namer/io.l5d.dnssrv/kept_last_good") > 0);
    assert!(proxy.stderr_lines().iter().any(|l| l.contains("the last good set keeps serving")));
    dns.pause(false);
}

/// `dnsHosts` by name, as linkerd's docs write it (`ns0.example.org`):
/// the names are resolved with `corelink.dns` (here the same test server,
/// which holds an A record for its own name), and their SRV records then
/// asked of the addresses found. A server name that does not resolve
/// leaves the namer without a server: its records bind `~` (the dtab falls
/// back) and the reason is logged.
#[test]
fn dnssrv_names_its_dns_servers_by_host_name() {
    let pods = pods(81, 2);
    let port = pods[0].port();
    let mut zone = srv_records(port, &[("a", 10, "127.0.1.81")]);
    zone.push_str("ns A 127.0.0.12\n");
    let Some(dns) = DnsServer::start("127.0.0.12", 1, &zone) else { return };
    let config = |dns_hosts: &str| {
        format!(
            "admin:\n  port: 0\nnamers:\n- kind: io.l5d.dnssrv\n  experimental: true\n  refreshIntervalSeconds: 1\n  dnsHosts: [{dns_hosts}]\nrouters:\n- protocol: http\n  label: r\n  dtab: |\n    /dnssrv => /#/io.l5d.dnssrv;\n    /svc/web => /dnssrv/_http._tcp.web.corelink.test | /$/inet/127.0.1.82/{port};\n  servers:\n  - port: 0\n{}    timeoutMs: 500\n  workers: 2\n  shutdownDelayMs: 0\n",
            dns.corelink_dns("")
        )
    };
    let proxy = Corelink::start(&config("ns.corelink.test"), "epoll");
    assert_eq!(served_by(proxy.addr(), "web"), "127.0.1.81");
    drop(proxy);
    // A server name that does not exist: the record binds `~`.
    let proxy = Corelink::start(&config("nons.corelink.test"), "epoll");
    assert_eq!(served_by(proxy.addr(), "web"), "127.0.1.82");
    let start = Instant::now();
    while !proxy.stderr_lines().iter().any(|l| l.contains("nons.corelink.test: no such host")) {
        assert!(start.elapsed() < Duration::from_secs(5), "no log line names the server: {:?}", proxy.stderr_lines());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A record nobody binds any more stops being refreshed and is dropped
/// after `idleTtlSecs`; one bound all along (through cached routes, which
/// bind again within half the idle time) is kept; a dropped one binding
/// again is looked up anew.
#[test]
fn dnssrv_records_nobody_binds_expire() {
    let pods = pods(91, 2);
    let port = pods[0].port();
    let Some(dns) = DnsServer::start("127.0.0.13", 1, &srv_records(port, &[("a", 10, "127.0.1.91")])) else {
        return;
    };
    // 4 s: a record in use is bound again every 2 s at least, so a stall
    // of the test's thread under load shorter than that expires nothing.
    let proxy = Corelink::start(&srv_config(&dns, port, "127.0.1.92", "  idleTtlSecs: 4\n"), "epoll");
    let until = Instant::now() + Duration::from_secs(6);
    let mut conn = common::client::Conn::open(proxy.addr());
    while Instant::now() < until {
        conn.send(b"GET / HTTP/1.1\r\nHost: web\r\n\r\n");
        let rsp = conn.read_response("GET").unwrap();
        assert_eq!((rsp.status, &rsp.body[..]), (200, &b"127.0.1.91"[..]));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(process_metric(&proxy, "namer/io.l5d.dnssrv/expired"), 0, "a record in use was dropped");
    drop(conn);
    // Unused: dropped within the idle time (plus a sweep), then not asked.
    let start = Instant::now();
    while process_metric(&proxy, "namer/io.l5d.dnssrv/expired") == 0 {
        assert!(start.elapsed() < Duration::from_secs(8), "the idle record was never dropped");
        std::thread::sleep(Duration::from_millis(50));
    }
    let asked = |p: &Corelink| {
        process_metric(p, "namer/io.l5d.dnssrv/lookup_successes")
            + process_metric(p, "namer/io.l5d.dnssrv/lookup_negative")
            + process_metric(p, "namer/io.l5d.dnssrv/lookup_failures")
    };
    let before = asked(&proxy);
    std::thread::sleep(Duration::from_millis(2_500));
    assert_eq!(asked(&proxy), before, "a dropped record was still refreshed");
    assert_eq!(served_by(proxy.addr(), "web"), "127.0.1.91");
}

/// At most 100 targets of one answer are resolved: the lowest priorities
/// (then names), whatever order the server sends them in.
#[test]
fn dnssrv_uses_at_most_100_targets() {
    let pods = pods(93, 2);
    let port = pods[0].port();
    let mut zone = String::new();
    for i in 0..150 {
        let (priority, ip) = if i < 100 { (0, "127.0.1.93") } else { (1, "127.0.1.94") };
        zone.push_str(&format!("_http._tcp.web SRV {priority} 10 {port} t{i}\nt{i} A {ip}\n"));
    }
    let Some(dns) = DnsServer::start("127.0.0.14", 1, &zone) else { return };
    let proxy = Corelink::start(&srv_config(&dns, port, "127.0.1.95", ""), "epoll");
    for _ in 0..50 {
        assert_eq!(served_by(proxy.addr(), "web"), "127.0.1.93", "a target past the cap was used");
    }
    assert!(process_metric(&proxy, "namer/io.l5d.dnssrv/targets_dropped") >= 50);
}

/// Clients making up record names change the namer's records as fast as
/// lookups answer: the snapshots for them are spaced as Kubernetes ones
/// (at least 100 ms apart), however many records change.
#[test]
fn dnssrv_changes_publish_at_most_every_100_ms() {
    let pods = pods(96, 1);
    let port = pods[0].port();
    let Some(dns) = DnsServer::start("127.0.0.15", 1, &srv_records(port, &[("a", 10, "127.0.1.96")])) else {
        return;
    };
    let config = format!(
        "admin:\n  port: 0\nnamers:\n- kind: io.l5d.dnssrv\n  experimental: true\n  refreshIntervalSeconds: 60\n  dnsHosts: [\"{}\"]\nrouters:\n- protocol: http\n  label: r\n  dtab: |\n    /svc => /#/io.l5d.dnssrv;\n  servers:\n  - port: 0\ncorelink:\n  workers: 2\n  shutdownDelayMs: 0\n  dns:\n    timeoutMs: 500\n    lookupsPerSecond: 10000\n",
        dns.ip
    );
    let proxy = Corelink::start(&config, "epoll");
    let addr = proxy.addr();
    let start = Instant::now();
    let answered: usize = std::thread::scope(|s| {
        let threads: Vec<_> = (0..8)
            .map(|t| {
                s.spawn(move || {
                    let mut n = 0;
                    while start.elapsed() < Duration::from_secs(3) {
                        let host = format!("_r{t}x{n}._tcp.corelink.test");
                        assert!(common::client::get(addr, "/", &host).is_ok(), "{host}");
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).sum()
    });
    let elapsed = start.elapsed().as_secs_f64();
    let publishes = process_metric(&proxy, "routing/namer_updates") as f64;
    assert!(answered > 20, "{answered} requests");
    assert!(publishes <= elapsed * 10.0 + 3.0, "{publishes} snapshots for {answered} new records in {elapsed:.1} s");
    assert_eq!(served_by(addr, "_http._tcp.web.corelink.test"), "127.0.1.96");
}
