//! HTTP/1.1 for the server: the connection (plain TCP or rustls), request
//! heads read with limits and time-outs, and responses written with a
//! `Content-Length` or, for watches, `Transfer-Encoding: chunked`.
//!
//! Everything read here comes from a peer: nothing panics on it; a bad
//! request is an error the caller answers with 400 (or 431/505) and closes.

use crate::clock;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

/// The largest request head accepted (Go's default is 1 MiB; kube sends < 2 KiB).
pub(crate) const MAX_HEAD_BYTES: usize = 64 * 1024;
/// The most headers one request may carry.
const MAX_HEADERS: usize = 100;
/// The largest request body read (and discarded: the served verbs take none).
pub(crate) const MAX_BODY_BYTES: u64 = 1024 * 1024;
/// How long a started request head may take to arrive.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection, plain or TLS.
pub(crate) enum Transport {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
}

impl Transport {
    pub(crate) fn tcp(&self) -> &TcpStream {
        match self {
            Transport::Plain(stream) => stream,
            Transport::Tls(stream) => &stream.sock,
        }
    }

    /// Closes the connection at once, both ways (no TLS close_notify: an abrupt end).
    pub(crate) fn cut(&self) {
        let _ = self.tcp().shutdown(Shutdown::Both);
    }

    /// Whether the peer has closed (or broken) the connection, without waiting.
    pub(crate) fn peer_closed(&mut self) -> bool {
        if self.tcp().set_nonblocking(true).is_err() {
            return true;
        }
        let mut scratch = [0u8; 512];
        let result = self.read(&mut scratch);
        if self.tcp().set_nonblocking(false).is_err() {
            return true;
        }
        match result {
            Ok(0) => true,
            Ok(_) => false,
            Err(error) => !is_timeout(&error) && error.kind() != io::ErrorKind::Interrupted,
        }
    }
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(stream) => stream.read(buf),
            Transport::Tls(stream) => stream.read(buf),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(stream) => stream.write(buf),
            Transport::Tls(stream) => stream.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(stream) => stream.flush(),
            Transport::Tls(stream) => stream.flush(),
        }
    }
}

/// A read that ended for lack of data within the socket's read time-out.
pub(crate) fn is_timeout(error: &io::Error) -> bool {
    matches!(error.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

/// A parsed request line and headers.
#[derive(Debug, Clone)]
pub(crate) struct RequestHead {
    pub method: String,
    /// The origin-form target: path and query, as sent.
    pub target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    pub headers: Vec<(String, String)>,
}

impl RequestHead {
    /// The first header of that name (case-insensitive).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    fn connection_has(&self, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(key, _)| key.eq_ignore_ascii_case("connection"))
            .flat_map(|(_, value)| value.split(','))
            .any(|option| option.trim().eq_ignore_ascii_case(token))
    }

    /// Whether the connection ends after this exchange.
    pub(crate) fn wants_close(&self) -> bool {
        if self.minor_version == 0 {
            !self.connection_has("keep-alive")
        } else {
            self.connection_has("close")
        }
    }

    /// The path (before `?`) and the raw query (after it, "" if none).
    pub(crate) fn path_and_query(&self) -> (&str, &str) {
        self.target.split_once('?').unwrap_or((self.target.as_str(), ""))
    }
}

/// A request this server refuses to read further.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BadRequest {
    /// 431: the head exceeds `MAX_HEAD_BYTES` or `MAX_HEADERS`.
    HeadTooLarge,
    /// 505: not HTTP/1.0 or HTTP/1.1.
    UnsupportedVersion,
    /// 413: a body larger than `MAX_BODY_BYTES`.
    BodyTooLarge,
    /// 400, with what was wrong.
    Malformed(String),
}

impl BadRequest {
    pub(crate) fn code(&self) -> u16 {
        match self {
            BadRequest::HeadTooLarge => 431,
            BadRequest::UnsupportedVersion => 505,
            BadRequest::BodyTooLarge => 413,
            BadRequest::Malformed(_) => 400,
        }
    }
}

/// Why no request was read.
#[derive(Debug)]
pub(crate) enum NoRequest {
    /// The peer closed, the connection broke, it sat idle too long, or the
    /// server is stopping: just close.
    Gone,
    /// A bad request: answer it, then close.
    Bad(BadRequest),
}

