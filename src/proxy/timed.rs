//! Bounded reads and writes: `socketOptions.readTimeoutMs` /
//! `writeTimeoutMs` and `corelink.bodyProgressTimeoutMs`, applied to each
//! read or write of a body (and of the response head to the client), so a
//! peer that stops reading or sending cannot hold its connection, an
//! upstream connection and a `maxSize` slot forever.
//!
//! A timed-out operation fails with an `io::Error` of kind `TimedOut` that
//! carries the [`IoLimit`] that fired. The body loops then fail as on any
//! I/O error, unchanged, and the exchange turns that error into
//! [`ProxyError::Stalled`](super::ProxyError::Stalled) in one place.
//!
//! The limits themselves are part of each server's settings
//! (`table::ServerSettings::io_limits`), re-exported here.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::io::Stream;
pub use crate::table::{IoLimit, IoLimits, IoOp, IoSetting};

use super::body::{read_into, write_all, write_range, write_range_then};
use super::watchdog::Registration;

/// The limit that cut an operation short, if `e` is such a timeout.
pub fn stalled(e: &io::Error) -> Option<IoLimit> {
    if e.kind() != io::ErrorKind::TimedOut {
        return None;
    }
    e.get_ref()?.downcast_ref::<IoLimit>().copied()
}

/// Runs `op` within `bound`. The operation is polled first: on epoll a read
/// whose data is already there, or a write the socket buffer takes at once
/// (the keep-alive GET's usual case), completes on that poll and registers
/// nothing. An operation that has to wait (on io_uring, every one) registers
/// with this core's [`watchdog`](super::watchdog), which costs a slot in a
/// table rather than a timer, and is woken when the limit has passed.
///
/// On timeout the operation is dropped mid-flight: the caller must close
/// the connection (an io_uring operation may still complete in the kernel).
fn within<T, F: Future<Output = io::Result<T>>>(bound: IoLimit, op: F) -> Within<F> {
    Within { op, bound, registration: None }
}

pin_project_lite::pin_project! {
    /// The future of [`within`]: hand-written rather than an `async fn`, so
    /// the operation's future is built in place once (an `async fn` taking
    /// it, then pinning it, copies it twice per read or write).
    #[must_use = "futures do nothing unless awaited"]
    struct Within<F> {
        #[pin]
        op: F,
        bound: IoLimit,
        registration: Option<Registration>,
    }
}

impl<T, F: Future<Output = io::Result<T>>> Future for Within<F> {
    type Output = io::Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(done) = this.op.poll(cx) {
            return Poll::Ready(done);
        }
        limit_passed(this.registration, this.bound, cx).map(Err)
    }
}

/// The clock of an operation that has to wait: registers the wait with the
/// watchdog on the first call, then is ready with the timeout error once
/// `bound` has passed (until then it keeps the latest waker).
#[inline]
fn limit_passed(registration: &mut Option<Registration>, bound: &IoLimit, cx: &Context<'_>) -> Poll<io::Error> {
    match registration {
        None => {
            *registration = Some(Registration::new(bound.limit, cx.waker()));
            Poll::Pending
        }
        Some(r) if r.expired(cx.waker()) => Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, *bound)),
        Some(_) => Poll::Pending,
    }
}

pin_project_lite::pin_project! {
    /// The future of [`read_into_within_unless_paused`].
    #[must_use = "futures do nothing unless awaited"]
    struct PausableWithin<'p, F> {
        #[pin]
        op: F,
        bound: IoLimit,
        paused: &'p Cell<bool>,
        registration: Option<Registration>,
    }
}

impl<T, F: Future<Output = io::Result<T>>> Future for PausableWithin<'_, F> {
    type Output = io::Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(done) = this.op.poll(cx) {
            return Poll::Ready(done);
        }
        if this.paused.get() {
            *this.registration = None;
            return Poll::Pending;
        }
        limit_passed(this.registration, this.bound, cx).map(Err)
    }
}

