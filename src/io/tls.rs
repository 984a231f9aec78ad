//! rustls driven sans-IO over any [`Stream`], through its unbuffered API
//! (`rustls::unbuffered`): ciphertext moves through the engine's
//! owned-buffer reads and writes, so TLS runs the same on epoll and io_uring,
//! on the core that owns the connection, with no lock.
//!
//! rustls keeps no buffer of its own here. Ciphertext read from the socket
//! stays in `cipher`, where rustls decrypts records in place and joins
//! handshake messages split across records; ciphertext to send is encoded or
//! encrypted into `out`. Both are corelink's, so an idle connection gives
//! them back (`release_record_buffers`); the buffered `rustls::Connection`
//! kept a 4 KiB read buffer alive for the connection's whole life.
//!
//! The proxy reads and writes one connection at the same time (a request body
//! going up while the response comes down), through `&self`. The rustls state
//! sits in a `RefCell` that is borrowed only between awaits. Every record
//! rustls produces, whoever drives it (the writer's data, the reader's alerts
//! and key updates, the handshake's flights), is appended to `out` in the
//! order rustls produced it, and only one task writes `out` to the socket at
//! a time (`flushing`), so records go out in sequence and never interleave.

use std::cell::{Cell, RefCell};
use std::io;
use std::ops::Range;
use std::task::{Poll, Waker};

use rustls::client::UnbufferedClientConnection;
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, UnbufferedStatus};
use rustls::{CommonState, HandshakeKind};

use crate::io::{BufResult, Stream};

/// Ciphertext read buffer: one full TLS record (16 KiB + overhead) fits.
const CIPHER_BUFFER: usize = 16 * 1024 + 512;

/// The most ciphertext kept that rustls has not consumed: one handshake
/// message at its largest (rustls joins one split over records, up to
/// 0xffff bytes) plus one record at its largest on the wire. rustls's own
/// buffered connection holds at most 0xffff bytes; the unbuffered API
/// leaves the bound to its caller, and keeps a whole flight until no
/// message in it is partial, hence the extra record (a peer that works with
/// rustls's buffered connection works here). Without a bound a peer
/// declaring a 64 KiB handshake message and sending it one byte per padded
/// 16 KiB record made a core keep (and copy on every read) up to a gigabyte
/// per connection.
const MAX_UNCONSUMED_CIPHER: usize = 0xffff + 16 * 1024 + 2048 + 5;

/// The least room `out` grows to: a full record, so a stream of writes does
/// not grow it record by record.
const OUT_BUFFER: usize = 16 * 1024 + 512;

/// The rustls side of a [`TlsStream`]: the server end of an incoming
/// connection or the client end of one to an upstream.
pub enum TlsConn {
    Server(UnbufferedServerConnection),
    Client(UnbufferedClientConnection),
}

impl From<UnbufferedServerConnection> for TlsConn {
    fn from(conn: UnbufferedServerConnection) -> Self {
        TlsConn::Server(conn)
    }
}

impl From<UnbufferedClientConnection> for TlsConn {
    fn from(conn: UnbufferedClientConnection) -> Self {
        TlsConn::Client(conn)
    }
}

impl TlsConn {
    fn common(&self) -> &CommonState {
        match self {
            TlsConn::Server(c) => c,
            TlsConn::Client(c) => c,
        }
    }
}

pub struct TlsStream<S> {
    io: S,
    tls: RefCell<TlsConn>,
    /// Ciphertext read from the socket that rustls has not consumed:
    /// `cipher[start..]`. rustls decrypts in place here and keeps the
    /// fragments of a handshake message here until it is whole, so these
    /// bytes must come back to it unchanged on the next call.
    cipher: RefCell<Vec<u8>>,
    start: Cell<usize>,
    /// A second read buffer, used when a read starts with ciphertext still
    /// unconsumed (see [`TlsStream::fill`]).
    spare: RefCell<Vec<u8>>,
    /// A socket read is in flight.
    reading: Cell<bool>,
    /// rustls was handed `cipher` while a read was in flight, so the copy of
    /// it that read carries is stale (see [`TlsStream::fill`]).
    touched: Cell<bool>,
    /// Decrypted bytes no read has taken yet: `plain[plain_start..]`. Only a
    /// record larger than the reader's buffer, or one decrypted by the
    /// writer or the handshake, leaves bytes here.
    plain: RefCell<Vec<u8>>,
    plain_start: Cell<usize>,
    /// Ciphertext on its way to the socket: `out[..out_len]`. Past `out_len`
    /// the buffer is room rustls encrypts into.
    out: RefCell<Vec<u8>>,
    out_len: Cell<usize>,
    /// A task is writing `out` to the socket.
    flushing: Cell<bool>,
    /// Tasks waiting for the turn to write (see [`TlsStream::take_turn`]).
    turn_waiters: RefCell<Vec<Waker>>,
    /// The socket reached end of stream.
    eof: Cell<bool>,
    /// The peer sent close_notify: what follows is not data.
    peer_closed: Cell<bool>,
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

/// The turn to write to the socket, held: given up on drop, waking the
/// tasks that wait for it.
struct Turn<'a> {
    flushing: &'a Cell<bool>,
    waiters: &'a RefCell<Vec<Waker>>,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.flushing.set(false);
        let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        for waker in waiters {
            waker.wake();
        }
    }
}

