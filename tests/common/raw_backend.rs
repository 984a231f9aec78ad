//! A raw TCP backend for conformance tests: it records every byte it receives
//! on each connection and frames requests with its own strict logic (httparse
//! for heads; Content-Length and chunked decoding written here, independent of
//! corelink's codec), so a smuggled request shows up as an extra request and
//! anything ambiguous shows up as an anomaly.
//!
//! Blocking, thread per connection, 127.0.0.1 only, every read bounded by a
//! timeout. Each framed request is answered by a responder: by default a fixed
//! `200 ok`; tests can script raw responses (segments, pauses, closes).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request as this backend framed it.
#[derive(Debug, Clone)]
pub struct Request {
    /// Connection id (0-based, in accept order).
    pub conn: usize,
    pub method: String,
    pub target: String,
    /// HTTP minor version.
    pub minor: u8,
    pub headers: Vec<(String, Vec<u8>)>,
    /// The payload (de-chunked when chunked).
    pub body: Vec<u8>,
    /// The exact bytes of this request on the wire.
    pub raw: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_slice())
    }
}

/// What the backend saw, in arrival order.
#[derive(Debug, Clone)]
pub enum Event {
    Request(Request),
    /// Bytes this backend could not frame strictly (the connection is then
    /// closed by the backend).
    Anomaly {
        conn: usize,
        what: String,
        bytes: Vec<u8>,
    },
    /// The peer closed the connection (or it timed out); `leftover` holds
    /// received bytes that never formed a complete request.
    Closed {
        conn: usize,
        leftover: Vec<u8>,
    },
}

/// One step of a scripted answer.
#[derive(Debug, Clone)]
pub enum Action {
    Send(Vec<u8>),
    Sleep(Duration),
    /// Close the connection (no more requests are read from it).
    Close,
}

pub type Responder = Arc<dyn Fn(&Request) -> Vec<Action> + Send + Sync>;

/// The fixed answer: `200` with body `ok` (no body for HEAD), preceded by
/// `100 Continue` when the request expected it.
pub fn ok_response(req: &Request) -> Vec<Action> {
    let mut actions = Vec::new();
    if req.header("expect").is_some_and(|v| v.eq_ignore_ascii_case(b"100-continue")) {
        actions.push(Action::Send(b"HTTP/1.1 100 Continue\r\n\r\n".to_vec()));
    }
    actions.extend(ok_final(req));
    actions
}

fn ok_final(req: &Request) -> Vec<Action> {
    if req.method == "HEAD" {
        vec![Action::Send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n".to_vec())]
    } else {
        vec![Action::Send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec())]
    }
}

#[derive(Default)]
struct Shared {
    events: Mutex<Vec<Event>>,
    connections: AtomicUsize,
    /// Raw bytes received per connection id.
    received: Mutex<Vec<Vec<u8>>>,
}

pub struct RawBackend {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
}

/// How long a connection may stay silent before the backend gives up on it.
const IDLE: Duration = Duration::from_secs(20);
/// Bound on the bytes one connection may buffer without framing a request.
const MAX_PENDING: usize = 1 << 20;

impl RawBackend {
    /// Answers every request with [`ok_response`].
    pub fn start() -> RawBackend {
        Self::start_with(Arc::new(ok_response))
    }

