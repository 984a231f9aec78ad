//! What `corelink check` reports about certificate files.
//!
//! The findings are the mistakes that otherwise surface only as handshake
//! failures at run time, far from their cause: a key that is not the
//! certificate's, an expired or not-yet-valid certificate, and X.509 v1
//! certificates (what `openssl x509 -req` makes without `-extfile`, as in the
//! linkerd write-up), which rustls/webpki refuses as leaf or intermediate.

use std::fmt;
use std::path::{Path, PathBuf};

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::{SubjectPublicKeyInfo, X509Version};

use crate::tls::files::{load_certs, load_key, PemError};

/// Within this many days of notAfter, a certificate gets a warning.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Error,
}

/// What a file is for, which decides how serious a problem in it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileRole {
    /// A certificate presented to peers (a chain: leaf first).
    Certificate,
    /// The private key of that certificate.
    Key,
    /// Intermediate certificates sent after it.
    Intermediates,
    /// CA certificates peers are verified against (trust anchors).
    TrustAnchors,
}

/// One certificate within a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertId {
    /// Position in the file, from 0.
    pub index: usize,
    /// How many certificates the file holds.
    pub count: usize,
    /// The subject, e.g. `CN=serviceB`.
    pub subject: String,
    /// The subject's first commonName, if any.
    pub common_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The file cannot be read or holds no PEM item of the expected kind.
    Unreadable(String),
    /// A PEM certificate whose content is not a certificate.
    Malformed {
        index: usize,
        reason: String,
    },
    /// rustls cannot sign with this key.
    KeyUnsupported(String),
    /// The key is not the one of the certificate in `cert`.
    KeyMismatch {
        cert: PathBuf,
    },
    Expired {
        cert: CertId,
        not_after: OffsetDateTime,
    },
    ExpiresSoon {
        cert: CertId,
        not_after: OffsetDateTime,
        days_left: i64,
    },
    NotYetValid {
        cert: CertId,
        not_before: OffsetDateTime,
    },
    /// X.509 v1: no extensions, so no subjectAltName or basicConstraints.
    Version1 {
        cert: CertId,
    },
}

/// A problem found in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    pub role: FileRole,
    pub path: PathBuf,
    pub problem: Problem,
}

impl Finding {
    fn new(role: FileRole, path: &Path, problem: Problem) -> Self {
        let severity = match (&problem, role) {
            (Problem::ExpiresSoon { .. }, _) => Severity::Warning,
            // webpki accepts v1 trust anchors (it reads only their subject
            // and key), so only other stacks would object.
            (Problem::Version1 { .. }, FileRole::TrustAnchors) => Severity::Warning,
            _ => Severity::Error,
        };
        Finding { severity, role, path: path.to_owned(), problem }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Whether any finding is an error (`corelink check` then exits 1).
pub fn has_errors(findings: &[Finding]) -> bool {
    findings.iter().any(Finding::is_error)
}

impl fmt::Display for CertId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.count == 1 {
            write!(f, "certificate `{}`", self.subject)
        } else {
            write!(f, "certificate {} of {} (`{}`)", self.index + 1, self.count, self.subject)
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.path.display())?;
        let ca = self.role == FileRole::TrustAnchors;
        match &self.problem {
            Problem::Unreadable(reason) => write!(f, "{reason}"),
            Problem::Malformed { index, reason } => {
                write!(f, "PEM certificate {} is not a certificate: {reason}", index + 1)
            }
            Problem::KeyUnsupported(reason) => write!(f, "rustls cannot use this private key: {reason}"),
            Problem::KeyMismatch { cert } => write!(
                f,
                "this private key does not belong to the certificate in {} (their public keys differ); \
                 every handshake would fail",
                cert.display()
            ),
            Problem::Expired { cert, not_after } if ca => write!(
                f,
                "CA {cert} expired on {}: peers that check the CA's validity (linkerd, openssl) reject everything \
                 it signed; create a new CA (`corelink certs ca --out DIR`) and reissue",
                date(*not_after)
            ),
            Problem::Expired { cert, not_after } => {
                write!(f, "{cert} expired on {}: peers reject it; reissue it", date(*not_after))?;
                reissue_hint(f, cert)
            }
            Problem::ExpiresSoon { cert, not_after, days_left } => {
                let what = if ca { "CA " } else { "" };
                let unit = if *days_left == 1 { "day" } else { "days" };
                write!(f, "{what}{cert} expires on {} (in {days_left} {unit})", date(*not_after))
            }
            Problem::NotYetValid { cert, not_before } => write!(
                f,
                "{}{cert} is not valid until {}: check this machine's clock, or reissue it",
                if ca { "CA " } else { "" },
                date(*not_before)
            ),
            Problem::Version1 { cert } if ca => write!(
                f,
                "CA {cert} is an X.509 v1 certificate: corelink accepts it as a trust anchor, but it cannot carry \
                 basicConstraints and other TLS stacks may refuse it; prefer a v3 CA (`corelink certs ca --out DIR`, \
                 or `openssl req -x509`)"
            ),
            Problem::Version1 { cert } => {
                write!(f, "{cert} is an X.509 v1 certificate, which rustls/webpki cannot use (handshakes would fail)")?;
                reissue_hint(f, cert)
            }
        }
    }
}

