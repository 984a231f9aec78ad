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
    // Most names are none of these (`Date`, `Server`, `Content-Type`): the
    // length and the first letter rule out nearly all of them, so only a
    // likely match is compared whole. (`| 0x20` lowers an ASCII letter; a
    // non-letter it maps onto one fails the comparison.)
    let name = name.as_bytes();
    let first = name.first().map_or(0, |&b| b | 0x20);
    let (kind, matches) = match (name.len(), first) {
        (2, b't') => (HeaderKind::Te, eq_lower(name, b"te")),
        (3, b'v') => (HeaderKind::Via, eq_lower(name, b"via")),
        (4, b'h') => (HeaderKind::Host, eq_lower(name, b"host")),
        (6, b'e') => (HeaderKind::Expect, eq_lower(name, b"expect")),
        (7, b'u') => (HeaderKind::Upgrade, eq_lower(name, b"upgrade")),
        (10, b'c') => (HeaderKind::Connection, eq_lower(name, b"connection")),
        (10, b'k') => (HeaderKind::KeepAlive, eq_lower(name, b"keep-alive")),
        (14, b'c') => (HeaderKind::ContentLength, eq_lower(name, b"content-length")),
        (16, b'p') => (HeaderKind::ProxyConnection, eq_lower(name, b"proxy-connection")),
        (17, b't') => (HeaderKind::TransferEncoding, eq_lower(name, b"transfer-encoding")),
        _ => return HeaderKind::Other,
    };
    if matches {
        kind
    } else {
        HeaderKind::Other
    }
}

/// `name` equals `lower` (lower-case letters and `-`) but for the case of
/// its letters. A fixed-length comparison with no early exit, which the
/// compiler turns into a few word or vector operations; `eq_ignore_ascii_case`
/// lowers and compares a byte at a time.
#[inline(always)]
fn eq_lower<const N: usize>(name: &[u8], lower: &[u8; N]) -> bool {
    let Ok(name) = <&[u8; N]>::try_from(name) else { return false };
    let mut diff = 0;
    for i in 0..N {
        // Only a letter's case is ignored: `| 0x20` on a `-` would take a CR.
        let fold = if lower[i].is_ascii_lowercase() { 0x20 } else { 0 };
        diff |= (name[i] | fold) ^ lower[i];
    }
    diff == 0
}

/// The hop-by-hop fields of a parsed head, by position, as the parser
/// classified them: the encoder drops them without classifying every name a
/// second time. A bit per field for the first 64 fields; a field past them
/// (a head may have up to `HEADER_SLOTS`) is classified again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct HopFields(u64);

impl HopFields {
    /// Notes the `index`th field's kind, as the parser found it.
    pub(crate) fn note(&mut self, index: usize, kind: HeaderKind) {
        if index < 64 && kind.is_hop_by_hop() {
            self.0 |= 1 << index;
        }
    }

    /// Whether the `index`th field, named `name`, is hop-by-hop.
    pub(crate) fn is_hop_by_hop(self, index: usize, name: &str) -> bool {
        if index < 64 {
            self.0 & (1 << index) != 0
        } else {
            classify(name).is_hop_by_hop()
        }
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
        // Nearly every value is exactly one of the tokens (`keep-alive`,
        // `close`): matched whole, it is one item, with no list to split
        // and no scan for a comma.
        if self.add_known(trim_ows(value)) {
            return;
        }
        for item in list_items(value) {
            if !self.add_known(item) {
                self.names_fields = true;
            }
        }
    }

