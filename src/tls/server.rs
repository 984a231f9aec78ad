//! Server TLS: one rustls `ServerConfig` per TLS server, shared by its cores.
//!
//! - The files (certificate, key, intermediates, client CA bundle) are
//!   polled by the control thread every few seconds and compared by
//!   contents (which also catches a Kubernetes `..data` symlink swap). When
//!   they change, a whole new `ServerConfig` is built and swapped in: no
//!   restart, open connections untouched. Files that cannot be used (a key
//!   that does not match its certificate, half an update) are refused and
//!   the old configuration kept.
//! - Session tickets are sealed with a ticketer per [`Policy`]: the
//!   certificate chain, the client CA bundle, `requireClientAuth` and the
//!   protocols. rustls checks only the suite, EMS and SNI when it resumes a
//!   session, so a ticket must be unreadable to any server that would not
//!   have completed the full handshake the same way: another certificate,
//!   another CA, client auth made mandatory. Servers with the same policy
//!   share one ticketer (a client resumes on any core, and across namer
//!   updates and reloads that leave the policy alone).
//! - No server-side session cache (it takes a lock): tickets only.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use arc_swap::ArcSwap;
use rustls::pki_types::CertificateDer;
use rustls::server::{ClientHello, NoServerSessionStorage, ProducesTickets, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;

use config::{ServerTlsConfig, TlsVersion};

use super::files;

pub struct ServerTls {
    /// What handshakes start from; replaced whole when a file changes.
    current: ArcSwap<Served>,
    settings: ServerTlsConfig,
    /// Only the control thread touches this (when polling).
    poll: Mutex<PollState>,
}

/// One generation of a server's TLS: the rustls configuration and the
/// certificate it serves.
struct Served {
    config: Arc<rustls::ServerConfig>,
    /// What the configuration's resolver serves; only the tests read it.
    #[cfg_attr(not(test), allow(dead_code))]
    cert: Arc<CertifiedKey>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").field("settings", &self.settings).finish()
    }
}

/// What a session ticket vouches for. A session resumed under another
/// policy would skip a check the full handshake makes (the client's
/// certificate against this CA, or at all), or would be a session with
/// another identity, so each policy seals tickets with its own keys.
/// The key file is left out: it cannot differ for the same certificate.
#[derive(Debug, PartialEq, Eq)]
struct Policy {
    chain: Vec<CertificateDer<'static>>,
    /// The `caCertPath` file's bytes.
    client_cas: Option<Vec<u8>>,
    require_client_auth: bool,
    protocols: Vec<TlsVersion>,
}

/// The ticketer of `policy`: one per distinct policy in the process, shared
/// by every server and configuration generation that has it, and dropped
/// with the last of them (then its tickets are worthless, as they should be).
fn ticketer(policy: Policy) -> Result<Arc<dyn ProducesTickets>, String> {
    type Registry = Vec<(Policy, Weak<dyn ProducesTickets>)>;
    static TICKETERS: OnceLock<Mutex<Registry>> = OnceLock::new();
    let mut registry =
        TICKETERS.get_or_init(Default::default).lock().map_err(|_| "TLS ticketer registry poisoned".to_string())?;
    registry.retain(|(_, t)| t.strong_count() > 0);
    if let Some(t) = registry.iter().find(|(p, _)| *p == policy).and_then(|(_, t)| t.upgrade()) {
        return Ok(t);
    }
    let t = rustls::crypto::aws_lc_rs::Ticketer::new().map_err(|e| format!("cannot create TLS ticket keys: {e}"))?;
    registry.push((policy, Arc::downgrade(&t)));
    Ok(t)
}

impl ServerTls {
    /// The server TLS for this configuration, built once per process and
    /// shared by every snapshot that uses it: its reloaded files and its
    /// ticket keys survive namer updates and config reloads. Kept only while
    /// a snapshot holds it, so one no longer configured is not revived stale.
    pub fn shared(tls: &ServerTlsConfig) -> Result<Arc<ServerTls>, String> {
        type Registry = Vec<(ServerTlsConfig, Weak<ServerTls>)>;
        static BUILT: OnceLock<Mutex<Registry>> = OnceLock::new();
        let built = BUILT.get_or_init(Default::default);
        let mut built = built.lock().map_err(|_| "server TLS registry poisoned".to_string())?;
        built.retain(|(_, s)| s.strong_count() > 0);
        if let Some(existing) = built.iter().find(|(c, _)| c == tls).and_then(|(_, s)| s.upgrade()) {
            return Ok(existing);
        }
        let new = Arc::new(ServerTls::new(tls)?);
        built.push((tls.clone(), Arc::downgrade(&new)));
        Ok(new)
    }

