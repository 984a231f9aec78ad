//! Streaming a message body between streams with backpressure: one buffer,
//! read → validate framing → write → read again, so a slow receiver stops the
//! reading and the proxy's memory stays flat whatever the body size.

use std::io;
use std::ops::Range;

use http1::{BodyReader, ParseError};

use crate::io::Stream;

use super::timed::{read_into_within, write_all_within, write_range_within, IoLimit};

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
        let sent = if rewrites {
            write_all_within(to, &mut out, write_limit).await
        } else {
            write_range_within(to, buf, 0..progress.consumed, write_limit).await
        };
        sent.map_err(PumpError::ReceiverIo)?;
        out.clear();
        consume(buf, progress.consumed);
    }
    Ok(trailers_dropped)
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
