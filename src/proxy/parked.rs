//! Idle keep-alive connections, parked without a task of their own.
//!
//! A connection idle for longer than `HOT_IDLE` leaves its task and becomes
//! an entry here: its stream and what resuming needs, ~100 bytes, with no
//! future, no timer and no shutdown listener. Its stream is polled with a
//! waker that carries only the entry's key (no allocation): when bytes
//! arrive, the waker queues the key and wakes this core's one parking task
//! (`conn::watch_parked`), which polls that entry and spawns a new active
//! task for it. The same task closes entries whose idle time is up (one
//! timer for the whole core, set to the earliest deadline) and, when
//! draining starts, all of them. nginx parks its idle connections the same
//! way: a small struct and a timer tree, no buffer.

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};
use std::time::Instant;

/// An entry's index and generation: stale keys (a waker that fires after its
/// entry left) are recognised and ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    index: u32,
    generation: u32,
}

impl Key {
    fn to_bits(self) -> usize {
        ((self.generation as usize) << 32) | self.index as usize
    }

    fn from_bits(bits: usize) -> Key {
        Key { index: bits as u32, generation: (bits >> 32) as u32 }
    }
}

thread_local! {
    /// Keys whose streams woke since the parking task last looked.
    static WOKEN: RefCell<Vec<Key>> = const { RefCell::new(Vec::new()) };
    /// The parking task, to wake when a key is queued.
    static WATCHER: RefCell<Option<Waker>> = const { RefCell::new(None) };
    /// A new entry's deadline comes before the parking task's timer: it
    /// must set its timer again.
    static REARM: Cell<bool> = const { Cell::new(false) };
}

// A key fits a pointer-sized waker datum only on 64-bit targets.
const _: () = assert!(std::mem::size_of::<usize>() == 8);

static ENTRY_WAKER: RawWakerVTable = RawWakerVTable::new(clone_entry, wake_entry, wake_entry, drop_entry);

fn clone_entry(data: *const ()) -> RawWaker {
    RawWaker::new(data, &ENTRY_WAKER)
}

/// Queues the entry's key and wakes the parking task. Streams are woken on
/// the thread of the event loop that owns them, which is this core's.
fn wake_entry(data: *const ()) {
    let key = Key::from_bits(data as usize);
    WOKEN.with(|w| w.borrow_mut().push(key));
    WATCHER.with(|w| {
        if let Some(w) = w.borrow().as_ref() {
            w.wake_by_ref();
        }
    });
}

fn drop_entry(_: *const ()) {}

/// The waker an entry's stream is polled with: the key, no allocation.
pub fn waker(key: Key) -> Waker {
    // SAFETY: the vtable's functions treat the data as a plain integer and
    // uphold the RawWaker contract (clone copies it; wake and drop free
    // nothing).
    unsafe { Waker::from_raw(RawWaker::new(key.to_bits() as *const (), &ENTRY_WAKER)) }
}

/// Takes the keys woken since the last call; registers `cx` to be woken
/// when more come. Also ready (with no keys) when the timer must be set
/// again for a new, earlier deadline.
pub fn poll_woken(cx: &mut Context<'_>, into: &mut Vec<Key>) -> Poll<()> {
    WATCHER.with(|w| {
        let mut w = w.borrow_mut();
        match w.as_ref() {
            Some(current) if current.will_wake(cx.waker()) => {}
            _ => *w = Some(cx.waker().clone()),
        }
    });
    WOKEN.with(|w| into.append(&mut w.borrow_mut()));
    if into.is_empty() && !REARM.replace(false) {
        Poll::Pending
    } else {
        Poll::Ready(())
    }
}

struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

/// This core's parked connections (`T`: a connection's stream and what
/// resuming it needs), with their deadlines.
pub struct Parked<T> {
    slots: RefCell<Vec<Slot<T>>>,
    free: RefCell<Vec<u32>>,
    /// Deadlines, earliest first; entries of keys that left since are
    /// skipped when they come up.
    deadlines: RefCell<BinaryHeap<Reverse<(Instant, Key)>>>,
    len: Cell<usize>,
    /// The deadline the parking task sleeps until, if any: a new entry with
    /// an earlier one wakes it.
    timer: Cell<Option<Instant>>,
    /// The generation new slots start at: it moves on each time the slots
    /// are freed, so keys from before rarely meet an entry of after. (One
    /// that does only makes that entry's stream be polled: harmless.)
    fresh: Cell<u32>,
    /// Connections parked since the core started.
    parked: Cell<u64>,
}

impl<T> Default for Parked<T> {
    fn default() -> Self {
        Parked {
            slots: RefCell::default(),
            free: RefCell::default(),
            deadlines: RefCell::default(),
            len: Cell::new(0),
            timer: Cell::new(None),
            fresh: Cell::new(0),
            parked: Cell::new(0),
        }
    }
}

impl<T> Parked<T> {
    /// Parks `value` until `deadline`; returns its key.
    pub fn insert(&self, value: T, deadline: Instant) -> Key {
        let mut slots = self.slots.borrow_mut();
        let index = match self.free.borrow_mut().pop() {
            Some(index) => index,
            None => {
                slots.push(Slot { generation: self.fresh.get(), value: None });
                (slots.len() - 1) as u32
            }
        };
        let slot = &mut slots[index as usize];
        slot.value = Some(value);
        let key = Key { index, generation: slot.generation };
        self.deadlines.borrow_mut().push(Reverse((deadline, key)));
        self.len.set(self.len.get() + 1);
        self.parked.set(self.parked.get() + 1);
        if self.timer.get().is_none_or(|t| deadline < t) {
            REARM.set(true);
            WATCHER.with(|w| {
                if let Some(w) = w.borrow().as_ref() {
                    w.wake_by_ref();
                }
            });
        }
        key
    }

