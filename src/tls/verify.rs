//! How corelink checks a peer's certificate.
//!
//! [`NameVerifier`]: webpki checks the chain, validity, key usage and the
//! subjectAltNames; when webpki finds the name missing, and only then, a
//! certificate with no subjectAltName at all is accepted if its subject CN is
//! the name. That is the RFC 6125 rule (a certificate with SANs is judged by
//! them alone) and what the linkerd write-up's openssl certificates need:
//! they carry the service name only as CN, and rustls-webpki never reads CNs.
//! webpki checks name constraints against subjectAltNames only, so the
//! fallback is refused whenever a name constraint could apply: a trust
//! anchor that carries one, or an intermediate the peer sent that does
//! (otherwise a CA constrained to `.team-a.internal` could issue a CN-only
//! certificate for any service).
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
    /// Some trust anchor carries name constraints: no CN fallback at all
    /// (which anchor webpki chained to is not known here).
    roots_constrained: bool,
}

impl NameVerifier {
    pub fn new(roots: RootCertStore, provider: Arc<CryptoProvider>) -> Result<Self, String> {
        let roots_constrained = roots.roots.iter().any(|anchor| anchor.name_constraints.is_some());
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| format!("cannot build a certificate verifier: {e}"))?;
        Ok(NameVerifier { webpki, roots_constrained })
    }

    /// Whether the CN fallback may judge a certificate that came with these
    /// intermediates: not when a name constraint could apply to it.
    fn cn_fallback_allowed(&self, intermediates: &[CertificateDer<'_>]) -> bool {
        !self.roots_constrained && !intermediates.iter().any(|cert| may_constrain_names(cert))
    }
}

/// Whether a CA certificate carries a nameConstraints extension; `true`
/// when it cannot be read either (webpki may have chained through it).
/// Never panics on arbitrary bytes.
pub fn may_constrain_names(cert_der: &[u8]) -> bool {
    match X509Certificate::from_der(cert_der) {
        Ok((_, cert)) => {
            cert.extensions().iter().any(|e| e.oid == x509_parser::oid_registry::OID_X509_EXT_NAME_CONSTRAINTS)
        }
        Err(_) => true,
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
                if self.cn_fallback_allowed(intermediates) && cn_matches(end_entity, server_name) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, GeneralSubtree, IsCa,
        Issuer, KeyPair, NameConstraints, SanType,
    };

    fn ca_params(cn: &str, permitted_dns: Option<&str>) -> CertificateParams {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.name_constraints = permitted_dns.map(|dns| NameConstraints {
            permitted_subtrees: vec![GeneralSubtree::DnsName(dns.into())],
            excluded_subtrees: vec![],
        });
        params
    }

    /// A CA certificate and its issuer: self-signed, or signed by `parent`.
    fn ca(
        cn: &str,
        permitted_dns: Option<&str>,
        parent: Option<&Issuer<'static, KeyPair>>,
    ) -> (Vec<u8>, Issuer<'static, KeyPair>) {
        let key = KeyPair::generate().unwrap();
        let params = ca_params(cn, permitted_dns);
        let cert = match parent {
            Some(parent) => params.signed_by(&key, parent).unwrap(),
            None => params.self_signed(&key).unwrap(),
        };
        (cert.der().to_vec(), Issuer::new(params, key))
    }

    /// A server certificate for CN `cn`, with `san` as its only
    /// subjectAltName if given (none at all otherwise).
    fn leaf(cn: &str, san: Option<&str>, issuer: &Issuer<'static, KeyPair>) -> Vec<u8> {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.subject_alt_names = san.map(|s| SanType::DnsName(s.try_into().unwrap())).into_iter().collect();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.signed_by(&key, issuer).unwrap().der().to_vec()
    }

    fn verify(root: &[u8], intermediates: &[&[u8]], leaf: &[u8], name: &str) -> Result<ServerCertVerified, Error> {
        let mut roots = RootCertStore::empty();
        roots.add(CertificateDer::from(root.to_vec())).unwrap();
        let verifier = NameVerifier::new(roots, Arc::new(rustls::crypto::aws_lc_rs::default_provider())).unwrap();
        let intermediates: Vec<CertificateDer<'_>> = intermediates.iter().map(|c| CertificateDer::from(*c)).collect();
        let name = ServerName::try_from(name.to_owned()).unwrap();
        verifier.verify_server_cert(&CertificateDer::from(leaf), &intermediates, &name, &[], UnixTime::now())
    }

    fn refused_for_name(result: Result<ServerCertVerified, Error>) -> bool {
        matches!(
            result,
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
            ))
        )
    }

    #[test]
    fn a_cn_only_certificate_is_accepted_through_an_unconstrained_chain() {
        let (root, root_issuer) = ca("root", None, None);
        let (inter, inter_issuer) = ca("intermediate", None, Some(&root_issuer));
        assert!(verify(&root, &[&inter], &leaf("serviceB", None, &inter_issuer), "serviceB").is_ok());
        assert!(verify(&root, &[], &leaf("serviceB", None, &root_issuer), "serviceB").is_ok());
        assert!(refused_for_name(verify(&root, &[], &leaf("serviceB", None, &root_issuer), "serviceC")));
    }

    #[test]
    fn a_name_constrained_intermediate_cannot_vouch_for_a_name_by_cn() {
        let (root, root_issuer) = ca("root", None, None);
        let (inter, inter_issuer) = ca("team A", Some("team-a.internal"), Some(&root_issuer));
        // Outside its constraint by CN alone: refused, as webpki refuses
        // the same name as a subjectAltName.
        assert!(refused_for_name(verify(&root, &[&inter], &leaf("serviceB", None, &inter_issuer), "serviceB")));
        assert!(verify(&root, &[&inter], &leaf("serviceB", Some("serviceB"), &inter_issuer), "serviceB").is_err());
        // Inside it, a subjectAltName still works; a CN alone does not
        // (whether a constraint applies is not checked for CNs at all).
        let inside = "web.team-a.internal";
        assert!(verify(&root, &[&inter], &leaf(inside, Some(inside), &inter_issuer), inside).is_ok());
        assert!(refused_for_name(verify(&root, &[&inter], &leaf(inside, None, &inter_issuer), inside)));
    }

    #[test]
    fn a_name_constrained_trust_anchor_turns_the_cn_fallback_off() {
        let (root, root_issuer) = ca("team A root", Some("team-a.internal"), None);
        assert!(refused_for_name(verify(&root, &[], &leaf("serviceB", None, &root_issuer), "serviceB")));
    }

    #[test]
    fn reading_name_constraints_never_panics_on_damaged_input() {
        let (_, root_issuer) = ca("root", None, None);
        let (inter, _) = ca("team A", Some("team-a.internal"), Some(&root_issuer));
        assert!(may_constrain_names(&inter));
        let (plain, _) = ca("plain", None, Some(&root_issuer));
        assert!(!may_constrain_names(&plain));
        for len in 0..plain.len() {
            let _ = may_constrain_names(&plain[..len]);
        }
        assert!(may_constrain_names(b"not a certificate"), "unreadable counts as constrained");
    }
}
