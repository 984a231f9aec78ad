//! This core's recycled I/O buffers: a keep-alive connection allocates
//! nothing per request.

use std::cell::RefCell;

/// Size of the buffer an idle io_uring connection parks a read in.
const SMALL_BUFFER: usize = 512;
/// Free buffers kept per core and size; beyond that they are freed.
const MAX_FREE_BUFFERS: usize = 1024;

pub struct Buffers {
    /// The capacity of a full buffer (`corelink.bufferSize`).
    size: usize,
    free: RefCell<Vec<Vec<u8>>>,
    free_small: RefCell<Vec<Vec<u8>>>,
}

impl Buffers {
    pub fn new(size: usize) -> Self {
        Buffers { size, free: RefCell::new(Vec::new()), free_small: RefCell::new(Vec::new()) }
    }

    /// The capacity of a full buffer.
    pub fn size(&self) -> usize {
        self.size
    }

    /// An empty buffer with `size()` capacity.
    pub fn take(&self) -> Vec<u8> {
        self.free.borrow_mut().pop().unwrap_or_else(|| Vec::with_capacity(self.size))
    }

    pub fn give(&self, mut buf: Vec<u8>) {
        // Buffers that grew (a large head) or lost their allocation (a
        // cancelled read) are not recycled, so the free list stays uniform.
        if buf.capacity() != self.size {
            return;
        }
        let mut free = self.free.borrow_mut();
        if free.len() < MAX_FREE_BUFFERS {
            buf.clear();
            free.push(buf);
        }
    }

    /// An empty buffer of `SMALL_BUFFER` bytes, for an idle connection.
    pub fn take_small(&self) -> Vec<u8> {
        self.free_small.borrow_mut().pop().unwrap_or_else(|| Vec::with_capacity(SMALL_BUFFER))
    }

    pub fn give_small(&self, mut buf: Vec<u8>) {
        let mut free = self.free_small.borrow_mut();
        if buf.capacity() == SMALL_BUFFER && free.len() < MAX_FREE_BUFFERS {
            buf.clear();
            free.push(buf);
        }
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
        assert_eq!(buffers.free.borrow().len(), 0, "a grown buffer is dropped");
    }
}
