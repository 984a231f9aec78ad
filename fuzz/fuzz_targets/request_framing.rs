//! The request side of a connection, differential: a stream of pipelined
//! requests is read whole and split at fuzzer-chosen points (see
//! `corelink_fuzz::split_input`), and for short inputs one byte at a time.
//! Each read is handled the way a proxy connection does it: heads are parsed
//! from the bytes buffered so far with `parse_request` (default limits), and
//! body bytes go through `BodyFraming::reader()` / `BodyReader::advance` as
//! they arrive. Feeding the same bytes whole or split must give the same
//! events: each head (where, how long, what it says), each body's payload
//! bytes and end position, and the same error at the same place.
#![no_main]

use std::mem::MaybeUninit;

use corelink_fuzz::{byte_pieces, pieces, show_bytes, split_input};
use corelink_http1::{parse_request, BodyFraming, BodyReader, Limits, ParseError, HEADER_SLOTS};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, PartialEq, Eq)]
enum Event {
    Head {
        start: usize,
        head_len: usize,
        method: String,
        target: String,
        framing: BodyFraming,
        keep_alive: bool,
        via_hops: usize,
    },
    /// A body ended at `end` (absolute offset) after these payload bytes.
    Body { payload: Vec<u8>, end: usize },
    /// Rejected: a head starting at `at`, or a body starting at `at` after
    /// `payload` bytes of it were passed on.
    Error { err: ParseError, at: usize, payload: Vec<u8> },
    /// Input ran out at `at`, inside a head (`None`) or a body (the payload
    /// passed on so far).
    Incomplete { at: usize, body: Option<Vec<u8>> },
}

fn head_event(start: usize, h: &corelink_http1::RequestHead<'_, '_>) -> Event {
    Event::Head {
        start,
        head_len: h.head_len,
        method: h.method_str.to_owned(),
        target: h.target.to_owned(),
        framing: h.framing,
        keep_alive: h.keep_alive,
        via_hops: h.via_hops,
    }
}

/// Everything in one buffer: parse at `pos`, run the body over the rest.
fn whole(input: &[u8], limits: &Limits) -> Vec<Event> {
    let mut events = Vec::new();
    let mut pos = 0;
    loop {
        let mut slots = [MaybeUninit::uninit(); HEADER_SLOTS];
        let framing = match parse_request(&input[pos..], &mut slots, limits) {
            Err(err) => {
                events.push(Event::Error { err, at: pos, payload: Vec::new() });
                return events;
            }
            Ok(None) => {
                events.push(Event::Incomplete { at: pos, body: None });
                return events;
            }
            Ok(Some(h)) => {
                events.push(head_event(pos, &h));
                pos += h.head_len;
                h.framing
            }
        };
        let mut reader = framing.reader();
        let mut payload = Vec::new();
        if reader.is_done() {
            events.push(Event::Body { payload, end: pos });
            continue;
        }
        let body_start = pos;
        match reader.advance(&input[pos..], |b| payload.extend_from_slice(b)) {
            Err(err) => {
                events.push(Event::Error { err, at: body_start, payload });
                return events;
            }
            Ok(p) => {
                assert!(p.consumed <= input.len() - pos);
                pos += p.consumed;
                if p.done {
                    events.push(Event::Body { payload, end: pos });
                } else {
                    assert_eq!(pos, input.len(), "body not done but input left over");
                    events.push(Event::Incomplete { at: pos, body: Some(payload) });
                    return events;
                }
            }
        }
    }
}

enum State {
    Head,
    Body { reader: BodyReader, start: usize, payload: Vec<u8> },
}

/// Reads arrive as `parts`: head bytes are buffered until a head parses, body
/// bytes are streamed through the reader as they come.
fn split(parts: &[&[u8]], limits: &Limits) -> Vec<Event> {
    let mut events = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    // Absolute offset of buf[0].
    let mut base = 0;
    let mut state = State::Head;
    for part in parts {
        buf.extend_from_slice(part);
        loop {
            match &mut state {
                State::Head => {
                    let mut slots = [MaybeUninit::uninit(); HEADER_SLOTS];
                    match parse_request(&buf, &mut slots, limits) {
                        Err(err) => {
                            events.push(Event::Error { err, at: base, payload: Vec::new() });
                            return events;
                        }
                        Ok(None) => break,
                        Ok(Some(h)) => {
                            events.push(head_event(base, &h));
                            let n = h.head_len;
                            let reader = h.framing.reader();
                            buf.drain(..n);
                            base += n;
                            if reader.is_done() {
                                events.push(Event::Body { payload: Vec::new(), end: base });
                            } else {
                                state = State::Body { reader, start: base, payload: Vec::new() };
                            }
                        }
                    }
                }
                State::Body { reader, start, payload } => {
                    if buf.is_empty() {
                        break;
                    }
                    match reader.advance(&buf, |b| payload.extend_from_slice(b)) {
                        Err(err) => {
                            events.push(Event::Error { err, at: *start, payload: std::mem::take(payload) });
                            return events;
                        }
                        Ok(p) => {
                            buf.drain(..p.consumed);
                            base += p.consumed;
                            if p.done {
                                events.push(Event::Body { payload: std::mem::take(payload), end: base });
                                state = State::Head;
                            } else {
                                assert!(buf.is_empty(), "body not done but bytes left over");
                                break;
                            }
                        }
                    }
                }
            }
        }
    }
    match state {
        State::Head => events.push(Event::Incomplete { at: base, body: None }),
        State::Body { payload, .. } => events.push(Event::Incomplete { at: base, body: Some(payload) }),
    }
    events
}

/// `FUZZ_HEAD_ERRORS_ANY=1` compares head errors by position only, not by
/// kind: while the known "which head error wins depends on the reads" bug
/// (fuzz/regressions/request_framing/) is open, this keeps the target useful
/// for finding other disagreements.
fn lenient() -> bool {
    static LENIENT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *LENIENT.get_or_init(|| std::env::var_os("FUZZ_HEAD_ERRORS_ANY").is_some_and(|v| v == "1"))
}

fn normalize(mut events: Vec<Event>) -> Vec<Event> {
    if lenient() {
        for e in &mut events {
            // Body errors (chunked framing) are always compared exactly.
            if let Event::Error { err, .. } = e {
                if !matches!(err, ParseError::BadChunk | ParseError::ChunkTooLarge) {
                    *err = ParseError::Malformed;
                }
            }
        }
    }
    events
}

fuzz_target!(|data: &[u8]| {
    let (cuts, input) = split_input(data);
    let limits = Limits::default();
    let w = normalize(whole(input, &limits));
    let s = normalize(split(&pieces(input, &cuts), &limits));
    assert_eq!(w, s, "whole vs split at {cuts:?}\ninput: {}", show_bytes(input));
    if input.len() <= 256 {
        let b = normalize(split(&byte_pieces(input), &limits));
        assert_eq!(w, b, "whole vs byte at a time\ninput: {}", show_bytes(input));
    }
});
