//! linkerd's context headers at an edge (`clearContext`, `contextHeaders`) and
//! what the identifiers forward: each test shows the exact bytes the backend
//! or the client receives. Every test runs on each I/O backend.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::raw_backend::{Action, Event, RawBackend, Request};
use common::{backends, Corelink};

fn inet(addr: SocketAddr) -> String {
    format!("/$/inet/{}/{}", addr.ip(), addr.port())
}

/// One router `r` with `dtab`, extra router keys, one server (with extra
/// server keys, indented by four spaces).
fn config(dtab: &str, router_extra: &str, server_extra: &str) -> String {
    format!(
        "admin:\n  port: 0\nrouters:\n- protocol: http\n  label: r\n  dtab: |\n    {dtab}\n{router_extra}  servers:\n  - port: 0\n{server_extra}corelink:\n  workers: 1\n  shutdownDelayMs: 0\n"
    )
}

/// Sends `request` on a new connection and returns every byte the client
/// receives until corelink closes it.
fn exchange(proxy: &Corelink, request: &[u8]) -> String {
    let mut c = TcpStream::connect(proxy.addr()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(request).unwrap();
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    String::from_utf8(got).unwrap()
}

/// The one request `backend` framed since `cursor`, waiting up to 5 s.
fn forwarded(backend: &RawBackend, cursor: usize) -> Request {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let requests: Vec<Request> = backend
            .events_since(cursor)
            .into_iter()
            .filter_map(|e| match e {
                Event::Request(r) => Some(r),
                Event::Anomaly { what, bytes, .. } => panic!("backend anomaly {what}: {bytes:?}"),
                Event::Closed { .. } => None,
            })
            .collect();
        match requests.as_slice() {
            [one] => return one.clone(),
            [] if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => panic!("expected one forwarded request, got {requests:?}"),
        }
    }
}

/// The request's bytes with its `l5d-reqid` value (random) shown as `ID`,
/// after checking it is one corelink made (16 hex digits).
fn masked(req: &Request) -> String {
    let raw = String::from_utf8(req.raw.clone()).unwrap();
    let Some(start) = raw.find("l5d-reqid: ").map(|i| i + "l5d-reqid: ".len()) else { return raw };
    let end = start + raw[start..].find("\r\n").unwrap();
    let id = &raw[start..end];
    assert!(id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()), "not corelink's request id: {raw}");
    format!("{}ID{}", &raw[..start], &raw[end..])
}

/// A request carrying every kind of context a client can send.
const WITH_CONTEXT: &[u8] = b"GET /x HTTP/1.1\r\nHost: a\r\nl5d-ctx-trace: t\r\nl5d-dtab: /svc/a => /$/inet/192.0.2.1/1\r\nl5d-reqid: mine\r\nDtab-Local: /svc/a=>/$/inet/192.0.2.1/1\r\nX-Keep: 1\r\nConnection: close\r\n\r\n";

#[test]
fn context_headers_false_strips_the_clients_context() {
    let backend = RawBackend::start();
    for io in backends() {
        let dtab = format!("/svc/* => {};", inet(backend.addr));
        let proxy = Corelink::start(&config(&dtab, "  contextHeaders: false\n", ""), io);
        let cursor = backend.cursor();
        assert!(exchange(&proxy, WITH_CONTEXT).starts_with("HTTP/1.1 200 OK\r\n"), "{io}");
        // Neither the client's l5d-* and Dtab-Local nor corelink's own.
        assert_eq!(
            String::from_utf8(forwarded(&backend, cursor).raw).unwrap(),
            "GET /x HTTP/1.1\r\nHost: a\r\nX-Keep: 1\r\nVia: 1.1 corelink\r\n\r\n",
            "{io}"
        );
    }
}

