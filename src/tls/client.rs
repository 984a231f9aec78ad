//! Client TLS: which name a destination's certificate must carry, derived
//! from its client name (the bound path), and the rustls configurations that
//! check it.
//!
//! A router's [`ClientTlsPolicy`] is compiled from its `client` section when
//! the routing snapshot is built (CA files are read then, off the data path;
//! the control thread compiles it again when they change on disk).
//! Each core derives the TLS target of a bound name once, when it first
//! resolves it (see `table::cache`), and keeps its own copy of every rustls
//! `ClientConfig`, so TLS session resumption state is per core, unshared.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use naming::prefix::{match_prefix, substitute, Captures};
use rustls::pki_types::ServerName;

use config::{ClientConfig, ClientKind, ClientTlsConfig, TlsVersion};

use super::files;
use super::verify::{NameVerifier, NoValidation};

/// TLS sessions remembered per core, per profile, for resumption.
const SESSIONS_PER_CORE: usize = 256;

/// A core's own client configurations, by the address of the template they
/// were cloned from (templates live in the process registry, so an address
/// names one template for as long as it can be looked up).
pub type CoreConfigs = HashMap<usize, CoreConfig>;

/// A core's rustls configuration for one profile, and a number no other
/// configuration in the process carries. Pooled connections are keyed by
/// that number: one made under an earlier configuration (before a reload
/// turned validation on or replaced the trust roots, which keeps the
/// profile's index) never carries a request routed under a later one.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    pub rustls: Arc<rustls::ClientConfig>,
    pub serial: u64,
}

/// What one destination's connections speak.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsTarget {
    /// Index into the policy's profiles (one rustls `ClientConfig` each).
    pub profile: usize,
    /// Sent as SNI and verified. None (noValidation without a name): the
    /// endpoint's IP address stands in, and no SNI is sent.
    pub name: Option<String>,
    pub validates: bool,
}

/// One client TLS rule as configured, with `{var}`s still in its names.
#[derive(Debug, Clone)]
enum Rule {
    /// `enabled: false`: plaintext.
    Off,
    /// One name for every peer (the pattern may use the configs prefix's
    /// captures).
    Name {
        profile: usize,
        pattern: String,
    },
    NoValidation {
        profile: usize,
        pattern: Option<String>,
    },
    /// The 2016 boundPath form: the first matching `names` prefix wins.
    BoundPath {
        profile: usize,
        names: Vec<(String, String)>,
        strict: bool,
    },
}

#[derive(Debug, Clone)]
struct PrefixRule {
    prefix: String,
    rule: Rule,
}

/// A router's client TLS, compiled.
#[derive(Debug, Clone, Default)]
pub struct ClientTlsPolicy {
    base: Option<Rule>,
    /// `io.l5d.static` configs that set `tls`, in file order: every match
    /// applies, later ones overriding earlier ones.
    prefixed: Vec<PrefixRule>,
    /// Templates; each core clones them (see [`ClientTlsPolicy::per_core`]).
    profiles: Vec<Arc<rustls::ClientConfig>>,
    /// Per profile, the files it was built from and their bytes then.
    sources: Vec<Sources>,
}

/// The files a profile is built from (trust roots, client certificate, key,
/// intermediates) and their bytes, to tell when they change on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sources {
    paths: Vec<String>,
    contents: FileContents,
}

/// The bytes of a list of files; an unreadable file reads as empty (building
/// the profile then reports it).
pub type FileContents = Vec<Vec<u8>>;

fn read_files(paths: &[String]) -> FileContents {
    paths.iter().map(|p| std::fs::read(p).unwrap_or_default()).collect()
}

impl ClientTlsPolicy {
    /// Compiles a router's client section, reading CA and client-certificate
    /// files. Errors name the file and the problem.
    pub fn compile(client: &ClientConfig) -> Result<ClientTlsPolicy, String> {
        let mut builder = ProfileBuilder::default();
        let base = match &client.tls {
            Some(tls) => Some(builder.rule(tls)?),
            None => None,
        };
        let mut prefixed = Vec::new();
        if client.kind == ClientKind::Static {
            for c in &client.configs {
                if let Some(tls) = &c.params.tls {
                    prefixed.push(PrefixRule { prefix: c.prefix.clone(), rule: builder.rule(tls)? });
                }
            }
        }
        Ok(ClientTlsPolicy { base, prefixed, profiles: builder.profiles, sources: builder.sources })
    }

