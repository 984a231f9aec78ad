//! How a message body is delimited (RFC 9112 §6.3), and an incremental reader
//! that finds its end in a byte stream.

use super::chunked::ChunkedDecoder;
use super::rechunk::Rechunker;
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
            BodyFraming::Chunked => BodyReader::Chunked(ChunkedDecoder::new(), Rechunker::new()),
            BodyFraming::CloseDelimited => BodyReader::UntilClose,
        }
    }
}

/// Tracks the end of one body as bytes stream through (and, for `forward`,
/// re-encodes a chunked one: `Chunked` holds the decoder and the re-encoder).
#[derive(Debug, Clone)]
pub enum BodyReader {
    Length { remaining: u64 },
    Chunked(ChunkedDecoder, Rechunker),
    UntilClose,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyProgress {
    /// Bytes of the input that belong to this body.
    pub consumed: usize,
    /// The body is complete.
    pub done: bool,
    /// Trailer fields dropped (`forward` of a chunked body, when done).
    pub trailers_dropped: u32,
}

impl BodyReader {
    pub fn is_done(&self) -> bool {
        matches!(self, BodyReader::Done)
    }

    /// Whether `forward` rewrites this body into its `out` buffer (chunked)
    /// rather than leaving it to be sent as it came.
    pub fn rewrites(&self) -> bool {
        matches!(self, BodyReader::Chunked(..))
    }

    /// Feeds body bytes; returns how many belong to the body and whether it ended.
    /// `on_data` sees the payload (de-chunked) bytes.
    pub fn advance(&mut self, input: &[u8], on_data: impl FnMut(&[u8])) -> Result<BodyProgress, ParseError> {
        let progress = match self {
            BodyReader::Done => BodyProgress { consumed: 0, done: true, trailers_dropped: 0 },
            BodyReader::UntilClose => {
                let mut on_data = on_data;
                on_data(input);
                BodyProgress { consumed: input.len(), done: false, trailers_dropped: 0 }
            }
            BodyReader::Length { remaining } => {
                let take = (input.len() as u64).min(*remaining) as usize;
                let mut on_data = on_data;
                on_data(&input[..take]);
                *remaining -= take as u64;
                BodyProgress { consumed: take, done: *remaining == 0, trailers_dropped: 0 }
            }
            BodyReader::Chunked(decoder, _) => {
                let p = decoder.decode(input, on_data)?;
                BodyProgress { consumed: p.consumed, done: p.done, trailers_dropped: 0 }
            }
        };
        if progress.done {
            *self = BodyReader::Done;
        }
        Ok(progress)
    }

    /// Feeds body bytes on their way to the next hop. A chunked body is
    /// re-encoded into `out` (see `rechunk.rs`: the next hop gets corelink's
    /// framing, never the peer's, and no forbidden trailer field). Any other
    /// body goes out as it came: `out` is left alone and the caller sends
    /// `input[..consumed]` without a copy.
    pub fn forward(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<BodyProgress, ParseError> {
        let BodyReader::Chunked(decoder, rechunk) = self else {
            return self.advance(input, |_| {});
        };
        let p = decoder.decode_events(input, |event| rechunk.event(event, out))?;
        let trailers_dropped = if p.done { rechunk.finish(out) } else { 0 };
        if p.done {
            *self = BodyReader::Done;
        }
        Ok(BodyProgress { consumed: p.consumed, done: p.done, trailers_dropped })
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
        assert_eq!(p, BodyProgress { consumed: 3, done: false, trailers_dropped: 0 });
        let p = r.advance(b"deXYZ", |_| {}).unwrap();
        assert_eq!(p, BodyProgress { consumed: 2, done: true, trailers_dropped: 0 });
        assert!(r.is_done());
    }

    #[test]
    fn forward_rewrites_chunked_only() {
        let mut out = Vec::new();
        let mut r = BodyFraming::Length(5).reader();
        assert!(!r.rewrites());
        let p = r.forward(b"helloNEXT", &mut out).unwrap();
        assert_eq!((p.consumed, p.done), (5, true));
        assert!(out.is_empty(), "Content-Length bodies are not copied");

        let mut r = BodyFraming::Chunked.reader();
        assert!(r.rewrites());
        let input = b"5 ;x=y\r\nhel";
        let p = r.forward(input, &mut out).unwrap();
        assert_eq!((p.consumed, p.done), (input.len(), false));
        let p = r.forward(b"lo\r\n0\r\nHost: evil\r\nX-T: 1\r\n\r\nNEXT", &mut out).unwrap();
        assert!(p.done);
        assert_eq!(p.trailers_dropped, 1);
        assert_eq!(out, b"3\r\nhel\r\n2\r\nlo\r\n0\r\nX-T: 1\r\n\r\n");
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
