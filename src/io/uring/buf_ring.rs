//! The provided buffer ring receives go through: the kernel picks a buffer
//! only when bytes arrive, so a connection waiting for its next request (or
//! parked for minutes) holds no buffer at all.
//!
//! The ring is a page-aligned array of `io_uring_buf` entries shared with the
//! kernel; corelink adds a buffer by writing an entry at `tail` and
//! publishing the new tail. Each buffer is an ordinary `Vec<u8>` of the
//! core's buffer size, identified by its index (`bid`) in `bufs`. When a
//! receive completes with buffer `bid`, [`BufRing::take`] hands that `Vec`
//! (with the received bytes) to the stream and at once provides a
//! replacement under the same `bid`, from `spare` (buffers the streams gave
//! back) or a new allocation: the ring never runs dry for longer than one
//! batch of completions, and a keep-alive connection swaps buffers with it
//! rather than copying (see `UringStream::read`).
//!
//! A bundled receive (`IORING_RECVSEND_BUNDLE`) fills several buffers in
//! one operation: those at consecutive ring positions from the first one,
//! whose bid the completion names. [`BufRing::take_bundle`] finds the others
//! by the position each bid was provided at.
//!
//! The ring starts with [`INITIAL_BUFFERS`] and doubles when a receive finds
//! it empty (`ENOBUFS`: more receives completed in one batch than it held),
//! up to [`MAX_BUFFERS`]. When the core goes quiet, the driver frees the
//! spares and, if a burst grew the ring, registers it anew at its initial
//! size ([`BufRing::reset`]), so a burst leaves no buffers behind.

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;

/// Entries in the shared ring.
pub(super) const RING_ENTRIES: u16 = 512;
/// The most buffers a core ever provides: half the entries, so that while
/// one batch of completions is reaped, the replacements provided for the
/// first ones can never wrap around onto the positions of a later bundle's
/// buffers, which `take_bundle` still has to read. At 16 KiB each that
/// bounds the ring at 4 MiB per core; it holds as many as the largest batch
/// of simultaneous arrivals needed (tens, under `perf/compare`'s loads).
const MAX_BUFFERS: usize = RING_ENTRIES as usize / 2;
/// Buffers provided when the ring is registered.
pub(super) const INITIAL_BUFFERS: usize = 16;
/// Spare buffers kept for replacements; beyond that they are freed.
const MAX_SPARE: usize = 64;

pub(super) struct BufRing {
    /// The shared array of `RING_ENTRIES` entries (mmap'd, page-aligned).
    ring: NonNull<BufRingEntry>,
    /// The next tail to publish (the kernel reads it from entry 0's `resv`).
    tail: u16,
    /// The buffer behind each bid, while it is provided to the kernel.
    bufs: Vec<Option<Vec<u8>>>,
    /// The ring position (unmasked tail) each bid was last provided at.
    provided_at: Vec<u16>,
    /// Buffers given back by streams, ready to replace a taken one.
    spare: Vec<Vec<u8>>,
    /// The capacity of every buffer (the core's `corelink.bufferSize`).
    size: usize,
}

impl BufRing {
    /// Maps the ring's memory. It is registered by the driver, which then
    /// calls [`BufRing::grow`] to provide the first buffers.
    pub(super) fn new(size: usize) -> io::Result<Self> {
        let bytes = usize::from(RING_ENTRIES) * std::mem::size_of::<BufRingEntry>();
        // SAFETY: an anonymous private mapping; the result is checked.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ring = NonNull::new(addr.cast::<BufRingEntry>()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        let size = size.clamp(1, u32::MAX as usize);
        Ok(BufRing { ring, tail: 0, bufs: Vec::new(), provided_at: Vec::new(), spare: Vec::new(), size })
    }

    /// The ring's address, for `register_buf_ring`.
    pub(super) fn addr(&self) -> u64 {
        self.ring.as_ptr() as u64
    }

    /// Buffers provided so far (each bid keeps one from then on).
    pub(super) fn provided(&self) -> usize {
        self.bufs.len()
    }

    /// Provides `n` more buffers (fewer at `MAX_BUFFERS`); returns how many.
    pub(super) fn grow(&mut self, n: usize) -> usize {
        let room = MAX_BUFFERS - self.bufs.len();
        let n = n.min(room);
        for _ in 0..n {
            let bid = self.bufs.len() as u16;
            self.bufs.push(None);
            self.provided_at.push(0);
            let buf = self.replacement();
            self.provide(bid, buf);
        }
        self.publish();
        n
    }

    /// The buffer a receive completed into, holding its `len` bytes; a
    /// replacement takes its place in the ring at once.
    pub(super) fn take(&mut self, bid: u16, len: usize) -> Option<Vec<u8>> {
        let buf = self.hand_over(bid, len)?;
        self.publish();
        Some(buf)
    }

