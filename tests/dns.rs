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
