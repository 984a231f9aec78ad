//! The io_uring backend, on corelink's own per-core driver ([`driver`]):
//! one ring per worker inside the worker's current-thread tokio runtime,
//! `SINGLE_ISSUER | COOP_TASKRUN`, submissions batched into one
//! `io_uring_enter` per loop turn, receives into a provided buffer ring
//! ([`buf_ring`]) so a waiting connection holds no buffer, bundled so one
//! receive can fill several of its buffers (sent on with one vectored
//! send), multishot so a receive stays armed from one request to the next,
//! and every abandoned operation cancelled. docs/io-backends.md has the
//! measurements.

mod buf_ring;
mod driver;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::mem::ManuallyDrop;
use std::net::SocketAddr;
use std::ops::Range;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use io_uring::{opcode, types};

use super::{Backend, BufResult, Listener, Stream};
use driver::{Gathered, Keep, Operation};

pub struct Uring;

/// A TCP connection on the ring. At most one receive is in flight at a time
/// (a multishot one, which stays armed between reads and delivers whenever
/// bytes arrive, until its byte limit or the driver stops it)
/// and it belongs to the stream, not to the future that started it: a read
/// dropped by a timeout (or a connection moving to its parked task) leaves
/// the receive in flight, and the next read or wait takes it over, so no
/// byte is lost and no buffer is parked. Bytes received beyond what the
/// caller's buffer could take wait in `received`, and the other buffers of
/// a bundled receive in `more` (taken whole by
/// [`Stream::take_received_buffer`], or read in turn).
///
/// A small write returns once its send is queued, not when it completes
/// (see [`DETACHED_SEND_MAX`]): the next write, [`Stream::flush`] and
/// [`Stream::shutdown_write`] wait for it first, so bytes leave in order and
/// a failed send is reported by the next of them.
pub struct UringStream {
    /// Closed after the SQ's entries have gone to the kernel (see
    /// `driver::close_after_submit`), hence not dropped in place.
    fd: ManuallyDrop<OwnedFd>,
    /// The receive in flight (its driver slot), if any.
    recv: Cell<Option<u32>>,
    /// The optional flags the last receive started with (for the fallback
    /// when the kernel refuses one).
    recv_flags: Cell<driver::RecvFlags>,
    /// Received bytes not yet read: a buffer from the ring and the offset
    /// of the first unread byte.
    received: RefCell<Option<(Vec<u8>, usize)>>,
    /// The buffers a bundled receive filled after the one in `received`,
    /// last first (the next to read is popped); `None` while `received` is
    /// empty. Boxed: a parked connection carries only the pointer.
    #[allow(clippy::box_collection)]
    more: Cell<Option<Box<Vec<Vec<u8>>>>>,
    /// The last receive left nothing in the socket: the next one waits for
    /// bytes before trying (`IORING_RECVSEND_POLL_FIRST`).
    drained: Cell<bool>,
    /// The small write whose send nobody awaits yet.
    send: Cell<DetachedSend>,
}

/// Writes of at most this many bytes are copied and sent without the
/// writer waiting for the send's completion: a small request head or
/// response then costs no task wake-up and no loop turn of its own, and the
/// receive that follows it (the response, the next request) goes to the
/// kernel in the same `io_uring_enter` (docs/io-backends.md, "Small writes
/// that do not wait"). Larger writes (body chunks) wait, uncopied.
const DETACHED_SEND_MAX: usize = 4096;

/// The state of a stream's detached send.
#[derive(Clone, Copy)]
enum DetachedSend {
    None,
    /// Started; the driver frees its slot once it has sent everything
    /// (`MSG_WAITALL` makes the kernel finish a short send itself).
    Started(driver::DetachedId),
    /// Completed with this error (an errno; 0: the connection failed after
    /// part of the bytes), reported by the next write or flush.
    Failed(i32),
}

fn detached_send_error(errno: i32) -> io::Error {
    match errno {
        0 => io::Error::new(io::ErrorKind::WriteZero, "the connection failed in the middle of a send"),
        e => io::Error::from_raw_os_error(e),
    }
}

/// Accepting goes through tokio's readiness (epoll) on the same thread:
/// accept happens once per connection, not per request, and an accept in
/// the ring would need cancelling when draining starts; accept4 on readiness
/// hands over a non-blocking socket the ring then uses directly (never
/// registered with epoll).
pub struct UringListener(tokio::io::unix::AsyncFd<std::net::TcpListener>);

impl UringStream {
    fn new(fd: OwnedFd) -> io::Result<UringStream> {
        socket2::SockRef::from(&fd).set_tcp_nodelay(true)?;
        Ok(UringStream {
            fd: ManuallyDrop::new(fd),
            recv: Cell::new(None),
            recv_flags: Cell::new(driver::RecvFlags::default()),
            received: RefCell::new(None),
            more: Cell::new(None),
            drained: Cell::new(false),
            send: Cell::new(DetachedSend::None),
        })
    }

    /// Queues a send of a copy of `bytes` and returns: see
    /// [`DETACHED_SEND_MAX`]. The caller has settled the one before.
    fn send_detached(&self, bytes: &[u8]) {
        let started = driver::send_copy_detached(self.fd.as_raw_fd(), bytes);
        self.send.set(DetachedSend::Started(started));
    }

    /// Waits for the detached send, if any: `Err` if it failed.
    fn poll_settle_send(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<io::Result<()>> {
        use std::task::Poll;
        match self.send.get() {
            DetachedSend::None => Poll::Ready(Ok(())),
            DetachedSend::Failed(errno) => {
                self.send.set(DetachedSend::None);
                Poll::Ready(Err(detached_send_error(errno)))
            }
            DetachedSend::Started(started) => {
                let Poll::Ready(done) = driver::poll_detached(started, Some(cx)) else { return Poll::Pending };
                self.send.set(DetachedSend::None);
                Poll::Ready(done.map_err(detached_send_error))
            }
        }
    }

    async fn settle_send(&self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll_settle_send(cx)).await
    }

