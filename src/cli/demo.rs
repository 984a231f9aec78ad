//! `corelink demo`: the linker-to-linker TLS scenario of linkerd's "Transparent TLS" write-up
//! on localhost, with nothing from the user. A root CA and serviceB's
//! certificate are made in a temporary directory; a demo serviceB runs behind
//! sidecar B ("incoming", :4143, server TLS with serviceB's certificate);
//! sidecar A ("outgoing", :4141) routes `Host: serviceB` through the dtab
//! `/svc => /#/io.l5d.fs` to the bound path `/#/io.l5d.fs/serviceB` and speaks
//! boundPath client TLS to sidecar B, verifying the name `serviceB` against
//! the CA, as the write-up configures it.
//!
//! The sidecars are real `corelink run` processes started from this binary
//! with generated linkerd configs.

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
    /// Sidecar A's TLS connection log lines (`corelink::tls` at debug).
    tls_lines: mpsc::Receiver<String>,
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

/// Writes the CA certificate and serviceB's certificate and key, as
/// `corelink certs` would (the CA key stays in memory: the write-up insists
/// it is never deployed).
fn make_certificates(dir: &Path) -> Result<PathBuf, DemoError> {
    let setup = |e: crate::cli::certs::CertsError| DemoError::Setup(format!("certificates: {e}"));
    let certs = dir.join("certificates");
    std::fs::create_dir_all(&certs).map_err(|e| DemoError::Setup(format!("{}: {e}", certs.display())))?;
    let (ca_pem, ca) = crate::cli::certs::ca_in_memory("corelink demo CA").map_err(setup)?;
    let service_b = crate::cli::certs::issue_in_memory(&ca, "serviceB").map_err(setup)?;
    for (name, text) in
        [("cacertificate.pem", &ca_pem.cert), ("serviceB.pem", &service_b.cert), ("serviceB.key", &service_b.key)]
    {
        let path = certs.join(name);
        std::fs::write(&path, text).map_err(|e| DemoError::Setup(format!("write {}: {e}", path.display())))?;
    }
    Ok(certs)
}

fn run_in(dir: &Path, check: bool) -> Result<(), DemoError> {
    let certs = make_certificates(dir)?;
    println!("root CA and serviceB's certificate (CN and SAN serviceB) written to {}", certs.display());
    let service_b = start_service_b()?;
    println!("serviceB (demo app)       listening on {service_b}");

    let incoming = format!(
        "admin:\n  port: 0\nrouters:\n- protocol: http\n  label: incoming\n  dtab: |\n    /svc/* => /$/inet/127.0.0.1/{};\n  servers:\n  - port: {INCOMING_PORT}\n    ip: 127.0.0.1\n    tls:\n      certPath: {certs}/serviceB.pem\n      keyPath: {certs}/serviceB.key\ncorelink:\n  workers: 1\n  shutdownDelayMs: 0\n",
        service_b.port(),
        certs = certs.display(),
    );
    let disco = dir.join("disco");
    std::fs::create_dir_all(&disco).map_err(|e| DemoError::Setup(format!("{}: {e}", disco.display())))?;
    std::fs::write(disco.join("serviceB"), format!("127.0.0.1 {INCOMING_PORT}\n"))
        .map_err(|e| DemoError::Setup(format!("namer file: {e}")))?;
    let outgoing = format!(
        "admin:\n  port: 0\nnamers:\n- kind: io.l5d.fs\n  rootDir: {disco}\nrouters:\n- protocol: http\n  label: outgoing\n  dtab: |\n    /svc => /#/io.l5d.fs;\n  servers:\n  - port: {OUTGOING_PORT}\n    ip: 127.0.0.1\n  client:\n    tls:\n      kind: io.l5d.boundPath\n      caCertPath: {certs}/cacertificate.pem\n      names:\n      - prefix: \"/#/io.l5d.fs/{{service}}\"\n        commonNamePattern: \"{{service}}\"\ncorelink:\n  workers: 1\n  shutdownDelayMs: 0\n",
        disco = disco.display(),
        certs = certs.display(),
    );
    let sidecar_b = start_sidecar(dir, "sidecar-b", &incoming)?;
    println!("sidecar B (incoming, TLS) listening on 127.0.0.1:{INCOMING_PORT}, admin {}", sidecar_b.admin);
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
    match tls_hop(&sidecar_a, &sidecar_b) {
        Ok(report) => println!("{report}"),
        Err(e) => failures.push(e),
    }
    println!();
    if failures.is_empty() {
        println!("3 requests from ServiceA reached serviceB through both sidecars, over TLS between them.");
    } else {
        for f in &failures {
            println!("FAILED: {f}");
        }
    }
    if check {
        return if failures.is_empty() { Ok(()) } else { Err(DemoError::Check(failures.join("; "))) };
    }
    println!();
    println!("Try it by hand:");
    println!("  as ServiceA:          curl -H 'Host: serviceB' http://127.0.0.1:{OUTGOING_PORT}/hello");
    println!(
        "  sidecar B directly:   curl --cacert {}/cacertificate.pem --resolve serviceB:{INCOMING_PORT}:127.0.0.1 https://serviceB:{INCOMING_PORT}/hello",
        certs.display()
    );
    println!("Ctrl-C to stop.");
    wait_for_ctrl_c();
    drop(sidecar_a);
    drop(sidecar_b);
    Ok(())
}

