//! HTTP/1.1 conformance and request-smuggling suite: the real binary, raw
//! bytes in, and both sides checked — what the client gets back, and what
//! reached the backend as framed by `common::raw_backend`'s own strict parser
//! (so a smuggled second request shows up as an extra request).
//!
//! Cases are tables, one line per case, each citing where it comes from (the
//! tables are exempt from rustfmt to keep it that way). Every table runs on
//! each I/O backend from `backends()`, one corelink per backend per test
//! function (restarted only after a failed case, so a failure cannot leak into
//! the next case through a pooled connection).
//!
//! For each request case:
//! - the client gets exactly the expected statuses, in order, and no extra
//!   bytes;
//! - after an error (or a request that asked to close) the connection is
//!   closed; otherwise a follow-up request on the same connection still works
//!   (the connection did not fall out of step);
//! - the backend received exactly the expected requests (method, target,
//!   body), each through corelink's HTTP path (`Via`), no bytes it could not
//!   frame strictly, and every byte it received belongs to one of them — or,
//!   for a body whose error shows only after its head was forwarded, to an
//!   incomplete request on a connection corelink then closed.
//!
//! For each upstream (response) case: the client gets a 502, or the relayed
//! well-framed part, or a truncated-then-closed response; corelink closes the
//! upstream connection that sent it; and a request on a new client connection
//! gets `200 ok` from a different upstream connection.

mod common;

use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::client::Conn;
use common::raw_backend::{ok_response, Action, Event, RawBackend, Request};
use common::{backends, simple_config, Corelink};

// ---------------------------------------------------------------------------
// Request cases: model and runner.
// ---------------------------------------------------------------------------

/// A request the backend must receive: method, target, de-chunked body, and
/// (for a chunked body, which must arrive in corelink's canonical framing)
/// its trailer field lines.
struct Fwd {
    method: &'static str,
    target: &'static str,
    body: Vec<u8>,
    trailers: Vec<&'static str>,
}

struct Case {
    name: &'static str,
    /// Where the case comes from (RFC section, research, other proxies' tests).
    source: &'static str,
    request: Vec<u8>,
    /// Sent 100 ms after `request` (a body whose error comes after corelink
    /// already forwarded the head).
    then: Vec<u8>,
    /// Statuses the client must get, in order.
    expect_status: Vec<u16>,
    /// The connection must be closed after the last response.
    close: bool,
    /// What must reach the backend, in order (empty: nothing at all).
    expect_backend: Vec<Fwd>,
    /// The body streams, so corelink may have forwarded the head before it
    /// found the error: the backend may then hold an incomplete request,
    /// which corelink must abort by closing that upstream connection.
    may_abort: bool,
}

fn fwd(list: &[(&'static str, &'static str, &[u8])]) -> Vec<Fwd> {
    list.iter().map(|&(method, target, body)| Fwd { method, target, body: body.to_vec(), trailers: vec![] }).collect()
}

/// A request that must be refused with `status`, the connection closed, and
/// nothing forwarded.
fn reject(name: &'static str, source: &'static str, request: &[u8], status: u16) -> Case {
    Case {
        name,
        source,
        request: request.to_vec(),
        then: vec![],
        expect_status: vec![status],
        close: true,
        expect_backend: vec![],
        may_abort: false,
    }
}

/// Valid request(s) on a keep-alive connection: each gets a 200 and reaches
/// the backend exactly as listed.
fn accept(
    name: &'static str,
    source: &'static str,
    request: &[u8],
    forwarded: &[(&'static str, &'static str, &[u8])],
) -> Case {
    Case {
        name,
        source,
        request: request.to_vec(),
        then: vec![],
        expect_status: vec![200; forwarded.len()],
        close: false,
        expect_backend: fwd(forwarded),
        may_abort: false,
    }
}

/// Pipelined requests where a bad one follows good ones: the good ones are
/// answered and forwarded, the bad one refused, the connection closed, and
/// nothing after it forwarded.
fn pipeline(
    name: &'static str,
    source: &'static str,
    request: &[u8],
    statuses: &[u16],
    forwarded: &[(&'static str, &'static str, &[u8])],
) -> Case {
    Case {
        name,
        source,
        request: request.to_vec(),
        then: vec![],
        expect_status: statuses.to_vec(),
        close: true,
        expect_backend: fwd(forwarded),
        may_abort: false,
    }
}

impl Case {
    fn closing(mut self) -> Case {
        self.close = true;
        self
    }

    fn statuses(mut self, statuses: &[u16]) -> Case {
        self.expect_status = statuses.to_vec();
        self
    }

    fn may_abort(mut self) -> Case {
        self.may_abort = true;
        self
    }

    fn then_after_pause(mut self, more: &[u8]) -> Case {
        self.then = more.to_vec();
        self.may_abort = true;
        self
    }

    /// The rest of a valid request, sent 100 ms later (so it is streamed
    /// after the head went upstream).
    fn rest_after_pause(mut self, more: &[u8]) -> Case {
        self.then = more.to_vec();
        self
    }

    /// The trailer lines the first forwarded request must carry.
    fn trailers(mut self, lines: &[&'static str]) -> Case {
        self.expect_backend[0].trailers = lines.to_vec();
        self
    }
}

const FOLLOW_UP: &[u8] = b"GET /follow-up HTTP/1.1\r\nHost: svc\r\n\r\n";

fn show(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes).escape_debug().to_string();
    match s.char_indices().nth(200) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s,
    }
}

fn open(addr: SocketAddr) -> Conn {
    let c = Conn::open(addr);
    c.stream.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    c
}

/// Ok if the peer closes (EOF or reset) within `limit` without sending
/// anything more.
fn expect_closed(c: &mut Conn, limit: Duration) -> Result<(), String> {
    let extra = c.take_buffered();
    if !extra.is_empty() {
        return Err(format!("extra bytes after the response: {}", show(&extra)));
    }
    c.stream.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match c.stream.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => return Err(format!("extra bytes instead of close: {}", show(&buf[..n]))),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(()),
            Err(e) => return Err(format!("connection not closed within {limit:?} ({e})")),
        }
    }
}

fn first_method(request: &[u8]) -> &str {
    let start = request.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(0);
    let rest = &request[start..];
    let end = rest.iter().position(|&b| b == b' ').unwrap_or(0);
    std::str::from_utf8(&rest[..end]).unwrap_or("GET")
}

fn check_forwarded(got: &Request, want: &Fwd) -> Result<(), String> {
    if got.method != want.method || got.target != want.target || got.body != want.body {
        return Err(format!(
            "backend got {} {} body {:?}, expected {} {} body {:?}",
            got.method,
            got.target,
            show(&got.body),
            want.method,
            want.target,
            show(&want.body)
        ));
    }
    if got.header("transfer-encoding").is_some() {
        let body_at = got.raw.windows(4).position(|w| w == b"\r\n\r\n").map_or(got.raw.len(), |i| i + 4);
        let trailers = canonical_chunked(&got.raw[body_at..])
            .map_err(|why| format!("{} {}: chunked body not in canonical framing: {why}", got.method, got.target))?;
        if trailers != want.trailers {
            return Err(format!(
                "{} {}: backend got trailers {trailers:?}, expected {:?}",
                got.method, got.target, want.trailers
            ));
        }
    }
    let via = got.header("via").unwrap_or_default();
    if !String::from_utf8_lossy(via).contains("corelink") {
        return Err(format!(
            "{} {} reached the backend without passing corelink's HTTP path (no Via): {}",
            got.method,
            got.target,
            show(&got.raw)
        ));
    }
    Ok(())
}