    /// The bytes of every file the profiles are built from, read now, when
    /// any of them differs from what the profiles were built from: then a
    /// snapshot compiled again builds new profiles with them (a new client
    /// certificate, new trust roots), with new session caches. The control
    /// thread polls this, as it polls the server certificates.
    pub fn changed_files(&self) -> Option<FileContents> {
        let now: Vec<FileContents> = self.sources.iter().map(|s| read_files(&s.paths)).collect();
        let changed = now.iter().zip(&self.sources).any(|(now, built)| *now != built.contents);
        changed.then(|| now.concat())
    }

    /// This core's rustls configurations, one per profile, each with its own
    /// session cache. `known` holds the core's configurations from earlier
    /// snapshots, by template: a profile that did not change keeps its
    /// sessions across namer updates and reloads. `kept` collects the map
    /// to keep (only the templates still in use); it is shared by the
    /// routers of one snapshot, so routers with the same template share one
    /// configuration (one session cache, one pool identity) from the start.
    pub fn per_core(&self, known: &CoreConfigs, kept: &mut CoreConfigs) -> Vec<CoreConfig> {
        static SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        self.profiles
            .iter()
            .map(|template| {
                let id = Arc::as_ptr(template) as usize;
                let config = kept.get(&id).or_else(|| known.get(&id)).cloned().unwrap_or_else(|| {
                    let mut config = (**template).clone();
                    config.resumption = rustls::client::Resumption::in_memory_sessions(SESSIONS_PER_CORE);
                    let serial = SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    CoreConfig { rustls: Arc::new(config), serial }
                });
                kept.insert(id, config.clone());
                config
            })
            .collect()
    }

    /// Whether TLS applies only to the names under some `io.l5d.static`
    /// prefixes: any other name goes in plaintext, as in linkerd, which an
    /// operator may not expect (a dtab or namer change that binds a name
    /// outside them sends it in the clear).
    pub fn encrypts_only_some_names(&self) -> bool {
        self.base.is_none() && self.prefixed.iter().any(|p| !matches!(p.rule, Rule::Off))
    }

