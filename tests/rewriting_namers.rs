//! linkerd's built-in rewriting namers through the real binary: the
//! `linkerd/examples/proxy.yaml` pattern (`io.buoyant.porthostPfx` then
//! `io.buoyant.rinet`), fall-through when a rewrite does not match, rinet with
//! IP literals and with a dtab host name, and the step-by-step trace of
//! `corelink delegate`. Every routing test runs on each I/O backend.

mod common;

use std::net::ToSocketAddrs;

use common::backend::Backend;
use common::client::get;
use common::{backends, Corelink};

fn config(dtab: &str) -> String {
    format!(
        "admin:\n  port: 0\nrouters:\n- protocol: http\n  label: r\n  dtab: |\n    {dtab}\n  servers:\n  - port: 0\ncorelink:\n  workers: 2\n  shutdownDelayMs: 0\n"
    )
}

/// The body of the test backend's `/headers` answer: the request's fields
/// as the backend saw them.
fn upstream_headers(proxy: &Corelink, host: &str) -> String {
    let rsp = get(proxy.addr(), "/headers", host).unwrap();
    assert_eq!(rsp.status, 200, "{host}");
    String::from_utf8_lossy(&rsp.body).into_owned()
}

/// `l5d-err`, decoded (it is form-encoded: `+` for space, `%XX`).
fn l5d_err(rsp: &common::client::Response) -> String {
    let raw = rsp.header("l5d-err").unwrap_or_default().as_bytes();
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < raw.len() => {
                let hex = std::str::from_utf8(&raw[i + 1..i + 3]).unwrap_or("");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `text` has this line (the backend echoes one field a line).
fn has_line(text: &str, line: &str) -> bool {
    text.lines().any(|l| l == line)
}

/// linkerd's examples/proxy.yaml as it is (examples/linkerd/proxy.yaml),
/// but for its server and admin ports: `Host: 127.0.0.1:PORT` reaches the
/// backend on PORT; a Host without a host before the port fails the
/// binding instead of falling through.
#[test]
fn linkerd_proxy_example_routes_by_the_port_in_the_host() {
    let (a, b) = (Backend::start(), Backend::start());
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/linkerd/proxy.yaml");
    let example = std::fs::read_to_string(path).unwrap();
    let text = example.replace("  - port: 4140\n", "  - port: 0\n");
    assert_ne!(text, example, "the example's server port moved");
    let text = format!("admin:\n  port: 0\n{text}corelink:\n  workers: 2\n  shutdownDelayMs: 0\n");
    let host_a = format!("127.0.0.1:{}", a.addr.port());
    let host_b = format!("127.0.0.1:{}", b.addr.port());
    for io in backends() {
        let proxy = Corelink::start(&text, io);
        let (a0, b0) = (a.requests(), b.requests());
        for _ in 0..3 {
            assert_eq!(get(proxy.addr(), "/", &host_a).unwrap().status, 200, "{io}");
        }
        for _ in 0..2 {
            assert_eq!(get(proxy.addr(), "/", &host_b).unwrap().status, 200, "{io}");
        }
        assert_eq!((a.requests() - a0, b.requests() - b0), (3, 2), "{io}");
        let seen = upstream_headers(&proxy, &host_a);
        assert!(has_line(&seen, &format!("l5d-dst-service: /svc/127.0.0.1:{}", a.addr.port())), "{io}: {seen}");
        assert!(
            has_line(&seen, &format!("l5d-dst-client: /$/io.buoyant.rinet/{}/127.0.0.1", a.addr.port())),
            "{io}: {seen}"
        );
        assert!(has_line(&seen, &format!("Host: {host_a}")), "{io}: {seen}");
        // `:PORT`: porthostPfx's host would be empty, which linkerd's Path
        // rejects; the error fails the request rather than falling through
        // to /ph/80.
        let (a1, b1) = (a.requests(), b.requests());
        let rsp = get(proxy.addr(), "/", &format!(":{}", a.addr.port())).unwrap();
        assert_eq!(rsp.status, 502, "{io}");
        let err = l5d_err(&rsp);
        assert!(
            err.contains(&format!(
                "io.buoyant.porthostPfx cannot rewrite /ph/:{}: the result would have an empty segment",
                a.addr.port()
            )),
            "{io}: {err}"
        );
        assert_eq!((a.requests(), b.requests()), (a1, b1), "{io}");
    }
}

/// A Host without a port is negative for porthostPfx, so the earlier
/// dentry (here: the fallback backend's port instead of proxy.yaml's 80)
/// binds; a Host whose port is not a DNS label falls through as well.
#[test]
fn porthost_falls_through_when_the_host_has_no_port() {
    let (a, fallback) = (Backend::start(), Backend::start());
    let dtab = format!(
        "/ph => /$/io.buoyant.rinet ; /svc => /ph/{} ; /svc => /$/io.buoyant.porthostPfx/ph ;",
        fallback.addr.port()
    );
    for io in backends() {
        let proxy = Corelink::start(&config(&dtab), io);
        let (a0, f0) = (a.requests(), fallback.requests());
        assert_eq!(get(proxy.addr(), "/", &format!("127.0.0.1:{}", a.addr.port())).unwrap().status, 200, "{io}");
        assert_eq!(get(proxy.addr(), "/", "127.0.0.1").unwrap().status, 200, "{io}");
        assert_eq!((a.requests() - a0, fallback.requests() - f0), (1, 1), "{io}");
        let seen = upstream_headers(&proxy, "127.0.0.1");
        assert!(
            has_line(&seen, &format!("l5d-dst-client: /$/io.buoyant.rinet/{}/127.0.0.1", fallback.addr.port())),
            "{io}: {seen}"
        );
        // An upper-case "port" is no DNS label: /ph/PORT/127.0.0.1:HTTP,
        // whose host is no address nor a valid DNS name: refused before
        // any resolver is asked.
        let rsp = get(proxy.addr(), "/", "127.0.0.1:HTTP").unwrap();
        assert_eq!(rsp.status, 502, "{io}");
        let err = l5d_err(&rsp);
        assert!(err.contains("(127.0.0.1:HTTP: not a valid DNS host name)"), "{io}: the host's own failure: {err}");
        assert_eq!(common::metric(&proxy.metrics(), "corelink/dns/request/lookups"), 0.0, "{io}: no lookup");
        assert_eq!(common::metric(&proxy.metrics(), "corelink/dns/request/invalid"), 1.0, "{io}");
        assert!(err.starts_with("No hosts are available for /svc/127.0.0.1:HTTP,"), "{io}: {err}");
        assert_eq!(err.matches("No hosts are available").count(), 1, "{io}: said once: {err}");
    }
}

/// `/$/io.buoyant.rinet/PORT/HOST` with an IP literal, and with a host name
/// written in the dtab (resolved ahead, like `/$/inet/localhost/PORT`).
#[test]
fn rinet_reaches_ip_literals_and_dtab_host_names() {
    let (a, b) = (Backend::start(), Backend::start());
    let dtab = format!(
        "/svc/ip => /$/io.buoyant.rinet/{}/127.0.0.1 ; /svc/name => /$/io.buoyant.rinet/{}/localhost ;",
        a.addr.port(),
        b.addr.port()
    );
    // The backends listen on 127.0.0.1 only; where localhost also means ::1
    // the name test would depend on the balancer's pick.
    let localhost_is_v4 = ("localhost", 0).to_socket_addrs().is_ok_and(|mut addrs| addrs.all(|a| a.is_ipv4()));
    for io in backends() {
        let proxy = Corelink::start(&config(&dtab), io);
        let (a0, b0) = (a.requests(), b.requests());
        for _ in 0..3 {
            assert_eq!(get(proxy.addr(), "/", "ip").unwrap().status, 200, "{io}");
        }
        assert_eq!(a.requests() - a0, 3, "{io}");
        let seen = upstream_headers(&proxy, "ip");
        assert!(
            has_line(&seen, &format!("l5d-dst-client: /$/io.buoyant.rinet/{}/127.0.0.1", a.addr.port())),
            "{io}: {seen}"
        );
        if localhost_is_v4 {
            assert_eq!(get(proxy.addr(), "/", "name").unwrap().status, 200, "{io}");
            assert_eq!(b.requests() - b0, 1, "{io}");
        } else {
            eprintln!("localhost is not only 127.0.0.1 here: the dtab host name case is skipped");
        }
    }
}

/// `corelink delegate` shows each rewrite as a step of its own.
#[test]
fn delegate_shows_each_rewrite() {
    let run = |dtab: &str, path: &str| {
        let out =
            std::process::Command::new(common::binary()).args(["delegate", "--dtab", dtab, path]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let proxy = "/ph => /$/io.buoyant.rinet ; /svc => /ph/80 ; /svc => /$/io.buoyant.porthostPfx/ph ;";
    let text = run(proxy, "/svc/10.0.0.1:8080");
    let want = [
        "/svc/10.0.0.1:8080 -> alt",
        "  /$/io.buoyant.porthostPfx/ph/10.0.0.1:8080 [/svc=>/$/io.buoyant.porthostPfx/ph] -> rewritten by io.buoyant.porthostPfx",
        "    /ph/8080/10.0.0.1 [/svc=>/$/io.buoyant.porthostPfx/ph]",
        "      /$/io.buoyant.rinet/8080/10.0.0.1 [/ph=>/$/io.buoyant.rinet] -> bound /$/io.buoyant.rinet/8080/10.0.0.1",
        "  /ph/80/10.0.0.1:8080 [/svc=>/ph/80]",
        "    /$/io.buoyant.rinet/80/10.0.0.1:8080 [/ph=>/$/io.buoyant.rinet] -> bound /$/io.buoyant.rinet/80/10.0.0.1:8080",
        "=> /$/io.buoyant.rinet/8080/10.0.0.1",
    ];
    assert_eq!(text.lines().collect::<Vec<_>>(), want, "{text}");
    let text = run(proxy, "/svc/10.0.0.1");
    assert!(
        text.contains("  /$/io.buoyant.porthostPfx/ph/10.0.0.1 [/svc=>/$/io.buoyant.porthostPfx/ph] -> ~ (neg)\n"),
        "{text}"
    );
    assert!(text.ends_with("=> /$/io.buoyant.rinet/80/10.0.0.1\n"), "{text}");
    // linkerd's docs/namer.md examples of the other three.
    let text = run("/ip-hostport => /$/inet; /svc => /$/io.buoyant.hostportPfx/ip-hostport;", "/svc/10.0.0.1:80");
    assert!(text.contains("-> rewritten by io.buoyant.hostportPfx\n"), "{text}");
    assert!(text.contains("    /ip-hostport/10.0.0.1/80 [/svc=>/$/io.buoyant.hostportPfx/ip-hostport]\n"), "{text}");
    assert!(text.ends_with("=> /$/inet/10.0.0.1/80\n"), "{text}");
    let text =
        run("/m => /$/inet/10.0.0.2/80; /host => /$/io.buoyant.http.domainToPathPfx/m;", "/host/web.example.com");
    assert!(text.contains("    /m/com/example/web [/host=>/$/io.buoyant.http.domainToPathPfx/m]\n"), "{text}");
    assert!(text.ends_with("=> /$/inet/10.0.0.2/80 (residual /com/example/web)\n"), "{text}");
    let text = run(
        "/c => /$/inet/10.0.0.3/80; /host => /$/io.buoyant.http.subdomainOfPfx/service.consul/c;",
        "/host/web.service.consul:8500",
    );
    assert!(text.contains("    /c/web [/host=>/$/io.buoyant.http.subdomainOfPfx/service.consul/c]\n"), "{text}");
    assert!(text.ends_with("=> /$/inet/10.0.0.3/80 (residual /web)\n"), "{text}");
}
