//! What happens to each connection after an exchange, decided in one place
//! from the facts of the request and the response (hyper keeps its
//! keep-alive state in `Conn` the same way). Pure: no I/O, no clock; the
//! exchange gathers the facts and acts on the answer.
//!
//! Two moments decide: the response head (the client must be told
//! `Connection: close` before the body goes out), and the end of the
//! exchange (is each connection still in step, and is the core draining?).

use http1::{BodyFraming, Version};

/// What becomes of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fate {
    /// Kept: the client's for its next request, the upstream's in the pool.
    Reuse,
    Close,
}

impl Fate {
    fn close_if(close: bool) -> Fate {
        if close {
            Fate::Close
        } else {
            Fate::Reuse
        }
    }
}

/// The facts of a response head that decide how it goes to the client.
#[derive(Debug, Clone, Copy)]
pub(super) struct HeadFacts {
    /// The request asked for keep-alive (explicitly for HTTP/1.0).
    pub request_keep_alive: bool,
    pub request_version: Version,
    pub framing: BodyFraming,
    /// `clearContext` and an `l5d-err` response: the client gets the head
    /// with an empty body.
    pub drop_body: bool,
    pub draining: bool,
}

/// Decided from the response head, before any of it goes to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct HeadPlan {
    /// What the head tells the client about its connection.
    pub downstream: Fate,
    /// Chunked upstream, HTTP/1.0 client: send the payload close-delimited.
    pub dechunk: bool,
}

pub(super) fn plan_head(f: HeadFacts) -> HeadPlan {
    let dechunk = f.framing == BodyFraming::Chunked && f.request_version == Version::Http10 && !f.drop_body;
    // A close-delimited body ends only when the client's connection does.
    let close_delimited = f.framing == BodyFraming::CloseDelimited && !f.drop_body;
    let close = !f.request_keep_alive || close_delimited || dechunk || f.draining;
    HeadPlan { downstream: Fate::close_if(close), dechunk }
}

/// How a relayed (non-tunnel) response ended.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ended {
    /// From the head's [`HeadPlan`].
    pub downstream: Fate,
    /// The response head allowed keep-alive.
    pub upstream_keep_alive: bool,
    /// The response body was not read (see [`HeadFacts::drop_body`]).
    pub body_dropped: bool,
    /// The whole request body went upstream before the response ended.
    pub request_body_sent: bool,
    /// The upstream sent bytes past the end of the response.
    pub bytes_after_response: bool,
}

/// What happens to each connection once the exchange is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Connections {
    pub downstream: Fate,
    pub upstream: Fate,
}

/// The end of an exchange. `draining` is read now, not at the head: an
/// upstream connection is not pooled by a core that is shutting down.
pub(super) fn settle(e: Ended, draining: bool) -> Connections {
    // A response that ended before the request body did leaves both
    // connections out of step: neither can be reused.
    let downstream = Fate::close_if(e.downstream == Fate::Close || !e.request_body_sent);
    let upstream = Fate::close_if(
        !e.upstream_keep_alive || e.body_dropped || e.bytes_after_response || !e.request_body_sent || draining,
    );
    Connections { downstream, upstream }
}

/// The client's connection after corelink answered the request itself
/// (a nack): it stays open only when nothing of the request is left unread.
pub(super) fn after_local_answer(
    request_body_read: bool,
    request_keep_alive: bool,
    version: Version,
    draining: bool,
) -> Fate {
    Fate::close_if(!request_body_read || !request_keep_alive || version != Version::Http11 || draining)
}

/// A request may be sent again on a fresh connection when a pooled one turns
/// out closed: it is replay-safe (idempotent, or has an Idempotency-Key) and
/// its whole body went out with the head (nothing of it was consumed).
pub(super) fn replayable(replay_safe: bool, body_in_head: bool) -> bool {
    replay_safe && body_in_head
}

#[cfg(test)]
mod tests {
    use super::*;
    use BodyFraming::*;
    use Fate::*;
    use Version::*;

    #[test]
    fn head_plans() {
        // (keep-alive, version, framing, drop_body, draining) -> (downstream, dechunk)
        #[rustfmt::skip]
        let cases = [
            (true,  Http11, Length(5),      false, false, Reuse, false),
            (true,  Http11, Empty,          false, false, Reuse, false),
            (true,  Http11, Chunked,        false, false, Reuse, false),
            (false, Http11, Length(5),      false, false, Close, false),
            (true,  Http11, Length(5),      false, true,  Close, false),
            (true,  Http11, CloseDelimited, false, false, Close, false),
            // The body is dropped: the client gets an empty body, framed.
            (true,  Http11, CloseDelimited, true,  false, Reuse, false),
            (true,  Http10, Length(5),      false, false, Reuse, false),
            (false, Http10, Length(5),      false, false, Close, false),
            (true,  Http10, Chunked,        false, false, Close, true),
            (false, Http10, Chunked,        false, false, Close, true),
            (true,  Http10, Chunked,        true,  false, Reuse, false),
            (true,  Http11, Tunnel,         false, false, Reuse, false),
        ];
        for (i, (keep_alive, version, framing, drop_body, draining, downstream, dechunk)) in
            cases.into_iter().enumerate()
        {
            let facts =
                HeadFacts { request_keep_alive: keep_alive, request_version: version, framing, drop_body, draining };
            assert_eq!(plan_head(facts), HeadPlan { downstream, dechunk }, "case {i}: {facts:?}");
        }
    }

    #[test]
    fn settled() {
        // (head's downstream, upstream keep-alive, body dropped, request body
        // sent, bytes after response, draining) -> (downstream, upstream)
        #[rustfmt::skip]
        let cases = [
            (Reuse, true,  false, true,  false, false, Reuse, Reuse),
            (Close, true,  false, true,  false, false, Close, Reuse),
            (Reuse, false, false, true,  false, false, Reuse, Close),
            (Reuse, true,  true,  true,  false, false, Reuse, Close),
            (Reuse, true,  false, true,  true,  false, Reuse, Close),
            // Draining after the head: the client heard keep-alive (its
            // connection closes at the next idle check); the pool is skipped.
            (Reuse, true,  false, true,  false, true,  Reuse, Close),
            // Early response: both out of step.
            (Reuse, true,  false, false, false, false, Close, Close),
            (Close, false, true,  false, true,  true,  Close, Close),
        ];
        for (i, (head, ka, dropped, sent, after, draining, downstream, upstream)) in cases.into_iter().enumerate() {
            let ended = Ended {
                downstream: head,
                upstream_keep_alive: ka,
                body_dropped: dropped,
                request_body_sent: sent,
                bytes_after_response: after,
            };
            assert_eq!(settle(ended, draining), Connections { downstream, upstream }, "case {i}: {ended:?}");
        }
    }

    #[test]
    fn local_answers() {
        #[rustfmt::skip]
        let cases = [
            (true,  true,  Http11, false, Reuse),
            (false, true,  Http11, false, Close),
            (true,  false, Http11, false, Close),
            (true,  true,  Http10, false, Close),
            (true,  true,  Http11, true,  Close),
        ];
        for (i, (read, ka, version, draining, fate)) in cases.into_iter().enumerate() {
            assert_eq!(after_local_answer(read, ka, version, draining), fate, "case {i}");
        }
    }

    #[test]
    fn replays() {
        assert!(replayable(true, true));
        assert!(!replayable(true, false));
        assert!(!replayable(false, true));
        assert!(!replayable(false, false));
    }
}
