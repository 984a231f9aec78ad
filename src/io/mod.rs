//! The only module that touches sockets. The proxy is generic over [`Backend`]:
//! owned buffers move into each operation and come back with its result
//! (monoio style), which io_uring needs and epoll does not mind.
//!
//! - [`epoll::Epoll`]: a current-thread tokio runtime per core.
//! - [`uring::Uring`]: corelink's own io_uring driver on the same tokio
//!   current-thread runtime (timers, tasks): one ring per core.
//! - [`tls`]: [`TlsStream`], rustls driven sans-IO over any [`Stream`], so TLS
//!   runs the same on both backends; [`MaybeTls`], what the proxy reads and
//!   writes. Its rustls configuration comes from [`crate::tls`].
//!
//! Both run tasks with `tokio::task::spawn_local` and time with `tokio::time`.

pub mod epoll;
pub mod listener;
pub mod probe;
pub mod tls;
pub mod uring;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::ops::Range;

pub use listener::{bind_reuseport_group, BindError};
pub use probe::{select_backend, IoKind};
pub use tls::{tls_error, MaybeTls, TlsInfo, TlsStream};

/// Bytes moved into an I/O operation and handed back with its result.
pub type BufResult<T> = (io::Result<T>, Vec<u8>);

/// A connected TCP stream. Methods take `&self` so one task can read and write
/// the same connection concurrently (request body up while response comes down).
pub trait Stream: 'static {
    /// Reads into the spare capacity of `buf` (appending after `buf.len()`).
    /// The caller guarantees spare capacity; `Ok(0)` means end of stream.
    fn read(&self, buf: Vec<u8>) -> impl Future<Output = BufResult<usize>>;
    /// Writes all of `buf[range]`. The buffer comes back unchanged.
    fn write_range(&self, buf: Vec<u8>, range: Range<usize>) -> impl Future<Output = BufResult<()>>;
    /// Writes all of `buf`.
    fn write_all(&self, buf: Vec<u8>) -> impl Future<Output = BufResult<()>> {
        let len = buf.len();
        self.write_range(buf, 0..len)
    }
    /// A whole buffer of received bytes already waiting beyond what `read`
    /// returned, taken without waiting or copying: io_uring's bundled
    /// receives fill several ring buffers at once. `None` by default (epoll
    /// reads into the caller's one buffer). The body relay gathers these
    /// behind the bytes it just read, for [`Stream::write_range_then`].
    fn take_received_buffer(&self) -> Option<Vec<u8>> {
        None
    }
    /// Writes all of `first[range]`, then the first `len` bytes of each of
    /// `more`'s buffers, in order: one vectored send where the backend has
    /// one (io_uring), one write after another otherwise. `more`'s buffers
    /// are used up; `first` comes back.
    fn write_range_then(
        &self,
        first: Vec<u8>,
        range: Range<usize>,
        more: Vec<(Vec<u8>, usize)>,
    ) -> impl Future<Output = BufResult<()>> {
        write_in_turn(self, first, range, more)
    }
    /// Waits until every byte written so far is in the kernel's hands, and
    /// reports a failure to send any of it. io_uring's writes of a few KiB
    /// return once their send is queued (the next write waits for it); a
    /// connection whose last bytes must arrive is flushed before it is
    /// dropped, since dropping cancels a send the socket has not taken.
    /// Writes on epoll complete in the call: nothing to wait for.
    fn flush(&self) -> impl Future<Output = io::Result<()>> {
        std::future::ready(Ok(()))
    }
    /// Half-closes the write side (FIN), for tunnels and close-delimited bodies.
    /// Async because TLS sends its close_notify alert first. Flushes first.
    fn shutdown_write(&self) -> impl Future<Output = io::Result<()>>;
    /// Waits, holding no buffer, until the stream has something to read:
    /// bytes, or the end of the stream (`Ok(false)` when the backend knows it
    /// is the end; epoll reports it as readable and the next read says 0).
    /// A connection between requests waits here, so an idle keep-alive
    /// connection costs no buffer: epoll waits for readiness; io_uring has
    /// its receive in flight and the kernel picks a buffer from the ring
    /// when bytes arrive (the next read returns them).
    fn wait_readable(&self) -> impl Future<Output = io::Result<bool>> {
        std::future::poll_fn(|cx| self.poll_readable(cx))
    }
    /// `wait_readable` as a poll function, for a waiter that keeps no
    /// future per stream (the parked connections, `proxy::parked`).
    fn poll_readable(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<io::Result<bool>>;
    /// Gives back what the stream holds only to be fast while busy, before a
    /// connection parks for a long idle wait (TLS: its record buffers).
    fn release_idle_buffers(&self) {}
    /// Whether the peer has sent anything (or closed) that nobody read: true
    /// for an idle pooled connection whose server wrote past its response
    /// (late body bytes, a smuggled extra response) or hung up. Such a
    /// connection must not carry the next request: its bytes would be read as
    /// that request's response. A non-blocking `MSG_PEEK` where the backend
    /// cannot tell without one.
    fn has_unread_input(&self) -> bool;
    /// The connection goes idle in the pool: a backend that can learn of
    /// unread input without a syscall starts watching for it here (io_uring
    /// puts a receive in flight, which holds no buffer until bytes arrive
    /// and which the next read takes over), so `has_unread_input` on the
    /// next take needs no peek. epoll trusts its readiness already.
    fn watch_unread_input(&self) {}
    /// The connection ends in the middle of a message: when it closes, the
    /// peer gets a reset (SO_LINGER 0), not a FIN. A FIN after a response
    /// whose end is the close (an HTTP/1.0 client's, a close-delimited
    /// body) would tell the client a truncated body was complete.
    fn reset_on_close(&self);
    /// Whether the stream ended as its protocol ends it: always for TCP;
    /// for TLS, only after the peer's close_notify (a TCP close without it
    /// can be an attacker's FIN cutting a close-delimited body short).
    fn ended_cleanly(&self) -> bool {
        true
    }
}

