//! `parse_response` on arbitrary bytes, for each request method that changes
//! response framing (GET, HEAD, CONNECT) and with and without an upgrade
//! request.
//!
//! Must never panic. When a head is returned:
//! * it lies inside the input, within the limits, ends with CRLFCRLF and has
//!   no bare CR or LF;
//! * its framing follows RFC 9112 §6.3 from the status, the method and the
//!   fields (Content-Length framing never with Transfer-Encoding, a tunnel
//!   only for an asked-for 101 or a 2xx to CONNECT, ...);
//! * every strict prefix needs more bytes;
//! * `encode_response_head` output parses back to the same status and framing.
#![no_main]

use std::mem::MaybeUninit;

use corelink_fuzz::show_bytes;
use corelink_http1::{
    encode_response_head, parse_response, BodyFraming, Limits, Method, ResponseHead, ResponseHeadOptions, Version,
    HEADER_SLOTS,
};
use libfuzzer_sys::fuzz_target;

fn count(head: &ResponseHead<'_, '_>, name: &str) -> usize {
    head.headers.iter().filter(|h| h.name.eq_ignore_ascii_case(name)).count()
}

/// Whether the last transfer coding listed (over every Transfer-Encoding
/// field) is `chunked`.
fn last_coding_is_chunked(head: &ResponseHead<'_, '_>) -> bool {
    let mut last: Option<&[u8]> = None;
    for h in head.headers {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            for item in h.value.split(|&b| b == b',') {
                let item = item.trim_ascii();
                if !item.is_empty() {
                    last = Some(item);
                }
            }
        }
    }
    last.is_some_and(|c| c.eq_ignore_ascii_case(b"chunked"))
}

fn check_head(data: &[u8], head: &ResponseHead<'_, '_>, method: Method, upgrade_requested: bool, limits: &Limits) {
    let ctx = || format!("{method:?} upgrade={upgrade_requested}: {}", show_bytes(data));
    assert!(head.head_len <= data.len(), "{}", ctx());
    assert!(head.head_len <= limits.max_head_bytes, "{}", ctx());
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
    assert!((100..=999).contains(&head.status), "{}", ctx());
    assert_eq!(head.informational, (100..200).contains(&head.status) && head.status != 101, "{}", ctx());

    let te = count(head, "transfer-encoding");
    let cl = count(head, "content-length");
    assert!(cl <= 1, "two Content-Length fields accepted: {}", ctx());
    let no_body = head.informational || head.status == 204 || head.status == 304 || method == Method::Head;
    match head.framing {
        BodyFraming::Tunnel => {
            let upgrade = head.status == 101 && upgrade_requested && head.upgrade.is_some();
            let connect = method == Method::Connect && (200..300).contains(&head.status);
            assert!(upgrade || connect, "tunnel without a reason: {}", ctx());
        }
        BodyFraming::Empty => {}
        BodyFraming::Length(n) => {
            assert!(!no_body, "body on a bodiless response: {}", ctx());
            assert!(n > 0, "{}", ctx());
            assert_eq!(te, 0, "Content-Length framing with Transfer-Encoding: {}", ctx());
            assert_eq!(cl, 1, "{}", ctx());
        }
        BodyFraming::Chunked => {
            assert!(!no_body, "body on a bodiless response: {}", ctx());
            assert_eq!(cl, 0, "chunked with Content-Length: {}", ctx());
            assert_eq!(head.version, Version::Http11, "{}", ctx());
            assert!(last_coding_is_chunked(head), "{}", ctx());
        }
        BodyFraming::CloseDelimited => {
            assert!(!no_body, "body on a bodiless response: {}", ctx());
            assert_eq!(cl, 0, "close-delimited with Content-Length: {}", ctx());
            assert!(!head.keep_alive, "keep-alive on a close-delimited body: {}", ctx());
            assert!(!last_coding_is_chunked(head), "{}", ctx());
        }
    }
    if head.status == 101 {
        assert!(upgrade_requested, "101 without an upgrade request: {}", ctx());
        assert_eq!(head.framing, BodyFraming::Tunnel, "{}", ctx());
    }
    if head.upgrade.is_some() {
        assert_eq!(head.status, 101, "{}", ctx());
    }
}

fn relaxed() -> Limits {
    Limits { max_head_bytes: 1 << 20, max_initial_line: 1 << 20, max_headers: HEADER_SLOTS }
}

fn round_trip(data: &[u8], head: &ResponseHead<'_, '_>, method: Method, upgrade: bool, close: bool) {
    let mut out = Vec::new();
    let opts = ResponseHeadOptions { close, ..Default::default() };
    encode_response_head(&mut out, head, opts);
    let ctx = || {
        format!(
            "{method:?} upgrade={upgrade} close={close}\ninput:   {}\nencoded: {}",
            show_bytes(data),
            show_bytes(&out)
        )
    };
    let mut slots = [MaybeUninit::uninit(); HEADER_SLOTS];
    let again = match parse_response(&out, &mut slots, method, upgrade, &relaxed()) {
        Ok(Some(h)) => h,
        other => panic!("re-encoded head does not parse ({:?}){}", other.map(|o| o.map(|h| h.head_len)), ctx()),
    };
    assert_eq!(again.head_len, out.len(), "{}", ctx());
    assert_eq!(again.status, head.status, "{}", ctx());
    assert_eq!(again.reason, head.reason, "{}", ctx());
    assert_eq!(again.framing, head.framing, "{}", ctx());
    assert_eq!(again.upgrade, head.upgrade, "{}", ctx());
    assert_eq!(again.informational, head.informational, "{}", ctx());
    if close && head.upgrade.is_none() {
        assert!(!again.keep_alive, "{}", ctx());
    }
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    for method in [Method::Get, Method::Head, Method::Connect] {
        for upgrade in [false, true] {
            let mut slots = [MaybeUninit::uninit(); HEADER_SLOTS];
            let Ok(Some(head)) = parse_response(data, &mut slots, method, upgrade, &limits) else {
                continue;
            };
            check_head(data, &head, method, upgrade, &limits);

            let n = head.head_len;
            let step = if n <= 256 { 1 } else { n / 64 };
            let mut cut = 0;
            while cut < n {
                let mut slots2 = [MaybeUninit::uninit(); HEADER_SLOTS];
                let r = parse_response(&data[..cut], &mut slots2, method, upgrade, &limits);
                assert!(
                    matches!(r, Ok(None)),
                    "{method:?} upgrade={upgrade}: prefix of {cut} bytes of a valid head gives {:?}: {}",
                    r.map(|o| o.map(|h| h.head_len)),
                    show_bytes(data)
                );
                cut += step;
            }

            round_trip(data, &head, method, upgrade, false);
            round_trip(data, &head, method, upgrade, true);
        }
    }
});
