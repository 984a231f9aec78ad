//! A raw HTTP/1.1 test client: writes exact bytes and reads responses with its
//! own small parser (httparse for the head), independent of corelink's codec.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Trailer field lines of a chunked response, as received.
    pub trailers: Vec<String>,
    /// A chunked response's body exactly as received (framing included).
    pub chunked_raw: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

pub struct Conn {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).expect("connect to corelink");
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        stream.set_nodelay(true).unwrap();
        Conn { stream, buf: Vec::new() }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write request");
    }

    fn fill(&mut self) -> std::io::Result<usize> {
        let mut chunk = [0u8; 65536];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads one response to a request with `method`.
    pub fn read_response(&mut self, method: &str) -> std::io::Result<Response> {
        let (status, headers, head_len) = loop {
            let mut hs = [httparse::EMPTY_HEADER; 64];
            let mut rsp = httparse::Response::new(&mut hs);
            if let Ok(httparse::Status::Complete(n)) = rsp.parse(&self.buf) {
                let headers = rsp
                    .headers
                    .iter()
                    .map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).into_owned()))
                    .collect::<Vec<_>>();
                break (rsp.code.unwrap(), headers, n);
            }
            if self.fill()? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        };
        self.buf.drain(..head_len);
        let get = |name: &str| headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
        let mut body = Vec::new();
        let mut trailers = Vec::new();
        let mut chunked_raw = Vec::new();
        let no_body = method == "HEAD" || (100..200).contains(&status) || status == 204 || status == 304;
        if no_body {
        } else if let Some(cl) = get("content-length") {
            let n: usize = cl.trim().parse().unwrap();
            while self.buf.len() < n {
                if self.fill()? == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
            }
            body.extend(self.buf.drain(..n));
        } else if get("transfer-encoding").is_some() {
            // Lenient about what it reads (extensions skipped); the exact
            // bytes are kept in `chunked_raw` for tests that judge framing.
            loop {
                let line = self.read_line(&mut chunked_raw)?;
                let digits = line.split(|&b| b == b';').next().unwrap_or_default().trim_ascii_end();
                let size = std::str::from_utf8(digits)
                    .ok()
                    .and_then(|d| usize::from_str_radix(d, 16).ok())
                    .ok_or_else(|| std::io::Error::other(format!("bad chunk size line {line:?}")))?;
                if size == 0 {
                    loop {
                        let line = self.read_line(&mut chunked_raw)?;
                        if line.is_empty() {
                            break;
                        }
                        trailers.push(String::from_utf8_lossy(&line).into_owned());
                    }
                    break;
                }
                while self.buf.len() < size + 2 {
                    if self.fill()? == 0 {
                        return Err(std::io::ErrorKind::UnexpectedEof.into());
                    }
                }
                body.extend_from_slice(&self.buf[..size]);
                chunked_raw.extend(self.buf.drain(..size + 2));
            }
        } else {
            while self.fill()? > 0 {}
            body = std::mem::take(&mut self.buf);
        }
        Ok(Response { status, headers, body, trailers, chunked_raw })
    }

    /// The next CRLF-terminated line (without its CRLF), also appended with
    /// it to `raw`.
    fn read_line(&mut self, raw: &mut Vec<u8>) -> std::io::Result<Vec<u8>> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = self.buf[..i].to_vec();
                raw.extend(self.buf.drain(..i + 2));
                return Ok(line);
            }
            if self.fill()? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// True when the peer has closed (an end of stream or a reset) within
    /// `limit`; false when the limit passes first, or bytes arrive.
    pub fn is_closed(&mut self, limit: Duration) -> bool {
        use std::io::ErrorKind::{TimedOut, WouldBlock};
        self.stream.set_read_timeout(Some(limit)).unwrap();
        let closed = match self.fill() {
            Ok(n) => n == 0,
            Err(e) => !matches!(e.kind(), WouldBlock | TimedOut),
        };
        self.stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        closed
    }

    /// Reads until the connection ends: every byte received (those already
    /// buffered first), and how it ended: `Ok` for an end of stream (a FIN),
    /// the error's kind otherwise (a reset, a read timeout).
    pub fn read_until_closed(&mut self) -> (Vec<u8>, Result<(), std::io::ErrorKind>) {
        let end = loop {
            match self.fill() {
                Ok(0) => break Ok(()),
                Ok(_) => {}
                Err(e) => break Err(e.kind()),
            }
        };
        (self.take_buffered(), end)
    }

    pub fn take_buffered(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    pub fn read_exact_raw(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            if self.fill().unwrap() == 0 {
                break;
            }
        }
        let take = n.min(self.buf.len());
        self.buf.drain(..take).collect()
    }
}

/// One GET on a fresh connection.
pub fn get(addr: SocketAddr, path: &str, host: &str) -> std::io::Result<Response> {
    let mut c = Conn::open(addr);
    c.send(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes());
    c.read_response("GET")
}

impl Conn {
    /// Reads a Content-Length response without keeping its body: `sink` sees
    /// each piece with its offset. Returns the status and body length.
    pub fn read_response_streaming(&mut self, mut sink: impl FnMut(u64, &[u8])) -> std::io::Result<(u16, u64)> {
        let (status, length, head_len) = loop {
            let mut hs = [httparse::EMPTY_HEADER; 64];
            let mut rsp = httparse::Response::new(&mut hs);
            if let Ok(httparse::Status::Complete(n)) = rsp.parse(&self.buf) {
                let cl = rsp
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .map(|h| String::from_utf8_lossy(h.value).trim().parse::<u64>().unwrap())
                    .expect("streamed responses carry Content-Length");
                break (rsp.code.unwrap(), cl, n);
            }
            if self.fill()? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        };
        self.buf.drain(..head_len);
        let mut offset = 0u64;
        loop {
            let take = (self.buf.len() as u64).min(length - offset) as usize;
            sink(offset, &self.buf[..take]);
            self.buf.drain(..take);
            offset += take as u64;
            if offset == length {
                return Ok((status, length));
            }
            if self.fill()? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
    }
}
