//! The floor for the engine's CPU target: a forwarder that does no HTTP work at
//! all (read what the client sent, write it upstream, read what came back,
//! write it to the client), one connection upstream per client connection, on
//! a current-thread tokio runtime. DESIGN.md measured ~8.5 µs of CPU per
//! proxied request for this on the 2-core box; `perf/engine-cpu.sh` runs it
//! beside corelink and nginx so the ratios come from one run.
//!
//! Usage: bare_forwarder LISTEN_ADDR UPSTREAM_ADDR
//! (Assumes each read holds one whole small request or response, which holds
//! for wrk's requests and a small static response; it is a yardstick, not a
//! proxy.)

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (listen, upstream): (SocketAddr, SocketAddr) = match (args.get(1), args.get(2)) {
        (Some(l), Some(u)) => (l.parse().expect("listen address"), u.parse().expect("upstream address")),
        _ => {
            eprintln!("usage: bare_forwarder LISTEN_ADDR UPSTREAM_ADDR");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        loop {
            let (mut client, _) = listener.accept().await?;
            client.set_nodelay(true)?;
            tokio::task::spawn_local(async move {
                let Ok(mut up) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = up.set_nodelay(true);
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    let n = match client.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    if up.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                    let n = match up.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    if client.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    })
}