    /// The buffer behind `bid` with its first `len` bytes filled, and a
    /// replacement written into the ring under the same bid (published by
    /// the caller).
    fn hand_over(&mut self, bid: u16, len: usize) -> Option<Vec<u8>> {
        let mut buf = self.bufs.get_mut(usize::from(bid))?.take()?;
        // SAFETY: the kernel wrote `len` bytes (the completion's result, or
        // a bundle's share of it: never more than the length provided,
        // which is the capacity) into this buffer before posting the
        // completion.
        unsafe { buf.set_len(len.min(buf.capacity())) };
        let replacement = self.replacement();
        self.provide(bid, replacement);
        Some(buf)
    }

    /// The buffers a bundled receive filled with its `len` bytes, in order:
    /// the one at `first`'s ring position and those after it, each full but
    /// the last. Each gets a replacement in the ring at once. `None` if the
    /// ring does not hold what the completion names (then nothing is taken).
    pub(super) fn take_bundle(&mut self, first: u16, len: usize) -> Option<Vec<Vec<u8>>> {
        let count = len.div_ceil(self.size).max(1);
        let start = *self.provided_at.get(usize::from(first))?;
        let mask = RING_ENTRIES - 1;
        let mut bids = Vec::with_capacity(count);
        for i in 0..count {
            let pos = start.wrapping_add(i as u16);
            // SAFETY: the index is masked into the mapped array. The kernel
            // never writes entries (no incremental consumption), and the
            // ones a completion names are not provided again before it is
            // reaped (`MAX_BUFFERS`).
            let bid = unsafe { (*self.ring.as_ptr().add(usize::from(pos & mask))).bid() };
            let provided = self.bufs.get(usize::from(bid)).is_some_and(Option::is_some);
            if !provided || self.provided_at[usize::from(bid)] != pos {
                return None;
            }
            bids.push(bid);
        }
        let mut taken = Vec::with_capacity(count);
        let mut left = len;
        for bid in bids {
            // The kernel fills a bundle's buffers in ring order, each before
            // the next: every one is full but the last.
            let filled = left.min(self.size);
            left -= filled;
            taken.extend(self.hand_over(bid, filled));
        }
        self.publish();
        Some(taken)
    }

    /// The capacity of every buffer.
    pub(super) fn size(&self) -> usize {
        self.size
    }

    /// A buffer a stream is done with, kept to replace the next one taken.
    pub(super) fn give_back(&mut self, mut buf: Vec<u8>) {
        if buf.capacity() == self.size && self.spare.len() < MAX_SPARE {
            buf.clear();
            self.spare.push(buf);
        }
    }

    /// Frees the spare buffers (called when the core is quiet).
    pub(super) fn trim(&mut self) -> usize {
        let freed = self.spare.len();
        self.spare = Vec::new();
        freed
    }

    /// Forgets every provided buffer and frees it; the ring is empty again.
    /// Only once the kernel no longer has the ring registered (it would
    /// otherwise write into freed memory): the driver unregisters first.
    pub(super) fn reset(&mut self) -> usize {
        let freed = self.bufs.iter().filter(|b| b.is_some()).count();
        self.bufs = Vec::new();
        self.provided_at = Vec::new();
        self.tail = 0;
        self.publish();
        freed
    }

    fn replacement(&mut self) -> Vec<u8> {
        self.spare.pop().unwrap_or_else(|| Vec::with_capacity(self.size))
    }

    /// Writes `buf` into the entry at `tail` (not yet visible to the kernel).
    fn provide(&mut self, bid: u16, mut buf: Vec<u8>) {
        let mask = RING_ENTRIES - 1;
        // SAFETY: the index is masked into the mapped array; the kernel only
        // reads entries between its head and the published tail, and this
        // one is past the published tail.
        let entry = unsafe { &mut *self.ring.as_ptr().add(usize::from(self.tail & mask)) };
        entry.set_addr(buf.as_mut_ptr() as u64);
        entry.set_len(self.size as u32);
        entry.set_bid(bid);
        self.provided_at[usize::from(bid)] = self.tail;
        self.tail = self.tail.wrapping_add(1);
        self.bufs[usize::from(bid)] = Some(buf);
    }

    /// Makes the entries written so far visible to the kernel.
    fn publish(&self) {
        // SAFETY: the tail field is entry 0's `resv`, a u16 inside the
        // mapping; the kernel reads it with acquire semantics.
        unsafe {
            let tail = BufRingEntry::tail(self.ring.as_ptr()).cast_mut();
            (*tail.cast::<AtomicU16>()).store(self.tail, Ordering::Release);
        }
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // The driver unregisters the ring (or leaks it, when operations are
        // still in flight at exit) before this runs.
        let bytes = usize::from(RING_ENTRIES) * std::mem::size_of::<BufRingEntry>();
        // SAFETY: the mapping made in `new`, of that length.
        unsafe { libc::munmap(self.ring.as_ptr().cast(), bytes) };
    }
}
