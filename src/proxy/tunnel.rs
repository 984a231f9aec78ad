//! After `101 Switching Protocols` or a 2xx answer to CONNECT the connection is
//! no longer HTTP: relay raw bytes both ways until both sides are done. A FIN
//! from one side is passed on as a FIN (half-close); an error ends both.

use crate::io::Stream;

use super::body::{read_into, write_all};

async fn copy_one_way<F: Stream, T: Stream>(from: &F, to: &T, mut buf: Vec<u8>, buffer_size: usize) -> Result<(), ()> {
    loop {
        if !buf.is_empty() {
            write_all(to, &mut buf).await.map_err(|_| ())?;
            buf.clear();
        }
        match read_into(from, &mut buf, buffer_size).await {
            Ok(0) => {
                let _ = to.shutdown_write().await;
                return Ok(());
            }
            Ok(_) => {}
            Err(_) => return Err(()),
        }
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
) {
    let up = copy_one_way(client, upstream, client_pending, buffer_size);
    let down = copy_one_way(upstream, client, upstream_pending, buffer_size);
    tokio::pin!(up, down);
    let (mut up_done, mut down_done) = (false, false);
    while !(up_done && down_done) {
        tokio::select! {
            r = &mut up, if !up_done => {
                up_done = true;
                if r.is_err() { return; }
            }
            r = &mut down, if !down_done => {
                down_done = true;
                if r.is_err() { return; }
            }
        }
    }
}
