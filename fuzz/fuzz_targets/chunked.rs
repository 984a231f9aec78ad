//! `ChunkedDecoder`, differential: the input decoded whole, split at
//! fuzzer-chosen points (see `corelink_fuzz::split_input` for the header that
//! chooses them) and, for short inputs, one byte at a time must give the same
//! payload bytes, the same end position (`consumed` at done) and the same
//! error.
#![no_main]

use corelink_fuzz::{byte_pieces, pieces, show_bytes, split_input};
use corelink_http1::{ChunkedDecoder, ParseError};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    payload: Vec<u8>,
    /// `Ok(Some(end))`: done, the message ended at `end`; `Ok(None)`: every
    /// byte consumed, more needed; `Err`: rejected.
    end: Result<Option<usize>, ParseError>,
    /// `payload_len()` when done.
    payload_len: Option<u64>,
}

fn run(input: &[u8], parts: &[&[u8]]) -> Outcome {
    let mut d = ChunkedDecoder::new();
    let mut payload = Vec::new();
    let mut offset = 0;
    for part in parts {
        match d.decode(part, |b| payload.extend_from_slice(b)) {
            Err(e) => return Outcome { payload, end: Err(e), payload_len: None },
            Ok(p) => {
                assert!(p.consumed <= part.len(), "consumed past input: {}", show_bytes(input));
                if p.done {
                    assert!(d.is_done());
                    // A finished decoder takes nothing more.
                    let after = d.decode(b"0\r\n\r\n", |_: &[u8]| panic!("data after done"));
                    assert_eq!(after.map(|p| (p.consumed, p.done)), Ok((0, true)));
                    return Outcome { payload, end: Ok(Some(offset + p.consumed)), payload_len: Some(d.payload_len()) };
                }
                assert_eq!(p.consumed, part.len(), "not done but stopped early: {}", show_bytes(input));
                offset += part.len();
            }
        }
    }
    Outcome { payload, end: Ok(None), payload_len: None }
}

fuzz_target!(|data: &[u8]| {
    let (cuts, input) = split_input(data);
    let whole = run(input, &[input]);
    if let Ok(Some(end)) = whole.end {
        assert!(end <= input.len());
        assert!(input[..end].ends_with(b"\r\n"));
        assert_eq!(whole.payload_len, Some(whole.payload.len() as u64));
    }
    let split = run(input, &pieces(input, &cuts));
    assert_eq!(whole, split, "whole vs split at {cuts:?}: {}", show_bytes(input));
    if input.len() <= 4096 {
        let bytes = run(input, &byte_pieces(input));
        assert_eq!(whole, bytes, "whole vs byte at a time: {}", show_bytes(input));
    }
});
