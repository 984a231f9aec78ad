//! The `corelink` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use corelink::config::Config;
use corelink::io::BackendChoice;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "corelink",
    version,
    about = "A thread-per-core sidecar proxy for linker-to-linker TLS (linkerd 1.x model)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy with a linkerd 1.x configuration.
    Run {
        #[arg(long, short)]
        config: PathBuf,
        /// I/O backend; overrides `corelink.io` (the CORELINK_IO environment
        /// variable overrides both).
        #[arg(long)]
        io: Option<BackendChoice>,
    },
    /// Validate a configuration and print what it sets up.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Explain how a path delegates: each rewrite step, then `=> TREE`, the
    /// bound name tree in finagle syntax (as linkerd's delegator shows it).
    Delegate {
        /// A config whose router's dtab and namers to use.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Which router (by label); default: the first.
        #[arg(long)]
        router: Option<String>,
        /// A dtab to delegate with: alone, or appended to the router's (as a
        /// per-request `l5d-dtab` would be).
        #[arg(long)]
        dtab: Option<String>,
        /// Print linkerd's /delegator.json instead of text.
        #[arg(long)]
        json: bool,
        /// The path, e.g. /svc/serviceB.
        path: String,
    },
    /// Run the linker-to-linker TLS scenario on localhost: a demo serviceB, sidecar B
    /// (incoming, :4143) and sidecar A (outgoing, :4141), and send requests
    /// through them as ServiceA.
    Demo {
        /// Verify the scenario and exit 0 or 1 instead of serving on.
        #[arg(long)]
        check: bool,
    },
    /// Make certificates for linker-to-linker TLS, in the file layout of the
    /// linkerd "Transparent TLS" write-up (no openssl needed).
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
}