#[test]
fn clear_context_strips_dtab_local_too() {
    let backend = RawBackend::start();
    for io in backends() {
        let dtab = format!("/svc/* => {};", inet(backend.addr));
        let proxy = Corelink::start(&config(&dtab, "", "    clearContext: true\n"), io);
        let cursor = backend.cursor();
        assert!(exchange(&proxy, WITH_CONTEXT).starts_with("HTTP/1.1 200 OK\r\n"), "{io}");
        // The client's context is gone (its l5d-reqid replaced by corelink's);
        // corelink's own context headers are added.
        assert_eq!(
            masked(&forwarded(&backend, cursor)),
            format!(
                "GET /x HTTP/1.1\r\nHost: a\r\nX-Keep: 1\r\nVia: 1.1 corelink\r\nl5d-dst-service: /svc/a\r\nl5d-dst-client: {}\r\nl5d-reqid: ID\r\n\r\n",
                inet(backend.addr)
            ),
            "{io}"
        );
    }
}

#[test]
fn a_clients_request_id_is_kept_and_one_its_connection_header_drops_is_replaced() {
    let backend = RawBackend::start();
    for io in backends() {
        let dtab = format!("/svc/* => {};", inet(backend.addr));
        let proxy = Corelink::start(&config(&dtab, "", ""), io);
        // Kept, also when `Connection` names other fields (LWP sends
        // `Connection: TE`, curl's h2c upgrade `Upgrade, HTTP2-Settings`).
        for connection in ["close", "close, TE", "close, X-Other"] {
            let cursor = backend.cursor();
            let kept = format!("GET /x HTTP/1.1\r\nHost: a\r\nl5d-reqid: mine\r\nConnection: {connection}\r\n\r\n");
            assert!(exchange(&proxy, kept.as_bytes()).starts_with("HTTP/1.1 200 OK\r\n"), "{io}");
            let raw = String::from_utf8(forwarded(&backend, cursor).raw).unwrap();
            assert!(
                raw.contains("\r\nl5d-reqid: mine\r\n") && raw.matches("l5d-reqid").count() == 1,
                "{io} {connection}: {raw}"
            );
        }
        // `Connection: l5d-reqid` drops the client's id as hop-by-hop: the
        // upstream gets corelink's instead of none.
        let cursor = backend.cursor();
        let named = b"GET /x HTTP/1.1\r\nHost: a\r\nl5d-reqid: mine\r\nConnection: close, l5d-reqid\r\n\r\n";
        assert!(exchange(&proxy, named).starts_with("HTTP/1.1 200 OK\r\n"), "{io}");
        let req = forwarded(&backend, cursor);
        let raw = masked(&req);
        assert!(raw.contains("\r\nl5d-reqid: ID\r\n") && raw.matches("l5d-reqid").count() == 1, "{io}: {raw}");
    }
}

/// Which of `backends` framed a request since `cursors`: its index.
fn reached(backends: &[&RawBackend], cursors: &[usize]) -> Option<usize> {
    let got = |(b, c): (&&RawBackend, &usize)| b.events_since(*c).iter().any(|e| matches!(e, Event::Request(_)));
    let hits: Vec<usize> =
        backends.iter().zip(cursors).enumerate().filter(|(_, bc)| got(*bc)).map(|(i, _)| i).collect();
    assert!(hits.len() <= 1, "one request reached {hits:?}");
    hits.first().copied()
}

#[test]
fn a_server_that_clears_context_routes_without_the_clients_l5d_dtab() {
    let (dtab_target, clients_pick) = (RawBackend::start(), RawBackend::start());
    let request = format!(
        "GET /x HTTP/1.1\r\nHost: a\r\nl5d-dtab: /svc/a => {}\r\nConnection: close\r\n\r\n",
        inet(clients_pick.addr)
    );
    for io in backends() {
        let dtab = format!("/svc/* => {};", inet(dtab_target.addr));
        for (clear, router_extra, server_extra, expected) in [
            (false, "  dtabHeaders: true\n", "", 1),
            (true, "  dtabHeaders: true\n", "    clearContext: true\n", 0),
            (true, "  dtabHeaders: true\n  contextHeaders: false\n", "", 0),
        ] {
            let proxy = Corelink::start(&config(&dtab, router_extra, server_extra), io);
            let cursors = [dtab_target.cursor(), clients_pick.cursor()];
            let answer = exchange(&proxy, request.as_bytes());
            assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{io} clear {clear}: {answer}");
            std::thread::sleep(Duration::from_millis(50));
            assert_eq!(
                reached(&[&dtab_target, &clients_pick], &cursors),
                Some(expected),
                "{io} clear {clear} {router_extra:?}"
            );
        }
    }
}