    /// Runs `f` on the entry, if `key` is still parked.
    pub fn with<R>(&self, key: Key, f: impl FnOnce(&T) -> R) -> Option<R> {
        let slots = self.slots.borrow();
        let slot = slots.get(key.index as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        slot.value.as_ref().map(f)
    }

    /// Takes the entry out, if `key` is still parked.
    pub fn remove(&self, key: Key) -> Option<T> {
        let mut slots = self.slots.borrow_mut();
        let slot = slots.get_mut(key.index as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        let value = slot.value.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.borrow_mut().push(key.index);
        self.len.set(self.len.get() - 1);
        if self.len.get() == 0 {
            // Everything left: give the memory of a burst back.
            self.fresh.set(self.fresh.get().wrapping_add(0x1_0000));
            *slots = Vec::new();
            *self.free.borrow_mut() = Vec::new();
            *self.deadlines.borrow_mut() = BinaryHeap::new();
        }
        Some(value)
    }

    /// Takes out the entries whose deadline is not after `now`.
    pub fn expired(&self, now: Instant) -> Vec<T> {
        let mut out = Vec::new();
        loop {
            let key = {
                let mut deadlines = self.deadlines.borrow_mut();
                match deadlines.peek() {
                    Some(Reverse((deadline, key))) if *deadline <= now => {
                        let key = *key;
                        deadlines.pop();
                        key
                    }
                    _ => break,
                }
            };
            if let Some(value) = self.remove(key) {
                out.push(value);
            }
        }
        out
    }

    /// Takes out every entry (draining).
    pub fn all(&self) -> Vec<T> {
        let keys: Vec<Key> = self.deadlines.borrow().iter().map(|Reverse((_, key))| *key).collect();
        keys.into_iter().filter_map(|key| self.remove(key)).collect()
    }

    /// The earliest deadline still to come, remembered as the timer the
    /// parking task now sleeps until.
    pub fn arm_timer(&self) -> Option<Instant> {
        let next = loop {
            let mut deadlines = self.deadlines.borrow_mut();
            let Some(Reverse((deadline, key))) = deadlines.peek().copied() else { break None };
            if self.with(key, |_| ()).is_some() {
                break Some(deadline);
            }
            // That entry left (resumed): its deadline is stale.
            deadlines.pop();
        };
        self.timer.set(next);
        next
    }

    /// Connections parked since the core started (the worker's memory
    /// release notices parking through it).
    pub fn parked_so_far(&self) -> u64 {
        self.parked.get()
    }

    pub fn len(&self) -> usize {
        self.len.get()
    }

    pub fn is_empty(&self) -> bool {
        self.len.get() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn keys_of_entries_that_left_are_ignored() {
        let parked = Parked::default();
        let now = Instant::now();
        let _stays = parked.insert("stays", now + Duration::from_secs(5));
        let a = parked.insert("a", now + Duration::from_secs(5));
        assert_eq!(parked.remove(a), Some("a"));
        let b = parked.insert("b", now + Duration::from_secs(5));
        assert_eq!(a.index, b.index, "the slot is reused");
        assert_eq!(parked.with(a, |v| *v), None, "the old key no longer reaches it");
        assert_eq!(parked.remove(a), None);
        assert_eq!(parked.with(b, |v| *v), Some("b"));
        // Once everything left, new slots start at another generation.
        parked.all();
        let c = parked.insert("c", now + Duration::from_secs(5));
        assert_eq!(parked.with(b, |v| *v), None);
        assert_eq!(parked.with(c, |v| *v), Some("c"));
    }

    #[test]
    fn deadlines_expire_in_order_and_skip_resumed_entries() {
        let parked = Parked::default();
        let now = Instant::now();
        let early = parked.insert(1, now + Duration::from_secs(1));
        let _late = parked.insert(3, now + Duration::from_secs(3));
        let _middle = parked.insert(2, now + Duration::from_secs(2));
        assert_eq!(parked.arm_timer(), Some(now + Duration::from_secs(1)));
        assert_eq!(parked.remove(early), Some(1), "resumed before its deadline");
        assert_eq!(parked.arm_timer(), Some(now + Duration::from_secs(2)));
        assert_eq!(parked.expired(now + Duration::from_secs(2)), vec![2]);
        assert_eq!(parked.len(), 1);
        assert_eq!(parked.all(), vec![3]);
        assert!(parked.is_empty());
        assert_eq!(parked.arm_timer(), None);
    }

    #[test]
    fn a_woken_entry_reaches_the_watcher() {
        let parked = Parked::default();
        let key = parked.insert((), Instant::now() + Duration::from_secs(1));
        let mut woken = Vec::new();
        let mut cx = Context::from_waker(Waker::noop());
        assert!(poll_woken(&mut cx, &mut woken).is_ready(), "the first entry sets the timer");
        assert!(woken.is_empty());
        assert!(poll_woken(&mut cx, &mut woken).is_pending());
        waker(key).wake_by_ref();
        assert!(poll_woken(&mut cx, &mut woken).is_ready());
        assert_eq!(woken, vec![key]);
    }
}
