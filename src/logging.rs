//! Logging: `tracing` to stderr, filtered by `RUST_LOG` when it is set, else
//! by the config's `corelink.logLevel` (default `info`). The filter sits
//! behind a reload handle so a config reload can change it without a
//! restart.

use std::sync::OnceLock;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

static FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// Whether `RUST_LOG` decides (then the config's level is ignored).
fn from_env() -> bool {
    std::env::var_os("RUST_LOG").is_some_and(|v| !v.is_empty())
}

/// Installs the subscriber (once per process): `RUST_LOG`, else `info` until
/// a config says otherwise.
pub fn init() {
    let filter = if from_env() { EnvFilter::from_default_env() } else { EnvFilter::new("info") };
    let (filter, handle) = reload::Layer::new(filter);
    use std::io::IsTerminal;
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(std::io::stderr().is_terminal());
    if tracing_subscriber::registry().with(filter).with(fmt).try_init().is_ok() {
        let _ = FILTER.set(handle);
    }
}

/// Applies a config's `corelink.logLevel` (None: `info`), unless `RUST_LOG`
/// is set. The config loader has validated the text.
pub fn apply_config_level(level: Option<&str>) {
    let Some(handle) = FILTER.get() else { return };
    if from_env() {
        return;
    }
    let text = level.unwrap_or("info");
    match EnvFilter::try_new(text) {
        Ok(filter) => {
            if handle.reload(filter).is_ok() {
                tracing::debug!(level = text, "log level set from the config");
            }
        }
        Err(e) => tracing::warn!(level = text, error = %e, "invalid corelink.logLevel; keeping the current one"),
    }
}
