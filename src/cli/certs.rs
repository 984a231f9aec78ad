//! Certificates for linker-to-linker TLS, made with rcgen (no openssl).
//!
//! The layout is the one the linkerd "Transparent TLS" write-up distributes
//! (and mounts at `/certificates`): a CA directory with `cacertificate.pem`
//! and `cakey.pem`, and per service `certificate.pem` and `key.pem`. Unlike
//! the write-up's openssl steps, the service certificates made here are
//! X.509 v3 with the name as a subjectAltName, which rustls/webpki requires,
//! and carry both serverAuth and clientAuth so the same pair serves mTLS.
//!
//! Keys are ECDSA P-256 in PKCS#8, written with mode 0600 from the moment the
//! file exists.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer, X509Certificate};

/// File names of the write-up's layout.
pub const CA_CERT_FILE: &str = "cacertificate.pem";
pub const CA_KEY_FILE: &str = "cakey.pem";
pub const CERT_FILE: &str = "certificate.pem";
pub const KEY_FILE: &str = "key.pem";

/// Defaults of `corelink certs ca` / `certs issue`.
pub const DEFAULT_CA_NAME: &str = "corelink demo CA";
pub const DEFAULT_CA_DAYS: u32 = 3650;
pub const DEFAULT_CERT_DAYS: u32 = 365;

/// Backdating of not_before: a peer whose clock is a little behind ours must
/// not see a freshly issued certificate as not yet valid.
const BACKDATE: Duration = Duration::hours(1);

#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    #[error("{} already exists (pass --force to overwrite it)", .0.display())]
    Exists(PathBuf),
    #[error("cannot create directory {}: {source}", path.display())]
    CreateDir { path: PathBuf, source: std::io::Error },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}: not a usable CA certificate: {reason}", path.display())]
    BadCaCert { path: PathBuf, reason: String },
    #[error("{}: not a usable private key: {reason}", path.display())]
    BadCaKey { path: PathBuf, reason: String },
    #[error("{} is not the key of {} (the CA certificate holds a different public key)", key.display(), cert.display())]
    CaKeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("the CA certificate expired on {0}: create a new CA (corelink certs ca) and reissue")]
    CaExpired(String),
    #[error("{0:?} is neither a DNS name nor an IP address; a peer can only be verified against one of those")]
    BadName(String),
    #[error("the CA common name must not be empty")]
    EmptyCommonName,
    #[error("{0:?} is not a valid Kubernetes Secret name (lower-case letters, digits, '-' and '.', at most 253)")]
    BadSecretName(String),
    #[error("validity of {0} days is out of range (1 to {MAX_DAYS})")]
    BadDays(u32),
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
}

/// What `create_ca` wrote.
#[derive(Debug, Clone)]
pub struct CaFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// What `issue` wrote, with the PEM texts (for a Kubernetes Secret).
#[derive(Debug, Clone)]
pub struct IssuedFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The PEM of the issuing CA certificate, which peers need to trust.
    pub ca_cert_pem: String,
    pub pem: Pem,
}

/// A certificate and its private key (PKCS#8), both PEM.
#[derive(Clone)]
pub struct Pem {
    pub cert: String,
    pub key: String,
}

impl std::fmt::Debug for Pem {
    /// Leaves the key out: Debug output ends up in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pem").field("cert", &self.cert).field("key", &"[elided]").finish()
    }
}

/// A CA that can sign certificates: its certificate and signing key.
pub struct CaHandle {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    not_after: OffsetDateTime,
}

impl std::fmt::Debug for CaHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaHandle").field("cert_pem", &self.cert_pem).finish_non_exhaustive()
    }
}

impl CaHandle {
    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A CA from its certificate and key PEM, checking that the key is the
    /// certificate's (or everything it signs would fail verification).
    /// `cert_path` and `key_path` only name the sources in errors.
    pub fn from_pem(cert_pem: &str, key_pem: &str, cert_path: &Path, key_path: &Path) -> Result<Self, CertsError> {
        let bad_cert = |reason: String| CertsError::BadCaCert { path: cert_path.to_owned(), reason };
        let der = rustls::pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| bad_cert(format!("no PEM certificate: {e}")))?;
        let (_, cert) = X509Certificate::from_der(&der).map_err(|e| bad_cert(e.to_string()))?;
        if !cert.is_ca() {
            return Err(bad_cert("it is not a CA (no basicConstraints CA:TRUE)".into()));
        }
        let key = KeyPair::from_pem(key_pem)
            .map_err(|e| CertsError::BadCaKey { path: key_path.to_owned(), reason: e.to_string() })?;
        if key.public_key_raw() != cert.public_key().subject_public_key.data.as_ref() {
            return Err(CertsError::CaKeyMismatch { cert: cert_path.to_owned(), key: key_path.to_owned() });
        }
        let not_after = cert.validity().not_after.to_datetime();
        let issuer = Issuer::from_ca_cert_der(&der, key).map_err(|e| bad_cert(e.to_string()))?;
        Ok(CaHandle { issuer, cert_pem: cert_pem.to_owned(), not_after })
    }
}

