//! Chunked re-encoding, differential: corelink forwards a chunked body
//! (`BodyReader::forward`, decode then re-encode) fed whole, split at
//! fuzzer-chosen points (see `corelink_fuzz::split_input`) and, for short
//! inputs, one byte at a time. A minimal chunked decoder written here, not
//! corelink's, then checks each output:
//!
//! - it is canonical: every chunk `<lower-case hex, no leading zero>\r\n`
//!   `<data>\r\n`, no extension, no empty chunk, then `0\r\n`, trailer lines
//!   `name: value\r\n` (or `name:\r\n`) and `\r\n`, nothing after;
//! - it carries the payload the same decoder reads from the input, and the
//!   input's trailer fields minus those `forbidden_in_trailers` names (never
//!   a `Content-Length`, `Transfer-Encoding`, `Host` or `Trailer`), and the
//!   dropped count says how many went;
//! - all the ways of feeding the input agree on payload, trailers, where the
//!   body ended, the dropped count and the error (chunk boundaries in the
//!   output may differ: they follow the reads).
#![no_main]

use corelink_fuzz::{byte_pieces, pieces, show_bytes, split_input};
use corelink_http1::{forbidden_in_trailers, BodyFraming, ParseError};
use libfuzzer_sys::fuzz_target;

/// What the oracle read.
#[derive(Debug, PartialEq, Eq)]
struct Decoded {
    payload: Vec<u8>,
    /// (name, value) with the value's surrounding whitespace removed.
    trailers: Vec<(Vec<u8>, Vec<u8>)>,
    /// Length of the chunked body.
    end: usize,
}

#[derive(Debug)]
enum Oracle {
    Complete(Decoded),
    Incomplete,
    Bad(String),
}

/// The next CRLF-terminated line at `at`: (line, position after its CRLF).
fn line(b: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let rest = &b[at..];
    let i = rest.windows(2).position(|w| w == b"\r\n")?;
    Some((&rest[..i], at + i + 2))
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// A small chunked decoder. `canonical`: insist on the one spelling corelink
/// writes and on nothing after the body. Otherwise it reads what corelink
/// already accepted: the size is the leading hex digits and the rest of the
/// size line (BWS, extensions) is skipped.
fn oracle(b: &[u8], canonical: bool) -> Oracle {
    let mut at = 0;
    let mut payload = Vec::new();
    loop {
        let Some((size_line, next)) = line(b, at) else { return Oracle::Incomplete };
        let digits_len = size_line.iter().take_while(|c| c.is_ascii_hexdigit()).count();
        let digits = &size_line[..digits_len];
        if canonical {
            let lower = digits.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'));
            let minimal = digits == b"0" || digits.first() != Some(&b'0');
            if digits_len != size_line.len() || digits.is_empty() || !lower || !minimal {
                return Oracle::Bad(format!("size line {}", show_bytes(size_line)));
            }
        }
        let digits = &digits[digits.iter().take_while(|&&c| c == b'0').count()..];
        if digits.len() > 16 {
            return Oracle::Bad("size over 64 bits".into());
        }
        let size = digits.iter().fold(0u64, |n, &c| n * 16 + u64::from((c as char).to_digit(16).unwrap_or(0)));
        at = next;
        if size == 0 {
            break;
        }
        let Ok(size) = usize::try_from(size) else { return Oracle::Incomplete };
        if b.len() - at < size.saturating_add(2) {
            return Oracle::Incomplete;
        }
        payload.extend_from_slice(&b[at..at + size]);
        at += size;
        if &b[at..at + 2] != b"\r\n" {
            return Oracle::Bad("chunk data not followed by CRLF".into());
        }
        at += 2;
    }
    let mut trailers = Vec::new();
    loop {
        let Some((l, next)) = line(b, at) else { return Oracle::Incomplete };
        at = next;
        if l.is_empty() {
            break;
        }
        let Some(colon) = l.iter().position(|&c| c == b':') else {
            return Oracle::Bad(format!("trailer without a colon: {}", show_bytes(l)));
        };
        let (name, value) = (&l[..colon], &l[colon + 1..]);
        if canonical {
            let spelled = value.is_empty() || (value[0] == b' ' && value.len() > 1 && trim(value) == &value[1..]);
            if name.is_empty() || !spelled {
                return Oracle::Bad(format!("trailer line {}", show_bytes(l)));
            }
        }
        trailers.push((name.to_vec(), trim(value).to_vec()));
    }
    if canonical && at != b.len() {
        return Oracle::Bad(format!("{} bytes after the body", b.len() - at));
    }
    Oracle::Complete(Decoded { payload, trailers, end: at })
}

/// What corelink's forwarding gave, as the oracle reads its output.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    /// The oracle's reading of the output when the body ended: payload and
    /// trailers (not the output's length, which depends on the reads).
    forwarded: Option<(Vec<u8>, Vec<(Vec<u8>, Vec<u8>)>)>,
    /// `Ok(Some(end))`: the body ended at `end` of the input; `Ok(None)`:
    /// every byte consumed, more needed; `Err`: rejected.
    end: Result<Option<usize>, ParseError>,
    dropped: u32,
}

