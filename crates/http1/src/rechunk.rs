//! Canonical re-encoding of a chunked body for the next hop (RFC 9112 §7.1).
//!
//! corelink never forwards a peer's chunk framing: the decoder accepts some
//! spellings (BWS before `;`, extensions, leading zeros, upper-case hex) that
//! a strict next hop may frame differently or refuse, which is a desync. What
//! the decoder reports is written out again in one spelling: each run of
//! payload as `<lower-case hex size>\r\n<data>\r\n`, no extensions (RFC 9112
//! §7.1.1 lets a recipient ignore them), the last chunk `0\r\n`, the allowed
//! trailer fields as `name: value\r\n`, then `\r\n`. Trailer fields that RFC
//! 9110 §6.5.1 forbids (framing, routing, authentication, request modifiers,
//! response controls, content format) are dropped and counted.

use super::chunked::ChunkedEvent;
use super::tokens::trim_ows;

/// Trailer state of one chunked body being re-encoded. One pointer, null
/// until a trailer field arrives: it sits in every `BodyReader`, which the
/// proxy moves by value several times per request, and trailers are rare.
#[derive(Debug, Clone, Default)]
pub struct Rechunker {
    trailers: Option<Box<Trailers>>,
}

#[derive(Debug, Clone, Default)]
struct Trailers {
    /// The allowed trailer fields so far, re-encoded, then the raw bytes of
    /// the line being read (which may arrive over several inputs). The
    /// decoder bounds the section to `MAX_TRAILER_BYTES`.
    fields: Vec<u8>,
    /// Where the raw line being read starts in `fields`.
    line_start: usize,
    /// Trailer fields dropped so far.
    dropped: u32,
}

impl Rechunker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes the payload of `event` to `out` as one chunk; keeps trailer
    /// fields for `finish`, which writes them after the last chunk.
    pub fn event(&mut self, event: ChunkedEvent<'_>, out: &mut Vec<u8>) {
        match event {
            ChunkedEvent::Data(data) => push_chunk(out, data),
            ChunkedEvent::TrailerPart(part) => {
                self.trailers.get_or_insert_with(Default::default).fields.extend_from_slice(part)
            }
            ChunkedEvent::TrailerEnd => self.trailers.get_or_insert_with(Default::default).end_line(),
        }
    }

    /// The body ended: writes the last chunk, the allowed trailer fields and
    /// the final CRLF to `out`. Returns the number of trailer fields dropped.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> u32 {
        out.extend_from_slice(b"0\r\n");
        let dropped = match self.trailers.take() {
            Some(t) => {
                out.extend_from_slice(&t.fields[..t.line_start]);
                t.dropped
            }
            None => 0,
        };
        out.extend_from_slice(b"\r\n");
        dropped
    }
}

impl Trailers {
    fn end_line(&mut self) {
        let raw = self.fields.split_off(self.line_start);
        // The decoder accepted the line as `token ":" field-value`.
        match raw.iter().position(|&b| b == b':') {
            Some(colon) if !forbidden_in_trailers(&raw[..colon]) => {
                let value = trim_ows(&raw[colon + 1..]);
                self.fields.extend_from_slice(&raw[..colon]);
                self.fields.push(b':');
                if !value.is_empty() {
                    self.fields.push(b' ');
                    self.fields.extend_from_slice(value);
                }
                self.fields.extend_from_slice(b"\r\n");
            }
            _ => self.dropped += 1,
        }
        self.line_start = self.fields.len();
    }
}