/// A certificate's validity window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

/// Upper bound on `days`: keeps not_after within X.509's year 9999 from any
/// plausible now.
pub const MAX_DAYS: u32 = 100 * 366;

impl Validity {
    /// From an hour ago (clock skew) until `days` from now.
    pub fn days_from_now(days: u32) -> Result<Self, CertsError> {
        if days == 0 || days > MAX_DAYS {
            return Err(CertsError::BadDays(days));
        }
        let now = OffsetDateTime::now_utc();
        Ok(Validity { not_before: now - BACKDATE, not_after: now + Duration::days(i64::from(days)) })
    }
}

/// A new self-signed CA (ECDSA P-256), valid for `DEFAULT_CA_DAYS`.
pub fn ca_in_memory(common_name: &str) -> Result<(Pem, CaHandle), CertsError> {
    ca_with_validity(common_name, Validity::days_from_now(DEFAULT_CA_DAYS)?)
}

/// A new self-signed CA valid over `validity`.
pub fn ca_with_validity(common_name: &str, validity: Validity) -> Result<(Pem, CaHandle), CertsError> {
    if common_name.trim().is_empty() {
        return Err(CertsError::EmptyCommonName);
    }
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(common_name);
    // Path length 0: this CA signs service certificates directly, never
    // intermediates, so a stolen service key cannot become a CA.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.not_before = validity.not_before;
    params.not_after = validity.not_after;
    let cert = params.self_signed(&key)?;
    let pem = Pem { cert: cert.pem(), key: key.serialize_pem() };
    let handle =
        CaHandle { issuer: Issuer::new(params, key), cert_pem: pem.cert.clone(), not_after: validity.not_after };
    Ok((pem, handle))
}

/// A certificate for `name`, signed by `ca`, valid for `DEFAULT_CERT_DAYS`.
pub fn issue_in_memory(ca: &CaHandle, name: &str) -> Result<Pem, CertsError> {
    issue_with_validity(ca, name, Validity::days_from_now(DEFAULT_CERT_DAYS)?)
}

/// A certificate for `name` over `validity`: `name` as subject CN and as
/// subjectAltName (IP or DNS), EKU serverAuth + clientAuth, X.509 v3, a new
/// ECDSA P-256 key.
pub fn issue_with_validity(ca: &CaHandle, name: &str, validity: Validity) -> Result<Pem, CertsError> {
    let san = san_for(name)?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(name);
    params.subject_alt_names = vec![san];
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    // The authority key identifier lets openssl and others pick the right CA
    // when several share a subject (e.g. after a CA rotation).
    params.use_authority_key_identifier_extension = true;
    params.not_before = validity.not_before;
    params.not_after = validity.not_after;
    let cert = params.signed_by(&key, &ca.issuer)?;
    Ok(Pem { cert: cert.pem(), key: key.serialize_pem() })
}

/// `name` as a subjectAltName: an IP address if it parses as one, else a
/// DNS name (validated as rustls will when it checks the peer).
fn san_for(name: &str) -> Result<SanType, CertsError> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    if rustls::pki_types::DnsName::try_from(name).is_err() {
        return Err(CertsError::BadName(name.to_owned()));
    }
    let ia5 = name.try_into().map_err(|_| CertsError::BadName(name.to_owned()))?;
    Ok(SanType::DnsName(ia5))
}