    pub fn new(tls: &ServerTlsConfig) -> Result<ServerTls, String> {
        let (contents, served) = load(tls)?;
        Ok(ServerTls {
            current: ArcSwap::from_pointee(served),
            settings: tls.clone(),
            poll: Mutex::new(PollState { served: contents, failed: None }),
        })
    }

    /// The configuration a new connection's handshake uses.
    pub fn config(&self) -> Arc<rustls::ServerConfig> {
        self.current.load().config.clone()
    }

    /// Re-reads the files; builds and swaps in a new configuration if they
    /// changed and are usable. Returns what happened, for the control
    /// thread's log.
    pub fn reload_if_changed(&self) -> Reload {
        let Ok(mut state) = self.poll.lock() else { return Reload::Unchanged };
        let now = match read_all(&self.settings) {
            Ok(now) => now,
            // Unreadable (a file missing mid-update): reported once; an empty
            // list marks it, since a readable set is never empty.
            Err(_) if state.failed.as_ref().is_some_and(Vec::is_empty) => return Reload::Unchanged,
            Err(e) => {
                state.failed = Some(Vec::new());
                return Reload::Failed(e);
            }
        };
        if now == state.served || state.failed.as_ref() == Some(&now) {
            return Reload::Unchanged;
        }
        match load(&self.settings) {
            Ok((contents, served)) => {
                self.current.store(Arc::new(served));
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

    pub fn cert_path(&self) -> &std::path::Path {
        std::path::Path::new(&self.settings.cert_path)
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Reload {
    Unchanged,
    Reloaded,
    /// Changed but unusable (the old configuration stays); the text says why.
    Failed(String),
}

/// The raw bytes of the files, to tell whether they changed.
type Contents = Vec<Vec<u8>>;

/// What the poller knows: the files being served, and the last contents
/// that could not be used (so a bad update is reported once, not every poll).
struct PollState {
    served: Contents,
    failed: Option<Contents>,
}

/// Every file the server's TLS is built from.
fn paths(tls: &ServerTlsConfig) -> impl Iterator<Item = &str> {
    [Some(&tls.cert_path), Some(&tls.key_path), tls.intermediate_certs_path.as_ref(), tls.ca_cert_path.as_ref()]
        .into_iter()
        .flatten()
        .map(String::as_str)
}

fn read_all(tls: &ServerTlsConfig) -> Result<Contents, String> {
    paths(tls).map(|p| std::fs::read(p).map_err(|e| format!("cannot read {p}: {e}"))).collect()
}

/// Reads the files and builds a configuration from them, with the ticketer
/// of the policy they make.
fn load(tls: &ServerTlsConfig) -> Result<(Contents, Served), String> {
    let provider = super::provider();
    let contents = read_all(tls)?;
    let cert = Arc::new(certified_key(tls, &provider)?);
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&super::client::versions(&tls.protocols))
        .map_err(|e| format!("server TLS protocols: {e}"))?;
    let (builder, client_cas) = match &tls.ca_cert_path {
        None => (builder.with_no_client_auth(), None),
        Some(ca) => {
            // Read once: the ticket policy and the verifier must be built
            // from the same bytes.
            let bytes = std::fs::read(ca).map_err(|e| format!("cannot read {ca}: {e}"))?;
            let roots = files::parse_roots(std::path::Path::new(ca), &bytes)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            let verifier = if tls.require_client_auth { verifier } else { verifier.allow_unauthenticated() };
            let verifier = verifier.build().map_err(|e| format!("server TLS caCertPath {ca}: {e}"))?;
            (builder.with_client_cert_verifier(verifier), Some(bytes))
        }
    };
    let mut config = builder.with_cert_resolver(Arc::new(Fixed(cert.clone())));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    // Our suite order (SHA-256 first, see `tls::provider`), not the
    // client's: most clients list AES-256-GCM-SHA384 first.
    config.ignore_client_order = true;
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.ticketer = ticketer(Policy {
        chain: cert.cert.clone(),
        client_cas,
        require_client_auth: tls.require_client_auth,
        protocols: tls.protocols.clone(),
    })?;
    Ok((contents, Served { config: Arc::new(config), cert }))
}

/// The certificate chain and its key, checked to belong together.
fn certified_key(tls: &ServerTlsConfig, provider: &rustls::crypto::CryptoProvider) -> Result<CertifiedKey, String> {
    let (cert_path, key_path) = (PathBuf::from(&tls.cert_path), PathBuf::from(&tls.key_path));
    let mut chain = files::load_certs(&cert_path).map_err(|e| e.to_string())?;
    if let Some(i) = &tls.intermediate_certs_path {
        chain.extend(files::load_certs(std::path::Path::new(i)).map_err(|e| e.to_string())?);
    }
    let key = files::load_key(&key_path).map_err(|e| e.to_string())?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("{}: unusable private key: {e}", key_path.display()))?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) => {}
        // A key whose public half rustls cannot compute is let through.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err(format!(
                "{}: the private key does not match the certificate {}",
                key_path.display(),
                cert_path.display()
            ))
        }
        // webpki could not parse the certificate (an X.509 v1 one, say).
        Err(e) => {
            return Err(format!(
                "{}: certificate unusable ({e}); `corelink check` says why and how to reissue it",
                cert_path.display()
            ))
        }
    }
    Ok(certified)
}

