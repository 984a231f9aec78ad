//! Transparent linker-to-linker TLS, driven sans-IO through rustls over the
//! engine's owned buffers (docs/tls.md).
//!
//! - [`stream`]: [`TlsStream`] over any engine stream; [`MaybeTls`], what
//!   the proxy reads and writes.
//! - [`server`]: server TLS (certificates reloaded from disk, shared ticket
//!   keys, optional client certificates).
//! - [`client`]: client TLS (static, boundPath, noValidation): the name a
//!   destination must prove, derived from its bound path.
//! - [`verify`]: webpki plus the subject-CN fallback for certificates with
//!   no subjectAltName.
//! - [`files`]: PEM certificates, keys and trust roots from disk.
//! - [`inspect`]: what `corelink check` reports about certificates.

pub mod client;
pub mod files;
pub mod inspect;
pub mod server;
pub mod stream;
pub mod verify;

use std::sync::{Arc, OnceLock};

pub use client::{ClientTlsPolicy, TlsTarget};
pub use server::ServerTls;
pub use stream::{tls_error, MaybeTls, TlsInfo, TlsStream};

/// aws-lc-rs, built once per process.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    static PROVIDER: OnceLock<Arc<rustls::crypto::CryptoProvider>> = OnceLock::new();
    PROVIDER.get_or_init(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider())).clone()
}

/// Whether the first bytes a client sent to a TLS port look like plaintext
/// HTTP (a request line starts with an upper-case method; a TLS record with
/// 0x16).
pub fn looks_like_plaintext_http(first: &[u8]) -> bool {
    first.first().is_some_and(|b| b.is_ascii_uppercase())
}
