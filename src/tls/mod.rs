//! Transparent linker-to-linker TLS: the rustls configuration (docs/tls.md).
//! The stream that drives rustls over the engine's owned buffers is
//! `io::tls` (src/io/tls.rs); nothing here touches a socket.
//!
//! - [`server`]: server TLS (files reloaded from disk, ticket keys per TLS
//!   policy, optional client certificates).
//! - [`client`]: client TLS (static, boundPath, noValidation): the name a
//!   destination must prove, derived from its bound path.
//! - [`verify`]: webpki plus the subject-CN fallback for certificates with
//!   no subjectAltName.
//! - [`files`]: PEM certificates, keys and trust roots from disk.

pub mod client;
pub mod files;
pub mod server;
pub mod verify;

use std::sync::{Arc, OnceLock};

pub use client::{ClientTlsPolicy, TlsTarget};
pub use server::ServerTls;

/// aws-lc-rs, built once per process, with the SHA-256 cipher suites
/// preferred (see [`sha256_suites_first`]).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    static PROVIDER: OnceLock<Arc<rustls::crypto::CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            let mut provider = rustls::crypto::aws_lc_rs::default_provider();
            sha256_suites_first(&mut provider.cipher_suites);
            Arc::new(provider)
        })
        .clone()
}

/// Moves the SHA-384 suites (AES-256-GCM) behind the SHA-256 ones
/// (AES-128-GCM, ChaCha20-Poly1305), keeping the order otherwise. The
/// handshake hashes with the suite's hash, and aws-lc runs SHA-384 in
/// portable code on CPUs without its SHA-512 assembly path (AMD here): it
/// was 19 % of corelink's CPU in resumed handshakes (`perf record`), while
/// SHA-256 uses the CPU's SHA extensions. TLS_AES_128_GCM_SHA256 is the suite
/// every TLS 1.3 implementation must support (RFC 8446 §9.1) and the first
/// one in Mozilla's recommended configurations. docs/tls.md has the numbers.
pub fn sha256_suites_first(suites: &mut [rustls::SupportedCipherSuite]) {
    use rustls::crypto::hash::HashAlgorithm;
    suites.sort_by_key(|suite| {
        let common = match suite {
            rustls::SupportedCipherSuite::Tls12(s) => &s.common,
            rustls::SupportedCipherSuite::Tls13(s) => &s.common,
        };
        common.hash_provider.algorithm() != HashAlgorithm::SHA256
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_suites_come_first_in_their_original_order() {
        let names: Vec<String> = provider().cipher_suites.iter().map(|s| format!("{:?}", s.suite())).collect();
        let first_sha384 = names.iter().position(|n| n.ends_with("SHA384")).expect("the SHA-384 suites stay");
        assert!(names[..first_sha384].iter().all(|n| n.ends_with("SHA256")), "{names:?}");
        assert!(names[first_sha384..].iter().all(|n| n.ends_with("SHA384")), "{names:?}");
        assert_eq!(names[0], "TLS13_AES_128_GCM_SHA256", "{names:?}");
    }
}
