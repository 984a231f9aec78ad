//! A real HTTP/1.1 test backend (blocking, thread per connection) with
//! behaviours chosen by the request path, counting connections and requests.
//!
//! Paths: `/bytes/N` (N bytes, Content-Length), `/chunked/N` (chunked),
//! `/close/N` (close-delimited), `/echo` (echoes the request body, with its
//! SHA-free checksum in `x-sum`), `/sleep/MS`, `/ws` (101 then raw echo),
//! `/garbage` (not HTTP), `/extra` (a response longer than its CL),
//! `/headers` (echoes the received head as the body), anything else: `ok`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::chunked;

#[derive(Default)]
pub struct Stats {
    pub connections: AtomicUsize,
    pub requests: AtomicUsize,
    /// Raw request heads received, in order.
    pub heads: Mutex<Vec<String>>,
}

pub struct Backend {
    pub addr: SocketAddr,
    pub stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
}

/// Deterministic body bytes, so a transfer can be checked byte for byte.
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

/// A cheap order-sensitive checksum (FNV-1a 64).
pub fn checksum(data: &[u8]) -> u64 {
    let mut c = Checksum::new();
    c.update(data);
    c.value()
}

/// Incremental form of [`checksum`].
pub struct Checksum(u64);

impl Checksum {
    pub fn new() -> Self {
        Checksum(0xcbf2_9ce4_8422_2325)
    }
    pub fn update(&mut self, data: &[u8]) {
        for &b in data {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x100_0000_01b3);
        }
    }
    pub fn value(&self) -> u64 {
        self.0
    }
}

impl Default for Checksum {
    fn default() -> Self {
        Self::new()
    }
}

pub struct Options {
    /// Close idle keep-alive connections after this long (to exercise the
    /// proxy's retry on a pooled connection the server closed).
    pub idle_close: Option<Duration>,
}

impl Backend {
    pub fn start() -> Backend {
        Self::start_with(Options { idle_close: None })
    }

