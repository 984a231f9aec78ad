//! How corelink checks a peer's certificate.
//!
//! [`NameVerifier`]: webpki checks the chain, validity, key usage and the
//! subjectAltNames; when webpki finds the name missing, and only then, a
//! certificate with no subjectAltName at all is accepted if its subject CN is
//! the name. That is the RFC 6125 rule (a certificate with SANs is judged by
//! them alone) and what the linkerd write-up's openssl certificates need:
//! they carry the service name only as CN, and rustls-webpki never reads CNs.
//!
//! [`NoValidation`]: `noValidation` / `disableValidation`. The handshake's
//! signatures are still checked (the peer holds the key of the certificate it
//! sent) but the certificate itself is not.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, RootCertStore, SignatureScheme};
use x509_parser::prelude::{FromDer, X509Certificate};

#[derive(Debug)]
pub struct NameVerifier {
    webpki: Arc<WebPkiServerVerifier>,
}

impl NameVerifier {
    pub fn new(roots: RootCertStore, provider: Arc<CryptoProvider>) -> Result<Self, String> {
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| format!("cannot build a certificate verifier: {e}"))?;
        Ok(NameVerifier { webpki })
    }
}

/// The subject's commonName, only for a certificate with no subjectAltName
/// extension at all (RFC 6125 §6.4.4: with SANs, the CN is not consulted),
/// and only when there is exactly one CN: with several, which one names the
/// peer is ambiguous, so none does. Never panics on arbitrary bytes (fuzzed).
pub fn subject_cn_without_san(cert_der: &[u8]) -> Option<String> {
    let (rest, cert) = X509Certificate::from_der(cert_der).ok()?;
    if !rest.is_empty() {
        return None;
    }
    let has_san = cert.extensions().iter().any(|e| e.oid == x509_parser::oid_registry::OID_X509_EXT_SUBJECT_ALT_NAME);
    if has_san {
        return None;
    }
    let mut cns = cert.subject().iter_common_name();
    let cn = cns.next()?;
    if cns.next().is_some() {
        return None;
    }
    cn.as_str().ok().map(str::to_owned)
}

/// The CN fallback: `cert` has no subjectAltName and its subject CN is `name`.
pub fn cn_matches(cert: &CertificateDer<'_>, name: &ServerName<'_>) -> bool {
    let Some(cn) = subject_cn_without_san(cert) else { return false };
    match name {
        // A trailing dot (an absolute DNS name) does not change the name.
        ServerName::DnsName(dns) => {
            let absolute = |s: &str| s.strip_suffix('.').unwrap_or(s).to_owned();
            absolute(&cn).eq_ignore_ascii_case(&absolute(dns.as_ref()))
        }
        ServerName::IpAddress(ip) => cn.parse::<std::net::IpAddr>().is_ok_and(|c| c == std::net::IpAddr::from(*ip)),
        _ => false,
    }
}

impl ServerCertVerifier for NameVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        match self.webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            // webpki checks the name last, so a name error means the chain,
            // validity and usage were all fine.
            Err(Error::InvalidCertificate(
                e @ (CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }),
            )) => {
                if cn_matches(end_entity, server_name) {
                    Ok(ServerCertVerified::assertion())
                } else {
                    Err(Error::InvalidCertificate(e))
                }
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

#[derive(Debug)]
pub struct NoValidation {
    provider: Arc<CryptoProvider>,
}

impl NoValidation {
    pub fn new(provider: Arc<CryptoProvider>) -> Self {
        NoValidation { provider }
    }
}

impl ServerCertVerifier for NoValidation {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// A short, stable label for a handshake failure (metrics).
pub fn reason_label(e: &Error) -> &'static str {
    match e {
        Error::InvalidCertificate(c) => match c {
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => "name_mismatch",
            CertificateError::UnknownIssuer => "unknown_ca",
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => "expired",
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => "not_yet_valid",
            _ => "bad_certificate",
        },
        Error::InvalidMessage(_) => "not_tls",
        Error::AlertReceived(_) => "refused_by_peer",
        Error::NoCertificatesPresented => "no_certificate",
        _ => "other",
    }
}

/// One line for an `l5d-err` header and the logs: which check failed.
pub fn describe(e: &Error, name: &str) -> String {
    match e {
        Error::InvalidCertificate(c) => match c {
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!("peer certificate is not valid for {name}")
            }
            CertificateError::UnknownIssuer => "peer certificate is signed by an unknown CA".into(),
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "peer certificate has expired".into()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "peer certificate is not valid yet".into()
            }
            CertificateError::BadEncoding => {
                "peer certificate is malformed (an X.509 v1 certificate cannot be used: reissue it as v3)".into()
            }
            other => format!("peer certificate rejected: {other:?}"),
        },
        Error::InvalidMessage(_) => "the peer does not speak TLS (is it a plaintext port?)".into(),
        Error::AlertReceived(alert) => format!("the peer refused the TLS handshake ({alert:?})"),
        Error::NoCertificatesPresented => "the peer presented no certificate".into(),
        other => format!("TLS failed: {other}"),
    }
}
