//! Incremental, strict decoder for the chunked transfer coding (RFC 9112 §7.1).
//!
//! This decoder validates chunked bodies and finds where the message ends, so
//! a pipelined next request or a smuggled one can never be mistaken for body;
//! the proxy then forwards what it decoded, re-encoded (`rechunk.rs`), never
//! the peer's framing bytes. It accepts input split at any byte and never
//! buffers: state lives in a small enum.
//!
//! Strictness (what gets `BadChunk`): a chunk-size must be 1*HEXDIG with no sign,
//! prefix or overflow; whitespace after it is allowed only before a `;`
//! extension (BWS in the grammar); extensions must be tokens or quoted strings;
//! every line ends in CRLF (bare CR or bare LF are errors); chunk data must be
//! followed by exactly CRLF; trailer fields must be `token ":" value`.

use super::limits::{MAX_CHUNK_LINE, MAX_TRAILER_BYTES};
use super::tokens::is_tchar;
use super::ParseError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Start of a chunk-size line: at least one hex digit required.
    SizeStart,
    /// Inside the hex digits.
    Size,
    /// Whitespace after the size: only more whitespace or `;` may follow.
    SizeWs,
    /// Inside chunk extensions (`;name=value...`).
    Ext(ExtState),
    /// Saw CR ending the size line, need LF.
    SizeLf,
    /// Chunk payload, `remaining` bytes to go.
    Data,
    /// After payload: need CR then LF.
    DataCr,
    DataLf,
    /// Start of a trailer line, or the final CRLF.
    TrailerStart,
    /// Inside a trailer field name.
    TrailerName,
    /// Inside a trailer field value.
    TrailerValue,
    /// CR ending a trailer line; need LF.
    TrailerLf,
    /// CR of the empty line ending the message; need LF.
    EndLf,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExtState {
    /// After `;`, optional whitespace then a name.
    BeforeName,
    Name,
    /// After name (whitespace allowed), `=`, `;` or CR.
    AfterName,
    /// After `=`, optional whitespace then token or quoted string.
    BeforeValue,
    Token,
    Quoted,
    QuotedEscape,
    /// After a value: whitespace, `;` or CR.
    AfterValue,
}

/// What `decode_events` reports besides where the message ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkedEvent<'a> {
    /// A run of payload bytes (never empty).
    Data(&'a [u8]),
    /// Bytes of a trailer field line (`name: value`, without its CRLF). A
    /// line split across inputs arrives in several parts.
    TrailerPart(&'a [u8]),
    /// The trailer field line reported so far is complete (its CRLF seen).
    TrailerEnd,
}

/// Result of one `decode` call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkedProgress {
    /// Bytes of the input that belong to this message (all of them unless done).
    pub consumed: usize,
    /// The last chunk, trailers and final CRLF have been seen.
    pub done: bool,
}