    /// Forgets a detached send that has completed, keeping a failure for
    /// the next write. Called when the connection goes idle (parked, or
    /// into the upstream pool); on the request path the next write does it.
    fn collect_send(&self) {
        if let DetachedSend::Started(started) = self.send.get() {
            // No waker: a writer waiting for the send keeps its own.
            match driver::poll_detached(started, None) {
                std::task::Poll::Pending => {}
                std::task::Poll::Ready(Ok(())) => self.send.set(DetachedSend::None),
                std::task::Poll::Ready(Err(errno)) => self.send.set(DetachedSend::Failed(errno)),
            }
        }
    }

    /// Moves received bytes into `buf`: the whole ring buffer when `buf` is
    /// an empty one of the same size (a swap, no copy), else as many bytes
    /// as fit. `None` when nothing is waiting. Taking the last of them may
    /// start the next receive ([`UringStream::read_ahead`]).
    fn take_received(&self, buf: &mut Vec<u8>) -> Option<usize> {
        let mut received = self.received.borrow_mut();
        let (bytes, start) = received.as_mut()?;
        if *start == 0 && buf.is_empty() && buf.capacity() == bytes.capacity() {
            let n = bytes.len();
            std::mem::swap(buf, bytes);
            drop(received);
            self.next_received();
            return Some(n);
        }
        let n = (bytes.len() - *start).min(buf.capacity() - buf.len());
        buf.extend_from_slice(&bytes[*start..*start + n]);
        *start += n;
        let spent = *start == bytes.len();
        drop(received);
        if spent {
            self.next_received();
        }
        Some(n)
    }

    /// The buffer in `received` has been read: it goes back to the ring.
    fn next_received(&self) {
        if let Some(spent) = self.advance_received() {
            driver::give_back(spent);
        }
    }

    /// Replaces the buffer in `received` with the next of a bundle (or
    /// nothing) and returns it; after the last, the next receive may start
    /// at once ([`UringStream::read_ahead`]).
    fn advance_received(&self) -> Option<Vec<u8>> {
        let next = self.pop_more();
        let replaced = std::mem::replace(&mut *self.received.borrow_mut(), next.map(|bytes| (bytes, 0)));
        if !self.has_received() && !self.drained.get() {
            self.read_ahead();
        }
        replaced.map(|(bytes, _)| bytes)
    }

    /// After a read took the last received bytes while the socket
    /// still holds more (the completion's `SOCK_NONEMPTY`: a body streaming
    /// in), starts the next receive at once, so it goes to the kernel in the
    /// same `io_uring_enter` as the send of what was just read and has
    /// completed by the time the reader comes back: one loop turn per chunk
    /// instead of two. It is the stream's one receive (the next read takes
    /// it over), and a receiver that stops reading stops the receiving after
    /// it. A multishot receive that is still armed needs nothing started:
    /// this runs when one has ended (its byte limit, or stopped).
    #[inline(never)]
    fn read_ahead(&self) {
        if self.recv.get().is_none() {
            self.start_receive(false);
        }
    }

    /// Starts the stream's receive (`poll_first`: wait for bytes before
    /// trying) and returns its slot.
    fn start_receive(&self, poll_first: bool) -> u32 {
        let (id, used) = driver::start_recv(self.fd.as_raw_fd(), poll_first);
        self.recv.set(Some(id));
        self.recv_flags.set(used);
        id
    }

    /// The next buffer of a bundle, if one waits.
    fn pop_more(&self) -> Option<Vec<u8>> {
        let mut more = self.more.take()?;
        let next = more.pop();
        if !more.is_empty() {
            self.more.set(Some(more));
        }
        next
    }

    fn has_received(&self) -> bool {
        self.received.borrow().is_some()
    }

    /// Waits for the receive in flight (starting one if none is): `true`
    /// once bytes wait in `received`, `false` at end of stream.
    async fn receive(&self) -> io::Result<bool> {
        std::future::poll_fn(|cx| self.poll_receive(cx)).await
    }

