//! After `101 Switching Protocols` or a 2xx answer to CONNECT the connection is
//! no longer HTTP: relay raw bytes both ways until both sides are done. A FIN
//! from one side is passed on as a FIN (half-close); an error ends both. A
//! tunnel through which no byte has moved either way for its idle limit
//! (`corelink.bodyProgressTimeoutMs`, as nginx closes an idle WebSocket after
//! `proxy_read_timeout`) is closed: otherwise an idle or stalled tunnel held
//! both connections, and its upstream's pool slot, forever.

use std::cell::Cell;
use std::time::{Duration, Instant};

use crate::io::Stream;

use super::body::{read_into, write_all};

async fn copy_one_way<F: Stream, T: Stream>(
    from: &F,
    to: &T,
    mut buf: Vec<u8>,
    buffer_size: usize,
    moved: &Cell<Instant>,
) -> Result<(), ()> {
    loop {
        if !buf.is_empty() {
            write_all(to, &mut buf).await.map_err(|_| ())?;
            moved.set(Instant::now());
            buf.clear();
        }
        match read_into(from, &mut buf, buffer_size).await {
            Ok(0) => {
                let _ = to.shutdown_write().await;
                return Ok(());
            }
            Ok(_) => moved.set(Instant::now()),
            Err(_) => return Err(()),
        }
    }
}

/// Returns once no byte has moved for `idle` (`moved`: when one last did).
async fn idle_for(idle: Duration, moved: &Cell<Instant>) {
    loop {
        let quiet_until = moved.get() + idle;
        if Instant::now() >= quiet_until {
            return;
        }
        tokio::time::sleep_until(quiet_until.into()).await;
    }
}

/// `client_pending`/`upstream_pending` hold bytes already read past the heads
/// (a WebSocket frame sent right after the handshake, say).
pub(super) async fn tunnel<C: Stream, U: Stream>(
    client: &C,
    upstream: &U,
    client_pending: Vec<u8>,
    upstream_pending: Vec<u8>,
    buffer_size: usize,
    idle: Duration,
) -> TunnelEnd {
    let moved = Cell::new(Instant::now());
    let up = copy_one_way(client, upstream, client_pending, buffer_size, &moved);
    let down = copy_one_way(upstream, client, upstream_pending, buffer_size, &moved);
    let quiet = idle_for(idle, &moved);
    tokio::pin!(up, down, quiet);
    let (mut up_done, mut down_done) = (false, false);
    while !(up_done && down_done) {
        tokio::select! {
            () = &mut quiet => return TunnelEnd::Idle,
            r = &mut up, if !up_done => {
                up_done = true;
                if r.is_err() { return TunnelEnd::Failed; }
            }
            r = &mut down, if !down_done => {
                down_done = true;
                if r.is_err() { return TunnelEnd::Failed; }
            }
        }
    }
    TunnelEnd::Closed
}

/// How a tunnel ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TunnelEnd {
    /// Both sides closed their halves.
    Closed,
    /// A read or write failed on either side.
    Failed,
    /// Nothing moved either way for the idle limit.
    Idle,
}
