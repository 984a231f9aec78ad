//! Server TLS: one rustls `ServerConfig` per TLS server, shared by its cores.
//!
//! - Certificates are served through [`ReloadingCert`], an arc-swapped
//!   `CertifiedKey`: the control thread re-reads the files every few seconds
//!   and swaps in a new pair when they changed (also through a Kubernetes
//!   `..data` symlink swap, since the files' contents are compared), without
//!   a restart and without touching open connections. A pair whose key does
//!   not match its certificate (a half-written update) is refused and the old
//!   pair kept.
//! - Session tickets are sealed with keys from one process-wide ticketer, so
//!   a client resumes on whichever core its next connection lands on.
//! - No server-side session cache (it takes a lock): tickets only.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, NoServerSessionStorage, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;

use crate::config::ServerTlsConfig;

use super::files;

pub struct ServerTls {
    pub config: Arc<rustls::ServerConfig>,
    cert: Arc<ReloadingCert>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").field("cert", &self.cert.paths).finish()
    }
}

/// The process's ticket keys: created once, shared by every server and every
/// reloaded configuration, so reloads do not break resumption either.
fn ticketer() -> Result<Arc<dyn rustls::server::ProducesTickets>, String> {
    static TICKETER: OnceLock<Arc<dyn rustls::server::ProducesTickets>> = OnceLock::new();
    if let Some(t) = TICKETER.get() {
        return Ok(t.clone());
    }
    let t = rustls::crypto::aws_lc_rs::Ticketer::new().map_err(|e| format!("cannot create TLS ticket keys: {e}"))?;
    Ok(TICKETER.get_or_init(|| t).clone())
}

impl ServerTls {
    /// The server TLS for this configuration, built once per process and
    /// shared by every snapshot that uses it: its reloaded certificate and
    /// its ticket keys survive namer updates and config reloads.
    pub fn shared(tls: &ServerTlsConfig) -> Result<Arc<ServerTls>, String> {
        type Registry = Vec<(ServerTlsConfig, Arc<ServerTls>)>;
        static BUILT: OnceLock<Mutex<Registry>> = OnceLock::new();
        let built = BUILT.get_or_init(Default::default);
        let mut built = built.lock().map_err(|_| "server TLS registry poisoned".to_string())?;
        if let Some((_, existing)) = built.iter().find(|(c, _)| c == tls) {
            return Ok(existing.clone());
        }
        let new = Arc::new(ServerTls::new(tls)?);
        built.push((tls.clone(), new.clone()));
        Ok(new)
    }

    pub fn new(tls: &ServerTlsConfig) -> Result<ServerTls, String> {
        let provider = super::provider();
        let paths = CertPaths {
            cert: PathBuf::from(&tls.cert_path),
            key: PathBuf::from(&tls.key_path),
            intermediates: tls.intermediate_certs_path.as_ref().map(PathBuf::from),
        };
        let (contents, key) = paths.load(&provider)?;
        let cert = Arc::new(ReloadingCert {
            current: ArcSwap::from_pointee(key),
            contents: Mutex::new(PollState { served: contents, failed: None }),
            paths,
            provider: provider.clone(),
        });
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&super::client::versions(&tls.protocols))
            .map_err(|e| format!("server TLS protocols: {e}"))?;
        let builder = match &tls.ca_cert_path {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let roots = files::load_roots(std::slice::from_ref(ca))?;
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
                let verifier = if tls.require_client_auth { verifier } else { verifier.allow_unauthenticated() };
                let verifier = verifier.build().map_err(|e| format!("server TLS caCertPath {ca}: {e}"))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_cert_resolver(cert.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        // Our suite order (SHA-256 first, see `tls::provider`), not the
        // client's: most clients list AES-256-GCM-SHA384 first.
        config.ignore_client_order = true;
        config.session_storage = Arc::new(NoServerSessionStorage {});
        config.ticketer = ticketer()?;
        Ok(ServerTls { config: Arc::new(config), cert })
    }

    /// Re-reads the certificate files; swaps them in if they changed and are
    /// consistent. Returns what happened, for the control thread's log.
    pub fn reload_if_changed(&self) -> Reload {
        self.cert.reload_if_changed()
    }

    pub fn cert_path(&self) -> &std::path::Path {
        &self.cert.paths.cert
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Reload {
    Unchanged,
    Reloaded,
    /// Changed but unusable (the old pair stays); the text says why.
    Failed(String),
}

#[derive(Debug, Clone)]
struct CertPaths {
    cert: PathBuf,
    key: PathBuf,
    intermediates: Option<PathBuf>,
}

/// The raw bytes of the files, to tell whether they changed.
type Contents = Vec<Vec<u8>>;

/// What the poller knows: the files being served, and the last contents
/// that could not be used (so a bad update is reported once, not every poll).
struct PollState {
    served: Contents,
    failed: Option<Contents>,
}

impl CertPaths {
    fn read_all(&self) -> Result<Contents, String> {
        let mut out = Vec::new();
        for p in [Some(&self.cert), Some(&self.key), self.intermediates.as_ref()].into_iter().flatten() {
            out.push(std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?);
        }
        Ok(out)
    }

    fn load(&self, provider: &rustls::crypto::CryptoProvider) -> Result<(Contents, CertifiedKey), String> {
        let contents = self.read_all()?;
        let mut chain = files::load_certs(&self.cert).map_err(|e| e.to_string())?;
        if let Some(i) = &self.intermediates {
            chain.extend(files::load_certs(i).map_err(|e| e.to_string())?);
        }
        let key = files::load_key(&self.key).map_err(|e| e.to_string())?;
        let signing = provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| format!("{}: unusable private key: {e}", self.key.display()))?;
        let certified = CertifiedKey::new(chain, signing);
        match certified.keys_match() {
            Ok(()) => {}
            // A key whose public half rustls cannot compute is let through.
            Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
            Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
                return Err(format!(
                    "{}: the private key does not match the certificate {}",
                    self.key.display(),
                    self.cert.display()
                ))
            }
            // webpki could not parse the certificate (an X.509 v1 one, say).
            Err(e) => {
                return Err(format!(
                    "{}: certificate unusable ({e}); `corelink check` says why and how to reissue it",
                    self.cert.display()
                ))
            }
        }
        Ok((contents, certified))
    }
}

/// Serves the current certificate; swapped atomically on reload.
struct ReloadingCert {
    current: ArcSwap<CertifiedKey>,
    /// Only the control thread touches this (when polling).
    contents: Mutex<PollState>,
    paths: CertPaths,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl std::fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingCert").field("paths", &self.paths).finish()
    }
}