fn run(input: &[u8], parts: &[&[u8]]) -> Outcome {
    let mut reader = BodyFraming::Chunked.reader();
    let mut out = Vec::new();
    let mut offset = 0;
    let mut dropped = 0;
    for part in parts {
        let p = match reader.forward(part, &mut out) {
            Ok(p) => p,
            Err(e) => return Outcome { forwarded: None, end: Err(e), dropped },
        };
        assert!(p.consumed <= part.len(), "consumed past input: {}", show_bytes(input));
        assert!(p.trailers_dropped == 0 || p.done, "trailers dropped before the end: {}", show_bytes(input));
        dropped += p.trailers_dropped;
        if p.done {
            let forwarded = match oracle(&out, true) {
                Oracle::Complete(d) => (d.payload, d.trailers),
                other => panic!("output {other:?}: {}\ninput: {}", show_bytes(&out), show_bytes(input)),
            };
            return Outcome { forwarded: Some(forwarded), end: Ok(Some(offset + p.consumed)), dropped };
        }
        assert_eq!(p.consumed, part.len(), "not done but stopped early: {}", show_bytes(input));
        offset += part.len();
    }
    // Not done: what went out so far is whole canonical chunks.
    if let Oracle::Bad(why) = oracle(&out, true) {
        panic!("partial output not canonical ({why}): {}\ninput: {}", show_bytes(&out), show_bytes(input));
    }
    Outcome { forwarded: None, end: Ok(None), dropped }
}

fuzz_target!(|data: &[u8]| {
    let (cuts, input) = split_input(data);
    let whole = run(input, &[input]);
    if let (Ok(Some(end)), Some((payload, trailers))) = (&whole.end, &whole.forwarded) {
        let Oracle::Complete(original) = oracle(&input[..*end], false) else {
            panic!("corelink accepted a body the oracle cannot read: {}", show_bytes(input));
        };
        assert_eq!(original.end, *end, "bodies end differently: {}", show_bytes(input));
        assert_eq!(*payload, original.payload, "payload changed: {}", show_bytes(input));
        let allowed: Vec<_> = original.trailers.iter().filter(|(n, _)| !forbidden_in_trailers(n)).cloned().collect();
        assert_eq!(*trailers, allowed, "trailers: {}", show_bytes(input));
        assert_eq!(whole.dropped as usize, original.trailers.len() - allowed.len());
        for (name, _) in trailers {
            for framing in [&b"content-length"[..], b"transfer-encoding", b"host", b"trailer"] {
                assert!(!name.eq_ignore_ascii_case(framing), "forwarded a {} trailer", show_bytes(name));
            }
        }
    }
    let split = run(input, &pieces(input, &cuts));
    assert_eq!(whole, split, "whole vs split at {cuts:?}: {}", show_bytes(input));
    if input.len() <= 4096 {
        let bytes = run(input, &byte_pieces(input));
        assert_eq!(whole, bytes, "whole vs byte at a time: {}", show_bytes(input));
    }
});
