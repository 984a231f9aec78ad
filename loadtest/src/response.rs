//! Sans-IO HTTP/1.1 response reader.
//!
//! The caller owns the bytes: it calls [`ResponseReader::feed`] with everything it has
//! buffered and not yet consumed, drops the `consumed` prefix the reader reports, and
//! reads more from the socket when the reader answers [`Progress::NeedMore`]. At end of
//! stream it calls [`ResponseReader::eof`], which completes a close-delimited body and
//! fails anything else. The head is parsed with `httparse` (it must therefore be
//! contiguous in the fed slice); bodies are framed by Content-Length, chunked transfer
//! coding, or the end of the connection, and their bytes are counted and discarded.
//! Interim 1xx responses (100 Continue, 103 Early Hints) are skipped.

use std::fmt;

/// Most headers a response head may carry.
pub const MAX_HEADERS: usize = 64;

/// A fully read response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// The connection may carry another request after this response.
    pub keep_alive: bool,
    /// Decoded body length in bytes.
    pub body_len: u64,
    /// Bytes of the response on the wire: heads (incl. 1xx), body and chunk framing.
    pub wire_len: u64,
}

/// Result of feeding bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The response is not complete: feed more bytes (or call `eof`).
    NeedMore,
    Complete(Response),
}

/// The response broke HTTP/1.1 framing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseError {
    /// The head does not parse.
    Head(httparse::Error),
    /// The head is larger than the caller can buffer.
    HeadTooLarge,
    /// Content-Length is invalid or given twice with different values.
    BadContentLength,
    /// A chunk-size line or chunk delimiter is malformed.
    BadChunk,
    /// The stream ended before the response was complete.
    Truncated,
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResponseError::Head(e) => write!(f, "malformed response head: {e}"),
            ResponseError::HeadTooLarge => f.write_str("response head too large"),
            ResponseError::BadContentLength => f.write_str("invalid Content-Length"),
            ResponseError::BadChunk => f.write_str("malformed chunked body"),
            ResponseError::Truncated => f.write_str("connection closed mid-response"),
        }
    }
}

impl std::error::Error for ResponseError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Reading hex digits of the chunk size; `digits` seen so far.
    Size { size: u64, digits: u8 },
    /// Skipping optional whitespace / chunk extensions up to CR.
    Ext { size: u64 },
    /// Expecting LF after the size line's CR.
    SizeLf { size: u64 },
    /// Inside chunk data.
    Data { remaining: u64 },
    /// Expecting CR after chunk data.
    DataCr,
    /// Expecting LF after chunk data.
    DataLf,
    /// At the start of a trailer line (after the last chunk).
    TrailerStart,
    /// Inside a trailer field line.
    TrailerLine,
    /// Expecting LF of a trailer field line.
    TrailerLineLf,
    /// Expecting the final LF.
    FinalLf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Length { remaining: u64 },
    Chunked(Chunk),
    UntilClose,
}

/// Incremental reader for one response at a time; reusable (call [`ResponseReader::reset`]).
#[derive(Debug, Clone)]
pub struct ResponseReader {
    state: State,
    head_request: bool,
    max_head: usize,
    /// Whether any byte of the current response has been seen.
    started: bool,
    status: u16,
    keep_alive: bool,
    body_len: u64,
    wire_len: u64,
}

impl ResponseReader {
    /// `max_head`: the largest head the caller can buffer contiguously.
    pub fn new(max_head: usize) -> Self {
        ResponseReader {
            state: State::Head,
            head_request: false,
            max_head,
            started: false,
            status: 0,
            keep_alive: false,
            body_len: 0,
            wire_len: 0,
        }
    }

    /// Prepare for the response to a new request. `head_request`: the request was HEAD,
    /// so the response has no body whatever its headers say.
    pub fn reset(&mut self, head_request: bool) {
        self.state = State::Head;
        self.head_request = head_request;
        self.started = false;
        self.status = 0;
        self.keep_alive = false;
        self.body_len = 0;
        self.wire_len = 0;
    }

    /// Whether any byte of the current response has been fed.
    pub fn started(&self) -> bool {
        self.started
    }

