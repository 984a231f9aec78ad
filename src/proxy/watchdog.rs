//! Coarse per-core deadlines for body reads and writes, and for the hot
//! idle wait between requests (`conn::Session::wait_for_request`).
//!
//! Every body read and write is bounded (`corelink.bodyProgressTimeoutMs`,
//! 60 s by default, and the server's `socketOptions`), but nearly all of them
//! finish long before: a timer per operation would be armed and cancelled on
//! every request for nothing. tokio's timer takes its driver's lock and
//! walks its wheel both ways; on io_uring, where no operation completes on
//! its first poll, that was 5 % of a plaintext request (callgrind, 810
//! instructions). A limit counted in seconds needs no millisecond timer, so
//! an operation that has to wait registers its waker here instead: a slot in
//! a per-core table, no clock read, no lock. One ticker task per core, alive
//! only while something is registered, advances a tick counter every
//! [`TICK`] and wakes the operations whose deadline has passed. A limit
//! therefore fires between its length and its length plus two ticks.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// The watchdog's resolution.
pub const TICK: Duration = Duration::from_millis(TICK_MS);
const TICK_MS: u64 = 100;

thread_local! {
    static WATCHDOG: Watchdog = const {
        Watchdog { slots: RefCell::new(Vec::new()), free: RefCell::new(Vec::new()), now: Cell::new(0), ticking: Cell::new(false) }
    };
}

struct Watchdog {
    /// Registered waits; `None` marks a free slot (listed in `free`).
    slots: RefCell<Vec<Option<Slot>>>,
    free: RefCell<Vec<usize>>,
    /// Ticks since this core's ticker first ran.
    now: Cell<u64>,
    /// A ticker task runs on this core.
    ticking: Cell<bool>,
}

struct Slot {
    /// The tick at which the wait has lasted its limit.
    deadline: u64,
    /// Taken when the deadline passes (the wait is then expired).
    waker: Option<Waker>,
}

/// One registered wait. Dropping it frees its slot.
#[derive(Debug)]
pub struct Registration(usize);

impl Registration {
    /// Registers a wait of at least `limit` that wakes `waker` when it has
    /// lasted that long. Starts this core's ticker if none runs.
    pub fn new(limit: Duration, waker: &Waker) -> Registration {
        WATCHDOG.with(|w| {
            // The tick under way is partly over: one more keeps the wait at
            // least `limit` long.
            // (In u64 milliseconds: `as_nanos` is a u128, and its division
            // alone cost a third of a registration.)
            let millis = limit.as_secs().saturating_mul(1000).saturating_add(u64::from(limit.subsec_millis()));
            let ticks = millis.div_ceil(TICK_MS).saturating_add(1);
            let slot = Slot { deadline: w.now.get().saturating_add(ticks), waker: Some(waker.clone()) };
            let index = match w.free.borrow_mut().pop() {
                Some(i) => {
                    w.slots.borrow_mut()[i] = Some(slot);
                    i
                }
                None => {
                    let mut slots = w.slots.borrow_mut();
                    slots.push(Some(slot));
                    slots.len() - 1
                }
            };
            if !w.ticking.get() {
                tokio::task::spawn_local(tick());
                w.ticking.set(true);
            }
            Registration(index)
        })
    }

    /// Whether the deadline passed; otherwise keeps `waker` as the one to
    /// wake (a task may be polled with another waker than it registered).
    pub fn expired(&self, waker: &Waker) -> bool {
        WATCHDOG.with(|w| match &mut w.slots.borrow_mut()[self.0] {
            Some(Slot { waker: Some(registered), .. }) => {
                if !registered.will_wake(waker) {
                    registered.clone_from(waker);
                }
                false
            }
            _ => true,
        })
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // `try_with`: a task dropped while its thread exits may outlive the
        // table.
        let _ = WATCHDOG.try_with(|w| {
            w.slots.borrow_mut()[self.0] = None;
            w.free.borrow_mut().push(self.0);
        });
    }
}

/// `op` bounded by a coarse `limit`: it ran at least `limit` (and at most
/// two ticks more, if this core's event loop keeps up) when it fails with
/// [`Expired`].
///
/// `op` is polled first, so one that is ready at once registers nothing;
/// one that has to wait takes a slot in the table rather than a tokio timer.
pub fn within<F: Future>(limit: Duration, op: F) -> Within<F> {
    Within { op, limit, registration: None }
}