    fn poll_receive(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<io::Result<bool>> {
        use std::task::Poll;
        loop {
            let id = match self.recv.get() {
                Some(id) => id,
                None => self.start_receive(self.drained.get()),
            };
            let Poll::Ready(done) = driver::poll(id, cx) else { return Poll::Pending };
            if !io_uring::cqueue::more(done.flags) {
                // Not a multishot receive that stays armed: it is over.
                self.recv.set(None);
            }
            self.drained.set(!io_uring::cqueue::sock_nonempty(done.flags));
            return Poll::Ready(match done.res {
                0 => Ok(false),
                n if n > 0 => match done.keep {
                    Keep::Bytes(bytes) => {
                        *self.received.borrow_mut() = Some((bytes, 0));
                        Ok(true)
                    }
                    Keep::Bundle(mut bundle) => {
                        bundle.reverse();
                        let first = bundle.pop();
                        if !bundle.is_empty() {
                            self.more.set(Some(Box::new(bundle)));
                        }
                        *self.received.borrow_mut() = first.map(|bytes| (bytes, 0));
                        Ok(true)
                    }
                    _ => Err(io::Error::other("io_uring receive completed without a buffer")),
                },
                // The ring had no buffer left (it has grown since), or the
                // driver stopped a multishot receive whose bytes waited
                // unread (they have been read since): again.
                e if e == -libc::ENOBUFS || e == -libc::EINTR || e == -libc::EAGAIN || e == -libc::ECANCELED => {
                    continue
                }
                // A kernel without multishot or bundled receives: again,
                // without.
                e if e == -libc::EINVAL && driver::refuse_receive_flags(self.recv_flags.get()) => continue,
                e => Err(io::Error::from_raw_os_error(-e)),
            });
        }
    }

    /// Sends `buf[range]` once; returns the bytes sent and the buffer.
    async fn send(&self, buf: Vec<u8>, range: Range<usize>) -> BufResult<usize> {
        let len = (range.end - range.start).min(u32::MAX as usize) as u32;
        // SAFETY: in bounds (the caller's range lies within `buf`).
        let ptr = unsafe { buf.as_ptr().add(range.start) };
        let sqe = opcode::Send::new(types::Fd(self.fd.as_raw_fd()), ptr, len).flags(libc::MSG_NOSIGNAL).build();
        // SAFETY: the buffer moves into the operation's slot, which keeps it
        // (its heap memory does not move) until the completion.
        let done = unsafe { Operation::new(sqe, Keep::Bytes(buf)) }.await;
        let Keep::Bytes(buf) = done.keep else { unreachable!("a send keeps its buffer") };
        let res = if done.res < 0 { Err(io::Error::from_raw_os_error(-done.res)) } else { Ok(done.res as usize) };
        (res, buf)
    }

    /// Sends `first[range]` and then `more`'s buffers' first bytes, in one
    /// vectored send (`IORING_OP_SENDMSG`) while the socket takes all of
    /// it; a short send goes on from where it stopped. `more`'s buffers go
    /// back to the ring afterwards; `first` comes back.
    async fn send_gathered(&self, first: Vec<u8>, range: Range<usize>, more: Vec<(Vec<u8>, usize)>) -> BufResult<()> {
        if let Err(e) = self.settle_send().await {
            more.into_iter().for_each(|(buf, _)| driver::give_back(buf));
            return (Err(e), first);
        }
        let mut pieces = Vec::with_capacity(1 + more.len());
        pieces.push(range);
        let mut bufs = Vec::with_capacity(1 + more.len());
        bufs.push(first);
        for (buf, len) in more {
            pieces.push(0..len.min(buf.len()));
            bufs.push(buf);
        }
        let mut gathered = Box::new(Gathered {
            // SAFETY: all-zero is a valid msghdr (no name, no control data).
            msg: unsafe { std::mem::zeroed() },
            iov: Vec::with_capacity(pieces.len()),
            bufs,
        });
        let mut sent = 0;
        let result = loop {
            let g = &mut *gathered;
            g.iov.clear();
            let mut skip = sent;
            for (buf, piece) in g.bufs.iter().zip(&pieces) {
                let len = piece.len();
                if skip >= len {
                    skip -= len;
                    continue;
                }
                g.iov.push(libc::iovec {
                    // SAFETY: in bounds: `piece` lies within `buf`, `skip` < its length.
                    iov_base: unsafe { buf.as_ptr().add(piece.start + skip) } as *mut libc::c_void,
                    iov_len: len - skip,
                });
                skip = 0;
            }
            if g.iov.is_empty() {
                break Ok(());
            }
            g.msg.msg_iov = g.iov.as_mut_ptr();
            g.msg.msg_iovlen = g.iov.len() as _;
            let sqe = opcode::SendMsg::new(types::Fd(self.fd.as_raw_fd()), &raw const g.msg)
                .flags(libc::MSG_NOSIGNAL as u32)
                .build();
            // SAFETY: the header, the iovecs and the buffers they point into
            // move into the operation's slot inside their box (none of their
            // heap memory moves) until the completion.
            let done = unsafe { Operation::new(sqe, Keep::Gather(gathered)) }.await;
            let Keep::Gather(back) = done.keep else { unreachable!("a vectored send keeps its buffers") };
            gathered = back;
            match done.res {
                0 => break Err(io::ErrorKind::WriteZero.into()),
                n if n > 0 => sent += n as usize,
                e if e == -libc::EINTR => {}
                e => break Err(io::Error::from_raw_os_error(-e)),
            }
        };
        let mut bufs = std::mem::take(&mut gathered.bufs).into_iter();
        let first = bufs.next().unwrap_or_default();
        bufs.for_each(driver::give_back);
        (result, first)
    }
}

impl Stream for UringStream {
    fn take_received_buffer(&self) -> Option<Vec<u8>> {
        let whole = matches!(&*self.received.borrow(), Some((_, 0)));
        if !whole {
            return None;
        }
        self.advance_received()
    }

    async fn write_range_then(
        &self,
        first: Vec<u8>,
        range: Range<usize>,
        more: Vec<(Vec<u8>, usize)>,
    ) -> BufResult<()> {
        if more.is_empty() {
            return self.write_range(first, range).await;
        }
        self.send_gathered(first, range, more).await
    }

    fn has_unread_input(&self) -> bool {
        if self.has_received() {
            return true;
        }
        match self.recv.get() {
            // A multishot receive the driver stopped after the connection
            // went idle (its bytes were read in the meantime) watches
            // nothing: ask the socket.
            Some(id) if driver::collect_stopped(id) => {
                self.recv.set(None);
                super::peek_unread(socket2::SockRef::from(&*self.fd))
            }
            // The receive in flight completes when bytes or the end of the
            // stream arrive (or with an error, which also rules the
            // connection out): no syscall needed.
            Some(id) => driver::is_done(id),
            None => super::peek_unread(socket2::SockRef::from(&*self.fd)),
        }
    }

    fn watch_unread_input(&self) {
        self.collect_send();
        if let Some(id) = self.recv.get() {
            if driver::collect_stopped(id) {
                self.recv.set(None);
            }
        }
        if self.recv.get().is_none() && !self.has_received() {
            self.start_receive(self.drained.get());
        }
    }

