//! Streaming a message body between streams with backpressure: one buffer,
//! read → validate framing → write → read again, so a slow receiver stops the
//! reading and the proxy's memory stays flat whatever the body size. On
//! io_uring one receive may bring several buffers (a bundle): they are
//! gathered behind the one read and go out in the same vectored send
//! ([`gather_body`]), still one receive's worth at a time.

use std::io;
use std::ops::Range;

use http1::{BodyReader, ParseError};

use crate::io::Stream;

use super::timed::{read_into_within, write_all_within, write_range_then_within, write_range_within, IoLimit};

/// Reads from `s`, appending into `buf`'s spare capacity (reserving `min_spare`
/// when full). If the future is dropped mid-read the buffer is lost with it;
/// callers only drop reads when they are about to close the connection.
pub(super) async fn read_into<S: Stream>(s: &S, buf: &mut Vec<u8>, min_spare: usize) -> io::Result<usize> {
    if buf.capacity() - buf.len() < min_spare.clamp(1, 1024) {
        buf.reserve(min_spare);
    }
    let owned = std::mem::take(buf);
    let (res, owned) = s.read(owned).await;
    *buf = owned;
    res
}

pub(super) async fn write_all<S: Stream>(s: &S, buf: &mut Vec<u8>) -> io::Result<()> {
    let owned = std::mem::take(buf);
    let (res, owned) = s.write_all(owned).await;
    *buf = owned;
    res
}

pub(super) async fn write_range<S: Stream>(s: &S, buf: &mut Vec<u8>, range: Range<usize>) -> io::Result<()> {
    let owned = std::mem::take(buf);
    let (res, owned) = s.write_range(owned, range).await;
    *buf = owned;
    res
}

/// [`Stream::write_range_then`], for a buffer the caller keeps.
pub(super) async fn write_range_then<S: Stream>(
    s: &S,
    buf: &mut Vec<u8>,
    range: Range<usize>,
    more: Vec<(Vec<u8>, usize)>,
) -> io::Result<()> {
    let owned = std::mem::take(buf);
    let (res, owned) = s.write_range_then(owned, range, more).await;
    *buf = owned;
    res
}

/// Drops the first `n` bytes of `buf`, keeping what follows (a pipelined
/// request, or bytes past a response's end).
pub(super) fn consume(buf: &mut Vec<u8>, n: usize) {
    if n >= buf.len() {
        buf.clear();
    } else {
        buf.copy_within(n.., 0);
        buf.truncate(buf.len() - n);
    }
}

#[derive(Debug)]
pub(super) enum PumpError {
    /// The sender closed before the body ended.
    SenderClosed,
    SenderIo(io::Error),
    Framing(ParseError),
    ReceiverIo(io::Error),
    TooLarge,
}

