//! The io_uring backend, on tokio-uring. The ring is built with COOP_TASKRUN and
//! SINGLE_ISSUER: with default flags every completion interrupts the task with
//! an IPI-like task_work run, which measured 12.3 µs per proxied request against
//! 9.3–10.4 µs with these flags (DESIGN.md; docs/io-backends.md has ours).
//! DEFER_TASKRUN is not used: tokio-uring never enters the ring with
//! GETEVENTS, so completions would never arrive.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::ops::Range;

use tokio_uring::buf::BoundedBuf;

use super::{Backend, BufResult, Listener, Stream};

/// Submission queue size per core. Completions for accept, read, write and
/// connect on every open connection of the core go through it; tokio-uring
/// flushes when it fills, so this bounds batching, not connections.
const RING_ENTRIES: u32 = 2048;

pub struct Uring;

pub struct UringStream(tokio_uring::net::TcpStream);

/// Accepting goes through tokio's readiness (epoll) on the same thread, not an
/// io_uring accept: tokio-uring cannot cancel an operation, so an accept still
/// in flight when draining starts would take a connection nobody serves.
/// Accept is once per connection, not per request; multishot accept belongs
/// to the io-uring driver that replaces tokio-uring (docs/io-backends.md).
pub struct UringListener(tokio::net::TcpListener);

fn into_uring(stream: std::net::TcpStream) -> io::Result<UringStream> {
    stream.set_nodelay(true)?;
    Ok(UringStream(tokio_uring::net::TcpStream::from_std(stream)))
}

impl Stream for UringStream {
    const WAIT_NEEDS_BUFFER: bool = true;

    fn has_unread_input(&self) -> bool {
        use std::os::fd::{AsRawFd, BorrowedFd};
        // SAFETY: the descriptor belongs to `self.0`, which outlives this
        // borrow; nothing closes it during the call.
        let fd = unsafe { BorrowedFd::borrow_raw(self.0.as_raw_fd()) };
        super::peek_unread(socket2::SockRef::from(&fd))
    }

    async fn read(&self, mut buf: Vec<u8>) -> BufResult<usize> {
        debug_assert!(buf.capacity() > buf.len(), "read needs spare capacity");
        let len = buf.len();
        let (res, slice) = self.0.read(buf.slice(len..)).await;
        buf = slice.into_inner();
        (res, buf)
    }

    async fn write_range(&self, buf: Vec<u8>, range: Range<usize>) -> BufResult<()> {
        if range.is_empty() {
            return (Ok(()), buf);
        }
        let (res, slice) = self.0.write_all(buf.slice(range)).await;
        (res, slice.into_inner())
    }

    async fn shutdown_write(&self) -> io::Result<()> {
        self.0.shutdown(std::net::Shutdown::Write)
    }

    async fn wait_readable(&self, small: Vec<u8>) -> BufResult<bool> {
        let (res, small) = self.read(small).await;
        (res.map(|n| n > 0), small)
    }
}

impl Listener for UringListener {
    type Stream = UringStream;

    async fn accept(&self) -> io::Result<(UringStream, SocketAddr)> {
        let (stream, peer) = self.0.accept().await?;
        Ok((into_uring(stream.into_std()?)?, peer))
    }

    fn try_accept(&self) -> io::Result<Option<(UringStream, SocketAddr)>> {
        let Some((std, peer)) = super::try_accept_queued(&self.0)? else { return Ok(None) };
        Ok(Some((into_uring(std)?, peer)))
    }
}

impl Backend for Uring {
    type Stream = UringStream;
    type Listener = UringListener;
    const NAME: &'static str = "uring";

    fn listener(std: std::net::TcpListener) -> io::Result<UringListener> {
        std.set_nonblocking(true)?;
        Ok(UringListener(tokio::net::TcpListener::from_std(std)?))
    }

    async fn connect(addr: SocketAddr) -> io::Result<UringStream> {
        let stream = tokio_uring::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(UringStream(stream))
    }

    fn run<F: Future>(main: F) -> io::Result<F::Output> {
        let mut ring = io_uring::IoUring::<io_uring::squeue::Entry, io_uring::cqueue::Entry>::builder();
        ring.setup_coop_taskrun().setup_single_issuer();
        let mut builder = tokio_uring::builder();
        builder.entries(RING_ENTRIES).uring_builder(&ring);
        let rt = tokio_uring::Runtime::new(&builder)?;
        Ok(rt.block_on(main))
    }
}

impl Drop for UringStream {
    fn drop(&mut self) {
        // A read still in flight in the ring (its future dropped by a timeout
        // or a select) holds the fd open until it completes, which for an
        // idle peer is never. Shutting the socket down completes every pending
        // operation at once, so the fd is really closed now.
        let _ = self.0.shutdown(std::net::Shutdown::Both);
    }
}