    /// Notes `item` if it is one of the tokens with a meaning of their own;
    /// false for any other (a field name, or a list).
    fn add_known(&mut self, item: &[u8]) -> bool {
        let flag = match item.len() {
            5 if item.eq_ignore_ascii_case(b"close") => &mut self.close,
            7 if item.eq_ignore_ascii_case(b"upgrade") => &mut self.upgrade,
            10 if item.eq_ignore_ascii_case(b"keep-alive") => &mut self.keep_alive,
            _ => return false,
        };
        *flag = true;
        true
    }
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
///
/// That is: a byte is LF exactly when the byte before it is CR, and the last
/// byte is not CR. Checked sixteen bytes at a time, as two bit masks (which
/// bytes are LF, which are CR): a head has a line ending every 20–30 bytes,
/// and a `memchr2` call per CR and per LF cost ~1,600 instructions per
/// proxied request (a request and a response head), eight bytes at a time
/// ~450, sixteen with SSE2 under 100 (docs/engine.md, issue 16).
pub(crate) fn has_bare_line_ending(head: &[u8]) -> bool {
    // Bit 0 set when the previous block ended with CR.
    let mut carry = 0;
    let mut blocks = head.chunks_exact(16);
    for block in &mut blocks {
        let (lf, cr) = line_ending_masks(block.try_into().expect("16 bytes"));
        if lf != (cr << 1 | carry) & 0xffff {
            return true;
        }
        carry = cr >> 15;
    }
    let rest = blocks.remainder();
    let (lf, cr) = if rest.is_empty() {
        (0, 0)
    } else if let Some(last) = head.len().checked_sub(16) {
        // The last sixteen bytes, shifted so that the ones checked above
        // fall out: no copy.
        let (lf, cr) = line_ending_masks(head[last..].try_into().expect("16 bytes"));
        (lf >> (16 - rest.len()), cr >> (16 - rest.len()))
    } else {
        let mut padded = [0u8; 16];
        padded[..rest.len()].copy_from_slice(rest);
        line_ending_masks(&padded)
    };
    // A CR in the last byte sets a bit beyond the last LF bit: no LF follows.
    lf != (cr << 1 | carry)
}

/// Bit `i` of the first mask is set when `block[i]` is LF, of the second
/// when it is CR.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
fn line_ending_masks(block: &[u8; 16]) -> (u32, u32) {
    use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8};
    // SAFETY: SSE2 is enabled for this build (the cfg above; it is part of
    // the x86_64 baseline), so these instructions exist on every CPU the
    // code can run on; the unaligned load reads the sixteen bytes `block`
    // borrows.
    unsafe {
        let v = _mm_loadu_si128(block.as_ptr().cast());
        let lf = _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'\n' as i8)));
        let cr = _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'\r' as i8)));
        (lf as u32, cr as u32)
    }
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
fn line_ending_masks(block: &[u8; 16]) -> (u32, u32) {
    line_ending_masks_portable(block)
}