/// The limit of [`within`] passed before its operation finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expired;

pin_project_lite::pin_project! {
    /// The future of [`within`].
    #[must_use = "futures do nothing unless awaited"]
    pub struct Within<F> {
        #[pin]
        op: F,
        limit: Duration,
        registration: Option<Registration>,
    }
}

impl<F: Future> Future for Within<F> {
    type Output = Result<F::Output, Expired>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(done) = this.op.poll(cx) {
            return Poll::Ready(Ok(done));
        }
        match this.registration {
            None => {
                *this.registration = Some(Registration::new(*this.limit, cx.waker()));
                Poll::Pending
            }
            Some(r) if r.expired(cx.waker()) => Poll::Ready(Err(Expired)),
            Some(_) => Poll::Pending,
        }
    }
}

/// This core's ticker: advances the tick count and wakes expired waits;
/// ends when nothing is registered (the next registration starts another).
async fn tick() {
    // However the task ends (also dropped with its runtime), the next
    // registration must start another.
    struct Ticking;
    impl Drop for Ticking {
        fn drop(&mut self) {
            let _ = WATCHDOG.try_with(|w| w.ticking.set(false));
        }
    }
    let _ticking = Ticking;
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await;
    loop {
        interval.tick().await;
        let done = WATCHDOG.with(|w| {
            let now = w.now.get() + 1;
            w.now.set(now);
            let mut slots = w.slots.borrow_mut();
            let mut live = 0;
            for slot in slots.iter_mut().flatten() {
                live += 1;
                if slot.deadline <= now {
                    if let Some(waker) = slot.waker.take() {
                        waker.wake();
                    }
                }
            }
            if live == 0 {
                // Nothing to watch: release the table's memory too.
                slots.clear();
                w.free.borrow_mut().clear();
            }
            live == 0
        });
        if done {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;
    use std::task::Poll;

    fn local_runtime() -> (tokio::runtime::Runtime, tokio::task::LocalSet) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        (rt, tokio::task::LocalSet::new())
    }

    #[test]
    fn a_wait_expires_after_its_limit_and_not_before() {
        let (rt, local) = local_runtime();
        local.block_on(&rt, async {
            let started = tokio::time::Instant::now();
            let mut registration = None;
            poll_fn(|cx| {
                let r = registration.get_or_insert_with(|| Registration::new(Duration::from_millis(250), cx.waker()));
                if r.expired(cx.waker()) {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            })
            .await;
            let waited = started.elapsed();
            assert!(waited >= Duration::from_millis(250), "{waited:?}");
            assert!(waited < Duration::from_millis(250) + 3 * TICK, "{waited:?}");
        });
    }

    #[test]
    fn within_returns_a_ready_operation_and_expires_a_waiting_one() {
        let (rt, local) = local_runtime();
        local.block_on(&rt, async {
            assert_eq!(within(Duration::from_millis(1), async { 7 }).await, Ok(7));
            WATCHDOG.with(|w| assert!(w.slots.borrow().is_empty(), "a ready operation registers nothing"));
            let started = tokio::time::Instant::now();
            let limit = Duration::from_millis(150);
            assert_eq!(within(limit, std::future::pending::<()>()).await, Err(Expired));
            let waited = started.elapsed();
            assert!(waited >= limit && waited < limit + 3 * TICK, "{waited:?}");
        });
    }

    #[test]
    fn dropped_registrations_free_their_slots_and_stop_the_ticker() {
        let (rt, local) = local_runtime();
        local.block_on(&rt, async {
            let waker = poll_fn(|cx| Poll::Ready(cx.waker().clone())).await;
            let a = Registration::new(Duration::from_secs(60), &waker);
            let b = Registration::new(Duration::from_secs(60), &waker);
            drop(a);
            let c = Registration::new(Duration::from_secs(60), &waker);
            assert_eq!(c.0, 0, "a freed slot is reused");
            assert!(!b.expired(&waker) && !c.expired(&waker));
            drop((b, c));
            tokio::time::sleep(3 * TICK).await;
            WATCHDOG.with(|w| {
                assert!(!w.ticking.get(), "the ticker ends when nothing is registered");
                assert!(w.slots.borrow().is_empty());
            });
        });
    }
}