/// How to make a v3 certificate for the same name.
fn reissue_hint(f: &mut fmt::Formatter<'_>, cert: &CertId) -> fmt::Result {
    let name = cert.common_name.as_deref().unwrap_or("NAME");
    write!(
        f,
        "; reissue it as X.509 v3 with `corelink certs issue --ca DIR --name {name} --out DIR`, or with openssl add \
         `-extfile FILE` holding `subjectAltName=DNS:{name}` to `openssl x509 -req`, which makes a v3 certificate"
    )
}

/// `2026-03-01 12:00 UTC`, without time's formatting feature.
fn date(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!("{:04}-{:02}-{:02} {:02}:{:02} UTC", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute())
}

/// A certificate file presented to peers (leaf first, then any chain) and
/// its key: readable, matching, valid at `now`, X.509 v3. Used for server
/// `certPath`/`keyPath` and client `clientAuth`.
pub fn inspect_cert_and_key(cert_path: &Path, key_path: &Path, now: OffsetDateTime) -> Vec<Finding> {
    let mut findings = Vec::new();
    let certs = read_certs(cert_path, FileRole::Certificate, &mut findings);
    let key = match load_key(key_path) {
        Ok(key) => Some(key),
        Err(e) => {
            findings.push(Finding::new(FileRole::Key, key_path, Problem::Unreadable(pem_reason(&e))));
            None
        }
    };
    if let Some(certs) = &certs {
        for (index, der) in certs.iter().enumerate() {
            // Past the leaf, the file's chain: judged as intermediates.
            let role = if index == 0 { FileRole::Certificate } else { FileRole::Intermediates };
            check_cert(der, index, certs.len(), role, cert_path, now, &mut findings);
        }
    }
    if let (Some(certs), Some(key)) = (&certs, &key) {
        if let Some(problem) = key_problem(&certs[0], key, cert_path) {
            findings.push(Finding::new(FileRole::Key, key_path, problem));
        }
    }
    findings
}

/// An `intermediateCertsPath` file: readable, valid at `now`, X.509 v3.
pub fn inspect_intermediates(path: &Path, now: OffsetDateTime) -> Vec<Finding> {
    inspect_cert_file(path, FileRole::Intermediates, now)
}

/// A CA file (`caCertPath`, `trustCerts`, `trustCertsBundle`): readable,
/// valid at `now`; v1 CAs get a warning.
pub fn inspect_trust_anchors(path: &Path, now: OffsetDateTime) -> Vec<Finding> {
    inspect_cert_file(path, FileRole::TrustAnchors, now)
}

fn inspect_cert_file(path: &Path, role: FileRole, now: OffsetDateTime) -> Vec<Finding> {
    let mut findings = Vec::new();
    if let Some(certs) = read_certs(path, role, &mut findings) {
        for (index, der) in certs.iter().enumerate() {
            check_cert(der, index, certs.len(), role, path, now, &mut findings);
        }
    }
    findings
}

fn read_certs(path: &Path, role: FileRole, findings: &mut Vec<Finding>) -> Option<Vec<CertificateDer<'static>>> {
    match load_certs(path) {
        Ok(certs) => Some(certs),
        Err(e) => {
            findings.push(Finding::new(role, path, Problem::Unreadable(pem_reason(&e))));
            None
        }
    }
}