#[test]
fn a_server_that_clears_context_does_not_identify_by_an_l5d_header() {
    let (backend, clients_pick) = (RawBackend::start(), RawBackend::start());
    let request = format!("GET /x HTTP/1.1\r\nHost: a\r\nl5d-name: /svc/{}\r\nConnection: close\r\n\r\n", "b");
    for io in backends() {
        // /svc/a (Host) goes to `backend`; /svc/b, named by l5d-name, to
        // `clients_pick`. The header identifier comes first, the Host
        // identifier after it.
        let dtab = format!("/svc/a => {}; /svc/b => {};", inet(backend.addr), inet(clients_pick.addr));
        let identifiers = "  identifier:\n  - kind: io.l5d.header\n  - kind: io.l5d.header.token\n    header: Host\n";
        let identifiers = format!("{identifiers}  dstPrefix: /svc\n");
        for (clear, expected) in [(false, 1), (true, 0)] {
            let server_extra = if clear { "    clearContext: true\n" } else { "" };
            let proxy = Corelink::start(&config(&dtab, &identifiers, server_extra), io);
            let cursors = [backend.cursor(), clients_pick.cursor()];
            let answer = exchange(&proxy, request.as_bytes());
            assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{io} clear {clear}: {answer}");
            std::thread::sleep(Duration::from_millis(50));
            assert_eq!(reached(&[&backend, &clients_pick], &cursors), Some(expected), "{io} clear {clear}");
            // With only the header identifier, a cleared server cannot name
            // the request at all.
            let only_header = "  identifier:\n    kind: io.l5d.header\n";
            let proxy = Corelink::start(&config(&dtab, only_header, server_extra), io);
            let answer = exchange(&proxy, request.as_bytes());
            let status = if clear { "HTTP/1.1 400 " } else { "HTTP/1.1 200 " };
            assert!(answer.starts_with(status), "{io} clear {clear}: {answer}");
        }
    }
}

/// A backend standing in for a linkerd further on: `/err` is its error (an
/// `l5d-err` response with a body), `/chunked-err` the same chunked, and
/// anything else a success carrying an `l5d-*` field.
fn downstream_linkerd() -> RawBackend {
    RawBackend::start_with(Arc::new(|req: &Request| {
        let rsp: &[u8] = match req.target.as_str() {
            "/err" => b"HTTP/1.1 502 Bad Gateway\r\nl5d-err: No+hosts\r\nl5d-success-class: 0.0\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\nNo hosts\n",
            "/chunked-err" => b"HTTP/1.1 500 Internal Server Error\r\nL5d-Err: boom\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nboom\n\r\n0\r\n\r\n",
            _ => b"HTTP/1.1 200 OK\r\nl5d-dst-extra: x\r\nContent-Length: 2\r\n\r\nok",
        };
        vec![Action::Send(rsp.to_vec())]
    }))
}

