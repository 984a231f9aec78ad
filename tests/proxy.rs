//! End-to-end tests of the engine: the real binary, a real backend, raw bytes.
//! Every test runs on each available I/O backend.

mod common;

use std::time::{Duration, Instant};

use common::backend::{checksum, pattern, Backend, Options};
use common::client::{get, Conn};
use common::{backends, simple_config, Corelink};

#[test]
fn content_length_bodies_arrive_byte_exact() {
    let backend = Backend::start();
    for io in backends() {
        let proxy = Corelink::start(&simple_config(backend.addr, "", ""), io);
        let rsp = get(proxy.addr(), "/bytes/3000000", "svc").unwrap();
        assert_eq!(rsp.status, 200, "{io}");
        assert_eq!(rsp.body.len(), 3_000_000, "{io}");
        assert_eq!(checksum(&rsp.body).to_string(), rsp.header("x-sum").unwrap(), "{io}");
        assert_eq!(rsp.header("via"), Some("1.1 corelink"), "{io}");

        let body = pattern(2_500_001);
        let mut c = Conn::open(proxy.addr());
        c.send(format!("POST /echo HTTP/1.1\r\nHost: svc\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes());
        c.send(&body);
        let rsp = c.read_response("POST").unwrap();
        assert_eq!(rsp.status, 200, "{io}");
        assert_eq!(rsp.header("x-sum").unwrap(), checksum(&body).to_string(), "{io}");
        assert_eq!(rsp.body, body, "{io}");
    }
}

#[test]
fn chunked_bodies_stream_both_ways() {
    let backend = Backend::start();
    for io in backends() {
        let proxy = Corelink::start(&simple_config(backend.addr, "", ""), io);
        let rsp = get(proxy.addr(), "/chunked/1000003", "svc").unwrap();
        assert_eq!(rsp.status, 200, "{io}");
        assert_eq!(rsp.header("transfer-encoding"), Some("chunked"), "{io}");
        assert_eq!(checksum(&rsp.body).to_string(), rsp.header("x-sum").unwrap(), "{io}");

        let body = pattern(777_777);
        let mut c = Conn::open(proxy.addr());
        c.send(b"POST /echo HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: chunked\r\n\r\n");
        for piece in body.chunks(10_000) {
            c.send(format!("{:x};ext=1\r\n", piece.len()).as_bytes());
            c.send(piece);
            c.send(b"\r\n");
        }
        c.send(b"0\r\nx-trailer: yes\r\n\r\n");
        let rsp = c.read_response("POST").unwrap();
        assert_eq!(rsp.status, 200, "{io}");
        assert_eq!(rsp.body, body, "{io}");
    }
}

#[test]
fn close_delimited_response_is_relayed_and_closes() {
    let backend = Backend::start();
    for io in backends() {
        let proxy = Corelink::start(&simple_config(backend.addr, "", ""), io);
        let rsp = get(proxy.addr(), "/close/123457", "svc").unwrap();
        assert_eq!(rsp.status, 200, "{io}");
        assert_eq!(rsp.header("connection"), Some("close"), "{io}");
        assert_eq!(checksum(&rsp.body).to_string(), rsp.header("x-sum").unwrap(), "{io}");
    }
}

#[test]
fn http10_client_gets_chunked_body_dechunked() {
    let backend = Backend::start();
    for io in backends() {
        let proxy = Corelink::start(&simple_config(backend.addr, "", ""), io);
        let mut c = Conn::open(proxy.addr());
        c.send(b"GET /chunked/50000 HTTP/1.0\r\nHost: svc\r\n\r\n");
        let rsp = c.read_response("GET").unwrap();
        assert_eq!(rsp.status, 200, "{io}");
        assert!(rsp.header("transfer-encoding").is_none(), "{io}");
        assert_eq!(checksum(&rsp.body).to_string(), rsp.header("x-sum").unwrap(), "{io}");
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let backend = Backend::start();
    for io in backends() {
        let proxy = Corelink::start(&simple_config(backend.addr, "", ""), io);
        let mut c = Conn::open(proxy.addr());
        c.send(
            b"GET /bytes/10 HTTP/1.1\r\nHost: svc\r\n\r\nPOST /echo HTTP/1.1\r\nHost: svc\r\nContent-Length: 5\r\n\r\nhelloGET /bytes/20 HTTP/1.1\r\nHost: svc\r\n\r\n",
        );
        assert_eq!(c.read_response("GET").unwrap().body.len(), 10, "{io}");
        assert_eq!(c.read_response("POST").unwrap().body, b"hello", "{io}");
        assert_eq!(c.read_response("GET").unwrap().body.len(), 20, "{io}");
    }
}

#[test]
fn head_response_has_no_body_and_connection_stays_usable() {
    let backend = Backend::start();
    for io in backends() {
        let proxy = Corelink::start(&simple_config(backend.addr, "", ""), io);
        let mut c = Conn::open(proxy.addr());
        c.send(b"HEAD /bytes/100 HTTP/1.1\r\nHost: svc\r\n\r\n");
        let rsp = c.read_response("HEAD").unwrap();
        assert_eq!(rsp.status, 200, "{io}");
        assert_eq!(rsp.header("content-length"), Some("100"), "{io}");
        c.send(b"GET /bytes/7 HTTP/1.1\r\nHost: svc\r\n\r\n");
        assert_eq!(c.read_response("GET").unwrap().body.len(), 7, "{io}");
    }
}

#[test]
fn expect_100_continue_is_relayed() {
    let backend = Backend::start();
    for io in backends() {
        let proxy = Corelink::start(&simple_config(backend.addr, "", ""), io);
        let mut c = Conn::open(proxy.addr());
        c.send(b"POST /echo HTTP/1.1\r\nHost: svc\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
        let interim = c.read_response("POST").unwrap();
        assert_eq!(interim.status, 100, "{io}");
        c.send(b"data");
        let rsp = c.read_response("POST").unwrap();
        assert_eq!((rsp.status, rsp.body.as_slice()), (200, &b"data"[..]), "{io}");
    }
}

#[test]
fn websocket_upgrade_is_tunnelled() {
    let backend = Backend::start();
    for io in backends() {
        let proxy = Corelink::start(&simple_config(backend.addr, "", ""), io);
        let mut c = Conn::open(proxy.addr());
        c.send(b"GET /ws HTTP/1.1\r\nHost: svc\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n");
        let rsp = c.read_response("GET").unwrap();
        assert_eq!(rsp.status, 101, "{io}");
        assert_eq!(rsp.header("upgrade"), Some("websocket"), "{io}");
        for msg in [&b"\x81\x05hello"[..], b"\x81\x03abc"] {
            c.send(msg);
            assert_eq!(c.read_exact_raw(msg.len()), msg, "{io}");
        }
    }
}

/// A tunnel stays up while bytes move either way, and closes once nothing
/// has moved for `bodyProgressTimeoutMs` (nginx's `proxy_read_timeout` for a
/// WebSocket): an idle tunnel no longer holds its connections forever.
#[test]
fn an_idle_tunnel_is_closed_after_the_body_progress_timeout() {
    let backend = Backend::start();
    for io in backends() {
        let proxy = Corelink::start(&simple_config(backend.addr, "", "  bodyProgressTimeoutMs: 800\n"), io);
        let mut c = Conn::open(proxy.addr());
        c.send(b"GET /ws HTTP/1.1\r\nHost: svc\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n");
        assert_eq!(c.read_response("GET").unwrap().status, 101, "{io}");
        // Busy for three limits' time: it stays up.
        for _ in 0..8 {
            std::thread::sleep(Duration::from_millis(300));
            c.send(b"\x81\x02hi");
            assert_eq!(c.read_exact_raw(4), b"\x81\x02hi", "{io}");
        }
        // Quiet: closed after the limit.
        let quiet = Instant::now();
        assert!(c.is_closed(Duration::from_secs(5)), "{io}: the idle tunnel stayed open");
        let took = quiet.elapsed();
        assert!(took >= Duration::from_millis(700), "{io}: closed after {took:?}");
    }
}

#[test]
fn upstream_connections_are_pooled() {
    let backend = Backend::start();
    for io in backends() {
        let before = backend.connections();
        let proxy = Corelink::start(&simple_config(backend.addr, "", ""), io);
        for _ in 0..10 {
            let mut c = Conn::open(proxy.addr());
            for _ in 0..10 {
                c.send(b"GET /bytes/100 HTTP/1.1\r\nHost: svc\r\n\r\n");
                assert_eq!(c.read_response("GET").unwrap().status, 200);
            }
        }
        let used = backend.connections() - before;
        assert!(used <= 4, "{io}: 100 requests used {used} upstream connections");
    }
}

#[test]
fn stale_pooled_connection_is_retried_once() {
    // The backend closes keep-alive connections idle for 100 ms; the proxy's
    // pool keeps them longer, so the second request takes a dead connection.
    let backend = Backend::start_with(Options { idle_close: Some(Duration::from_millis(100)) });
    for io in backends() {
        let proxy = Corelink::start(&simple_config(backend.addr, "", "  workers: 1\n"), io);
        let mut c = Conn::open(proxy.addr());
        c.send(b"GET /bytes/5 HTTP/1.1\r\nHost: svc\r\n\r\n");
        assert_eq!(c.read_response("GET").unwrap().status, 200);
        std::thread::sleep(Duration::from_millis(400));
        let before = backend.connections();
        c.send(b"GET /bytes/6 HTTP/1.1\r\nHost: svc\r\n\r\n");
        let rsp = c.read_response("GET").unwrap();
        assert_eq!(rsp.status, 200, "{io}: {:?}", rsp);
        assert_eq!(rsp.body.len(), 6);
        assert_eq!(backend.connections() - before, 1, "{io}: exactly one new connection for the retry");
    }
}

fn error_of(rsp: &common::client::Response) -> String {
    rsp.header("l5d-err").unwrap_or("").to_string()
}

#[test]
fn errors_are_answered_like_linkerd() {
    let backend = Backend::start();
    let closed_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    for io in backends() {
        let config = format!(
            "admin:\n  port: 0\nrouters:\n- protocol: http\n  label: test\n  maxCallDepth: 2\n  dtab: |\n    /svc/known => /$/inet/{}/{};\n    /svc/dead => /$/inet/127.0.0.1/{closed_port};\n  servers:\n  - port: 0\ncorelink:\n  workers: 1\n",
            backend.addr.ip(),
            backend.addr.port()
        );
        let proxy = Corelink::start(&config, io);
        // No route: the dtab delegates /svc/unknown to nothing.
        let rsp = get(proxy.addr(), "/", "unknown").unwrap();
        assert_eq!(rsp.status, 502, "{io}");
        assert!(error_of(&rsp).starts_with("No+hosts+are+available+for+%2Fsvc%2Funknown"), "{io}: {}", error_of(&rsp));
        // Upstream unreachable.
        let rsp = get(proxy.addr(), "/", "dead").unwrap();
        assert_eq!(rsp.status, 502, "{io}");
        assert!(error_of(&rsp).contains("connection"), "{io}: {}", error_of(&rsp));
        // Garbage from upstream.
        let rsp = get(proxy.addr(), "/garbage", "known").unwrap();
        assert_eq!(rsp.status, 502, "{io}");
        assert!(error_of(&rsp).contains("invalid+response"), "{io}: {}", error_of(&rsp));
        // Malformed request.
        let mut c = Conn::open(proxy.addr());
        c.send(b"GET / HTTP/1.1\r\nHost: known\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
        let rsp = c.read_response("GET").unwrap();
        assert_eq!(rsp.status, 400, "{io}");
        assert_eq!(rsp.header("connection"), Some("close"));
        // No Host: the identifier cannot name the request.
        let mut c = Conn::open(proxy.addr());
        c.send(b"GET / HTTP/1.0\r\n\r\n");
        let rsp = c.read_response("GET").unwrap();
        assert_eq!(rsp.status, 400, "{io}");
        assert!(error_of(&rsp).starts_with("Unknown+destination"), "{io}: {}", error_of(&rsp));
        // Loops: more Via entries than maxCallDepth.
        let mut c = Conn::open(proxy.addr());
        c.send(b"GET / HTTP/1.1\r\nHost: known\r\nVia: 1.1 a, 1.1 b, 1.1 c\r\n\r\n");
        let rsp = c.read_response("GET").unwrap();
        assert_eq!(rsp.status, 400, "{io}");
        assert!(error_of(&rsp).contains("proxy+loops"), "{io}");
        // Oversized head and request line.
        let mut c = Conn::open(proxy.addr());
        c.send(format!("GET / HTTP/1.1\r\nHost: known\r\nX-Big: {}\r\n\r\n", "a".repeat(20_000)).as_bytes());
        assert_eq!(c.read_response("GET").unwrap().status, 431, "{io}");
        let mut c = Conn::open(proxy.addr());
        c.send(format!("GET /{} HTTP/1.1\r\nHost: known\r\n\r\n", "a".repeat(5000)).as_bytes());
        assert_eq!(c.read_response("GET").unwrap().status, 414, "{io}");
        // A response longer than its Content-Length: the extra bytes never
        // reach the client and the upstream connection is not reused.
        let mut c = Conn::open(proxy.addr());
        c.send(b"GET /extra HTTP/1.1\r\nHost: known\r\n\r\nGET /bytes/3 HTTP/1.1\r\nHost: known\r\n\r\n");
        assert_eq!(c.read_response("GET").unwrap().body, b"ok");
        let next = c.read_response("GET").unwrap();
        assert_eq!((next.status, next.body.len()), (200, 3), "{io}");
    }
}

#[test]
fn timeouts() {
    let backend = Backend::start();
    for io in backends() {
        let proxy = Corelink::start(
            &simple_config(backend.addr, "  service:\n    totalTimeoutMs: 300\n", "  headerReadTimeoutMs: 300\n"),
            io,
        );
        let started = Instant::now();
        let rsp = get(proxy.addr(), "/sleep/2000", "svc").unwrap();
        assert_eq!(rsp.status, 503, "{io}");
        assert!(error_of(&rsp).contains("totalTimeoutMs"), "{io}: {}", error_of(&rsp));
        assert!(started.elapsed() < Duration::from_millis(1500), "{io}");
        // Slowloris: a head that never completes.
        let mut c = Conn::open(proxy.addr());
        c.send(b"GET / HTTP/1.1\r\nHost: svc\r\n");
        let rsp = c.read_response("GET").unwrap();
        assert_eq!(rsp.status, 408, "{io}");
        assert!(c.is_closed(Duration::from_secs(2)), "{io}");
    }
}

/// `headerReadTimeoutMs` bounds a connection's first request head from the
/// accept: a client that waits before its first byte does not get a second
/// timeout's worth of time for the rest of the head.
#[test]
fn the_first_request_head_is_timed_from_the_accept() {
    let backend = Backend::start();
    for io in backends() {
        let proxy = Corelink::start(
            &simple_config(
                backend.addr,
                "",
                "  headerReadTimeoutMs: 2000
",
            ),
            io,
        );
        let started = Instant::now();
        let mut c = Conn::open(proxy.addr());
        std::thread::sleep(Duration::from_millis(1500));
        c.send(b"G");
        let rsp = c.read_response("GET").unwrap();
        let took = started.elapsed();
        assert_eq!(rsp.status, 408, "{io}");
        // 2 s from the accept; a new limit at the first byte would be 3.5 s.
        assert!(took >= Duration::from_millis(1900) && took < Duration::from_millis(3000), "{io}: 408 after {took:?}");
    }
}

#[test]
fn sigterm_drains_in_flight_requests_and_exits_zero() {
    let backend = Backend::start();
    for io in backends() {
        let mut proxy = Corelink::start(&simple_config(backend.addr, "", "  workers: 1\n"), io);
        let addr = proxy.addr();
        let in_flight = std::thread::spawn(move || get(addr, "/sleep/800", "svc").map(|r| r.status));
        let mut idle = Conn::open(addr);
        idle.send(b"GET /bytes/1 HTTP/1.1\r\nHost: svc\r\n\r\n");
        assert_eq!(idle.read_response("GET").unwrap().status, 200);
        std::thread::sleep(Duration::from_millis(200));
        proxy.signal(libc::SIGTERM);
        assert_eq!(in_flight.join().unwrap().unwrap(), 200, "{io}: the in-flight request finished");
        assert!(idle.is_closed(Duration::from_secs(3)), "{io}: idle keep-alive connection closed");
        assert_eq!(proxy.wait_exit(Duration::from_secs(10)), Some(0), "{io}");
        assert!(std::net::TcpStream::connect(addr).is_err(), "{io}: no longer listening");
    }
}

#[test]
fn second_process_on_the_same_port_fails_clearly() {
    let backend = Backend::start();
    let proxy = Corelink::start(&simple_config(backend.addr, "", ""), "epoll");
    let port = proxy.addr().port();
    let config = simple_config(backend.addr, "", "").replace("  - port: 0\n", &format!("  - port: {port}\n"));
    let err = Corelink::try_start(&config, "epoll").err().expect("second corelink must not start");
    assert!(err.contains("already in use"), "{err}");
}

#[test]
fn streams_64_mib_with_bounded_memory() {
    let backend = Backend::start();
    for io in backends() {
        let proxy = Corelink::start(&simple_config(backend.addr, "", "  workers: 1\n"), io);
        let size = 64 << 20;
        let rsp = get(proxy.addr(), &format!("/bytes/{size}"), "svc").unwrap();
        assert_eq!(rsp.body.len(), size, "{io}");
        assert_eq!(checksum(&rsp.body).to_string(), rsp.header("x-sum").unwrap(), "{io}");
        let rss = proxy.peak_rss_kib();
        assert!(rss < 40 * 1024, "{io}: peak RSS {rss} KiB while streaming 64 MiB");
    }
}

#[test]
fn idle_connections_park_resume_and_time_out() {
    let backend = Backend::start();
    for io in backends() {
        let router = "  servers:\n  - port: 0\n    serverSession:\n      idleTimeMs: 2500\n";
        let config = simple_config(backend.addr, "", "").replace("  servers:\n  - port: 0\n", router);
        let proxy = Corelink::start(&config, io);
        let mut c = Conn::open(proxy.addr());
        c.send(b"GET /bytes/3 HTTP/1.1\r\nHost: svc\r\n\r\n");
        assert_eq!(c.read_response("GET").unwrap().status, 200);
        // Idle past the 1 s hot period: the connection is parked in a small
        // task, and the next request is served from where it left off.
        std::thread::sleep(Duration::from_millis(1300));
        c.send(b"GET /bytes/4 HTTP/1.1\r\nHost: svc\r\n\r\n");
        let rsp = c.read_response("GET").unwrap();
        assert_eq!((rsp.status, rsp.body.len()), (200, 4), "{io}");
        // Then idle past serverSession.idleTimeMs: closed quietly.
        let started = Instant::now();
        assert!(c.is_closed(Duration::from_secs(5)), "{io}");
        let waited = started.elapsed();
        assert!(
            waited > Duration::from_millis(2000) && waited < Duration::from_millis(4000),
            "{io}: closed after {waited:?}"
        );
        assert!(c.take_buffered().is_empty(), "{io}: nothing sent on an idle close");
    }
}

#[test]
fn out_of_file_descriptors_backs_off_instead_of_spinning() {
    let backend = Backend::start();
    for io in backends() {
        let proxy = Corelink::start_with_nofile(&simple_config(backend.addr, "", "  workers: 1\n"), io, 64);
        // Hold more connections than the process has descriptors for; the
        // rest wait in the kernel's accept queue while accept() fails EMFILE.
        let mut held: Vec<Conn> = (0..80).map(|_| Conn::open(proxy.addr())).collect();
        std::thread::sleep(Duration::from_millis(300));
        let cpu_before = proxy.cpu_time();
        std::thread::sleep(Duration::from_secs(2));
        let spent = proxy.cpu_time() - cpu_before;
        assert!(spent < Duration::from_millis(300), "{io}: {spent:?} of CPU in 2 s while out of descriptors");
        // Free descriptors: the queued connections are then served.
        let mut last = held.pop().unwrap();
        held.clear();
        last.send(b"GET /bytes/3 HTTP/1.1\r\nHost: svc\r\n\r\n");
        let rsp = last.read_response("GET").unwrap();
        assert_eq!((rsp.status, rsp.body.len()), (200, 3), "{io}");
        let log = proxy.stderr_lines().join("\n");
        assert!(log.contains("backing off"), "{io}: {log}");
    }
}

/// The heap must not come in 2 MiB transparent huge pages: after a burst of
/// connections, the few objects that outlive it would keep whole huge pages
/// resident (docs/io-backends.md, "Huge pages"). The kernel reports the
/// process's THP state in /proc/PID/status (`THP_enabled`, Linux 5.0+).
#[test]
fn the_heap_does_not_use_transparent_huge_pages() {
    let backend = Backend::start();
    let proxy = Corelink::start(&simple_config(backend.addr, "", "  workers: 1\n"), "epoll");
    let status = std::fs::read_to_string(format!("/proc/{}/status", proxy.child.id())).unwrap();
    let Some(line) = status.lines().find(|l| l.starts_with("THP_enabled:")) else {
        eprintln!("this kernel does not report THP_enabled; nothing to check");
        return;
    };
    assert_eq!(line.split_whitespace().nth(1), Some("0"), "{line}");
}

/// Not in CI (it moves 2 GiB): run with
/// `cargo test --release --test proxy -- --ignored --nocapture one_gib`.
#[test]
#[ignore = "slow: 1 GiB each way; run by hand, see README"]
fn one_gib_each_way_keeps_rss_flat() {
    use common::backend::Checksum;
    let backend = Backend::start();
    for io in backends() {
        let proxy = Corelink::start(&simple_config(backend.addr, "", "  workers: 1\n"), io);
        let size: u64 = 1 << 30;
        let started = Instant::now();
        let mut c = Conn::open(proxy.addr());
        c.send(format!("GET /bytes/{size} HTTP/1.1\r\nHost: svc\r\n\r\n").as_bytes());
        let mut bad = 0u64;
        let (status, len) = c
            .read_response_streaming(|offset, piece| {
                for (i, &b) in piece.iter().enumerate() {
                    let pos = offset + i as u64;
                    if b != ((pos % 251) * 31 % 251) as u8 {
                        bad += 1;
                    }
                }
            })
            .unwrap();
        assert_eq!((status, len, bad), (200, size, 0), "{io}");
        let download = started.elapsed();

        let started = Instant::now();
        let block = pattern(1 << 20);
        let mut sum = Checksum::new();
        c.send(format!("POST /discard HTTP/1.1\r\nHost: svc\r\nContent-Length: {size}\r\n\r\n").as_bytes());
        for _ in 0..(size >> 20) {
            c.send(&block);
            sum.update(&block);
        }
        let rsp = c.read_response("POST").unwrap();
        assert_eq!(rsp.header("x-len"), Some(size.to_string().as_str()), "{io}");
        assert_eq!(rsp.header("x-sum"), Some(sum.value().to_string().as_str()), "{io}");
        let upload = started.elapsed();
        let rss = proxy.peak_rss_kib();
        eprintln!("{io}: 1 GiB down in {download:?}, 1 GiB up in {upload:?}, corelink peak RSS {rss} KiB");
        assert!(rss < 40 * 1024, "{io}: peak RSS {rss} KiB");
    }
}

#[test]
fn header_count_limit_is_configurable() {
    let backend = Backend::start();
    for io in backends() {
        let proxy = Corelink::start(&simple_config(backend.addr, "", "  maxHeaders: 5\n"), io);
        let mut c = Conn::open(proxy.addr());
        c.send(b"GET / HTTP/1.1\r\nHost: svc\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n");
        assert_eq!(c.read_response("GET").unwrap().status, 200, "{io}: 5 fields pass");
        let mut c = Conn::open(proxy.addr());
        c.send(b"GET / HTTP/1.1\r\nHost: svc\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n");
        assert_eq!(c.read_response("GET").unwrap().status, 431, "{io}: 6 fields are too many");
    }
}

#[test]
fn draining_serves_connections_already_queued_instead_of_resetting_them() {
    let backend = Backend::start();
    for io in backends() {
        let mut proxy = Corelink::start(&simple_config(backend.addr, "", "  workers: 2\n"), io);
        let addr = proxy.addr();
        // Freeze corelink: the kernel still completes handshakes, so these
        // connections wait in the workers' accept queues with their requests.
        proxy.signal(libc::SIGSTOP);
        let mut queued: Vec<Conn> = (0..10).map(|_| Conn::open(addr)).collect();
        for c in &mut queued {
            c.send(b"GET /bytes/5 HTTP/1.1\r\nHost: svc\r\n\r\n");
        }
        proxy.signal(libc::SIGTERM);
        proxy.signal(libc::SIGCONT);
        for (i, c) in queued.iter_mut().enumerate() {
            let rsp = c.read_response("GET").unwrap_or_else(|e| panic!("{io}: queued connection {i}: {e}"));
            assert_eq!((rsp.status, rsp.body.len()), (200, 5), "{io}: queued connection {i}");
            // Served either just before draining began or while draining;
            // either way it is then closed cleanly, not reset.
            assert!(c.is_closed(Duration::from_secs(3)), "{io}: queued connection {i} stays open");
        }
        assert_eq!(proxy.wait_exit(Duration::from_secs(10)), Some(0), "{io}");
    }
}

/// A config for one worker (so every connection meets the same per-core
/// limits) with `server` keys on the server, `router` keys on the router.
fn one_worker_config(backend: std::net::SocketAddr, server: &str, router: &str, corelink: &str) -> String {
    simple_config(backend, &format!("{server}{router}"), &format!("  workers: 1\n{corelink}"))
}

const MAX_SIZE_1: &str = "  client:\n    hostConnectionPool:\n      maxSize: 1\n";

#[test]
fn a_dripping_request_body_times_out_and_frees_the_pool_slot() {
    let backend = Backend::start();
    for io in backends() {
        for (server, corelink, label, key) in [
            ("", "  bodyProgressTimeoutMs: 400\n", "client_body_timeout", "corelink.bodyProgressTimeoutMs"),
            ("    socketOptions: {readTimeoutMs: 300}\n", "", "read_timeout", "socketOptions.readTimeoutMs"),
        ] {
            let proxy = Corelink::start(&one_worker_config(backend.addr, server, MAX_SIZE_1, corelink), io);
            // The first client sends 10 of 100 body bytes, then nothing: its
            // request holds the only upstream connection (maxSize: 1).
            let mut dripping = Conn::open(proxy.addr());
            dripping.stream.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            dripping.send(b"POST /bytes/2 HTTP/1.1\r\nHost: svc\r\nContent-Length: 100\r\n\r\n0123456789");
            std::thread::sleep(Duration::from_millis(100));
            let addr = proxy.addr();
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let started = Instant::now();
                let _ = tx.send((get(addr, "/bytes/3", "svc").map(|r| r.status).ok(), started.elapsed()));
            });
            let rsp = dripping.read_response("POST").expect("the dripping client is answered");
            assert_eq!(rsp.status, 408, "{io} {label}");
            assert!(error_of(&rsp).replace('+', " ").contains(key), "{io}: {}", error_of(&rsp));
            assert!(dripping.is_closed(Duration::from_secs(2)), "{io} {label}");
            // The second client waited for the slot and got it once the
            // first one's exchange was cut off.
            let (status, waited) = rx.recv_timeout(Duration::from_secs(3)).expect("the second client is served");
            assert_eq!(status, Some(200), "{io} {label}");
            assert!(waited < Duration::from_millis(1500), "{io} {label}: {waited:?}");
            assert_eq!(proxy.metric_ending(&format!("errors/{label}")), 1.0, "{io}");
        }
    }
}

/// A body that takes longer than `bodyProgressTimeoutMs` in all, each part
/// within it, is an upload, not a stall: the wait for the response head
/// (which the upstream sends once it has the whole body) is not timed
/// while the body is being sent.
#[test]
fn an_upload_longer_than_the_body_progress_timeout_is_answered() {
    let backend = Backend::start();
    for io in backends() {
        let proxy = Corelink::start(&one_worker_config(backend.addr, "", "", "  bodyProgressTimeoutMs: 400\n"), io);
        let mut c = Conn::open(proxy.addr());
        c.stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.send(b"POST /echo HTTP/1.1\r\nHost: svc\r\nContent-Length: 8\r\n\r\n");
        // 8 bytes, one every 150 ms: 1.2 s in all.
        for byte in b"uploaded" {
            std::thread::sleep(Duration::from_millis(150));
            c.send(&[*byte]);
        }
        let rsp = c.read_response("POST").unwrap();
        assert_eq!((rsp.status, rsp.body.as_slice()), (200, &b"uploaded"[..]), "{io}: {}", error_of(&rsp));
    }
}

#[test]
fn a_client_that_never_reads_is_cut_off_and_its_slot_freed() {
    let backend = Backend::start();
    for io in backends() {
        for (server, corelink, label) in [
            ("", "  bodyProgressTimeoutMs: 400\n", "client_body_timeout"),
            ("    socketOptions: {writeTimeoutMs: 300}\n", "", "write_timeout"),
        ] {
            // The backend computes the 32 MiB body (and its checksum) before
            // it sends the head: on a loaded box that can take longer than
            // the 400 ms body limit, which also bounds the wait for the head
            // unless an attempt timeout does. One does here, generously.
            let client = format!("{MAX_SIZE_1}    requestAttemptTimeoutMs: 20000\n");
            let proxy = Corelink::start(&one_worker_config(backend.addr, server, &client, corelink), io);
            // 32 MiB: more than the socket buffers between corelink and a
            // client that reads nothing can take.
            let size = 32 << 20;
            let mut lazy = Conn::open(proxy.addr());
            lazy.send(format!("GET /bytes/{size} HTTP/1.1\r\nHost: svc\r\n\r\n").as_bytes());
            std::thread::sleep(Duration::from_millis(200));
            let started = Instant::now();
            let rsp = get(proxy.addr(), "/bytes/3", "svc").unwrap();
            assert_eq!(rsp.status, 200, "{io} {label}");
            assert!(started.elapsed() < Duration::from_secs(3), "{io} {label}: {:?}", started.elapsed());
            // The lazy client's response was cut short: it ends before its
            // Content-Length (with a FIN: the client failed, not the
            // response).
            lazy.stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut got = 0usize;
            let mut chunk = vec![0u8; 1 << 16];
            loop {
                match std::io::Read::read(&mut lazy.stream, &mut chunk) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(e) => panic!("{io} {label}: the cut-off connection must close ({e}) after {got} bytes"),
                }
            }
            assert!(got < size, "{io} {label}: {got} bytes");
            assert_eq!(proxy.metric_ending(&format!("errors/{label}")), 1.0, "{io}");
        }
    }
}

/// A client that resets its connection while its request is upstream
/// never gets the response, and corelink counts that as a client I/O
/// error on both backends: on epoll the write of the response fails, on
/// io_uring (where a small write returns before its send completes) the
/// flush before the connection closes does.
#[test]
fn a_response_the_client_reset_before_is_counted_as_a_client_io_error() {
    let backend = slow_raw_backend();
    for io in backends() {
        let proxy = Corelink::start(&one_worker_config(backend.addr, "", "", ""), io);
        let mut c = Conn::open(proxy.addr());
        c.send(b"GET /slow-head HTTP/1.1\r\nHost: svc\r\n\r\n");
        // The request is read and forwarded; then the client goes away with
        // a reset (linger 0) while the upstream takes a second to answer.
        std::thread::sleep(Duration::from_millis(200));
        socket2::SockRef::from(&c.stream).set_linger(Some(Duration::ZERO)).unwrap();
        drop(c);
        let mut counted = 0.0;
        for _ in 0..40 {
            std::thread::sleep(Duration::from_millis(50));
            counted = proxy.metrics().iter().filter(|(k, _)| k.ends_with("errors/client_io")).map(|(_, v)| v).sum();
            if counted > 0.0 {
                break;
            }
        }
        assert_eq!(counted, 1.0, "{io}: {:?}", proxy.metrics());
        assert_eq!(get(proxy.addr(), "/", "svc").unwrap().status, 200, "{io}: the proxy serves on");
    }
}

/// A server that answers before reading the request body (a 413, say) and
/// closes resets the connection, since the body is still coming: corelink's
/// send of the body fails on the reset that comes right behind the answer.
/// The client gets the server's answer, not a 502, on both backends, and
/// the connection closes (the rest of the body is never read).
#[test]
fn an_answer_before_the_body_then_a_reset_reaches_the_client() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Reads each request's head only, lets the body fill the sockets'
    // buffers, answers and closes with the body unread: a reset.
    std::thread::spawn(move || {
        for conn in listener.incoming().take(2) {
            let Ok(mut conn) = conn else { continue };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).is_ok_and(|n| n == 1) {
                head.push(byte[0]);
            }
            std::thread::sleep(Duration::from_millis(300));
            let _ =
                conn.write_all(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbig!");
        }
    });
    for io in backends() {
        let proxy = Corelink::start(&one_worker_config(addr, "", "", ""), io);
        let mut c = Conn::open(proxy.addr());
        c.send(b"POST /upload HTTP/1.1\r\nHost: svc\r\nContent-Length: 67108864\r\n\r\n");
        let mut body = c.stream.try_clone().unwrap();
        body.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        let sender = std::thread::spawn(move || {
            let chunk = vec![b'x'; 65536];
            for _ in 0..1024 {
                if body.write_all(&chunk).is_err() {
                    break;
                }
            }
        });
        let rsp = c.read_response("POST").unwrap_or_else(|e| panic!("{io}: {e}"));
        assert_eq!((rsp.status, String::from_utf8_lossy(&rsp.body).into_owned()), (413, "big!".to_string()), "{io}");
        drop(c);
        sender.join().unwrap();
    }
}

/// Answers `/slow-head` after 1 s, `/slow-body` with its head at once and
/// its body 600 ms later, `/stalled-body` with a head and 4 of 10 body bytes
/// and then nothing for 5 s, anything else at once.
fn slow_raw_backend() -> common::raw_backend::RawBackend {
    use common::raw_backend::{ok_response, Action, RawBackend};
    let pause = Action::Sleep(Duration::from_millis(600));
    let long_pause = Action::Sleep(Duration::from_millis(1000));
    RawBackend::start_with(std::sync::Arc::new(move |req: &common::raw_backend::Request| match req.target.as_str() {
        "/slow-head" => {
            vec![long_pause.clone(), Action::Send(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow".to_vec())]
        }
        "/never-answers" => vec![Action::Sleep(Duration::from_secs(5))],
        "/stalled-body" => vec![
            Action::Send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nsome".to_vec()),
            Action::Sleep(Duration::from_secs(5)),
        ],
        "/slow-body" => vec![
            Action::Send(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n".to_vec()),
            pause.clone(),
            Action::Send(b"body".to_vec()),
        ],
        _ => ok_response(req),
    }))
}

#[test]
fn server_timeout_answers_503_until_the_response_head_arrives() {
    let backend = slow_raw_backend();
    for io in backends() {
        let proxy = Corelink::start(&one_worker_config(backend.addr, "    timeoutMs: 300\n", "", ""), io);
        let started = Instant::now();
        let rsp = get(proxy.addr(), "/slow-head", "svc").unwrap();
        assert_eq!(rsp.status, 503, "{io}");
        assert!(error_of(&rsp).contains("timeoutMs"), "{io}: {}", error_of(&rsp));
        assert!(started.elapsed() < Duration::from_millis(900), "{io}: {:?}", started.elapsed());
        // finagle's server timeout ends with the response head: a body that
        // takes longer is relayed.
        let rsp = get(proxy.addr(), "/slow-body", "svc").unwrap();
        assert_eq!((rsp.status, rsp.body.as_slice()), (200, &b"body"[..]), "{io}");
        assert_eq!(proxy.metric_ending("errors/server_timeout"), 1.0, "{io}");
    }
}

#[test]
fn max_concurrent_requests_nacks_the_request_over_the_limit() {
    let backend = slow_raw_backend();
    for io in backends() {
        let proxy = Corelink::start(&one_worker_config(backend.addr, "    maxConcurrentRequests: 1\n", "", ""), io);
        let addr = proxy.addr();
        let first = std::thread::spawn(move || get(addr, "/slow-head", "svc").unwrap().status);
        std::thread::sleep(Duration::from_millis(200));
        let started = Instant::now();
        let mut c = Conn::open(addr);
        c.send(b"GET / HTTP/1.1\r\nHost: svc\r\n\r\n");
        let rsp = c.read_response("GET").unwrap();
        assert!(started.elapsed() < Duration::from_millis(300), "{io}: nacked at once");
        assert_eq!(rsp.status, 503, "{io}");
        assert_eq!(rsp.header("finagle-http-nack"), Some("true"), "{io}");
        assert_eq!(rsp.header("retry-after"), Some("0"), "{io}");
        assert_eq!(rsp.header("l5d-err"), None, "{io}: a nack is not an l5d-err");
        // A HEAD's nack has no body: the next response on that connection
        // is read from the right place.
        let mut h = Conn::open(addr);
        h.send(b"HEAD / HTTP/1.1\r\nHost: svc\r\n\r\n");
        assert_eq!(h.read_response("HEAD").unwrap().status, 503, "{io}");
        h.send(b"GET / HTTP/1.1\r\nHost: svc\r\n\r\n");
        assert_eq!(h.read_response("GET").unwrap().status, 503, "{io}: in step after the HEAD nack");
        assert_eq!(first.join().unwrap(), 200, "{io}");
        // The permit came back, and the nacked connection is still usable.
        c.send(b"GET / HTTP/1.1\r\nHost: svc\r\n\r\n");
        assert_eq!(c.read_response("GET").unwrap().status, 200, "{io}");
        // The permit is released when the response head arrives, not when
        // its body ends.
        let slow_body = std::thread::spawn(move || get(addr, "/slow-body", "svc").unwrap().body);
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(get(addr, "/", "svc").unwrap().status, 200, "{io}: admitted while the body streams");
        assert_eq!(slow_body.join().unwrap(), b"body", "{io}");
        assert_eq!(proxy.metric_ending("errors/max_concurrent_requests"), 3.0, "{io}");
    }
}

#[test]
fn an_upstream_that_stops_sending_its_body_is_cut_off() {
    let backend = slow_raw_backend();
    for io in backends() {
        let proxy = Corelink::start(&one_worker_config(backend.addr, "", "", "  bodyProgressTimeoutMs: 400\n"), io);
        let started = Instant::now();
        let mut c = Conn::open(proxy.addr());
        c.stream.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        c.send(b"GET /stalled-body HTTP/1.1\r\nHost: svc\r\n\r\n");
        // The head and the first bytes went out; then the connection closes
        // short of its Content-Length, so the client sees a truncated body.
        let rsp = c.read_response("GET");
        assert!(rsp.is_err(), "{io}: {rsp:?}");
        assert!(started.elapsed() < Duration::from_secs(2), "{io}: {:?}", started.elapsed());
        assert_eq!(proxy.metric_ending("errors/upstream_body_timeout"), 1.0, "{io}");
    }
}

#[test]
fn an_upstream_that_never_answers_is_cut_off_by_the_body_progress_timeout() {
    let backend = slow_raw_backend();
    for io in backends() {
        let proxy = Corelink::start(&one_worker_config(backend.addr, "", "", "  bodyProgressTimeoutMs: 400\n"), io);
        let started = Instant::now();
        // No requestAttemptTimeoutMs, no timeoutMs: only the body progress
        // limit bounds the wait for the head (here 5 s away).
        let rsp = get(proxy.addr(), "/never-answers", "svc").unwrap();
        assert_eq!(rsp.status, 502, "{io}: {}", error_of(&rsp));
        assert!(error_of(&rsp).contains("bodyProgressTimeoutMs"), "{io}: {}", error_of(&rsp));
        assert!(started.elapsed() < Duration::from_secs(3), "{io}: {:?}", started.elapsed());
        assert_eq!(proxy.metric_ending("errors/upstream_body_timeout"), 1.0, "{io}");
        assert_eq!(get(proxy.addr(), "/", "svc").unwrap().status, 200, "{io}: the next request is served");
        // The same once a request body has been sent: the clock starts when
        // the body's last byte went upstream.
        let mut c = Conn::open(proxy.addr());
        c.stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.send(b"POST /never-answers HTTP/1.1\r\nHost: svc\r\nContent-Length: 4\r\n\r\n");
        std::thread::sleep(Duration::from_millis(300));
        c.send(b"body");
        let sent = Instant::now();
        let rsp = c.read_response("POST").unwrap();
        assert_eq!(rsp.status, 502, "{io}: {}", error_of(&rsp));
        assert!(sent.elapsed() < Duration::from_secs(3), "{io}: {:?}", sent.elapsed());
        assert_eq!(proxy.metric_ending("errors/upstream_body_timeout"), 2.0, "{io}");
    }
}

#[test]
fn an_upstream_streaming_informational_responses_is_cut_off() {
    use common::raw_backend::{Action, RawBackend};
    let backend = RawBackend::start_with(std::sync::Arc::new(|req: &common::raw_backend::Request| {
        let count = if req.target == "/flood" { 2_000 } else { 3 };
        let mut bytes = b"HTTP/1.1 100 Continue\r\n\r\n".repeat(count);
        bytes.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        vec![Action::Send(bytes)]
    }));
    for io in backends() {
        let proxy = Corelink::start(&one_worker_config(backend.addr, "", "", ""), io);
        // A few are relayed, then the response.
        let mut c = Conn::open(proxy.addr());
        c.send(b"GET /few HTTP/1.1\r\nHost: svc\r\n\r\n");
        let mut continues = 0;
        let rsp = loop {
            let rsp = c.read_response("GET").unwrap();
            if rsp.status != 100 {
                break rsp;
            }
            continues += 1;
        };
        assert_eq!((continues, rsp.status, rsp.body.as_slice()), (3, 200, &b"ok"[..]), "{io}");
        // 52 KiB of them: more than one head may take. The client has seen
        // some (so no error response can follow them); the connection ends.
        let mut c = Conn::open(proxy.addr());
        c.send(b"GET /flood HTTP/1.1\r\nHost: svc\r\n\r\n");
        let mut continues = 0;
        let end = loop {
            match c.read_response("GET") {
                Ok(rsp) if rsp.status == 100 => continues += 1,
                other => break other,
            }
        };
        assert!(end.is_err(), "{io}: after {continues}: {end:?}");
        let at_most = 12 * 1024 / b"HTTP/1.1 100 Continue\r\n\r\n".len();
        assert!(continues <= at_most, "{io}: {continues} relayed");
        assert_eq!(proxy.metric_ending("errors/upstream_invalid_response"), 1.0, "{io}");
    }
}

/// An HTTP/1.0 client's body ends with the connection: when the upstream
/// breaks off in the middle of a chunked body, a FIN would tell the client
/// the part it got was all of it. It gets a reset instead.
#[test]
fn a_truncated_body_ends_an_http10_clients_connection_with_a_reset() {
    use common::raw_backend::{Action, RawBackend};
    let backend = RawBackend::start_with(std::sync::Arc::new(|_: &common::raw_backend::Request| {
        vec![
            Action::Send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n".to_vec()),
            Action::Sleep(Duration::from_millis(100)),
            Action::Close,
        ]
    }));
    for io in backends() {
        let proxy = Corelink::start(&one_worker_config(backend.addr, "", "", ""), io);
        let mut c = Conn::open(proxy.addr());
        c.stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.send(b"GET / HTTP/1.0\r\nHost: svc\r\n\r\n");
        let (got, end) = c.read_until_closed();
        assert_eq!(end, Err(std::io::ErrorKind::ConnectionReset), "{io}: {}", String::from_utf8_lossy(&got));
        assert!(got.starts_with(b"HTTP/1.1 200") || got.is_empty(), "{io}: {}", String::from_utf8_lossy(&got));
        assert_eq!(proxy.metric_ending("errors/upstream_closed"), 1.0, "{io}");
    }
}

/// The response head and the body bytes that came with it go to the client
/// in one write from the upstream buffer when the head corelink sends is no
/// longer than the upstream's (hop-by-hop fields dropped), and through a
/// copy when it is longer (a bare head gets `Via`): both arrive byte-exact,
/// bodies spanning several buffers, the connection reused.
#[test]
fn a_response_head_and_the_body_bytes_behind_it_arrive_whole_either_way() {
    use common::raw_backend::{ok_response, Action, RawBackend};
    let body = pattern(40_000);
    let sent = body.clone();
    let backend = RawBackend::start_with(std::sync::Arc::new(move |req: &common::raw_backend::Request| {
        let head = match req.target.as_str() {
            "/short-head" => format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", sent.len()),
            "/long-head" => format!(
                "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=60, max=1000\r\n\
                 X-Kept: {}\r\nContent-Length: {}\r\n\r\n",
                "k".repeat(100),
                sent.len()
            ),
            _ => return ok_response(req),
        };
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&sent);
        vec![Action::Send(bytes)]
    }));
    for io in backends() {
        let proxy = Corelink::start(&simple_config(backend.addr, "", ""), io);
        let mut c = Conn::open(proxy.addr());
        for path in ["/short-head", "/long-head", "/short-head", "/long-head"] {
            c.send(format!("GET {path} HTTP/1.1\r\nHost: svc\r\n\r\n").as_bytes());
            let rsp = c.read_response("GET").unwrap();
            assert_eq!(rsp.status, 200, "{io} {path}");
            assert_eq!(rsp.header("via"), Some("1.1 corelink"), "{io} {path}");
            assert!(rsp.body == body, "{io} {path}: {} bytes", rsp.body.len());
            if path == "/long-head" {
                assert_eq!(rsp.header("x-kept").map(str::len), Some(100), "{io}");
                assert_eq!(rsp.header("keep-alive"), None, "{io}");
            }
        }
    }
}
