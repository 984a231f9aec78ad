//! `parse_request` on arbitrary bytes with default limits.
//!
//! Must never panic. When a head is returned:
//! * it lies inside the input, within the limits, and ends with CRLFCRLF,
//!   with no bare CR or LF;
//! * its framing agrees with its header fields (Content-Length framing never
//!   together with a Transfer-Encoding field, chunked only with one, at most
//!   one Content-Length / Host, no close-delimited or tunnel request bodies);
//! * parsing the head alone, or any strict prefix of it, agrees (a head is
//!   never rejected just because it arrived in pieces);
//! * `encode_request_head` output parses back to the same method, target and
//!   framing, with one more `Via` hop.
#![no_main]

use std::mem::MaybeUninit;

use corelink_fuzz::show_bytes;
use corelink_http1::{
    encode_request_head, parse_request, BodyFraming, Limits, Method, RequestHead, Version, HEADER_SLOTS,
};
use libfuzzer_sys::fuzz_target;

fn count(head: &RequestHead<'_, '_>, name: &str) -> usize {
    head.headers.iter().filter(|h| h.name.eq_ignore_ascii_case(name)).count()
}

fn check_head(data: &[u8], head: &RequestHead<'_, '_>, limits: &Limits) {
    let ctx = || show_bytes(data);
    assert!(head.head_len <= data.len(), "head_len past input: {}", ctx());
    assert!(head.head_len <= limits.max_head_bytes, "head over limit: {}", ctx());
    assert!(head.headers.len() <= limits.max_headers, "{}", ctx());
    let bytes = &data[..head.head_len];
    assert!(bytes.ends_with(b"\r\n\r\n"), "head not ending in CRLFCRLF: {}", ctx());
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'\n' => assert!(i > 0 && bytes[i - 1] == b'\r', "bare LF: {}", ctx()),
            b'\r' => assert!(bytes.get(i + 1) == Some(&b'\n'), "bare CR: {}", ctx()),
            _ => {}
        }
    }
    assert!(!head.method_str.is_empty() && !head.target.is_empty(), "{}", ctx());

    let te = count(head, "transfer-encoding");
    let cl = count(head, "content-length");
    assert!(cl <= 1, "two Content-Length fields accepted: {}", ctx());
    assert!(count(head, "host") <= 1, "two Host fields accepted: {}", ctx());
    match head.framing {
        BodyFraming::Length(n) => {
            assert!(n > 0, "{}", ctx());
            assert_eq!(te, 0, "Content-Length framing with Transfer-Encoding: {}", ctx());
            assert_eq!(cl, 1, "{}", ctx());
        }
        BodyFraming::Chunked => {
            assert!(te >= 1, "chunked without Transfer-Encoding: {}", ctx());
            assert_eq!(cl, 0, "chunked with Content-Length: {}", ctx());
            assert_eq!(head.version, Version::Http11, "TE in HTTP/1.0: {}", ctx());
        }
        BodyFraming::Empty => {
            assert_eq!(te, 0, "Transfer-Encoding ignored: {}", ctx());
        }
        BodyFraming::CloseDelimited | BodyFraming::Tunnel => {
            panic!("request framing {:?}: {}", head.framing, ctx())
        }
    }
    if head.version == Version::Http11 {
        assert!(head.host.is_some(), "HTTP/1.1 without Host: {}", ctx());
    }
    if head.upgrade.is_some() {
        assert_eq!(head.version, Version::Http11, "{}", ctx());
    }
    if head.method == Method::Connect {
        assert!(!head.target.starts_with('/'), "{}", ctx());
    }
}

/// Limits for re-parsing what corelink itself forwards: the added `Via` (and
/// re-emitted `Transfer-Encoding`/`Upgrade`) may push a head that was just
/// under the default limits over them.
fn relaxed() -> Limits {
    Limits { max_head_bytes: 1 << 20, max_initial_line: 1 << 20, max_headers: HEADER_SLOTS }
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let mut slots = [MaybeUninit::uninit(); HEADER_SLOTS];
    let Ok(Some(head)) = parse_request(data, &mut slots, &limits) else {
        return;
    };
    check_head(data, &head, &limits);

    // The head alone parses the same as the head followed by anything.
    {
        let mut slots2 = [MaybeUninit::uninit(); HEADER_SLOTS];
        let alone = parse_request(&data[..head.head_len], &mut slots2, &limits);
        match alone {
            Ok(Some(h)) => {
                assert_eq!(h.head_len, head.head_len);
                assert_eq!(h.framing, head.framing);
                assert_eq!(h.target, head.target);
            }
            other => panic!(
                "head alone parses as {:?}, with trailing bytes as a head: {}",
                other.map(|o| o.map(|h| h.head_len)),
                show_bytes(data)
            ),
        }
    }

    // Every strict prefix needs more bytes (sampled when the head is long).
    let n = head.head_len;
    let step = if n <= 256 { 1 } else { n / 64 };
    let mut cut = 0;
    while cut < n {
        let mut slots2 = [MaybeUninit::uninit(); HEADER_SLOTS];
        let r = parse_request(&data[..cut], &mut slots2, &limits);
        assert!(
            matches!(r, Ok(None)),
            "prefix of {cut} bytes of a valid head gives {:?}: {}",
            r.map(|o| o.map(|h| h.head_len)),
            show_bytes(data)
        );
        cut += step;
    }

    // Encode what would be forwarded; it must parse back to the same request.
    // An HTTP/1.0 request without Host gets one from its target's authority
    // (the encoder writes it) or else from the endpoint (the proxy adds it,
    // not the encoder), so only requests with a host go round.
    if head.host.is_none() {
        return;
    }
    let mut out = Vec::new();
    encode_request_head(&mut out, &head, &[("l5d-dst-service", b"/svc/fuzz")]);
    let mut slots3 = [MaybeUninit::uninit(); HEADER_SLOTS];
    let again = match parse_request(&out, &mut slots3, &relaxed()) {
        Ok(Some(h)) => h,
        other => panic!(
            "re-encoded head does not parse ({:?})\ninput:   {}\nencoded: {}",
            other.map(|o| o.map(|h| h.head_len)),
            show_bytes(data),
            show_bytes(&out)
        ),
    };
    let ctx = || format!("\ninput:   {}\nencoded: {}", show_bytes(data), show_bytes(&out));
    assert_eq!(again.head_len, out.len(), "{}", ctx());
    assert_eq!(again.method, head.method, "{}", ctx());
    assert_eq!(again.method_str, head.method_str, "{}", ctx());
    assert_eq!(again.target, head.target, "{}", ctx());
    assert_eq!(again.framing, head.framing, "{}", ctx());
    assert_eq!(again.host, head.host, "{}", ctx());
    assert_eq!(again.upgrade, head.upgrade, "{}", ctx());
    assert_eq!(again.expect_continue, head.expect_continue, "{}", ctx());
    assert_eq!(again.via_hops, head.via_hops + 1, "{}", ctx());
    assert_eq!(again.version, Version::Http11, "{}", ctx());
    // Forwarded heads carry no hop-by-hop field other than the ones we emit.
    assert!(!again.connection_names_fields, "{}", ctx());
});