/// Streams the rest of a request body from `from` to `to`, each read and
/// write within its limit. `buf` holds no body bytes on entry; on return it
/// holds whatever followed the body (pipelining). A chunked body goes out
/// re-encoded (`BodyReader::forward`), any other as it came. Returns the
/// number of trailer fields dropped.
#[allow(clippy::too_many_arguments)]
pub(super) async fn pump_body<F: Stream, T: Stream>(
    from: &F,
    to: &T,
    reader: &mut BodyReader,
    buf: &mut Vec<u8>,
    buffer_size: usize,
    mut budget: Option<u64>,
    (read_limit, write_limit): (IoLimit, IoLimit),
) -> Result<u32, PumpError> {
    // The re-encoded chunks; stays unallocated for other bodies.
    let mut out = Vec::new();
    let rewrites = reader.rewrites();
    let mut trailers_dropped = 0;
    // Bytes after a gathered body's end (stays unallocated otherwise).
    let mut after = Vec::new();
    while !reader.is_done() {
        buf.clear();
        let n = read_into_within(from, buf, buffer_size, read_limit).await.map_err(PumpError::SenderIo)?;
        if n == 0 {
            return Err(PumpError::SenderClosed);
        }
        let progress = reader.forward(buf, &mut out).map_err(PumpError::Framing)?;
        trailers_dropped += progress.trailers_dropped;
        if let Some(left) = budget.as_mut() {
            *left = left.checked_sub(progress.consumed as u64).ok_or(PumpError::TooLarge)?;
        }
        // More of the body already received in whole buffers (an io_uring
        // bundle) goes out in the same send.
        let waiting = if rewrites || progress.done { None } else { from.take_received_buffer() };
        let sent = match waiting {
            None if rewrites => write_all_within(to, &mut out, write_limit).await,
            None => write_range_within(to, buf, 0..progress.consumed, write_limit).await,
            Some(first) => {
                let more = gather_body(first, from, reader, &mut budget).map_err(|e| match e {
                    GatherError::Framing(e) => PumpError::Framing(e),
                    GatherError::TooLarge => PumpError::TooLarge,
                })?;
                // A pipelined request after the body's end, in the last buffer.
                after = more.after_body().to_vec();
                write_range_then_within(to, buf, 0..progress.consumed, more.bufs, write_limit).await
            }
        };
        sent.map_err(PumpError::ReceiverIo)?;
        out.clear();
        consume(buf, progress.consumed);
        buf.extend_from_slice(&after);
        after.clear();
    }
    Ok(trailers_dropped)
}

/// Body bytes taken from buffers the sending stream already holds, for the
/// send that follows the bytes just read.
#[derive(Default)]
pub(super) struct GatheredBody {
    /// Each buffer and how many of its first bytes belong to the body.
    pub bufs: Vec<(Vec<u8>, usize)>,
    /// The body bytes among them.
    pub consumed: usize,
    /// `Some` when the body ended in them: whether bytes followed its end.
    pub ended: Option<bool>,
}

impl GatheredBody {
    /// The bytes after the body's end in the last buffer (a pipelined
    /// request), if the body ended there.
    fn after_body(&self) -> &[u8] {
        match (self.ended, self.bufs.last()) {
            (Some(true), Some((buf, body))) => &buf[*body..],
            _ => &[],
        }
    }
}

/// Why gathering failed.
pub(super) enum GatherError {
    Framing(ParseError),
    TooLarge,
}

impl GatherError {
    /// As the response relay reports it, naming the upstream.
    pub(super) fn at(self, addr: std::net::SocketAddr) -> super::error::ProxyError {
        match self {
            GatherError::Framing(error) => super::error::ProxyError::UpstreamGarbage { addr, error },
            GatherError::TooLarge => super::error::ProxyError::ResponseTooLarge,
        }
    }
}

/// Runs the body's framing over `first`, a whole received buffer `from`
/// already held, and over the others it holds (io_uring's bundled receive:
/// the rest of a 64 KiB body that arrived at once; never on epoll or TLS),
/// up to the body's end. Only for a body sent as it came (not re-chunked), whose bytes then
/// go out behind the ones just read in one vectored send, uncopied.
pub(super) fn gather_body<S: Stream>(
    first: Vec<u8>,
    from: &S,
    body: &mut BodyReader,
    budget: &mut Option<u64>,
) -> Result<GatheredBody, GatherError> {
    let mut gathered = GatheredBody::default();
    let mut next = Some(first);
    while let Some(buf) = next {
        let step = body.advance(&buf, |_| {}).map_err(GatherError::Framing)?;
        if let Some(left) = budget.as_mut() {
            *left = left.checked_sub(step.consumed as u64).ok_or(GatherError::TooLarge)?;
        }
        gathered.consumed += step.consumed;
        let len = buf.len();
        gathered.bufs.push((buf, step.consumed));
        if step.done {
            gathered.ended = Some(step.consumed < len);
            break;
        }
        next = from.take_received_buffer();
    }
    Ok(gathered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consume_keeps_the_tail() {
        let mut b = b"abcdef".to_vec();
        consume(&mut b, 2);
        assert_eq!(b, b"cdef");
        consume(&mut b, 10);
        assert!(b.is_empty());
    }
}
