//! Transparent linker-to-linker TLS, driven sans-IO through rustls over the
//! engine's owned buffers.
//!
//! - [`files`]: PEM certificates, keys and trust roots from disk.
//! - [`inspect`]: what `corelink check` reports about certificates, and the
//!   subject common name the verifier falls back to.

pub mod files;
pub mod inspect;