#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    /// Payload bytes left in the current chunk (also the size being parsed).
    remaining: u64,
    /// Bytes seen on the current size line (extensions included).
    line_len: u32,
    /// Bytes seen in the trailer section.
    trailer_len: u32,
    /// Total payload bytes decoded so far.
    payload: u64,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    pub fn new() -> Self {
        ChunkedDecoder { state: State::SizeStart, remaining: 0, line_len: 0, trailer_len: 0, payload: 0 }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Payload bytes decoded so far (the sum of chunk sizes seen).
    pub fn payload_len(&self) -> u64 {
        self.payload
    }

    /// Feeds `input`; calls `on_data` with each run of payload bytes. Stops at
    /// the end of the message, so `consumed` may be less than `input.len()`.
    pub fn decode(&mut self, input: &[u8], mut on_data: impl FnMut(&[u8])) -> Result<ChunkedProgress, ParseError> {
        self.decode_events(input, |event| {
            if let ChunkedEvent::Data(data) = event {
                on_data(data);
            }
        })
    }

    /// `decode`, also reporting the trailer field lines, for a caller that
    /// re-encodes the message (`Rechunker`). The decoder still buffers
    /// nothing: a trailer line split across inputs comes in parts.
    pub fn decode_events(
        &mut self,
        input: &[u8],
        mut on_event: impl FnMut(ChunkedEvent<'_>),
    ) -> Result<ChunkedProgress, ParseError> {
        // Where the trailer line being read starts in `input` (0 when it
        // began in an earlier input).
        let mut line_start = matches!(self.state, State::TrailerName | State::TrailerValue).then_some(0);
        let mut i = 0;
        while i < input.len() {
            if self.state == State::Data {
                let available = input.len() - i;
                let take = available.min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                on_event(ChunkedEvent::Data(&input[i..i + take]));
                i += take;
                self.remaining -= take as u64;
                if self.remaining == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            if self.state == State::Done {
                return Ok(ChunkedProgress { consumed: i, done: true });
            }
            let before = self.state;
            self.step(input[i])?;
            match (before, self.state) {
                (State::TrailerStart, State::TrailerName) => line_start = Some(i),
                (State::TrailerValue, State::TrailerLf) => {
                    if let Some(start) = line_start.take() {
                        on_event(ChunkedEvent::TrailerPart(&input[start..i]));
                    }
                }
                (State::TrailerLf, State::TrailerStart) => on_event(ChunkedEvent::TrailerEnd),
                _ => {}
            }
            i += 1;
        }
        if let Some(start) = line_start {
            if start < input.len() {
                on_event(ChunkedEvent::TrailerPart(&input[start..]));
            }
        }
        Ok(ChunkedProgress { consumed: i, done: self.state == State::Done })
    }

    fn step(&mut self, b: u8) -> Result<(), ParseError> {
        use State::*;
        match self.state {
            SizeStart | Size | SizeWs | Ext(_) => {
                self.line_len += 1;
                if self.line_len as usize > MAX_CHUNK_LINE {
                    return Err(ParseError::ChunkTooLarge);
                }
            }
            TrailerStart | TrailerName | TrailerValue | TrailerLf | EndLf => {
                self.trailer_len += 1;
                if self.trailer_len as usize > MAX_TRAILER_BYTES {
                    return Err(ParseError::ChunkTooLarge);
                }
            }
            _ => {}
        }
        self.state = match (self.state, b) {
            (SizeStart, _) => {
                let digit = hex_value(b).ok_or(ParseError::BadChunk)?;
                self.remaining = u64::from(digit);
                Size
            }
            (Size, _) if hex_value(b).is_some() => {
                let digit = hex_value(b).unwrap_or(0);
                self.remaining = self
                    .remaining
                    .checked_mul(16)
                    .and_then(|n| n.checked_add(u64::from(digit)))
                    .ok_or(ParseError::BadChunk)?;
                Size
            }
            (Size | SizeWs, b' ' | b'\t') => SizeWs,
            (Size | SizeWs, b';') => Ext(ExtState::BeforeName),
            (Size, b'\r') => SizeLf,
            (Ext(ext), _) => self.step_ext(ext, b)?,
            (SizeLf, b'\n') => {
                self.line_len = 0;
                if self.remaining == 0 {
                    TrailerStart
                } else {
                    self.payload = self.payload.saturating_add(self.remaining);
                    Data
                }
            }
            (DataCr, b'\r') => DataLf,
            (DataLf, b'\n') => SizeStart,
            (TrailerStart, b'\r') => EndLf,
            (TrailerStart, _) if is_tchar(b) => TrailerName,
            (TrailerName, _) if is_tchar(b) => TrailerName,
            (TrailerName, b':') => TrailerValue,
            (TrailerValue, b'\r') => TrailerLf,
            (TrailerValue, _) if is_field_value_byte(b) => TrailerValue,
            (TrailerLf, b'\n') => TrailerStart,
            (EndLf, b'\n') => Done,
            _ => return Err(ParseError::BadChunk),
        };
        Ok(())
    }

    fn step_ext(&mut self, ext: ExtState, b: u8) -> Result<State, ParseError> {
        use ExtState::*;
        let next = match (ext, b) {
            (BeforeName, b' ' | b'\t') => BeforeName,
            (BeforeName, _) if is_tchar(b) => Name,
            (Name, _) if is_tchar(b) => Name,
            (Name | AfterName, b' ' | b'\t') => AfterName,
            (Name | AfterName | AfterValue, b';') => BeforeName,
            (Name | AfterName | AfterValue | Token, b'\r') => return Ok(State::SizeLf),
            (Name | AfterName, b'=') => BeforeValue,
            (BeforeValue, b' ' | b'\t') => BeforeValue,
            (BeforeValue, b'"') => Quoted,
            (BeforeValue, _) if is_tchar(b) => Token,
            (Token, _) if is_tchar(b) => Token,
            (Token, b' ' | b'\t') => AfterValue,
            (Token, b';') => BeforeName,
            (Quoted, b'"') => AfterValue,
            (Quoted, b'\\') => QuotedEscape,
            (Quoted, _) if is_qdtext(b) => Quoted,
            (QuotedEscape, _) if b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80 => Quoted,
            (AfterValue, b' ' | b'\t') => AfterValue,
            _ => return Err(ParseError::BadChunk),
        };
        Ok(State::Ext(next))
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// qdtext (RFC 9110 §5.6.4): HTAB, SP, visible ASCII except `"` and `\`, obs-text.
fn is_qdtext(b: u8) -> bool {
    b == b'\t' || b == b' ' || b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b) || b >= 0x80
}

/// field-value bytes (RFC 9110 §5.5): VCHAR, SP, HTAB, obs-text; no CTLs.
fn is_field_value_byte(b: u8) -> bool {
    b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8]) -> Result<(Vec<u8>, ChunkedProgress), ParseError> {
        let mut out = Vec::new();
        let mut d = ChunkedDecoder::new();
        let p = d.decode(input, |data| out.extend_from_slice(data))?;
        Ok((out, p))
    }

    /// Feeding byte by byte must give the same payload, end and error as whole.
    fn decode_split(input: &[u8]) -> Result<(Vec<u8>, ChunkedProgress), ParseError> {
        let mut out = Vec::new();
        let mut d = ChunkedDecoder::new();
        let mut consumed = 0;
        for i in 0..input.len() {
            let p = d.decode(&input[i..i + 1], |data| out.extend_from_slice(data))?;
            consumed += p.consumed;
            if p.done {
                return Ok((out, ChunkedProgress { consumed, done: true }));
            }
        }
        Ok((out, ChunkedProgress { consumed, done: false }))
    }

    #[test]
    fn decodes_simple_body_and_stops_at_end() {
        let input = b"5\r\nhello\r\n6;a=b;c=\"d\\\"e\"\r\n world\r\n0\r\nX-T: 1\r\n\r\nGET / HTTP/1.1\r\n";
        for f in [decode_all, decode_split] {
            let (data, p) = f(input).unwrap();
            assert_eq!(data, b"hello world");
            assert!(p.done);
            assert_eq!(&input[p.consumed..], b"GET / HTTP/1.1\r\n");
        }
    }

    #[test]
    fn uppercase_hex_and_leading_zeros() {
        let (data, p) = decode_all(b"000A\r\n0123456789\r\n00\r\n\r\n").unwrap();
        assert_eq!(data.len(), 10);
        assert!(p.done);
    }

    #[test]
    fn rejects_ambiguous_chunks() {
        let bad: &[&[u8]] = &[
            b"\r\n",                        // empty size
            b"-5\r\nhello\r\n0\r\n\r\n",    // sign
            b"+5\r\n",                      // sign
            b"0x5\r\nhello\r\n0\r\n\r\n",   // prefix
            b" 5\r\n",                      // leading whitespace
            b"5 \r\nhello\r\n0\r\n\r\n",    // trailing whitespace without extension
            b"5\nhello\r\n0\r\n\r\n",       // bare LF after size
            b"5\rhello\r\n0\r\n\r\n",       // bare CR after size
            b"5\r\nhello\n0\r\n\r\n",       // bare LF after data
            b"5\r\nhelloXX0\r\n\r\n",       // data longer than size
            b"5\r\nhello\r\n0\r\n\n",       // bare LF at end
            b"5;\r\nhello\r\n",             // empty extension name
            b"5;a=\"x\r\n",                 // unterminated quoted string
            b"5;a\x01\r\n",                 // control char in extension
            b"10000000000000000\r\n",       // 17 hex digits: overflow
            b"fffffffffffffffff\r\n",       // overflow
            b"0\r\nBad Trailer: x\r\n\r\n", // space in trailer name
            b"0\r\nX: a\nY: b\r\n\r\n",     // bare LF in trailers
        ];
        for input in bad {
            assert!(decode_all(input).is_err(), "accepted {:?}", String::from_utf8_lossy(input));
            assert!(decode_split(input).is_err(), "split accepted {:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn trailer_lines_are_reported_whole_however_split() {
        let input = b"2;x\r\nok\r\n0\r\nA: 1\r\nBee:\t two \r\n\r\nNEXT";
        for step in 1..=input.len() {
            let mut d = ChunkedDecoder::new();
            let (mut line, mut lines, mut data) = (Vec::new(), Vec::new(), Vec::new());
            let mut consumed = 0;
            for piece in input.chunks(step) {
                let p = d
                    .decode_events(piece, |e| match e {
                        ChunkedEvent::Data(b) => data.extend_from_slice(b),
                        ChunkedEvent::TrailerPart(b) => line.extend_from_slice(b),
                        ChunkedEvent::TrailerEnd => lines.push(std::mem::take(&mut line)),
                    })
                    .unwrap();
                consumed += p.consumed;
                if p.done {
                    break;
                }
            }
            assert_eq!(data, b"ok", "step {step}");
            assert_eq!(lines, [&b"A: 1"[..], b"Bee:\t two "], "step {step}");
            assert!(line.is_empty());
            assert_eq!(&input[consumed..], b"NEXT", "step {step}");
        }
    }

    #[test]
    fn max_u64_size_is_accepted_as_a_size() {
        let mut d = ChunkedDecoder::new();
        let p = d.decode(b"ffffffffffffffff\r\nabc", |_| {}).unwrap();
        assert!(!p.done);
        assert_eq!(p.consumed, 21);
    }

    #[test]
    fn extension_line_is_bounded() {
        let mut input = b"5;a=".to_vec();
        input.extend(std::iter::repeat_n(b'x', MAX_CHUNK_LINE));
        assert_eq!(decode_all(&input).unwrap_err(), ParseError::ChunkTooLarge);
    }

    #[test]
    fn trailers_are_bounded() {
        let mut input = b"0\r\n".to_vec();
        for _ in 0..1000 {
            input.extend_from_slice(b"X-Long-Trailer: aaaaaaaaaaaaaaaa\r\n");
        }
        assert_eq!(decode_all(&input).unwrap_err(), ParseError::ChunkTooLarge);
    }
}