fn dn(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

/// Creates a CA in `out` (created if missing): `cacertificate.pem` and
/// `cakey.pem` (0600). Existing files are kept unless `force`.
pub fn create_ca(out: &Path, common_name: &str, days: u32, force: bool) -> Result<CaFiles, CertsError> {
    let (pem, _) = ca_with_validity(common_name, Validity::days_from_now(days)?)?;
    let files = CaFiles { cert: out.join(CA_CERT_FILE), key: out.join(CA_KEY_FILE) };
    write_pair(out, (&files.cert, &pem.cert), (&files.key, &pem.key), force)?;
    Ok(files)
}

/// Issues a certificate for `name` with the CA in `ca_dir`, written to `out`
/// (created if missing) as `certificate.pem` and `key.pem` (0600).
pub fn issue(ca_dir: &Path, name: &str, out: &Path, days: u32, force: bool) -> Result<IssuedFiles, CertsError> {
    let validity = Validity::days_from_now(days)?;
    let ca = load_ca(ca_dir)?;
    if ca.not_after < OffsetDateTime::now_utc() {
        return Err(CertsError::CaExpired(ca.not_after.date().to_string()));
    }
    let pem = issue_with_validity(&ca, name, validity)?;
    let cert = out.join(CERT_FILE);
    let key = out.join(KEY_FILE);
    write_pair(out, (&cert, &pem.cert), (&key, &pem.key), force)?;
    Ok(IssuedFiles { cert, key, ca_cert_pem: ca.cert_pem, pem })
}

/// The CA written by `create_ca`, or by openssl as in the write-up (RSA or
/// EC keys, PKCS#8, PKCS#1 or SEC1).
pub fn load_ca(ca_dir: &Path) -> Result<CaHandle, CertsError> {
    let cert_path = ca_dir.join(CA_CERT_FILE);
    let key_path = ca_dir.join(CA_KEY_FILE);
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|source| CertsError::Read { path: path.to_owned(), source })
    };
    CaHandle::from_pem(&read(&cert_path)?, &read(&key_path)?, &cert_path, &key_path)
}

/// Writes a certificate (0644) and its key (0600) into `dir`. Both targets
/// are checked before either is written, so a refusal leaves nothing half
/// done.
fn write_pair(dir: &Path, cert: (&Path, &str), key: (&Path, &str), force: bool) -> Result<(), CertsError> {
    std::fs::create_dir_all(dir).map_err(|source| CertsError::CreateDir { path: dir.to_owned(), source })?;
    if !force {
        for path in [cert.0, key.0] {
            if path.symlink_metadata().is_ok() {
                return Err(CertsError::Exists(path.to_owned()));
            }
        }
    }
    write_file(cert.0, cert.1.as_bytes(), 0o644, force)?;
    write_file(key.0, key.1.as_bytes(), 0o600, force)
}

/// Writes `path` with `mode` set at creation, so a key is never readable by
/// others, not even for a moment. Without `force`, `create_new` refuses an
/// existing file atomically. With `force`, the content goes to a fresh
/// temporary file renamed over the target: the target's old (possibly
/// wider) mode is not inherited and a reader never sees a partial file.
fn write_file(path: &Path, contents: &[u8], mode: u32, force: bool) -> Result<(), CertsError> {
    let write_err = |source| CertsError::Write { path: path.to_owned(), source };
    if !force {
        let mut file = OpenOptions::new().write(true).create_new(true).mode(mode).open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                CertsError::Exists(path.to_owned())
            } else {
                write_err(e)
            }
        })?;
        return file.write_all(contents).and_then(|()| file.sync_all()).map_err(|e| {
            let _ = std::fs::remove_file(path);
            write_err(e)
        });
    }
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.tmp-{}", std::process::id()));
    // A leftover from a crashed run of this same pid would make create_new
    // fail; it is ours to remove.
    let _ = std::fs::remove_file(&tmp);
    let result = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .and_then(|mut file| file.write_all(contents).and_then(|()| file.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, path));
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        write_err(e)
    })
}

/// Whether `name` is a valid Kubernetes object name (an RFC 1123 DNS
/// subdomain), checked before anything is written.
pub fn check_k8s_secret_name(name: &str) -> Result<(), CertsError> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(CertsError::BadSecretName(name.to_owned()));
    }
    Ok(())
}

/// A Kubernetes Secret holding the three files under the names the linkerd
/// write-up mounts at `/certificates` (`cacertificate.pem`,
/// `certificate.pem`, `key.pem`). `name`, the service the certificate is
/// for, goes into an annotation.
pub fn k8s_secret(name: &str, secret_name: &str, ca_cert_pem: &str, cert_pem: &str, key_pem: &str) -> String {
    format!(
        "apiVersion: v1\n\
         kind: Secret\n\
         metadata:\n  name: {}\n  annotations:\n    corelink/issued-for: {}\n\
         type: Opaque\n\
         data:\n  {CA_CERT_FILE}: {}\n  {CERT_FILE}: {}\n  {KEY_FILE}: {}\n",
        yaml_string(secret_name),
        yaml_string(name),
        base64(ca_cert_pem.as_bytes()),
        base64(cert_pem.as_bytes()),
        base64(key_pem.as_bytes()),
    )
}

