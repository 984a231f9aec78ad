//! Request head parsing: httparse does the tokenising; this module applies the
//! framing and strictness rules of RFC 9112 and answers what the proxy needs
//! (framing, keep-alive, Host, Expect, Upgrade, Via hop count).

use std::mem::MaybeUninit;

use super::framing::BodyFraming;
use super::limits::Limits;
use super::tokens::{self, classify, list_items, ConnectionOptions, HeaderKind, Version};
use super::ParseError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Connect,
    Options,
    Trace,
    Patch,
    Other,
}

impl Method {
    fn from_str(s: &str) -> Method {
        match s {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "CONNECT" => Method::Connect,
            "OPTIONS" => Method::Options,
            "TRACE" => Method::Trace,
            "PATCH" => Method::Patch,
            _ => Method::Other,
        }
    }

    /// Idempotent methods (RFC 9110 §9.2.2): safe to resend automatically.
    pub fn is_idempotent(self) -> bool {
        matches!(self, Method::Get | Method::Head | Method::Put | Method::Delete | Method::Options | Method::Trace)
    }
}

/// A parsed request head. Strings borrow from the read buffer.
#[derive(Debug)]
pub struct RequestHead<'b, 'h> {
    pub method: Method,
    pub method_str: &'b str,
    pub target: &'b str,
    pub version: Version,
    pub headers: &'h [httparse::Header<'b>],
    /// Length of the head in the buffer, including the final empty line.
    pub head_len: usize,
    pub framing: BodyFraming,
    /// The client wants the connection kept open after this exchange.
    pub keep_alive: bool,
    pub expect_continue: bool,
    /// `Upgrade` value, when `Connection: upgrade` asks for it (HTTP/1.1 only).
    pub upgrade: Option<&'b [u8]>,
    pub host: Option<&'b str>,
    /// Entries in the `Via` header(s): the number of proxies already passed.
    pub via_hops: usize,
    /// `Connection` names fields other than close/keep-alive/upgrade, which
    /// must then be removed before forwarding.
    pub connection_names_fields: bool,
}

