//! rustls client configuration (default aws-lc-rs provider).

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::cli::TlsOptions;

/// Bundles tried when neither --cacert nor --insecure is given.
const SYSTEM_BUNDLES: &[&str] =
    &["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"];

/// Build the client config and the server name to present.
pub fn client_config(opts: &TlsOptions) -> Result<(Arc<ClientConfig>, ServerName<'static>)> {
    let server_name =
        ServerName::try_from(opts.sni.clone()).with_context(|| format!("invalid TLS server name {:?}", opts.sni))?;
    let builder = ClientConfig::builder();
    let mut config = if opts.insecure {
        let provider = builder.crypto_provider().clone();
        builder.dangerous().with_custom_certificate_verifier(Arc::new(NoVerification(provider))).with_no_client_auth()
    } else {
        let path = match &opts.cacert {
            Some(p) => p.clone(),
            None => match SYSTEM_BUNDLES.iter().find(|p| std::path::Path::new(p).exists()) {
                Some(p) => p.into(),
                None => bail!("no CA bundle found: give --cacert FILE or --insecure"),
            },
        };
        let mut roots = RootCertStore::empty();
        let mut n = 0;
        for cert in CertificateDer::pem_file_iter(&path).with_context(|| format!("reading {}", path.display()))? {
            let cert = cert.with_context(|| format!("parsing {}", path.display()))?;
            roots.add(cert).with_context(|| format!("adding a CA certificate from {}", path.display()))?;
            n += 1;
        }
        if n == 0 {
            bail!("{} holds no PEM certificate", path.display());
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    if !opts.resume {
        config.resumption = rustls::client::Resumption::disabled();
    }
    Ok((Arc::new(config), server_name))
}

/// Accepts any certificate; still checks handshake signatures so the session is sound.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
