//! `corelink certs` and the certificate part of `corelink check`, through
//! the real binary. Where openssl is installed, it checks the result as an
//! independent implementation would; without it those checks are skipped
//! with a notice.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A temporary directory, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!("corelink-certs-it-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }

    fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn corelink(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_corelink")).args(args).output().unwrap()
}

/// Runs corelink and insists on success; returns stdout.
fn ok(args: &[&str]) -> String {
    let out = corelink(args);
    assert!(out.status.success(), "corelink {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `corelink certs ca` then `corelink certs issue` for `name` in `dir`.
fn ca_and_issue(dir: &Dir, name: &str) -> (PathBuf, PathBuf) {
    let (ca, out) = (dir.join("ca"), dir.join("out"));
    ok(&["certs", "ca", "--out", s(&ca)]);
    ok(&["certs", "issue", "--ca", s(&ca), "--name", name, "--out", s(&out)]);
    (ca, out)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// openssl's output, or None when openssl is not installed.
fn openssl(args: &[&str]) -> Option<String> {
    let out = match Command::new("openssl").args(args).output() {
        Ok(out) => out,
        Err(_) => {
            eprintln!("notice: openssl is not on PATH; skipping the openssl checks");
            return None;
        }
    };
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn ca_then_issue_writes_0600_keys_and_a_v3_certificate_openssl_verifies() {
    let dir = Dir::new("issue");
    let (ca, out) = ca_and_issue(&dir, "serviceB");
    for file in ["cacertificate.pem", "cakey.pem"] {
        assert!(ca.join(file).is_file(), "{file}");
    }
    assert_eq!(mode(&ca.join("cakey.pem")), 0o600);
    assert_eq!(mode(&out.join("key.pem")), 0o600);
    let key = std::fs::read_to_string(out.join("key.pem")).unwrap();
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8: {key}");

    let (ca_cert, cert) = (ca.join("cacertificate.pem"), out.join("certificate.pem"));
    let Some(verified) = openssl(&["verify", "-CAfile", s(&ca_cert), s(&cert)]) else { return };
    assert!(verified.contains(": OK"), "{verified}");
    // Both purposes: the same certificate serves mTLS.
    for purpose in ["sslserver", "sslclient"] {
        let v = openssl(&["verify", "-purpose", purpose, "-CAfile", s(&ca_cert), s(&cert)]).unwrap();
        assert!(v.contains(": OK"), "{purpose}: {v}");
    }
    let text = openssl(&["x509", "-noout", "-text", "-in", s(&cert)]).unwrap();
    for want in [
        "Version: 3",
        "Subject: CN = serviceB",
        "DNS:serviceB",
        "TLS Web Server Authentication, TLS Web Client Authentication",
        "ASN1 OID: prime256v1",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    // The key is the certificate's.
    let from_cert = openssl(&["x509", "-noout", "-pubkey", "-in", s(&cert)]).unwrap();
    let from_key = openssl(&["pkey", "-pubout", "-in", s(&out.join("key.pem"))]).unwrap();
    assert_eq!(from_cert, from_key);
}

#[test]
fn an_ip_name_becomes_an_ip_subject_alt_name() {
    let dir = Dir::new("ip");
    let (_, out) = ca_and_issue(&dir, "10.1.2.3");
    let Some(text) = openssl(&["x509", "-noout", "-text", "-in", s(&out.join("certificate.pem"))]) else { return };
    assert!(text.contains("IP Address:10.1.2.3"), "{text}");
    assert!(text.contains("Subject: CN = 10.1.2.3"), "{text}");
}

#[test]
fn existing_files_are_kept_unless_forced() {
    let dir = Dir::new("force");
    let (ca, out) = ca_and_issue(&dir, "serviceB");
    let ca_cert = std::fs::read(ca.join("cacertificate.pem")).unwrap();
    let cert = std::fs::read(out.join("certificate.pem")).unwrap();

    let refused = corelink(&["certs", "ca", "--out", s(&ca)]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("cacertificate.pem already exists") && err.contains("--force"), "{err}");
    assert_eq!(std::fs::read(ca.join("cacertificate.pem")).unwrap(), ca_cert);

    let refused = corelink(&["certs", "issue", "--ca", s(&ca), "--name", "serviceB", "--out", s(&out)]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("certificate.pem already exists"), "{err}");
    assert_eq!(std::fs::read(out.join("certificate.pem")).unwrap(), cert);

    ok(&["certs", "issue", "--ca", s(&ca), "--name", "serviceB", "--out", s(&out), "--force"]);
    assert_ne!(std::fs::read(out.join("certificate.pem")).unwrap(), cert);
    assert_eq!(mode(&out.join("key.pem")), 0o600);
    ok(&["certs", "ca", "--out", s(&ca), "--force", "--name", "second CA", "--days", "30"]);
    assert_ne!(std::fs::read(ca.join("cacertificate.pem")).unwrap(), ca_cert);
}

#[test]
fn bad_names_are_refused_before_anything_is_written() {
    let dir = Dir::new("badname");
    let ca = dir.join("ca");
    ok(&["certs", "ca", "--out", s(&ca)]);
    let out = dir.join("out");
    let r = corelink(&["certs", "issue", "--ca", s(&ca), "--name", "not a name", "--out", s(&out)]);
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("neither a DNS name nor an IP address"));
    let r = corelink(&["certs", "issue", "--ca", s(&ca), "--name", "b", "--out", s(&out), "--k8s-secret", "No_Good"]);
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("not a valid Kubernetes Secret name"));
    assert!(!out.exists());
}

#[test]
fn k8s_secret_holds_the_three_files() {
    let dir = Dir::new("secret");
    let (ca, out) = (dir.join("ca"), dir.join("out"));
    ok(&["certs", "ca", "--out", s(&ca)]);
    let yaml = ok(&["certs", "issue", "--ca", s(&ca), "--name", "serviceB", "--out", s(&out), "--k8s-secret", "certs"]);
    assert!(yaml.contains("apiVersion: v1\n"), "{yaml}");
    assert!(yaml.contains("kind: Secret\n"), "{yaml}");
    assert!(yaml.contains("type: Opaque\n"), "{yaml}");
    assert!(yaml.contains("  name: \"certs\"\n"), "{yaml}");
    for (key, file) in [
        ("cacertificate.pem", ca.join("cacertificate.pem")),
        ("certificate.pem", out.join("certificate.pem")),
        ("key.pem", out.join("key.pem")),
    ] {
        let prefix = format!("  {key}: ");
        let line = yaml.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("no {key} in {yaml}"));
        let decoded = base64_decode(&line[prefix.len()..]);
        assert_eq!(decoded, std::fs::read(&file).unwrap(), "{key}");
    }
}

/// Standard base64, padded; enough to read back the manifest.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c:?}"),
    };
    assert_eq!(text.len() % 4, 0, "padded");
    let mut out = Vec::new();
    for quad in text.as_bytes().chunks(4) {
        let pad = quad.iter().filter(|&&c| c == b'=').count();
        let mut n = 0u32;
        for &c in quad {
            n = (n << 6) | u32::from(if c == b'=' { 0 } else { value(c) });
        }
        out.extend_from_slice(&n.to_be_bytes()[1..4 - pad]);
    }
    out
}