/// What a call into rustls is for; it decides what a `WriteTraffic` state
/// (rustls has nothing more to do with the input it has) is used for.
enum Want<'a> {
    /// The handshake, or decrypted bytes: more input is needed.
    Input,
    /// Encrypt these bytes.
    Write(&'a [u8]),
    /// Send close_notify.
    Close,
}

/// Where one call into rustls left things.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// A state was handled; call again.
    Progress,
    /// rustls needs more ciphertext from the peer.
    NeedInput,
    /// The `Write` or `Close` asked for is in `out`.
    Queued,
    /// Both sides sent close_notify: nothing more can be sent.
    Closed,
}

/// Where a state's bytes go: the borrowed buffers of one [`TlsStream::process`].
struct Sinks<'a> {
    out: &'a mut Vec<u8>,
    out_len: &'a Cell<usize>,
    plain: &'a mut Vec<u8>,
    plain_start: &'a Cell<usize>,
    /// The reader's buffer: decrypted bytes go straight there when nothing
    /// is queued before them.
    dest: Option<&'a mut Vec<u8>>,
    peer_closed: &'a Cell<bool>,
}

impl Sinks<'_> {
    /// Room for `need` more bytes after the queued ciphertext.
    fn out_room(&mut self, need: usize) -> &mut [u8] {
        let len = self.out_len.get();
        if self.out.len() < len + need {
            self.out.resize((len + need).max(OUT_BUFFER), 0);
        }
        &mut self.out[len..]
    }

    fn queued(&mut self, n: usize) {
        self.out_len.set(self.out_len.get() + n);
    }

    fn plaintext(&mut self, mut payload: &[u8]) {
        if self.plain_start.get() == self.plain.len() {
            if let Some(dest) = self.dest.as_deref_mut() {
                let n = payload.len().min(dest.capacity() - dest.len());
                dest.extend_from_slice(&payload[..n]);
                payload = &payload[n..];
            }
        }
        self.plain.extend_from_slice(payload);
    }
}

/// Handles one state rustls reached. Returns the step and how many more
/// bytes of input the state says to discard.
fn handle<Data>(
    state: ConnectionState<'_, '_, Data>,
    want: &Want<'_>,
    sinks: &mut Sinks<'_>,
) -> Result<(Step, usize), rustls::Error> {
    match state {
        ConnectionState::ReadTraffic(mut traffic) => {
            let mut discard = 0;
            while let Some(record) = traffic.next_record() {
                let record = record?;
                discard += record.discard;
                sinks.plaintext(record.payload);
            }
            Ok((Step::Progress, discard))
        }
        ConnectionState::EncodeTlsData(mut data) => {
            let mut need = 0;
            loop {
                match data.encode(sinks.out_room(need)) {
                    Ok(n) => break sinks.queued(n),
                    Err(EncodeError::InsufficientSize(e)) => need = e.required_size,
                    // Nothing left to encode.
                    Err(EncodeError::AlreadyEncoded) => break,
                }
            }
            Ok((Step::Progress, 0))
        }
        // What was encoded is in `out`, ahead of anything encrypted later,
        // and goes to the socket in that order: as good as sent.
        ConnectionState::TransmitTlsData(data) => {
            data.done();
            Ok((Step::Progress, 0))
        }
        ConnectionState::BlockedHandshake => Ok((Step::NeedInput, 0)),
        ConnectionState::PeerClosed => {
            sinks.peer_closed.set(true);
            Ok((Step::Progress, 0))
        }
        ConnectionState::Closed => {
            sinks.peer_closed.set(true);
            Ok((Step::Closed, 0))
        }
        ConnectionState::WriteTraffic(mut traffic) => {
            let mut need = 0;
            loop {
                let res = match want {
                    Want::Input => return Ok((Step::NeedInput, 0)),
                    Want::Write(data) => traffic.encrypt(data, sinks.out_room(need)),
                    Want::Close => traffic.queue_close_notify(sinks.out_room(need)),
                };
                match res {
                    Ok(n) => {
                        sinks.queued(n);
                        return Ok((Step::Queued, 0));
                    }
                    Err(EncryptError::InsufficientSize(e)) => need = e.required_size,
                    Err(EncryptError::EncryptExhausted) => return Err(rustls::Error::EncryptError),
                }
            }
        }
        // corelink's server configurations accept no early data
        // (`max_early_data_size` stays 0), so rustls never offers any.
        ConnectionState::ReadEarlyData(_) => Err(rustls::Error::General("unexpected TLS early data".into())),
        other => Err(rustls::Error::General(format!("unexpected TLS state {other:?}"))),
    }
}