    /// The TLS a destination with this client name gets: None for plaintext,
    /// an error (the request fails with 502) when a strict boundPath rule
    /// matches nothing or the derived name is not a valid TLS name.
    pub fn target(&self, client_name: &str) -> Result<Option<TlsTarget>, String> {
        let mut chosen: Option<(&Rule, Captures<'_>)> = self.base.as_ref().map(|r| (r, Captures::default()));
        for p in &self.prefixed {
            if let Some(captures) = match_prefix(&p.prefix, client_name) {
                chosen = Some((&p.rule, captures));
            }
        }
        let Some((rule, captures)) = chosen else { return Ok(None) };
        let target = match rule {
            Rule::Off => return Ok(None),
            Rule::Name { profile, pattern } => {
                TlsTarget { profile: *profile, name: Some(substitute(pattern, &captures)), validates: true }
            }
            Rule::NoValidation { profile, pattern } => TlsTarget {
                profile: *profile,
                name: pattern.as_ref().map(|p| substitute(p, &captures)),
                validates: false,
            },
            Rule::BoundPath { profile, names, strict } => match bound_path_name(names, client_name) {
                Some(name) => TlsTarget { profile: *profile, name: Some(name), validates: true },
                None if *strict => {
                    return Err(format!(
                        "TLS: the bound name {client_name} matches no boundPath `names` prefix (strict: true)"
                    ))
                }
                None => return Ok(None),
            },
        };
        if let Some(name) = &target.name {
            server_name(name)?;
        }
        Ok(Some(target))
    }
}

/// The 2016 boundPath rule: the first `(prefix, commonNamePattern)` whose
/// prefix matches the client name gives the name, its `{var}`s filled from
/// the prefix's captures. None: no prefix matches.
pub fn bound_path_name(names: &[(String, String)], client_name: &str) -> Option<String> {
    names.iter().find_map(|(prefix, pattern)| match_prefix(prefix, client_name).map(|c| substitute(pattern, &c)))
}

/// The name as rustls takes it (a DNS name or an IP address).
pub fn server_name(name: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(name.to_owned())
        .map_err(|_| format!("TLS: the derived name {name:?} is not a valid DNS name or IP address"))
}

#[derive(Default)]
struct ProfileBuilder {
    profiles: Vec<Arc<rustls::ClientConfig>>,
    sources: Vec<Sources>,
    /// Identical settings share one profile (and one session cache).
    seen: HashMap<ProfileKey, usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ProfileKey {
    /// None: no validation.
    trust: Option<Vec<String>>,
    client_auth: Option<(String, String, Option<String>)>,
    protocols: Vec<TlsVersion>,
}

impl ProfileKey {
    /// The files the profile reads.
    fn paths(&self) -> Vec<String> {
        let mut paths: Vec<String> = self.trust.iter().flatten().cloned().collect();
        if let Some((cert, key, intermediates)) = &self.client_auth {
            paths.extend([cert.clone(), key.clone()]);
            paths.extend(intermediates.clone());
        }
        paths
    }
}

impl ProfileBuilder {
    fn rule(&mut self, tls: &ClientTlsConfig) -> Result<Rule, String> {
        Ok(match tls {
            ClientTlsConfig::Params(p) if !p.enabled => Rule::Off,
            ClientTlsConfig::Params(p) => {
                let key = ProfileKey {
                    trust: (!p.disable_validation).then(|| p.trust_certs.clone()),
                    client_auth: p
                        .client_auth
                        .as_ref()
                        .map(|a| (a.cert_path.clone(), a.key_path.clone(), a.intermediate_certs_path.clone())),
                    protocols: p.protocols.clone(),
                };
                let profile = self.profile(key)?;
                if p.disable_validation {
                    Rule::NoValidation { profile, pattern: p.common_name.clone() }
                } else {
                    let pattern = p.common_name.clone().ok_or("client TLS: commonName is required")?;
                    Rule::Name { profile, pattern }
                }
            }
            ClientTlsConfig::NoValidation { common_name } => {
                let profile = self.profile(ProfileKey { trust: None, client_auth: None, protocols: Vec::new() })?;
                Rule::NoValidation { profile, pattern: common_name.clone() }
            }
            ClientTlsConfig::Static { common_name, ca_cert_path } => {
                let trust = ca_cert_path.iter().cloned().collect();
                let profile =
                    self.profile(ProfileKey { trust: Some(trust), client_auth: None, protocols: Vec::new() })?;
                Rule::Name { profile, pattern: common_name.clone() }
            }
            ClientTlsConfig::BoundPath { ca_cert_path, names, strict } => {
                let trust = ca_cert_path.iter().cloned().collect();
                let profile =
                    self.profile(ProfileKey { trust: Some(trust), client_auth: None, protocols: Vec::new() })?;
                let names = names.iter().map(|n| (n.prefix.clone(), n.common_name_pattern.clone())).collect();
                Rule::BoundPath { profile, names, strict: *strict }
            }
        })
    }

