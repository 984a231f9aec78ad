//! rustls driven sans-IO over any [`Stream`]: ciphertext moves through the
//! engine's owned-buffer reads and writes, so TLS runs the same on epoll and
//! io_uring, on the core that owns the connection, with no lock.
//!
//! The proxy reads and writes one connection at the same time (a request body
//! going up while the response comes down), through `&self`. The rustls state
//! sits in a `RefCell` that is borrowed only between awaits. Only one task
//! writes ciphertext to the socket at a time (`flushing`), so records never
//! interleave; the reader writes only what rustls itself queues (alerts, key
//! updates), and only when no write is in progress, since the writer's flush
//! loop sends those too.

use std::cell::{Cell, RefCell};
use std::io::{self, BufRead, Write};
use std::ops::Range;

use rustls::{Connection, HandshakeKind};

use crate::io::{BufResult, Stream};

/// Ciphertext read buffer: one full TLS record (16 KiB + overhead) fits.
const CIPHER_BUFFER: usize = 16 * 1024 + 512;

pub struct TlsStream<S> {
    io: S,
    tls: RefCell<Connection>,
    /// Ciphertext read from the socket that rustls has not taken yet. Empty
    /// whenever a socket read is in flight, so dropping that read (a timeout)
    /// loses no bytes, only the allocation.
    cipher: RefCell<Vec<u8>>,
    /// Ciphertext on its way to the socket, reused between writes.
    out: RefCell<Vec<u8>>,
    /// A task is writing ciphertext to the socket.
    flushing: Cell<bool>,
    /// The socket reached end of stream.
    eof: Cell<bool>,
    /// The first byte the peer sent: tells a plaintext client from a TLS one
    /// when a handshake fails.
    first_byte: Cell<Option<u8>>,
}

/// What was negotiated, for logs, the demo and the admin.
#[derive(Debug, Clone)]
pub struct TlsInfo {
    pub version: &'static str,
    pub cipher: String,
    pub resumed: bool,
    pub alpn: Option<String>,
    /// Server side: the name the client asked for (SNI).
    pub sni: Option<String>,
}

/// Marks a rustls failure inside an `io::Error`, so callers can tell a
/// certificate problem from a reset (see [`tls_error`]).
pub fn to_io(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// The rustls error inside an `io::Error`, if that is what it carries.
pub fn tls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>())
}

/// Whether the first bytes a client sent to a TLS port look like plaintext
/// HTTP (a request line starts with an upper-case method; a TLS record with
/// 0x16).
pub fn looks_like_plaintext_http(first: &[u8]) -> bool {
    first.first().is_some_and(|b| b.is_ascii_uppercase())
}

struct ClearOnDrop<'a>(&'a Cell<bool>);

impl Drop for ClearOnDrop<'_> {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

impl<S: Stream> TlsStream<S> {
    pub fn new(io: S, tls: impl Into<Connection>) -> Self {
        TlsStream {
            io,
            tls: RefCell::new(tls.into()),
            cipher: RefCell::new(Vec::new()),
            out: RefCell::new(Vec::new()),
            flushing: Cell::new(false),
            eof: Cell::new(false),
            first_byte: Cell::new(None),
        }
    }

    /// Whether the peer opened with plaintext HTTP instead of a ClientHello.
    pub fn peer_spoke_plaintext(&self) -> bool {
        self.first_byte.get().is_some_and(|b| looks_like_plaintext_http(&[b]))
    }

    /// Writes `bytes` to the inner stream as they are, outside TLS: for an
    /// answer to a peer that never started the handshake (the proxy's
    /// plaintext 400), before the connection is closed.
    pub async fn write_plaintext(&self, bytes: Vec<u8>) -> io::Result<()> {
        self.io.write_all(bytes).await.0
    }