/// The discard and outcome of one `process_tls_records`, with the state
/// handled (the state borrows the input, which is discarded only after).
fn settle<Data>(
    status: UnbufferedStatus<'_, '_, Data>,
    want: &Want<'_>,
    sinks: &mut Sinks<'_>,
) -> (usize, Result<Step, rustls::Error>) {
    let UnbufferedStatus { discard, state } = status;
    match state.and_then(|state| handle(state, want, sinks)) {
        Ok((step, more)) => (discard + more, Ok(step)),
        Err(e) => (discard, Err(e)),
    }
}

/// After a failure, at most this many states are handled to collect the
/// alerts rustls queued: a bound, should it keep producing states.
const ALERT_STATES: usize = 8;

impl<S: Stream> TlsStream<S> {
    pub fn new(io: S, tls: impl Into<TlsConn>) -> Self {
        TlsStream {
            io,
            tls: RefCell::new(tls.into()),
            cipher: RefCell::new(Vec::new()),
            start: Cell::new(0),
            spare: RefCell::new(Vec::new()),
            reading: Cell::new(false),
            touched: Cell::new(false),
            plain: RefCell::new(Vec::new()),
            plain_start: Cell::new(0),
            out: RefCell::new(Vec::new()),
            out_len: Cell::new(0),
            flushing: Cell::new(false),
            turn_waiters: RefCell::new(Vec::new()),
            eof: Cell::new(false),
            peer_closed: Cell::new(false),
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
            match self.process(&Want::Input, None) {
                Ok(Step::Progress) => continue,
                Ok(Step::NeedInput | Step::Queued) => {}
                Ok(Step::Closed) => return Err(closed_during_handshake()),
                Err(e) => return Err(self.fail(e).await),
            }
            // Our flight goes out before we wait for the peer's; the last
            // one (tickets, Finished) before the handshake says it is done.
            self.flush_records().await?;
            if !self.tls.borrow().common().is_handshaking() {
                return Ok(());
            }
            if self.eof.get() || self.peer_closed.get() {
                return Err(closed_during_handshake());
            }
            self.fill().await?;
        }
    }

    /// A handshake failed: the alerts rustls queued go out first, except to
    /// a peer that spoke plaintext (it gets a plaintext answer instead, see
    /// `write_plaintext`).
    async fn fail(&self, e: rustls::Error) -> io::Error {
        if !self.peer_spoke_plaintext() {
            self.queue_alerts();
            let _ = self.flush_records().await;
        }
        to_io(e)
    }

    /// After a failure, rustls hands over the alerts it queued as
    /// `EncodeTlsData` states on the next calls.
    fn queue_alerts(&self) {
        for _ in 0..ALERT_STATES {
            if self.process(&Want::Input, None) != Ok(Step::Progress) {
                return;
            }
        }
    }