/// [`read_into`] within `bound`, the clock stopped while `paused` is set:
/// an upstream answers once it has the whole request body, so its response
/// head is not late while the body is still being sent (each of the body's
/// reads and writes is bounded meanwhile). The clock starts at the first
/// poll that finds the read waiting and `paused` clear: whoever clears it
/// polls this future again (`pump_and_relay`'s select does, on its next
/// turn).
pub(super) fn read_into_within_unless_paused<'a, S: Stream>(
    s: &'a S,
    buf: &'a mut Vec<u8>,
    min_spare: usize,
    bound: IoLimit,
    paused: &'a Cell<bool>,
) -> impl Future<Output = io::Result<usize>> + 'a {
    PausableWithin { op: read_into(s, buf, min_spare), bound, paused, registration: None }
}

/// [`read_into`] within `bound`. (Functions returning the future, not
/// `async fn`s: one layer of future less around every read and write.)
pub(super) fn read_into_within<'a, S: Stream>(
    s: &'a S,
    buf: &'a mut Vec<u8>,
    min_spare: usize,
    bound: IoLimit,
) -> impl Future<Output = io::Result<usize>> + 'a {
    within(bound, read_into(s, buf, min_spare))
}

/// [`write_all`] within `bound`.
pub(super) fn write_all_within<'a, S: Stream>(
    s: &'a S,
    buf: &'a mut Vec<u8>,
    bound: IoLimit,
) -> impl Future<Output = io::Result<()>> + 'a {
    within(bound, write_all(s, buf))
}

/// [`write_range`] within `bound`.
pub(super) fn write_range_within<'a, S: Stream>(
    s: &'a S,
    buf: &'a mut Vec<u8>,
    range: std::ops::Range<usize>,
    bound: IoLimit,
) -> impl Future<Output = io::Result<()>> + 'a {
    within(bound, write_range(s, buf, range))
}

/// [`write_range_then`] within `bound`.
pub(super) fn write_range_then_within<'a, S: Stream>(
    s: &'a S,
    buf: &'a mut Vec<u8>,
    range: std::ops::Range<usize>,
    more: Vec<(Vec<u8>, usize)>,
    bound: IoLimit,
) -> impl Future<Output = io::Result<()>> + 'a {
    within(bound, write_range_then(s, buf, range, more))
}

/// [`Stream::flush`] within `bound`.
pub(super) fn flush_within<S: Stream>(s: &S, bound: IoLimit) -> impl Future<Output = io::Result<()>> + '_ {
    within(bound, s.flush())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_tighter_limit_wins_and_is_named() {
        let l = IoLimits::new(Some(300 * MS), None, 60_000 * MS);
        assert_eq!((l.client_read.limit, l.client_read.setting), (300 * MS, IoSetting::ReadTimeout));
        assert_eq!((l.client_write.limit, l.client_write.setting), (60_000 * MS, IoSetting::BodyProgress));
        let l = IoLimits::new(Some(90_000 * MS), Some(100 * MS), 60_000 * MS);
        assert_eq!(l.client_read.setting, IoSetting::BodyProgress);
        assert_eq!((l.client_write.limit, l.client_write.setting), (100 * MS, IoSetting::WriteTimeout));
        assert_eq!(l.upstream_read.setting, IoSetting::BodyProgress);
        assert_eq!(l.upstream_write.op, IoOp::UpstreamWrite);
    }

    #[test]
    fn a_timeout_is_recognised_and_other_errors_are_not() {
        let l = IoLimits::new(None, None, 20 * MS).client_write;
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        // The watchdog's ticker is a local task.
        let local = tokio::task::LocalSet::new();
        let e = local.block_on(&rt, within(l, std::future::pending::<io::Result<()>>())).unwrap_err();
        assert_eq!(stalled(&e), Some(l));
        assert_eq!(e.to_string(), "the client read no response bytes for 20 ms (corelink.bodyProgressTimeoutMs)");
        assert_eq!(stalled(&io::ErrorKind::TimedOut.into()), None, "a kernel ETIMEDOUT is not ours");
        let ready = local.block_on(&rt, within(l, async { Ok(7) })).unwrap();
        assert_eq!(ready, 7);
    }
}