/// [`Stream::write_range_then`] as one write after another.
pub(crate) async fn write_in_turn<S: Stream + ?Sized>(
    s: &S,
    first: Vec<u8>,
    range: Range<usize>,
    more: Vec<(Vec<u8>, usize)>,
) -> BufResult<()> {
    let (res, first) = s.write_range(first, range).await;
    if res.is_err() {
        return (res, first);
    }
    for (buf, len) in more {
        let len = len.min(buf.len());
        let (res, _) = s.write_range(buf, 0..len).await;
        if res.is_err() {
            return (res, first);
        }
    }
    (Ok(()), first)
}

pub trait Listener: 'static {
    type Stream: Stream;
    fn accept(&self) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>>;
    /// Accepts a connection already queued, without waiting. Used when draining,
    /// so connections in this worker's accept queue are served, never reset.
    fn try_accept(&self) -> io::Result<Option<(Self::Stream, SocketAddr)>>;
}

/// One I/O backend: its stream and listener types, connect, and how to run a
/// per-core event loop.
pub trait Backend: 'static {
    type Stream: Stream;
    type Listener: Listener<Stream = Self::Stream>;
    const NAME: &'static str;

    /// Wraps a bound, listening, non-blocking std listener. Must be called on
    /// the worker's own event loop.
    fn listener(std: std::net::TcpListener) -> io::Result<Self::Listener>;
    fn connect(addr: SocketAddr) -> impl Future<Output = io::Result<Self::Stream>>;
    /// Runs `main` to completion on a new event loop on the current thread.
    /// `buffer_size` is the core's I/O buffer size (`corelink.bufferSize`):
    /// io_uring receives into buffers of that size.
    fn run<F: Future>(buffer_size: usize, main: F) -> io::Result<F::Output>;
    /// Frees the backend's own spare buffers (io_uring: the buffer ring's
    /// replacements); called when the core is quiet. Returns how many.
    fn trim_spare_buffers() -> usize {
        0
    }
}

/// SO_LINGER 0: the close that follows sends a reset. Best effort: a socket
/// the option cannot be set on closes with a FIN as before.
pub(crate) fn set_reset_on_close(sock: socket2::SockRef<'_>) {
    if let Err(e) = sock.set_linger(Some(std::time::Duration::ZERO)) {
        tracing::debug!(error = %e, "SO_LINGER 0 not set; the connection closes with a FIN");
    }
}

/// `recv(MSG_PEEK | MSG_DONTWAIT)` of one byte: anything but EAGAIN means data,
/// EOF or an error is waiting.
pub(crate) fn peek_unread(sock: socket2::SockRef<'_>) -> bool {
    let mut byte = [std::mem::MaybeUninit::<u8>::uninit(); 1];
    match sock.recv_with_flags(&mut byte, libc::MSG_PEEK | libc::MSG_DONTWAIT) {
        Err(e) => e.kind() != io::ErrorKind::WouldBlock,
        Ok(_) => true,
    }
}

/// Accepts a connection already queued on a tokio listener without waiting
/// (tokio has no `try_accept`): for draining, on both backends.
pub(crate) fn try_accept_queued(
    listener: &tokio::net::TcpListener,
) -> io::Result<Option<(std::net::TcpStream, SocketAddr)>> {
    match socket2::SockRef::from(listener).accept() {
        Ok((socket, peer)) => {
            let peer = peer.as_socket().ok_or_else(|| io::Error::other("non-IP peer"))?;
            Ok(Some((socket.into(), peer)))
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    }
}