    pub fn info(&self) -> TlsInfo {
        let tls = self.tls.borrow();
        let common = tls.common();
        let version = match common.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
            _ => "unknown",
        };
        let cipher = common.negotiated_cipher_suite().map(|s| format!("{:?}", s.suite())).unwrap_or_default();
        TlsInfo {
            version,
            cipher,
            resumed: common.handshake_kind() == Some(HandshakeKind::Resumed),
            alpn: common.alpn_protocol().map(|p| String::from_utf8_lossy(p).into_owned()),
        }
    }

    /// Whether this connection skipped the full handshake (a resumed session).
    pub fn resumed(&self) -> bool {
        self.tls.borrow().common().handshake_kind() == Some(HandshakeKind::Resumed)
    }

    /// One call into rustls with the unconsumed ciphertext, its state
    /// handled and the input it consumed discarded.
    fn process(&self, want: &Want<'_>, dest: Option<&mut Vec<u8>>) -> Result<Step, rustls::Error> {
        let mut tls = self.tls.borrow_mut();
        let mut cipher = self.cipher.borrow_mut();
        let mut out = self.out.borrow_mut();
        let mut plain = self.plain.borrow_mut();
        let start = self.start.get();
        if self.reading.get() && cipher.len() > start {
            self.touched.set(true);
        }
        let mut sinks = Sinks {
            out: &mut out,
            out_len: &self.out_len,
            plain: &mut plain,
            plain_start: &self.plain_start,
            dest,
            peer_closed: &self.peer_closed,
        };
        let incoming = &mut cipher[start..];
        let (discard, step) = match &mut *tls {
            TlsConn::Server(c) => settle(c.process_tls_records(incoming), want, &mut sinks),
            TlsConn::Client(c) => settle(c.process_tls_records(incoming), want, &mut sinks),
        };
        let start = start + discard;
        // After close_notify rustls reads nothing more: what follows it is
        // not data, and is dropped.
        if start >= cipher.len() || self.peer_closed.get() {
            cipher.clear();
            self.start.set(0);
        } else {
            self.start.set(start);
        }
        step
    }

    /// Moves queued decrypted bytes into `buf`'s spare capacity.
    fn take_plain(&self, buf: &mut Vec<u8>) -> usize {
        let mut plain = self.plain.borrow_mut();
        let start = self.plain_start.get();
        let n = (plain.len() - start).min(buf.capacity() - buf.len());
        buf.extend_from_slice(&plain[start..start + n]);
        if start + n == plain.len() {
            plain.clear();
            self.plain_start.set(0);
        } else {
            self.plain_start.set(start + n);
        }
        n
    }

    /// Reads more ciphertext from the socket after what rustls has not
    /// consumed.
    ///
    /// The read carries a copy of the unconsumed bytes and the originals
    /// stay in `cipher`, for two reasons: a read dropped in flight (a
    /// timeout) loses no bytes rustls counts on seeing again, only the
    /// allocation; and the writer, which needs rustls (and so these bytes)
    /// to encrypt, can run meanwhile. Usually nothing is unconsumed and
    /// nothing is copied. If the writer did hand them to rustls during the
    /// read (`touched`), the copy is stale and only the new bytes are kept.
    async fn fill(&self) -> io::Result<()> {
        let unconsumed = self.cipher.borrow().len() - self.start.get();
        if unconsumed >= MAX_UNCONSUMED_CIPHER {
            return Err(too_much_unconsumed(unconsumed));
        }
        let (buf, kept) = self.read_buffer();
        self.touched.set(false);
        self.reading.set(true);
        let reading = ClearOnDrop(&self.reading);
        let (res, buf) = self.io.read(buf).await;
        drop(reading);
        if self.first_byte.get().is_none() {
            self.first_byte.set(buf.get(kept).copied());
        }
        self.install(buf, kept);
        if res? == 0 {
            self.eof.set(true);
        }
        Ok(())
    }

    /// The buffer a read fills, starting with a copy of the unconsumed
    /// ciphertext, and that copy's length.
    fn read_buffer(&self) -> (Vec<u8>, usize) {
        let mut cipher = self.cipher.borrow_mut();
        let start = self.start.get();
        let kept = cipher.len() - start;
        let mut buf = if kept == 0 {
            self.start.set(0);
            std::mem::take(&mut *cipher)
        } else {
            std::mem::take(&mut *self.spare.borrow_mut())
        };
        buf.clear();
        buf.reserve(kept + CIPHER_BUFFER);
        buf.extend_from_slice(&cipher[start..]);
        (buf, kept)
    }

    /// Makes a finished read's buffer the ciphertext rustls sees next.
    fn install(&self, mut buf: Vec<u8>, kept: usize) {
        let mut cipher = self.cipher.borrow_mut();
        if self.touched.get() {
            cipher.extend_from_slice(&buf[kept..]);
            buf.clear();
            *self.spare.borrow_mut() = buf;
        } else {
            let mut old = std::mem::replace(&mut *cipher, buf);
            self.start.set(0);
            if old.capacity() > 0 {
                old.clear();
                *self.spare.borrow_mut() = old;
            }
        }
    }

    /// Waits for the turn to write to the socket: one flusher at a time, so
    /// records never interleave (rare: only the reader's alerts race with
    /// the writer). A waiter sleeps until the holder gives the turn up: the
    /// holder may wait for a peer that does not read (an alert stuck behind
    /// a full socket), and a waiter that polled again and again would spin
    /// the core all that time.
    async fn take_turn(&self) -> Turn<'_> {
        std::future::poll_fn(|cx| {
            if self.flushing.get() {
                let mut waiters = self.turn_waiters.borrow_mut();
                if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
                    waiters.push(cx.waker().clone());
                }
                return Poll::Pending;
            }
            self.flushing.set(true);
            Poll::Ready(Turn { flushing: &self.flushing, waiters: &self.turn_waiters })
        })
        .await
    }

    /// Writes everything queued in `out`, including what others queue while
    /// a write is in flight. The caller has the turn.
    async fn flush_out(&self) -> io::Result<()> {
        loop {
            let len = self.out_len.get();
            if len == 0 {
                return Ok(());
            }
            let out = std::mem::take(&mut *self.out.borrow_mut());
            self.out_len.set(0);
            let (res, out) = self.io.write_range(out, 0..len).await;
            // Records queued meanwhile went into a new buffer: keep that
            // one (it goes next), else reuse this one.
            if self.out_len.get() == 0 {
                *self.out.borrow_mut() = out;
            }
            res?;
        }
    }

    /// Writes what is queued, taking the turn if anything is.
    async fn flush_records(&self) -> io::Result<()> {
        if self.out_len.get() == 0 {
            return Ok(());
        }
        let _turn = self.take_turn().await;
        self.flush_out().await
    }

    async fn read_plain(&self, mut buf: Vec<u8>) -> BufResult<usize> {
        loop {
            let n = self.take_plain(&mut buf);
            if n > 0 {
                return (Ok(n), buf);
            }
            if self.peer_closed.get() {
                return (Ok(0), buf); // close_notify: a clean end of stream
            }
            let before = buf.len();
            match self.process(&Want::Input, Some(&mut buf)) {
                Ok(Step::Progress) if buf.len() > before => return (Ok(buf.len() - before), buf),
                Ok(Step::Progress) => continue,
                Ok(Step::Closed) => return (Ok(0), buf),
                Ok(Step::NeedInput | Step::Queued) => {}
                Err(e) => {
                    self.queue_alerts();
                    if !self.flushing.get() {
                        let _ = self.flush_records().await;
                    }
                    return (Err(to_io(e)), buf);
                }
            }
            // Alerts or key updates rustls queued while reading; the writer
            // sends them if it is busy.
            if !self.flushing.get() {
                if let Err(e) = self.flush_records().await {
                    return (Err(e), buf);
                }
            }
            // A TCP close without close_notify: an end of stream all the
            // same; HTTP framing tells a complete message from a truncated one.
            if self.eof.get() {
                return (Ok(0), buf);
            }
            if let Err(e) = self.fill().await {
                return (Err(e), buf);
            }
        }
    }

    /// Encrypts `data` into `out`.
    fn encrypt(&self, want: &Want<'_>) -> io::Result<()> {
        loop {
            match self.process(want, None).map_err(to_io)? {
                Step::Queued => return Ok(()),
                Step::Progress => continue,
                Step::NeedInput => {
                    return Err(io::Error::new(io::ErrorKind::NotConnected, "the TLS handshake is not complete"))
                }
                Step::Closed => return Err(io::Error::new(io::ErrorKind::BrokenPipe, "the TLS connection is closed")),
            }
        }
    }

    async fn write_plain(&self, buf: Vec<u8>, range: Range<usize>) -> BufResult<()> {
        let _turn = self.take_turn().await;
        if let Err(e) = self.encrypt(&Want::Write(&buf[range])) {
            return (Err(e), buf);
        }
        let res = self.flush_out().await;
        (res, buf)
    }

    async fn close_write(&self) -> io::Result<()> {
        let _turn = self.take_turn().await;
        match self.encrypt(&Want::Close) {
            Ok(()) => {}
            // Closed both ways already, or never opened: nothing to say.
            Err(e) if matches!(e.kind(), io::ErrorKind::BrokenPipe | io::ErrorKind::NotConnected) => {}
            Err(e) => return Err(e),
        }
        self.flush_out().await?;
        self.io.shutdown_write().await
    }

    /// Decrypted bytes, or ciphertext rustls has not consumed, are waiting,
    /// or the stream ended.
    fn has_buffered_input(&self) -> bool {
        self.plain_start.get() < self.plain.borrow().len()
            || self.cipher.borrow().len() > self.start.get()
            || self.eof.get()
            || self.peer_closed.get()
    }

    fn poll_wait(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<io::Result<bool>> {
        if self.has_buffered_input() {
            return std::task::Poll::Ready(Ok(true));
        }
        self.io.poll_readable(cx)
    }

    /// Idle: give back the record-sized buffers (~33 KiB), so thousands of
    /// parked TLS connections stay cheap; the next read or write allocates
    /// them again. rustls itself holds no buffer between records.
    fn release_record_buffers(&self) {
        if !self.flushing.get() && self.out_len.get() == 0 {
            *self.out.borrow_mut() = Vec::new();
        }
        if self.cipher.borrow().len() == self.start.get() {
            *self.cipher.borrow_mut() = Vec::new();
            self.start.set(0);
        }
        *self.spare.borrow_mut() = Vec::new();
        if self.plain_start.get() == self.plain.borrow().len() {
            *self.plain.borrow_mut() = Vec::new();
            self.plain_start.set(0);
        }
    }
}