fn server_config(dir: &Dir, cert: &Path, key: &Path, ca: &Path) -> PathBuf {
    let config = format!(
        "routers:\n- protocol: http\n  label: incoming\n  dtab: |\n    /svc => /$/inet/127.0.0.1/8080;\n  servers:\n  \
         - port: 4143\n    ip: 127.0.0.1\n    tls:\n      certPath: {}\n      keyPath: {}\n      caCertPath: {}\n",
        cert.display(),
        key.display(),
        ca.display()
    );
    let path = dir.join("config.yaml");
    std::fs::write(&path, config).unwrap();
    path
}

#[test]
fn check_reports_certificate_errors_with_router_and_key() {
    let dir = Dir::new("check");
    let (ca, out) = ca_and_issue(&dir, "serviceB");
    let other = dir.join("other");
    ok(&["certs", "issue", "--ca", s(&ca), "--name", "serviceC", "--out", s(&other)]);
    let ca_cert = ca.join("cacertificate.pem");

    let good = server_config(&dir, &out.join("certificate.pem"), &out.join("key.pem"), &ca_cert);
    let stdout = ok(&["check", "--config", s(&good)]);
    assert!(stdout.contains(": ok"), "{stdout}");

    let bad = server_config(&dir, &out.join("certificate.pem"), &other.join("key.pem"), &ca_cert);
    let r = corelink(&["check", "--config", s(&bad)]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success(), "{err}");
    // FILE:LINE:COL of the value that names the file, as decoding errors give.
    let at = format!("{}:11:16: error: router incoming: routers[0].servers[0].tls.keyPath:", bad.display());
    assert!(err.contains(&at), "{err}");
    assert!(err.contains("does not belong to the certificate"), "{err}");

    let missing = server_config(&dir, &out.join("certificate.pem"), &out.join("key.pem"), &dir.join("no-such-ca.pem"));
    let r = corelink(&["check", "--config", s(&missing)]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success(), "{err}");
    let at = format!("{}:12:19: error: router incoming: routers[0].servers[0].tls.caCertPath:", missing.display());
    assert!(err.contains(&at), "{err}");
}

/// A file the config names that cannot be opened is reported at the line
/// and column of the key that names it, as every other config error is.
#[test]
fn check_gives_file_errors_a_position() {
    let dir = Dir::new("check-file");
    let config = dir.join("config.yaml");
    let log = dir.join("no-such-dir").join("access.log");
    let text = format!(
        "routers:\n- protocol: http\n  httpAccessLog: {}\n  dtab: /svc => /$/inet/127.0.0.1/1;\n  servers:\n  - port: 4140\n",
        log.display()
    );
    std::fs::write(&config, text).unwrap();
    let r = corelink(&["check", "--config", s(&config)]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success(), "{err}");
    let at = format!("{}:3:18: routers[0].httpAccessLog: {}: No such file", config.display(), log.display());
    assert!(err.contains(&at), "{err}");
}
