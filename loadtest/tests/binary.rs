//! Runs the real binary against the in-process test server and checks its JSON output.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::Ordering;

use serde_json::Value;

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("corelink-load-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn run(args: &[&str], json: &PathBuf) -> (Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_corelink-load"))
        .args(args)
        .arg("--json")
        .arg(json)
        .output()
        .expect("run corelink-load");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // Quiet on stderr when it is not a terminal.
    assert!(out.stderr.is_empty(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    (v, stdout)
}

fn u(v: &Value, path: &[&str]) -> u64 {
    let mut x = v;
    for p in path {
        x = &x[*p];
    }
    x.as_u64().unwrap_or_else(|| panic!("{path:?} in {v}"))
}

#[test]
fn one_second_closed_loop_with_json() {
    let server = common::start(Default::default());
    let url = format!("http://{}/", server.addr);
    let json = tmp("closed.json");
    let hgrm = tmp("closed.hgrm");
    let svg = tmp("closed.svg");
    let (v, stdout) = run(
        &[
            "-c",
            "4",
            "-t",
            "2",
            "-d",
            "1s",
            "--warmup",
            "200ms",
            "--hgrm",
            hgrm.to_str().unwrap(),
            "--svg",
            svg.to_str().unwrap(),
            &url,
        ],
        &json,
    );
    assert!(stdout.contains("req/s"), "{stdout}");
    let requests = u(&v, &["requests"]);
    assert!(requests > 100, "{v}");
    assert_eq!(u(&v, &["ok"]), requests);
    assert_eq!(u(&v, &["status", "200"]), requests);
    assert_eq!(u(&v, &["errors", "total"]), 0);
    assert_eq!(u(&v, &["non_2xx"]), 0);
    assert_eq!(u(&v, &["latency_ms", "count"]), requests);
    assert_eq!(u(&v, &["connects"]), 0, "connections open during warm-up are not counted");
    let dur = v["duration_s"].as_f64().unwrap();
    assert!((0.95..1.2).contains(&dur), "duration {dur}");
    let rps = v["requests_per_sec"].as_f64().unwrap();
    assert!((rps - requests as f64 / dur).abs() < 1.0);
    // The server answered every measured request, plus warm-up ones and at most one
    // abandoned in flight per connection at the end.
    let answered = server.answered.load(Ordering::SeqCst);
    assert!(answered >= requests, "server answered {answered} < {requests}");
    // The .hgrm file parses back to the same count.
    let parsed = corelink_load::report::parse_hgrm(&std::fs::read_to_string(&hgrm).unwrap()).unwrap();
    assert_eq!(parsed.total_count, requests);
    let svg_text = std::fs::read_to_string(&svg).unwrap();
    assert!(svg_text.starts_with("<svg") && svg_text.contains("99.9%") && svg_text.contains("<polyline"));
}

#[test]
fn request_count_is_exact() {
    let server = common::start(Default::default());
    let url = format!("http://{}/chunked", server.addr);
    let json = tmp("count.json");
    let (v, _) = run(&["-c", "3", "-n", "500", "-m", "POST", "--body-size", "100", &url], &json);
    assert_eq!(u(&v, &["requests"]), 500);
    assert_eq!(u(&v, &["status", "200"]), 500);
    assert_eq!(u(&v, &["connects"]), 3);
    assert_eq!(server.received.load(Ordering::SeqCst), 500);
}

#[test]
fn new_connection_per_request() {
    let server = common::start(Default::default());
    let url = format!("http://{}/", server.addr);
    let json = tmp("newconn.json");
    let (v, _) = run(&["-c", "2", "-n", "50", "--new-conn", &url], &json);
    assert_eq!(u(&v, &["requests"]), 50);
    assert_eq!(u(&v, &["connects"]), 50);
    assert_eq!(u(&v, &["errors", "total"]), 0);
}

#[test]
fn errors_by_kind_and_status() {
    let server = common::start(Default::default());
    let base = format!("http://{}", server.addr);
    let (v, stdout) = run(&["-c", "2", "-n", "20", &format!("{base}/missing")], &tmp("404.json"));
    assert_eq!(u(&v, &["status", "404"]), 20);
    assert_eq!(u(&v, &["non_2xx"]), 20);
    assert_eq!(u(&v, &["ok"]), 0);
    assert!(stdout.contains("404: 20"), "{stdout}");

    let (v, _) = run(&["-c", "1", "-n", "5", &format!("{base}/garbage")], &tmp("garbage.json"));
    assert_eq!(u(&v, &["errors", "bad_response"]), 5);
    assert_eq!(u(&v, &["requests"]), 0);

    let (v, _) = run(&["-c", "2", "-n", "6", &format!("{base}/close")], &tmp("close.json"));
    assert_eq!(u(&v, &["status", "200"]), 6);
    assert_eq!(u(&v, &["connects"]), 6);

    let (v, _) = run(&["-c", "2", "-n", "4", "--timeout", "200ms", &format!("{base}/hang")], &tmp("hang.json"));
    assert_eq!(u(&v, &["errors", "timeout"]), 4);

    // Nothing listens on a freshly closed port.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (v, _) = run(&["-c", "1", "-n", "3", &format!("http://127.0.0.1:{port}/")], &tmp("refused.json"));
    assert_eq!(u(&v, &["errors", "connect"]), 3);
}

#[test]
fn tls_with_cacert_and_sni() {
    let server = common::start(common::Options { tls: true, ..Default::default() });
    let ca = tmp("ca.pem");
    std::fs::write(&ca, server.ca_pem.as_ref().unwrap()).unwrap();
    let url = format!("https://127.0.0.1:{}/", server.addr.port());
    let (v, _) =
        run(&["-c", "2", "-n", "100", "--cacert", ca.to_str().unwrap(), "--sni", "localhost", &url], &tmp("tls.json"));
    assert_eq!(u(&v, &["status", "200"]), 100);
    assert_eq!(u(&v, &["connects"]), 2);
    // Wrong name: every handshake fails verification.
    let (v, _) = run(
        &["-c", "1", "-n", "3", "--cacert", ca.to_str().unwrap(), "--sni", "other.test", &url],
        &tmp("tls-bad.json"),
    );
    assert_eq!(u(&v, &["errors", "tls"]), 3);
    // --insecure accepts it; new connection per request exercises handshakes.
    let (v, _) = run(&["-c", "1", "-n", "10", "--insecure", "--new-conn", &url], &tmp("tls-insecure.json"));
    assert_eq!(u(&v, &["status", "200"]), 10);
    assert_eq!(u(&v, &["connects"]), 10);
}
