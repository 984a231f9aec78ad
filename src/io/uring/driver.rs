//! corelink's io_uring driver: one ring per worker thread, inside the
//! worker's current-thread tokio runtime (which keeps the timers, the task
//! queue and the listener's readiness).
//!
//! - Operations are slots in a slab; a slot's index is the SQE's
//!   `user_data`. A slot owns whatever the kernel may touch until the
//!   completion arrives (a send's buffer, a connect's address), so a future
//!   dropped mid-operation frees nothing the kernel still uses.
//! - A dropped future's operation is cancelled (`ASYNC_CANCEL` by its
//!   `user_data`) and its slot freed when the cancellation completes it: no
//!   orphaned operation outlives a timeout.
//! - Submissions queue in the SQ and go to the kernel in one `io_uring_enter`
//!   when the runtime is about to park (its `on_thread_park` hook), or when
//!   the SQ is full.
//! - The ring is built with `SINGLE_ISSUER | COOP_TASKRUN | TASKRUN_FLAG`:
//!   completion work runs when this thread next enters the kernel (or
//!   wakes it from `epoll_wait`), never by interrupting it mid-task.
//!   tokio's epoll watches the ring's descriptor, which turns readable when
//!   completions are posted; the driver task ([`drive`]) then reaps them and
//!   wakes the tasks waiting on them. `DEFER_TASKRUN` was measured and left
//!   out: its only wake-up for a thread asleep in `epoll_wait` is an
//!   eventfd the kernel signals late (about 16 ms a round trip here; see
//!   docs/io-backends.md), and the ring's own descriptor never turns
//!   readable for deferred work.
//! - Receives take a buffer from the provided buffer ring ([`BufRing`]) when
//!   bytes arrive, so waiting costs no buffer. They are bundled
//!   (`IORING_RECVSEND_BUNDLE`, Linux 6.10): one receive takes as many
//!   buffers as the bytes waiting fill, so a 64 KiB response body arrives
//!   in one operation, not four (and goes on in one vectored send, see
//!   `UringStream::send_gathered`).

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::task::{Context, Poll, Waker};

use io_uring::{cqueue, opcode, squeue, types, IoUring};

use super::buf_ring::{BufRing, INITIAL_BUFFERS};

/// `IORING_ENTER_GETEVENTS`: run deferred completion work while entering.
const ENTER_GETEVENTS: u32 = 1;
/// The `user_data` of operations nobody waits for (cancellations).
const UNTRACKED: u64 = u64::MAX;
/// The provided buffer group every receive selects from.
pub(super) const BUFFER_GROUP: u16 = 0;
/// Submission queue entries. The SQ is flushed when full, so this bounds
/// one batch, not the operations in flight.
const SQ_ENTRIES: u32 = 256;
/// Completion queue entries: every idle connection has a receive in flight;
/// completions beyond this wait in the kernel's overflow list (no loss).
const CQ_ENTRIES: u32 = 4096;
/// `io_uring_enter` calls one loop turn makes at most (see `Driver::turn`).
const MAX_ENTERS_PER_TURN: usize = 8;
/// Copies of small writes kept for reuse once their sends complete (see
/// [`send_copy_detached`]); more than this many in flight at once are
/// freed as they complete, and all of them when the core goes quiet.
const MAX_SEND_COPIES: usize = 64;

thread_local! {
    static DRIVER: RefCell<Option<Driver>> = const { RefCell::new(None) };
}

/// What a slot keeps alive for the kernel, and what a receive delivers.
pub(super) enum Keep {
    Nothing,
    /// A send's buffer (the SQE points into it); or a receive's bytes.
    Bytes(Vec<u8>),
    /// The buffers of a bundled receive, in order (more than one).
    Bundle(Vec<Vec<u8>>),
    /// A vectored send's message header, iovecs and buffers (the SQE
    /// points at the header, the header at the iovecs, they at the buffers).
    #[allow(dead_code)]
    Gather(Box<Gathered>),
    /// A connect's address (the SQE points at it; held, never read).
    #[allow(dead_code)]
    Addr(Box<socket2::SockAddr>),
}

/// What a vectored send points into: boxed, so none of it moves while the
/// kernel may read it.
pub(super) struct Gathered {
    pub msg: libc::msghdr,
    pub iov: Vec<libc::iovec>,
    pub bufs: Vec<Vec<u8>>,
}

enum State {
    Free,
    /// Submitted; the waker of the task that waits for it, once polled.
    InFlight(Option<Waker>),
    Done {
        res: i32,
        flags: u32,
    },
    /// Nobody will collect the result: freed when the completion arrives.
    Abandoned,
    /// A send nobody awaits (a stream's small write, see
    /// [`send_copy_detached`]): freed when it completes having sent all its
    /// bytes, so an idle connection holds no slot for it; a failed one
    /// becomes `Done` for the stream to collect. The waker of a writer
    /// that came to wait for it, if one did.
    Detached(Option<Waker>),
}

