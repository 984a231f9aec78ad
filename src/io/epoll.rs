//! The epoll backend: a current-thread tokio runtime and `LocalSet` per core.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::ops::Range;

use super::{Backend, BufResult, Listener, Stream};

pub struct Epoll;

pub struct EpollStream {
    socket: tokio::net::TcpStream,
    /// tokio's cached readiness was cleared after the last read drained the
    /// socket, so readiness seen since is a new epoll event, not a stale
    /// one: `wait_readable` can trust it without a peek.
    drained: Cell<bool>,
}
pub struct EpollListener(tokio::net::TcpListener);

impl Stream for EpollStream {
    fn reset_on_close(&self) {
        super::set_reset_on_close(socket2::SockRef::from(&self.socket));
    }

    fn has_unread_input(&self) -> bool {
        // Readiness was cleared after the last short read (see `read`): if
        // epoll has not reported the socket readable since, nothing arrived,
        // and no syscall is needed. Otherwise confirm with a peek.
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match self.socket.poll_read_ready(&mut cx) {
            std::task::Poll::Pending => false,
            std::task::Poll::Ready(_) => super::peek_unread(socket2::SockRef::from(&self.socket)),
        }
    }

    async fn read(&self, mut buf: Vec<u8>) -> BufResult<usize> {
        debug_assert!(buf.capacity() > buf.len(), "read needs spare capacity");
        loop {
            let spare = buf.capacity() - buf.len();
            // try_read_buf consults tokio's cached readiness first, so trying
            // before waiting costs no syscall when the socket is known empty.
            match self.socket.try_read_buf(&mut buf) {
                Ok(n) => {
                    if n > 0 && n < spare {
                        // A short read drained the socket. Tell tokio, so the
                        // next read waits for epoll instead of first making a
                        // recv that fails with EAGAIN (one syscall less per
                        // request). Safe: no reactor turn can happen between
                        // the recv above and this, so an event for data that
                        // arrived since is still pending in epoll.
                        let _ = self
                            .socket
                            .try_io(tokio::io::Interest::READABLE, || Err::<(), _>(io::ErrorKind::WouldBlock.into()));
                        self.drained.set(true);
                    } else {
                        self.drained.set(false);
                    }
                    return (Ok(n), buf);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // tokio cleared its readiness with this WouldBlock.
                    self.drained.set(true);
                    if let Err(e) = self.socket.readable().await {
                        return (Err(e), buf);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return (Err(e), buf),
            }
        }
    }

    async fn write_range(&self, buf: Vec<u8>, range: Range<usize>) -> BufResult<()> {
        let mut written = range.start;
        while written < range.end {
            match self.socket.try_write(&buf[written..range.end]) {
                Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), buf),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Err(e) = self.socket.writable().await {
                        return (Err(e), buf);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return (Err(e), buf),
            }
        }
        (Ok(()), buf)
    }

    async fn shutdown_write(&self) -> io::Result<()> {
        socket2::SockRef::from(&self.socket).shutdown(std::net::Shutdown::Write)
    }

    fn poll_readable(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<io::Result<bool>> {
        use std::task::Poll;
        loop {
            if !self.drained.get() {
                // The last read filled its buffer: readiness may be stale.
                // A non-blocking one-byte peek tells; WouldBlock clears
                // tokio's readiness, which can then be trusted.
                let mut probe = [std::mem::MaybeUninit::<u8>::uninit(); 1];
                let peeked = self.socket.try_io(tokio::io::Interest::READABLE, || {
                    socket2::SockRef::from(&self.socket)
                        .recv_with_flags(&mut probe, libc::MSG_PEEK | libc::MSG_DONTWAIT)
                });
                match peeked {
                    Ok(_) => return Poll::Ready(Ok(true)),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.drained.set(true),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
            // Trusted readiness: no syscall while the request is already
            // here, one epoll wake-up otherwise (as a read would wait).
            return self.socket.poll_read_ready(cx).map_ok(|()| true);
        }
    }
}

impl Listener for EpollListener {
    type Stream = EpollStream;

    async fn accept(&self) -> io::Result<(EpollStream, SocketAddr)> {
        let (stream, peer) = self.0.accept().await?;
        stream.set_nodelay(true)?;
        Ok((EpollStream::new(stream), peer))
    }

    fn try_accept(&self) -> io::Result<Option<(EpollStream, SocketAddr)>> {
        let Some((std, peer)) = super::try_accept_queued(&self.0)? else { return Ok(None) };
        std.set_nonblocking(true)?;
        std.set_nodelay(true)?;
        Ok(Some((EpollStream::new(tokio::net::TcpStream::from_std(std)?), peer)))
    }
}

impl Backend for Epoll {
    type Stream = EpollStream;
    type Listener = EpollListener;
    const NAME: &'static str = "epoll";

    fn listener(std: std::net::TcpListener) -> io::Result<EpollListener> {
        std.set_nonblocking(true)?;
        Ok(EpollListener(tokio::net::TcpListener::from_std(std)?))
    }

    async fn connect(addr: SocketAddr) -> io::Result<EpollStream> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(EpollStream::new(stream))
    }

    fn run<F: Future>(_buffer_size: usize, main: F) -> io::Result<F::Output> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let local = tokio::task::LocalSet::new();
        Ok(local.block_on(&rt, main))
    }
}

impl EpollStream {
    fn new(socket: tokio::net::TcpStream) -> Self {
        // A new registration has no cached readiness: the first readiness
        // tokio sees is epoll's.
        EpollStream { socket, drained: Cell::new(true) }
    }

    #[cfg(test)]
    pub(crate) fn for_tests(stream: tokio::net::TcpStream) -> Self {
        EpollStream::new(stream)
    }
}