    async fn read(&self, mut buf: Vec<u8>) -> BufResult<usize> {
        debug_assert!(buf.capacity() > buf.len(), "read needs spare capacity");
        loop {
            if let Some(n) = self.take_received(&mut buf) {
                return (Ok(n), buf);
            }
            match self.receive().await {
                Ok(true) => {}
                Ok(false) => return (Ok(0), buf),
                Err(e) => return (Err(e), buf),
            }
        }
    }

    async fn write_range(&self, mut buf: Vec<u8>, range: Range<usize>) -> BufResult<()> {
        if let Err(e) = self.settle_send().await {
            return (Err(e), buf);
        }
        if range.len() <= DETACHED_SEND_MAX {
            if !range.is_empty() {
                self.send_detached(&buf[range]);
            }
            return (Ok(()), buf);
        }
        let mut written = range.start;
        while written < range.end {
            let (res, back) = self.send(buf, written..range.end).await;
            buf = back;
            match res {
                Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), buf),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return (Err(e), buf),
            }
        }
        (Ok(()), buf)
    }

    async fn flush(&self) -> io::Result<()> {
        self.settle_send().await
    }

    async fn shutdown_write(&self) -> io::Result<()> {
        self.settle_send().await?;
        socket2::SockRef::from(&*self.fd).shutdown(std::net::Shutdown::Write)
    }

    fn release_idle_buffers(&self) {
        self.collect_send();
    }

    fn reset_on_close(&self) {
        super::set_reset_on_close(socket2::SockRef::from(&*self.fd));
    }

    fn poll_readable(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<io::Result<bool>> {
        if self.has_received() {
            return std::task::Poll::Ready(Ok(true));
        }
        self.poll_receive(cx)
    }
}

impl Drop for UringStream {
    fn drop(&mut self) {
        // The receive in flight is cancelled (its slot freed when the
        // cancellation completes), and so is a detached send the socket has
        // not taken yet (a peer that stopped reading must not keep the
        // socket open; a connection whose last bytes matter is flushed
        // before it is dropped). The cancellations go to the kernel behind
        // the entries they cancel, before the descriptor closes.
        if let Some(id) = self.recv.take() {
            driver::abandon(id);
        }
        if let DetachedSend::Started(started) = self.send.get() {
            driver::abandon_detached(started);
        }
        if let Some((bytes, _)) = self.received.get_mut().take() {
            driver::give_back(bytes);
        }
        if let Some(more) = self.more.take() {
            more.into_iter().for_each(driver::give_back);
        }
        // SAFETY: dropped once, here; the field is not used after this.
        let fd = unsafe { ManuallyDrop::take(&mut self.fd) };
        driver::close_after_submit(fd);
    }
}

