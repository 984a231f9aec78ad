//! `corelink check`: validate a configuration, report on the certificate
//! files it names ([`super::inspect`]), and print what it sets up.

use std::path::PathBuf;

use config::Config;

/// `corelink check --config PATH`.
pub fn check(path: PathBuf) -> anyhow::Result<()> {
    let config = super::load(&path)?;
    // Before compiling, which loads the TLS files too but stops at the first
    // problem with a terser message.
    // Read again for positions: certificate findings point at the line
    // that names the file, as decoding errors do.
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let origin = path.display().to_string();
    let cert_errors = check_certificates(&config, CertReporter::new(origin.clone(), text.clone()));
    if cert_errors > 0 {
        anyhow::bail!("{origin}: {cert_errors} certificate error(s)");
    }
    let (compiled, unset) = compile_here(&config);
    for (key, var) in unset {
        let at = config::locate(&text, &key).map_or(String::new(), |mark| format!("{mark}:"));
        eprintln!(
            "{origin}:{at} warning: {key}: io.l5d.k8s.localnode reads {var} when corelink starts, and it is not set here: checked with a stand-in; `corelink run` refuses to start without it"
        );
    }
    compiled.map_err(|e| anyhow::anyhow!("{}", with_position(&origin, &text, &e)))?;
    println!("{}: ok", path.display());
    println!("admin: {}", config.admin.addr());
    for router in &config.routers {
        let servers: Vec<String> = router.servers.iter().map(|s| s.addr().to_string()).collect();
        println!("router {} (http)", router.label());
        println!("  servers: {}", servers.join(", "));
        for server in &router.servers {
            if let Some(tls) = &server.tls {
                let clients = match (&tls.ca_cert_path, tls.require_client_auth) {
                    (Some(ca), true) => format!("client certificates required (CA {ca})"),
                    (Some(ca), false) => format!("client certificates checked when sent (CA {ca})"),
                    (None, _) => "no client certificates".to_string(),
                };
                println!("  server TLS on {}: {} ({clients})", server.addr(), tls.cert_path);
            }
        }
        let client_tls =
            router.client.tls.iter().map(|t| ("every destination".to_string(), t)).chain(
                router.client.configs.iter().filter_map(|c| c.params.tls.as_ref().map(|t| (c.prefix.clone(), t))),
            );
        for (scope, tls) in client_tls {
            println!("  client TLS ({scope}): {}", tls.describe());
        }
        let ids: Vec<String> = router.identifiers().iter().map(|i| i.describe()).collect();
        println!("  identifier: {}", ids.join(", then "));
        if let Some(c) = &router.interpreter.config_map {
            println!("  interpreter: io.l5d.k8s.configMap: the dtab of {} goes in front of this dtab", c.describe());
        }
        if !router.interpreter.transformers.is_empty() {
            println!("  transformers: {}", describe_transformers(&router.interpreter.transformers));
        }
        println!("  dstPrefix: {}", router.dst_prefix);
        println!("  dtab: {}", router.dtab.split_whitespace().collect::<Vec<_>>().join(" "));
    }
    for namer in &config.namers {
        match namer {
            config::NamerConfig::Fs { root_dir, .. } => {
                println!("namer io.l5d.fs: /#{} from {root_dir}", namer.prefix())
            }
            config::NamerConfig::K8s(k) => {
                let label = k.label_selector.as_ref().map_or(String::new(), |l| format!("/<{l}>"));
                println!(
                    "namer io.l5d.k8s: /#{}/<namespace>/<port>/<service>{label} from {}",
                    namer.prefix(),
                    k.api.describe()
                )
            }
            config::NamerConfig::DnsSrv(d) => {
                let servers = match d.dns_hosts.is_empty() {
                    true => "corelink.dns's servers".to_string(),
                    false => d.dns_hosts.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
                };
                println!(
                    "namer io.l5d.dnssrv: /#{}/<record> from {servers}, every {} s",
                    namer.prefix(),
                    d.refresh_interval_secs
                )
            }
        }
        if !namer.transformers().is_empty() {
            println!("  transformers: {}", describe_transformers(namer.transformers()));
        }
    }
    let workers = config.corelink.workers.map_or("one per core".to_string(), |n| n.to_string());
    println!("workers: {workers}; io: {:?}", config.corelink.io);
    Ok(())
}