    pub fn start_with(responder: Responder) -> RawBackend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (sh, st) = (shared.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let id = sh.connections.fetch_add(1, Ordering::SeqCst);
                sh.received.lock().unwrap().push(Vec::new());
                let (sh, responder) = (sh.clone(), responder.clone());
                std::thread::spawn(move || serve(conn, id, &sh, &*responder));
            }
        });
        RawBackend { addr, shared, stop }
    }

    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Number of events so far (a cursor for [`RawBackend::events_since`]).
    pub fn cursor(&self) -> usize {
        self.shared.events.lock().unwrap().len()
    }

    pub fn events_since(&self, cursor: usize) -> Vec<Event> {
        self.shared.events.lock().unwrap()[cursor..].to_vec()
    }

    /// Bytes received on all connections so far.
    pub fn total_received(&self) -> usize {
        self.shared.received.lock().unwrap().iter().map(Vec::len).sum()
    }

    /// Every byte received on connection `conn`.
    pub fn received(&self, conn: usize) -> Vec<u8> {
        self.shared.received.lock().unwrap()[conn].clone()
    }

    /// Waits until connection `conn` is seen closed, up to `limit`.
    pub fn wait_closed(&self, conn: usize, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let closed = self
                .shared
                .events
                .lock()
                .unwrap()
                .iter()
                .any(|e| matches!(e, Event::Closed { conn: c, .. } if *c == conn));
            if closed {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for RawBackend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(mut conn: TcpStream, id: usize, shared: &Shared, responder: &(dyn Fn(&Request) -> Vec<Action> + Sync)) {
    let _ = conn.set_read_timeout(Some(IDLE));
    let _ = conn.set_write_timeout(Some(IDLE));
    let _ = conn.set_nodelay(true);
    let push = |e: Event| shared.events.lock().unwrap().push(e);
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 65536];
    loop {
        // Frame as many requests as the buffer holds.
        loop {
            match frame_request(&buf) {
                Framed::Incomplete => break,
                Framed::Bad(what) => {
                    push(Event::Anomaly { conn: id, what, bytes: std::mem::take(&mut buf) });
                    return;
                }
                Framed::Request { len, method, target, minor, headers, body } => {
                    let raw: Vec<u8> = buf.drain(..len).collect();
                    let req = Request { conn: id, method, target, minor, headers, body, raw };
                    push(Event::Request(req.clone()));
                    for action in responder(&req) {
                        match action {
                            Action::Send(bytes) => {
                                if conn.write_all(&bytes).is_err() {
                                    push(Event::Closed { conn: id, leftover: buf });
                                    return;
                                }
                            }
                            Action::Sleep(d) => std::thread::sleep(d),
                            Action::Close => {
                                let _ = conn.shutdown(std::net::Shutdown::Both);
                                push(Event::Closed { conn: id, leftover: buf });
                                return;
                            }
                        }
                    }
                }
            }
        }
        if buf.len() > MAX_PENDING {
            push(Event::Anomaly {
                conn: id,
                what: "over 1 MiB without a complete request".into(),
                bytes: std::mem::take(&mut buf),
            });
            return;
        }
        let n = loop {
            match conn.read(&mut chunk) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Ok(n) => break n,
                Err(_) => break 0, // timeout or reset: treat as closed
            }
        };
        if n == 0 {
            push(Event::Closed { conn: id, leftover: buf });
            return;
        }
        shared.received.lock().unwrap()[id].extend_from_slice(&chunk[..n]);
        buf.extend_from_slice(&chunk[..n]);
    }
}

enum Framed {
    Incomplete,
    Bad(String),
    Request { len: usize, method: String, target: String, minor: u8, headers: Vec<(String, Vec<u8>)>, body: Vec<u8> },
}

/// Strict framing of one request at the start of `buf` (RFC 9112 §6.3 with
/// no leniency: anything a lenient parser might read differently is `Bad`).
fn frame_request(buf: &[u8]) -> Framed {
    if buf.is_empty() {
        return Framed::Incomplete;
    }
    let mut hs = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut hs);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Framed::Incomplete,
        Err(e) => return Framed::Bad(format!("head: {e}")),
    };
    let head = &buf[..head_len];
    for (i, &b) in head.iter().enumerate() {
        let bare = match b {
            b'\n' => i == 0 || head[i - 1] != b'\r',
            b'\r' => head.get(i + 1) != Some(&b'\n'),
            _ => false,
        };
        if bare {
            return Framed::Bad("bare CR or LF in head".into());
        }
    }
    if head.starts_with(b"\r\n") {
        return Framed::Bad("empty line before request line".into());
    }
    let method = req.method.unwrap().to_string();
    let target = req.path.unwrap().to_string();
    let minor = req.version.unwrap();
    let headers: Vec<(String, Vec<u8>)> = req.headers.iter().map(|h| (h.name.to_string(), h.value.to_vec())).collect();
    let cls: Vec<&[u8]> =
        headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case("content-length")).map(|(_, v)| v.as_slice()).collect();
    let tes: Vec<&[u8]> = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"))
        .map(|(_, v)| v.as_slice())
        .collect();
    let rest = &buf[head_len..];
    if !tes.is_empty() {
        if !cls.is_empty() {
            return Framed::Bad("Content-Length and Transfer-Encoding".into());
        }
        if tes.len() != 1 || !tes[0].eq_ignore_ascii_case(b"chunked") {
            return Framed::Bad(format!(
                "Transfer-Encoding not exactly `chunked`: {:?}",
                tes.iter().map(|v| String::from_utf8_lossy(v)).collect::<Vec<_>>()
            ));
        }
        if minor == 0 {
            return Framed::Bad("Transfer-Encoding in HTTP/1.0".into());
        }
        return match dechunk(rest) {
            Dechunk::Incomplete => Framed::Incomplete,
            Dechunk::Bad(what) => Framed::Bad(format!("chunked: {what}")),
            Dechunk::Done { len, body } => {
                Framed::Request { len: head_len + len, method, target, minor, headers, body }
            }
        };
    }
    let len = match cls.as_slice() {
        [] => 0,
        [v] => {
            if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
                return Framed::Bad(format!("bad Content-Length {:?}", String::from_utf8_lossy(v)));
            }
            std::str::from_utf8(v).unwrap().parse::<usize>().unwrap()
        }
        _ => return Framed::Bad("more than one Content-Length".into()),
    };
    if rest.len() < len {
        return Framed::Incomplete;
    }
    Framed::Request { len: head_len + len, method, target, minor, headers, body: rest[..len].to_vec() }
}