    fn profile(&mut self, key: ProfileKey) -> Result<usize, String> {
        if let Some(&i) = self.seen.get(&key) {
            return Ok(i);
        }
        let (config, sources) = shared_template(&key)?;
        self.profiles.push(config);
        self.sources.push(sources);
        self.seen.insert(key, self.profiles.len() - 1);
        Ok(self.profiles.len() - 1)
    }
}

/// The template for these settings, built once per process and rebuilt only
/// when the settings or the files they name change: snapshots compiled for
/// namer updates share it, and so do the per-core session caches.
fn shared_template(key: &ProfileKey) -> Result<(Arc<rustls::ClientConfig>, Sources), String> {
    type Registry = Vec<(ProfileKey, FileContents, Arc<rustls::ClientConfig>)>;
    static REGISTRY: std::sync::OnceLock<std::sync::Mutex<Registry>> = std::sync::OnceLock::new();
    let paths = key.paths();
    let contents = read_files(&paths);
    let registry = REGISTRY.get_or_init(Default::default);
    let mut registry = registry.lock().map_err(|_| "client TLS registry poisoned".to_string())?;
    let sources = Sources { paths, contents };
    if let Some((_, _, t)) = registry.iter().find(|(k, c, _)| k == key && *c == sources.contents) {
        return Ok((t.clone(), sources));
    }
    let template = Arc::new(build_client_config(key)?);
    registry.retain(|(k, _, _)| k != key);
    registry.push((key.clone(), sources.contents.clone(), template.clone()));
    Ok((template, sources))
}

pub fn versions(protocols: &[TlsVersion]) -> Vec<&'static rustls::SupportedProtocolVersion> {
    if protocols.is_empty() {
        return rustls::DEFAULT_VERSIONS.to_vec();
    }
    protocols
        .iter()
        .map(|v| match v {
            TlsVersion::Tls12 => &rustls::version::TLS12,
            TlsVersion::Tls13 => &rustls::version::TLS13,
        })
        .collect()
}

fn build_client_config(key: &ProfileKey) -> Result<rustls::ClientConfig, String> {
    let provider = super::provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions(&key.protocols))
        .map_err(|e| format!("client TLS protocols: {e}"))?;
    let verifier: Arc<dyn rustls::client::danger::ServerCertVerifier> = match &key.trust {
        None => Arc::new(NoValidation::new(provider.clone())),
        Some(paths) => Arc::new(NameVerifier::new(files::load_roots(paths)?, provider.clone())?),
    };
    let builder = builder.dangerous().with_custom_certificate_verifier(verifier);
    let mut config = match &key.client_auth {
        None => builder.with_no_client_auth(),
        Some((cert, key_path, intermediates)) => {
            let mut chain = files::load_certs(Path::new(cert)).map_err(|e| e.to_string())?;
            if let Some(i) = intermediates {
                chain.extend(files::load_certs(Path::new(i)).map_err(|e| e.to_string())?);
            }
            let key = files::load_key(Path::new(key_path)).map_err(|e| e.to_string())?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("client TLS clientAuth {cert} / {key_path}: {e}"))?
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use config::{BoundPathName, ClientParams, ClientPrefixConfig, TlsClientParams};

    fn no_validation() -> ClientTlsConfig {
        ClientTlsConfig::NoValidation { common_name: None }
    }

    fn bound_path(strict: bool) -> ClientConfig {
        ClientConfig {
            tls: Some(ClientTlsConfig::BoundPath {
                ca_cert_path: None,
                names: vec![BoundPathName {
                    prefix: "/#/io.l5d.fs/{service}".into(),
                    common_name_pattern: "{service}".into(),
                }],
                strict,
            }),
            ..Default::default()
        }
    }

    /// Compiling a validating profile needs roots; these tests use the
    /// system's, and skip when a machine has none.
    fn compile(client: &ClientConfig) -> Option<ClientTlsPolicy> {
        match ClientTlsPolicy::compile(client) {
            Ok(p) => Some(p),
            Err(e) if e.contains("system's trust store") => {
                eprintln!("skipped: {e}");
                None
            }
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn bound_path_names_come_from_the_bound_path() {
        let Some(policy) = compile(&bound_path(true)) else { return };
        let t = policy.target("/#/io.l5d.fs/serviceB").unwrap().unwrap();
        assert_eq!(t.name.as_deref(), Some("serviceB"));
        assert!(t.validates);
        let e = policy.target("/$/inet/127.0.0.1/80").unwrap_err();
        assert!(e.contains("matches no boundPath"), "{e}");
        let Some(lax) = compile(&bound_path(false)) else { return };
        assert_eq!(lax.target("/$/inet/127.0.0.1/80").unwrap(), None);
    }

    #[test]
    fn static_configs_apply_in_order_later_overriding() {
        let params = |cn: &str| {
            ClientTlsConfig::Params(TlsClientParams {
                enabled: true,
                common_name: Some(cn.into()),
                trust_certs: vec![],
                disable_validation: false,
                client_auth: None,
                protocols: vec![],
            })
        };
        let entry = |prefix: &str, tls: ClientTlsConfig| ClientPrefixConfig {
            prefix: prefix.into(),
            params: ClientParams { tls: Some(tls), ..Default::default() },
        };
        let client = ClientConfig {
            kind: ClientKind::Static,
            configs: vec![
                entry("/#/io.l5d.fs/{service}", params("{service}.example")),
                entry("/#/io.l5d.fs/special", params("special-cn")),
                entry("/$/inet", no_validation()),
            ],
            ..Default::default()
        };
        let Some(policy) = compile(&client) else { return };
        assert_eq!(policy.target("/#/io.l5d.fs/a").unwrap().unwrap().name.as_deref(), Some("a.example"));
        assert_eq!(policy.target("/#/io.l5d.fs/special").unwrap().unwrap().name.as_deref(), Some("special-cn"));
        let inet = policy.target("/$/inet/127.0.0.1/80").unwrap().unwrap();
        assert!(!inet.validates && inet.name.is_none());
        assert_eq!(policy.target("/#/other/x").unwrap(), None);
        assert_eq!(policy.profiles.len(), 2, "identical settings share a profile");
    }

    /// linkerd's proxy.yaml: TLS, verified against the host, for the names
    /// `/$/io.buoyant.rinet` binds on port 443 only.
    #[test]
    fn proxy_example_speaks_tls_to_port_443_of_rinet_names() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/linkerd/proxy.yaml");
        let config = config::Config::load(&path).unwrap();
        let Some(policy) = compile(&config.routers[0].client) else { return };
        let t = policy.target("/$/io.buoyant.rinet/443/web.example.com").unwrap().unwrap();
        assert_eq!((t.name.as_deref(), t.validates), (Some("web.example.com"), true));
        assert_eq!(policy.target("/$/io.buoyant.rinet/80/web.example.com").unwrap(), None);
        assert_eq!(policy.target("/$/inet/web.example.com/443").unwrap(), None);
        // An IP literal is a name rustls takes too.
        let t = policy.target("/$/io.buoyant.rinet/443/127.0.0.1").unwrap().unwrap();
        assert_eq!(t.name.as_deref(), Some("127.0.0.1"));
    }

    #[test]
    fn recompiled_policies_keep_each_cores_sessions() {
        let client = ClientConfig { tls: Some(no_validation()), ..Default::default() };
        let first = ClientTlsPolicy::compile(&client).unwrap();
        let mut known = CoreConfigs::new();
        let configs = first.per_core(&CoreConfigs::new(), &mut known);
        // A second router with the same settings shares the configuration.
        let beside = ClientTlsPolicy::compile(&client).unwrap().per_core(&CoreConfigs::new(), &mut known);
        assert_eq!(configs[0].serial, beside[0].serial, "one template, one configuration per core");
        // A new snapshot (a namer update) compiles the same policy again.
        let second = ClientTlsPolicy::compile(&client).unwrap();
        let mut kept = CoreConfigs::new();
        let again = second.per_core(&known, &mut kept);
        assert!(Arc::ptr_eq(&configs[0].rustls, &again[0].rustls), "same template: the core keeps its session cache");
        assert_eq!(configs[0].serial, again[0].serial, "and its pooled connections");
        assert_eq!(kept.len(), 1);
        // Another core (no known configs) gets its own.
        let other = second.per_core(&CoreConfigs::new(), &mut CoreConfigs::new());
        assert!(!Arc::ptr_eq(&configs[0].rustls, &other[0].rustls));
        assert_ne!(configs[0].serial, other[0].serial);
    }

    #[test]
    fn changed_trust_files_are_noticed_and_build_a_new_template() {
        let dir = std::env::temp_dir().join(format!("corelink-client-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join("ca.pem");
        let self_signed = |name: &str| {
            let key = rcgen::KeyPair::generate().unwrap();
            rcgen::CertificateParams::new(vec![name.to_string()]).unwrap().self_signed(&key).unwrap().pem()
        };
        std::fs::write(&ca, self_signed("one")).unwrap();
        let client = ClientConfig {
            tls: Some(ClientTlsConfig::Static {
                common_name: "b".into(),
                ca_cert_path: Some(ca.display().to_string()),
            }),
            ..Default::default()
        };
        let first = ClientTlsPolicy::compile(&client).unwrap();
        assert_eq!(first.changed_files(), None);
        std::fs::write(&ca, self_signed("two")).unwrap();
        assert!(first.changed_files().is_some());
        let second = ClientTlsPolicy::compile(&client).unwrap();
        assert_eq!(second.changed_files(), None);
        assert!(!Arc::ptr_eq(&first.profiles[0], &second.profiles[0]), "new files, new template");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn invalid_derived_names_fail_the_destination() {
        let client = ClientConfig {
            tls: Some(ClientTlsConfig::BoundPath {
                ca_cert_path: None,
                names: vec![BoundPathName { prefix: "/#/{a}/{b}".into(), common_name_pattern: "{a} {b}".into() }],
                strict: true,
            }),
            ..Default::default()
        };
        let Some(policy) = compile(&client) else { return };
        let e = policy.target("/#/x/y").unwrap_err();
        assert!(e.contains("not a valid DNS name"), "{e}");
    }

    #[test]
    fn missing_ca_file_is_an_error_naming_it() {
        let client = ClientConfig {
            tls: Some(ClientTlsConfig::Static {
                common_name: "b".into(),
                ca_cert_path: Some("/nonexistent/ca.pem".into()),
            }),
            ..Default::default()
        };
        let e = ClientTlsPolicy::compile(&client).unwrap_err();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
    }
}
