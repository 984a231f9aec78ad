//! Independent clients for the server's tests: a raw HTTP/1.1 client that
//! checks framing byte for byte (over TCP or rustls), and `curl`.
//! Every read has a time-out and every loop a bound.

#![allow(dead_code)] // each test file uses a different part

use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A read that takes longer than this fails the test.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

pub trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// A raw HTTP/1.1 client on one connection.
pub struct RawClient {
    stream: Box<dyn Stream>,
    /// Bytes read but not consumed yet.
    pending: Vec<u8>,
    pub addr: SocketAddr,
}

/// A response read whole (a `Content-Length` body).
#[derive(Debug)]
pub struct Response {
    pub status_line: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|error| panic!("body is not JSON ({error}): {}", String::from_utf8_lossy(&self.body)))
    }
}

pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
}

impl RawClient {
    pub fn connect(addr: SocketAddr) -> RawClient {
        let tcp = TcpStream::connect_timeout(&addr, READ_TIMEOUT).expect("connect");
        tcp.set_read_timeout(Some(READ_TIMEOUT)).expect("read timeout");
        tcp.set_write_timeout(Some(READ_TIMEOUT)).expect("write timeout");
        RawClient { stream: Box::new(tcp), pending: Vec::new(), addr }
    }

    /// A TLS connection trusting `ca_pem`, offering ALPN `protocols`.
    pub fn connect_tls(addr: SocketAddr, ca_pem: &str, protocols: &[&[u8]]) -> (RawClient, Option<Vec<u8>>) {
        use rustls_pki_types::pem::PemObject;
        let tcp = TcpStream::connect_timeout(&addr, READ_TIMEOUT).expect("connect");
        tcp.set_read_timeout(Some(READ_TIMEOUT)).expect("read timeout");
        tcp.set_write_timeout(Some(READ_TIMEOUT)).expect("write timeout");
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(cert.expect("CA PEM")).expect("add CA");
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = protocols.iter().map(|p| p.to_vec()).collect();
        let name = rustls_pki_types::ServerName::try_from("127.0.0.1").expect("name").to_owned();
        let connection = rustls::ClientConnection::new(Arc::new(config), name).expect("client connection");
        let mut stream = rustls::StreamOwned::new(connection, tcp);
        // Finish the handshake now, to learn the negotiated protocol.
        let started = Instant::now();
        while stream.conn.is_handshaking() {
            assert!(started.elapsed() < READ_TIMEOUT, "TLS handshake timed out");
            stream.conn.complete_io(&mut stream.sock).expect("TLS handshake");
        }
        let alpn = stream.conn.alpn_protocol().map(|p| p.to_vec());
        (RawClient { stream: Box::new(stream), pending: Vec::new(), addr }, alpn)
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write request");
        self.stream.flush().expect("flush request");
    }