enum Dechunk {
    Incomplete,
    Bad(String),
    Done { len: usize, body: Vec<u8> },
}

/// Finds the next CRLF-terminated line starting at `at`; bare CR or LF inside
/// it is an error.
fn line(buf: &[u8], at: usize) -> Result<Option<(&[u8], usize)>, String> {
    let mut i = at;
    while i < buf.len() {
        match buf[i] {
            b'\r' => {
                return match buf.get(i + 1) {
                    None => Ok(None),
                    Some(b'\n') => Ok(Some((&buf[at..i], i + 2))),
                    Some(_) => Err("bare CR".into()),
                }
            }
            b'\n' => return Err("bare LF".into()),
            _ => i += 1,
        }
    }
    Ok(None)
}

/// Strict chunked decoding (RFC 9112 §7.1): size = 1*HEXDIG (at most 15
/// digits), optional `;extension` text without CTLs, CRLF; data; CRLF; after
/// the last chunk, trailer lines `name: value` until an empty line.
fn dechunk(buf: &[u8]) -> Dechunk {
    let mut at = 0;
    let mut body = Vec::new();
    loop {
        let (size_line, next) = match line(buf, at) {
            Ok(Some(l)) => l,
            Ok(None) => return Dechunk::Incomplete,
            Err(e) => return Dechunk::Bad(format!("size line: {e}")),
        };
        let (digits, ext) = match size_line.iter().position(|&b| b == b';') {
            Some(i) => (&size_line[..i], Some(&size_line[i + 1..])),
            None => (size_line, None),
        };
        // BWS before `;` only.
        let digits = if ext.is_some() {
            let mut d = digits;
            while let [rest @ .., b' ' | b'\t'] = d {
                d = rest;
            }
            d
        } else {
            digits
        };
        if digits.is_empty() || digits.len() > 15 || !digits.iter().all(u8::is_ascii_hexdigit) {
            return Dechunk::Bad(format!("chunk size {:?}", String::from_utf8_lossy(size_line)));
        }
        if let Some(ext) = ext {
            if ext.is_empty() || ext.iter().any(|&b| b < 0x20 && b != b'\t' || b == 0x7f) {
                return Dechunk::Bad("chunk extension".into());
            }
        }
        let size = usize::from_str_radix(std::str::from_utf8(digits).unwrap(), 16).unwrap();
        at = next;
        if size == 0 {
            loop {
                let (l, next) = match line(buf, at) {
                    Ok(Some(l)) => l,
                    Ok(None) => return Dechunk::Incomplete,
                    Err(e) => return Dechunk::Bad(format!("trailer: {e}")),
                };
                at = next;
                if l.is_empty() {
                    return Dechunk::Done { len: at, body };
                }
                let Some(colon) = l.iter().position(|&b| b == b':') else {
                    return Dechunk::Bad("trailer without colon".into());
                };
                if colon == 0 || l[..colon].iter().any(|b| !b.is_ascii_graphic()) {
                    return Dechunk::Bad("trailer name".into());
                }
            }
        }
        if buf.len() < at + size + 2 {
            return Dechunk::Incomplete;
        }
        body.extend_from_slice(&buf[at..at + size]);
        at += size;
        if &buf[at..at + 2] != b"\r\n" {
            return Dechunk::Bad("chunk data not followed by CRLF".into());
        }
        at += 2;
    }
}
