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
    /// Run the seed scenario on localhost: a demo serviceB, sidecar B
    /// (incoming, :4143) and sidecar A (outgoing, :4141), and send requests
    /// through them as ServiceA.
    Demo {
        /// Verify the scenario and exit 0 or 1 instead of serving on.
        #[arg(long)]
        check: bool,
    },
}

fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config, io } => run(config, io),
        Command::Check { config } => check(config),
        Command::Delegate { config, router, dtab, json, path } => delegate(config, router, dtab, json, &path),
        Command::Demo { check } => corelink::demo::run(check).map_err(anyhow::Error::from),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("corelink: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
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
    corelink::routing::RoutingSnapshot::compile(&config, 0).map_err(anyhow::Error::msg)?;
    println!("{}: ok", path.display());
    println!("admin: {}", config.admin.addr());
    for router in &config.routers {
        let servers: Vec<String> = router.servers.iter().map(|s| s.addr().to_string()).collect();
        println!("router {} (http)", router.label());
        println!("  servers: {}", servers.join(", "));
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

fn delegate(
    config: Option<PathBuf>,
    router: Option<String>,
    dtab: Option<String>,
    json: bool,
    path: &str,
) -> anyhow::Result<()> {
    use corelink::routing::{Delegator, Dtab, EmptyNamers, Path, RoutingSnapshot};
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
