//! The command-line features behind `src/main.rs` (which only parses the
//! arguments and dispatches): `corelink check` ([`check`]) with its
//! certificate findings ([`inspect`]), `corelink delegate` ([`delegate`]),
//! `corelink certs` ([`certs`]) and `corelink demo` ([`demo`]); [`run`]
//! loads a config for `corelink run`.
//!
//! The commands return `anyhow` errors; the modules they call keep typed ones.

pub mod certs;
pub mod check;
pub mod delegate;
pub mod demo;
pub mod inspect;

use std::path::{Path, PathBuf};

use anyhow::Context;

use config::BackendChoice;
use config::Config;

/// `corelink run`.
pub fn run(path: PathBuf, io: Option<BackendChoice>) -> anyhow::Result<()> {
    let config = load(&path)?;
    let options = crate::server::RunOptions { config_path: Some(path.clone()), io_override: io_override(io)? };
    crate::server::run(config, options).context("corelink run")?;
    Ok(())
}

/// The I/O backend override: `CORELINK_IO` when set, else the `--io` flag.
pub fn io_override(flag: Option<BackendChoice>) -> anyhow::Result<Option<BackendChoice>> {
    match std::env::var("CORELINK_IO") {
        Ok(v) if !v.is_empty() => {
            let choice = v.parse::<BackendChoice>().map_err(anyhow::Error::msg).context("CORELINK_IO")?;
            Ok(Some(choice))
        }
        _ => Ok(flag),
    }
}

/// Loads a config, logging the warnings for keys accepted but ignored.
pub fn load(path: &Path) -> anyhow::Result<Config> {
    let (config, warnings) = Config::load_with_warnings(path)?;
    crate::logging::apply_config_level(config.corelink.log_level.as_deref());
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