    /// Feed the unconsumed bytes. Returns how many bytes were consumed and the progress.
    /// After `Complete`, bytes past `consumed` belong to whatever follows the response.
    pub fn feed(&mut self, buf: &[u8]) -> Result<(usize, Progress), ResponseError> {
        if !buf.is_empty() {
            self.started = true;
        }
        let mut pos = 0;
        loop {
            match self.state {
                State::Head => {
                    let rest = &buf[pos..];
                    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                    let mut resp = httparse::Response::new(&mut headers);
                    match resp.parse(rest) {
                        Ok(httparse::Status::Partial) => {
                            if rest.len() >= self.max_head {
                                return Err(ResponseError::HeadTooLarge);
                            }
                            return Ok((pos, Progress::NeedMore));
                        }
                        Err(e) => return Err(ResponseError::Head(e)),
                        Ok(httparse::Status::Complete(n)) => {
                            pos += n;
                            self.wire_len += n as u64;
                            let status = resp.code.unwrap_or(0);
                            let version = resp.version.unwrap_or(1);
                            if (100..200).contains(&status) && status != 101 {
                                // Interim response: the real one follows.
                                continue;
                            }
                            let framing = Framing::of(version, resp.headers)?;
                            self.status = status;
                            self.keep_alive = framing.keep_alive;
                            let no_body = self.head_request || status == 204 || status == 304 || status == 101;
                            if status == 101 {
                                self.keep_alive = false;
                            }
                            if no_body {
                                return Ok((pos, Progress::Complete(self.response())));
                            }
                            if framing.chunked {
                                self.state = State::Chunked(Chunk::Size { size: 0, digits: 0 });
                            } else if let Some(len) = framing.content_length {
                                if len == 0 {
                                    return Ok((pos, Progress::Complete(self.response())));
                                }
                                self.state = State::Length { remaining: len };
                            } else {
                                // Close-delimited: the connection cannot be reused.
                                self.keep_alive = false;
                                self.state = State::UntilClose;
                            }
                        }
                    }
                }
                State::Length { remaining } => {
                    let avail = (buf.len() - pos) as u64;
                    let take = avail.min(remaining);
                    pos += take as usize;
                    self.body_len += take;
                    self.wire_len += take;
                    if take == remaining {
                        return Ok((pos, Progress::Complete(self.response())));
                    }
                    self.state = State::Length { remaining: remaining - take };
                    return Ok((pos, Progress::NeedMore));
                }
                State::UntilClose => {
                    let n = (buf.len() - pos) as u64;
                    self.body_len += n;
                    self.wire_len += n;
                    return Ok((buf.len(), Progress::NeedMore));
                }
                State::Chunked(chunk) => {
                    let start = pos;
                    let (next, done) = step_chunked(chunk, buf, &mut pos, &mut self.body_len)?;
                    self.wire_len += (pos - start) as u64;
                    self.state = State::Chunked(next);
                    if done {
                        return Ok((pos, Progress::Complete(self.response())));
                    }
                    return Ok((pos, Progress::NeedMore));
                }
            }
        }
    }

    /// The peer closed the stream. Completes a close-delimited body; anything else
    /// still in progress is an error.
    pub fn eof(&mut self) -> Result<Response, ResponseError> {
        match self.state {
            State::UntilClose => Ok(self.response()),
            _ => Err(ResponseError::Truncated),
        }
    }

    fn response(&self) -> Response {
        Response { status: self.status, keep_alive: self.keep_alive, body_len: self.body_len, wire_len: self.wire_len }
    }
}

struct Framing {
    content_length: Option<u64>,
    chunked: bool,
    keep_alive: bool,
}

impl Framing {
    fn of(version: u8, headers: &[httparse::Header<'_>]) -> Result<Framing, ResponseError> {
        let mut content_length: Option<u64> = None;
        let mut chunked = false;
        let mut has_te = false;
        let mut conn_close = false;
        let mut conn_keep_alive = false;
        for h in headers {
            if h.name.eq_ignore_ascii_case("content-length") {
                // A list "5, 5" is allowed when all members agree.
                for part in h.value.split(|&b| b == b',') {
                    let v = parse_decimal(trim(part)).ok_or(ResponseError::BadContentLength)?;
                    match content_length {
                        Some(prev) if prev != v => return Err(ResponseError::BadContentLength),
                        _ => content_length = Some(v),
                    }
                }
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                has_te = true;
                // Chunked applies only when it is the final coding.
                let last = h.value.rsplit(|&b| b == b',').next().unwrap_or(&[]);
                chunked = trim(last).eq_ignore_ascii_case(b"chunked");
            } else if h.name.eq_ignore_ascii_case("connection") {
                for part in h.value.split(|&b| b == b',') {
                    let t = trim(part);
                    if t.eq_ignore_ascii_case(b"close") {
                        conn_close = true;
                    } else if t.eq_ignore_ascii_case(b"keep-alive") {
                        conn_keep_alive = true;
                    }
                }
            }
        }
        let mut keep_alive = if version == 0 { conn_keep_alive && !conn_close } else { !conn_close };
        if has_te {
            // Transfer-Encoding overrides Content-Length; a non-chunked final coding
            // means the body runs until close.
            content_length = None;
            if !chunked {
                keep_alive = false;
            }
        }
        Ok(Framing { content_length, chunked, keep_alive })
    }
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

fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(b - b'0');
    }
    Some(v)
}

