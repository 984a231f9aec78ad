//! `httpAccessLog`: one Common Log Format line per request, written off the
//! data path, through the real binary on each I/O backend.

mod common;

use std::time::{Duration, Instant};

use common::backend::Backend;
use common::client::{get, Conn};
use common::{backends, Corelink};

#[test]
fn every_request_gets_one_common_log_format_line() {
    let backend = Backend::start();
    for io in backends() {
        let dir = common::tempdir::Dir::new("access-log");
        let path = dir.path().join("access.log");
        let extra = format!("  httpAccessLog: {}\n", path.display());
        let proxy = Corelink::start(&common::simple_config(backend.addr, &extra, ""), io);
        let mut conn = Conn::open(proxy.addr());
        for i in 0..3 {
            conn.send(
                format!("GET /hello/{i}?x=1 HTTP/1.1\r\nHost: serviceB\r\nUser-Agent: test/1.0\r\n\r\n").as_bytes(),
            );
            assert_eq!(conn.read_response("GET").unwrap().status, 200, "{io}");
        }
        // No Host: corelink answers 400 itself; still one line.
        assert_eq!(get(proxy.addr(), "/nohost", "").map(|r| r.status).unwrap_or(400), 400);
        let mut bad = Conn::open(proxy.addr());
        bad.send(b"NOT A REQUEST\r\n\r\n");
        let _ = bad.read_response("GET");

        let deadline = Instant::now() + Duration::from_secs(10);
        let lines = loop {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<String> = text.lines().map(String::from).collect();
            if lines.len() >= 5 || Instant::now() > deadline {
                break lines;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(lines.len(), 5, "{io}: {lines:#?}");
        // Cores flush separately: lines from different connections may be
        // in any order, so each expected line is looked up by content.
        let find = |fragment: &str| {
            lines
                .iter()
                .find(|l| l.contains(fragment))
                .unwrap_or_else(|| panic!("{io}: no line with {fragment:?} in {lines:#?}"))
        };
        for i in 0..3 {
            let line = find(&format!("\"GET /hello/{i}?x=1 HTTP/1.1\" 200 "));
            assert!(line.starts_with("127.0.0.1 - - ["), "{io}: {line}");
            assert!(line.contains(" +0000] \""), "{io}: {line}");
            assert!(line.ends_with(" \"-\" \"test/1.0\""), "{io}: {line}");
        }
        find("\"GET /nohost HTTP/1.1\" 400 ");
        find("\"-\" 400 - \"-\" \"-\"");
    }
}
