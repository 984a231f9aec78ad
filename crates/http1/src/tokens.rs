//! Small lexical helpers shared by request and response parsing.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

impl Version {
    pub(crate) fn from_minor(minor: u8) -> Version {
        if minor == 0 {
            Version::Http10
        } else {
            Version::Http11
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

/// Header names the proxy treats specially. Everything else is `Other` and
/// forwarded as is (unless named in `Connection`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeaderKind {
    ContentLength,
    TransferEncoding,
    Connection,
    KeepAlive,
    ProxyConnection,
    Te,
    Upgrade,
    Host,
    Expect,
    Via,
    Other,
}

impl HeaderKind {
    /// Hop-by-hop fields (RFC 9110 §7.6.1) that are never forwarded verbatim.
    /// `Transfer-Encoding` and `Upgrade` are re-emitted by the encoder when the
    /// forwarded message needs them.
    pub(crate) fn is_hop_by_hop(self) -> bool {
        matches!(
            self,
            HeaderKind::TransferEncoding
                | HeaderKind::Connection
                | HeaderKind::KeepAlive
                | HeaderKind::ProxyConnection
                | HeaderKind::Te
                | HeaderKind::Upgrade
        )
    }
}

pub(crate) fn classify(name: &str) -> HeaderKind {
    let eq = |s: &str| name.eq_ignore_ascii_case(s);
    match name.len() {
        2 if eq("te") => HeaderKind::Te,
        3 if eq("via") => HeaderKind::Via,
        4 if eq("host") => HeaderKind::Host,
        6 if eq("expect") => HeaderKind::Expect,
        7 if eq("upgrade") => HeaderKind::Upgrade,
        10 if eq("connection") => HeaderKind::Connection,
        10 if eq("keep-alive") => HeaderKind::KeepAlive,
        14 if eq("content-length") => HeaderKind::ContentLength,
        16 if eq("proxy-connection") => HeaderKind::ProxyConnection,
        17 if eq("transfer-encoding") => HeaderKind::TransferEncoding,
        _ => HeaderKind::Other,
    }
}

/// Iterates the elements of a comma-separated list field value (RFC 9110 §5.6.1),
/// trimmed of optional whitespace, skipping empty elements.
pub(crate) fn list_items(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(trim_ows).filter(|item| !item.is_empty())
}

pub(crate) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// What the `Connection` fields of a message say.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ConnectionOptions {
    pub close: bool,
    pub keep_alive: bool,
    pub upgrade: bool,
    /// Other tokens: names of fields that must be removed before forwarding.
    pub names_fields: bool,
}

impl ConnectionOptions {
    /// Adds one `Connection` field value (a message may carry several).
    pub(crate) fn add(&mut self, value: &[u8]) {
        for item in list_items(value) {
            if item.eq_ignore_ascii_case(b"close") {
                self.close = true;
            } else if item.eq_ignore_ascii_case(b"keep-alive") {
                self.keep_alive = true;
            } else if item.eq_ignore_ascii_case(b"upgrade") {
                self.upgrade = true;
            } else {
                self.names_fields = true;
            }
        }
    }
}

/// Does a `Connection` field value list `token` (case-insensitive)?
pub(crate) fn list_contains(value: &[u8], token: &str) -> bool {
    list_items(value).any(|item| item.eq_ignore_ascii_case(token.as_bytes()))
}

/// Parses a Content-Length value strictly: 1*DIGIT, no sign, no whitespace
/// inside, no list, no overflow (RFC 9112 §6.3 rule 5).
pub(crate) fn parse_content_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 19 {
        // 19 digits always fit in a u64; longer would need overflow checks and
        // no real body is that large.
        return None;
    }
    let mut n: u64 = 0;
    for &b in value {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u64::from(b - b'0');
    }
    Some(n)
}

/// tchar (RFC 9110 §5.6.2).
pub(crate) fn is_tchar(b: u8) -> bool {
    matches!(b,
        b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~'
        | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z')
}

/// Every LF in a head must be preceded by CR, and no CR may stand alone
/// (RFC 9112 §2.2: a bare CR must be rejected or replaced; we reject both, since
/// an intermediary that accepted either could disagree with the next hop).
pub(crate) fn has_bare_line_ending(head: &[u8]) -> bool {
    for i in memchr::memchr2_iter(b'\r', b'\n', head) {
        match head[i] {
            b'\n' if i == 0 || head[i - 1] != b'\r' => return true,
            b'\r' if head.get(i + 1) != Some(&b'\n') => return true,
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_is_strict() {
        assert_eq!(parse_content_length(b"0"), Some(0));
        assert_eq!(parse_content_length(b"0012"), Some(12));
        assert_eq!(parse_content_length(b"9999999999999999999"), Some(9_999_999_999_999_999_999));
        for bad in [&b""[..], b"+1", b"-1", b"1 2", b"1,1", b"0x10", b"12a", b"99999999999999999999"] {
            assert_eq!(parse_content_length(bad), None, "{:?}", bad);
        }
    }

    #[test]
    fn lists_and_classification() {
        let items: Vec<_> = list_items(b" gzip ,, chunked\t").collect();
        assert_eq!(items, vec![&b"gzip"[..], b"chunked"]);
        assert!(list_contains(b"keep-alive, Upgrade", "upgrade"));
        assert_eq!(classify("Content-Length"), HeaderKind::ContentLength);
        assert_eq!(classify("TRANSFER-ENCODING"), HeaderKind::TransferEncoding);
        assert_eq!(classify("X-Thing"), HeaderKind::Other);
    }

    #[test]
    fn bare_line_endings() {
        assert!(!has_bare_line_ending(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(has_bare_line_ending(b"GET / HTTP/1.1\nHost: a\r\n\r\n"));
        assert!(has_bare_line_ending(b"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n"));
    }
}