/// `<hex size>\r\n<data>\r\n`; nothing for empty data (a zero size would end
/// the body).
fn push_chunk(out: &mut Vec<u8>, data: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    if data.is_empty() {
        return;
    }
    let mut digits = [0u8; 16];
    let mut at = digits.len();
    let mut n = data.len() as u64;
    while n != 0 {
        at -= 1;
        digits[at] = HEX[(n & 0xf) as usize];
        n >>= 4;
    }
    out.reserve(digits.len() - at + data.len() + 4);
    out.extend_from_slice(&digits[at..]);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Fields a trailer section must not carry (RFC 9110 §6.5.1): they are
/// evaluated before the content is read, so a recipient that merged a late
/// one into the header section (or a next hop that did) would act on a value
/// nobody checked. The list is RFC 9110's categories spelled out, as Go's
/// net/http spells them (`badTrailer`), plus the cookie fields and
/// corelink's own `l5d-` context fields (routing: `l5d-dtab`, `l5d-dst-*`).
const FORBIDDEN_TRAILERS: &[&str] = &[
    // Message framing and connection management.
    "content-length",
    "transfer-encoding",
    "trailer",
    "te",
    "connection",
    "keep-alive",
    "proxy-connection",
    "upgrade",
    // Routing.
    "host",
    "max-forwards",
    "via",
    // finagle's per-request dtab (linkerd honours it) and client identity.
    "dtab-local",
    "forwarded",
    // Authentication.
    "authorization",
    "proxy-authorization",
    "www-authenticate",
    "proxy-authenticate",
    "cookie",
    "set-cookie",
    // Request modifiers (controls and conditionals).
    "cache-control",
    "expect",
    "pragma",
    "range",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
    "if-range",
    // Response controls.
    "age",
    "date",
    "expires",
    "location",
    "retry-after",
    "vary",
    "warning",
    // Content format.
    "content-encoding",
    "content-type",
    "content-range",
];

/// Whether a trailer field named `name` is dropped instead of forwarded.
pub fn forbidden_in_trailers(name: &[u8]) -> bool {
    name.get(..4).is_some_and(|p| p.eq_ignore_ascii_case(b"l5d-"))
        || FORBIDDEN_TRAILERS.iter().any(|f| f.as_bytes().eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunked::ChunkedDecoder;

    /// Decodes `input` fed in pieces of `step` bytes, re-encoding as it goes.
    fn rechunk(input: &[u8], step: usize) -> (Vec<u8>, u32) {
        let mut d = ChunkedDecoder::new();
        let mut r = Rechunker::new();
        let mut out = Vec::new();
        for piece in input.chunks(step) {
            let p = d.decode_events(piece, |e| r.event(e, &mut out)).unwrap();
            if p.done {
                let dropped = r.finish(&mut out);
                return (out, dropped);
            }
        }
        panic!("not done: {:?}", String::from_utf8_lossy(input));
    }

    #[test]
    fn framing_is_rewritten_canonically() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"5 ;a=b\r\nhello\r\n0\r\n\r\n", b"5\r\nhello\r\n0\r\n\r\n"),
            (b"5\t;a=\"x;y\"\r\nhello\r\n0;z\r\n\r\n", b"5\r\nhello\r\n0\r\n\r\n"),
            (b"000A\r\n0123456789\r\n00\r\n\r\n", b"a\r\n0123456789\r\n0\r\n\r\n"),
            (b"0\r\n\r\n", b"0\r\n\r\n"),
        ];
        for (input, want) in cases {
            assert_eq!(rechunk(input, input.len()), (want.to_vec(), 0), "{}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn each_run_of_payload_is_one_chunk() {
        // Split at every byte: one chunk per payload byte, same payload.
        let (out, _) = rechunk(b"3\r\nabc\r\n0\r\n\r\n", 1);
        assert_eq!(out, b"1\r\na\r\n1\r\nb\r\n1\r\nc\r\n0\r\n\r\n");
        // A chunk split across two inputs goes out as two chunks.
        let (out, _) = rechunk(b"6\r\nabcdef\r\n0\r\n\r\n", 6);
        assert_eq!(out, b"3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n");
    }

    #[test]
    fn forbidden_trailers_are_dropped_and_counted() {
        let input = b"2\r\nok\r\n0\r\nX-Checksum:  abc \r\nContent-Length: 5\r\nhost:evil\r\nTransfer-Encoding: chunked\r\nL5D-Dtab: /svc=>/x\r\nX-Empty:\r\n\r\n";
        let want: &[u8] = b"2\r\nok\r\n0\r\nX-Checksum: abc\r\nX-Empty:\r\n\r\n";
        assert_eq!(rechunk(input, input.len()), (want.to_vec(), 4));
        // Trailer lines split across inputs (the payload then comes as
        // smaller chunks).
        for step in [7, 1] {
            let (out, dropped) = rechunk(input, step);
            assert!(out.ends_with(&want[7..]), "step {step}: {}", String::from_utf8_lossy(&out));
            assert_eq!(dropped, 4);
        }
    }

    #[test]
    fn forbidden_names_ignore_case() {
        for name in ["Content-Length", "HOST", "set-cookie", "l5d-dst-service", "Trailer"] {
            assert!(forbidden_in_trailers(name.as_bytes()), "{name}");
        }
        for name in ["x-checksum", "server-timing", "etag-x", "l5d", "grpc-status"] {
            assert!(!forbidden_in_trailers(name.as_bytes()), "{name}");
        }
    }

    #[test]
    fn sizes_are_lower_case_hex_without_leading_zeros() {
        for (len, hex) in [(1usize, "1"), (15, "f"), (16, "10"), (4096, "1000"), (65535, "ffff")] {
            let mut out = Vec::new();
            push_chunk(&mut out, &vec![b'x'; len]);
            assert!(out.starts_with(format!("{hex}\r\n").as_bytes()), "{len}");
            assert!(out.ends_with(b"x\r\n"));
        }
    }
}