    /// Sends what it can; for a peer that may already have closed.
    pub fn send_ignoring_errors(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).and_then(|()| self.stream.flush());
    }

    /// Sends `GET target` with the given extra header lines (each ending in `\r\n`).
    pub fn send_get(&mut self, target: &str, extra_headers: &str) {
        let request =
            format!("GET {target} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\n{extra_headers}\r\n", self.addr);
        self.send(request.as_bytes());
    }

    /// `GET target` and the whole response.
    pub fn get(&mut self, target: &str) -> Response {
        self.send_get(target, "");
        self.read_response()
    }

    fn fill(&mut self) -> usize {
        let mut buffer = [0u8; 16 * 1024];
        let read = self.stream.read(&mut buffer).unwrap_or_else(|error| panic!("read failed: {error}"));
        self.pending.extend_from_slice(&buffer[..read]);
        read
    }

    /// Reads until `pending` holds `n` bytes; panics on EOF.
    fn need(&mut self, n: usize) {
        while self.pending.len() < n {
            assert!(self.fill() > 0, "connection closed with {} of {n} bytes read", self.pending.len());
        }
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        self.need(n);
        self.pending.drain(..n).collect()
    }

    /// One CRLF-terminated line, without the CRLF (a bare LF fails).
    fn line(&mut self) -> String {
        let started = Instant::now();
        loop {
            if let Some(position) = self.pending.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.pending.drain(..position + 2).collect();
                let text = String::from_utf8(line[..position].to_vec()).expect("line is UTF-8");
                assert!(!text.contains('\n'), "bare LF in line {text:?}");
                return text;
            }
            assert!(started.elapsed() < READ_TIMEOUT, "no line within the time-out");
            assert!(
                self.fill() > 0,
                "connection closed in the middle of a line: {:?}",
                String::from_utf8_lossy(&self.pending)
            );
        }
    }

    /// The status line and headers.
    pub fn read_head(&mut self) -> (String, u16, Vec<(String, String)>) {
        let status_line = self.line();
        let status = status_line.split(' ').nth(1).and_then(|code| code.parse().ok()).expect("status code");
        let mut headers = Vec::new();
        for _ in 0..200 {
            let line = self.line();
            if line.is_empty() {
                return (status_line, status, headers);
            }
            let (name, value) = line.split_once(':').expect("header line");
            headers.push((name.to_string(), value.trim().to_string()));
        }
        panic!("more than 200 header lines");
    }

    /// A whole `Content-Length` response.
    pub fn read_response(&mut self) -> Response {
        let (status_line, status, headers) = self.read_head();
        let length: usize = header(&headers, "content-length").expect("Content-Length").parse().expect("length");
        let body = self.take(length);
        Response { status_line, status, headers, body }
    }

    /// One chunk of a chunked body, checked byte for byte:
    /// `<lowercase hex size>\r\n<size bytes>\r\n`. `None` for the terminating chunk.
    pub fn read_chunk(&mut self) -> Option<Vec<u8>> {
        let size_line = self.line();
        assert!(
            !size_line.is_empty() && size_line.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
            "chunk size line {size_line:?} is not lowercase hex"
        );
        let size = usize::from_str_radix(&size_line, 16).expect("hex size");
        if size == 0 {
            let trailer_end = self.take(2);
            assert_eq!(trailer_end, b"\r\n", "terminating chunk must be 0\\r\\n\\r\\n");
            return None;
        }
        let data = self.take(size);
        assert_eq!(self.take(2), b"\r\n", "chunk data must be followed by CRLF");
        Some(data)
    }

    /// One watch event: a chunk holding exactly one JSON object and a newline.
    pub fn read_event(&mut self) -> Value {
        let chunk = self.read_chunk().expect("an event, not the end of the stream");
        assert_eq!(chunk.last(), Some(&b'\n'), "an event ends with a newline");
        assert_eq!(chunk.iter().filter(|b| **b == b'\n').count(), 1, "one event per chunk");
        let event: Value = serde_json::from_slice(&chunk).expect("event is JSON");
        let keys: Vec<&String> = event.as_object().expect("event object").keys().collect();
        assert_eq!(keys, ["object", "type"], "an event has exactly type and object");
        event
    }

    /// Whether the peer closes (EOF or reset) within `within`, with no more bytes.
    pub fn closes_without_data(&mut self, within: Duration) -> Result<(), String> {
        let started = Instant::now();
        while started.elapsed() < within {
            let mut buffer = [0u8; 1024];
            match self.stream.read(&mut buffer) {
                Ok(0) => {
                    return if self.pending.is_empty() {
                        Ok(())
                    } else {
                        Err(format!("closed after unread bytes {:?}", String::from_utf8_lossy(&self.pending)))
                    }
                }
                Ok(n) => self.pending.extend_from_slice(&buffer[..n]),
                Err(error) if matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                }
                Err(_) => return if self.pending.is_empty() { Ok(()) } else { Err("reset after bytes".into()) },
            }
        }
        Err(format!("still open after {within:?}; got {:?}", String::from_utf8_lossy(&self.pending)))
    }

    /// Everything until the peer closes (at most `limit` bytes).
    pub fn read_to_close(&mut self, limit: usize) -> Vec<u8> {
        let started = Instant::now();
        loop {
            assert!(started.elapsed() < READ_TIMEOUT, "peer did not close");
            assert!(self.pending.len() <= limit, "more than {limit} bytes");
            let mut buffer = [0u8; 16 * 1024];
            match self.stream.read(&mut buffer) {
                Ok(0) => return std::mem::take(&mut self.pending),
                Ok(n) => self.pending.extend_from_slice(&buffer[..n]),
                Err(error) if matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    panic!("peer did not close within the read time-out")
                }
                Err(_) => return std::mem::take(&mut self.pending),
            }
        }
    }
}

/// Polls `condition` every 10 ms until it holds or `within` passes.
pub fn eventually(within: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < within {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    condition()
}

/// Form-encodes a query value as kube's `form_urlencoded::Serializer` does.
pub fn form_encode(value: &str) -> String {
    let mut out = String::new();
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => out.push(byte as char),
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// Runs curl with a 10 s limit; `None` (and a notice) when curl is missing.
pub fn curl(args: &[&str]) -> Option<std::process::Output> {
    let mut command = Command::new("curl");
    command.args(["--silent", "--show-error", "--max-time", "10"]).args(args);
    match command.output() {
        Ok(output) => Some(output),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("skipping the curl part: curl is not installed");
            None
        }
        Err(error) => panic!("cannot run curl: {error}"),
    }
}

/// The newline-separated JSON values of a `curl -N` watch output.
pub fn json_lines(output: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(output)
        .lines()
        .filter(|line| !line.is_empty())
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("not JSON ({error}): {line}")))
        .collect()
}
