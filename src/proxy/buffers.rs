//! This core's recycled I/O buffers: a keep-alive connection allocates
//! nothing per request, and a burst leaves nothing behind once it is over
//! (see [`Buffers::trim`]).

use std::cell::{Cell, RefCell};

/// Free buffers kept per core and size; beyond that they are freed.
const MAX_FREE_BUFFERS: usize = 1024;

pub struct Buffers {
    /// The capacity of a full buffer (`corelink.bufferSize`).
    size: usize,
    free: FreeList,
}

/// One size's free buffers, with what the last interval needed of them.
#[derive(Default)]
struct FreeList {
    list: RefCell<Vec<Vec<u8>>>,
    /// The fewest buffers the list held since the last trim: that many sat
    /// unused through the whole interval.
    low: Cell<usize>,
    /// Buffers taken since the last trim (wrapping; only compared with 0).
    taken: Cell<usize>,
}

impl FreeList {
    #[inline]
    fn pop(&self) -> Option<Vec<u8>> {
        self.taken.set(self.taken.get().wrapping_add(1));
        let mut list = self.list.borrow_mut();
        let buf = list.pop();
        if list.len() < self.low.get() {
            self.low.set(list.len());
        }
        buf
    }

    #[inline]
    fn push(&self, mut buf: Vec<u8>) {
        let mut list = self.list.borrow_mut();
        if list.len() < MAX_FREE_BUFFERS {
            buf.clear();
            list.push(buf);
        }
    }

    /// Frees the buffers nobody needed since the last trim; true if none
    /// was taken in that time.
    fn trim(&self) -> (usize, bool) {
        let mut list = self.list.borrow_mut();
        let surplus = self.low.get().min(list.len());
        let keep = list.len() - surplus;
        list.truncate(keep);
        if list.is_empty() {
            *list = Vec::new();
        }
        self.low.set(list.len());
        let quiet = self.taken.replace(0) == 0;
        (surplus, quiet)
    }
}

/// What [`Buffers::trim`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trimmed {
    /// Buffers freed.
    pub freed: usize,
    /// No buffer was taken since the previous trim: the core was quiet.
    pub quiet: bool,
}

impl Buffers {
    pub fn new(size: usize) -> Self {
        Buffers { size, free: FreeList::default() }
    }

    /// The capacity of a full buffer.
    pub fn size(&self) -> usize {
        self.size
    }

    /// An empty buffer with `size()` capacity.
    #[inline]
    pub fn take(&self) -> Vec<u8> {
        self.free.pop().unwrap_or_else(|| Vec::with_capacity(self.size))
    }

    #[inline]
    pub fn give(&self, buf: Vec<u8>) {
        // Buffers that grew (a large head) or lost their allocation (a
        // cancelled read) are not recycled, so the free list stays uniform.
        if buf.capacity() == self.size {
            self.free.push(buf);
        }
    }

    /// Called once a second by the worker: frees the free buffers that sat
    /// unused through the whole second (the fewest the list held since the
    /// last call). Under steady load that is the surplus only; after a
    /// burst, once the connections went idle and gave their buffers back,
    /// it is all of them, so a burst leaves no buffer behind.
    pub fn trim(&self) -> Trimmed {
        let (freed, quiet) = self.free.trim();
        Trimmed { freed, quiet }
    }

    #[cfg(test)]
    fn free_len(&self) -> usize {
        self.free.list.borrow().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_buffers_of_the_core_size_are_recycled() {
        let buffers = Buffers::new(64);
        let mut first = buffers.take();
        first.extend_from_slice(b"old");
        let ptr = first.as_ptr();
        buffers.give(first);
        let again = buffers.take();
        assert_eq!((again.as_ptr(), again.len(), again.capacity()), (ptr, 0, 64), "recycled, emptied");
        buffers.give(Vec::with_capacity(128));
        assert_eq!(buffers.free_len(), 0, "a grown buffer is dropped");
    }

    /// A burst fills the free list; once the connections are idle, the
    /// buffers nobody took for a whole interval are freed, and an interval
    /// without a take is reported quiet.
    #[test]
    fn a_burst_leaves_no_free_buffers_behind() {
        let buffers = Buffers::new(64);
        let burst: Vec<_> = (0..100).map(|_| buffers.take()).collect();
        burst.into_iter().for_each(|b| buffers.give(b));
        assert_eq!(buffers.free_len(), 100);
        // The interval of the burst needed all of them.
        assert_eq!(buffers.trim(), Trimmed { freed: 0, quiet: false });
        assert_eq!(buffers.free_len(), 100);
        // Steady load of 3 buffers at a time: only those stay.
        let three: Vec<_> = (0..3).map(|_| buffers.take()).collect();
        three.into_iter().for_each(|b| buffers.give(b));
        assert_eq!(buffers.trim(), Trimmed { freed: 97, quiet: false });
        assert_eq!(buffers.free_len(), 3);
        // Then nothing: the rest goes, and the core is quiet.
        assert_eq!(buffers.trim(), Trimmed { freed: 3, quiet: true });
        assert_eq!(buffers.free_len(), 0);
        assert_eq!(buffers.free.list.borrow().capacity(), 0, "the list's own storage too");
        assert_eq!(buffers.trim(), Trimmed { freed: 0, quiet: true });
        // A take from an empty list still counts as activity.
        buffers.give(buffers.take());
        assert_eq!(buffers.trim(), Trimmed { freed: 0, quiet: false });
        assert_eq!(buffers.free_len(), 1, "the buffer given back since is kept for the next interval");
    }
}
