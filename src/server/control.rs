//! The control thread: everything that changes the routing snapshot happens
//! here, off the data path. It polls (every 200 ms) the config file and the
//! namers' directories, reacts to SIGHUP, compiles a new `RoutingSnapshot` and
//! publishes it with arc-swap; workers pick it up on their next request.
//!
//! A reload that fails validation, or that changes something only a restart
//! can change (listening addresses, workers, the io backend, the admin
//! address, buffer sizes), is refused with a log line and a counter, and the
//! old config keeps serving.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::namer::watch::Watched;
use crate::routing::{RoutingSnapshot, SharedSnapshot};

const POLL: Duration = Duration::from_millis(200);

/// Counters the admin server reports (reloads, refusals, snapshot generation).
#[derive(Default)]
pub struct ControlStats {
    pub reloads: AtomicU64,
    pub reloads_refused: AtomicU64,
    pub generation: AtomicU64,
}

pub struct Control {
    config_path: Option<PathBuf>,
    config: Config,
    shared: SharedSnapshot,
    generation: u64,
    config_watch: Option<Watched>,
    /// Set by the signal thread on SIGHUP.
    pub hup: Arc<AtomicBool>,
    pub stop: Arc<AtomicBool>,
    pub stats: Arc<ControlStats>,
}

impl Control {
    pub fn new(config_path: Option<PathBuf>, config: Config, shared: SharedSnapshot, generation: u64) -> Control {
        let config_watch = config_path.as_deref().map(Watched::new);
        let stats = Arc::new(ControlStats::default());
        stats.generation.store(generation, Ordering::Relaxed);
        Control {
            config_path,
            config,
            shared,
            generation,
            config_watch,
            hup: Arc::new(AtomicBool::new(false)),
            stop: Arc::new(AtomicBool::new(false)),
            stats,
        }
    }

    /// Runs until `stop` is set.
    pub fn run(mut self) {
        while !self.stop.load(Ordering::Relaxed) {
            std::thread::sleep(POLL);
            let hup = self.hup.swap(false, Ordering::Relaxed);
            let file_changed = self.config_watch.as_mut().is_some_and(Watched::changed);
            if hup || file_changed {
                self.reload(if hup { "SIGHUP" } else { "config file changed" });
            }
        }
    }

    fn reload(&mut self, why: &str) {
        let Some(path) = self.config_path.clone() else { return };
        let refuse = |stats: &ControlStats, reason: String| {
            stats.reloads_refused.fetch_add(1, Ordering::Relaxed);
            tracing::error!(trigger = why, %reason, "config reload refused; the running config keeps serving");
        };
        let config = match Config::load(&path) {
            Ok(c) => c,
            Err(e) => return refuse(&self.stats, e.to_string()),
        };
        if let Some(what) = needs_restart(&self.config, &config) {
            return refuse(&self.stats, format!("{what} changed, which needs a restart"));
        }
        let snapshot = match RoutingSnapshot::compile(&config, self.generation + 1) {
            Ok(s) => s,
            Err(e) => return refuse(&self.stats, e),
        };
        self.generation += 1;
        self.shared.publish(snapshot);
        self.config = config;
        self.stats.reloads.fetch_add(1, Ordering::Relaxed);
        self.stats.generation.store(self.generation, Ordering::Relaxed);
        tracing::info!(trigger = why, generation = self.generation, "config reloaded");
    }
}

/// The first setting that differs between `old` and `new` and cannot change
/// without restarting (sockets are bound and threads started once).
pub fn needs_restart(old: &Config, new: &Config) -> Option<&'static str> {
    let servers = |c: &Config| -> Vec<(String, Vec<std::net::SocketAddr>)> {
        c.routers.iter().map(|r| (r.label().to_string(), r.servers.iter().map(|s| s.addr()).collect())).collect()
    };
    if servers(old) != servers(new) {
        return Some("routers or their servers' addresses");
    }
    if old.admin.addr() != new.admin.addr() {
        return Some("admin address");
    }
    if old.corelink.workers != new.corelink.workers {
        return Some("corelink.workers");
    }
    if old.corelink.io != new.corelink.io {
        return Some("corelink.io");
    }
    if old.corelink.buffer_size != new.corelink.buffer_size || old.corelink.backlog != new.corelink.backlog {
        return Some("corelink.bufferSize or corelink.backlog");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Config {
        Config::parse(text, "t").unwrap()
    }

    #[test]
    fn restart_needed_only_for_sockets_and_threads() {
        let base = parse("routers:\n- protocol: http\n  dtab: /svc=>/$/inet/127.0.0.1/1;\n  servers: [{port: 1}]\n");
        let dtab = parse("routers:\n- protocol: http\n  dtab: /svc=>/$/inet/127.0.0.1/2;\n  servers: [{port: 1}]\n");
        let port = parse("routers:\n- protocol: http\n  servers: [{port: 2}]\n");
        let workers = parse("routers:\n- protocol: http\n  servers: [{port: 1}]\ncorelink: {workers: 3}\n");
        assert_eq!(needs_restart(&base, &dtab), None);
        assert!(needs_restart(&base, &port).is_some());
        assert_eq!(needs_restart(&base, &workers), Some("corelink.workers"));
    }
}