#[derive(Subcommand)]
enum CertsCommand {
    /// Create a CA: OUT/cacertificate.pem and OUT/cakey.pem (mode 0600).
    Ca {
        /// Directory to write into (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// The CA's subject common name.
        #[arg(long, default_value = corelink::certs::DEFAULT_CA_NAME)]
        name: String,
        /// Validity in days.
        #[arg(long, default_value_t = corelink::certs::DEFAULT_CA_DAYS)]
        days: u32,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
    /// Issue a certificate for a service, signed by the CA in --ca:
    /// OUT/certificate.pem and OUT/key.pem (mode 0600). X.509 v3 with the
    /// name as CN and subjectAltName, for both server and client (mTLS) use.
    Issue {
        /// Directory holding cacertificate.pem and cakey.pem.
        #[arg(long)]
        ca: PathBuf,
        /// The name peers verify (the client's commonName, e.g. serviceB),
        /// or an IP address.
        #[arg(long)]
        name: String,
        /// Directory to write into (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Validity in days.
        #[arg(long, default_value_t = corelink::certs::DEFAULT_CERT_DAYS)]
        days: u32,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
        /// Also print, on stdout, a Kubernetes Secret of this name holding
        /// cacertificate.pem, certificate.pem and key.pem.
        #[arg(long, value_name = "SECRET_NAME")]
        k8s_secret: Option<String>,
    },
}

fn main() -> ExitCode {
    corelink::logging::init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config, io } => run(config, io),
        Command::Check { config } => check(config),
        Command::Delegate { config, router, dtab, json, path } => delegate(config, router, dtab, json, &path),
        Command::Demo { check } => corelink::demo::run(check).map_err(anyhow::Error::from),
        Command::Certs { command } => certs(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("corelink: error: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, joined with ": ", leaving out a cause whose
/// text the message already shows (typed errors often print their source).
fn error_chain(e: &anyhow::Error) -> String {
    let mut message = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
    }
    message
}

fn io_override(flag: Option<BackendChoice>) -> anyhow::Result<Option<BackendChoice>> {
    match std::env::var("CORELINK_IO") {
        Ok(v) if !v.is_empty() => {
            let choice = v.parse::<BackendChoice>().map_err(anyhow::Error::msg).context("CORELINK_IO")?;
            Ok(Some(choice))
        }
        _ => Ok(flag),
    }
}

/// Loads a config, logging the warnings for keys accepted but ignored.
fn load(path: &std::path::Path) -> anyhow::Result<Config> {
    let (config, warnings) = Config::load_with_warnings(path)?;
    corelink::logging::apply_config_level(config.corelink.log_level.as_deref());
    for w in warnings {
        tracing::warn!("{w}");
    }
    let (errors, pending) = config.not_yet_in_effect();
    for w in pending {
        tracing::warn!("{}: {w}", path.display());
    }
    for w in config.tls_warnings() {
        tracing::warn!("{}: {w}", path.display());
    }
    if !errors.is_empty() {
        anyhow::bail!("{}: {}", path.display(), errors.join("; "));
    }
    Ok(config)
}

fn run(path: PathBuf, io: Option<BackendChoice>) -> anyhow::Result<()> {
    let config = load(&path)?;
    let options = corelink::server::RunOptions { config_path: Some(path.clone()), io_override: io_override(io)? };
    corelink::server::run(config, options).context("corelink run")?;
    Ok(())
}

fn check(path: PathBuf) -> anyhow::Result<()> {
    let config = load(&path)?;
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
    corelink::routing::RoutingSnapshot::compile(&config, 0)
        .map_err(|e| anyhow::anyhow!("{}", with_position(&origin, &text, &e)))?;
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
        let transformers: Vec<&str> = router.interpreter.transformers.iter().map(|t| t.kind()).collect();
        if !transformers.is_empty() {
            println!("  transformers: {}", transformers.join(", "));
        }
        println!("  dstPrefix: {}", router.dst_prefix);
        println!("  dtab: {}", router.dtab.split_whitespace().collect::<Vec<_>>().join(" "));
    }
    for namer in &config.namers {
        let corelink::config::NamerConfig::Fs { root_dir, .. } = namer;
        println!("namer io.l5d.fs: /#{} from {root_dir}", namer.prefix());
    }
    let workers = config.corelink.workers.map_or("one per core".to_string(), |n| n.to_string());
    println!("workers: {workers}; io: {:?}", config.corelink.io);
    Ok(())
}

/// `FILE:LINE:COL: MESSAGE` for a message that starts with the key path it
/// is about (`routers[0].httpAccessLog: …`), as decoding errors read;
/// `FILE: MESSAGE` when the key cannot be found.
fn with_position(origin: &str, text: &str, message: &str) -> String {
    let key = message.split(": ").next().unwrap_or_default();
    match corelink::config::locate(text, key) {
        Some(mark) => format!("{origin}:{mark}: {message}"),
        None => format!("{origin}: {message}"),
    }
}

/// Prints, on stderr, the problems of every certificate, key and CA file the
/// config names, with the router and the config key that names the file;
/// returns how many are errors. Run at check time because at run time they
/// only show as failed handshakes.
fn check_certificates(config: &Config, mut report: CertReporter) -> usize {
    use corelink::config::ClientTlsConfig;
    use corelink::tls::inspect::{inspect_cert_and_key, inspect_intermediates, inspect_trust_anchors};
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

    fn locate(&self, key: &str) -> Option<corelink::config::Mark> {
        corelink::config::locate(&self.text, key)
    }

    /// Findings about a certificate/key pair under `base` (`...tls`).
    fn pair(&mut self, label: &str, base: &str, findings: Vec<corelink::tls::inspect::Finding>) {
        use corelink::tls::inspect::FileRole;
        for f in findings {
            let key = format!("{base}.{}", if f.role == FileRole::Key { "keyPath" } else { "certPath" });
            self.print(label, &key, self.locate(&key), &f);
        }
    }

    /// Findings about the one file named by `key`.
    fn file(&mut self, label: &str, key: &str, findings: Vec<corelink::tls::inspect::Finding>) {
        self.print_all(label, key, self.locate(key), findings);
    }

    fn print_all(
        &mut self,
        label: &str,
        key: &str,
        at: Option<corelink::config::Mark>,
        findings: Vec<corelink::tls::inspect::Finding>,
    ) {
        for f in findings {
            self.print(label, key, at, &f);
        }
    }

    fn print(
        &mut self,
        label: &str,
        key: &str,
        at: Option<corelink::config::Mark>,
        finding: &corelink::tls::inspect::Finding,
    ) {
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

/// `corelink certs ca|issue`. What was written goes to stderr, so that
/// stdout carries only the Secret manifest (for `| kubectl apply -f -`).
fn certs(command: CertsCommand) -> anyhow::Result<()> {
    use corelink::certs;
    match command {
        CertsCommand::Ca { out, name, days, force } => {
            let files = certs::create_ca(&out, &name, days, force).context("corelink certs ca")?;
            eprintln!("wrote {} (the CA certificate peers trust: caCertPath, trustCerts)", files.cert.display());
            eprintln!("wrote {} (the CA key, mode 0600: keep it off the proxies' machines)", files.key.display());
        }
        CertsCommand::Issue { ca, name, out, days, force, k8s_secret } => {
            // Checked first, so a bad name does not leave files behind.
            if let Some(secret) = &k8s_secret {
                certs::check_k8s_secret_name(secret).context("--k8s-secret")?;
            }
            let files = certs::issue(&ca, &name, &out, days, force)
                .with_context(|| format!("corelink certs issue --name {name}"))?;
            eprintln!("wrote {} (certificate for {name}: certPath)", files.cert.display());
            eprintln!("wrote {} (its key, mode 0600: keyPath)", files.key.display());
            if let Some(secret) = k8s_secret {
                print!("{}", certs::k8s_secret(&name, &secret, &files.ca_cert_pem, &files.pem.cert, &files.pem.key));
            }
        }
    }
    Ok(())
}

fn delegate(
    config: Option<PathBuf>,
    router: Option<String>,
    dtab: Option<String>,
    json: bool,
    path: &str,
) -> anyhow::Result<()> {
    use corelink::routing::RoutingSnapshot;
    use naming::{Delegator, Dtab, EmptyNamers, Path};
    let path = Path::parse(path).map_err(|e| anyhow::anyhow!("path {path:?}: {e}"))?;
    let extra = dtab.as_deref().map(Dtab::parse).transpose().map_err(|e| anyhow::anyhow!("--dtab: {e}"))?;
    let delegation = match config {
        Some(config_path) => {
            let config = load(&config_path)?;
            let snapshot = RoutingSnapshot::compile(&config, 0).map_err(anyhow::Error::msg)?;
            let index = match &router {
                Some(label) => {
                    snapshot.router_index(label).ok_or_else(|| anyhow::anyhow!("no router labelled {label:?}"))?
                }
                None => 0,
            };
            snapshot.delegate(index, &path, extra.as_ref())
        }
        None => {
            let dtab = extra.ok_or_else(|| anyhow::anyhow!("give --config, --dtab or both"))?;
            Delegator::new(&dtab, &EmptyNamers).delegate(&path)
        }
    };
    if json {
        println!("{}", delegation.to_json());
    } else {
        print!("{}", delegation.render_text());
    }
    Ok(())
}