impl ReloadingCert {
    fn reload_if_changed(&self) -> Reload {
        let Ok(mut state) = self.contents.lock() else { return Reload::Unchanged };
        let now = match self.paths.read_all() {
            Ok(now) => now,
            // Unreadable (a file missing mid-update): reported once; an empty
            // list marks it, since a readable pair is never empty.
            Err(_) if state.failed.as_ref().is_some_and(Vec::is_empty) => return Reload::Unchanged,
            Err(e) => {
                state.failed = Some(Vec::new());
                return Reload::Failed(e);
            }
        };
        if now == state.served || state.failed.as_ref() == Some(&now) {
            return Reload::Unchanged;
        }
        match self.paths.load(&self.provider) {
            Ok((contents, key)) => {
                self.current.store(Arc::new(key));
                state.served = contents;
                state.failed = None;
                Reload::Reloaded
            }
            // Remember the bad contents: logged once, not at every poll.
            Err(e) => {
                state.failed = Some(now);
                Reload::Failed(e)
            }
        }
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;

    fn pair(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap().self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn reload_swaps_good_pairs_and_refuses_a_mismatched_key_once() {
        let dir = std::env::temp_dir().join(format!("corelink-server-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert_path, key_path) = (dir.join("c.pem"), dir.join("k.pem"));
        let (c1, k1) = pair("one");
        std::fs::write(&cert_path, &c1).unwrap();
        std::fs::write(&key_path, &k1).unwrap();
        let config = ServerTlsConfig {
            cert_path: cert_path.display().to_string(),
            key_path: key_path.display().to_string(),
            intermediate_certs_path: None,
            ca_cert_path: None,
            require_client_auth: false,
            protocols: vec![],
        };
        let tls = ServerTls::new(&config).unwrap();
        assert_eq!(tls.reload_if_changed(), Reload::Unchanged);

        // Half an update: a new certificate with the old key.
        let (c2, k2) = pair("two");
        std::fs::write(&cert_path, &c2).unwrap();
        assert!(matches!(tls.reload_if_changed(), Reload::Failed(e) if e.contains("does not match")));
        assert_eq!(tls.reload_if_changed(), Reload::Unchanged, "a bad update is reported once");
        let served = tls.cert.current.load_full();
        assert_eq!(
            served.cert[0].as_ref(),
            rustls::pki_types::CertificateDer::from_pem_slice(c1.as_bytes()).unwrap().as_ref()
        );

        // The key arrives: the new pair is served.
        std::fs::write(&key_path, &k2).unwrap();
        assert_eq!(tls.reload_if_changed(), Reload::Reloaded);
        let served = tls.cert.current.load_full();
        assert_eq!(
            served.cert[0].as_ref(),
            rustls::pki_types::CertificateDer::from_pem_slice(c2.as_bytes()).unwrap().as_ref()
        );

        // A file gone for a moment: reported once, the pair still served.
        std::fs::remove_file(&key_path).unwrap();
        assert!(matches!(tls.reload_if_changed(), Reload::Failed(_)));
        assert_eq!(tls.reload_if_changed(), Reload::Unchanged);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