/// Reads bytes of requests from a connection, keeping what arrives beyond
/// one request (a pipelined next one) for the next call.
pub(crate) struct RequestReader {
    buffer: Vec<u8>,
}

impl RequestReader {
    pub(crate) fn new() -> RequestReader {
        RequestReader { buffer: Vec::new() }
    }

    /// Reads one request head and discards its body. The socket's read
    /// time-out is a tick: after each, `keep_waiting` says whether to go on,
    /// and `idle_limit` bounds the wait for a request to start.
    pub(crate) fn read_request(
        &mut self,
        conn: &mut Transport,
        keep_waiting: &dyn Fn() -> bool,
        idle_limit: Duration,
    ) -> Result<RequestHead, NoRequest> {
        let waiting_since = Instant::now();
        let mut head_started: Option<Instant> = (!self.buffer.is_empty()).then(Instant::now);
        let head = loop {
            if let Some(head_end) = find_head_end(&self.buffer) {
                let head = parse_head(&self.buffer[..head_end.text_len]).map_err(NoRequest::Bad)?;
                self.buffer.drain(..head_end.total_len);
                break head;
            }
            if self.buffer.len() > MAX_HEAD_BYTES {
                return Err(NoRequest::Bad(BadRequest::HeadTooLarge));
            }
            match self.fill(conn) {
                Ok(0) => return Err(NoRequest::Gone),
                Ok(_) => {
                    head_started.get_or_insert_with(Instant::now);
                }
                Err(error) if is_timeout(&error) || error.kind() == io::ErrorKind::Interrupted => {
                    let too_slow = match head_started {
                        Some(started) => started.elapsed() > HEAD_TIMEOUT,
                        None => waiting_since.elapsed() > idle_limit,
                    };
                    if too_slow || !keep_waiting() {
                        return Err(NoRequest::Gone);
                    }
                }
                Err(_) => return Err(NoRequest::Gone),
            }
        };
        self.discard_body(conn, &head, keep_waiting)?;
        Ok(head)
    }

    fn fill(&mut self, conn: &mut Transport) -> io::Result<usize> {
        let mut chunk = [0u8; 8192];
        let read = conn.read(&mut chunk)?;
        self.buffer.extend_from_slice(&chunk[..read]);
        Ok(read)
    }

    fn discard_body(
        &mut self,
        conn: &mut Transport,
        head: &RequestHead,
        keep_waiting: &dyn Fn() -> bool,
    ) -> Result<(), NoRequest> {
        if head.header("transfer-encoding").is_some() {
            // No served verb takes a body; a chunked one is not worth decoding.
            return Err(NoRequest::Bad(BadRequest::Malformed(
                "request bodies with Transfer-Encoding are not supported".into(),
            )));
        }
        let lengths: Vec<&str> = head
            .headers
            .iter()
            .filter(|(key, _)| key.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.as_str())
            .collect();
        let length = match lengths.as_slice() {
            [] => 0,
            [one] => one
                .trim()
                .parse::<u64>()
                .map_err(|_| NoRequest::Bad(BadRequest::Malformed(format!("invalid Content-Length {one:?}"))))?,
            _ => return Err(NoRequest::Bad(BadRequest::Malformed("more than one Content-Length".into()))),
        };
        if length > MAX_BODY_BYTES {
            return Err(NoRequest::Bad(BadRequest::BodyTooLarge));
        }
        let started = Instant::now();
        let mut left = length as usize;
        loop {
            let take = left.min(self.buffer.len());
            self.buffer.drain(..take);
            left -= take;
            if left == 0 {
                return Ok(());
            }
            match self.fill(conn) {
                Ok(0) => return Err(NoRequest::Gone),
                Ok(_) => {}
                Err(error) if is_timeout(&error) => {
                    if started.elapsed() > HEAD_TIMEOUT || !keep_waiting() {
                        return Err(NoRequest::Gone);
                    }
                }
                Err(_) => return Err(NoRequest::Gone),
            }
        }
    }
}

struct HeadEnd {
    /// Bytes of the head without the blank line.
    text_len: usize,
    /// Bytes up to and including the blank line.
    total_len: usize,
}

