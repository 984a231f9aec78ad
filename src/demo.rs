//! `corelink demo`: the seed scenario of linkerd's "Transparent TLS" write-up
//! on localhost, with nothing from the user. A demo serviceB, sidecar B
//! ("incoming", :4143) in front of it, sidecar A ("outgoing", :4141) in front
//! of ServiceA, and requests sent as ServiceA with `Host: serviceB`.
//!
//! The sidecars are real `corelink run` processes started from this binary
//! with generated linkerd configs. The hop between the sidecars is plaintext
//! until the TLS work lands (then it becomes TLS with a generated CA).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{0}")]
    Setup(String),
    #[error("demo check failed: {0}")]
    Check(String),
}

pub const OUTGOING_PORT: u16 = 4141;
pub const INCOMING_PORT: u16 = 4143;

struct Sidecar {
    child: Child,
    admin: SocketAddr,
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the demo. With `check`, verifies the scenario and returns; otherwise
/// keeps serving until Ctrl-C.
pub fn run(check: bool) -> Result<(), DemoError> {
    let dir = std::env::temp_dir().join(format!("corelink-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| DemoError::Setup(format!("cannot create {}: {e}", dir.display())))?;
    let result = run_in(&dir, check);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run_in(dir: &Path, check: bool) -> Result<(), DemoError> {
    let service_b = start_service_b()?;
    println!("serviceB (demo app)       listening on {service_b}");

    let incoming = format!(
        "admin:\n  port: 0\nrouters:\n- protocol: http\n  label: incoming\n  dtab: |\n    /svc/* => /$/inet/127.0.0.1/{};\n  servers:\n  - port: {INCOMING_PORT}\n    ip: 127.0.0.1\ncorelink:\n  workers: 1\n  shutdownDelayMs: 0\n",
        service_b.port()
    );
    let outgoing = format!(
        "admin:\n  port: 0\nrouters:\n- protocol: http\n  label: outgoing\n  dtab: |\n    /svc/serviceB => /$/inet/127.0.0.1/{INCOMING_PORT};\n  servers:\n  - port: {OUTGOING_PORT}\n    ip: 127.0.0.1\ncorelink:\n  workers: 1\n  shutdownDelayMs: 0\n"
    );
    let sidecar_b = start_sidecar(dir, "sidecar-b", &incoming)?;
    println!("sidecar B (incoming)      listening on 127.0.0.1:{INCOMING_PORT}, admin {}", sidecar_b.admin);
    let sidecar_a = start_sidecar(dir, "sidecar-a", &outgoing)?;
    println!("sidecar A (outgoing)      listening on 127.0.0.1:{OUTGOING_PORT}, admin {}", sidecar_a.admin);
    println!();

    let mut failures = Vec::new();
    for i in 1..=3 {
        match send_as_service_a(i, sidecar_a.admin) {
            Ok(report) => {
                if i == 1 {
                    println!("{report}");
                }
            }
            Err(e) => failures.push(e),
        }
    }
    if failures.is_empty() {
        println!("3 requests from ServiceA reached serviceB through both sidecars.");
    } else {
        for f in &failures {
            println!("FAILED: {f}");
        }
    }
    if check {
        return if failures.is_empty() { Ok(()) } else { Err(DemoError::Check(failures.join("; "))) };
    }
    println!();
    println!("Try it by hand:  curl -H 'Host: serviceB' http://127.0.0.1:{OUTGOING_PORT}/hello");
    println!("Ctrl-C to stop.");
    wait_for_ctrl_c();
    drop(sidecar_a);
    drop(sidecar_b);
    Ok(())
}

fn wait_for_ctrl_c() {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
        return;
    };
    rt.block_on(async {
        let _ = tokio::signal::ctrl_c().await;
    });
}

/// What a sidecar's delegator says `path` binds to (from its admin port's
/// `/delegator.json`, as an operator would ask it).
fn bound_by(admin: SocketAddr, path: &str) -> String {
    let ask = || -> std::io::Result<String> {
        let mut stream = TcpStream::connect(admin)?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(stream, "GET /delegator.json?path={path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        Ok(response)
    };
    let response = ask().unwrap_or_default();
    let key = "\"bound\":{\"id\":\"";
    match response.find(key) {
        Some(at) => response[at + key.len()..].split('"').next().unwrap_or("?").to_string(),
        None => "?".to_string(),
    }
}

/// Sends one request as ServiceA and describes each hop.
fn send_as_service_a(i: usize, admin_a: SocketAddr) -> Result<String, String> {
    let mut stream =
        TcpStream::connect(("127.0.0.1", OUTGOING_PORT)).map_err(|e| format!("connect to sidecar A: {e}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
    write!(stream, "GET /hello/{i} HTTP/1.1\r\nHost: serviceB\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(|e| format!("read response: {e}"))?;
    let (head, body) = response.split_once("\r\n\r\n").ok_or("incomplete response")?;
    let status_line = head.lines().next().unwrap_or("");
    if !status_line.starts_with("HTTP/1.1 200") {
        return Err(format!("request {i}: {status_line} ({})", head.replace("\r\n", " | ")));
    }
    let seen = |name: &str| {
        body.lines().find_map(|l| l.strip_prefix(name).map(str::trim).map(String::from)).unwrap_or_default()
    };
    let via_back = head.lines().filter(|l| l.to_ascii_lowercase().starts_with("via:")).count();
    Ok(format!(
        "ServiceA -> GET /hello/{i}, Host: serviceB -> sidecar A :{OUTGOING_PORT}\n  \
         sidecar A: identified /svc/serviceB, dtab bound it to {}\n  \
         sidecar B: identified {}, bound it to {}\n  \
         serviceB saw: Via {}\n  \
         response: {status_line}, {} Via entries on the way back, body {:?}",
        bound_by(admin_a, "/svc/serviceB"),
        seen("l5d-dst-service:"),
        seen("l5d-dst-client:"),
        seen("via:"),
        via_back,
        body.lines().next().unwrap_or("")
    ))
}

fn start_sidecar(dir: &Path, name: &str, config: &str) -> Result<Sidecar, DemoError> {
    let path: PathBuf = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, config).map_err(|e| DemoError::Setup(format!("write {}: {e}", path.display())))?;
    let exe = std::env::current_exe().map_err(|e| DemoError::Setup(e.to_string()))?;
    let mut child = Command::new(exe)
        .args(["run", "--config"])
        .arg(&path)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| DemoError::Setup(format!("start {name}: {e}")))?;
    let stdout = child.stdout.take().ok_or_else(|| DemoError::Setup("no stdout".into()))?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("corelink: admin listening on ") {
                let _ = tx.send(addr.to_string());
            }
        }
    });
    let admin = rx.recv_timeout(Duration::from_secs(10)).map_err(|_| {
        DemoError::Setup(format!("{name} did not start (is port {OUTGOING_PORT} or {INCOMING_PORT} in use?)"))
    })?;
    let admin = admin.parse().map_err(|_| DemoError::Setup(format!("{name}: bad admin address {admin}")))?;
    Ok(Sidecar { child, admin })
}

/// The demo application: answers every request with what it received, so the
/// demo can show what each hop added.
fn start_service_b() -> Result<SocketAddr, DemoError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| DemoError::Setup(format!("serviceB: {e}")))?;
    let addr = listener.local_addr().map_err(|e| DemoError::Setup(e.to_string()))?;
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            std::thread::spawn(move || serve_service_b(stream));
        }
    });
    Ok(addr)
}

fn serve_service_b(mut stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n");
        let Some(end) = head_end else {
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    continue;
                }
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end + 4);
        let header = |name: &str| -> Vec<String> {
            head.lines()
                .filter_map(|l| l.split_once(':'))
                .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim().to_string())
                .collect()
        };
        let clients = header("l5d-dst-client");
        let body = format!(
            "Hello from serviceB\nvia: {}\nl5d-dst-service: {}\nl5d-dst-client: {}\n",
            header("via").join(", "),
            header("l5d-dst-service").last().cloned().unwrap_or_default(),
            clients.last().cloned().unwrap_or_default(),
        );
        let response =
            format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}", body.len());
        if stream.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}