/// A YAML double-quoted scalar (JSON escaping is valid YAML), so any name
/// stays one string whatever characters it holds.
fn yaml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Standard base64 (RFC 4648 §4, padded), as Kubernetes `data` expects.
pub fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let sextet = |shift: u32| char::from(ALPHABET[((n >> shift) & 0x3f) as usize]);
        out.push(sextet(18));
        out.push(sextet(12));
        out.push(if chunk.len() > 1 { sextet(6) } else { '=' });
        out.push(if chunk.len() > 2 { sextet(0) } else { '=' });
    }
    out
}

/// `corelink certs ca`. What was written goes to stderr, so that stdout
/// carries only the Secret manifest of `certs issue` (for `| kubectl apply -f -`).
pub fn ca_command(out: &Path, name: &str, days: u32, force: bool) -> anyhow::Result<()> {
    use anyhow::Context;
    let files = create_ca(out, name, days, force).context("corelink certs ca")?;
    eprintln!("wrote {} (the CA certificate peers trust: caCertPath, trustCerts)", files.cert.display());
    eprintln!("wrote {} (the CA key, mode 0600: keep it off the proxies' machines)", files.key.display());
    Ok(())
}

/// `corelink certs issue`; with `secret_name`, the Secret manifest on stdout.
pub fn issue_command(
    ca: &Path,
    name: &str,
    out: &Path,
    days: u32,
    force: bool,
    secret_name: Option<&str>,
) -> anyhow::Result<()> {
    use anyhow::Context;
    // Checked first, so a bad name does not leave files behind.
    if let Some(secret) = secret_name {
        check_k8s_secret_name(secret).context("--k8s-secret")?;
    }
    let files = issue(ca, name, out, days, force).with_context(|| format!("corelink certs issue --name {name}"))?;
    eprintln!("wrote {} (certificate for {name}: certPath)", files.cert.display());
    eprintln!("wrote {} (its key, mode 0600: keyPath)", files.key.display());
    if let Some(secret) = secret_name {
        print!("{}", k8s_secret(name, secret, &files.ca_cert_pem, &files.pem.cert, &files.pem.key));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("corelink-certs-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        let cases: [(&str, &str); 7] = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (input, want) in cases {
            assert_eq!(base64(input.as_bytes()), want, "{input:?}");
        }
        assert_eq!(base64(&[0xfb, 0xff, 0xbf]), "+/+/");
    }

    #[test]
    fn issued_certificate_has_cn_san_eku_and_v3() {
        let (_, ca) = ca_in_memory("test CA").unwrap();
        for (name, ip) in [("serviceB", false), ("10.0.0.7", true), ("b.ns.svc.cluster.local", false)] {
            let pem = issue_in_memory(&ca, name).unwrap();
            let der = rustls::pki_types::CertificateDer::from_pem_slice(pem.cert.as_bytes()).unwrap();
            let (_, cert) = X509Certificate::from_der(&der).unwrap();
            assert_eq!(cert.version(), x509_parser::x509::X509Version::V3);
            assert_eq!(cert.subject().iter_common_name().next().unwrap().as_str().unwrap(), name);
            let san = cert.subject_alternative_name().unwrap().unwrap();
            let got = format!("{:?}", san.value.general_names);
            assert!(
                if ip { got.contains("IPAddress") } else { got.contains(&format!("DNSName(\"{name}\")")) },
                "{got}"
            );
            let eku = cert.extended_key_usage().unwrap().unwrap().value;
            assert!(eku.server_auth && eku.client_auth);
            assert!(!cert.is_ca());
            assert!(pem.key.starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8");
        }
    }

    #[test]
    fn issued_certificate_verifies_with_webpki_for_its_name() {
        use rustls::client::danger::ServerCertVerifier;
        let (ca_pem, ca) = ca_in_memory("test CA").unwrap();
        let pem = issue_in_memory(&ca, "serviceB").unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(rustls::pki_types::CertificateDer::from_pem_slice(ca_pem.cert.as_bytes()).unwrap()).unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            crate::tls::provider(),
        )
        .build()
        .unwrap();
        let leaf = rustls::pki_types::CertificateDer::from_pem_slice(pem.cert.as_bytes()).unwrap();
        let now = rustls::pki_types::UnixTime::now();
        let name = rustls::pki_types::ServerName::try_from("serviceB").unwrap();
        verifier.verify_server_cert(&leaf, &[], &name, &[], now).unwrap();
        let other = rustls::pki_types::ServerName::try_from("serviceC").unwrap();
        assert!(verifier.verify_server_cert(&leaf, &[], &other, &[], now).is_err());
    }

    #[test]
    fn names_that_are_neither_dns_nor_ip_are_refused() {
        let (_, ca) = ca_in_memory("test CA").unwrap();
        for bad in ["", "has space", "*.wild", "a..b", "ünï"] {
            let e = issue_in_memory(&ca, bad).unwrap_err();
            assert!(matches!(e, CertsError::BadName(_)), "{bad:?}: {e}");
        }
    }

    #[test]
    fn files_are_written_with_modes_and_not_overwritten_without_force() {
        let dir = temp_dir("files");
        let ca_dir = dir.join("ca");
        let ca = create_ca(&ca_dir, DEFAULT_CA_NAME, 30, false).unwrap();
        assert_eq!(std::fs::metadata(&ca.key).unwrap().permissions().mode() & 0o777, 0o600);
        let e = create_ca(&ca_dir, DEFAULT_CA_NAME, 30, false).unwrap_err();
        assert!(matches!(&e, CertsError::Exists(p) if p == &ca.cert), "{e}");

        let out = dir.join("b");
        let issued = issue(&ca_dir, "serviceB", &out, 10, false).unwrap();
        assert_eq!(std::fs::metadata(&issued.key).unwrap().permissions().mode() & 0o777, 0o600);
        let before = std::fs::read_to_string(&issued.cert).unwrap();
        assert!(matches!(issue(&ca_dir, "serviceB", &out, 10, false), Err(CertsError::Exists(_))));
        assert_eq!(std::fs::read_to_string(&issued.cert).unwrap(), before, "refusal leaves the file alone");

        // --force replaces a key that had been made world-readable with a
        // fresh 0600 file.
        std::fs::set_permissions(&issued.key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let again = issue(&ca_dir, "serviceB", &out, 10, true).unwrap();
        assert_ne!(std::fs::read_to_string(&again.cert).unwrap(), before);
        assert_eq!(std::fs::metadata(&again.key).unwrap().permissions().mode() & 0o777, 0o600);
        let leftovers: Vec<_> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers.len(), 2, "{leftovers:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_ca_key_that_does_not_match_is_refused() {
        let dir = temp_dir("mismatch");
        create_ca(&dir, "one", 30, false).unwrap();
        let (other, _) = ca_in_memory("two").unwrap();
        std::fs::write(dir.join(CA_KEY_FILE), other.key).unwrap();
        let e = issue(&dir, "serviceB", &dir.join("b"), 10, false).unwrap_err();
        assert!(matches!(e, CertsError::CaKeyMismatch { .. }), "{e}");
        // A leaf certificate is not a CA.
        let (ca_pem, ca) = ca_in_memory("three").unwrap();
        let leaf = issue_in_memory(&ca, "leaf").unwrap();
        let e = CaHandle::from_pem(&leaf.cert, &leaf.key, Path::new("c"), Path::new("k")).unwrap_err();
        assert!(e.to_string().contains("not a CA"), "{e}");
        assert!(CaHandle::from_pem(&ca_pem.cert, &ca_pem.key, Path::new("c"), Path::new("k")).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn days_out_of_range_are_refused() {
        assert!(matches!(Validity::days_from_now(0), Err(CertsError::BadDays(0))));
        assert!(matches!(Validity::days_from_now(u32::MAX), Err(CertsError::BadDays(_))));
        let v = Validity::days_from_now(MAX_DAYS).unwrap();
        assert!(v.not_after.year() <= 9999);
    }

    #[test]
    fn secret_manifest_carries_the_three_files() {
        let yaml = k8s_secret("serviceB", "certificates", "CA", "CERT", "KEY");
        assert!(yaml.starts_with("apiVersion: v1\nkind: Secret\n"), "{yaml}");
        assert!(yaml.contains("  name: \"certificates\"\n"), "{yaml}");
        assert!(yaml.contains("type: Opaque\n"), "{yaml}");
        assert!(yaml.contains(&format!("  cacertificate.pem: {}\n", base64(b"CA"))), "{yaml}");
        assert!(yaml.contains(&format!("  certificate.pem: {}\n", base64(b"CERT"))), "{yaml}");
        assert!(yaml.contains(&format!("  key.pem: {}\n", base64(b"KEY"))), "{yaml}");
        assert!(k8s_secret("a\"b\n", "s", "", "", "").contains("issued-for: \"a\\\"b\\u000a\""));
        assert!(check_k8s_secret_name("certificates").is_ok());
        assert!(check_k8s_secret_name("b-certs.v1").is_ok());
        for bad in ["", "Certs", "-a", "a-", "a..b", "a_b"] {
            assert!(check_k8s_secret_name(bad).is_err(), "{bad:?}");
        }
    }
}