/// The trailer lines of a chunked body written in corelink's canonical
/// framing, or why it is not: each chunk `<lower-case hex, no leading
/// zero>\r\n<data>\r\n` (no extension, no whitespace, no empty chunk), then
/// `0\r\n`, trailer lines `name: value\r\n` (or `name:\r\n`), `\r\n`, and
/// nothing after. A hand-written oracle, independent of corelink's codec.
fn canonical_chunked(mut b: &[u8]) -> Result<Vec<String>, String> {
    fn line<'a>(b: &mut &'a [u8]) -> Result<&'a [u8], String> {
        let end = b.windows(2).position(|w| w == b"\r\n").ok_or_else(|| format!("no CRLF in {}", show(b)))?;
        let l = &b[..end];
        *b = &b[end + 2..];
        Ok(l)
    }
    loop {
        let size_line = line(&mut b)?;
        if size_line == b"0" {
            break;
        }
        let hex = |c: &u8| matches!(c, b'0'..=b'9' | b'a'..=b'f');
        if size_line.first().is_none_or(|&c| c == b'0') || !size_line.iter().all(hex) {
            return Err(format!("size line `{}`", show(size_line)));
        }
        let size = usize::from_str_radix(std::str::from_utf8(size_line).unwrap_or("x"), 16)
            .map_err(|e| format!("size line `{}`: {e}", show(size_line)))?;
        if b.len() < size + 2 || &b[size..size + 2] != b"\r\n" {
            return Err(format!("chunk of {size} not followed by CRLF: {}", show(b)));
        }
        b = &b[size + 2..];
    }
    let mut trailers = Vec::new();
    loop {
        let l = line(&mut b)?;
        if l.is_empty() {
            break;
        }
        let text = String::from_utf8_lossy(l).into_owned();
        let (name, value) = text.split_once(':').ok_or_else(|| format!("trailer `{text}` without a colon"))?;
        let canonical = !name.is_empty()
            && name.bytes().all(|c| c.is_ascii_graphic())
            && (value.is_empty() || (value.starts_with(' ') && value.len() > 1 && value.trim() == &value[1..]));
        if !canonical {
            return Err(format!("trailer line `{text}`"));
        }
        trailers.push(text);
    }
    if !b.is_empty() {
        return Err(format!("bytes after the chunked body: {}", show(b)));
    }
    Ok(trailers)
}