struct Slot {
    state: State,
    keep: Keep,
    /// Counts the times the slot was freed: a detached send's owner holds
    /// (index, generation), and a generation that moved on means its send
    /// completed in full and the slot went to another operation.
    generation: u32,
    /// A multishot receive's last completion (an end, an error) that
    /// arrived while bytes before it still waited for the stream: handed
    /// over after them.
    end: Option<i32>,
    /// A multishot receive's cancellation has been pushed (its stream holds
    /// enough received bytes; see [`Driver::reap`]).
    stopping: bool,
    /// The kernel may still post a completion for this slot: from its
    /// submission until a completion without `IORING_CQE_F_MORE`. A slot is
    /// freed only once this is false.
    armed: bool,
}

/// A finished operation: the kernel's result (a byte count or `-errno`) and
/// what its slot kept (for a receive, the buffer holding the bytes).
pub(super) struct Completed {
    pub res: i32,
    /// The completion's flags (`IORING_CQE_F_*`).
    pub flags: u32,
    pub keep: Keep,
}

pub(super) struct Driver {
    ring: IoUring,
    slots: Vec<Slot>,
    free: Vec<u32>,
    bufs: BufRing,
    /// Operations submitted and not completed (cancellations excluded).
    in_flight: usize,
    /// Wakers collected while reaping, woken after the driver is released.
    to_wake: Vec<Waker>,
    /// Whether receives are bundled: until the kernel refuses the flag
    /// (before Linux 6.10 a bundled receive fails with `EINVAL`).
    bundles: bool,
    /// Whether receives are multishot: until the kernel refuses a multishot
    /// receive with a byte limit (see [`refuse_receive_flags`]).
    multishot: bool,
    /// Multishot receives to cancel once the completions are reaped.
    to_stop: Vec<u32>,
    /// Descriptors of dropped streams whose last entries may still wait in
    /// the SQ: closed once the SQ is empty (see [`close_after_submit`]).
    to_close: Vec<OwnedFd>,
    /// Empty buffers for the copies of small writes, from sends that
    /// completed: a request's two small writes allocate nothing.
    send_copies: Vec<Vec<u8>>,
}

impl Driver {
    fn new(buffer_size: usize) -> io::Result<Driver> {
        let ring = IoUring::builder()
            .setup_single_issuer()
            .setup_coop_taskrun()
            .setup_taskrun_flag()
            .setup_cqsize(CQ_ENTRIES)
            .build(SQ_ENTRIES)?;
        let mut bufs = BufRing::new(buffer_size)?;
        // SAFETY: the ring memory stays mapped until the driver is dropped,
        // after the ring (and its registration) is gone; see `Drop`.
        unsafe {
            ring.submitter().register_buf_ring(bufs.addr(), super::buf_ring::RING_ENTRIES, BUFFER_GROUP)?;
        }
        bufs.grow(INITIAL_BUFFERS);
        Ok(Driver {
            ring,
            slots: Vec::new(),
            free: Vec::new(),
            bufs,
            in_flight: 0,
            to_wake: Vec::new(),
            bundles: true,
            multishot: true,
            to_stop: Vec::new(),
            to_close: Vec::new(),
            send_copies: Vec::new(),
        })
    }