/// accept4 with the flags the ring's sockets need (non-blocking, so
/// `has_unread_input`'s peek and the ring's own attempts never block).
fn accept_now(listener: &std::net::TcpListener) -> io::Result<(OwnedFd, SocketAddr)> {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: storage and len describe a valid, writable sockaddr buffer.
    let fd = unsafe {
        libc::accept4(
            listener.as_raw_fd(),
            (&raw mut storage).cast(),
            &mut len,
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: accept4 returned a new descriptor we now own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let peer = socket_addr(&storage).ok_or_else(|| io::Error::other("non-IP peer"))?;
    Ok((fd, peer))
}

/// The IPv4 or IPv6 address in a `sockaddr_storage` the kernel filled.
fn socket_addr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let a = unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::from((ip, u16::from_be(a.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let a = unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                ip,
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

impl Listener for UringListener {
    type Stream = UringStream;

    async fn accept(&self) -> io::Result<(UringStream, SocketAddr)> {
        loop {
            let mut ready = self.0.readable().await?;
            match ready.try_io(|l| accept_now(l.get_ref())) {
                Ok(Ok((fd, peer))) => return Ok((UringStream::new(fd)?, peer)),
                Ok(Err(e)) if is_transient_accept_error(&e) => {}
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => {}
            }
        }
    }

    fn try_accept(&self) -> io::Result<Option<(UringStream, SocketAddr)>> {
        match accept_now(self.0.get_ref()) {
            Ok((fd, peer)) => Ok(Some((UringStream::new(fd)?, peer))),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Errors after which the listener is still good: the connection was reset
/// before it was accepted, or a signal interrupted the call.
fn is_transient_accept_error(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ECONNABORTED) | Some(libc::EINTR) | Some(libc::EPROTO))
}

/// Registers (and unregisters) a buffer ring on `ring`, as the driver does:
/// part of the start-up probe.
pub(super) fn probe_buffer_ring(ring: &io_uring::IoUring) -> io::Result<()> {
    let bufs = buf_ring::BufRing::new(64)?;
    // SAFETY: the ring memory outlives the registration, removed below.
    unsafe { ring.submitter().register_buf_ring(bufs.addr(), buf_ring::RING_ENTRIES, driver::BUFFER_GROUP)? };
    ring.submitter().unregister_buf_ring(driver::BUFFER_GROUP)
}

impl Backend for Uring {
    type Stream = UringStream;
    type Listener = UringListener;
    const NAME: &'static str = "uring";

    fn listener(std: std::net::TcpListener) -> io::Result<UringListener> {
        std.set_nonblocking(true)?;
        // SAFETY: the AsyncFd owns the listener, whose descriptor stays open
        // and the same until it is dropped.
        let fd = unsafe { tokio::io::unix::AsyncFd::register_with_interest(std, tokio::io::Interest::READABLE) };
        Ok(UringListener(fd.map_err(io::Error::from)?))
    }

    async fn connect(addr: SocketAddr) -> io::Result<UringStream> {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM.nonblocking().cloexec(),
            Some(socket2::Protocol::TCP),
        )?;
        let addr = Box::new(socket2::SockAddr::from(addr));
        let sqe = opcode::Connect::new(types::Fd(socket.as_fd().as_raw_fd()), addr.as_ptr().cast(), addr.len()).build();
        // SAFETY: the address moves into the operation's slot (boxed, so it
        // does not move) until the completion. If this future is dropped,
        // the socket closes while the kernel still holds its file until the
        // cancellation completes the connect.
        let done = unsafe { Operation::new(sqe, Keep::Addr(addr)) }.await;
        if done.res < 0 {
            return Err(io::Error::from_raw_os_error(-done.res));
        }
        UringStream::new(OwnedFd::from(socket))
    }

    fn trim_spare_buffers() -> usize {
        driver::trim()
    }

    fn run<F: Future>(buffer_size: usize, main: F) -> io::Result<F::Output> {
        driver::run_with_driver(buffer_size, |ring_fd| {
            let rt =
                tokio::runtime::Builder::new_current_thread().enable_all().on_thread_park(driver::submit).build()?;
            let local = tokio::task::LocalSet::new();
            let out = local.block_on(&rt, async move {
                let drive = tokio::task::spawn_local(driver::drive(ring_fd));
                let out = main.await;
                drive.abort();
                out
            });
            // Tasks still holding streams drop here, while the driver runs.
            drop(local);
            drop(rt);
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::time::Duration;

    use super::*;

    impl UringStream {
        /// Ring buffers the stream holds unread: received, the rest of a
        /// bundle, and what waits in its receive's slot.
        fn buffers_held(&self) -> usize {
            let more = self.more.take();
            let bundled = more.as_ref().map_or(0, |more| more.len());
            self.more.set(more);
            usize::from(self.has_received()) + bundled + self.recv.get().map_or(0, driver::queued)
        }
    }

    /// Reads from `s` into `got` until it holds `len` bytes.
    async fn read_until(s: &UringStream, got: &mut Vec<u8>, len: usize) {
        while got.len() < len {
            let (n, buf) = s.read(Vec::with_capacity(16 * 1024)).await;
            let n = n.unwrap();
            assert!(n > 0, "the stream ended after {} bytes", got.len());
            got.extend_from_slice(&buf[..n]);
        }
    }

    /// One read from `s`: the bytes it returned.
    async fn read_once(s: &UringStream) -> io::Result<Vec<u8>> {
        let (n, mut buf) = s.read(Vec::with_capacity(64)).await;
        buf.truncate(n?);
        Ok(buf)
    }

    /// Runs `body` on a uring event loop with 16 KiB buffers.
    fn on_ring<F: Future>(body: F) -> F::Output {
        Uring::run(16 * 1024, body).expect("io_uring event loop")
    }

    /// A connected pair: the ring's end and a blocking std end.
    async fn pair() -> (UringStream, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let ours = Uring::connect(listener.local_addr().unwrap()).await.unwrap();
        let (theirs, _) = listener.accept().unwrap();
        theirs.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        (ours, theirs)
    }

    /// Whether `s` reports unread input within a second (polled every 5 ms).
    async fn reports_unread_input(s: &UringStream) -> bool {
        for _ in 0..200 {
            tokio::time::sleep(Duration::from_millis(5)).await;
            if s.has_unread_input() {
                return true;
            }
        }
        false
    }

    #[test]
    fn a_read_dropped_by_a_timeout_loses_no_bytes() {
        on_ring(async {
            let (ours, mut theirs) = pair().await;
            // The read times out with its receive still in flight.
            let timed_out =
                tokio::time::timeout(Duration::from_millis(50), ours.read(Vec::with_capacity(16 * 1024))).await;
            assert!(timed_out.is_err());
            theirs.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
            // The next read takes the same receive over.
            let (n, buf) = ours.read(Vec::with_capacity(16 * 1024)).await;
            assert_eq!(&buf[..n.unwrap()], b"GET / HTTP/1.1\r\n\r\n");
        });
    }

    #[test]
    fn waiting_holds_no_buffer_and_the_next_read_returns_what_arrived() {
        on_ring(async {
            let (ours, mut theirs) = pair().await;
            let wait = tokio::time::timeout(Duration::from_millis(50), ours.wait_readable()).await;
            assert!(wait.is_err(), "nothing was sent yet");
            let (in_flight, _) = driver::stats();
            assert_eq!(in_flight, 1, "the receive stays in flight, with no buffer of ours");
            theirs.write_all(b"hello").unwrap();
            assert!(ours.wait_readable().await.unwrap());
            // A smaller buffer than what arrived: the rest waits for the next read.
            let (n, buf) = ours.read(Vec::with_capacity(3)).await;
            assert_eq!(&buf[..n.unwrap()], b"hel");
            let (n, buf) = ours.read(Vec::with_capacity(16)).await;
            assert_eq!(&buf[..n.unwrap()], b"lo");
            drop(theirs);
            assert!(!ours.wait_readable().await.unwrap(), "end of stream");
        });
    }

    #[test]
    fn a_watched_idle_stream_reports_late_bytes_and_hang_ups_and_loses_no_byte() {
        on_ring(async {
            let (ours, mut theirs) = pair().await;
            ours.watch_unread_input();
            // Watching twice keeps the one receive.
            ours.watch_unread_input();
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert_eq!(driver::stats().0, 1, "one receive in flight");
            assert!(!ours.has_unread_input(), "nothing was sent");
            theirs.write_all(b"late").unwrap();
            let seen = reports_unread_input(&ours).await;
            assert!(seen, "the completed receive reports the late bytes");
            // The next read takes the watching receive's bytes.
            let (n, buf) = ours.read(Vec::with_capacity(16 * 1024)).await;
            assert_eq!(&buf[..n.unwrap()], b"late");
            // A hang-up is unread input too.
            ours.watch_unread_input();
            drop(theirs);
            let seen = reports_unread_input(&ours).await;
            assert!(seen, "the end of the stream completes the receive");
        });
    }

    #[test]
    fn a_dropped_stream_cancels_its_receive_and_closes_at_once() {
        on_ring(async {
            let (ours, mut theirs) = pair().await;
            let _ = tokio::time::timeout(Duration::from_millis(20), ours.wait_readable()).await;
            drop(ours);
            // The cancellation goes to the kernel with the next submission.
            for _ in 0..100 {
                tokio::time::sleep(Duration::from_millis(5)).await;
                if driver::stats().0 == 0 {
                    break;
                }
            }
            assert_eq!(driver::stats().0, 0, "the cancelled receive completed");
            let mut byte = [0u8; 1];
            assert_eq!(theirs.read(&mut byte).unwrap(), 0, "the peer sees the close");
        });
    }

    #[test]
    fn more_arrivals_in_one_batch_than_the_ring_holds_grow_it() {
        on_ring(async {
            let mut pairs = Vec::new();
            for _ in 0..(buf_ring::INITIAL_BUFFERS * 4) {
                pairs.push(pair().await);
            }
            for (ours, _) in &pairs {
                let _ = tokio::time::timeout(Duration::from_millis(1), ours.wait_readable()).await;
            }
            // Every peer sends before the loop runs again: one batch.
            for (i, (_, theirs)) in pairs.iter_mut().enumerate() {
                theirs.write_all(format!("request {i}").as_bytes()).unwrap();
            }
            std::thread::sleep(Duration::from_millis(50));
            for (i, (ours, _)) in pairs.iter().enumerate() {
                assert_eq!(read_once(ours).await.unwrap(), format!("request {i}").as_bytes());
            }
            assert!(driver::stats().1 > buf_ring::INITIAL_BUFFERS, "the ring grew");
            // Quiet again: the ring shrinks back, and receives in flight
            // across the re-registration still get their bytes.
            for (ours, _) in &pairs {
                let _ = tokio::time::timeout(Duration::from_millis(1), ours.wait_readable()).await;
            }
            assert!(Uring::trim_spare_buffers() > 0);
            assert_eq!(driver::stats().1, buf_ring::INITIAL_BUFFERS);
            for (i, (_, theirs)) in pairs.iter_mut().enumerate() {
                theirs.write_all(format!("again {i}").as_bytes()).unwrap();
            }
            for (i, (ours, _)) in pairs.iter().enumerate() {
                assert_eq!(read_once(ours).await.unwrap(), format!("again {i}").as_bytes());
            }
        });
    }

    #[test]
    fn a_receive_stays_armed_between_reads() {
        on_ring(async {
            let (ours, mut theirs) = pair().await;
            theirs.write_all(b"first").unwrap();
            assert_eq!(read_once(&ours).await.unwrap(), b"first");
            let armed = ours.recv.get().expect("the multishot receive stays the stream's");
            theirs.write_all(b"second").unwrap();
            assert_eq!(read_once(&ours).await.unwrap(), b"second");
            assert_eq!(ours.recv.get(), Some(armed), "the same receive delivered again");
        });
    }

    #[test]
    fn an_error_behind_unread_bytes_comes_after_them() {
        on_ring(async {
            let (ours, mut theirs) = pair().await;
            theirs.write_all(b"first").unwrap();
            assert!(ours.wait_readable().await.unwrap());
            // The stream holds "first"; "second" and the reset arrive while
            // the loop is blocked, so both completions come in one batch.
            theirs.write_all(b"second").unwrap();
            socket2::SockRef::from(&theirs).set_linger(Some(Duration::ZERO)).unwrap();
            drop(theirs);
            std::thread::sleep(Duration::from_millis(50));
            assert_eq!(read_once(&ours).await.unwrap(), b"first");
            assert_eq!(read_once(&ours).await.unwrap(), b"second");
            assert_eq!(read_once(&ours).await.map_err(|e| e.kind()), Err(io::ErrorKind::ConnectionReset));
        });
    }

    #[test]
    fn a_reader_that_stops_reading_stops_the_receiving_and_loses_no_byte() {
        on_ring(async {
            let (ours, mut theirs) = pair().await;
            // A ring with room for far more than the stream may hold, so
            // running out of buffers does not stop the receive instead.
            driver::provide(64);
            let provided = driver::stats().1;
            let sent: Vec<u8> = (0..(4u32 << 20)).map(|i| (i % 251) as u8).collect();
            let writer = {
                let sent = sent.clone();
                std::thread::spawn(move || {
                    theirs.write_all(&sent).unwrap();
                    theirs
                })
            };
            // The socket fills before the first read arms the receive.
            std::thread::sleep(Duration::from_millis(100));
            let (n, buf) = ours.read(Vec::with_capacity(16 * 1024)).await;
            let mut got = buf[..n.unwrap()].to_vec();
            // The reader stops while the loop runs on and the peer sends.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let held = ours.buffers_held();
            assert!(
                held <= driver::STOP_AT_BUFFERS + driver::BUNDLE_BUFFERS,
                "{held} buffers wait unread: the receive did not stop"
            );
            assert_eq!(driver::stats().1, provided, "the receive took every buffer of the ring: it did not stop");
            read_until(&ours, &mut got, sent.len()).await;
            assert!(got == sent, "the bytes arrived out of order");
            drop(writer.join().unwrap());
        });
    }

    #[test]
    fn bytes_that_trickle_in_to_a_reader_that_stops_reading_stop_the_receiving() {
        on_ring(async {
            let (ours, mut theirs) = pair().await;
            driver::provide(64);
            theirs.set_nodelay(true).unwrap();
            let chunks = 40;
            let writer = std::thread::spawn(move || {
                for i in 0..chunks {
                    theirs.write_all(format!("chunk {i:03};").as_bytes()).unwrap();
                    std::thread::sleep(Duration::from_millis(3));
                }
                theirs
            });
            let (n, buf) = ours.read(Vec::with_capacity(16 * 1024)).await;
            let mut got = buf[..n.unwrap()].to_vec();
            // Each chunk arrives on its own and takes a buffer of its own.
            tokio::time::sleep(Duration::from_millis(250)).await;
            let waiting = ours.buffers_held();
            assert!(
                waiting <= driver::STOP_AT_BUFFERS + driver::BUNDLE_BUFFERS,
                "{waiting} buffers wait unread: the receive did not stop"
            );
            let expected: String = (0..chunks).map(|i| format!("chunk {i:03};")).collect();
            read_until(&ours, &mut got, expected.len()).await;
            assert_eq!(String::from_utf8(got).unwrap(), expected);
            drop(writer.join().unwrap());
        });
    }

    #[test]
    fn an_idle_stream_whose_receive_was_stopped_still_reports_a_hang_up() {
        on_ring(async {
            let (ours, mut theirs) = pair().await;
            theirs.write_all(b"response").unwrap();
            assert_eq!(read_once(&ours).await.unwrap(), b"response");
            // The driver stops the receive (bytes had piled up), and the
            // stream goes idle before the cancellation reaches the kernel.
            driver::stop(ours.recv.get().expect("the receive stays armed"));
            ours.watch_unread_input();
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert!(!ours.has_unread_input(), "nothing arrived");
            drop(theirs);
            assert!(reports_unread_input(&ours).await, "the hang-up went unnoticed");
        });
    }

    #[test]
    fn a_bundled_receive_hands_over_whole_buffers_in_order() {
        on_ring(async {
            let (ours, mut theirs) = pair().await;
            let sent: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
            theirs.write_all(&sent).unwrap();
            // All of it waits in the socket before the receive starts.
            std::thread::sleep(Duration::from_millis(50));
            let (n, mut got) = ours.read(Vec::with_capacity(16 * 1024)).await;
            got.truncate(n.unwrap());
            let mut whole = 0;
            while let Some(buf) = ours.take_received_buffer() {
                got.extend_from_slice(&buf);
                whole += 1;
            }
            assert!(whole >= 1, "one receive filled more than one buffer");
            // The kernel may leave the tail to the next receive.
            for _ in 0..10 {
                if got.len() >= sent.len() {
                    break;
                }
                let (n, buf) = ours.read(Vec::with_capacity(16 * 1024)).await;
                got.extend_from_slice(&buf[..n.unwrap()]);
                while let Some(buf) = ours.take_received_buffer() {
                    got.extend_from_slice(&buf);
                }
            }
            assert!(got == sent, "the bytes arrive whole and in order");
            // Nothing is waiting now, and the stream reads on as usual.
            assert!(ours.take_received_buffer().is_none());
            theirs.write_all(b"more").unwrap();
            let (n, buf) = ours.read(Vec::with_capacity(16 * 1024)).await;
            assert_eq!(&buf[..n.unwrap()], b"more");
        });
    }

    #[test]
    fn a_gathered_write_sends_every_piece_in_order() {
        on_ring(async {
            let (ours, theirs) = pair().await;
            let reader = std::thread::spawn(move || {
                let mut theirs = theirs;
                let mut got = Vec::new();
                theirs.read_to_end(&mut got).unwrap();
                got
            });
            // 3 MiB and more: more than the socket takes at once, so the
            // send goes on from where a short one stopped.
            let more: Vec<(Vec<u8>, usize)> = (0..4u8)
                .map(|k| {
                    let buf: Vec<u8> = (0..1024 * 1024u32).map(|i| (i % 241) as u8 ^ k).collect();
                    let len = if k == 2 { 1000 } else { buf.len() };
                    (buf, len)
                })
                .collect();
            let mut expected = b"head".to_vec();
            for (buf, len) in &more {
                expected.extend_from_slice(&buf[..*len]);
            }
            let (res, first) = ours.write_range_then(b"xxheadyy".to_vec(), 2..6, more).await;
            res.unwrap();
            assert_eq!(first, b"xxheadyy", "the first buffer comes back");
            ours.shutdown_write().await.unwrap();
            assert!(reader.join().unwrap() == expected, "the pieces arrive whole and in order");
        });
    }

    #[test]
    fn a_large_write_arrives_whole() {
        on_ring(async {
            let (ours, theirs) = pair().await;
            let body: Vec<u8> = (0..4 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
            let expected = body.clone();
            let reader = std::thread::spawn(move || {
                let mut theirs = theirs;
                let mut got = Vec::new();
                theirs.read_to_end(&mut got).unwrap();
                got
            });
            let (res, _) = ours.write_all(body).await;
            res.unwrap();
            ours.shutdown_write().await.unwrap();
            assert_eq!(reader.join().unwrap(), expected);
        });
    }

    #[test]
    fn a_small_write_returns_before_its_send_and_the_bytes_leave_in_order() {
        on_ring(async {
            let (ours, theirs) = pair().await;
            let reader = std::thread::spawn(move || {
                let mut theirs = theirs;
                let mut got = Vec::new();
                theirs.read_to_end(&mut got).unwrap();
                got
            });
            let large: Vec<u8> = (0..256 * 1024u32).map(|i| (i % 239) as u8).collect();
            let (res, back) = ours.write_all(b"small head".to_vec()).await;
            res.unwrap();
            assert_eq!(back, b"small head", "the buffer comes back at once");
            assert_eq!(driver::stats().0, 1, "the send is still in flight: the write did not wait for it");
            // A large write waits for the small one, then goes out itself.
            let (res, _) = ours.write_all(large.clone()).await;
            res.unwrap();
            let (res, _) = ours.write_range(b"xxtailyy".to_vec(), 2..6).await;
            res.unwrap();
            ours.flush().await.unwrap();
            assert_eq!(driver::stats().0, 0, "flushed: nothing in flight");
            ours.shutdown_write().await.unwrap();
            let mut expected = b"small head".to_vec();
            expected.extend_from_slice(&large);
            expected.extend_from_slice(b"tail");
            assert!(reader.join().unwrap() == expected, "the bytes arrive whole and in order");
        });
    }

    #[test]
    fn small_writes_reuse_their_copies_and_a_quiet_core_frees_them() {
        on_ring(async {
            let (ours, mut theirs) = pair().await;
            assert_eq!(driver::send_copies_kept(), 0);
            let (res, _) = ours.write_all(b"a longer first write".to_vec()).await;
            res.unwrap();
            ours.flush().await.unwrap();
            assert_eq!(driver::send_copies_kept(), 1, "the completed send's copy is kept");
            let (res, _) = ours.write_all(b"second".to_vec()).await;
            res.unwrap();
            assert_eq!(driver::send_copies_kept(), 0, "the next small write takes it");
            ours.flush().await.unwrap();
            assert_eq!(driver::send_copies_kept(), 1, "and gives it back");
            ours.shutdown_write().await.unwrap();
            let mut got = Vec::new();
            theirs.read_to_end(&mut got).unwrap();
            assert_eq!(got, b"a longer first writesecond", "a reused copy carries only its own bytes");
            Uring::trim_spare_buffers();
            assert_eq!(driver::send_copies_kept(), 0, "a quiet core frees them");
        });
    }

    #[test]
    fn a_failed_small_send_is_reported_by_the_flush_after_it() {
        on_ring(async {
            let (ours, theirs) = pair().await;
            // The peer resets the connection (SO_LINGER 0).
            socket2::SockRef::from(&theirs).set_linger(Some(Duration::ZERO)).unwrap();
            drop(theirs);
            tokio::time::sleep(Duration::from_millis(50)).await;
            let (res, _) = ours.write_all(b"response".to_vec()).await;
            assert!(res.is_ok(), "the write returns once its send is queued");
            let flushed = ours.flush().await;
            assert!(flushed.is_err(), "the send's failure is not lost: {flushed:?}");
            // Reported once; the stream is broken for further writes too.
            let (res, _) = ours.write_all(vec![0; 64 * 1024]).await;
            assert!(res.is_err());
        });
    }

    /// The entries a dropped stream queued this turn still refer to its
    /// descriptor number: closing it before they reach the kernel would let
    /// a socket opened meanwhile get that number, and the queued send would
    /// go to that socket's peer.
    #[test]
    fn a_stream_dropped_after_a_small_write_keeps_its_descriptor_until_the_send_is_submitted() {
        on_ring(async {
            let (ours, mut theirs) = pair().await;
            let dropped_fd = ours.fd.as_raw_fd();
            let (res, _) = ours.write_all(b"last response".to_vec()).await;
            res.unwrap();
            drop(ours);
            // Opened in the same turn, before the loop submits anything.
            let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let newcomer = std::net::TcpStream::connect(other.local_addr().unwrap()).unwrap();
            let (mut newcomer_peer, _) = other.accept().unwrap();
            assert_ne!(newcomer.as_raw_fd(), dropped_fd, "the dropped stream's descriptor is still open");
            tokio::time::sleep(Duration::from_millis(50)).await;
            let mut got = Vec::new();
            theirs.read_to_end(&mut got).unwrap();
            assert_eq!(got, b"last response", "the bytes reach their own peer, then the close");
            newcomer_peer.set_nonblocking(true).unwrap();
            let mut byte = [0u8; 1];
            let stray = newcomer_peer.read(&mut byte);
            assert!(
                matches!(&stray, Err(e) if e.kind() == io::ErrorKind::WouldBlock),
                "nothing reached the newcomer: {stray:?}"
            );
        });
    }

    /// A completion must wake the event loop when it happens, not when
    /// something else does: with `DEFER_TASKRUN` and an eventfd, each round
    /// trip here took ~16 ms (the kernel's deferred eventfd signal). The
    /// bound is 10× a healthy run on a loaded 2-core box: this checks the
    /// wake-up, not speed.
    #[test]
    fn a_completion_wakes_the_loop_at_once() {
        on_ring(async {
            let (ours, mut theirs) = pair().await;
            std::thread::spawn(move || {
                let mut b = [0u8; 64];
                while let Ok(n) = theirs.read(&mut b) {
                    if n == 0 {
                        return;
                    }
                    // Reply later, so the receive is waiting in the ring.
                    std::thread::sleep(Duration::from_micros(200));
                    if theirs.write_all(&b[..n]).is_err() {
                        return;
                    }
                }
            });
            let start = std::time::Instant::now();
            for _ in 0..50 {
                let (res, _) = ours.write_all(b"ping".to_vec()).await;
                res.unwrap();
                let (n, _) = ours.read(Vec::with_capacity(64)).await;
                assert_eq!(n.unwrap(), 4);
            }
            let took = start.elapsed();
            assert!(took < Duration::from_millis(400), "50 round trips took {took:?}");
        });
    }
}