/// The end of the head: the first empty line (`\r\n\r\n`, or bare `\n\n`).
fn find_head_end(buffer: &[u8]) -> Option<HeadEnd> {
    let mut line_start = 0;
    for (index, byte) in buffer.iter().enumerate() {
        if *byte != b'\n' {
            continue;
        }
        let line = &buffer[line_start..index];
        if line.is_empty() || line == b"\r" {
            if line_start == 0 {
                // Leading blank lines before a request line are skipped (RFC 9112 §2.2)
                // by treating them as part of nothing: keep scanning.
                line_start = index + 1;
                continue;
            }
            return Some(HeadEnd { text_len: line_start, total_len: index + 1 });
        }
        line_start = index + 1;
    }
    None
}

fn parse_head(text: &[u8]) -> Result<RequestHead, BadRequest> {
    let text = std::str::from_utf8(text).map_err(|_| BadRequest::Malformed("request head is not UTF-8".into()))?;
    let mut lines = text.split('\n').map(|line| line.strip_suffix('\r').unwrap_or(line)).skip_while(|l| l.is_empty());
    let request_line = lines.next().ok_or_else(|| BadRequest::Malformed("empty request".into()))?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(BadRequest::Malformed(format!("malformed request line {request_line:?}")));
    };
    if method.is_empty() || !method.bytes().all(is_token_byte) {
        return Err(BadRequest::Malformed(format!("malformed method {method:?}")));
    }
    let minor_version = match version {
        "HTTP/1.1" => 1,
        "HTTP/1.0" => 0,
        other if other.starts_with("HTTP/") => return Err(BadRequest::UnsupportedVersion),
        _ => return Err(BadRequest::Malformed(format!("malformed HTTP version {version:?}"))),
    };
    let target = origin_form(target)?;
    let mut headers = Vec::new();
    // The head text ends with the last header's line break: skip the empty tail.
    for line in lines.filter(|line| !line.is_empty()) {
        if headers.len() >= MAX_HEADERS {
            return Err(BadRequest::HeadTooLarge);
        }
        let (name, value) =
            line.split_once(':').ok_or_else(|| BadRequest::Malformed(format!("malformed header line {line:?}")))?;
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(BadRequest::Malformed(format!("malformed header name {name:?}")));
        }
        if value.bytes().any(|b| b == 0 || b == b'\r') {
            return Err(BadRequest::Malformed(format!("malformed value of header {name}")));
        }
        headers.push((name.to_string(), value.trim().to_string()));
    }
    Ok(RequestHead { method: method.to_string(), target, minor_version, headers })
}

/// `/path?query`, also from the absolute form `http://host/path?query`.
fn origin_form(target: &str) -> Result<String, BadRequest> {
    if target.starts_with('/') {
        return Ok(target.to_string());
    }
    for scheme in ["http://", "https://"] {
        if let Some(rest) = target.strip_prefix(scheme) {
            let path_start = rest.find(['/', '?']).unwrap_or(rest.len());
            let path = &rest[path_start..];
            return Ok(if path.starts_with('/') { path.to_string() } else { format!("/{path}") });
        }
    }
    Err(BadRequest::Malformed(format!("malformed request target {target:?}")))
}

fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// The status line and the headers every response carries.
fn head_lines(code: u16, content_type: &str) -> String {
    format!(
        "HTTP/1.1 {code} {}\r\nAudit-Id: {}\r\nCache-Control: no-cache, private\r\nContent-Type: {content_type}\r\nDate: {}\r\n",
        crate::status::reason_phrase(code),
        clock::fresh_uid(),
        clock::http_date_now()
    )
}

/// A whole response with a `Content-Length` body, in one write.
pub(crate) fn write_response(conn: &mut Transport, code: u16, body: &[u8], close: bool) -> io::Result<()> {
    let mut message = head_lines(code, "application/json");
    message.push_str(&format!("Content-Length: {}\r\n", body.len()));
    if close {
        message.push_str("Connection: close\r\n");
    }
    message.push_str("\r\n");
    let mut bytes = message.into_bytes();
    bytes.extend_from_slice(body);
    conn.write_all(&bytes)?;
    conn.flush()
}