    /// Queues `sqe` (its `user_data` set to a new slot) and returns the slot.
    ///
    /// # Safety
    /// Everything the entry points at must stay valid until its completion:
    /// either owned by `keep` or by the ring's buffers.
    unsafe fn start(&mut self, sqe: squeue::Entry, keep: Keep) -> u32 {
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                self.slots.push(Slot {
                    state: State::Free,
                    keep: Keep::Nothing,
                    generation: 0,
                    end: None,
                    stopping: false,
                    armed: false,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[id as usize];
        slot.state = State::InFlight(None);
        slot.armed = true;
        drop_keep(std::mem::replace(&mut slot.keep, keep));
        self.in_flight += 1;
        // SAFETY: forwarded from the caller.
        unsafe { self.push(sqe.user_data(u64::from(id))) };
        id
    }

    /// # Safety
    /// As for [`Driver::start`].
    #[inline]
    unsafe fn push(&mut self, sqe: squeue::Entry) {
        // SAFETY: forwarded from the caller.
        if unsafe { self.ring.submission().push(&sqe) }.is_err() {
            // SAFETY: forwarded from the caller.
            unsafe { self.push_into_full(sqe) };
        }
    }

    /// [`Driver::push`] when the SQ is full (apart, so that the usual push
    /// inlines into its caller).
    ///
    /// # Safety
    /// As for [`Driver::start`].
    #[cold]
    #[inline(never)]
    unsafe fn push_into_full(&mut self, sqe: squeue::Entry) {
        loop {
            // SAFETY: forwarded from the caller.
            if unsafe { self.ring.submission().push(&sqe) }.is_ok() {
                return;
            }
            // The SQ is full: hand its entries to the kernel and retry. With
            // EBUSY the kernel wants completions reaped first.
            if let Err(e) = self.ring.submit() {
                if e.raw_os_error() != Some(libc::EBUSY) && e.raw_os_error() != Some(libc::EINTR) {
                    tracing::error!(error = %e, "io_uring_enter failed");
                }
                self.reap();
            }
        }
    }

    fn poll(&mut self, id: u32, cx: &mut Context<'_>) -> Poll<Completed> {
        let slot = &mut self.slots[id as usize];
        match &mut slot.state {
            State::Done { res, flags } => {
                let (res, flags) = (*res, *flags);
                let keep = std::mem::replace(&mut slot.keep, Keep::Nothing);
                if let Some(end) = slot.end.take() {
                    // The multishot receive has ended behind these bytes:
                    // its end is the stream's next completion.
                    slot.state = State::Done { res: end, flags: 0 };
                    return Poll::Ready(Completed { res, flags: flags | CQE_F_MORE, keep });
                }
                if !slot.armed {
                    // The kernel is done with it (a completion that said
                    // MORE and was the last after all, one queued behind a
                    // failed delivery, ends the receive too).
                    free_slot(&mut self.free, slot, id);
                    return Poll::Ready(Completed { res, flags: flags & !CQE_F_MORE, keep });
                }
                if cqueue::more(flags) {
                    // A multishot receive stays armed, and the slot its own.
                    slot.state = State::InFlight(None);
                } else {
                    // A last result handed over while the kernel still
                    // holds the receive (a delivery whose buffer the ring
                    // did not know, failed with EIO): it is cancelled, and
                    // the slot freed when its last completion arrives.
                    slot.state = State::Abandoned;
                    self.push_cancel(id);
                }
                Poll::Ready(Completed { res, flags, keep })
            }
            State::InFlight(waker) | State::Detached(waker) => {
                match waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            State::Free | State::Abandoned => unreachable!("polled an operation that is not in flight"),
        }
    }

    /// Whether `send`'s slot still holds that send: in flight, or failed
    /// and not yet collected. Otherwise it completed in full and the slot
    /// was freed. The state check backs the generation up should it wrap
    /// (2^32 reuses of one slot while its former owner holds the id): the
    /// slot would then have to hold another detached send at that moment.
    fn is_detached(&self, send: DetachedId) -> bool {
        let slot = &self.slots[send.id as usize];
        slot.generation == send.generation
            && match &slot.state {
                State::Detached(_) => true,
                State::Done { .. } => matches!(slot.keep, Keep::Bytes(_)),
                State::Free | State::InFlight(_) | State::Abandoned => false,
            }
    }

    /// Whether the operation has completed (its result not yet collected).
    /// A multishot receive the driver stopped is collected first
    /// ([`Driver::collect_stopped`]): nothing arrived for it.
    fn is_done(&self, id: u32) -> bool {
        matches!(self.slots[id as usize].state, State::Done { .. })
    }

    /// Frees a multishot receive the driver stopped with nothing unread
    /// (`true`: the stream starts another).
    fn collect_stopped(&mut self, id: u32) -> bool {
        let slot = &mut self.slots[id as usize];
        let stopped = !slot.armed && matches!(slot.state, State::Done { res, .. } if res == -libc::ECANCELED);
        if stopped {
            let keep = std::mem::replace(&mut slot.keep, Keep::Nothing);
            free_slot(&mut self.free, slot, id);
            self.recycle(keep);
        }
        stopped
    }

    /// Queues the cancellation of operation `id` (nobody waits for its own
    /// completion; the operation's last completion frees or ends its slot).
    fn push_cancel(&mut self, id: u32) {
        let cancel = opcode::AsyncCancel::new(u64::from(id)).build().user_data(UNTRACKED);
        // SAFETY: a cancellation points at nothing.
        unsafe { self.push(cancel) };
    }

    /// Gives up on an operation: a finished one is freed now; one in flight
    /// is cancelled and freed when its completion arrives.
    fn abandon(&mut self, id: u32) {
        let slot = &mut self.slots[id as usize];
        match slot.state {
            State::Free | State::Abandoned => return,
            State::Done { .. } => {
                // What a finished operation delivered goes back to the ring.
                let keep = std::mem::replace(&mut slot.keep, Keep::Nothing);
                recycle(&mut self.bufs, keep);
            }
            State::InFlight(_) | State::Detached(_) => {}
        }
        // In flight, or a multishot receive still armed after a delivery:
        // cancelled, and freed by its last completion.
        if slot.armed {
            slot.state = State::Abandoned;
            self.push_cancel(id);
        } else {
            free_slot(&mut self.free, slot, id);
        }
    }

    fn trim(&mut self) -> usize {
        self.send_copies = Vec::new();
        let mut freed = self.bufs.trim();
        if self.bufs.provided() <= INITIAL_BUFFERS {
            return freed;
        }
        // Receives waiting for bytes pick their buffer only when the bytes
        // arrive, in completion work that runs on this thread. Once the ring
        // is unregistered none can pick one of its buffers (one that finds
        // no ring completes with ENOBUFS and is started again); completions
        // posted before that are reaped while their buffers still exist.
        if let Err(e) = self.ring.submitter().unregister_buf_ring(BUFFER_GROUP) {
            tracing::warn!(error = %e, "cannot unregister the io_uring buffer ring; it keeps its size");
            return freed;
        }
        self.reap();
        freed += self.bufs.reset();
        // SAFETY: as in `Driver::new`: the ring memory outlives the
        // registration.
        let registered = unsafe {
            self.ring.submitter().register_buf_ring(self.bufs.addr(), super::buf_ring::RING_ENTRIES, BUFFER_GROUP)
        };
        match registered {
            Ok(()) => {
                self.bufs.grow(INITIAL_BUFFERS);
            }
            Err(e) => {
                // Receives fail with ENOBUFS and are retried: they spin. The
                // worker cannot serve without a ring; say so loudly.
                tracing::error!(error = %e, "cannot register the io_uring buffer ring again");
            }
        }
        freed
    }

    fn recycle(&mut self, keep: Keep) {
        recycle(&mut self.bufs, keep);
    }

    /// Collects completions, entering the ring while there is anything to
    /// submit or completion work waiting (the TASKRUN flag), a few times at
    /// most (the park hook comes back for the rest before the thread sleeps).
    fn turn(&mut self) {
        for _ in 0..MAX_ENTERS_PER_TURN {
            self.reap();
            let pending = self.ring.submission().len();
            if pending == 0 && !self.ring.submission().taskrun() {
                self.close_submitted();
                return;
            }
            // SAFETY: no argument is passed; the entries were pushed with
            // the guarantees of `start`.
            let res =
                unsafe { self.ring.submitter().enter::<libc::sigset_t>(pending as u32, 0, ENTER_GETEVENTS, None) };
            if let Err(e) = res {
                if e.raw_os_error() != Some(libc::EBUSY) && e.raw_os_error() != Some(libc::EINTR) {
                    tracing::error!(error = %e, "io_uring_enter failed");
                }
            }
        }
        self.reap();
        self.close_submitted();
    }

    /// The park hook: submits what this loop turn queued, and runs work the
    /// last turn left, before the thread sleeps.
    fn submit(&mut self) {
        if !self.ring.submission().is_empty() || self.ring.submission().taskrun() {
            self.turn();
        } else {
            self.close_submitted();
        }
    }

    /// Closes the dropped streams' descriptors once the kernel has taken
    /// every queued entry (which then holds its own reference to the file).
    fn close_submitted(&mut self) {
        if !self.to_close.is_empty() && self.ring.submission().is_empty() {
            self.to_close.clear();
        }
    }

    fn reap(&mut self) {
        let Driver { ring, slots, free, bufs, in_flight, to_wake, to_stop, send_copies, .. } = self;
        let mut grow = false;
        for cqe in ring.completion() {
            let id = cqe.user_data();
            if id == UNTRACKED {
                continue;
            }
            let mut res = cqe.result();
            let mut received = match cqueue::buffer_select(cqe.flags()) {
                None => Keep::Nothing,
                Some(bid) => {
                    let len = res.max(0) as usize;
                    let taken = if len > bufs.size() {
                        bufs.take_bundle(bid, len).map(Keep::Bundle)
                    } else {
                        bufs.take(bid, len).map(Keep::Bytes)
                    };
                    taken.unwrap_or_else(|| {
                        res = -libc::EIO;
                        Keep::Nothing
                    })
                }
            };
            grow |= res == -libc::ENOBUFS;
            let Some(slot) = slots.get_mut(id as usize) else { continue };
            // A multishot receive's completions but its last say MORE.
            let more = cqueue::more(cqe.flags());
            if !more {
                *in_flight -= 1;
                slot.armed = false;
            }
            match std::mem::replace(&mut slot.state, State::Free) {
                State::InFlight(waker) => {
                    slot.state = State::Done { res, flags: cqe.flags() };
                    // A receive's buffer goes into the slot; what the slot
                    // held (nothing, for a receive) is dropped below.
                    if !matches!(received, Keep::Nothing) {
                        std::mem::swap(&mut slot.keep, &mut received);
                    }
                    if let Some(w) = waker {
                        to_wake.push(w);
                    }
                }
                State::Detached(waker) => {
                    let sent_all = matches!(&slot.keep, Keep::Bytes(copy) if res >= 0 && res as usize == copy.len());
                    if sent_all {
                        if let Keep::Bytes(copy) = std::mem::replace(&mut slot.keep, Keep::Nothing) {
                            keep_send_copy(send_copies, copy);
                        }
                        free_slot(free, slot, id as u32);
                    } else {
                        slot.state = State::Done { res, flags: cqe.flags() };
                    }
                    if let Some(w) = waker {
                        to_wake.push(w);
                    }
                }
                State::Abandoned => {
                    if more {
                        slot.state = State::Abandoned;
                    } else {
                        free_slot(free, slot, id as u32);
                    }
                    recycle(bufs, std::mem::replace(&mut slot.keep, Keep::Nothing));
                    recycle(bufs, std::mem::replace(&mut received, Keep::Nothing));
                }
                State::Done { res: earlier, flags: held } if earlier > 0 && cqueue::more(held) => {
                    // A multishot receive delivered again before its stream
                    // took the last delivery: the bytes queue up behind it,
                    // and an end or error waits until they are read.
                    if res > 0 {
                        slot.state = State::Done { res: earlier, flags: cqe.flags() };
                        let queued = std::mem::replace(&mut slot.keep, Keep::Nothing);
                        slot.keep = queue_behind(queued, std::mem::replace(&mut received, Keep::Nothing));
                    } else if res == -libc::ECANCELED && slot.stopping {
                        // Stopped by the driver (below): the receive is over
                        // once its stream has the bytes; the stream starts
                        // the next when it has read them.
                        slot.state = State::Done { res: earlier, flags: held & !CQE_F_MORE };
                    } else {
                        slot.state = State::Done { res: earlier, flags: held };
                        slot.end = Some(res);
                    }
                    // Enough bytes wait unread: the receive stops, so a
                    // stream whose reader stops reading stops receiving
                    // (the ring's size bounds what all streams hold).
                    if more && !slot.stopping && queued_buffers(&slot.keep) >= STOP_AT_BUFFERS {
                        slot.stopping = true;
                        to_stop.push(id as u32);
                    }
                }
                other @ (State::Free | State::Done { .. }) => {
                    slot.state = other;
                    recycle(bufs, std::mem::replace(&mut received, Keep::Nothing));
                }
            }
            drop_keep(received);
        }
        if grow {
            // More receives completed in one batch than the ring held.
            let provided = bufs.provided();
            let added = bufs.grow(provided.max(INITIAL_BUFFERS));
            tracing::debug!(provided = provided + added, "io_uring buffer ring grown");
        }
        while let Some(id) = self.to_stop.pop() {
            self.push_cancel(id);
        }
    }
}

/// Closes a dropped stream's descriptor after the SQ's entries have gone
/// to the kernel: one of them may be this stream's (a send queued this
/// turn, the cancellation of its receive), and the kernel resolves an
/// entry's descriptor only when it takes it. Closed now, the number could
/// be given to a socket opened later in the same turn, and the entry would
/// act on that socket: a response sent to another client. Closed by the
/// park hook, which submits first, or now when no driver runs.
pub(super) fn close_after_submit(fd: OwnedFd) {
    DRIVER.with(|d| {
        if let Ok(mut d) = d.try_borrow_mut() {
            if let Some(d) = d.as_mut() {
                if !d.ring.submission().is_empty() {
                    d.to_close.push(fd);
                }
            }
        }
    });
}

/// Frees a slot (its state only: the caller takes what it keeps) and moves
/// its generation on.
fn free_slot(free: &mut Vec<u32>, slot: &mut Slot, id: u32) {
    slot.state = State::Free;
    slot.generation = slot.generation.wrapping_add(1);
    slot.end = None;
    slot.stopping = false;
    slot.armed = false;
    free.push(id);
}

/// Drops `keep`, with no call for the common `Nothing` (the compiler does
/// not inline `Keep`'s drop glue: ~20 instructions a call, several calls a
/// request).
#[inline(always)]
fn drop_keep(keep: Keep) {
    if matches!(keep, Keep::Nothing) {
        std::mem::forget(keep);
    } else {
        drop(keep);
    }
}

/// A multishot receive's new delivery `next`, queued behind the bytes in
/// `queued` (the deliveries its stream has not taken yet), in order.
fn queue_behind(queued: Keep, next: Keep) -> Keep {
    let mut all = match queued {
        Keep::Bytes(bytes) => vec![bytes],
        Keep::Bundle(bundle) => bundle,
        other => {
            drop_keep(other);
            Vec::new()
        }
    };
    match next {
        Keep::Bytes(bytes) => all.push(bytes),
        Keep::Bundle(bundle) => all.extend(bundle),
        other => drop_keep(other),
    }
    match all.len() {
        1 => Keep::Bytes(all.swap_remove(0)),
        _ => Keep::Bundle(all),
    }
}

/// How many ring buffers `keep` holds.
fn queued_buffers(keep: &Keep) -> usize {
    match keep {
        Keep::Bytes(_) => 1,
        Keep::Bundle(bundle) => bundle.len(),
        _ => 0,
    }
}

/// Gives the buffers `keep` holds back to the ring's spares.
fn recycle(bufs: &mut BufRing, keep: Keep) {
    match keep {
        Keep::Bytes(buf) => bufs.give_back(buf),
        Keep::Bundle(taken) => taken.into_iter().for_each(|buf| bufs.give_back(buf)),
        Keep::Gather(gathered) => gathered.bufs.into_iter().for_each(|buf| bufs.give_back(buf)),
        Keep::Nothing | Keep::Addr(_) => {}
    }
}

/// Runs `f` with this thread's driver.
fn with<R>(f: impl FnOnce(&mut Driver) -> R) -> R {
    DRIVER.with(|d| f(d.borrow_mut().as_mut().expect("io_uring backend used outside its event loop")))
}

/// Like [`with`], but does nothing once the driver is gone (drops at exit).
fn with_if_running(f: impl FnOnce(&mut Driver)) {
    DRIVER.with(|d| {
        if let Ok(mut d) = d.try_borrow_mut() {
            if let Some(d) = d.as_mut() {
                f(d);
            }
        }
    });
}

/// Wakes the tasks whose operations completed, outside the driver's borrow.
fn wake_collected() {
    let wakers = DRIVER.with(|d| d.borrow_mut().as_mut().map(|d| std::mem::take(&mut d.to_wake)));
    if let Some(mut wakers) = wakers {
        for w in wakers.drain(..) {
            w.wake();
        }
        DRIVER.with(|d| {
            if let Some(d) = d.borrow_mut().as_mut() {
                if d.to_wake.is_empty() {
                    d.to_wake = wakers;
                }
            }
        });
    }
}

/// Starts an operation. See [`Driver::start`] for the safety contract.
pub(super) unsafe fn start(sqe: squeue::Entry, keep: Keep) -> u32 {
    // SAFETY: forwarded from the caller.
    with(|d| unsafe { d.start(sqe, keep) })
}

/// `IORING_RECVSEND_POLL_FIRST`, in a receive's `ioprio`.
const RECV_POLL_FIRST: u16 = 1;
/// `IORING_RECVSEND_BUNDLE`, in a receive's `ioprio`.
const RECV_BUNDLE: u16 = 1 << 4;
/// `IORING_CQE_F_MORE`: a multishot operation's completion that is not its
/// last (`cqueue::more` reads it; the crate does not export the bit).
const CQE_F_MORE: u32 = 1 << 1;
/// `IORING_RECV_MULTISHOT`, in a receive's `ioprio`.
const RECV_MULTISHOT: u16 = 1 << 1;
/// How far a multishot receive runs ahead of its stream, in buffers: two
/// full bundles (128 KiB at the default buffer size), so a 64 KiB response
/// arriving in two deliveries before its task runs does not stop it.
/// - The kernel ends a multishot receive once it has received this many
///   buffers' worth of bytes (the SQE's `optlen`, Linux 6.16): with bytes
///   streaming in, the kernel's own loop would otherwise fill one
///   delivery after another (up to 32 a wake-up) before the driver sees
///   any. The stream starts the next when its reader has read the bytes.
/// - The driver cancels one when this many buffers wait in its slot for
///   the stream: bytes that trickle in, a few at a time, each take a
///   buffer of their own, and the byte limit alone would let them hold
///   hundreds.
pub(super) const STOP_AT_BUFFERS: usize = 2 * BUNDLE_BUFFERS;
/// The most buffers one bundled receive fills (64 KiB at the default 16 KiB
/// buffer size): enough that a 64 KiB body arrives in one operation, few
/// enough that one connection streaming a large body neither holds more
/// than that at once nor empties the ring the core's other receives share.
pub(super) const BUNDLE_BUFFERS: usize = 4;

/// An SQE's bytes: `io_uring_sqe`, whose `ioprio` (a `u16` at offset 2)
/// the `io-uring` crate's `Recv` builder does not expose.
const _: () = assert!(std::mem::size_of::<squeue::Entry>() == 64);

/// Starts a receive into a buffer from the ring. `poll_first` when the last
/// receive left the socket empty: the kernel then waits for bytes before
/// trying, instead of first failing a receive with EAGAIN (one attempt less
/// for every request that is not already there). Bundled while the kernel
/// takes bundles: the completion may then bring several buffers. Multishot
/// while the kernel takes it: the receive stays armed after a completion
/// (which then says `IORING_CQE_F_MORE`) and delivers again when more bytes
/// arrive, with no new submission and no new poll to arm.
pub(super) fn start_recv(fd: RawFd, poll_first: bool) -> (u32, RecvFlags) {
    with(|d| {
        let used = RecvFlags { multishot: d.multishot, bundle: d.bundles };
        // With bundles the length bounds the bytes of one receive.
        let most = (d.bufs.size() * BUNDLE_BUFFERS).min(u32::MAX as usize) as u32;
        let mut sqe = opcode::Recv::new(types::Fd(fd), std::ptr::null_mut(), if d.bundles { most } else { 0 })
            .buf_group(BUFFER_GROUP)
            .build()
            .flags(squeue::Flags::BUFFER_SELECT);
        let ioprio = if poll_first { RECV_POLL_FIRST } else { 0 }
            | if d.bundles { RECV_BUNDLE } else { 0 }
            | if d.multishot { RECV_MULTISHOT } else { 0 };
        if ioprio != 0 {
            // SAFETY: `squeue::Entry` is `#[repr(C)]` around the kernel's
            // 64-byte `io_uring_sqe` (size asserted above), whose layout is
            // ABI: opcode (u8), flags (u8), ioprio (u16) at 0..4, and the
            // `optlen` (u32) of the union at 44..48.
            let bytes = unsafe { &mut *(&mut sqe as *mut squeue::Entry).cast::<[u8; 64]>() };
            bytes[2..4].copy_from_slice(&ioprio.to_ne_bytes());
            if d.multishot {
                let limit = (d.bufs.size() * STOP_AT_BUFFERS).min(u32::MAX as usize) as u32;
                bytes[44..48].copy_from_slice(&limit.to_ne_bytes());
            }
        }
        // SAFETY: the receive points at no memory of ours: the kernel picks
        // ring buffers, which the ring keeps alive.
        (unsafe { d.start(sqe, Keep::Nothing) }, used)
    })
}

/// The optional flags a receive was started with, for
/// [`refuse_receive_flags`].
#[derive(Clone, Copy, Default)]
pub(super) struct RecvFlags {
    multishot: bool,
    bundle: bool,
}

/// A receive started with `used` failed with `EINVAL`: the kernel refuses
/// one of its flags. Multishot goes first (a multishot receive with a byte
/// limit needs Linux 6.16), then bundles (Linux 6.10); the caller starts
/// its receive again without it (`true`), also when another receive of the
/// same batch has already turned it off. `false` when the receive had
/// neither: the error is its own.
pub(super) fn refuse_receive_flags(used: RecvFlags) -> bool {
    with(|d| {
        if used.multishot {
            if d.multishot {
                tracing::debug!("the kernel refuses multishot io_uring receives; one receive per read");
                d.multishot = false;
            }
            true
        } else if used.bundle {
            if d.bundles {
                tracing::debug!("the kernel refuses bundled io_uring receives; receiving one buffer at a time");
                d.bundles = false;
            }
            true
        } else {
            false
        }
    })
}

pub(super) fn poll(id: u32, cx: &mut Context<'_>) -> Poll<Completed> {
    with(|d| d.poll(id, cx))
}

/// A detached send: its slot and the slot's generation when it started.
#[derive(Clone, Copy)]
pub(super) struct DetachedId {
    id: u32,
    generation: u32,
}

/// Starts a send of a copy of `bytes` on `fd` that nobody awaits: its slot
/// is freed as soon as it completes having sent everything (its copy's
/// buffer kept for the next one); [`poll_detached`] tells the owner whether
/// it has, and the error if not. `MSG_WAITALL` makes the kernel finish a
/// short send itself.
pub(super) fn send_copy_detached(fd: RawFd, bytes: &[u8]) -> DetachedId {
    with(|d| {
        let mut copy = d.send_copies.pop().unwrap_or_default();
        copy.extend_from_slice(bytes);
        let sqe = opcode::Send::new(types::Fd(fd), copy.as_ptr(), copy.len() as u32)
            .flags(libc::MSG_NOSIGNAL | libc::MSG_WAITALL)
            .build();
        // SAFETY: the SQE points into the copy's heap memory, which moves
        // into the operation's slot (and does not move) until the completion.
        let id = unsafe { d.start(sqe, Keep::Bytes(copy)) };
        let slot = &mut d.slots[id as usize];
        slot.state = State::Detached(None);
        DetachedId { id, generation: slot.generation }
    })
}

/// Keeps the buffer of a completed send's copy for the next one, up to
/// [`MAX_SEND_COPIES`].
fn keep_send_copy(send_copies: &mut Vec<Vec<u8>>, mut copy: Vec<u8>) {
    if send_copies.len() < MAX_SEND_COPIES {
        copy.clear();
        send_copies.push(copy);
    }
}

/// Whether a detached send has completed: `Ok` once it sent all its bytes,
/// `Err(errno)` if it failed (0: after sending part of them). While it is
/// in flight, `cx`'s waker (if any) is woken when it completes.
pub(super) fn poll_detached(send: DetachedId, cx: Option<&mut Context<'_>>) -> Poll<Result<(), i32>> {
    with(|d| {
        if !d.is_detached(send) {
            return Poll::Ready(Ok(()));
        }
        let slot = &mut d.slots[send.id as usize];
        match &mut slot.state {
            State::Detached(waker) => {
                if let Some(cx) = cx {
                    match waker {
                        Some(w) if w.will_wake(cx.waker()) => {}
                        _ => *waker = Some(cx.waker().clone()),
                    }
                }
                Poll::Pending
            }
            State::Done { res, .. } => {
                let errno = if *res < 0 { -*res } else { 0 };
                slot.keep = Keep::Nothing;
                free_slot(&mut d.free, slot, send.id);
                Poll::Ready(Err(errno))
            }
            State::Free | State::InFlight(_) | State::Abandoned => unreachable!("checked by is_detached"),
        }
    })
}

/// Gives up on a detached send (the stream is dropped): one still in flight
/// is cancelled.
pub(super) fn abandon_detached(send: DetachedId) {
    with_if_running(|d| {
        if d.is_detached(send) {
            d.abandon(send.id);
        }
    });
}

pub(super) fn is_done(id: u32) -> bool {
    with(|d| d.is_done(id))
}

pub(super) fn collect_stopped(id: u32) -> bool {
    with(|d| d.collect_stopped(id))
}

pub(super) fn abandon(id: u32) {
    with_if_running(|d| d.abandon(id));
}

/// A buffer a stream is done with, back to the ring's spares.
pub(super) fn give_back(buf: Vec<u8>) {
    with_if_running(|d| d.bufs.give_back(buf));
}

/// Frees the ring's spare buffers and, if a burst grew the ring, shrinks it
/// back to its initial size; called by the worker when the core is quiet.
/// Returns how many buffers were freed.
pub fn trim() -> usize {
    let mut freed = 0;
    with_if_running(|d| freed = d.trim());
    freed
}

/// The future of one operation whose result a task awaits. Dropping it
/// before the completion cancels the operation.
pub(super) struct Operation {
    id: u32,
    finished: bool,
}

impl Operation {
    /// # Safety
    /// As for [`Driver::start`].
    pub(super) unsafe fn new(sqe: squeue::Entry, keep: Keep) -> Operation {
        // SAFETY: forwarded from the caller.
        Operation { id: unsafe { start(sqe, keep) }, finished: false }
    }
}

impl std::future::Future for Operation {
    type Output = Completed;
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Completed> {
        let done = poll(self.id, cx);
        if done.is_ready() {
            self.finished = true;
        }
        done
    }
}

impl Drop for Operation {
    fn drop(&mut self) {
        if !self.finished {
            abandon(self.id);
        }
    }
}

/// Installs a driver on this thread, runs `body`, and takes the driver down.
/// `body` gets a duplicate of the ring's descriptor, for [`drive`].
pub(super) fn run_with_driver<R>(buffer_size: usize, body: impl FnOnce(OwnedFd) -> io::Result<R>) -> io::Result<R> {
    let driver = Driver::new(buffer_size)?;
    // SAFETY: the ring's descriptor is open while `driver` lives; the
    // borrow is only cloned (dup) into a descriptor of our own.
    let ring_fd = unsafe { BorrowedFd::borrow_raw(driver.ring.as_raw_fd()) }.try_clone_to_owned()?;
    DRIVER.with(|d| *d.borrow_mut() = Some(driver));
    let out = body(ring_fd);
    let driver = DRIVER.with(|d| d.borrow_mut().take());
    if let Some(driver) = driver {
        shut_down(driver);
    }
    out
}

/// Cancels what is still in flight and waits (briefly) for it; whatever the
/// kernel still holds after that is leaked rather than freed under it.
fn shut_down(mut driver: Driver) {
    if driver.in_flight > 0 {
        let cancel = opcode::AsyncCancel2::new(types::CancelBuilder::any()).build().user_data(UNTRACKED);
        // SAFETY: a cancellation points at nothing.
        unsafe { driver.push(cancel) };
        for _ in 0..100 {
            driver.turn();
            if driver.in_flight == 0 {
                break;
            }
            let _ = driver.ring.submitter().submit_and_wait(1);
        }
    }
    driver.to_wake.clear();
    if driver.in_flight > 0 {
        tracing::warn!(
            in_flight = driver.in_flight,
            "io_uring operations still in flight at exit; their memory is leaked"
        );
        std::mem::forget(driver);
    }
}

/// The runtime's park hook: submit what this turn queued.
pub(super) fn submit() {
    with_if_running(|d| d.submit());
    wake_collected();
}

/// The driver task: waits until the ring's descriptor is readable
/// (completions posted), reaps them and wakes the tasks waiting on them.
/// Runs for the worker's life.
pub(super) async fn drive(ring_fd: OwnedFd) {
    // SAFETY: the AsyncFd owns the descriptor, which stays open and the same
    // until it is dropped.
    let ring_fd =
        match unsafe { tokio::io::unix::AsyncFd::register_with_interest(ring_fd, tokio::io::Interest::READABLE) } {
            Ok(fd) => fd,
            Err(e) => {
                tracing::error!(error = %e, "cannot watch the io_uring descriptor");
                return;
            }
        };
    loop {
        let mut ready = match ring_fd.readable().await {
            Ok(ready) => ready,
            Err(e) => {
                tracing::error!(error = %e, "watching the io_uring descriptor failed");
                return;
            }
        };
        // Cleared before reaping: completions posted after this make the
        // descriptor readable again (epoll is edge-triggered).
        ready.clear_ready();
        with(|d| d.turn());
        wake_collected();
    }
}

/// Adds `n` buffers to the ring (as a burst of arrivals would), for tests.
#[cfg(test)]
pub(super) fn provide(n: usize) {
    with(|d| {
        d.bufs.grow(n);
    });
}

/// Stops multishot receive `id` as [`Driver::reap`] does when bytes pile
/// up in its slot, for tests.
#[cfg(test)]
pub(super) fn stop(id: u32) {
    with(|d| {
        d.slots[id as usize].stopping = true;
        d.push_cancel(id);
    });
}

/// The buffers waiting in operation `id`'s slot for its stream.
#[cfg(test)]
pub(super) fn queued(id: u32) -> usize {
    with(|d| queued_buffers(&d.slots[id as usize].keep))
}

/// Operations in flight and buffers provided to the ring, for tests.
#[cfg(test)]
pub(super) fn stats() -> (usize, usize) {
    with(|d| (d.in_flight, d.bufs.provided()))
}

/// How many empty buffers for small writes' copies the driver keeps.
#[cfg(test)]
pub(super) fn send_copies_kept() -> usize {
    with(|d| d.send_copies.len())
}