/// Parses a request head at the start of `buf`. `Ok(None)` means more bytes are
/// needed (and that the limits are not yet exceeded).
pub fn parse_request<'b, 'h>(
    buf: &'b [u8],
    slots: &'h mut [MaybeUninit<httparse::Header<'b>>],
    limits: &Limits,
) -> Result<Option<RequestHead<'b, 'h>>, ParseError> {
    let mut req = httparse::Request::new(&mut []);
    let parsed = req.parse_with_uninit_headers(buf, slots);
    let head_len = match parsed {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            check_partial(buf, limits)?;
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => return Err(first_error(buf, limits, ParseError::TooManyHeaders)),
        // httparse reports anything after the target that is not `HTTP/1.x`
        // as a version error: only a well-formed `HTTP/d.d` is really a
        // version we do not support (505); a space inside the target or a
        // lowercase `http/1.1` is a malformed request line (400).
        Err(httparse::Error::Version) => match request_line_version(buf) {
            // httparse gives up at the first unexpected version byte; until
            // the line ends we cannot tell `HTTP/2.0` (505) from garbage
            // (400), and the answer must not depend on where a read ended.
            None => {
                check_partial(buf, limits)?;
                return Ok(None);
            }
            Some(true) => return Err(first_error(buf, limits, ParseError::Version)),
            Some(false) => return Err(first_error(buf, limits, ParseError::Malformed)),
        },
        Err(_) => return Err(first_error(buf, limits, ParseError::Malformed)),
    };
    let head = &buf[..head_len];
    if let Some((_, limit_error)) = limit_position(head, limits) {
        return Err(limit_error);
    }
    if tokens::has_bare_line_ending(head) {
        return Err(ParseError::BareLineEnding);
    }
    let httparse::Request { method, path, version, headers } = req;
    let (Some(method_str), Some(target), Some(minor)) = (method, path, version) else {
        return Err(ParseError::Malformed);
    };
    let headers: &'h [httparse::Header<'b>] = headers;
    if headers.len() > limits.max_headers {
        return Err(ParseError::TooManyHeaders);
    }
    let version = Version::from_minor(minor);
    let method = Method::from_str(method_str);

    let mut content_length: Option<u64> = None;
    let mut chunked = false;
    let mut transfer_encoding = false;
    let mut other_coding = false;
    let mut host: Option<&'b str> = None;
    let mut connection = ConnectionOptions::default();
    let mut expect_continue = false;
    let mut upgrade_value: Option<&'b [u8]> = None;
    let mut via_hops = 0;

    for h in headers {
        match classify(h.name) {
            HeaderKind::ContentLength => {
                if content_length.is_some() {
                    return Err(ParseError::DuplicateContentLength);
                }
                content_length = Some(tokens::parse_content_length(h.value).ok_or(ParseError::BadContentLength)?);
            }
            HeaderKind::TransferEncoding => {
                transfer_encoding = true;
                let mut empty = true;
                for coding in list_items(h.value) {
                    empty = false;
                    if chunked {
                        // Anything after chunked (including a second chunked)
                        // means the final coding is not one chunked.
                        return Err(ParseError::TransferEncodingNotChunked);
                    }
                    if coding.eq_ignore_ascii_case(b"chunked") {
                        chunked = true;
                    } else {
                        other_coding = true;
                    }
                }
                if empty {
                    return Err(ParseError::TransferEncodingNotChunked);
                }
            }
            HeaderKind::Connection => connection.add(h.value),
            HeaderKind::Host => {
                if host.is_some() {
                    return Err(ParseError::DuplicateHost);
                }
                host = Some(validate_host(h.value)?);
            }
            HeaderKind::Expect => {
                if h.value.eq_ignore_ascii_case(b"100-continue") {
                    expect_continue = true;
                } else {
                    return Err(ParseError::UnsupportedExpectation);
                }
            }
            HeaderKind::Upgrade => upgrade_value = Some(h.value),
            HeaderKind::Via => via_hops += list_items(h.value).count(),
            HeaderKind::KeepAlive | HeaderKind::ProxyConnection | HeaderKind::Te | HeaderKind::Other => {}
        }
    }

    let framing = if transfer_encoding {
        if version == Version::Http10 {
            return Err(ParseError::TransferEncodingHttp10);
        }
        if content_length.is_some() {
            return Err(ParseError::TransferEncodingWithContentLength);
        }
        if !chunked {
            return Err(ParseError::TransferEncodingNotChunked);
        }
        if other_coding {
            // Only plain `chunked` is supported on requests, as nginx does:
            // 501 per RFC 9112 §6.1 for a coding we do not implement.
            return Err(ParseError::UnsupportedTransferCoding);
        }
        BodyFraming::Chunked
    } else {
        match content_length {
            Some(0) | None => BodyFraming::Empty,
            Some(n) => BodyFraming::Length(n),
        }
    };

    if version == Version::Http11 && host.is_none() {
        return Err(ParseError::MissingHost);
    }
    // An HTTP/1.0 request without Host names its host in an absolute-form or
    // authority-form target, if at all (RFC 9112 §3.2.2): that is its Host.
    let authority = validate_target(method, target, host)?;
    let host = host.or(authority);

    let keep_alive = match version {
        Version::Http11 => !connection.close,
        Version::Http10 => connection.keep_alive && !connection.close,
    };
    let upgrade = if connection.upgrade && version == Version::Http11 { upgrade_value } else { None };

    Ok(Some(RequestHead {
        method,
        method_str,
        target,
        version,
        headers,
        head_len,
        framing,
        keep_alive,
        expect_continue,
        upgrade,
        host,
        via_hops,
        connection_names_fields: connection.names_fields,
    }))
}

/// A buffer can hold both a byte httparse rejects and more bytes than a limit
/// allows. Whichever comes first in the byte stream decides, so the answer
/// never depends on how the bytes were split into reads: if httparse still
/// sees an incomplete, valid head in the prefix that reaches the limit, the
/// limit was hit first (a reader fed that prefix would have stopped there).
fn first_error(buf: &[u8], limits: &Limits, error: ParseError) -> ParseError {
    let Some((at, limit_error)) = limit_position(buf, limits) else { return error };
    let mut slots = [MaybeUninit::uninit(); super::limits::HEADER_SLOTS];
    let mut req = httparse::Request::new(&mut []);
    let prefix = &buf[..at];
    match req.parse_with_uninit_headers(prefix, &mut slots) {
        Ok(httparse::Status::Partial) => limit_error,
        // An unfinished version counts as incomplete, as in `parse_request`.
        Err(httparse::Error::Version) if request_line_version(prefix).is_none() => limit_error,
        _ => error,
    }
}

/// The length of the shortest prefix of `buf` that exceeds a limit, and which.
fn limit_position(buf: &[u8], limits: &Limits) -> Option<(usize, ParseError)> {
    let start = empty_lines_len(buf);
    let line = if line_len(buf) > limits.max_initial_line {
        Some((start + limits.max_initial_line + 1, ParseError::LineTooLong))
    } else {
        None
    };
    let head = (buf.len() > limits.max_head_bytes).then_some((limits.max_head_bytes + 1, ParseError::HeadTooLarge));
    match (line, head) {
        (Some(l), Some(h)) => Some(if h.0 < l.0 { h } else { l }),
        (l, h) => l.or(h),
    }
}