/// Compiles `config` as `corelink run` would, except that the environment
/// variables `io.l5d.k8s.localnode` needs at start-up (`POD_IP`,
/// `NODE_NAME`) get a stand-in when unset: `check` usually runs outside the
/// pod. Returns the transformers (key paths) that needed one, with the
/// variable.
fn compile_here(config: &Config) -> (Result<crate::table::RoutingSnapshot, String>, Vec<(String, &'static str)>) {
    use config::TransformerConfig as T;
    let mut dns = crate::namer::dns::OneShot::new(&config.corelink.dns);
    let mut namers = crate::namer::NamerInputs::load(config, None, &Default::default(), &mut dns);
    let lists = config.namers.iter().enumerate().map(|(i, n)| (format!("namers[{i}]"), n.transformers())).chain(
        config
            .routers
            .iter()
            .enumerate()
            .map(|(i, r)| (format!("routers[{i}].interpreter"), &r.interpreter.transformers[..])),
    );
    let env = &mut namers.local_node;
    let mut unset = Vec::new();
    for (at, list) in lists {
        for (j, t) in list.iter().enumerate() {
            let var = match t {
                T::LocalNode { host_network: false, .. } if env.pod_ip.is_none() => "POD_IP",
                T::LocalNode { host_network: true, .. } if env.node_name.is_none() => "NODE_NAME",
                _ => continue,
            };
            unset.push((format!("{at}.transformers[{j}]"), var));
        }
    }
    // Stand-ins (TEST-NET-1; any name): only what the transformers' client
    // name prefixes show, in this compile only.
    env.pod_ip.get_or_insert_with(|| "192.0.2.1".into());
    env.node_name.get_or_insert_with(|| "node".into());
    let inputs = crate::server::control::load_inputs(config, &namers);
    (crate::table::RoutingSnapshot::compile_with(config, &inputs, 0), unset)
}

/// The transformers of a list, in order, each with what it does.
fn describe_transformers(transformers: &[config::TransformerConfig]) -> String {
    use config::TransformerConfig as T;
    let describe = |t: &T| -> String {
        match t {
            T::Port { port, .. } => format!("{} (port {port})", t.kind()),
            T::Localhost { .. } => t.kind().to_string(),
            T::DaemonSet(d) => format!(
                "{} (the pod of {}/{} port {} on the same {}, from {})",
                t.kind(),
                d.namespace,
                d.service,
                d.port,
                if d.host_network { "node" } else { "/24" },
                d.api.describe()
            ),
            T::LocalNode { host_network: true, .. } => format!("{} (nodeName = $NODE_NAME)", t.kind()),
            T::LocalNode { host_network: false, .. } => format!("{} (the /24 of $POD_IP)", t.kind()),
        }
    };
    transformers.iter().map(describe).collect::<Vec<_>>().join(", then ")
}

/// `FILE:LINE:COL: MESSAGE` for a message that starts with the key path it
/// is about (`routers[0].httpAccessLog: …`), as decoding errors read;
/// `FILE: MESSAGE` when the key cannot be found.
fn with_position(origin: &str, text: &str, message: &str) -> String {
    let key = message.split(": ").next().unwrap_or_default();
    match config::locate(text, key) {
        Some(mark) => format!("{origin}:{mark}: {message}"),
        None => format!("{origin}: {message}"),
    }
}

/// Prints, on stderr, the problems of every certificate, key and CA file the
/// config names, with the router and the config key that names the file;
/// returns how many are errors. Run at check time because at run time they
/// only show as failed handshakes.
fn check_certificates(config: &Config, mut report: CertReporter) -> usize {
    use super::inspect::{inspect_cert_and_key, inspect_intermediates, inspect_trust_anchors};
    use config::ClientTlsConfig;
    let now = time::OffsetDateTime::now_utc();
    let path = std::path::Path::new;
    for (i, router) in config.routers.iter().enumerate() {
        let label = router.label();
        for (j, server) in router.servers.iter().enumerate() {
            let Some(tls) = &server.tls else { continue };
            let base = format!("routers[{i}].servers[{j}].tls");
            report.pair(label, &base, inspect_cert_and_key(path(&tls.cert_path), path(&tls.key_path), now));
            if let Some(p) = &tls.intermediate_certs_path {
                report.file(label, &format!("{base}.intermediateCertsPath"), inspect_intermediates(path(p), now));
            }
            if let Some(p) = &tls.ca_cert_path {
                report.file(label, &format!("{base}.caCertPath"), inspect_trust_anchors(path(p), now));
            }
        }
        let client = &router.client;
        let global = client.tls.iter().map(|tls| (format!("routers[{i}].client.tls"), tls));
        let per_prefix = client.configs.iter().enumerate().filter_map(|(k, c)| {
            c.params.tls.as_ref().map(|tls| (format!("routers[{i}].client.configs[{k}].tls"), tls))
        });
        for (base, tls) in global.chain(per_prefix) {
            match tls {
                ClientTlsConfig::Params(p) if p.enabled => {
                    if !p.disable_validation {
                        for (k, ca) in p.trust_certs.iter().enumerate() {
                            let findings = inspect_trust_anchors(path(ca), now);
                            if p.trust_certs.len() == 1 {
                                // trustCertsBundle arrives as the only entry.
                                let at = report
                                    .locate(&format!("{base}.trustCerts[0]"))
                                    .or_else(|| report.locate(&format!("{base}.trustCertsBundle")));
                                report.print_all(label, &format!("{base}.trustCerts/trustCertsBundle"), at, findings);
                            } else {
                                report.file(label, &format!("{base}.trustCerts[{k}]"), findings);
                            }
                        }
                    }
                    if let Some(auth) = &p.client_auth {
                        let auth_base = format!("{base}.clientAuth");
                        let findings = inspect_cert_and_key(path(&auth.cert_path), path(&auth.key_path), now);
                        report.pair(label, &auth_base, findings);
                        if let Some(chain) = &auth.intermediate_certs_path {
                            let key = format!("{auth_base}.intermediateCertsPath");
                            report.file(label, &key, inspect_intermediates(path(chain), now));
                        }
                    }
                }
                ClientTlsConfig::Static { ca_cert_path: Some(ca), .. }
                | ClientTlsConfig::BoundPath { ca_cert_path: Some(ca), .. } => {
                    report.file(label, &format!("{base}.caCertPath"), inspect_trust_anchors(path(ca), now));
                }
                _ => {}
            }
        }
    }
    report.errors
}

/// Prints certificate findings as config errors are printed: `FILE:LINE:COL:`
/// of the key that names the file, then the router and the key's path.
struct CertReporter {
    errors: usize,
    /// The config file, as the user named it.
    origin: String,
    /// Its text, to find where each key is written.
    text: String,
}

impl CertReporter {
    fn new(origin: String, text: String) -> Self {
        CertReporter { errors: 0, origin, text }
    }

    fn locate(&self, key: &str) -> Option<config::Mark> {
        config::locate(&self.text, key)
    }

    /// Findings about a certificate/key pair under `base` (`...tls`).
    fn pair(&mut self, label: &str, base: &str, findings: Vec<super::inspect::Finding>) {
        use super::inspect::FileRole;
        for f in findings {
            let key = format!("{base}.{}", if f.role == FileRole::Key { "keyPath" } else { "certPath" });
            self.print(label, &key, self.locate(&key), &f);
        }
    }

    /// Findings about the one file named by `key`.
    fn file(&mut self, label: &str, key: &str, findings: Vec<super::inspect::Finding>) {
        self.print_all(label, key, self.locate(key), findings);
    }

    fn print_all(&mut self, label: &str, key: &str, at: Option<config::Mark>, findings: Vec<super::inspect::Finding>) {
        for f in findings {
            self.print(label, key, at, &f);
        }
    }

    fn print(&mut self, label: &str, key: &str, at: Option<config::Mark>, finding: &super::inspect::Finding) {
        let level = if finding.is_error() {
            self.errors += 1;
            "error"
        } else {
            "warning"
        };
        let origin = &self.origin;
        match at {
            Some(mark) => eprintln!("{origin}:{mark}: {level}: router {label}: {key}: {finding}"),
            None => eprintln!("{origin}: {level}: router {label}: {key}: {finding}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use config::Config;

    /// Every example compiles into a routing snapshot (the config crate's
    /// own tests check that each parses with only the expected warnings).
    #[test]
    fn every_example_config_compiles() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/linkerd");
        let mut seen = 0;
        let mut entries: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        for path in entries {
            if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
                continue;
            }
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            // The examples name their certificates and namer directory relative
            // to examples/linkerd (where `corelink check` runs on them).
            let text = std::fs::read_to_string(&path)
                .unwrap()
                .replace(" certificates/", &format!(" {}/certificates/", dir.display()))
                .replace("- certificates/", &format!("- {}/certificates/", dir.display()))
                .replace("rootDir: disco", &format!("rootDir: {}/disco", dir.display()));
            let config = Config::parse(&text, &name).unwrap();
            super::compile_here(&config).0.unwrap_or_else(|e| panic!("{name}: {e}"));
            seen += 1;
        }
        assert!(seen >= 6, "only {seen} examples");
    }
}
