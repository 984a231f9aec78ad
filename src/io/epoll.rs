//! The epoll backend: a current-thread tokio runtime and `LocalSet` per core.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::ops::Range;

use super::{Backend, BufResult, Listener, Stream};

pub struct Epoll;

pub struct EpollStream(tokio::net::TcpStream);
pub struct EpollListener(tokio::net::TcpListener);

impl Stream for EpollStream {
    const WAIT_NEEDS_BUFFER: bool = false;

    fn has_unread_input(&self) -> bool {
        // Readiness was cleared after the last short read (see `read`): if
        // epoll has not reported the socket readable since, nothing arrived,
        // and no syscall is needed. Otherwise confirm with a peek.
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match self.0.poll_read_ready(&mut cx) {
            std::task::Poll::Pending => false,
            std::task::Poll::Ready(_) => super::peek_unread(socket2::SockRef::from(&self.0)),
        }
    }

    async fn read(&self, mut buf: Vec<u8>) -> BufResult<usize> {
        debug_assert!(buf.capacity() > buf.len(), "read needs spare capacity");
        loop {
            let spare = buf.capacity() - buf.len();
            // try_read_buf consults tokio's cached readiness first, so trying
            // before waiting costs no syscall when the socket is known empty.
            match self.0.try_read_buf(&mut buf) {
                Ok(n) => {
                    if n > 0 && n < spare {
                        // A short read drained the socket. Tell tokio, so the
                        // next read waits for epoll instead of first making a
                        // recv that fails with EAGAIN (one syscall less per
                        // request). Safe: no reactor turn can happen between
                        // the recv above and this, so an event for data that
                        // arrived since is still pending in epoll.
                        let _ = self
                            .0
                            .try_io(tokio::io::Interest::READABLE, || Err::<(), _>(io::ErrorKind::WouldBlock.into()));
                    }
                    return (Ok(n), buf);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Err(e) = self.0.readable().await {
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
            match self.0.try_write(&buf[written..range.end]) {
                Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), buf),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Err(e) = self.0.writable().await {
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
        socket2::SockRef::from(&self.0).shutdown(std::net::Shutdown::Write)
    }

    async fn wait_readable(&self, small: Vec<u8>) -> BufResult<bool> {
        // readable() alone may return at once on stale cached readiness (the
        // last read did not end in WouldBlock); a one-byte MSG_PEEK waits for
        // real data or EOF and clears stale readiness, without a buffer.
        let mut probe = [0u8; 1];
        let res = loop {
            match self.0.peek(&mut probe).await {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other.map(|n| n > 0),
            }
        };
        (res, small)
    }
}

impl Listener for EpollListener {
    type Stream = EpollStream;

    async fn accept(&self) -> io::Result<(EpollStream, SocketAddr)> {
        let (stream, peer) = self.0.accept().await?;
        stream.set_nodelay(true)?;
        Ok((EpollStream(stream), peer))
    }

    fn try_accept(&self) -> io::Result<Option<(EpollStream, SocketAddr)>> {
        let Some((std, peer)) = super::try_accept_queued(&self.0)? else { return Ok(None) };
        std.set_nonblocking(true)?;
        std.set_nodelay(true)?;
        Ok(Some((EpollStream(tokio::net::TcpStream::from_std(std)?), peer)))
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
        Ok(EpollStream(stream))
    }

    fn run<F: Future>(main: F) -> io::Result<F::Output> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let local = tokio::task::LocalSet::new();
        Ok(local.block_on(&rt, main))
    }
}

impl EpollStream {
    #[cfg(test)]
    pub(crate) fn for_tests(stream: tokio::net::TcpStream) -> Self {
        EpollStream(stream)
    }
}