/// The reason without the path, which the finding prints first anyway.
fn pem_reason(e: &PemError) -> String {
    match e {
        PemError::Read { source, .. } => format!("cannot read: {source}"),
        PemError::NoCertificate(_) => "no PEM certificate (-----BEGIN CERTIFICATE-----) found".into(),
        PemError::Invalid { reason, .. } => format!("invalid PEM: {reason}"),
        PemError::NoKey(_) => "no private key found (expected a PKCS#8 `BEGIN PRIVATE KEY`, PKCS#1 \
                               `BEGIN RSA PRIVATE KEY` or SEC1 `BEGIN EC PRIVATE KEY` block)"
            .into(),
    }
}

fn check_cert(
    der: &[u8],
    index: usize,
    count: usize,
    role: FileRole,
    path: &Path,
    now: OffsetDateTime,
    findings: &mut Vec<Finding>,
) {
    let cert = match X509Certificate::from_der(der) {
        Ok((_, cert)) => cert,
        Err(e) => {
            findings.push(Finding::new(role, path, Problem::Malformed { index, reason: e.to_string() }));
            return;
        }
    };
    let id = CertId {
        index,
        count,
        subject: cert.subject().to_string(),
        common_name: cert.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok()).map(str::to_owned),
    };
    let mut push = |problem| findings.push(Finding::new(role, path, problem));
    if cert.version() == X509Version::V1 {
        push(Problem::Version1 { cert: id.clone() });
    }
    let not_before = cert.validity().not_before.to_datetime();
    let not_after = cert.validity().not_after.to_datetime();
    if now < not_before {
        push(Problem::NotYetValid { cert: id.clone(), not_before });
    }
    if not_after < now {
        push(Problem::Expired { cert: id, not_after });
    } else {
        let days_left = (not_after - now).whole_days();
        if days_left < EXPIRY_WARNING_DAYS {
            push(Problem::ExpiresSoon { cert: id, not_after, days_left });
        }
    }
}

