//! Reading PEM certificates and keys from disk, with errors that name the
//! file and say what was wrong with it.

use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum PemError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}: no PEM certificate (-----BEGIN CERTIFICATE-----) found", .0.display())]
    NoCertificate(PathBuf),
    #[error("{}: invalid PEM: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
    #[error(
        "{}: no private key found (expected a PKCS#8 `BEGIN PRIVATE KEY`, PKCS#1 `BEGIN RSA PRIVATE KEY` or SEC1 `BEGIN EC PRIVATE KEY` block)",
        .0.display()
    )]
    NoKey(PathBuf),
}

fn read(path: &Path) -> Result<Vec<u8>, PemError> {
    std::fs::read(path).map_err(|source| PemError::Read { path: path.to_owned(), source })
}

/// Every certificate in a PEM file, in file order (a chain: leaf first).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, PemError> {
    parse_certs(path, &read(path)?)
}

/// Every certificate in `bytes`, read from `path` (named in errors).
pub fn parse_certs(path: &Path, bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let certs = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PemError::Invalid { path: path.to_owned(), reason: e.to_string() })?;
    if certs.is_empty() {
        return Err(PemError::NoCertificate(path.to_owned()));
    }
    Ok(certs)
}

/// The first private key in a PEM file: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, PemError> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => PemError::NoKey(path.to_owned()),
        other => PemError::Invalid { path: path.to_owned(), reason: other.to_string() },
    })
}

/// A root store from the bytes of one CA file read from `path` (several
/// certificates allowed). Parsing the bytes the caller holds, rather than
/// reading the file again, keeps what it compares (a server's ticket policy)
/// and what it trusts the same even while the file is being replaced.
pub fn parse_roots(path: &Path, bytes: &[u8]) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in parse_certs(path, bytes).map_err(|e| e.to_string())? {
        roots.add(cert).map_err(|e| format!("{}: not usable as a trust anchor: {e}", path.display()))?;
    }
    Ok(roots)
}

/// A root store from CA files (each may hold several certificates); with no
/// files, the system's roots.
pub fn load_roots(paths: &[String]) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    if paths.is_empty() {
        let found = rustls_native_certs::load_native_certs();
        let (added, _ignored) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            return Err("no CA certificates configured and none found in the system's trust store".into());
        }
        return Ok(roots);
    }
    for path in paths {
        let path = Path::new(path);
        for cert in load_certs(path).map_err(|e| e.to_string())? {
            roots.add(cert).map_err(|e| format!("{}: not usable as a trust anchor: {e}", path.display()))?;
        }
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_empty_files_are_named() {
        let dir = std::env::temp_dir().join(format!("corelink-pem-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "hello\n").unwrap();
        let e = load_certs(&empty).unwrap_err().to_string();
        assert!(e.contains("empty.pem") && e.contains("no PEM certificate"), "{e}");
        let e = load_key(&empty).unwrap_err().to_string();
        assert!(e.contains("no private key"), "{e}");
        let e = load_certs(&dir.join("absent.pem")).unwrap_err().to_string();
        assert!(e.contains("cannot read") && e.contains("absent.pem"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