    /// Runs the handshake to completion (the caller bounds it in time). On a
    /// failure, the alert rustls queued is sent before the error returns.
    pub async fn handshake(&self) -> io::Result<()> {
        loop {
            let (handshaking, wants_write) = {
                let tls = self.tls.borrow();
                (tls.is_handshaking(), tls.wants_write())
            };
            if wants_write {
                self.flush().await?;
                continue;
            }
            if !handshaking {
                return Ok(());
            }
            match self.feed() {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => {
                    // The alert tells a TLS peer why; a plaintext client gets
                    // a plaintext answer instead (see `write_plaintext`).
                    if !self.peer_spoke_plaintext() {
                        let _ = self.flush().await;
                    }
                    return Err(e);
                }
            }
            if self.eof.get() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the peer closed the connection during the TLS handshake",
                ));
            }
            self.fill().await?;
        }
    }

    pub fn info(&self) -> TlsInfo {
        let tls = self.tls.borrow();
        let version = match tls.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
            _ => "unknown",
        };
        let cipher = tls.negotiated_cipher_suite().map(|s| format!("{:?}", s.suite())).unwrap_or_default();
        let sni = match &*tls {
            Connection::Server(s) => s.server_name().map(str::to_owned),
            Connection::Client(_) => None,
        };
        TlsInfo {
            version,
            cipher,
            resumed: tls.handshake_kind() == Some(HandshakeKind::Resumed),
            alpn: tls.alpn_protocol().map(|p| String::from_utf8_lossy(p).into_owned()),
            sni,
        }
    }

    /// Whether this connection skipped the full handshake (a resumed session).
    pub fn resumed(&self) -> bool {
        self.tls.borrow().handshake_kind() == Some(HandshakeKind::Resumed)
    }

    /// Copies decrypted bytes into `buf`'s spare capacity. None: nothing
    /// buffered, more ciphertext is needed.
    fn take_plaintext(&self, buf: &mut Vec<u8>) -> Option<io::Result<usize>> {
        let mut tls = self.tls.borrow_mut();
        let mut reader = tls.reader();
        match reader.fill_buf() {
            Ok([]) => Some(Ok(0)), // close_notify: a clean end of stream
            Ok(chunk) => {
                let n = chunk.len().min(buf.capacity() - buf.len());
                buf.extend_from_slice(&chunk[..n]);
                reader.consume(n);
                Some(Ok(n))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
            // A TCP close without close_notify: an end of stream all the same;
            // HTTP framing tells a complete message from a truncated one.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Some(Ok(0)),
            Err(e) => Some(Err(e)),
        }
    }

    /// Hands buffered ciphertext to rustls and processes it. Returns whether
    /// rustls took any.
    fn feed(&self) -> io::Result<bool> {
        let mut cipher = self.cipher.borrow_mut();
        if cipher.is_empty() {
            return Ok(false);
        }
        let mut tls = self.tls.borrow_mut();
        let mut slice: &[u8] = &cipher;
        let n = tls.read_tls(&mut slice)?;
        if n == 0 {
            // Only after close_notify: whatever follows it is not data.
            cipher.clear();
            return Ok(false);
        }
        cipher.drain(..n);
        tls.process_new_packets().map_err(to_io)?;
        Ok(true)
    }

    /// Reads more ciphertext from the socket into the (empty) cipher buffer.
    async fn fill(&self) -> io::Result<()> {
        let mut cipher = std::mem::take(&mut *self.cipher.borrow_mut());
        debug_assert!(cipher.is_empty());
        if cipher.capacity() < CIPHER_BUFFER {
            cipher.reserve(CIPHER_BUFFER);
        }
        let (res, cipher) = self.io.read(cipher).await;
        if self.first_byte.get().is_none() {
            self.first_byte.set(cipher.first().copied());
        }
        *self.cipher.borrow_mut() = cipher;
        if res? == 0 {
            self.eof.set(true);
        }
        Ok(())
    }

    /// Writes everything rustls has queued. One flusher at a time: a second
    /// waits its turn (rare: only the reader's alerts race with the writer).
    async fn flush(&self) -> io::Result<()> {
        while self.flushing.get() {
            tokio::task::yield_now().await;
        }
        self.flushing.set(true);
        let _clear = ClearOnDrop(&self.flushing);
        loop {
            let out = {
                let mut tls = self.tls.borrow_mut();
                if !tls.wants_write() {
                    return Ok(());
                }
                let mut out = std::mem::take(&mut *self.out.borrow_mut());
                out.clear();
                tls.write_tls(&mut out)?;
                out
            };
            let (res, out) = self.io.write_all(out).await;
            *self.out.borrow_mut() = out;
            res?;
        }
    }

    async fn read_plain(&self, mut buf: Vec<u8>) -> BufResult<usize> {
        loop {
            if let Some(res) = self.take_plaintext(&mut buf) {
                return (res, buf);
            }
            match self.feed() {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => return (Err(e), buf),
            }
            // Alerts or key updates rustls queued while reading; the writer
            // sends them if it is busy.
            if !self.flushing.get() && self.tls.borrow().wants_write() {
                if let Err(e) = self.flush().await {
                    return (Err(e), buf);
                }
            }
            if self.eof.get() {
                return (Ok(0), buf);
            }
            if let Err(e) = self.fill().await {
                return (Err(e), buf);
            }
        }
    }

    async fn write_plain(&self, buf: Vec<u8>, range: Range<usize>) -> BufResult<()> {
        if let Err(e) = self.tls.borrow_mut().writer().write_all(&buf[range]) {
            return (Err(e), buf);
        }
        let res = self.flush().await;
        (res, buf)
    }

    async fn close_write(&self) -> io::Result<()> {
        self.tls.borrow_mut().send_close_notify();
        self.flush().await?;
        self.io.shutdown_write().await
    }

    /// Decrypted bytes, or ciphertext rustls has not processed, are waiting.
    fn has_buffered_input(&self) -> bool {
        if !self.cipher.borrow().is_empty() || self.eof.get() {
            return true;
        }
        let mut tls = self.tls.borrow_mut();
        // Ok: bytes, or an empty slice for close_notify (input all the same).
        let buffered = tls.reader().fill_buf().is_ok();
        buffered
    }

    fn poll_wait(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<io::Result<bool>> {
        if self.has_buffered_input() {
            return std::task::Poll::Ready(Ok(true));
        }
        self.io.poll_readable(cx)
    }

    /// Idle: give back the two record-sized buffers (~33 KiB), so thousands
    /// of parked TLS connections stay cheap; the next read or write
    /// allocates them again.
    fn release_record_buffers(&self) {
        if !self.flushing.get() {
            *self.out.borrow_mut() = Vec::new();
        }
        if self.cipher.borrow().is_empty() {
            *self.cipher.borrow_mut() = Vec::new();
        }
    }
}

impl<S: Stream> Stream for TlsStream<S> {
    fn read(&self, buf: Vec<u8>) -> impl std::future::Future<Output = BufResult<usize>> {
        self.read_plain(buf)
    }

    fn write_range(&self, buf: Vec<u8>, range: Range<usize>) -> impl std::future::Future<Output = BufResult<()>> {
        self.write_plain(buf, range)
    }

    fn shutdown_write(&self) -> impl std::future::Future<Output = io::Result<()>> {
        self.close_write()
    }

    fn poll_readable(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<io::Result<bool>> {
        self.poll_wait(cx)
    }

    fn release_idle_buffers(&self) {
        self.release_record_buffers();
    }

    fn has_unread_input(&self) -> bool {
        self.has_buffered_input() || self.io.has_unread_input()
    }

    fn watch_unread_input(&self) {
        self.io.watch_unread_input();
    }
}

/// A connection that speaks TLS or not, decided per server (incoming) or per
/// destination (outgoing). The proxy handles both through one type; the
/// match costs a branch per operation on a plaintext connection.
pub enum MaybeTls<S> {
    Plain(S),
    Tls(Box<TlsStream<S>>),
}

impl<S: Stream> MaybeTls<S> {
    pub fn tls(&self) -> Option<&TlsStream<S>> {
        match self {
            MaybeTls::Plain(_) => None,
            MaybeTls::Tls(t) => Some(t),
        }
    }
}

impl<S: Stream> Stream for MaybeTls<S> {
    async fn read(&self, buf: Vec<u8>) -> BufResult<usize> {
        match self {
            MaybeTls::Plain(s) => s.read(buf).await,
            MaybeTls::Tls(t) => t.read_plain(buf).await,
        }
    }

    async fn write_range(&self, buf: Vec<u8>, range: Range<usize>) -> BufResult<()> {
        match self {
            MaybeTls::Plain(s) => s.write_range(buf, range).await,
            MaybeTls::Tls(t) => t.write_plain(buf, range).await,
        }
    }

    async fn shutdown_write(&self) -> io::Result<()> {
        match self {
            MaybeTls::Plain(s) => s.shutdown_write().await,
            MaybeTls::Tls(t) => t.close_write().await,
        }
    }

    fn poll_readable(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<io::Result<bool>> {
        match self {
            MaybeTls::Plain(s) => s.poll_readable(cx),
            MaybeTls::Tls(t) => t.poll_wait(cx),
        }
    }

    fn release_idle_buffers(&self) {
        match self {
            MaybeTls::Plain(s) => s.release_idle_buffers(),
            MaybeTls::Tls(t) => t.release_record_buffers(),
        }
    }

    fn has_unread_input(&self) -> bool {
        match self {
            MaybeTls::Plain(s) => s.has_unread_input(),
            MaybeTls::Tls(t) => t.has_unread_input(),
        }
    }

    fn watch_unread_input(&self) {
        match self {
            MaybeTls::Plain(s) => s.watch_unread_input(),
            MaybeTls::Tls(t) => t.watch_unread_input(),
        }
    }
}