/// Limits apply before the head is complete too, so a slowloris or an endless
/// header section is cut off at the limit instead of buffering. Of two limits
/// crossed, the answer is the one crossed first in the byte stream (over 8 KiB
/// of empty lines before a long request line cross the head limit first),
/// so it does not depend on where a read ended.
fn check_partial(buf: &[u8], limits: &Limits) -> Result<(), ParseError> {
    match limit_position(buf, limits) {
        Some((_, limit_error)) => Err(limit_error),
        None => Ok(()),
    }
}

/// Length of the empty lines before the request line, which RFC 9112 §2.2
/// lets a server skip.
fn empty_lines_len(buf: &[u8]) -> usize {
    let mut start = 0;
    while buf[start..].starts_with(b"\r\n") {
        start += 2;
    }
    start
}

/// Length of the first line (without leading empty lines), or of the whole
/// buffer when no line end is there yet.
fn line_len(buf: &[u8]) -> usize {
    let start = empty_lines_len(buf);
    match memchr::memchr(b'\n', &buf[start..]) {
        Some(i) => i + 1,
        None => buf.len() - start,
    }
}

/// Whether the request line is `method SP target SP HTTP/d.d`: `Some(true)`
/// when it is (a version we do not support: 505), `Some(false)` when it
/// cannot be (a malformed line: 400), `None` while the line has not ended and
/// what is there could still become one.
fn request_line_version(buf: &[u8]) -> Option<bool> {
    let start = empty_lines_len(buf);
    let rest = &buf[start..];
    let end = memchr::memchr2(b'\r', b'\n', rest);
    let line = &rest[..end.unwrap_or(rest.len())];
    // Every test below only ever turns false as more bytes arrive, so the
    // answer is the same whichever read completes the line.
    let mut parts = line.splitn(4, |&b| b == b' ');
    let (method, target, version, extra) = (parts.next(), parts.next(), parts.next(), parts.next());
    let Some(version) = version else {
        return if end.is_none() { None } else { Some(false) };
    };
    let matches_pattern =
        version.iter().zip(b"HTTP/0.0").all(|(&b, &p)| if p == b'0' { b.is_ascii_digit() } else { b == p });
    let malformed = !matches_pattern
        || version.len() > 8
        || extra.is_some()
        || method.is_none_or(<[u8]>::is_empty)
        || target.is_none_or(<[u8]>::is_empty);
    if malformed {
        return Some(false);
    }
    end.map(|_| version.len() == 8)
}

/// Host = uri-host [ ":" port ] (RFC 9110 §7.2): reg-name, IPv4 or IP-literal
/// characters only. Rejects whitespace, `/`, `@` and anything that would let a
/// Host value mean something else to the next hop.
fn validate_host(value: &[u8]) -> Result<&str, ParseError> {
    let ok = value.iter().all(|&b| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'['
                    | b']'
                    | b'%'
            )
    });
    if !ok {
        return Err(ParseError::BadHost);
    }
    std::str::from_utf8(value).map_err(|_| ParseError::BadHost)
}

