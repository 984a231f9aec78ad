//! How a message body is delimited (RFC 9112 §6.3), and an incremental reader
//! that finds its end in a byte stream.

use super::chunked::ChunkedDecoder;
use super::ParseError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body (HEAD responses, 1xx/204/304, requests without CL or TE).
    Empty,
    /// Exactly this many bytes follow the head.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Body runs until the sender closes (responses only).
    CloseDelimited,
    /// After this head, the connection becomes an opaque byte tunnel
    /// (101 Switching Protocols, or a 2xx answer to CONNECT).
    Tunnel,
}

impl BodyFraming {
    /// The framing a proxy must track for this message's body.
    pub fn reader(self) -> BodyReader {
        match self {
            BodyFraming::Empty | BodyFraming::Tunnel | BodyFraming::Length(0) => BodyReader::Done,
            BodyFraming::Length(n) => BodyReader::Length { remaining: n },
            BodyFraming::Chunked => BodyReader::Chunked(ChunkedDecoder::new()),
            BodyFraming::CloseDelimited => BodyReader::UntilClose,
        }
    }
}

/// Tracks the end of one body as bytes stream through.
#[derive(Debug, Clone)]
pub enum BodyReader {
    Length { remaining: u64 },
    Chunked(ChunkedDecoder),
    UntilClose,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyProgress {
    /// Bytes of the input that belong to this body.
    pub consumed: usize,
    /// The body is complete.
    pub done: bool,
}

impl BodyReader {
    pub fn is_done(&self) -> bool {
        matches!(self, BodyReader::Done)
    }

    /// Feeds body bytes; returns how many belong to the body and whether it ended.
    /// `on_data` sees the payload (de-chunked) bytes.
    pub fn advance(&mut self, input: &[u8], on_data: impl FnMut(&[u8])) -> Result<BodyProgress, ParseError> {
        let progress = match self {
            BodyReader::Done => BodyProgress { consumed: 0, done: true },
            BodyReader::UntilClose => {
                let mut on_data = on_data;
                on_data(input);
                BodyProgress { consumed: input.len(), done: false }
            }
            BodyReader::Length { remaining } => {
                let take = (input.len() as u64).min(*remaining) as usize;
                let mut on_data = on_data;
                on_data(&input[..take]);
                *remaining -= take as u64;
                BodyProgress { consumed: take, done: *remaining == 0 }
            }
            BodyReader::Chunked(decoder) => {
                let p = decoder.decode(input, on_data)?;
                BodyProgress { consumed: p.consumed, done: p.done }
            }
        };
        if progress.done {
            *self = BodyReader::Done;
        }
        Ok(progress)
    }

    /// The peer closed the connection: is the body complete?
    pub fn finish_on_close(&mut self) -> bool {
        match self {
            BodyReader::UntilClose | BodyReader::Done => {
                *self = BodyReader::Done;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_reader_stops_at_length() {
        let mut r = BodyFraming::Length(5).reader();
        let p = r.advance(b"abc", |_| {}).unwrap();
        assert_eq!(p, BodyProgress { consumed: 3, done: false });
        let p = r.advance(b"deXYZ", |_| {}).unwrap();
        assert_eq!(p, BodyProgress { consumed: 2, done: true });
        assert!(r.is_done());
    }

    #[test]
    fn close_delimited_needs_close() {
        let mut r = BodyFraming::CloseDelimited.reader();
        assert!(!r.advance(b"abc", |_| {}).unwrap().done);
        assert!(r.finish_on_close());
        let mut r = BodyFraming::Length(3).reader();
        assert!(!r.finish_on_close());
    }
}