#[test]
fn clear_context_strips_l5d_fields_from_responses_and_empties_l5d_err_bodies() {
    let backend = downstream_linkerd();
    for io in backends() {
        let dtab = format!("/svc/* => {};", inet(backend.addr));
        let proxy = Corelink::start(&config(&dtab, "", "    clearContext: true\n"), io);
        // Two errors then a success on one keep-alive connection: the
        // emptied responses leave the client connection in step.
        let mut c = TcpStream::connect(proxy.addr()).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let want_err =
            "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nContent-Length: 0\r\nVia: 1.1 corelink\r\n\r\n";
        let want_chunked = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nVia: 1.1 corelink\r\n\r\n";
        for (path, want) in [("/err", want_err), ("/chunked-err", want_chunked)] {
            c.write_all(format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes()).unwrap();
            let mut got = vec![0; want.len()];
            c.read_exact(&mut got).unwrap();
            assert_eq!(String::from_utf8(got).unwrap(), want, "{io}: {path}");
        }
        c.write_all(b"GET /ok HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").unwrap();
        let mut got = Vec::new();
        c.read_to_end(&mut got).unwrap();
        assert_eq!(
            String::from_utf8(got).unwrap(),
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\nVia: 1.1 corelink\r\n\r\nok",
            "{io}"
        );
        drop(proxy);
        // Without clearContext both pass unchanged.
        let proxy = Corelink::start(&config(&dtab, "", ""), io);
        assert_eq!(
            exchange(&proxy, b"GET /err HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"),
            "HTTP/1.1 502 Bad Gateway\r\nl5d-err: No+hosts\r\nl5d-success-class: 0.0\r\nContent-Type: text/plain\r\nContent-Length: 9\r\nConnection: close\r\nVia: 1.1 corelink\r\n\r\nNo hosts\n",
            "{io}"
        );
    }
}

