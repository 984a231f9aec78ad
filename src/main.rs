//! The `corelink` command line: the arguments, and dispatch to the commands
//! in `corelink::cli`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use config::BackendChoice;
use corelink::cli;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Turns transparent huge pages off for this process (`PR_SET_THP_DISABLE`:
/// faults from then on; inherited by children).
///
/// mimalloc asks for huge pages on its arenas (`MADV_HUGEPAGE`), and on a
/// kernel whose THP mode is `madvise` or `always` a touched heap byte then
/// faults in 2 MiB. A proxy's heap is many small objects whose number moves
/// with its connections: after a burst, the few that outlive it keep whole
/// huge pages resident, and purging the freed 64 KiB ranges around them does
/// not give those back. Measured (docs/io-backends.md, "Huge pages"): 10 MiB
/// of a worker's heap in huge pages after 3,000 idle connections; RSS per
/// idle connection 2.1 KiB on epoll with them and 0.44 without; 9 MiB less
/// at start-up and under load. A proxy walks little memory per request, so
/// the TLB misses huge pages would save do not show in its CPU per request.
/// Failing (a kernel before 3.15) is harmless: the heap keeps them.
extern "C" fn disable_transparent_huge_pages() {
    // SAFETY: PR_SET_THP_DISABLE takes integers only.
    unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
}

/// Runs [`disable_transparent_huge_pages`] when the binary is loaded, before
/// the Rust runtime's first allocation faults in the heap's first pages
/// (called from `main`, 4 MiB of huge pages were already resident).
#[used]
#[link_section = ".init_array"]
static DISABLE_THP_AT_LOAD: extern "C" fn() = disable_transparent_huge_pages;

extern "C" {
    /// mimalloc: sets an option unless the environment (`MIMALLOC_*`)
    /// already did.
    fn mi_option_set_default(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// `mi_option_purge_delay` in mimalloc v3's `mi_option_e` (mimalloc.h of
/// libmimalloc-sys 0.1.49; the crate names the options only up to 14).
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

/// How long mimalloc keeps freed pages before giving them back to the OS.
const PURGE_DELAY_MS: std::ffi::c_long = 10;

/// Has mimalloc give freed memory back within 10 ms instead of 1 s.
///
/// After a burst of connections on io_uring, ring buffers and the burst's
/// other blocks are freed when the core goes quiet; with the default delay
/// their purge stayed scheduled and never ran, and an explicit
/// `mi_collect(true)` did not run it either (checked from gdb): 1.16–1.19
/// KiB of RSS per idle connection after load, 0.19–0.22 with a delay of 0 or
/// 10 ms (docs/io-backends.md, "Huge pages"). corelink allocates nothing
/// per request once warm (its buffers are recycled per core), so a short
/// delay costs nothing on the data path; bursts pay a few more `madvise`s.
/// `MIMALLOC_PURGE_DELAY` in the environment still wins.
fn shorten_allocator_purge_delay() {
    // SAFETY: sets an integer option; called before any other thread runs.
    unsafe { mi_option_set_default(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
}

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
        #[arg(long, default_value = cli::certs::DEFAULT_CA_NAME)]
        name: String,
        /// Validity in days.
        #[arg(long, default_value_t = cli::certs::DEFAULT_CA_DAYS)]
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
        #[arg(long, default_value_t = cli::certs::DEFAULT_CERT_DAYS)]
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
    shorten_allocator_purge_delay();
    corelink::logging::init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config, io } => cli::run(config, io),
        Command::Check { config } => cli::check::check(config),
        Command::Delegate { config, router, dtab, json, path } => {
            cli::delegate::delegate(config, router, dtab, json, &path)
        }
        Command::Demo { check } => cli::demo::run(check).map_err(anyhow::Error::from),
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

/// `corelink certs ca|issue`.
fn certs(command: CertsCommand) -> anyhow::Result<()> {
    match command {
        CertsCommand::Ca { out, name, days, force } => cli::certs::ca_command(&out, &name, days, force),
        CertsCommand::Issue { ca, name, out, days, force, k8s_secret } => {
            cli::certs::issue_command(&ca, &name, &out, days, force, k8s_secret.as_deref())
        }
    }
}
