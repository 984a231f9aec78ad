//! Writes the heads corelink forwards: the received fields minus hop-by-hop ones
//! (RFC 9110 §7.6.1, including those named in `Connection`), plus the framing
//! and connection fields this hop decides, plus `Via`.

use super::framing::BodyFraming;
use std::cmp::Ordering;

use super::limits::HEADER_SLOTS;
use super::request::{Method, RequestHead};
use super::response::ResponseHead;
use super::tokens::{classify, list_items, HeaderKind, Version};
use super::VIA_PSEUDONYM;

fn via_line(version: Version) -> &'static [u8] {
    match version {
        Version::Http10 => b"Via: 1.0 corelink\r\n",
        Version::Http11 => b"Via: 1.1 corelink\r\n",
    }
}

// Keep the literal in via_line in sync with the pseudonym constant.
const _: () = assert!(VIA_PSEUDONYM.len() == 8);

/// Writes the received fields but the hop-by-hop ones (`is_hop_by_hop` says
/// which, by position and name), those `Connection` names (when
/// `names_fields`), and those `drop` names.
fn write_fields_except(
    out: &mut Vec<u8>,
    headers: &[httparse::Header<'_>],
    names_fields: bool,
    is_hop_by_hop: impl Fn(usize, &str) -> bool,
    drop: impl Fn(&str) -> bool,
) {
    let named = names_fields.then(|| named_by_connection(headers));
    for (i, h) in headers.iter().enumerate() {
        if is_hop_by_hop(i, h.name) || named.is_some_and(|named| named[i]) || drop(h.name) {
            continue;
        }
        out.extend_from_slice(h.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value);
        out.extend_from_slice(b"\r\n");
    }
}

/// Which of `headers` (by index) a `Connection` field names, among those
/// no other rule covers (RFC 9110 §7.6.1). One pass over the `Connection`
/// lists, each name looked up among the fields' names sorted: asking every
/// list for every field cost fields × names, 0.8 ms for a 10 KiB head of
/// 5,000 names and 97 fields (release build).
fn named_by_connection(headers: &[httparse::Header<'_>]) -> [bool; HEADER_SLOTS] {
    let mut named = [false; HEADER_SLOTS];
    let mut order = [0u16; HEADER_SLOTS];
    let mut n = 0;
    for (i, h) in headers.iter().enumerate().take(HEADER_SLOTS) {
        if classify(h.name) == HeaderKind::Other {
            order[n] = i as u16;
            n += 1;
        }
    }
    let name = |i: u16| headers[usize::from(i)].name.as_bytes();
    let order = &mut order[..n];
    order.sort_unstable_by(|&a, &b| cmp_ignoring_case(name(a), name(b)));
    for h in headers.iter().filter(|h| classify(h.name) == HeaderKind::Connection) {
        for item in list_items(h.value) {
            let first = order.partition_point(|&i| cmp_ignoring_case(name(i), item) == Ordering::Less);
            for &i in order[first..].iter().take_while(|&&i| name(i).eq_ignore_ascii_case(item)) {
                named[usize::from(i)] = true;
            }
        }
    }
    named
}

fn cmp_ignoring_case(a: &[u8], b: &[u8]) -> Ordering {
    a.iter().map(u8::to_ascii_lowercase).cmp(b.iter().map(u8::to_ascii_lowercase))
}

/// Encodes the request head sent upstream. Always HTTP/1.1 (a proxy sends its
/// own version, RFC 9110 §6.2); `extra` fields (routing context) go last.
/// Received fields with the same name as an `extra` field are replaced by it
/// (linkerd sets its context headers rather than appending to them).
pub fn encode_request_head(out: &mut Vec<u8>, head: &RequestHead<'_, '_>, extra: &[(&str, &[u8])]) {
    encode_request_head_with(out, head, extra, false)
}

/// [`encode_request_head`], optionally dropping every received `l5d-*` field
/// and `Dtab-Local` (a server with `clearContext: true` does not trust its
/// clients' context; linkerd forwards `Dtab-Local`, but a finagle service
/// behind corelink would honour it).
pub fn encode_request_head_with(
    out: &mut Vec<u8>,
    head: &RequestHead<'_, '_>,
    extra: &[(&str, &[u8])],
    clear_context: bool,
) {
    out.extend_from_slice(head.method_str.as_bytes());
    out.push(b' ');
    if head.method != Method::Connect && head.target.starts_with(['?', '#']) {
        // An origin-form target whose path segments the identifier consumed
        // (`io.l5d.path`, `consume: true`): the path is `/` again.
        out.push(b'/');
    }
    out.extend_from_slice(head.target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    // HTTP/1.1 requires Host (RFC 9112 §3.2); an HTTP/1.0 request may lack
    // the field and name its host in the target, which the parser then took
    // as `head.host`. (With no host anywhere, the caller supplies one.)
    if head.version == Version::Http10 {
        if let Some(host) = head.host.filter(|_| !head.headers.iter().any(|h| classify(h.name) == HeaderKind::Host)) {
            out.extend_from_slice(b"Host: ");
            out.extend_from_slice(host.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    let is_hop_by_hop = |_, name: &str| classify(name).is_hop_by_hop();
    write_fields_except(out, head.headers, head.connection_names_fields, is_hop_by_hop, |name| {
        if clear_context {
            is_linkerd_context_field(name)
        } else {
            // Only `l5d-` names can be replaced: one cheap test for the rest.
            is_l5d(name) && extra.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
        }
    });
    if head.framing == BodyFraming::Chunked {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
    }
    if let Some(upgrade) = head.upgrade {
        out.extend_from_slice(b"Connection: upgrade\r\nUpgrade: ");
        out.extend_from_slice(upgrade);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(via_line(head.version));
    for (name, value) in extra {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// A linkerd header: a name starting with `l5d-` (any case), as linkerd's
/// `ClearMiscServerFilter` matches them.
fn is_l5d(name: &str) -> bool {
    name.len() >= 4 && name.as_bytes()[..4].eq_ignore_ascii_case(b"l5d-")
}

/// Whether a `Connection` field of `headers` names `field` (so the encoder
/// drops a field of that name as hop-by-hop, RFC 9110 §7.6.1).
pub fn connection_names(headers: &[httparse::Header<'_>], field: &str) -> bool {
    headers
        .iter()
        .filter(|h| classify(h.name) == HeaderKind::Connection)
        .any(|h| list_items(h.value).any(|item| item.eq_ignore_ascii_case(field.as_bytes())))
}

/// A field `clearContext` removes from a client's request: every `l5d-*`
/// and (unlike linkerd) finagle's `Dtab-Local`.
pub fn is_linkerd_context_field(name: &str) -> bool {
    is_l5d(name) || name.eq_ignore_ascii_case("dtab-local")
}

/// What the proxy decided about the client side of a response.
#[derive(Debug, Clone, Copy, Default)]
pub struct ResponseHeadOptions {
    /// Close the client connection after this response.
    pub close: bool,
    /// The client is HTTP/1.0 and asked for keep-alive: say we keep it.
    pub keep_alive_http10: bool,
    /// The body is chunked upstream but is sent de-chunked (to an HTTP/1.0
    /// client): drop the Transfer-Encoding field.
    pub dechunk: bool,
    /// `clearContext`: drop every `l5d-*` field, as linkerd's
    /// `ClearMiscServerFilter` does on the way back.
    pub clear_context: bool,
    /// The body is not relayed (`clearContext` and an `l5d-err` response):
    /// send `Content-Length: 0` in place of upstream's framing fields.
    pub empty_body: bool,
}

/// Encodes the response head sent to the client.
pub fn encode_response_head(out: &mut Vec<u8>, head: &ResponseHead<'_, '_>, opts: ResponseHeadOptions) {
    out.extend_from_slice(b"HTTP/1.1 ");
    push_status(out, head.status);
    out.push(b' ');
    out.extend_from_slice(head.reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    // The parser classified every field already: no second `classify` per
    // field (docs/engine.md, issue 16).
    let is_hop_by_hop = |i, name: &str| head.hop_fields.is_hop_by_hop(i, name);
    if opts.clear_context {
        write_fields_except(out, head.headers, head.connection_names_fields, is_hop_by_hop, |name| {
            is_l5d(name) || (opts.empty_body && classify(name) == HeaderKind::ContentLength)
        });
    } else {
        write_fields_except(out, head.headers, head.connection_names_fields, is_hop_by_hop, |_| false);
    }
    if opts.empty_body {
        out.extend_from_slice(b"Content-Length: 0\r\n");
    }
    // Upstream's codings pass unchanged: validated to end in chunked, or on a
    // close-delimited body (e.g. `gzip` alone), where they still apply. Only
    // a body de-chunked for an HTTP/1.0 client, or not sent, loses them.
    let keep_codings = match head.framing {
        _ if opts.empty_body => false,
        BodyFraming::Chunked => !opts.dechunk,
        BodyFraming::CloseDelimited => true,
        _ => false,
    };
    if keep_codings {
        for (i, h) in head.headers.iter().enumerate() {
            if is_hop_by_hop(i, h.name) && classify(h.name) == HeaderKind::TransferEncoding {
                out.extend_from_slice(b"Transfer-Encoding: ");
                out.extend_from_slice(h.value);
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    if let Some(upgrade) = head.upgrade {
        out.extend_from_slice(b"Connection: upgrade\r\nUpgrade: ");
        out.extend_from_slice(upgrade);
        out.extend_from_slice(b"\r\n");
    } else if opts.close {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if opts.keep_alive_http10 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(via_line(head.version));
    out.extend_from_slice(b"\r\n");
}

/// Encodes a response corelink itself answers with: status, `l5d-err` with the
/// reason (URL-encoded as linkerd does, Java `URLEncoder` style), and the reason
/// as a text body.
pub fn encode_error_response(out: &mut Vec<u8>, status: u16, message: &str, close: bool) {
    out.extend_from_slice(b"HTTP/1.1 ");
    push_status(out, status);
    out.push(b' ');
    out.extend_from_slice(reason_phrase(status).as_bytes());
    out.extend_from_slice(b"\r\nl5d-err: ");
    url_encode(out, message);
    out.extend_from_slice(b"\r\nContent-Type: text/plain\r\nContent-Length: ");
    push_decimal(out, message.len() as u64 + 1);
    out.extend_from_slice(b"\r\nVia: 1.1 corelink\r\n");
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(message.as_bytes());
    out.push(b'\n');
}

/// The error response of a server with `clearContext: true`: status only, no
/// `l5d-err` and an empty body, as linkerd's `ClearMiscServerFilter` leaves
/// its `ErrorResponder`'s answers (the text names dtabs and addresses that an
/// untrusted client has no business reading).
pub fn encode_cleared_error_response(out: &mut Vec<u8>, status: u16, close: bool) {
    out.extend_from_slice(b"HTTP/1.1 ");
    push_status(out, status);
    out.push(b' ');
    out.extend_from_slice(reason_phrase(status).as_bytes());
    out.extend_from_slice(b"\r\nContent-Length: 0\r\nVia: 1.1 corelink\r\n");
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// finagle's retryable nack (`HttpNackFilter`): the request was refused
/// before any processing (`maxConcurrentRequests`) and is safe to retry, at
/// once (`Retry-After: 0`). No `l5d-err`: it is not a failure of the request.
pub fn encode_nack_response(out: &mut Vec<u8>, close: bool, head_request: bool) {
    const BODY: &[u8] = b"Request was not processed by the server due to an error and is safe to retry";
    out.extend_from_slice(b"HTTP/1.1 503 Service Unavailable\r\nfinagle-http-nack: true\r\nRetry-After: 0\r\n");
    out.extend_from_slice(b"Content-Type: text/plain\r\nContent-Length: ");
    push_decimal(out, BODY.len() as u64);
    out.extend_from_slice(b"\r\nVia: 1.1 corelink\r\n");
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    // The answer to HEAD has the fields of the answer to GET and no body
    // (RFC 9110 §9.3.2); a body here would be read as the next response.
    if !head_request {
        out.extend_from_slice(BODY);
    }
}

fn push_status(out: &mut Vec<u8>, status: u16) {
    out.extend_from_slice(&[
        b'0' + (status / 100 % 10) as u8,
        b'0' + (status / 10 % 10) as u8,
        b'0' + (status % 10) as u8,
    ]);
}

pub(crate) fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// `application/x-www-form-urlencoded` as Java's URLEncoder writes it:
/// alphanumerics and `.-*_` stay, space becomes `+`, everything else `%XX`.
pub(crate) fn url_encode(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s.as_bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'*' | b'_' => out.push(b),
            b' ' => out.push(b'+'),
            _ => out.extend_from_slice(&[b'%', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]),
        }
    }
}

pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        414 => "URI Too Long",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        200 => "OK",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::{Limits, HEADER_SLOTS};
    use crate::{parse_request, parse_response, Method};
    use std::mem::MaybeUninit;

    #[test]
    fn connection_names_fields_in_any_case_and_any_number() {
        let headers = [
            httparse::Header { name: "X-A", value: b"1" },
            httparse::Header { name: "Connection", value: b"x-b, , X-a" },
            httparse::Header { name: "x-b", value: b"2" },
            httparse::Header { name: "X-C", value: b"3" },
            httparse::Header { name: "X-B", value: b"4" },
            httparse::Header { name: "connection", value: b"x-d" },
        ];
        assert_eq!(&named_by_connection(&headers)[..6], [true, false, true, false, true, false]);
        // Thousands of names against a hundred fields (a 10 KiB head): each
        // name is one lookup, and the answer is the same.
        let names = (0..5000).map(|i| format!("n{i}")).collect::<Vec<_>>().join(",");
        let fields: Vec<String> = (0..97).map(|i| format!("N{}", i * 61)).collect();
        let mut headers: Vec<_> = fields.iter().map(|f| httparse::Header { name: f, value: b"v" }).collect();
        headers.push(httparse::Header { name: "Connection", value: names.as_bytes() });
        let named = named_by_connection(&headers);
        for (i, f) in fields.iter().enumerate() {
            let number: usize = f[1..].parse().unwrap();
            assert_eq!(named[i], number < 5000, "{f}");
        }
    }

    #[test]
    fn request_drops_hop_by_hop_and_adds_via() {
        let buf = b"POST /x HTTP/1.1\r\nHost: b\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nTransfer-Encoding: chunked\r\nX-Keep: 2\r\n\r\n";
        let mut slots = [MaybeUninit::uninit(); HEADER_SLOTS];
        let head = parse_request(buf, &mut slots, &Limits::default()).unwrap().unwrap();
        let mut out = Vec::new();
        encode_request_head(&mut out, &head, &[("l5d-dst-service", b"/svc/b")]);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "POST /x HTTP/1.1\r\nHost: b\r\nX-Keep: 2\r\nTransfer-Encoding: chunked\r\nVia: 1.1 corelink\r\nl5d-dst-service: /svc/b\r\n\r\n"
        );
    }

    #[test]
    fn response_head_options() {
        let buf = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n";
        let mut slots = [MaybeUninit::uninit(); HEADER_SLOTS];
        let head = parse_response(buf, &mut slots, Method::Get, false, &Limits::default()).unwrap().unwrap();
        let mut out = Vec::new();
        encode_response_head(&mut out, &head, ResponseHeadOptions { close: true, dechunk: true, ..Default::default() });
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 200 OK\r\nX-A: 1\r\nConnection: close\r\nVia: 1.1 corelink\r\n\r\n"
        );
    }

    /// The parser's note of hop-by-hop fields covers the first 64 fields; the
    /// encoder classifies the rest itself. Hop-by-hop fields on both sides of
    /// the 64th are dropped, the end-to-end ones kept in order.
    #[test]
    fn response_hop_by_hop_fields_past_the_64th() {
        let hop = |i: usize| match i {
            0 => Some("Keep-Alive: 5"),
            63 => Some("TE: trailers"),
            64 => Some("Proxy-Connection: x"),
            65 => Some("connection: X-Named"),
            70 => Some("Transfer-Encoding: chunked"),
            80 => Some("X-Named: secret"),
            99 => Some("UPGRADE: h2"),
            _ => None,
        };
        let mut buf = String::from("HTTP/1.1 200 OK\r\n");
        let mut expected = buf.clone();
        for i in 0..100 {
            match hop(i) {
                Some(field) => buf += &format!("{field}\r\n"),
                None => {
                    buf += &format!("X-{i}: {i}\r\n");
                    expected += &format!("X-{i}: {i}\r\n");
                }
            }
        }
        buf += "\r\n";
        expected += "Transfer-Encoding: chunked\r\nVia: 1.1 corelink\r\n\r\n";
        let mut slots = [MaybeUninit::uninit(); HEADER_SLOTS];
        let head = parse_response(buf.as_bytes(), &mut slots, Method::Get, false, &Limits::default()).unwrap().unwrap();
        let mut out = Vec::new();
        encode_response_head(&mut out, &head, ResponseHeadOptions::default());
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    #[test]
    fn clear_context_drops_the_clients_context_and_dtab_local() {
        let buf = b"GET /x HTTP/1.1\r\nHost: b\r\nl5d-ctx-trace: t\r\nL5D-DTAB: /a=>/b\r\nDtab-Local: /a=>/b\r\nl5d-: x\r\n\r\n";
        let mut slots = [MaybeUninit::uninit(); HEADER_SLOTS];
        let head = parse_request(buf, &mut slots, &Limits::default()).unwrap().unwrap();
        let mut out = Vec::new();
        encode_request_head_with(&mut out, &head, &[("l5d-dst-service", b"/svc/b")], true);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET /x HTTP/1.1\r\nHost: b\r\nVia: 1.1 corelink\r\nl5d-dst-service: /svc/b\r\n\r\n"
        );
        // Without clearContext only the fields corelink sets are replaced.
        let mut out = Vec::new();
        encode_request_head_with(&mut out, &head, &[("l5d-ctx-trace", b"mine")], false);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("L5D-DTAB: /a=>/b\r\nDtab-Local: /a=>/b\r\n") && !text.contains(": t\r\n"), "{text}");
    }

    #[test]
    fn http10_request_without_host_field_gets_its_targets_authority() {
        let encode = |buf: &[u8]| {
            let mut slots = [MaybeUninit::uninit(); HEADER_SLOTS];
            let head = parse_request(buf, &mut slots, &Limits::default()).unwrap().unwrap();
            let mut out = Vec::new();
            encode_request_head(&mut out, &head, &[]);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(
            encode(b"GET http://b:81/x HTTP/1.0\r\nX: 1\r\n\r\n"),
            "GET http://b:81/x HTTP/1.1\r\nHost: b:81\r\nX: 1\r\nVia: 1.0 corelink\r\n\r\n"
        );
        assert_eq!(
            encode(b"GET http://b:81/x HTTP/1.0\r\nhost: b:81\r\n\r\n"),
            "GET http://b:81/x HTTP/1.1\r\nhost: b:81\r\nVia: 1.0 corelink\r\n\r\n"
        );
        // No host anywhere: the proxy adds the endpoint's address, not this.
        assert_eq!(encode(b"GET /x HTTP/1.0\r\n\r\n"), "GET /x HTTP/1.1\r\nVia: 1.0 corelink\r\n\r\n");
    }

    #[test]
    fn cleared_responses_lose_l5d_fields_and_maybe_their_body() {
        let buf = b"HTTP/1.1 502 Bad Gateway\r\nl5d-err: x\r\nX-A: 1\r\nContent-Length: 2\r\n\r\n";
        let mut slots = [MaybeUninit::uninit(); HEADER_SLOTS];
        let head = parse_response(buf, &mut slots, Method::Get, false, &Limits::default()).unwrap().unwrap();
        let mut out = Vec::new();
        let opts = ResponseHeadOptions { clear_context: true, ..Default::default() };
        encode_response_head(&mut out, &head, opts);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 502 Bad Gateway\r\nX-A: 1\r\nContent-Length: 2\r\nVia: 1.1 corelink\r\n\r\n"
        );
        let mut out = Vec::new();
        encode_response_head(&mut out, &head, ResponseHeadOptions { empty_body: true, ..opts });
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 502 Bad Gateway\r\nX-A: 1\r\nContent-Length: 0\r\nVia: 1.1 corelink\r\n\r\n"
        );
        let mut out = Vec::new();
        encode_cleared_error_response(&mut out, 400, true);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nVia: 1.1 corelink\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn error_response_is_url_encoded() {
        let mut out = Vec::new();
        encode_error_response(&mut out, 502, "No hosts are available for /svc/b", false);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 502 Bad Gateway\r\nl5d-err: No+hosts+are+available+for+%2Fsvc%2Fb\r\n"));
        assert!(text.ends_with("\r\n\r\nNo hosts are available for /svc/b\n"));
    }
}