/// Serves one certificate: a new one comes with a new `ServerConfig`.
#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl ResolvesServerCert for Fixed {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
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

    /// The ticketer of a server's current configuration, as an address.
    fn ticketer_of(tls: &ServerTls) -> *const () {
        Arc::as_ptr(&tls.config().ticketer) as *const ()
    }

    #[test]
    fn each_policy_has_its_own_ticketer() {
        let dir = std::env::temp_dir().join(format!("corelink-server-tickets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (c, k) = pair("one");
        let write = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            p.display().to_string()
        };
        let (cert, key, ca) = (write("c.pem", &c), write("k.pem", &k), write("ca.pem", &c));
        let plain = ServerTlsConfig {
            cert_path: cert.clone(),
            key_path: key,
            intermediate_certs_path: None,
            ca_cert_path: None,
            require_client_auth: false,
            protocols: vec![],
        };
        let with_ca = ServerTlsConfig { ca_cert_path: Some(ca), ..plain.clone() };
        let required = ServerTlsConfig { require_client_auth: true, ..with_ca.clone() };
        // The same files under other paths: the same policy.
        let copy = ServerTlsConfig { cert_path: write("c2.pem", &c), ..plain.clone() };
        let servers: Vec<ServerTls> =
            [&plain, &with_ca, &required, &copy].into_iter().map(|c| ServerTls::new(c).unwrap()).collect();
        let t: Vec<_> = servers.iter().map(ticketer_of).collect();
        assert_ne!(t[0], t[1], "a client CA bundle is another policy");
        assert_ne!(t[1], t[2], "requireClientAuth is another policy");
        assert_ne!(t[0], t[2]);
        assert_eq!(t[0], t[3], "identical files share tickets");

        // A new certificate is a new identity: its tickets are new too.
        let (c2, k2) = pair("two");
        std::fs::write(&cert, &c2).unwrap();
        std::fs::write(dir.join("k.pem"), &k2).unwrap();
        assert_eq!(servers[0].reload_if_changed(), Reload::Reloaded);
        assert_ne!(ticketer_of(&servers[0]), t[0]);
        assert_eq!(ticketer_of(&servers[3]), t[3], "the other server's files did not change");
        std::fs::remove_dir_all(&dir).unwrap();
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
        let served = tls.current.load().cert.clone();
        assert_eq!(
            served.cert[0].as_ref(),
            rustls::pki_types::CertificateDer::from_pem_slice(c1.as_bytes()).unwrap().as_ref()
        );

        // The key arrives: the new pair is served.
        std::fs::write(&key_path, &k2).unwrap();
        assert_eq!(tls.reload_if_changed(), Reload::Reloaded);
        let served = tls.current.load().cert.clone();
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