/// request-target forms (RFC 9112 §3.2): origin-form for most methods,
/// absolute-form only for other methods, authority-form only for CONNECT,
/// asterisk-form only for OPTIONS. An absolute-form or authority-form target
/// must agree with Host (a proxy routing on one and forwarding the other would
/// let a client send a request somewhere its Host does not say); without Host
/// (HTTP/1.0 only) its authority is returned to stand in for it.
fn validate_target<'b>(method: Method, target: &'b str, host: Option<&str>) -> Result<Option<&'b str>, ParseError> {
    // httparse lets bytes >= 0x80 through (for UTF-8 paths); a request-target
    // is ASCII only (RFC 9112 §3.2, RFC 3986 §2): raw non-ASCII would reach the
    // next hop for it to decode as it likes. No form of request-target has a
    // fragment (RFC 9112 §3.2): a next hop that cuts at `#` routes or
    // authorises `/a` where corelink saw `/a#/../b` (HAProxy CVE-2023-45539).
    // Both checks share one pass over the target.
    if !target.bytes().all(|b| b.is_ascii_graphic() && b != b'#') {
        return Err(ParseError::BadTarget);
    }
    let authority = if method == Method::Connect {
        // authority-form = uri-host ":" port (RFC 9112 §3.2.3).
        let valid = target.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty()
                && validate_host(host.as_bytes()).is_ok()
                && !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
        });
        if !valid {
            return Err(ParseError::BadTarget);
        }
        target
    } else if target.starts_with('/') {
        return Ok(None);
    } else if target == "*" {
        return if method == Method::Options { Ok(None) } else { Err(ParseError::BadTarget) };
    } else {
        let rest = strip_prefix_ignore_case(target, "http://").or_else(|| strip_prefix_ignore_case(target, "https://"));
        let Some(rest) = rest else {
            return Err(ParseError::BadTarget);
        };
        let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
        if authority.is_empty() || authority.contains('@') || validate_host(authority.as_bytes()).is_err() {
            return Err(ParseError::BadTarget);
        }
        authority
    };
    match host {
        None => Ok(Some(authority)),
        Some(h) if h.eq_ignore_ascii_case(authority) => Ok(None),
        Some(_) => Err(ParseError::HostMismatch),
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &s[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::HEADER_SLOTS;

    fn parse(buf: &[u8]) -> Result<Option<(BodyFraming, bool, usize)>, ParseError> {
        let mut slots = [MaybeUninit::uninit(); HEADER_SLOTS];
        parse_request(buf, &mut slots, &Limits::default()).map(|o| o.map(|h| (h.framing, h.keep_alive, h.head_len)))
    }

    #[test]
    fn simple_get() {
        let buf = b"GET /a?b HTTP/1.1\r\nHost: serviceB\r\nVia: 1.1 x, 1.1 y\r\n\r\nNEXT";
        let mut slots = [MaybeUninit::uninit(); HEADER_SLOTS];
        let h = parse_request(buf, &mut slots, &Limits::default()).unwrap().unwrap();
        assert_eq!(h.method, Method::Get);
        assert_eq!(h.target, "/a?b");
        assert_eq!(h.host, Some("serviceB"));
        assert_eq!(h.framing, BodyFraming::Empty);
        assert_eq!(h.via_hops, 2);
        assert!(h.keep_alive);
        assert_eq!(&buf[h.head_len..], b"NEXT");
    }

    #[test]
    fn partial_needs_more() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\nHost: a\r\n"), Ok(None));
    }

    #[test]
    fn framing_rules() {
        assert_eq!(
            parse(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n").unwrap().unwrap().0,
            BodyFraming::Length(5)
        );
        assert_eq!(
            parse(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap().unwrap().0,
            BodyFraming::Chunked
        );
        let cases: &[(&[u8], ParseError)] = &[
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
                ParseError::DuplicateContentLength,
            ),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", ParseError::BadContentLength),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -5\r\n\r\n", ParseError::BadContentLength),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
                ParseError::TransferEncodingWithContentLength,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
                ParseError::TransferEncodingNotChunked,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
                ParseError::TransferEncodingNotChunked,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                ParseError::UnsupportedTransferCoding,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
                ParseError::TransferEncodingNotChunked,
            ),
            (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", ParseError::TransferEncodingHttp10),
            (b"GET / HTTP/1.1\r\n\r\n", ParseError::MissingHost),
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", ParseError::DuplicateHost),
            (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", ParseError::BadHost),
            (b"GET http://b/ HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::HostMismatch),
            (b"GET x HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::BadTarget),
            (b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::BadTarget),
            (b"CONNECT ?a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", ParseError::BadTarget),
            (b"CONNECT a:https HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::BadTarget),
            (b"GET / HTTP/1.1\r\nHost: a\r\nExpect: something\r\n\r\n", ParseError::UnsupportedExpectation),
            (b"GET / HTTP/1.1\nHost: a\r\n\r\n", ParseError::BareLineEnding),
            (b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", ParseError::Malformed),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n c\r\n\r\n", ParseError::Malformed),
            (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", ParseError::Version),
            (b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", ParseError::Version),
            // Not a version at all: a malformed request line, not a 505.
            (b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::Malformed),
            (b"GET / http/1.1\r\nHost: a\r\n\r\n", ParseError::Malformed),
            (b"GET / HTTP/1.10\r\nHost: a\r\n\r\n", ParseError::Malformed),
            (b"GET / HTTP/2.0 \r\nHost: a\r\n\r\n", ParseError::Malformed),
            // Raw non-ASCII in the target (httparse accepts it).
            (b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::BadTarget),
            (b"GET http://a/\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::BadTarget),
            // A fragment in any form of target (RFC 9112 §3.2; CVE-2023-45539).
            (b"GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::BadTarget),
            (b"GET /a?q#/../admin HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::BadTarget),
            (b"GET http://a/x#y HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::BadTarget),
            (b"GET # HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::BadTarget),
        ];
        for (input, err) in cases {
            assert_eq!(parse(input), Err(*err), "{}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn an_unfinished_version_waits_for_the_line_end() {
        // httparse rejects `HTTP/2` at once; whether it becomes `HTTP/2.0`
        // (505) or garbage (400) is only known at the line end.
        assert_eq!(parse(b"GET / HTTP/2"), Ok(None));
        assert_eq!(parse(b"GET / HTTP/2.0\r\n"), Err(ParseError::Version));
        assert_eq!(parse(b"GET / HTTP/2.\x05"), Err(ParseError::Malformed));
    }

    #[test]
    fn keep_alive_rules() {
        assert!(!parse(b"GET / HTTP/1.0\r\n\r\n").unwrap().unwrap().1);
        assert!(parse(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").unwrap().unwrap().1);
        assert!(!parse(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").unwrap().unwrap().1);
    }

    #[test]
    fn limits_apply_before_completion() {
        let mut long = b"GET /".to_vec();
        long.extend(std::iter::repeat_n(b'a', 5000));
        assert_eq!(parse(&long), Err(ParseError::LineTooLong));
        let mut big = b"GET / HTTP/1.1\r\n".to_vec();
        while big.len() < 13 * 1024 {
            big.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        assert_eq!(parse(&big), Err(ParseError::HeadTooLarge));
        let mut many = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
        for i in 0..101 {
            many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(parse(&many), Err(ParseError::TooManyHeaders));
    }

    #[test]
    fn of_two_limits_the_one_crossed_first_answers() {
        // Found by a review of fuzz/request_framing: 9,000 bytes of empty
        // lines cross the 12 KiB head limit before the request line after
        // them crosses the 4 KiB line limit. Every prefix long enough to
        // cross a limit (the read that ended there) must give the same answer.
        let mut buf = b"\r\n".repeat(4500);
        buf.extend_from_slice(b"GET /");
        buf.extend(std::iter::repeat_n(b'a', 4200));
        let head_limit = Limits::default().max_head_bytes;
        assert_eq!(parse(&buf), Err(ParseError::HeadTooLarge));
        assert_eq!(parse(&buf[..head_limit + 1]), Err(ParseError::HeadTooLarge));
        buf.extend_from_slice(b" HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(parse(&buf), Err(ParseError::HeadTooLarge));
        // A long line with no empty lines before it crosses the line limit
        // first.
        let mut long = b"GET /".to_vec();
        long.extend(std::iter::repeat_n(b'a', 13 * 1024));
        assert_eq!(parse(&long), Err(ParseError::LineTooLong));
    }

    #[test]
    fn connect_and_options_targets() {
        assert!(parse(b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n").unwrap().is_some());
        assert!(parse(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n").unwrap().is_some());
        assert!(parse(b"GET http://A/x HTTP/1.1\r\nHost: a\r\n\r\n").unwrap().is_some());
        // The authority of a CONNECT must agree with Host, as an absolute-form
        // target's must.
        assert_eq!(parse(b"CONNECT a:443 HTTP/1.1\r\nHost: b:443\r\n\r\n"), Err(ParseError::HostMismatch));
        assert_eq!(parse(b"CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n"), Err(ParseError::HostMismatch));
    }

    #[test]
    fn http10_without_host_takes_the_targets_authority() {
        let host = |buf: &[u8]| {
            let mut slots = [MaybeUninit::uninit(); HEADER_SLOTS];
            parse_request(buf, &mut slots, &Limits::default()).unwrap().unwrap().host.map(str::to_owned)
        };
        assert_eq!(host(b"GET http://b:8080/x HTTP/1.0\r\n\r\n").as_deref(), Some("b:8080"));
        assert_eq!(host(b"CONNECT b:443 HTTP/1.0\r\n\r\n").as_deref(), Some("b:443"));
        assert_eq!(host(b"GET /x HTTP/1.0\r\n\r\n"), None);
        assert_eq!(parse(b"GET http://b c/ HTTP/1.0\r\n\r\n"), Err(ParseError::Malformed));
        assert_eq!(parse(b"GET http://b/c@d HTTP/1.0\r\n\r\n").map(|h| h.is_some()), Ok(true));
        assert_eq!(parse(b"GET http://u@b/ HTTP/1.0\r\n\r\n"), Err(ParseError::BadTarget));
        assert_eq!(parse(b"GET http://b\"/ HTTP/1.0\r\n\r\n"), Err(ParseError::BadTarget));
    }
}
