//! No per-request allocation in the steady state of a keep-alive connection: the number
//! of heap allocations of a run must not grow with the number of requests.
//!
//! A counting global allocator counts every allocation of this test process; the server
//! here answers from static bytes with fixed buffers, so it allocates nothing per
//! request either. Two runs of 1000 and 5000 requests must allocate (nearly) the same.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use clap::Parser;
use corelink_load::cli::{Args, Config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";

/// A server that answers every request head with RESPONSE, allocation-free per request.
fn start_server() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let (mut sock, _) = listener.accept().await.unwrap();
                sock.set_nodelay(true).unwrap();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let mut have = 0;
                    loop {
                        match sock.read(&mut buf[have..]).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => have += n,
                        }
                        // Requests are bodiless GETs: answer each complete head.
                        while let Some(end) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n") {
                            if sock.write_all(RESPONSE).await.is_err() {
                                return;
                            }
                            buf.copy_within(end + 4..have, 0);
                            have -= end + 4;
                        }
                    }
                });
            }
        });
    });
    addr
}

fn allocations_for(url: &str, n: u64) -> (u64, u64) {
    let n = n.to_string();
    let args = Args::parse_from(["corelink-load", "-c", "1", "-n", &n, url]);
    let cfg = Config::from_args(&args).unwrap();
    let before = ALLOCS.load(Ordering::Relaxed);
    let r = corelink_load::run(&cfg, false).unwrap();
    let after = ALLOCS.load(Ordering::Relaxed);
    (after - before, r.stats.responses)
}

#[test]
fn steady_state_does_not_allocate_per_request() {
    let addr = start_server();
    let url = format!("http://{addr}/");
    // Warm up lazily initialised runtime and resolver state.
    allocations_for(&url, 100);
    let (small, n_small) = allocations_for(&url, 1000);
    let (large, n_large) = allocations_for(&url, 5000);
    assert_eq!((n_small, n_large), (1000, 5000));
    eprintln!("allocations: 1000 requests -> {small}, 5000 requests -> {large}");
    // 4000 more requests may not cost more than a handful of allocations.
    assert!(large <= small + 40, "1000 requests: {small} allocations, 5000 requests: {large}");
}