/// Requests the backend saw since `cursor`. Every byte received since
/// `bytes_before` must belong to one of them or (with `may_abort`) to an
/// incomplete request on a connection corelink closed.
fn backend_requests(
    backend: &RawBackend,
    cursor: usize,
    bytes_before: usize,
    may_abort: bool,
) -> Result<Vec<Request>, String> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let mut requests = Vec::new();
        let mut framed = 0;
        for e in backend.events_since(cursor) {
            match e {
                Event::Request(r) => {
                    framed += r.raw.len();
                    requests.push(r);
                }
                Event::Anomaly { what, bytes, .. } => {
                    return Err(format!("backend could not frame what it received ({what}): {}", show(&bytes)))
                }
                Event::Closed { leftover, .. } if !leftover.is_empty() && !may_abort => {
                    return Err(format!("an incomplete request reached the backend: {}", show(&leftover)))
                }
                Event::Closed { leftover, .. } => framed += leftover.len(),
            }
        }
        let received = backend.total_received() - bytes_before;
        if received == framed {
            return Ok(requests);
        }
        if !may_abort || Instant::now() >= deadline {
            return Err(format!(
                "{} bytes reached the backend outside any complete request, connection left open: {}",
                received - framed,
                show(&requests.last().map(|r| r.raw.clone()).unwrap_or_default())
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn run_case(addr: SocketAddr, backend: &RawBackend, case: &Case) -> Result<(), String> {
    let cursor = backend.cursor();
    let bytes_before = backend.total_received();
    let mut c = open(addr);
    c.send(&case.request);
    if !case.then.is_empty() {
        std::thread::sleep(Duration::from_millis(100));
        c.send(&case.then);
    }
    let method = first_method(&case.request).to_string();
    let mut got = Vec::new();
    for &want in &case.expect_status {
        let rsp = c
            .read_response(&method)
            .map_err(|e| format!("expected statuses {:?}, got {got:?} then {e}", case.expect_status))?;
        got.push(rsp.status);
        if rsp.status != want {
            return Err(format!(
                "expected statuses {:?}, got {got:?} (l5d-err: {:?})",
                case.expect_status,
                rsp.header("l5d-err")
            ));
        }
    }
    let mut expected: Vec<&Fwd> = case.expect_backend.iter().collect();
    let follow_up = Fwd { method: "GET", target: "/follow-up", body: vec![], trailers: vec![] };
    if case.close {
        expect_closed(&mut c, Duration::from_secs(2))?;
        // Give anything forwarded late a moment to arrive.
        std::thread::sleep(Duration::from_millis(30));
    } else {
        let extra = c.take_buffered();
        if !extra.is_empty() {
            return Err(format!("extra bytes after the responses: {}", show(&extra)));
        }
        c.send(FOLLOW_UP);
        match c.read_response("GET") {
            Ok(r) if r.status == 200 && r.body == b"ok" => {}
            Ok(r) => return Err(format!("follow-up on the same connection got {} {:?}", r.status, show(&r.body))),
            Err(e) => return Err(format!("follow-up on the same connection failed: {e}")),
        }
        expected.push(&follow_up);
        std::thread::sleep(Duration::from_millis(10));
    }
    let requests = backend_requests(backend, cursor, bytes_before, case.may_abort)?;
    if requests.len() != expected.len() {
        return Err(format!(
            "backend received {} requests, expected {}: {:?}",
            requests.len(),
            expected.len(),
            requests.iter().map(|r| format!("{} {} body {:?}", r.method, r.target, show(&r.body))).collect::<Vec<_>>()
        ));
    }
    for (got, want) in requests.iter().zip(expected) {
        check_forwarded(got, want)?;
    }
    Ok(())
}

fn check_table<'a>(cases: impl Iterator<Item = (&'a str, &'a str)>) {
    let mut names = std::collections::HashSet::new();
    for (name, source) in cases {
        assert!(names.insert(name), "duplicate case name {name}");
        assert!(!source.is_empty(), "{name}: no source");
    }
}

/// Runs every case on every I/O backend; reports all failures at once.
fn run_table(cases: &[Case]) {
    check_table(cases.iter().map(|c| (c.name, c.source)));
    let backend = RawBackend::start();
    let mut failures = Vec::new();
    for io in backends() {
        let config = simple_config(backend.addr, "", "");
        let mut proxy = Corelink::start(&config, io);
        for case in cases {
            if let Err(why) = run_case(proxy.addr(), &backend, case) {
                failures.push(format!(
                    "[{io}] {} ({}): {why}\n    request: {}",
                    case.name,
                    case.source,
                    show(&case.request)
                ));
                proxy = Corelink::start(&config, io);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} case runs failed:\n{}",
        failures.len(),
        cases.len() * backends().len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------
// Valid requests: forwarded exactly once, connection kept.
// ---------------------------------------------------------------------------

#[test]
fn valid_requests_are_forwarded_exactly() {
    #[rustfmt::skip]
    let cases = vec![
        accept("origin-form GET", "RFC 9112 §3.2.1", b"GET /a?b=c HTTP/1.1\r\nHost: svc\r\n\r\n", &[("GET", "/a?b=c", b"")]),
        accept("Content-Length body", "RFC 9112 §6.3 rule 6", b"POST /p HTTP/1.1\r\nHost: svc\r\nContent-Length: 5\r\n\r\nhello", &[("POST", "/p", b"hello")]),
        accept("Content-Length: 0", "RFC 9112 §6.3 rule 6", b"POST /p HTTP/1.1\r\nHost: svc\r\nContent-Length: 0\r\n\r\n", &[("POST", "/p", b"")]),
        accept("chunked body", "RFC 9112 §7.1", b"POST /c HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", &[("POST", "/c", b"hello world")]),
        accept("chunk extensions, token and quoted", "RFC 9112 §7.1.1", b"POST /c HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b;c=\"d;e\"\r\nhello\r\n0\r\n\r\n", &[("POST", "/c", b"hello")]),
        accept("BWS before a chunk extension (`5 ;ext`)", "RFC 9112 §7.1.1 (chunk-ext = *( BWS \";\" BWS ... ))", b"POST /c HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: chunked\r\n\r\n5 ;ext\r\nhello\r\n0\r\n\r\n", &[("POST", "/c", b"hello")]),
        accept("trailer section", "RFC 9112 §7.1.2", b"POST /c HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n", &[("POST", "/c", b"hello")]).trailers(&["X-Trailer: 1"]),
        accept("upper-case hex, leading zeros", "RFC 9112 §7.1 (chunk-size = 1*HEXDIG)", b"POST /c HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: chunked\r\n\r\n000A\r\n0123456789\r\n00\r\n\r\n", &[("POST", "/c", b"0123456789")]),
        accept("`Transfer-Encoding: Chunked`", "RFC 9112 §7 (coding names are case-insensitive)", b"POST /c HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: Chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", &[("POST", "/c", b"hello")]),
        accept("Content-Length with OWS (`  5 `)", "RFC 9110 §5.5 (OWS around a field value is not part of it)", b"POST /p HTTP/1.1\r\nHost: svc\r\nContent-Length:  5 \r\n\r\nhello", &[("POST", "/p", b"hello")]),
        accept("GET with a Content-Length body (0.CL)", "James Kettle, 'HTTP/1.1 must die' (2025): 0.CL desync", b"GET /g HTTP/1.1\r\nHost: svc\r\nContent-Length: 5\r\n\r\nhello", &[("GET", "/g", b"hello")]),
        // 40,000 bytes and the next request in one write: on io_uring one
        // bundled receive brings them in three buffers, the body's end and
        // the next request in the last one.
        accept("long body, then a pipelined request", "RFC 9112 §6.3 rule 6 (the body ends at its length); RFC 9112 §9.3.2 (pipelining)", &[&b"POST /p HTTP/1.1\r\nHost: svc\r\nContent-Length: 40000\r\n\r\n"[..], long_body(), b"GET /next HTTP/1.1\r\nHost: svc\r\n\r\n"].concat(), &[("POST", "/p", long_body()), ("GET", "/next", b"")]),
        accept("body that looks like a request", "PortSwigger, HTTP Desync Attacks (2019): smuggled prefix inside a body", b"POST /p HTTP/1.1\r\nHost: svc\r\nContent-Length: 37\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: svc\r\n\r\n", &[("POST", "/p", b"GET /smuggled HTTP/1.1\r\nHost: svc\r\n\r\n")]),
        accept("HEAD", "RFC 9110 §9.3.2", b"HEAD /h HTTP/1.1\r\nHost: svc\r\n\r\n", &[("HEAD", "/h", b"")]),
        accept("OPTIONS *", "RFC 9112 §3.2.4", b"OPTIONS * HTTP/1.1\r\nHost: svc\r\n\r\n", &[("OPTIONS", "*", b"")]),
        accept("absolute-form matching Host", "RFC 9112 §3.2.2", b"GET http://svc/x HTTP/1.1\r\nHost: svc\r\n\r\n", &[("GET", "http://svc/x", b"")]),
        accept("empty line before the request line", "RFC 9112 §2.2 (SHOULD ignore at least one empty line)", b"\r\nGET /e HTTP/1.1\r\nHost: svc\r\n\r\n", &[("GET", "/e", b"")]),
        accept("obs-text in a field value", "RFC 9110 §5.5 (field-vchar includes obs-text)", b"GET /o HTTP/1.1\r\nHost: svc\r\nX-Name: caf\xc3\xa9\r\n\r\n", &[("GET", "/o", b"")]),
        accept("pipelined GETs", "RFC 9112 §9.3.2", b"GET /1 HTTP/1.1\r\nHost: svc\r\n\r\nGET /2 HTTP/1.1\r\nHost: svc\r\n\r\nGET /3 HTTP/1.1\r\nHost: svc\r\n\r\n", &[("GET", "/1", b""), ("GET", "/2", b""), ("GET", "/3", b"")]),
        accept("pipelined with bodies", "RFC 9112 §9.3.2; Node.js llhttp test/request/pipelining", b"POST /1 HTTP/1.1\r\nHost: svc\r\nContent-Length: 3\r\n\r\nabcPOST /2 HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: chunked\r\n\r\n3\r\ndef\r\n0\r\n\r\nGET /3 HTTP/1.1\r\nHost: svc\r\n\r\n", &[("POST", "/1", b"abc"), ("POST", "/2", b"def"), ("GET", "/3", b"")]),
        accept("Expect: 100-continue with the body", "RFC 9110 §10.1.1", b"POST /x HTTP/1.1\r\nHost: svc\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\ndata", &[("POST", "/x", b"data")]).statuses(&[100, 200]),
        accept("upgrade request with a body is a plain request", "RFC 9110 §7.8; Mikhail Egorov, 'WebSocket smuggling' (2019)", b"POST /ws HTTP/1.1\r\nHost: svc\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 5\r\n\r\nhello", &[("POST", "/ws", b"hello")]),
        accept("`Connection: upgrade` without Upgrade", "RFC 9110 §7.8 (Upgrade is required for a switch)", b"GET /u HTTP/1.1\r\nHost: svc\r\nConnection: upgrade\r\n\r\n", &[("GET", "/u", b"")]),
        accept("h2c upgrade answered 200 stays HTTP", "Jake Miller (Bishop Fox), 'h2c Smuggling' (2020); RFC 9113 §3.1", b"GET /h2c HTTP/1.1\r\nHost: svc\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n", &[("GET", "/h2c", b"")]),
        accept("websocket upgrade answered 200 stays HTTP", "Mikhail Egorov, 'WebSocket smuggling' (2019): backend refuses the upgrade", b"GET /ws HTTP/1.1\r\nHost: svc\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n", &[("GET", "/ws", b"")]),
        accept("HTTP/1.0 request", "RFC 9112 §9.3 (HTTP/1.0 closes by default)", b"GET /old HTTP/1.0\r\nHost: svc\r\n\r\n", &[("GET", "/old", b"")]).closing(),
        accept("Connection: close", "RFC 9112 §9.6", b"GET /bye HTTP/1.1\r\nHost: svc\r\nConnection: close\r\n\r\n", &[("GET", "/bye", b"")]).closing(),
    ];
    run_table(&cases);
}

// ---------------------------------------------------------------------------
// CL / TE conflicts and Transfer-Encoding obfuscation.
// ---------------------------------------------------------------------------

#[test]
fn content_length_and_transfer_encoding_conflicts() {
    #[rustfmt::skip]
    let cases = vec![
        reject("CL.TE", "PortSwigger, HTTP Desync Attacks (2019): CL.TE; RFC 9112 §6.3 rule 3", b"POST / HTTP/1.1\r\nHost: svc\r\nContent-Length: 13\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nSMUGGLED", 400),
        reject("TE.CL", "PortSwigger, HTTP Desync Attacks (2019): TE.CL; RFC 9112 §6.1", b"POST / HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n", 400),
        reject("CL.TE with Content-Length: 0", "RFC 9112 §6.1 (TE with CL: treat as an error)", b"POST / HTTP/1.1\r\nHost: svc\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        reject("TE.TE `xchunked` + CL", "PortSwigger, HTTP Desync Attacks (2019): TE.TE `Transfer-Encoding: xchunked`", b"POST / HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: xchunked\r\nContent-Length: 5\r\n\r\nhello", 400),
        reject("TE `xchunked` alone", "RFC 9112 §6.3 rule 4 (final coding not chunked: 400)", b"POST / HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400),
        reject("TE `[tab]chunked` + CL", "PortSwigger, HTTP Desync Attacks (2019): TE.TE `Transfer-Encoding:[tab]chunked`", b"POST / HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding:\tchunked\r\nContent-Length: 5\r\n\r\nhello", 400),
        reject("TE `chunked ` (trailing space) + CL", "PortSwigger, HTTP Desync Attacks (2019): TE.TE whitespace variants", b"POST / HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: chunked \r\nContent-Length: 5\r\n\r\nhello", 400),
        reject("`Transfer-Encoding : chunked` + CL", "PortSwigger (2019) TE.TE; Netty CVE-2019-16869; RFC 9112 §5.1", b"POST / HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\nhello", 400),
        reject("` Transfer-Encoding: chunked` (leading space) + CL", "PortSwigger (2019) TE.TE; Netty CVE-2020-7238; RFC 9112 §5.2", b"POST / HTTP/1.1\r\nHost: svc\r\n Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello", 400),
        reject("`X: X[\\n]Transfer-Encoding: chunked` + CL", "PortSwigger (2019) TE.TE; Node.js CVE-2022-32214", b"POST / HTTP/1.1\r\nHost: svc\r\nX: X\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello", 400),
        reject("`Transfer-Encoding[\\n]: chunked` + CL", "PortSwigger, HTTP Desync Attacks (2019): TE.TE", b"POST / HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding\n: chunked\r\nContent-Length: 5\r\n\r\nhello", 400),
        reject("duplicate TE `chunked` then `x`", "PortSwigger (2019) TE.TE; Node.js CVE-2022-32213", b"POST / HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400),
        reject("duplicate TE `chunked` twice", "RFC 9112 §6.1 (MUST NOT apply chunked more than once)", b"POST / HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400),
        reject("`Transfer-Encoding: chunked, identity`", "RFC 9112 §6.3 rule 4; RFC 7230 removed `identity`", b"POST / HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400),
        reject("`Transfer-Encoding: gzip, chunked`", "RFC 9112 §6.1 (a coding not understood: SHOULD 501); nginx", b"POST / HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 501),
        reject("TE in HTTP/1.0", "RFC 9112 §6.1 (HTTP/1.0 with TE: framing is faulty)", b"POST / HTTP/1.0\r\nHost: svc\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400),
        reject("TE `[VT]chunked` + CL", "HAProxy CVE-2019-18277 (Nathan Davison, `Transfer-Encoding:\\x0bchunked`)", b"POST / HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding:\x0bchunked\r\nContent-Length: 5\r\n\r\nhello", 400),
        reject("TE folded onto a second line", "Node.js CVE-2022-32215 (multi-line Transfer-Encoding)", b"POST / HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: x\r\n chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400),
        reject("empty Transfer-Encoding + CL", "RFC 9112 §6.3 rule 4; HTTP Garden (Kallus et al., 2024)", b"POST / HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding:\r\nContent-Length: 5\r\n\r\nhello", 400),
    ];
    run_table(&cases);
}

// ---------------------------------------------------------------------------
// Content-Length values.
// ---------------------------------------------------------------------------

#[test]
fn malformed_content_length() {
    #[rustfmt::skip]
    let cases = vec![
        reject("CL `5, 5`", "RFC 9110 §8.6 / RFC 9112 §6.3 rule 5; Netty CVE-2019-20445", b"POST / HTTP/1.1\r\nHost: svc\r\nContent-Length: 5, 5\r\n\r\nhello", 400),
        reject("CL `+5`", "RFC 9110 §8.6 (1*DIGIT); HTTP Garden (Kallus et al., 2024)", b"POST / HTTP/1.1\r\nHost: svc\r\nContent-Length: +5\r\n\r\nhello", 400),
        reject("CL `-1`", "RFC 9110 §8.6 (1*DIGIT)", b"POST / HTTP/1.1\r\nHost: svc\r\nContent-Length: -1\r\n\r\nhello", 400),
        reject("CL `0x5`", "RFC 9110 §8.6; HTTP Garden (Kallus et al., 2024)", b"POST / HTTP/1.1\r\nHost: svc\r\nContent-Length: 0x5\r\n\r\nhello", 400),
        reject("CL `5 5` (space inside)", "RFC 9110 §8.6", b"POST / HTTP/1.1\r\nHost: svc\r\nContent-Length: 5 5\r\n\r\nhello", 400),
        reject("CL overflow wrapping to 5 (2^64+5)", "RFC 9112 §6.3 rule 5 (an invalid length is an unrecoverable error)", b"POST / HTTP/1.1\r\nHost: svc\r\nContent-Length: 18446744073709551621\r\n\r\nhello", 400),
        reject("CL empty", "RFC 9110 §8.6", b"POST / HTTP/1.1\r\nHost: svc\r\nContent-Length:\r\n\r\nhello", 400),
        reject("two CL headers, differing", "RFC 9112 §6.3 rule 5; Netty CVE-2019-20445", b"POST / HTTP/1.1\r\nHost: svc\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400),
        reject("two CL headers, identical", "RFC 9110 §8.6 (MAY reject); PortSwigger (2019) CL.CL", b"POST / HTTP/1.1\r\nHost: svc\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400),
        reject("` Content-Length` (leading space)", "Node.js CVE-2024-27982; RFC 9112 §5.2", b"POST / HTTP/1.1\r\nHost: svc\r\n Content-Length: 5\r\n\r\nhello", 400),
        reject("`Content-Length : 5` on GET", "Netty CVE-2019-16869; James Kettle, 'HTTP/1.1 must die' (2025) 0.CL; RFC 9112 §5.1", b"GET / HTTP/1.1\r\nHost: svc\r\nContent-Length : 5\r\n\r\nhello", 400),
    ];
    run_table(&cases);
}

// ---------------------------------------------------------------------------
// Chunked oddities.
// ---------------------------------------------------------------------------

const CHUNKED_HEAD: &[u8] = b"POST / HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: chunked\r\n\r\n";

fn chunked(body: &[u8]) -> Vec<u8> {
    [CHUNKED_HEAD, body].concat()
}

#[test]
fn malformed_chunked_bodies() {
    let mut long_ext = b"5;a=".to_vec();
    long_ext.extend(std::iter::repeat_n(b'x', 5000));
    long_ext.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
    #[rustfmt::skip]
    let cases = vec![
        reject("chunk size overflow wrapping to 5 (2^64+5)", "nginx CVE-2013-2028 (chunk size overflow)", &chunked(b"10000000000000005\r\nhello\r\n0\r\n\r\n"), 400),
        reject("chunk size `-5`", "nginx CVE-2013-2028 (negative chunk size)", &chunked(b"-5\r\nhello\r\n0\r\n\r\n"), 400),
        reject("chunk size `0x5`", "HTTP Garden (Kallus et al., 2024); RFC 9112 §7.1", &chunked(b"0x5\r\nhello\r\n0\r\n\r\n"), 400),
        reject("chunk size with a leading space", "RFC 9112 §7.1; Node.js llhttp test/request/transfer-encoding", &chunked(b" 5\r\nhello\r\n0\r\n\r\n"), 400),
        reject("chunk size with a trailing space, no extension", "RFC 9112 §7.1 (BWS only before `;`); llhttp strict mode", &chunked(b"5 \r\nhello\r\n0\r\n\r\n"), 400),
        reject("empty chunk size", "RFC 9112 §7.1", &chunked(b"\r\nhello\r\n0\r\n\r\n"), 400),
        reject("empty chunk extension name `5;`", "RFC 9112 §7.1.1", &chunked(b"5;\r\nhello\r\n0\r\n\r\n"), 400),
        reject("control byte in a chunk extension", "RFC 9112 §7.1.1; Puma CVE-2023-40175 class", &chunked(b"5;a\x01b\r\nhello\r\n0\r\n\r\n"), 400),
        reject("bare LF ending a chunk extension", "Jeppe Bonde Weikop, 'Funky chunks' (2025); Go CVE-2025-22871", &chunked(b"2;a\nxx\r\n5\r\nhello\r\n0\r\n\r\n"), 400),
        reject("unterminated quoted extension", "RFC 9112 §7.1.1 (quoted-string)", &chunked(b"5;a=\"x\r\nhello\r\n0\r\n\r\n"), 400),
        reject("bare LF after the chunk size", "Go CVE-2025-22871; RFC 9112 §7.1", &chunked(b"5\nhello\r\n0\r\n\r\n"), 400),
        reject("bare LF after chunk data", "Jeppe Bonde Weikop, 'Funky chunks' (2025)", &chunked(b"5\r\nhello\n0\r\n\r\n"), 400),
        reject("missing CRLF after chunk data", "RFC 9112 §7.1; Weikop, 'Funky chunks' (2025)", &chunked(b"5\r\nhello0\r\n\r\n"), 400),
        reject("chunk data longer than its size", "RFC 9112 §7.1; Weikop, 'Funky chunks' (2025)", &chunked(b"3\r\nhello\r\n0\r\n\r\n"), 400),
        reject("bare LF ending the chunked body", "RFC 9112 §7.1; Node.js CVE-2022-32214", &chunked(b"5\r\nhello\r\n0\r\n\n"), 400),
        reject("malformed trailer field", "RFC 9112 §7.1.2; RFC 9110 §5.1", &chunked(b"5\r\nhello\r\n0\r\nBad Trailer: x\r\n\r\n"), 400),
        reject("smuggled request after a bad chunk", "PortSwigger, HTTP Desync Attacks (2019): TE.CL payload shape", &chunked(b"5\r\nhelloXX\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: svc\r\n\r\n"), 400),
        // Over 4 KiB, the head may be forwarded before the line is found too long.
        reject("chunk extension over 4 KiB", "Puma CVE-2024-21647 (unbounded chunk extensions)", &chunked(&long_ext), 400).may_abort(),
        reject("bad chunk after the head was forwarded", "RFC 9112 §7.1; docs/errors.md (bodies stream)", &chunked(b"5\r\nhello\r\n"), 400).then_after_pause(b"2\nhi\r\n0\r\n\r\n"),
        reject("smuggled request after a streamed bad chunk", "PortSwigger (2019) TE.CL; Weikop, 'Funky chunks' (2025)", &chunked(b"5\r\nhello\r\n"), 400).then_after_pause(b"3\r\nhello\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: svc\r\n\r\n"),
    ];
    run_table(&cases);
}

/// Trailer fields RFC 9110 §6.5.1 forbids, mixed with allowed ones.
const MIXED_TRAILERS: &[u8] = b"0\r\nContent-Length: 5\r\nX-Checksum:  abc \r\nHost: evil\r\nTransfer-Encoding: chunked\r\nAuthorization: Bearer x\r\nTrailer: X-Checksum\r\nl5d-dtab: /svc=>/evil\r\nX-Empty:\r\n\r\n";

/// What a strict next hop gets must be framed one way only: corelink writes
/// chunk framing itself (every forwarded chunked body is checked against
/// `canonical_chunked` in `check_forwarded`) and drops forbidden trailers.
#[test]
fn chunk_framing_is_rewritten_and_forbidden_trailers_dropped() {
    let mixed = [&chunked(b"5\r\nhello\r\n")[..], MIXED_TRAILERS].concat();
    #[rustfmt::skip]
    let cases = vec![
        accept("BWS before an extension `5 ;a=b` reaches the backend as `5`", "RFC 9112 §7.1.1; Weikop, 'Funky chunks' (2025): BWS parsed differently by strict and lenient hops", &chunked(b"5 ;a=b\r\nhello\r\n0\r\n\r\n"), &[("POST", "/", b"hello")]),
        accept("tab BWS and a quoted extension with `;` inside", "RFC 9112 §7.1.1; HTTP Garden (Kallus et al., 2024)", &chunked(b"5\t;a=\"x;y\"\r\nhello\r\n0;last\r\n\r\n"), &[("POST", "/", b"hello")]),
        accept("`0000` last chunk and upper-case hex", "RFC 9112 §7.1 (chunk-size = 1*HEXDIG); nginx/HAProxy chunk-size tests", &chunked(b"00B\r\nhello world\r\n0000\r\n\r\n"), &[("POST", "/", b"hello world")]),
        accept("forbidden trailers dropped, allowed ones kept", "RFC 9110 §6.5.1; RFC 9112 §7.1.2 (a proxy must not merge them into the header section)", &mixed, &[("POST", "/", b"hello")]).trailers(&["X-Checksum: abc", "X-Empty:"]),
        accept("forbidden trailers streamed after the head", "RFC 9110 §6.5.1; docs/http1.md (bodies stream)", &chunked(b"5 ;a\r\nhel"), &[("POST", "/", b"hello")]).rest_after_pause(&[&b"lo\r\n"[..], MIXED_TRAILERS].concat()).trailers(&["X-Checksum: abc", "X-Empty:"]),
        accept("trailer-only `Content-Length: 0` does not frame the next request", "PortSwigger (2019) request smuggling via trailers; RFC 9110 §6.5.1", &[&chunked(b"0\r\nContent-Length: 44\r\n\r\n")[..], b"GET /next HTTP/1.1\r\nHost: svc\r\n\r\n"].concat(), &[("POST", "/", b""), ("GET", "/next", b"")]),
    ];
    run_table(&cases);
}

// ---------------------------------------------------------------------------
// Line endings, obs-fold, control and non-ASCII bytes.
// ---------------------------------------------------------------------------

#[test]
fn line_endings_folding_and_bytes() {
    #[rustfmt::skip]
    let cases = vec![
        reject("bare LF after the request line", "RFC 9112 §2.2; Node.js CVE-2022-32214", b"GET / HTTP/1.1\nHost: svc\r\n\r\n", 400),
        reject("bare CR in the request line", "RFC 9112 §2.2; Node.js CVE-2023-30589", b"GET / HTTP/1.1\rHost: svc\r\n\r\n", 400),
        reject("bare CR in a header value", "RFC 9110 §5.5 (reject or replace CR); Node.js CVE-2023-30589", b"GET / HTTP/1.1\r\nHost: svc\r\nX: a\rb\r\n\r\n", 400),
        reject("bare LF between headers", "RFC 9112 §2.2; Node.js CVE-2022-35256", b"GET / HTTP/1.1\r\nHost: svc\nX: y\r\n\r\n", 400),
        reject("LF-only request", "RFC 9112 §2.2 (MAY accept; a strict edge rejects)", b"GET / HTTP/1.1\nHost: svc\n\n", 400),
        reject("obs-fold", "RFC 9112 §5.2 (reject with 400 or replace)", b"GET / HTTP/1.1\r\nHost: svc\r\nX: a\r\n b\r\n\r\n", 400),
        reject("whitespace before the first header", "RFC 9112 §2.2; James Kettle, 'HTTP/1.1 must die' (2025): ` Host` V-H discrepancy", b"GET / HTTP/1.1\r\n Host: evil\r\nHost: svc\r\n\r\n", 400),
        reject("header line without a colon", "Netty CVE-2019-20444; RFC 9112 §5", b"GET / HTTP/1.1\r\nHost: svc\r\nNoColon\r\n\r\n", 400),
        reject("NUL in a header value", "RFC 9110 §5.5 (NUL MUST be rejected)", b"GET / HTTP/1.1\r\nHost: svc\r\nX: a\x00b\r\n\r\n", 400),
        reject("NUL in a header name", "RFC 9110 §5.1 (field-name = token)", b"GET / HTTP/1.1\r\nHost: svc\r\nX\x00Y: a\r\n\r\n", 400),
        reject("non-ASCII in a header name", "RFC 9110 §5.1 (token); HTTP Garden (Kallus et al., 2024)", b"GET / HTTP/1.1\r\nHost: svc\r\nX-\xc3\xa4: a\r\n\r\n", 400),
        reject("DEL in a header value", "RFC 9110 §5.5 (field-vchar excludes DEL)", b"GET / HTTP/1.1\r\nHost: svc\r\nX: a\x7fb\r\n\r\n", 400),
        reject("ESC in a header value", "RFC 9110 §5.5 (CTLs are not field-vchar)", b"GET / HTTP/1.1\r\nHost: svc\r\nX: a\x1bb\r\n\r\n", 400),
        reject("NUL in the target", "RFC 9112 §3.2; RFC 3986 §2", b"GET /a\x00b HTTP/1.1\r\nHost: svc\r\n\r\n", 400),
        reject("non-ASCII in the target", "RFC 9112 §3.2; RFC 3986 §2 (must be percent-encoded)", b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: svc\r\n\r\n", 400),
        reject("DEL in the target", "RFC 3986 §2", b"GET /a\x7fb HTTP/1.1\r\nHost: svc\r\n\r\n", 400),
        reject("space inside the target", "RFC 9112 §3 (request-line = method SP target SP version)", b"GET /a b HTTP/1.1\r\nHost: svc\r\n\r\n", 400),
        reject("tab as request-line separator", "RFC 9112 §3 (SP only; HTAB leniency is a desync vector)", b"GET\t/\tHTTP/1.1\r\nHost: svc\r\n\r\n", 400),
        reject("two spaces after the method", "RFC 9112 §3", b"GET  / HTTP/1.1\r\nHost: svc\r\n\r\n", 400),
        reject("control byte in the method", "RFC 9110 §9.1 (method = token)", b"G\x01T / HTTP/1.1\r\nHost: svc\r\n\r\n", 400),
    ];
    run_table(&cases);
}

// ---------------------------------------------------------------------------
// Request line, version, target and Host.
// ---------------------------------------------------------------------------

#[test]
fn request_line_version_target_and_host() {
    #[rustfmt::skip]
    let cases = vec![
        reject("HTTP/1.2", "RFC 9112 §2.3 (a strict edge answers an unsupported version with 505)", b"GET / HTTP/1.2\r\nHost: svc\r\n\r\n", 505),
        reject("HTTP/2.0 in an HTTP/1 request line", "RFC 9110 §15.6.6 (505)", b"GET / HTTP/2.0\r\nHost: svc\r\n\r\n", 505),
        reject("lowercase `http/1.1`", "RFC 9112 §2.3 (HTTP-name is case-sensitive)", b"GET / http/1.1\r\nHost: svc\r\n\r\n", 400),
        reject("missing version (HTTP/0.9 form)", "RFC 9112 §3; llhttp test/request/invalid", b"GET /\r\nHost: svc\r\n\r\n", 400),
        reject("trailing space after the version", "RFC 9112 §3", b"GET / HTTP/1.1 \r\nHost: svc\r\n\r\n", 400),
        reject("absolute-form authority differs from Host", "RFC 9112 §3.2.2; James Kettle, 'Practical HTTP Host header attacks' (2017)", b"GET http://evil/x HTTP/1.1\r\nHost: svc\r\n\r\n", 400),
        reject("absolute-form with userinfo", "RFC 9110 §4.2.4 (userinfo in http URIs)", b"GET http://user@svc/x HTTP/1.1\r\nHost: svc\r\n\r\n", 400),
        reject("`*` with GET", "RFC 9112 §3.2.4 (asterisk-form only for OPTIONS)", b"GET * HTTP/1.1\r\nHost: svc\r\n\r\n", 400),
        reject("CONNECT without authority", "RFC 9112 §3.2.3 (authority-form)", b"CONNECT / HTTP/1.1\r\nHost: svc\r\n\r\n", 400),
        reject("CONNECT authority without a port", "RFC 9112 §3.2.3 (authority-form = uri-host \":\" port)", b"CONNECT svc HTTP/1.1\r\nHost: svc\r\n\r\n", 400),
        reject("relative target", "RFC 9112 §3.2", b"GET a/b HTTP/1.1\r\nHost: svc\r\n\r\n", 400),
        reject("fragment in an origin-form target `/a#b`", "RFC 9112 §3.2 (no form of request-target has a fragment); HAProxy CVE-2023-45539", b"GET /a#b HTTP/1.1\r\nHost: svc\r\n\r\n", 400),
        reject("fragment hiding a path `/pub#/../admin`", "HAProxy CVE-2023-45539 (a next hop cutting at `#` sees another path)", b"GET /pub?x#/../admin HTTP/1.1\r\nHost: svc\r\n\r\n", 400),
        reject("fragment in an absolute-form target", "RFC 9112 §3.2.2 (absolute-URI has no fragment)", b"GET http://svc/a#b HTTP/1.1\r\nHost: svc\r\n\r\n", 400),
        pipeline("fragment after a good pipelined request", "RFC 9112 §3.2; RFC 9112 §9.3.2", b"GET /one HTTP/1.1\r\nHost: svc\r\n\r\nGET /two#x HTTP/1.1\r\nHost: svc\r\n\r\nGET /three HTTP/1.1\r\nHost: svc\r\n\r\n", &[200, 400], &[("GET", "/one", b"")]),
        reject("missing Host in HTTP/1.1", "RFC 9112 §3.2 (MUST respond 400)", b"GET / HTTP/1.1\r\n\r\n", 400),
        reject("duplicate Host, differing", "RFC 9112 §3.2 (more than one Host: 400)", b"GET / HTTP/1.1\r\nHost: svc\r\nHost: evil\r\n\r\n", 400),
        reject("duplicate Host, identical", "RFC 9112 §3.2 (more than one Host: 400)", b"GET / HTTP/1.1\r\nHost: svc\r\nHost: svc\r\n\r\n", 400),
        reject("Host with a path", "RFC 9112 §3.2 (invalid Host value: 400)", b"GET / HTTP/1.1\r\nHost: svc/evil\r\n\r\n", 400),
        reject("Host with userinfo", "RFC 9110 §7.2", b"GET / HTTP/1.1\r\nHost: user@svc\r\n\r\n", 400),
        reject("empty Host", "RFC 9110 §7.2 (corelink needs a Host to route: 400, as linkerd)", b"GET / HTTP/1.1\r\nHost:\r\n\r\n", 400),
        reject("HTTP/1.0 without Host", "linkerd 1.x io.l5d.header.token identifier (UnknownDst: 400)", b"GET / HTTP/1.0\r\n\r\n", 400),
    ];
    run_table(&cases);
}

// ---------------------------------------------------------------------------
// Limits, Expect, and smuggling in the middle of a pipeline.
// ---------------------------------------------------------------------------

#[test]
fn limits_expectations_and_pipelines() {
    let long_line = format!("GET /{} HTTP/1.1\r\nHost: svc\r\n\r\n", "a".repeat(5000));
    let long_partial = format!("GET /{}", "a".repeat(5000));
    let big_head = format!("GET / HTTP/1.1\r\nHost: svc\r\nX-Big: {}\r\n\r\n", "a".repeat(13_000));
    let mut many = String::from("GET / HTTP/1.1\r\nHost: svc\r\n");
    for i in 0..101 {
        many.push_str(&format!("X-{i}: v\r\n"));
    }
    many.push_str("\r\n");
    #[rustfmt::skip]
    let cases = vec![
        reject("request line over 4 KiB", "RFC 9112 §3 (414); linkerd maxInitialLineKB", long_line.as_bytes(), 414),
        reject("unterminated request line over 4 KiB", "RFC 9112 §3 (414 before the line ends)", long_partial.as_bytes(), 414),
        reject("header section over 8 KiB", "RFC 6585 §5 (431); linkerd maxHeadersKB", big_head.as_bytes(), 431),
        reject("more than 100 header fields", "RFC 6585 §5 (431); nginx/HAProxy field count limits", many.as_bytes(), 431),
        reject("unknown expectation", "RFC 9110 §10.1.1 (417)", b"POST / HTTP/1.1\r\nHost: svc\r\nExpect: something\r\nContent-Length: 5\r\n\r\nhello", 417),
        reject("obfuscated `Expect: y 100-continue`", "James Kettle, 'HTTP/1.1 must die' (2025): Expect-based desync", b"POST / HTTP/1.1\r\nHost: svc\r\nExpect: y 100-continue\r\nContent-Length: 5\r\n\r\nhello", 417),
        reject("folded `Expect:[CRLF] 100-continue`", "James Kettle, 'HTTP/1.1 must die' (2025); RFC 9112 §5.2", b"POST / HTTP/1.1\r\nHost: svc\r\nExpect:\r\n 100-continue\r\nContent-Length: 5\r\n\r\nhello", 400),
        pipeline("CL.TE in the middle of a pipeline", "PortSwigger, HTTP Desync Attacks (2019); RFC 9112 §9.3.2", b"GET /one HTTP/1.1\r\nHost: svc\r\n\r\nPOST /two HTTP/1.1\r\nHost: svc\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGGET /three HTTP/1.1\r\nHost: svc\r\n\r\n", &[200, 400], &[("GET", "/one", b"")]),
        pipeline("TE.CL in the middle of a pipeline", "PortSwigger, HTTP Desync Attacks (2019); RFC 9112 §9.3.2", b"POST /one HTTP/1.1\r\nHost: svc\r\nContent-Length: 3\r\n\r\nabcPOST /two HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\nGPOST /three HTTP/1.1\r\nHost: svc\r\n\r\n0\r\n\r\n", &[200, 400], &[("POST", "/one", b"abc")]),
        pipeline("bad chunk after two good pipelined requests", "RFC 9112 §9.3.2; Weikop, 'Funky chunks' (2025)", b"GET /one HTTP/1.1\r\nHost: svc\r\n\r\nPOST /two HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\nPOST /three HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: chunked\r\n\r\n2\nhi\r\n0\r\n\r\nGET /four HTTP/1.1\r\nHost: svc\r\n\r\n", &[200, 200, 400], &[("GET", "/one", b""), ("POST", "/two", b"hi")]),
        pipeline("duplicate Host after a good pipelined request", "RFC 9112 §3.2; RFC 9112 §9.3.2", b"GET /one HTTP/1.1\r\nHost: svc\r\n\r\nGET /two HTTP/1.1\r\nHost: svc\r\nHost: evil\r\n\r\n", &[200, 400], &[("GET", "/one", b"")]),
    ];
    run_table(&cases);
}

// ---------------------------------------------------------------------------
// The upstream direction: malformed responses.
// ---------------------------------------------------------------------------

enum Up {
    /// 502 from corelink; nothing of the bad response reached the client.
    BadGateway,
    /// The well-framed part is relayed (status and body), the rest dropped.
    Relayed { status: u16, body: &'static [u8] },
    /// The head was already relayed: the client sees the response cut short
    /// and the connection closed.
    Truncated,
    /// Control: a valid response; the upstream connection is pooled and reused.
    Pooled,
    /// A valid chunked response: relayed in canonical framing (see
    /// `canonical_chunked`) with this payload and these trailer lines, and
    /// the upstream connection pooled.
    Rechunked { body: &'static [u8], trailers: &'static [&'static str] },
}

struct UpCase {
    name: &'static str,
    source: &'static str,
    method: &'static str,
    response: Vec<Action>,
    expect: Up,
}

/// A 40,000-byte body, more than two of corelink's 16 KiB buffers.
fn long_body() -> &'static [u8] {
    static BODY: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BODY.get_or_init(|| (0..40_000u32).map(|i| b'a' + (i % 26) as u8).collect())
}

fn up(name: &'static str, source: &'static str, response: &[u8], expect: Up) -> UpCase {
    UpCase { name, source, method: "GET", response: vec![Action::Send(response.to_vec())], expect }
}

/// A response sent in two writes 100 ms apart.
fn up_split(
    name: &'static str,
    source: &'static str,
    method: &'static str,
    first: &[u8],
    second: Option<&[u8]>,
    expect: Up,
) -> UpCase {
    let mut response = vec![Action::Send(first.to_vec()), Action::Sleep(Duration::from_millis(100))];
    response.push(match second {
        Some(bytes) => Action::Send(bytes.to_vec()),
        None => Action::Close,
    });
    UpCase { name, source, method, response, expect }
}

impl UpCase {
    fn method(mut self, method: &'static str) -> UpCase {
        self.method = method;
        self
    }
}

fn run_up_case(addr: SocketAddr, backend: &RawBackend, index: usize, case: &UpCase) -> Result<(), String> {
    let cursor = backend.cursor();
    let bytes_before = backend.total_received();
    let mut c = open(addr);
    c.send(format!("{} /up/{index} HTTP/1.1\r\nHost: svc\r\n\r\n", case.method).as_bytes());
    let result = c.read_response(case.method);
    match (&case.expect, result) {
        (Up::BadGateway, Ok(r)) if r.status == 502 => {
            expect_closed(&mut c, Duration::from_secs(2))?;
        }
        (Up::Relayed { status, body }, Ok(r)) if r.status == *status && r.body == *body => {
            let extra = c.take_buffered();
            if !extra.is_empty() {
                return Err(format!("extra bytes after the response: {}", show(&extra)));
            }
        }
        (Up::Pooled, Ok(r)) if r.status == 200 && r.body == b"ok" => {}
        (Up::Rechunked { body, trailers }, Ok(r)) if r.status == 200 => {
            let got = canonical_chunked(&r.chunked_raw)
                .map_err(|why| format!("client got a chunked body not in canonical framing: {why}"))?;
            if r.body != *body || got != *trailers {
                return Err(format!("client got body {:?} trailers {got:?}", show(&r.body)));
            }
            let extra = c.take_buffered();
            if !extra.is_empty() {
                return Err(format!("extra bytes after the response: {}", show(&extra)));
            }
        }
        (Up::Truncated, Err(e))
            if matches!(e.kind(), std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset) => {}
        (_, Ok(r)) => {
            return Err(format!("client got {} {:?} (l5d-err {:?})", r.status, show(&r.body), r.header("l5d-err")))
        }
        (_, Err(e)) => return Err(format!("client read failed: {e}")),
    }
    let requests = backend_requests(backend, cursor, bytes_before, false)?;
    let [first] = requests.as_slice() else {
        return Err(format!("backend saw {} requests, expected 1", requests.len()));
    };
    let first_conn = first.conn;
    let pooled = matches!(case.expect, Up::Pooled | Up::Rechunked { .. });
    let wait = Duration::from_millis(if pooled { 100 } else { 2000 });
    if backend.wait_closed(first_conn, wait) == pooled {
        return Err(if pooled {
            "the upstream connection of a valid response was closed".into()
        } else {
            "corelink kept the upstream connection that sent the bad response open".into()
        });
    }
    // A new client connection: a correct answer, from a fresh upstream
    // connection (the same one only after the valid control response).
    let cursor = backend.cursor();
    let bytes_before = backend.total_received();
    let mut c = open(addr);
    c.send(b"GET /next HTTP/1.1\r\nHost: svc\r\n\r\n");
    match c.read_response("GET") {
        Ok(r) if r.status == 200 && r.body == b"ok" => {}
        Ok(r) => return Err(format!("next request got {} {:?}", r.status, show(&r.body))),
        Err(e) => return Err(format!("next request failed: {e}")),
    }
    let requests = backend_requests(backend, cursor, bytes_before, false)?;
    let [next] = requests.as_slice() else {
        return Err(format!("next: backend saw {} requests, expected 1", requests.len()));
    };
    if (next.conn == first_conn) != pooled {
        return Err(format!("next request went over upstream connection {} (the first used {first_conn})", next.conn));
    }
    Ok(())
}

fn run_up_table(cases: Vec<UpCase>) {
    check_table(cases.iter().map(|c| (c.name, c.source)));
    let scripts: Arc<Vec<Vec<Action>>> = Arc::new(cases.iter().map(|c| c.response.clone()).collect());
    let backend = RawBackend::start_with(Arc::new(move |req: &Request| {
        let index: Option<usize> = req.target.strip_prefix("/up/").and_then(|i| i.parse().ok());
        match index {
            Some(i) => scripts[i].clone(),
            None => ok_response(req),
        }
    }));
    let mut failures = Vec::new();
    for io in backends() {
        // One worker, so a follow-up request takes from the pool the bad
        // response's connection would have gone back to.
        let config = simple_config(backend.addr, "", "  workers: 1\n");
        let mut proxy = Corelink::start(&config, io);
        for (i, case) in cases.iter().enumerate() {
            if let Err(why) = run_up_case(proxy.addr(), &backend, i, case) {
                failures.push(format!("[{io}] {} ({}): {why}", case.name, case.source));
                proxy = Corelink::start(&config, io);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} upstream case runs failed:\n{}",
        failures.len(),
        cases.len() * backends().len(),
        failures.join("\n")
    );
}

#[test]
fn malformed_responses_do_not_desynchronise_the_pool() {
    #[rustfmt::skip]
    let cases = vec![
        up("valid response (control)", "RFC 9112 §9.3 (persistence)", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", Up::Pooled),
        up("bad status code", "RFC 9112 §4 (status-code = 3DIGIT)", b"HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\nok", Up::BadGateway),
        up("four-digit status code", "RFC 9112 §4; llhttp test/response/invalid", b"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok", Up::BadGateway),
        up("HTTP/2.0 status line", "RFC 9112 §2.3", b"HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok", Up::BadGateway),
        up("not HTTP at all", "RFC 9110 §15.6.3 (502 for an invalid response)", b"SSH-2.0-OpenSSH_9.6\r\n\r\n", Up::BadGateway),
        up("CL and TE in a response", "RFC 9112 §6.3 rule 3; PortSwigger (2019)", b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", Up::BadGateway),
        up("duplicate differing Content-Length", "RFC 9112 §6.3 rule 5 (a proxy MUST answer 502)", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!", Up::BadGateway),
        up("invalid Content-Length `+2`", "RFC 9112 §6.3 rule 5", b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok", Up::BadGateway),
        up("`chunked, chunked` response", "RFC 9112 §6.1", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", Up::BadGateway),
        up("TE in an HTTP/1.0 response", "RFC 9112 §6.1 (HTTP/1.0 with TE: faulty framing)", b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", Up::BadGateway),
        up("bare LF in a response", "RFC 9112 §2.2; Node.js CVE-2022-32214 (response side)", b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok", Up::BadGateway),
        up("obs-fold in a response", "RFC 9112 §5.2 (a proxy MUST reject or replace)", b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 2\r\n\r\nok", Up::BadGateway),
        up("`Content-Length : 2` in a response", "RFC 9112 §5.1 (a proxy MUST remove the whitespace or reject)", b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok", Up::BadGateway),
        up("NUL in a response header", "RFC 9110 §5.5", b"HTTP/1.1 200 OK\r\nX: a\x00b\r\nContent-Length: 2\r\n\r\nok", Up::BadGateway),
        up("bad chunk size in a response", "RFC 9112 §7.1", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n", Up::BadGateway),
        up("response chunk longer than its size", "RFC 9112 §7.1; Weikop, 'Funky chunks' (2025)", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nok\r\n0\r\n\r\n", Up::BadGateway),
        up("101 without an Upgrade request", "RFC 9110 §15.2.2 (101 only in reply to Upgrade); Egorov (2019)", b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", Up::BadGateway),
        up("response longer than its Content-Length", "RFC 9112 §6.3 rule 6; PortSwigger (2019) response queue desync", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled", Up::Relayed { status: 200, body: b"ok" }),
        // 40,000 bytes and the extra response in one write: on io_uring one
        // bundled receive brings them in three buffers, the body's end and
        // the smuggled bytes in the last one.
        up("long response longer than its Content-Length", "RFC 9112 §6.3 rule 6; PortSwigger (2019) response queue desync", &[&b"HTTP/1.1 200 OK\r\nContent-Length: 40000\r\n\r\n"[..], long_body(), b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled"].concat(), Up::Relayed { status: 200, body: long_body() }),
        up("smuggled response after a chunked one", "James Kettle, 'HTTP/2: The Sequel is Always Worse' (2021): response queue poisoning", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled", Up::Relayed { status: 200, body: b"ok" }),
        up("204 carrying a body", "RFC 9112 §6.3 rule 1 (204 has no body)", b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello", Up::Relayed { status: 204, body: b"" }),
        up("HEAD response carrying a body", "RFC 9112 §6.3 rule 1; RFC 9110 §9.3.2", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", Up::Relayed { status: 200, body: b"" }).method("HEAD"),
        up_split("bad chunk after the head was relayed", "RFC 9112 §7.1; docs/errors.md (truncate and close)", "GET", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n", Some(b"zz\r\nbad\r\n0\r\n\r\n"), Up::Truncated),
        up_split("upstream closes inside a Content-Length body", "RFC 9112 §8 (incomplete message)", "GET", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nok", None, Up::Truncated),
    ];
    run_up_table(cases);
}

/// Bytes an upstream sends after a complete response, while the connection
/// sits idle in the pool, are never read: the next request to take that
/// connection reads them as its response.
#[test]
fn late_bytes_after_a_response_do_not_poison_the_pool() {
    #[rustfmt::skip]
    let cases = vec![
        up_split("HEAD response with its body after a pause", "RFC 9112 §6.3 rule 1; James Kettle, 'HTTP/1.1 must die' (2025): HEAD response desync", "HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", Some(b"hello"), Up::Relayed { status: 200, body: b"" }),
        up_split("smuggled response after a pause", "James Kettle, 'HTTP/2: The Sequel is Always Worse' (2021): response queue poisoning", "GET", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", Some(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled"), Up::Relayed { status: 200, body: b"ok" }),
        up_split("204 with its body after a pause", "RFC 9112 §6.3 rule 1 (204 has no body)", "GET", b"HTTP/1.1 204 No Content\r\n\r\n", Some(b"hello"), Up::Relayed { status: 204, body: b"" }),
    ];
    run_up_table(cases);
}

/// The response direction of `chunk_framing_is_rewritten_and_forbidden_trailers_dropped`:
/// a client (or the next proxy) gets corelink's chunk framing and no trailer
/// field RFC 9110 §6.5.1 forbids.
#[test]
fn response_chunk_framing_is_rewritten_and_forbidden_trailers_dropped() {
    const HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    const TRAILERS: &[u8] = b"0\r\nContent-Length: 5\r\nX-Checksum:  abc \r\nSet-Cookie: admin=1\r\nTransfer-Encoding: chunked\r\nLocation: /evil\r\nX-Empty:\r\n\r\n";
    let mixed = [HEAD, b"2 ;a=b\r\nok\r\n", TRAILERS].concat();
    #[rustfmt::skip]
    let cases = vec![
        up("BWS before an extension in a response chunk", "RFC 9112 §7.1.1; Weikop, 'Funky chunks' (2025)", &[HEAD, b"2 ;a=b\r\nok\r\n0\r\n\r\n"].concat(), Up::Rechunked { body: b"ok", trailers: &[] }),
        up("upper-case hex, leading zeros, extension on the last chunk", "RFC 9112 §7.1", &[HEAD, b"0002\r\nok\r\n000;x=\"y\"\r\n\r\n"].concat(), Up::Rechunked { body: b"ok", trailers: &[] }),
        up("forbidden response trailers dropped", "RFC 9110 §6.5.1 (framing, response controls, authentication)", &mixed, Up::Rechunked { body: b"ok", trailers: &["X-Checksum: abc", "X-Empty:"] }),
        up_split("forbidden response trailers after a pause", "RFC 9110 §6.5.1; docs/http1.md (bodies stream)", "GET", &[HEAD, b"2;a\r\no"].concat(), Some(&[&b"k\r\n"[..], TRAILERS].concat()), Up::Rechunked { body: b"ok", trailers: &["X-Checksum: abc", "X-Empty:"] }),
    ];
    run_up_table(cases);
}

/// Dropped trailer fields are counted per server, by direction.
#[test]
fn dropped_trailers_are_counted() {
    let backend = RawBackend::start_with(Arc::new(|_req: &Request| {
        vec![Action::Send(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nHost: evil\r\nX-Ok: 1\r\n\r\n"
                .to_vec(),
        )]
    }));
    for io in backends() {
        let proxy = Corelink::start(&simple_config(backend.addr, "", ""), io);
        let mut c = open(proxy.addr());
        c.send(&chunked(b"2\r\nhi\r\n0\r\nContent-Length: 9\r\nCookie: a=b\r\nX-Ok: 1\r\n\r\n"));
        let rsp = c.read_response("POST").unwrap();
        assert_eq!((rsp.status, rsp.trailers.as_slice()), (200, &["X-Ok: 1".to_string()][..]), "{io}");
        assert_eq!(proxy.metric_ending("/request_trailers_dropped"), 2.0, "{io}");
        assert_eq!(proxy.metric_ending("/response_trailers_dropped"), 1.0, "{io}");
    }
}