/// What sidecar A logged about its TLS connection to sidecar B (the peer
/// name it verified, version, cipher) and what sidecar B counted.
fn tls_hop(a: &Sidecar, b: &Sidecar) -> Result<String, String> {
    let line = a
        .tls_lines
        .recv_timeout(Duration::from_secs(5))
        .map_err(|_| "sidecar A logged no TLS connection to sidecar B".to_string())?;
    let field = |name: &str| -> String {
        let key = format!("{name}=");
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&key))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_default()
    };
    let (peer, verified) = (field("peer"), field("verified"));
    if peer != "serviceB" || verified != "true" {
        return Err(format!("sidecar A's TLS connection was not verified as serviceB: {line}"));
    }
    let handshakes = admin_get(b.admin, "/admin/metrics.json")
        .ok()
        .and_then(|body| {
            let key = format!("/server/127.0.0.1/{INCOMING_PORT}/tls/handshakes\": ");
            let at = body.find(&key)? + key.len();
            body[at..].split([',', '}']).next()?.trim().parse::<u64>().ok()
        })
        .unwrap_or(0);
    if handshakes == 0 {
        return Err("sidecar B counted no TLS handshake".into());
    }
    Ok(format!(
        "  TLS between the sidecars: sidecar A verified the certificate of {peer} (name from the bound path) against the demo CA\n  \
         {}, {}; {handshakes} handshake(s) on sidecar B for 3 requests: the pooled connection was reused",
        field("version"),
        field("cipher"),
    ))
}

fn wait_for_ctrl_c() {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
        return;
    };
    rt.block_on(async {
        let _ = tokio::signal::ctrl_c().await;
    });
}

/// One GET on a sidecar's admin port; the body.
fn admin_get(admin: SocketAddr, target: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(admin)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET {target} HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default())
}

/// What a sidecar's delegator says `path` binds to (from its admin port's
/// `/delegator.json`, as an operator would ask it).
fn bound_by(admin: SocketAddr, path: &str) -> String {
    let response = admin_get(admin, &format!("/delegator.json?path={path}")).unwrap_or_default();
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
        .env("RUST_LOG", "warn,corelink::tls=debug")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| DemoError::Setup(format!("start {name}: {e}")))?;
    let stdout = child.stdout.take().ok_or_else(|| DemoError::Setup("no stdout".into()))?;
    let stderr = child.stderr.take().ok_or_else(|| DemoError::Setup("no stderr".into()))?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("corelink: admin listening on ") {
                let _ = tx.send(addr.to_string());
            }
        }
    });
    // TLS connection lines go to the demo; warnings and errors are shown.
    let (tls_tx, tls_lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("TLS connection established") {
                let _ = tls_tx.send(line);
            } else {
                eprintln!("{line}");
            }
        }
    });
    let admin = rx.recv_timeout(Duration::from_secs(10)).map_err(|_| {
        DemoError::Setup(format!("{name} did not start (is port {OUTGOING_PORT} or {INCOMING_PORT} in use?)"))
    })?;
    let admin = admin.parse().map_err(|_| DemoError::Setup(format!("{name}: bad admin address {admin}")))?;
    Ok(Sidecar { child, admin, tls_lines })
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
