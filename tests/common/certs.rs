//! Certificates made at test time with rcgen: a CA, service certificates
//! signed by it (with or without subjectAltNames, expired), written as PEM.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};

pub struct Ca {
    pub cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
}

/// How a service certificate is made.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Names {
    /// CN and subjectAltName (what `corelink certs issue` makes).
    CnAndSan,
    /// CN only, as the linkerd write-up's openssl commands make them.
    CnOnly,
}

impl Ca {
    pub fn new(cn: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).unwrap();
        Ca { cert_pem: cert.pem(), issuer: Issuer::new(params, key) }
    }

    pub fn issue(&self, cn: &str, names: Names) -> Leaf {
        self.issue_valid(cn, names, -1, 365)
    }

    /// Valid from `from_days` to `to_days` relative to now.
    pub fn issue_valid(&self, cn: &str, names: Names, from_days: i64, to_days: i64) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let sans = if names == Names::CnAndSan { vec![cn.to_string()] } else { Vec::new() };
        let mut params = CertificateParams::new(sans).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now + time::Duration::days(from_days);
        params.not_after = now + time::Duration::days(to_days);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf { cert_pem: cert.pem(), key_pem: key.serialize_pem() }
    }

    pub fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, &self.cert_pem).unwrap();
        p
    }
}

impl Leaf {
    /// Writes `<stem>.crt` and `<stem>.key`; returns their paths.
    pub fn write(&self, dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{stem}.crt"));
        let key = dir.join(format!("{stem}.key"));
        std::fs::write(&cert, &self.cert_pem).unwrap();
        std::fs::write(&key, &self.key_pem).unwrap();
        (cert, key)
    }
}

/// A CA and a serving certificate for 127.0.0.1 (the test Kubernetes API
/// server's address, as the `kubernetes` Service IP is in a cluster):
/// (CA PEM, certificate PEM, key PEM).
pub fn api_server_certificates() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name.push(DnType::CommonName, "kubernetes-ca");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["kubernetes.default.svc".to_string()]).unwrap();
    leaf.subject_alt_names.push(SanType::IpAddress(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)));
    leaf.distinguished_name.push(DnType::CommonName, "kube-apiserver");
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}