#[test]
fn clear_context_answers_corelinks_own_errors_without_l5d_err_or_body() {
    // A port nothing listens on.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    for io in backends() {
        let dtab = format!("/svc/* => {};", inet(closed));
        let proxy = Corelink::start(&config(&dtab, "", "    clearContext: true\n"), io);
        assert_eq!(
            exchange(&proxy, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
            "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nVia: 1.1 corelink\r\nConnection: close\r\n\r\n",
            "{io}"
        );
        drop(proxy);
        // The head read timeout's 408 too.
        let slow = config(&dtab, "", "    clearContext: true\n") + "  headerReadTimeoutMs: 300\n";
        let proxy = Corelink::start(&slow, io);
        assert_eq!(
            exchange(&proxy, b"GET / HTTP/1.1\r\nHost: a\r\n"),
            "HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nVia: 1.1 corelink\r\nConnection: close\r\n\r\n",
            "{io}"
        );
        drop(proxy);
        let proxy = Corelink::start(&config(&dtab, "", ""), io);
        let plain = exchange(&proxy, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert!(plain.contains("\r\nl5d-err: connection+to+127.0.0.1"), "{io}: {plain}");
    }
}

const PATH_IDENTIFIER: &str = "  identifier:\n    kind: io.l5d.path\n";

#[test]
fn path_identifiers_read_the_path_not_a_scheme_in_the_query() {
    let (admin, api) = (RawBackend::start(), RawBackend::start());
    let method_and_host = "  identifier:\n    kind: io.l5d.methodAndHost\n    httpUriInDst: true\n";
    for io in backends() {
        for (identifier, prefix, service) in [
            (PATH_IDENTIFIER, "/svc", "/svc/admin"),
            (method_and_host, "/svc/1.1/GET/h", "/svc/1.1/GET/h/admin/secret"),
        ] {
            let dtab = format!("{prefix}/admin => {}; {prefix}/api => {};", inet(admin.addr), inet(api.addr));
            let proxy = Corelink::start(&config(&dtab, identifier, ""), io);
            let (admin_cursor, api_cursor) = (admin.cursor(), api.cursor());
            let rsp =
                exchange(&proxy, b"GET /admin/secret?x=://y/api HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
            assert!(rsp.starts_with("HTTP/1.1 200 OK\r\n"), "{io}: {rsp}");
            // Routed by the path the backend receives, not by the query.
            assert_eq!(api.cursor(), api_cursor, "{io}: {service}: routed on the query");
            let got = masked(&forwarded(&admin, admin_cursor));
            let want = format!(
                "GET /admin/secret?x=://y/api HTTP/1.1\r\nHost: h\r\nVia: 1.1 corelink\r\nl5d-dst-service: {service}\r\n"
            );
            assert!(got.starts_with(&want), "{io}: {got}");
        }
    }
}

#[test]
fn consume_forwards_an_absolute_form_target_in_origin_form() {
    let backend = RawBackend::start();
    for io in backends() {
        let dtab = format!("/svc/users => {};", inet(backend.addr));
        let identifier = format!("{PATH_IDENTIFIER}    consume: true\n");
        let proxy = Corelink::start(&config(&dtab, &identifier, ""), io);
        for target in ["/users/42?x=1", "http://h/users/42?x=1", "HTTP://h/users?x=1", "http://h/users"] {
            let cursor = backend.cursor();
            let request = format!("GET {target} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
            let rsp = exchange(&proxy, request.as_bytes());
            assert!(rsp.starts_with("HTTP/1.1 200 OK\r\n"), "{io}: {target}: {rsp}");
            let rest = match target.split_once("/users") {
                Some((_, "")) => "/".to_string(),
                Some((_, r)) if r.starts_with('?') => format!("/{r}"),
                Some((_, r)) => r.to_string(),
                None => unreachable!(),
            };
            assert_eq!(
                masked(&forwarded(&backend, cursor)),
                format!(
                    "GET {rest} HTTP/1.1\r\nHost: h\r\nVia: 1.1 corelink\r\nl5d-dst-service: /svc/users\r\nl5d-dst-client: {}\r\nl5d-reqid: ID\r\n\r\n",
                    inet(backend.addr)
                ),
                "{io}: {target}"
            );
        }
    }
}

#[test]
fn http10_without_host_is_forwarded_with_one() {
    let backend = RawBackend::start();
    for io in backends() {
        let dtab = format!("/svc/users => {}; /svc/1.0/GET => {};", inet(backend.addr), inet(backend.addr));
        let cases = [
            // An identifier that needs no Host: the endpoint's address.
            (PATH_IDENTIFIER, "GET /users/1 HTTP/1.0\r\n\r\n", "GET /users/1", backend.addr.to_string()),
            // An absolute-form target: its authority.
            (
                PATH_IDENTIFIER,
                "GET http://b.example:8080/users/1 HTTP/1.0\r\n\r\n",
                "GET http://b.example:8080/users/1",
                "b.example:8080".to_string(),
            ),
            (
                "  identifier:\n    kind: io.l5d.methodAndHost\n",
                "GET /any HTTP/1.0\r\n\r\n",
                "GET /any",
                backend.addr.to_string(),
            ),
        ];
        for (identifier, request, line, host) in cases {
            let proxy = Corelink::start(&config(&dtab, &format!("  contextHeaders: false\n{identifier}"), ""), io);
            let cursor = backend.cursor();
            let rsp = exchange(&proxy, request.as_bytes());
            assert!(rsp.starts_with("HTTP/1.1 200 OK\r\n"), "{io}: {request:?}: {rsp}");
            assert_eq!(
                String::from_utf8(forwarded(&backend, cursor).raw).unwrap(),
                if line.contains("://") {
                    format!("{line} HTTP/1.1\r\nHost: {host}\r\nVia: 1.0 corelink\r\n\r\n")
                } else {
                    format!("{line} HTTP/1.1\r\nVia: 1.0 corelink\r\nHost: {host}\r\n\r\n")
                },
                "{io}: {request:?}"
            );
        }
    }
}

#[test]
fn connect_whose_authority_differs_from_host_is_refused() {
    let backend = RawBackend::start();
    for io in backends() {
        let dtab = format!("/svc/* => {};", inet(backend.addr));
        let proxy = Corelink::start(&config(&dtab, "", ""), io);
        let cursor = backend.cursor();
        let message = "request target does not match Host";
        assert_eq!(
            exchange(&proxy, b"CONNECT internal.example:22 HTTP/1.1\r\nHost: public.example:443\r\n\r\n"),
            format!(
                "HTTP/1.1 400 Bad Request\r\nl5d-err: request+target+does+not+match+Host\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nVia: 1.1 corelink\r\nConnection: close\r\n\r\n{message}\n",
                message.len() + 1
            ),
            "{io}"
        );
        assert!(backend.events_since(cursor).is_empty(), "{io}: the CONNECT reached the backend");
    }
}