/// The answer to a request that is not valid HTTP: as Go's `net/http`
/// gives it before any apiserver code runs (plain text, then close).
pub(crate) fn write_protocol_error(conn: &mut Transport, bad: &BadRequest) -> io::Result<()> {
    let code = bad.code();
    let reason = crate::status::reason_phrase(code);
    let body = match bad {
        BadRequest::Malformed(why) => format!("{code} {reason}: {why}"),
        _ => format!("{code} {reason}"),
    };
    let message = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n{body}"
    );
    conn.write_all(message.as_bytes())?;
    conn.flush()
}

/// How a streamed (watch) body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// HTTP/1.1: one chunk per event, then the terminating chunk.
    Chunked,
    /// HTTP/1.0: raw bytes, ended by closing the connection.
    UntilClose,
}

/// The head of a streamed response (sent, and flushed, before any event).
pub(crate) fn write_stream_head(conn: &mut Transport, framing: Framing) -> io::Result<()> {
    let mut message = head_lines(200, "application/json");
    match framing {
        Framing::Chunked => message.push_str("Transfer-Encoding: chunked\r\n"),
        Framing::UntilClose => message.push_str("Connection: close\r\n"),
    }
    message.push_str("\r\n");
    conn.write_all(message.as_bytes())?;
    conn.flush()
}

/// One piece of a streamed body: a chunk `<hex size>\r\n<data>\r\n`, in one write.
pub(crate) fn write_stream_piece(conn: &mut Transport, framing: Framing, data: &[u8]) -> io::Result<()> {
    match framing {
        Framing::Chunked => {
            let mut chunk = format!("{:x}\r\n", data.len()).into_bytes();
            chunk.extend_from_slice(data);
            chunk.extend_from_slice(b"\r\n");
            conn.write_all(&chunk)?;
        }
        Framing::UntilClose => conn.write_all(data)?,
    }
    conn.flush()
}

/// Ends a streamed body cleanly: the terminating chunk `0\r\n\r\n`.
pub(crate) fn write_stream_end(conn: &mut Transport, framing: Framing) -> io::Result<()> {
    if framing == Framing::Chunked {
        conn.write_all(b"0\r\n\r\n")?;
        conn.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RequestHead, BadRequest> {
        let end = find_head_end(text.as_bytes()).ok_or_else(|| BadRequest::Malformed("incomplete".into()))?;
        parse_head(&text.as_bytes()[..end.text_len])
    }

    #[test]
    fn parses_kube_style_requests() {
        let head = parse(
            "GET /api/v1/services?watch=true&resourceVersion=5 HTTP/1.1\r\nHost: 127.0.0.1\r\n\
             Authorization: Bearer abc\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
        assert_eq!(head.method, "GET");
        assert_eq!(head.path_and_query(), ("/api/v1/services", "watch=true&resourceVersion=5"));
        assert_eq!(head.header("authorization"), Some("Bearer abc"));
        assert!(head.wants_close());
        let old = parse("GET /version HTTP/1.0\n\n").unwrap();
        assert!(old.wants_close());
        let proxied = parse("GET http://host:8001/api?x HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(proxied.target, "/api?x");
    }

    #[test]
    fn refuses_malformed_heads() {
        for bad in [
            "GET /a\r\n\r\n",
            "GET /a HTTP/1.1 extra\r\n\r\n",
            "G(T /a HTTP/1.1\r\n\r\n",
            "GET a HTTP/1.1\r\n\r\n",
            "GET /a HTTP/1.1\r\nNo colon\r\n\r\n",
            "GET /a HTTP/1.1\r\nBad Name: x\r\n\r\n",
            "GET /a XTTP/1.1\r\n\r\n",
        ] {
            assert!(matches!(parse(bad), Err(BadRequest::Malformed(_))), "{bad:?}");
        }
        assert_eq!(parse("PRI * HTTP/2.0\r\n\r\n").unwrap_err(), BadRequest::UnsupportedVersion);
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
        assert_eq!(parse(&format!("GET / HTTP/1.1\r\n{many}\r\n")).unwrap_err(), BadRequest::HeadTooLarge);
        assert!(parse_head(&[0xff, 0xfe]).is_err());
    }
}