fn hex_val(b: u8) -> Option<u64> {
    match b {
        b'0'..=b'9' => Some(u64::from(b - b'0')),
        b'a'..=b'f' => Some(u64::from(b - b'a' + 10)),
        b'A'..=b'F' => Some(u64::from(b - b'A' + 10)),
        _ => None,
    }
}

/// Advance the chunked decoder over `buf[*pos..]`. Returns the new state and whether the
/// body (including trailers) is complete.
fn step_chunked(
    mut st: Chunk,
    buf: &[u8],
    pos: &mut usize,
    body_len: &mut u64,
) -> Result<(Chunk, bool), ResponseError> {
    while *pos < buf.len() {
        let b = buf[*pos];
        st = match st {
            Chunk::Data { remaining } => {
                let avail = (buf.len() - *pos) as u64;
                let take = avail.min(remaining);
                *pos += take as usize;
                *body_len += take;
                if take == remaining {
                    Chunk::DataCr
                } else {
                    Chunk::Data { remaining: remaining - take }
                }
            }
            Chunk::Size { size, digits } => {
                *pos += 1;
                if let Some(v) = hex_val(b) {
                    if digits >= 16 {
                        return Err(ResponseError::BadChunk);
                    }
                    Chunk::Size { size: (size << 4) | v, digits: digits + 1 }
                } else if digits == 0 {
                    return Err(ResponseError::BadChunk);
                } else if b == b'\r' {
                    Chunk::SizeLf { size }
                } else if b == b';' || b == b' ' || b == b'\t' {
                    Chunk::Ext { size }
                } else {
                    return Err(ResponseError::BadChunk);
                }
            }
            Chunk::Ext { size } => {
                *pos += 1;
                match b {
                    b'\r' => Chunk::SizeLf { size },
                    b'\n' => return Err(ResponseError::BadChunk),
                    _ => Chunk::Ext { size },
                }
            }
            Chunk::SizeLf { size } => {
                *pos += 1;
                if b != b'\n' {
                    return Err(ResponseError::BadChunk);
                }
                if size == 0 {
                    Chunk::TrailerStart
                } else {
                    Chunk::Data { remaining: size }
                }
            }
            Chunk::DataCr => {
                *pos += 1;
                if b != b'\r' {
                    return Err(ResponseError::BadChunk);
                }
                Chunk::DataLf
            }
            Chunk::DataLf => {
                *pos += 1;
                if b != b'\n' {
                    return Err(ResponseError::BadChunk);
                }
                Chunk::Size { size: 0, digits: 0 }
            }
            Chunk::TrailerStart => {
                *pos += 1;
                match b {
                    b'\r' => Chunk::FinalLf,
                    b'\n' => return Err(ResponseError::BadChunk),
                    _ => Chunk::TrailerLine,
                }
            }
            Chunk::TrailerLine => {
                *pos += 1;
                match b {
                    b'\r' => Chunk::TrailerLineLf,
                    b'\n' => return Err(ResponseError::BadChunk),
                    _ => Chunk::TrailerLine,
                }
            }
            Chunk::TrailerLineLf => {
                *pos += 1;
                if b != b'\n' {
                    return Err(ResponseError::BadChunk);
                }
                Chunk::TrailerStart
            }
            Chunk::FinalLf => {
                *pos += 1;
                if b != b'\n' {
                    return Err(ResponseError::BadChunk);
                }
                return Ok((Chunk::FinalLf, true));
            }
        };
    }
    Ok((st, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed `wire` in pieces split at `splits`, the way a socket driver would: keep
    /// unconsumed bytes, append new ones. Returns the response and the leftover bytes.
    fn drive(wire: &[u8], splits: &[usize], head: bool) -> Result<(Response, Vec<u8>), ResponseError> {
        let mut r = ResponseReader::new(64 * 1024);
        r.reset(head);
        let mut pending: Vec<u8> = Vec::new();
        let mut cuts: Vec<usize> = splits.to_vec();
        cuts.push(wire.len());
        let mut prev = 0;
        for &cut in &cuts {
            pending.extend_from_slice(&wire[prev..cut]);
            prev = cut;
            let (n, p) = r.feed(&pending)?;
            pending.drain(..n);
            if let Progress::Complete(resp) = p {
                pending.extend_from_slice(&wire[prev..]);
                return Ok((resp, pending));
            }
        }
        r.eof().map(|resp| (resp, pending))
    }

    fn every_split(wire: &[u8], head: bool) -> Response {
        let (whole, rest) = drive(wire, &[], head).expect("whole");
        assert!(rest.is_empty(), "leftover {rest:?}");
        for i in 0..=wire.len() {
            let (r, rest) = drive(wire, &[i], head).unwrap_or_else(|e| panic!("split at {i}: {e}"));
            assert_eq!(r, whole, "split at {i}");
            assert!(rest.is_empty());
        }
        // And byte by byte.
        let all: Vec<usize> = (1..wire.len()).collect();
        let (r, _) = drive(wire, &all, head).expect("bytewise");
        assert_eq!(r, whole);
        whole
    }

    #[test]
    fn content_length() {
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: x\r\n\r\nhello";
        let r = every_split(wire, false);
        assert_eq!(r.status, 200);
        assert_eq!(r.body_len, 5);
        assert_eq!(r.wire_len, wire.len() as u64);
        assert!(r.keep_alive);
    }

    #[test]
    fn zero_length_and_no_body_statuses() {
        let r = every_split(b"HTTP/1.1 204 No Content\r\n\r\n", false);
        assert_eq!((r.status, r.body_len, r.keep_alive), (204, 0, true));
        let r = every_split(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false);
        assert_eq!((r.status, r.body_len), (200, 0));
        // HEAD: Content-Length describes the would-be body.
        let r = every_split(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", true);
        assert_eq!((r.status, r.body_len, r.keep_alive), (200, 0, true));
    }

    #[test]
    fn keep_alive_rules() {
        let r = every_split(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx", false);
        assert!(!r.keep_alive);
        let r = every_split(b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", false);
        assert!(!r.keep_alive);
        let r = every_split(b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n\r\nx", false);
        assert!(r.keep_alive);
    }

    #[test]
    fn chunked_split_at_every_byte() {
        let wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
            5\r\nhello\r\n1A;ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: t\r\n\r\n";
        let r = every_split(wire, false);
        assert_eq!(r.status, 200);
        assert_eq!(r.body_len, 5 + 26);
        assert_eq!(r.wire_len, wire.len() as u64);
        assert!(r.keep_alive);
        let r = every_split(b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n0\r\n\r\n", false);
        assert_eq!(r.body_len, 0);
    }

    #[test]
    fn chunked_leaves_next_response_bytes() {
        let wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nHTTP/1.1";
        let (r, rest) = drive(wire, &[], false).unwrap();
        assert_eq!(r.body_len, 3);
        assert_eq!(rest, b"HTTP/1.1");
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nabHTTP";
        let (r, rest) = drive(wire, &[], false).unwrap();
        assert_eq!(r.body_len, 2);
        assert_eq!(rest, b"HTTP");
    }

    #[test]
    fn close_delimited() {
        let wire = b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\nbody until close";
        let r = every_split(wire, false);
        assert_eq!(r.body_len, 16);
        assert!(!r.keep_alive);
        // Transfer-Encoding whose final coding is not chunked: also until close.
        let r = every_split(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 2\r\n\r\nabc", false);
        assert_eq!(r.body_len, 3);
    }

    #[test]
    fn interim_responses_are_skipped() {
        let wire = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
        let r = every_split(wire, false);
        assert_eq!(r.status, 201);
        assert_eq!(r.body_len, 2);
        assert_eq!(r.wire_len, wire.len() as u64);
    }

    #[test]
    fn garbage_and_broken_framing() {
        assert!(matches!(drive(b"garbage\r\n\r\n", &[], false), Err(ResponseError::Head(_))));
        assert!(matches!(drive(b"\x00\x01\x02\x03", &[], false), Err(ResponseError::Head(_))));
        assert!(matches!(
            drive(b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n", &[], false),
            Err(ResponseError::BadContentLength)
        ));
        assert!(matches!(
            drive(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx", &[], false),
            Err(ResponseError::BadContentLength)
        ));
        let r = drive(b"HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\nabc", &[], false).unwrap();
        assert_eq!(r.0.body_len, 3);
        for bad in [
            &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n11111111111111111\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\x00",
        ] {
            assert_eq!(drive(bad, &[], false), Err(ResponseError::BadChunk), "{bad:?}");
        }
        // Truncated bodies.
        assert_eq!(
            drive(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", &[], false),
            Err(ResponseError::Truncated)
        );
        assert_eq!(
            drive(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab", &[], false),
            Err(ResponseError::Truncated)
        );
        assert_eq!(drive(b"HTTP/1.1 200 O", &[], false), Err(ResponseError::Truncated));
    }

    #[test]
    fn head_too_large() {
        let mut r = ResponseReader::new(32);
        r.reset(false);
        let wire = b"HTTP/1.1 200 OK\r\nX-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
        assert_eq!(r.feed(wire), Err(ResponseError::HeadTooLarge));
    }

    #[test]
    fn reader_is_reusable() {
        let mut r = ResponseReader::new(1024);
        for _ in 0..3 {
            r.reset(false);
            assert!(!r.started());
            let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx";
            let (n, p) = r.feed(wire).unwrap();
            assert_eq!(n, wire.len());
            assert!(matches!(p, Progress::Complete(Response { status: 200, .. })));
        }
    }
}