/// [`line_ending_masks`] eight bytes at a time in a `u64`, for CPUs without
/// SSE2 (and to test the SSE2 one against).
#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2", not(test)), allow(dead_code))]
fn line_ending_masks_portable(block: &[u8; 16]) -> (u32, u32) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    // Bit `i` set when byte `i` of `w` equals `b`: first 0x80 in each such
    // byte (exact: no carry crosses a byte), then the eight high bits
    // gathered into the top byte by one multiplication.
    let bits = |w: u64, b: u8| {
        let x = w ^ (ONES * u64::from(b));
        let high = !(((x & LOW7) + LOW7) | x) & !LOW7;
        ((high >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56) as u32
    };
    let lo = u64::from_le_bytes(block[..8].try_into().expect("8 bytes"));
    let hi = u64::from_le_bytes(block[8..].try_into().expect("8 bytes"));
    (bits(lo, b'\n') | bits(hi, b'\n') << 8, bits(lo, b'\r') | bits(hi, b'\r') << 8)
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
        assert_eq!(classify("Content-Length"), HeaderKind::ContentLength);
        assert_eq!(classify("TRANSFER-ENCODING"), HeaderKind::TransferEncoding);
        assert_eq!(classify("X-Thing"), HeaderKind::Other);
    }

    /// `classify` against a plain lookup of every known name: the names in
    /// any case, and each with every byte replaced by bytes near it (other
    /// letters, the same letter's other case, non-letters that OR to a
    /// letter), cut short or made longer.
    #[test]
    fn classify_matches_a_lookup() {
        const KNOWN: [(&str, HeaderKind); 10] = [
            ("te", HeaderKind::Te),
            ("via", HeaderKind::Via),
            ("host", HeaderKind::Host),
            ("expect", HeaderKind::Expect),
            ("upgrade", HeaderKind::Upgrade),
            ("connection", HeaderKind::Connection),
            ("keep-alive", HeaderKind::KeepAlive),
            ("content-length", HeaderKind::ContentLength),
            ("proxy-connection", HeaderKind::ProxyConnection),
            ("transfer-encoding", HeaderKind::TransferEncoding),
        ];
        let lookup = |name: &[u8]| {
            KNOWN.iter().find(|(n, _)| n.as_bytes().eq_ignore_ascii_case(name)).map_or(HeaderKind::Other, |&(_, k)| k)
        };
        let mut names: Vec<Vec<u8>> =
            vec![b"".to_vec(), b"Date".to_vec(), b"Server".to_vec(), b"Content-Type".to_vec()];
        for (known, _) in KNOWN {
            let base = known.as_bytes();
            names.push(base.to_vec());
            names.push(base.to_ascii_uppercase());
            names.push(base[..base.len() - 1].to_vec());
            names.push([base, b"s"].concat());
            for i in 0..base.len() {
                for b in [base[i] ^ 0x20, (base[i] & !0x20) ^ 0x01, base[i] ^ 0x40, b'-', b'0', 0x7f, b'T'] {
                    let mut name = base.to_vec();
                    name[i] = b;
                    names.push(name);
                }
            }
        }
        for name in names {
            let Ok(s) = std::str::from_utf8(&name) else { continue };
            assert_eq!(classify(s), lookup(&name), "{s:?}");
        }
    }

    #[test]
    fn connection_options_with_and_without_commas() {
        let options = |values: &[&[u8]]| {
            let mut o = ConnectionOptions::default();
            for v in values {
                o.add(v);
            }
            (o.close, o.keep_alive, o.upgrade, o.names_fields)
        };
        assert_eq!(options(&[b"keep-alive"]), (false, true, false, false));
        assert_eq!(options(&[b" Close\t"]), (true, false, false, false));
        assert_eq!(options(&[b"UPGRADE"]), (false, false, true, false));
        assert_eq!(options(&[b"x-hop"]), (false, false, false, true));
        assert_eq!(options(&[b""]), (false, false, false, false), "an empty value names nothing");
        assert_eq!(options(&[b" \t "]), (false, false, false, false), "nor does whitespace");
        assert_eq!(options(&[b"keep-alive x"]), (false, false, false, true), "one token, not two");
        assert_eq!(options(&[b"keep-alive, Upgrade"]), (false, true, true, false));
        assert_eq!(options(&[b" ,close,, x-hop ,"]), (true, false, false, true));
        assert_eq!(options(&[b","]), (false, false, false, false));
        assert_eq!(options(&[b"close", b"keep-alive"]), (true, true, false, false), "fields add up");
    }

    /// xorshift64: a fixed pseudo-random sequence, so a failure repeats.
    fn xorshift() -> impl FnMut() -> u64 {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
    }

    #[test]
    fn line_ending_masks_agree_with_the_portable_ones() {
        let mut next = xorshift();
        let mut block = [0u8; 16];
        for _ in 0..100_000 {
            for b in block.iter_mut() {
                // CR, LF, bytes one bit away from them, a letter.
                *b = [b'\r', b'\n', b'\r' ^ 0x80, b'\n' ^ 1, b'\r' ^ 0x20, b'a'][(next() % 6) as usize];
            }
            assert_eq!(line_ending_masks(&block), line_ending_masks_portable(&block), "{block:?}");
        }
    }

    #[test]
    fn bare_line_endings() {
        assert!(!has_bare_line_ending(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(has_bare_line_ending(b"GET / HTTP/1.1\nHost: a\r\n\r\n"));
        assert!(has_bare_line_ending(b"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n"));
    }

    /// The block-at-a-time check against the byte-at-a-time rule: on every
    /// string of up to 7 bytes over CR, LF, a letter and bytes one bit away
    /// from CR and LF, of up to 11 bytes over CR, LF and a letter, on
    /// pseudo-random strings of up to 50 bytes (three blocks and a rest),
    /// and on a head with each byte changed and cut anywhere.
    #[test]
    fn bare_line_endings_block_at_a_time() {
        fn bytewise(head: &[u8]) -> bool {
            (0..head.len()).any(|i| match head[i] {
                b'\n' => i == 0 || head[i - 1] != b'\r',
                b'\r' => head.get(i + 1) != Some(&b'\n'),
                _ => false,
            })
        }
        let mut buf = Vec::new();
        for (alphabet, longest) in [(&[b'\r', b'\n', b'a', 0x8d, 0x8a, 0x0c, 0x0b, 0x00][..], 7), (b"\r\na", 11)] {
            for len in 0..=longest {
                for n in 0..alphabet.len().pow(len) {
                    buf.clear();
                    let mut k = n;
                    for _ in 0..len {
                        buf.push(alphabet[k % alphabet.len()]);
                        k /= alphabet.len();
                    }
                    assert_eq!(has_bare_line_ending(&buf), bytewise(&buf), "{buf:?}");
                }
            }
        }
        let mut next = xorshift();
        for _ in 0..200_000 {
            let len = (next() % 51) as usize;
            buf.clear();
            // Mostly CR, LF and CRLF, so that strings without a bare one
            // (and with one late in them) are common.
            while buf.len() < len {
                match next() % 8 {
                    0 => buf.push(b'\r'),
                    1 => buf.push(b'\n'),
                    2..=5 => buf.extend_from_slice(b"\r\n"),
                    _ => buf.push(b'a'),
                }
            }
            buf.truncate(len);
            assert_eq!(has_bare_line_ending(&buf), bytewise(&buf), "{buf:?}");
        }
        let head = b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Sun, 06 Dec 2026 12:13:00 GMT\r\n\
                     Content-Length: 22\r\nConnection: keep-alive\r\n\r\n";
        assert!(!has_bare_line_ending(head));
        for i in 0..head.len() {
            for b in [b'\r', b'\n', b'x'] {
                let mut h = head.to_vec();
                h[i] = b;
                assert_eq!(has_bare_line_ending(&h), bytewise(&h), "{i} {b}");
                assert_eq!(has_bare_line_ending(&h[..i]), bytewise(&h[..i]), "{i}");
            }
        }
    }
}
