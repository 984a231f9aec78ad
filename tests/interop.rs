//! TLS interoperability with the peers users put next to corelink: curl and
//! openssl s_client against corelink's server TLS, nginx as the TLS server
//! corelink's client TLS connects to, and nginx as a TLS client of corelink.
//! Each test skips (with a notice) when its tool is not installed; `.ci/run`
//! installs curl, openssl and nginx so they run in CI.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::backend::Backend;
use common::certs::{Ca, Names};
use common::client::get;
use common::tempdir::Dir;
use common::{backends, free_port, Corelink};

fn have(tool: &str) -> bool {
    let found =
        Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("SKIPPED: {tool} is not installed (apt-get install -y {tool}); .ci/run installs it");
    }
    found
}

/// Runs a command with stdin closed, killed after `limit`.
fn run(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    panic!("{cmd:?} did not finish within {limit:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

struct Certs {
    dir: Dir,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    ca_signer: Ca,
}

fn certs(names: Names) -> Certs {
    let dir = Dir::new("interop");
    let ca_signer = Ca::new("interop CA");
    let ca = ca_signer.write(dir.path(), "ca.pem");
    let (cert, key) = ca_signer.issue("serviceB", names).write(dir.path(), "serviceB");
    Certs { dir, ca, cert, key, ca_signer }
}

/// corelink terminating TLS in front of `backend`; `extra` adds lines under `tls:`.
fn tls_server(c: &Certs, backend: SocketAddr, extra: &str, io: &str) -> Corelink {
    let config = format!(
        "admin:\n  port: 0\nrouters:\n- protocol: http\n  label: incoming\n  dtab: |\n    /svc/* => /$/inet/{}/{};\n  servers:\n  - port: 0\n    tls:\n      certPath: {}\n      keyPath: {}\n{extra}corelink:\n  workers: 1\n  shutdownDelayMs: 0\n",
        backend.ip(),
        backend.port(),
        c.cert.display(),
        c.key.display()
    );
    Corelink::start(&config, io)
}

fn curl(args: &[&str]) -> Output {
    run(Command::new("curl").args(["-sS", "--max-time", "10"]).args(args), Duration::from_secs(15))
}

#[test]
fn curl_verifies_corelink_and_plaintext_is_refused() {
    if !have("curl") {
        return;
    }
    let c = certs(Names::CnAndSan);
    let backend = Backend::start();
    for io in backends() {
        let b = tls_server(&c, backend.addr, "", io);
        let port = b.addr().port().to_string();
        let resolve = format!("serviceB:{port}:127.0.0.1");
        let url = format!("https://serviceB:{port}/hello");
        let ca = c.ca.display().to_string();
        for versions in [&["--tlsv1.2", "--tls-max", "1.2"][..], &["--tlsv1.3"][..]] {
            let mut args = vec!["--cacert", &ca, "--resolve", &resolve, "-o", "/dev/null", "-w", "%{http_code}"];
            args.extend_from_slice(versions);
            args.push(&url);
            let out = curl(&args);
            assert!(out.status.success(), "{io} {versions:?}: {}", text(&out));
            assert_eq!(String::from_utf8_lossy(&out.stdout), "200", "{io} {versions:?}");
        }
        // Another CA: curl refuses to talk (exit 60: peer certificate cannot be authenticated).
        let other = Ca::new("another CA").write(c.dir.path(), "other.pem");
        let out = curl(&["--cacert", &other.display().to_string(), "--resolve", &resolve, &url]);
        assert_eq!(out.status.code(), Some(60), "{io}: {}", text(&out));
        // Plain HTTP to the TLS port: a plaintext 400, then the connection closes.
        let out = curl(&["-o", "/dev/null", "-w", "%{http_code}", &format!("http://127.0.0.1:{port}/")]);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "400", "{io}: {}", text(&out));
    }
}

fn s_client(args: &[&str]) -> Output {
    run(Command::new("openssl").arg("s_client").args(args), Duration::from_secs(15))
}

#[test]
fn openssl_s_client_sees_the_certificate_alpn_and_resumes() {
    if !have("openssl") {
        return;
    }
    let c = certs(Names::CnOnly);
    let backend = Backend::start();
    for io in backends() {
        let b = tls_server(&c, backend.addr, "", io);
        let connect = format!("127.0.0.1:{}", b.addr().port());
        let ca = c.ca.display().to_string();
        let base = ["-connect", &connect, "-servername", "serviceB", "-CAfile", &ca, "-verify_return_error"];
        let mut args = base.to_vec();
        args.extend(["-brief", "-alpn", "http/1.1"]);
        let out = s_client(&args);
        let t = text(&out);
        assert!(out.status.success(), "{io}: {t}");
        assert!(t.contains("Verification: OK"), "{io}: {t}");
        assert!(t.contains("CN = serviceB") || t.contains("CN=serviceB"), "{io}: {t}");
        assert!(t.contains("Protocol version: TLSv1.3"), "{io}: {t}");
        // -brief leaves ALPN out; the full report has it.
        let mut full = base.to_vec();
        full.extend(["-alpn", "http/1.1"]);
        let t = text(&s_client(&full));
        assert!(t.contains("ALPN protocol: http/1.1"), "{io}: {t}");

        // Session resumption through tickets (TLS 1.2: s_client saves the
        // session at the end of the handshake; with TLS 1.3 the ticket comes
        // after it, racing s_client's exit).
        let sess = c.dir.path().join(format!("session-{io}.pem"));
        let sess = sess.display().to_string();
        let mut first = base.to_vec();
        first.extend(["-tls1_2", "-sess_out", &sess]);
        let out = s_client(&first);
        assert!(out.status.success(), "{io}: {}", text(&out));
        let mut second = base.to_vec();
        second.extend(["-tls1_2", "-sess_in", &sess]);
        let out = s_client(&second);
        let t = text(&out);
        assert!(t.contains("Reused, TLSv1.2"), "{io}: the session was not resumed: {t}");
    }
}

#[test]
fn openssl_s_client_mutual_tls() {
    if !have("openssl") {
        return;
    }
    let c = certs(Names::CnAndSan);
    let (client_cert, client_key) = c.ca_signer.issue("serviceA", Names::CnAndSan).write(c.dir.path(), "serviceA");
    let backend = Backend::start();
    for io in backends() {
        let extra = format!("      caCertPath: {}\n      requireClientAuth: true\n", c.ca.display());
        let b = tls_server(&c, backend.addr, &extra, io);
        let connect = format!("127.0.0.1:{}", b.addr().port());
        let ca = c.ca.display().to_string();
        let base = ["-connect", &connect, "-servername", "serviceB", "-CAfile", &ca, "-tls1_2", "-brief"];
        let out = s_client(&base);
        assert!(!out.status.success(), "{io}: no client certificate must be refused: {}", text(&out));
        let mut with = base.to_vec();
        let (cert, key) = (client_cert.display().to_string(), client_key.display().to_string());
        with.extend(["-cert", &cert, "-key", &key]);
        let out = s_client(&with);
        assert!(out.status.success(), "{io}: {}", text(&out));
    }
}

/// nginx in a temporary prefix, killed on drop.
struct Nginx {
    child: Child,
    port: u16,
    _dir: Dir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM lets the master stop its worker; SIGKILL would leave the
        // worker running (and listening) after the test.
        // SAFETY: kill(2) on the pid of our own child, not yet reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts nginx with `server` (a `server { ... }` block using `PORT`).
fn nginx(server: &str) -> Nginx {
    let dir = Dir::new("nginx");
    let port = free_port();
    let p = dir.path().display().to_string();
    let conf = format!(
        "worker_processes 1;\npid {p}/nginx.pid;\nerror_log {p}/error.log;\nevents {{ worker_connections 256; }}\nhttp {{\n  access_log off;\n  client_body_temp_path {p}; proxy_temp_path {p}; fastcgi_temp_path {p}; uwsgi_temp_path {p}; scgi_temp_path {p};\n{}\n}}\n",
        server.replace("PORT", &port.to_string())
    );
    std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
    let child = Command::new("nginx")
        .args(["-p", &p, "-c", &format!("{p}/nginx.conf"), "-e", &format!("{p}/error.log"), "-g", "daemon off;"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nginx did not start: {}",
            std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Nginx { child, port, _dir: dir }
}

/// corelink with client TLS (linkerd 1.x form) to `upstream`.
fn tls_client(upstream: SocketAddr, common_name: &str, ca: &Path, io: &str) -> Corelink {
    let config = format!(
        "admin:\n  port: 0\nrouters:\n- protocol: http\n  label: outgoing\n  dtab: |\n    /svc/* => /$/inet/{}/{};\n  servers:\n  - port: 0\n  client:\n    tls:\n      commonName: {common_name}\n      trustCerts: [{}]\ncorelink:\n  workers: 1\n  shutdownDelayMs: 0\n",
        upstream.ip(),
        upstream.port(),
        ca.display()
    );
    Corelink::start(&config, io)
}

#[test]
fn corelink_client_tls_to_nginx() {
    if !have("nginx") {
        return;
    }
    for names in [Names::CnAndSan, Names::CnOnly] {
        let c = certs(names);
        let server = format!(
            "server {{ listen 127.0.0.1:PORT ssl; ssl_certificate {}; ssl_certificate_key {}; location / {{ return 200 \"nginx-tls\\n\"; }} }}",
            c.cert.display(),
            c.key.display()
        );
        let n = nginx(&server);
        let upstream = SocketAddr::from(([127, 0, 0, 1], n.port));
        for io in backends() {
            let a = tls_client(upstream, "serviceB", &c.ca, io);
            let rsp = get(a.addr(), "/", "serviceB").unwrap();
            assert_eq!(rsp.status, 200, "{io}: {:?}", rsp.header("l5d-err"));
            assert_eq!(String::from_utf8_lossy(&rsp.body), "nginx-tls\n", "{io}");
            let a = tls_client(upstream, "serviceC", &c.ca, io);
            let rsp = get(a.addr(), "/", "serviceB").unwrap();
            let err = rsp.header("l5d-err").unwrap_or_default().replace('+', " ");
            assert_eq!(rsp.status, 502, "{io}");
            assert!(err.contains("not valid for serviceC"), "{io}: {err}");
        }
    }
}

#[test]
fn nginx_as_a_tls_client_of_corelink() {
    if !have("nginx") {
        return;
    }
    let c = certs(Names::CnAndSan);
    let backend = Backend::start();
    for io in backends() {
        let b = tls_server(&c, backend.addr, "", io);
        let server = format!(
            "server {{ listen 127.0.0.1:PORT; location / {{ proxy_pass https://127.0.0.1:{}; proxy_http_version 1.1; proxy_set_header Host serviceB; proxy_ssl_verify on; proxy_ssl_trusted_certificate {}; proxy_ssl_name serviceB; proxy_ssl_server_name on; }} }}",
            b.addr().port(),
            c.ca.display()
        );
        let n = nginx(&server);
        let before = backend.requests();
        let rsp = get(SocketAddr::from(([127, 0, 0, 1], n.port)), "/", "anything").unwrap();
        assert_eq!(rsp.status, 200, "{io}");
        assert_eq!(backend.requests(), before + 1, "{io}");
    }
}