    pub fn start_with(options: Options) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stats = Arc::new(Stats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (stats.clone(), stop.clone());
        let idle_close = options.idle_close;
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                s.connections.fetch_add(1, Ordering::SeqCst);
                let s = s.clone();
                std::thread::spawn(move || {
                    let _ = serve(conn, &s, idle_close);
                });
            }
        });
        Backend { addr, stats, stop }
    }

    pub fn connections(&self) -> usize {
        self.stats.connections.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> usize {
        self.stats.requests.load(Ordering::SeqCst)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(mut conn: TcpStream, stats: &Stats, idle_close: Option<Duration>) -> std::io::Result<()> {
    conn.set_read_timeout(Some(idle_close.unwrap_or(Duration::from_secs(30))))?;
    let mut buf: Vec<u8> = Vec::new();
    loop {
        // Read a head.
        let (head_len, method, path, headers) = loop {
            let mut hs = [httparse::EMPTY_HEADER; 64];
            let mut req = httparse::Request::new(&mut hs);
            if let Ok(httparse::Status::Complete(n)) = req.parse(&buf) {
                let headers: Vec<(String, String)> = req
                    .headers
                    .iter()
                    .map(|h| (h.name.to_ascii_lowercase(), String::from_utf8_lossy(h.value).into_owned()))
                    .collect();
                break (n, req.method.unwrap().to_string(), req.path.unwrap().to_string(), headers);
            }
            let mut chunk = [0u8; 65536];
            let n = match read_retrying(&mut conn, &mut chunk) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(_) => return Ok(()), // idle close or reset
            };
            buf.extend_from_slice(&chunk[..n]);
        };
        conn.set_read_timeout(Some(Duration::from_secs(30)))?;
        stats.requests.fetch_add(1, Ordering::SeqCst);
        stats.heads.lock().unwrap().push(String::from_utf8_lossy(&buf[..head_len]).into_owned());
        let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        buf.drain(..head_len);
        if header("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
            conn.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        // Read the body.
        let mut body = Vec::new();
        if path == "/discard" {
            // Stream the body through a checksum without keeping it (for the
            // 1 GiB test): answer with its length and checksum.
            let n: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
            let mut sum = Checksum::new();
            let mut left = n;
            let take = left.min(buf.len());
            sum.update(&buf[..take]);
            buf.drain(..take);
            left -= take;
            let mut chunk = vec![0u8; 1 << 16];
            while left > 0 {
                let r = read_retrying(&mut conn, &mut chunk)?;
                if r == 0 {
                    return Ok(());
                }
                let take = r.min(left);
                sum.update(&chunk[..take]);
                buf.extend_from_slice(&chunk[take..r]);
                left -= take;
            }
            write!(conn, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nx-len: {n}\r\nx-sum: {}\r\n\r\n", sum.value())?;
            continue;
        }
        if let Some(cl) = header("content-length") {
            let n: usize = cl.parse().unwrap();
            while buf.len() < n {
                let mut chunk = [0u8; 65536];
                let r = read_retrying(&mut conn, &mut chunk)?;
                if r == 0 {
                    return Ok(());
                }
                buf.extend_from_slice(&chunk[..r]);
            }
            body.extend(buf.drain(..n));
        } else if header("transfer-encoding").is_some() {
            loop {
                let (used, done) =
                    chunked::decode(&buf, &mut body).unwrap_or_else(|e| panic!("invalid chunked from proxy: {e}"));
                buf.drain(..used);
                if done {
                    break;
                }
                let mut chunk = [0u8; 65536];
                let r = read_retrying(&mut conn, &mut chunk)?;
                if r == 0 {
                    return Ok(());
                }
                buf.extend_from_slice(&chunk[..r]);
            }
        }
        let mut parts = path.trim_start_matches('/').splitn(2, '/');
        let (what, arg) = (parts.next().unwrap_or(""), parts.next().unwrap_or("0"));
        let n: usize = arg.parse().unwrap_or(0);
        let head_only = method == "HEAD";
        match what {
            "bytes" if n > 64 << 20 => {
                // Large: stream the pattern in period-aligned blocks (the
                // pattern repeats every 251 bytes), so the client can check
                // every byte without either side holding the whole body.
                write!(conn, "HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n")?;
                let block = pattern(251 * 4096);
                let mut left = if head_only { 0 } else { n };
                while left > 0 {
                    let take = left.min(block.len());
                    conn.write_all(&block[..take])?;
                    left -= take;
                }
            }
            "bytes" => {
                let data = pattern(n);
                write!(conn, "HTTP/1.1 200 OK\r\nContent-Length: {n}\r\nx-sum: {}\r\n\r\n", checksum(&data))?;
                if !head_only {
                    conn.write_all(&data)?;
                }
            }
            "chunked" => {
                let data = pattern(n);
                write!(conn, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nx-sum: {}\r\n\r\n", checksum(&data))?;
                for piece in data.chunks(7919) {
                    write!(conn, "{:x}\r\n", piece.len())?;
                    conn.write_all(piece)?;
                    conn.write_all(b"\r\n")?;
                }
                conn.write_all(b"0\r\n\r\n")?;
            }
            "close" => {
                let data = pattern(n);
                write!(conn, "HTTP/1.1 200 OK\r\nx-sum: {}\r\n\r\n", checksum(&data))?;
                conn.write_all(&data)?;
                return Ok(());
            }
            "echo" => {
                write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nx-sum: {}\r\n\r\n",
                    body.len(),
                    checksum(&body)
                )?;
                conn.write_all(&body)?;
            }
            "sleep" => {
                std::thread::sleep(Duration::from_millis(n as u64));
                conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nslept")?;
            }
            "ws" => {
                conn.write_all(
                    b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
                )?;
                conn.write_all(&buf)?;
                let mut chunk = [0u8; 4096];
                loop {
                    let r = read_retrying(&mut conn, &mut chunk)?;
                    if r == 0 {
                        return Ok(());
                    }
                    conn.write_all(&chunk[..r])?;
                }
            }
            "garbage" => {
                conn.write_all(b"this is not http\r\n\r\n")?;
                return Ok(());
            }
            "extra" => {
                conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokSMUGGLED")?;
            }
            "headers" => {
                let last = stats.heads.lock().unwrap().last().cloned().unwrap_or_default();
                write!(conn, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{last}", last.len())?;
            }
            "status" => {
                write!(conn, "HTTP/1.1 {n} Custom\r\nContent-Length: 0\r\n\r\n")?;
            }
            _ => {
                conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")?;
            }
        }
        if let Some(idle) = idle_close {
            conn.set_read_timeout(Some(idle))?;
        }
    }
}

fn read_retrying(conn: &mut TcpStream, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match conn.read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}
