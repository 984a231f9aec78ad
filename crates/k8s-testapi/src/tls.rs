//! The HTTPS side: a rustls server configuration from PEM text, with the
//! same provider corelink uses (aws-lc-rs) and ALPN `http/1.1` only.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::fmt;
use std::sync::Arc;

/// Why `ApiServer::try_start_tls` could not set up TLS.
#[derive(Debug)]
pub enum TlsSetupError {
    /// The certificate chain PEM holds no certificate, or a broken one.
    Certificates(String),
    /// The key PEM holds no usable private key.
    PrivateKey(String),
    /// rustls refused the configuration (e.g. the key does not match).
    Rustls(rustls::Error),
}

impl fmt::Display for TlsSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsSetupError::Certificates(why) => write!(f, "bad certificate chain: {why}"),
            TlsSetupError::PrivateKey(why) => write!(f, "bad private key: {why}"),
            TlsSetupError::Rustls(error) => write!(f, "rustls refused the configuration: {error}"),
        }
    }
}

impl std::error::Error for TlsSetupError {}

pub(crate) fn server_config(cert_chain_pem: &str, key_pem: &str) -> Result<Arc<rustls::ServerConfig>, TlsSetupError> {
    let certificates = CertificateDer::pem_slice_iter(cert_chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| TlsSetupError::Certificates(error.to_string()))?;
    if certificates.is_empty() {
        return Err(TlsSetupError::Certificates("no CERTIFICATE block".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|error| TlsSetupError::PrivateKey(error.to_string()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsSetupError::Rustls)?
        .with_no_client_auth()
        .with_single_cert(certificates, key)
        .map_err(TlsSetupError::Rustls)?;
    // The apiserver also offers h2; this server speaks HTTP/1.1 only, so a
    // client must be able to use it (kube's hyper client and curl both can).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