fn closed_during_handshake() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "the peer closed the connection during the TLS handshake")
}

fn too_much_unconsumed(bytes: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "the TLS peer sent {bytes} bytes that do not complete a message (the most kept is {MAX_UNCONSUMED_CIPHER})"
        ),
    )
}

impl<S: Stream> Stream for TlsStream<S> {
    fn read(&self, buf: Vec<u8>) -> impl std::future::Future<Output = BufResult<usize>> {
        self.read_plain(buf)
    }

    fn write_range(&self, buf: Vec<u8>, range: Range<usize>) -> impl std::future::Future<Output = BufResult<()>> {
        self.write_plain(buf, range)
    }

    async fn flush(&self) -> io::Result<()> {
        self.flush_records().await?;
        self.io.flush().await
    }

    fn shutdown_write(&self) -> impl std::future::Future<Output = io::Result<()>> {
        self.close_write()
    }

    fn poll_readable(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<io::Result<bool>> {
        self.poll_wait(cx)
    }

    fn release_idle_buffers(&self) {
        self.release_record_buffers();
        self.io.release_idle_buffers();
    }

    fn reset_on_close(&self) {
        self.io.reset_on_close();
    }

    fn ended_cleanly(&self) -> bool {
        self.peer_closed.get()
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

    fn take_received_buffer(&self) -> Option<Vec<u8>> {
        match self {
            MaybeTls::Plain(s) => s.take_received_buffer(),
            MaybeTls::Tls(_) => None,
        }
    }

    async fn write_range_then(
        &self,
        first: Vec<u8>,
        range: Range<usize>,
        more: Vec<(Vec<u8>, usize)>,
    ) -> BufResult<()> {
        match self {
            MaybeTls::Plain(s) => s.write_range_then(first, range, more).await,
            MaybeTls::Tls(_) => super::write_in_turn(self, first, range, more).await,
        }
    }

    async fn flush(&self) -> io::Result<()> {
        match self {
            MaybeTls::Plain(s) => s.flush().await,
            MaybeTls::Tls(t) => Stream::flush(&**t).await,
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
            MaybeTls::Tls(t) => t.release_idle_buffers(),
        }
    }

    fn reset_on_close(&self) {
        match self {
            MaybeTls::Plain(s) => s.reset_on_close(),
            MaybeTls::Tls(t) => t.reset_on_close(),
        }
    }

    fn ended_cleanly(&self) -> bool {
        match self {
            MaybeTls::Plain(s) => s.ended_cleanly(),
            MaybeTls::Tls(t) => Stream::ended_cleanly(&**t),
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

#[cfg(test)]
mod tests {
    //! The server end over epoll against rustls's buffered client on a
    //! plain thread: an independent peer, driven byte by byte where the
    //! record boundaries matter.

    use super::*;
    use crate::io::epoll::{Epoll, EpollStream};
    use crate::io::{Backend, Listener};
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::sync::Arc;
    use std::time::Duration;

    type Peer = rustls::ClientConnection;

    fn configs(
        version: &'static rustls::SupportedProtocolVersion,
    ) -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap().self_signed(&key).unwrap();
        let der = CertificateDer::from(cert.der().to_vec());
        let provider = crate::tls::provider();
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[version])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![der.clone()], PrivateKeyDer::Pkcs8(key.serialize_der().into()))
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        (Arc::new(server), Arc::new(client))
    }

    /// Runs `peer` on a thread against a `TlsStream` server that has done
    /// its handshake and then runs `server`.
    fn run<P, F, Fut>(version: &'static rustls::SupportedProtocolVersion, peer: P, server: F)
    where
        P: FnOnce(Peer, TcpStream) + Send + 'static,
        F: FnOnce(std::rc::Rc<TlsStream<EpollStream>>) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let (server_config, client_config) = configs(version);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let thread = std::thread::spawn(move || {
            let tcp = TcpStream::connect(addr).unwrap();
            tcp.set_nodelay(true).unwrap();
            let name = ServerName::try_from("localhost").unwrap();
            peer(Peer::new(client_config, name).unwrap(), tcp);
        });
        Epoll::run(16 * 1024, async move {
            let listener = Epoll::listener(listener).unwrap();
            let (socket, _) = listener.accept().await.unwrap();
            let conn = UnbufferedServerConnection::new(server_config).unwrap();
            let tls = std::rc::Rc::new(TlsStream::new(socket, conn));
            tls.handshake().await.unwrap();
            server(tls).await;
        })
        .unwrap();
        thread.join().unwrap();
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
    }

    fn handshake(peer: &mut Peer, tcp: &mut TcpStream) {
        while peer.is_handshaking() {
            peer.complete_io(tcp).unwrap();
        }
    }

    /// Sends `data` encrypted, in TCP writes of `chunk` bytes with pauses,
    /// so records arrive split across the server's reads.
    fn send_trickled(peer: &mut Peer, tcp: &mut TcpStream, data: &[u8], chunk: usize) {
        peer.writer().write_all(data).unwrap();
        let mut wire = Vec::new();
        while peer.wants_write() {
            peer.write_tls(&mut wire).unwrap();
        }
        for piece in wire.chunks(chunk) {
            tcp.write_all(piece).unwrap();
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn receive(peer: &mut Peer, tcp: &mut TcpStream, len: usize) -> Vec<u8> {
        let mut got = vec![0; len];
        rustls::Stream::new(peer, tcp).read_exact(&mut got).unwrap();
        got
    }

    async fn read_n(tls: &TlsStream<EpollStream>, len: usize) -> Vec<u8> {
        let mut got = Vec::new();
        while got.len() < len {
            let (res, buf) = tls.read(Vec::with_capacity(3000)).await;
            assert!(res.unwrap() > 0, "end of stream after {} of {len} bytes", got.len());
            got.extend_from_slice(&buf);
        }
        assert_eq!(got.len(), len);
        got
    }

    fn split_records_key_update_and_close_notify(version: &'static rustls::SupportedProtocolVersion) {
        let tls13 = version.version == rustls::ProtocolVersion::TLSv1_3;
        run(
            version,
            move |mut peer, mut tcp| {
                handshake(&mut peer, &mut tcp);
                send_trickled(&mut peer, &mut tcp, &pattern(40_000, 1), 700);
                assert_eq!(receive(&mut peer, &mut tcp, 100_000), pattern(100_000, 2));
                if tls13 {
                    // KeyUpdate with update_requested: the server's own
                    // KeyUpdate must go out before its next data record.
                    peer.refresh_traffic_keys().unwrap();
                }
                send_trickled(&mut peer, &mut tcp, &pattern(5_000, 3), 333);
                assert_eq!(receive(&mut peer, &mut tcp, 5_000), pattern(5_000, 3));
                peer.send_close_notify();
                peer.complete_io(&mut tcp).unwrap();
                tcp.write_all(b"after close_notify: not data").unwrap();
                // The server answers with its own close_notify.
                let mut rest = Vec::new();
                rustls::Stream::new(&mut peer, &mut tcp).read_to_end(&mut rest).unwrap();
                assert!(rest.is_empty());
            },
            |tls| async move {
                assert_eq!(read_n(&tls, 40_000).await, pattern(40_000, 1));
                let response = pattern(100_000, 2);
                assert!(tls.write_all(response[..50_000].to_vec()).await.0.is_ok());
                assert!(tls.write_all(response[50_000..].to_vec()).await.0.is_ok());
                let echo = read_n(&tls, 5_000).await;
                assert!(tls.write_all(echo).await.0.is_ok());
                for _ in 0..2 {
                    let (res, _) = tls.read(Vec::with_capacity(100)).await;
                    assert_eq!(res.unwrap(), 0, "close_notify ends the stream");
                }
                assert!(tls.has_unread_input(), "the end of the stream is input");
                tls.shutdown_write().await.unwrap();
            },
        );
    }

    #[test]
    fn split_records_key_update_and_close_notify_tls13() {
        split_records_key_update_and_close_notify(&rustls::version::TLS13);
    }

    #[test]
    fn split_records_and_close_notify_tls12() {
        split_records_key_update_and_close_notify(&rustls::version::TLS12);
    }

    #[test]
    fn a_tcp_close_without_close_notify_is_an_end_of_stream() {
        run(
            &rustls::version::TLS13,
            |mut peer, mut tcp| {
                handshake(&mut peer, &mut tcp);
                peer.writer().write_all(b"0123456789").unwrap();
                peer.complete_io(&mut tcp).unwrap();
                tcp.shutdown(std::net::Shutdown::Both).unwrap();
            },
            |tls| async move {
                assert_eq!(read_n(&tls, 10).await, b"0123456789");
                let (res, _) = tls.read(Vec::with_capacity(100)).await;
                assert_eq!(res.unwrap(), 0);
            },
        );
    }

    #[test]
    fn a_read_dropped_in_the_middle_of_a_record_loses_nothing() {
        run(
            &rustls::version::TLS13,
            |mut peer, mut tcp| {
                handshake(&mut peer, &mut tcp);
                peer.writer().write_all(&pattern(3_000, 4)).unwrap();
                let mut wire = Vec::new();
                while peer.wants_write() {
                    peer.write_tls(&mut wire).unwrap();
                }
                tcp.write_all(&wire[..1_000]).unwrap();
                std::thread::sleep(Duration::from_millis(300));
                tcp.write_all(&wire[1_000..]).unwrap();
                assert_eq!(receive(&mut peer, &mut tcp, 3), b"yes");
            },
            |tls| async move {
                let first = tokio::time::timeout(Duration::from_millis(100), tls.read(Vec::with_capacity(4096))).await;
                assert!(first.is_err(), "half a record is no data");
                assert_eq!(read_n(&tls, 3_000).await, pattern(3_000, 4));
                assert!(tls.write_all(b"yes".to_vec()).await.0.is_ok());
            },
        );
    }

    #[test]
    fn one_task_reads_while_another_writes() {
        const UP: usize = 300_000;
        const DOWN: usize = 300_000;
        run(
            &rustls::version::TLS13,
            |mut peer, mut tcp| {
                handshake(&mut peer, &mut tcp);
                peer.set_buffer_limit(None);
                peer.writer().write_all(&pattern(UP, 5)).unwrap();
                tcp.set_nonblocking(true).unwrap();
                let mut got = Vec::new();
                let mut chunk = [0u8; 8192];
                while got.len() < DOWN || peer.wants_write() {
                    let mut moved = false;
                    while peer.wants_write() {
                        match peer.write_tls(&mut tcp) {
                            Ok(_) => moved = true,
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            Err(e) => panic!("{e}"),
                        }
                    }
                    match peer.read_tls(&mut tcp) {
                        Ok(0) => panic!("closed early"),
                        Ok(_) => {
                            moved = true;
                            peer.process_new_packets().unwrap();
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => panic!("{e}"),
                    }
                    loop {
                        match peer.reader().read(&mut chunk) {
                            Ok(n) if n > 0 => got.extend_from_slice(&chunk[..n]),
                            _ => break,
                        }
                    }
                    if !moved {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
                assert_eq!(got, pattern(DOWN, 6));
            },
            |tls| async move {
                let writer = tls.clone();
                let write = tokio::task::spawn_local(async move {
                    for piece in pattern(DOWN, 6).chunks(16 * 1024) {
                        assert!(writer.write_all(piece.to_vec()).await.0.is_ok());
                    }
                });
                assert_eq!(read_n(&tls, UP).await, pattern(UP, 5));
                write.await.unwrap();
            },
        );
    }

    /// A handshake message declared 64 KiB long, sent one byte per record:
    /// rustls keeps joining it and consumes nothing, so the stream must
    /// stop at `MAX_UNCONSUMED_CIPHER` rather than keep reading.
    #[test]
    fn a_handshake_message_that_never_completes_is_refused_at_the_bound() {
        let (server_config, _) = configs(&rustls::version::TLS13);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = std::thread::spawn(move || {
            let mut tcp = TcpStream::connect(addr).unwrap();
            // A ClientHello (type 1) of 0xffff bytes: its header, then one
            // byte per plaintext handshake record, 6 bytes each on the wire.
            let mut wire = Vec::new();
            wire.extend_from_slice(&[22, 3, 1, 0, 4, 1, 0, 0xff, 0xff]);
            for _ in 0..30_000 {
                wire.extend_from_slice(&[22, 3, 1, 0, 1, 0]);
            }
            // The server stops reading once it refuses: the rest may fail.
            for piece in wire.chunks(8 * 1024) {
                if tcp.write_all(piece).is_err() {
                    break;
                }
            }
            wire.len()
        });
        let err = Epoll::run(16 * 1024, async move {
            let listener = Epoll::listener(listener).unwrap();
            let (socket, _) = listener.accept().await.unwrap();
            let tls = TlsStream::new(socket, UnbufferedServerConnection::new(server_config).unwrap());
            let result = tokio::time::timeout(Duration::from_secs(10), tls.handshake()).await;
            let err = result.expect("the handshake ends").expect_err("the handshake fails");
            let kept = tls.cipher.borrow().len() - tls.start.get();
            (err.kind(), err.to_string(), kept)
        })
        .unwrap();
        let sent = peer.join().unwrap();
        assert!(sent > 2 * MAX_UNCONSUMED_CIPHER, "the peer sent more than the bound");
        assert_eq!(err.0, io::ErrorKind::InvalidData, "{}", err.1);
        assert!(err.1.contains("do not complete a message"), "{}", err.1);
        assert!(err.2 < MAX_UNCONSUMED_CIPHER + CIPHER_BUFFER, "kept {} bytes", err.2);
    }

    /// A task waiting for the turn to write sleeps until the holder gives
    /// it up: the holder may be stuck behind a peer that does not read.
    #[test]
    fn a_task_waiting_for_the_turn_sleeps_until_it_is_given_up() {
        run(
            &rustls::version::TLS13,
            |mut peer, mut tcp| {
                handshake(&mut peer, &mut tcp);
                assert_eq!(receive(&mut peer, &mut tcp, 4), b"done");
            },
            |tls| async move {
                let held = tls.take_turn().await;
                let polls = std::rc::Rc::new(Cell::new(0u32));
                let (waiter, counted) = (tls.clone(), polls.clone());
                let wait = tokio::task::spawn_local(async move {
                    let mut turn = std::pin::pin!(waiter.take_turn());
                    std::future::poll_fn(|cx| {
                        counted.set(counted.get() + 1);
                        std::future::Future::poll(turn.as_mut(), cx).map(drop)
                    })
                    .await;
                });
                tokio::time::sleep(Duration::from_millis(50)).await;
                assert_eq!(polls.get(), 1, "polled once, then asleep while the turn is held");
                drop(held);
                wait.await.unwrap();
                assert_eq!(polls.get(), 2, "woken once when the turn was given up");
                assert!(tls.write_all(b"done".to_vec()).await.0.is_ok());
            },
        );
    }
}