/// Whether `key` is the private half of `cert`'s public key. Only the key
/// bits are compared, not the whole SubjectPublicKeyInfo, so equivalent
/// encodings of the algorithm parameters do not count as a mismatch.
fn key_problem(cert: &[u8], key: &PrivateKeyDer<'_>, cert_path: &Path) -> Option<Problem> {
    let signing_key = match rustls::crypto::aws_lc_rs::sign::any_supported_type(key) {
        Ok(k) => k,
        Err(e) => return Some(Problem::KeyUnsupported(e.to_string())),
    };
    // An unparsable certificate was reported already; with no public key
    // from rustls there is nothing to compare.
    let (_, cert) = X509Certificate::from_der(cert).ok()?;
    let spki = signing_key.public_key()?;
    let (_, key_spki) = SubjectPublicKeyInfo::from_der(spki.as_ref()).ok()?;
    if key_spki.subject_public_key.data != cert.public_key().subject_public_key.data {
        return Some(Problem::KeyMismatch { cert: cert_path.to_owned() });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::certs::{self, Pem, Validity};
    use crate::tls::verify::subject_cn_without_san;
    use time::Duration;

    struct Dir(PathBuf);

    impl Dir {
        fn new(tag: &str) -> Dir {
            let dir = std::env::temp_dir().join(format!("corelink-inspect-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Dir(dir)
        }

        fn write(&self, name: &str, contents: &str) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, contents).unwrap();
            path
        }

        fn pair(&self, pem: &Pem) -> (PathBuf, PathBuf) {
            (self.write("cert.pem", &pem.cert), self.write("key.pem", &pem.key))
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn window(from_days: i64, to_days: i64) -> Validity {
        let now = OffsetDateTime::now_utc();
        Validity { not_before: now + Duration::days(from_days), not_after: now + Duration::days(to_days) }
    }

    fn only(findings: &[Finding]) -> &Finding {
        assert_eq!(findings.len(), 1, "{findings:#?}");
        &findings[0]
    }

    #[test]
    fn a_good_pair_has_no_findings() {
        let dir = Dir::new("good");
        let (_, ca) = certs::ca_in_memory("test CA").unwrap();
        let (cert, key) = dir.pair(&certs::issue_in_memory(&ca, "serviceB").unwrap());
        assert_eq!(inspect_cert_and_key(&cert, &key, OffsetDateTime::now_utc()), vec![]);
        let ca_file = dir.write("ca.pem", ca.cert_pem());
        assert_eq!(inspect_trust_anchors(&ca_file, OffsetDateTime::now_utc()), vec![]);
    }

    #[test]
    fn expired_soon_expiring_and_not_yet_valid() {
        let dir = Dir::new("validity");
        let (_, ca) = certs::ca_in_memory("test CA").unwrap();
        let now = OffsetDateTime::now_utc();

        let (cert, key) = dir.pair(&certs::issue_with_validity(&ca, "serviceB", window(-30, -1)).unwrap());
        let f = only(&inspect_cert_and_key(&cert, &key, now)).clone();
        assert!(matches!(f.problem, Problem::Expired { .. }) && f.is_error(), "{f:?}");
        let text = f.to_string();
        assert!(text.contains("expired on") && text.contains("--name serviceB"), "{text}");

        let (cert, key) = dir.pair(&certs::issue_with_validity(&ca, "serviceB", window(-1, 10)).unwrap());
        let f = only(&inspect_cert_and_key(&cert, &key, now)).clone();
        assert!(matches!(f.problem, Problem::ExpiresSoon { days_left: 9 | 10, .. }), "{f:?}");
        assert_eq!(f.severity, Severity::Warning);
        let expected_date = (now + Duration::days(10)).date();
        assert!(f.to_string().contains(&format!("expires on {expected_date}")), "{f}");

        let (cert, key) = dir.pair(&certs::issue_with_validity(&ca, "serviceB", window(2, 100)).unwrap());
        let f = only(&inspect_cert_and_key(&cert, &key, now)).clone();
        assert!(matches!(f.problem, Problem::NotYetValid { .. }) && f.is_error(), "{f:?}");
    }

    #[test]
    fn a_key_of_another_certificate_is_an_error() {
        let dir = Dir::new("mismatch");
        let (_, ca) = certs::ca_in_memory("test CA").unwrap();
        let a = certs::issue_in_memory(&ca, "serviceA").unwrap();
        let b = certs::issue_in_memory(&ca, "serviceB").unwrap();
        let cert = dir.write("a.pem", &a.cert);
        let key = dir.write("b.key", &b.key);
        let f = only(&inspect_cert_and_key(&cert, &key, OffsetDateTime::now_utc())).clone();
        assert_eq!(f.role, FileRole::Key);
        assert!(matches!(f.problem, Problem::KeyMismatch { .. }) && f.is_error(), "{f:?}");
        assert!(f.to_string().contains("does not belong"), "{f}");
    }

    #[test]
    fn unreadable_files_are_errors_naming_them() {
        let dir = Dir::new("unreadable");
        let garbage = dir.write("garbage.pem", "not pem\n");
        let missing = dir.0.join("missing.pem");
        let findings = inspect_cert_and_key(&garbage, &missing, OffsetDateTime::now_utc());
        assert_eq!(findings.len(), 2, "{findings:#?}");
        assert!(findings.iter().all(Finding::is_error));
        assert!(findings[0].to_string().contains("garbage.pem: no PEM certificate"), "{}", findings[0]);
        assert!(findings[1].to_string().contains("missing.pem: cannot read"), "{}", findings[1]);
        // Valid PEM around bytes that are no certificate.
        let bogus = dir.write("bogus.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
        let f = only(&inspect_trust_anchors(&bogus, OffsetDateTime::now_utc())).clone();
        assert!(matches!(f.problem, Problem::Malformed { index: 0, .. }), "{f:?}");
    }

    #[test]
    fn expired_ca_is_an_error_and_each_certificate_of_a_bundle_is_checked() {
        let dir = Dir::new("ca");
        let (old, _) = certs::ca_with_validity("old CA", window(-400, -5)).unwrap();
        let (good, _) = certs::ca_with_validity("good CA", window(-1, 1000)).unwrap();
        let bundle = dir.write("bundle.pem", &format!("{}{}", good.cert, old.cert));
        let f = only(&inspect_trust_anchors(&bundle, OffsetDateTime::now_utc())).clone();
        assert!(matches!(&f.problem, Problem::Expired { cert, .. } if cert.index == 1 && cert.count == 2), "{f:?}");
        assert!(f.is_error());
        assert!(f.to_string().contains("CA certificate 2 of 2 (`CN=old CA`) expired"), "{f}");
    }

    fn openssl(args: &[&str], dir: &Path) -> bool {
        match std::process::Command::new("openssl").args(args).current_dir(dir).output() {
            Ok(out) if out.status.success() => true,
            Ok(out) => panic!("openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr)),
            Err(_) => false,
        }
    }

    /// The linkerd write-up's steps: `openssl x509 -req` without `-extfile`
    /// makes an X.509 v1 certificate, which rustls cannot use; a v1 CA from
    /// the same steps is only a warning.
    #[test]
    fn v1_certificates_from_openssl() {
        let dir = Dir::new("v1");
        let d = dir.0.as_path();
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
        let ca =
            [&["req", "-x509"][..], &ec, &["-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=ca", "-days", "9"]];
        if !openssl(&ca.concat(), d) {
            eprintln!("notice: openssl is not on PATH; skipping the X.509 v1 test");
            return;
        }
        let csr = [&["req", "-new"][..], &ec, &["-keyout", "key.pem", "-out", "b.csr", "-subj", "/CN=serviceB"]];
        assert!(openssl(&csr.concat(), d));
        let sign = ["x509", "-req", "-in", "b.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial"];
        assert!(openssl(&[&sign[..], &["-out", "cert.pem", "-days", "90"]].concat(), d));
        let self_sign = ["x509", "-req", "-in", "b.csr", "-signkey", "key.pem", "-out", "ca-v1.pem", "-days", "90"];
        assert!(openssl(&self_sign, d));

        let now = OffsetDateTime::now_utc();
        let f = only(&inspect_cert_and_key(&d.join("cert.pem"), &d.join("key.pem"), now)).clone();
        assert!(matches!(f.problem, Problem::Version1 { .. }) && f.is_error(), "{f:?}");
        let text = f.to_string();
        assert!(text.contains("corelink certs issue --ca DIR --name serviceB --out DIR"), "{text}");
        assert!(text.contains("subjectAltName=DNS:serviceB") && text.contains("-extfile"), "{text}");
        // Its CN is what the verifier's fallback reads.
        let der = load_certs(&d.join("cert.pem")).unwrap().remove(0);
        assert_eq!(subject_cn_without_san(&der).as_deref(), Some("serviceB"));

        // `-signkey` self-signs the request: a v1 certificate used as a CA.
        let findings = inspect_trust_anchors(&d.join("ca-v1.pem"), now);
        let f = only(&findings);
        assert!(matches!(f.problem, Problem::Version1 { .. }) && f.severity == Severity::Warning, "{f:?}");
        assert!(!has_errors(&findings));
    }

    #[test]
    fn cn_only_without_san() {
        let (_, ca) = certs::ca_in_memory("test CA").unwrap();
        let with_san = certs::issue_in_memory(&ca, "serviceB").unwrap();
        let der = load_pem_cert(&with_san.cert);
        assert_eq!(subject_cn_without_san(&der), None, "a SAN hides the CN");

        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CommonName, "serviceB");
        let der = params.self_signed(&key).unwrap().der().to_vec();
        assert_eq!(subject_cn_without_san(&der).as_deref(), Some("serviceB"));

        let mut trailing = der.clone();
        trailing.push(0);
        assert_eq!(subject_cn_without_san(&trailing), None);
        params.distinguished_name.push(rcgen::DnType::OrganizationName, "x");
        params.distinguished_name.push(rcgen::DnType::CustomDnType(vec![2, 5, 4, 3]), "other");
        let two_cns = params.self_signed(&key).unwrap().der().to_vec();
        assert_eq!(subject_cn_without_san(&two_cns), None, "two CNs are ambiguous");
    }

    #[test]
    fn cn_reading_never_panics_on_damaged_input() {
        let (_, ca) = certs::ca_in_memory("test CA").unwrap();
        let der = load_pem_cert(ca.cert_pem());
        for len in 0..der.len() {
            assert_eq!(subject_cn_without_san(&der[..len]), None);
        }
        // Flip each byte in turn: any answer is fine, a panic is not.
        for i in 0..der.len() {
            let mut bad = der.clone();
            bad[i] ^= 0xff;
            let _ = subject_cn_without_san(&bad);
        }
    }

    fn load_pem_cert(pem: &str) -> Vec<u8> {
        use rustls::pki_types::pem::PemObject;
        CertificateDer::from_pem_slice(pem.as_bytes()).unwrap().to_vec()
    }
}
