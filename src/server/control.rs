//! The control thread: everything that changes the routing snapshot happens
//! here, off the data path. It polls (every 200 ms) the config file and the
//! namers' directories, reacts to SIGHUP, runs the `io.l5d.k8s` watches (on
//! a tokio current-thread runtime it drives while it waits between polls,
//! `namer::k8s::Watchers`), compiles a new `RoutingSnapshot` and publishes
//! it with arc-swap; workers pick it up on their next request.
//!
//! A Kubernetes or `io.l5d.dnssrv` change wakes the loop at once; snapshots
//! for them are at least `DISCOVERY_MIN_INTERVAL` apart, so a burst of
//! events (a rollout, or clients making up SRV record names) makes one
//! snapshot per interval.
//!
//! A reload that fails validation, or that changes something only a restart
//! can change (listening addresses, workers, the io backend, the admin
//! address, buffer sizes), is refused with a log line and a counter, and the
//! old config keeps serving.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::admin::ControlStats;
use crate::namer::dns::{ConfigNames, HostResolver};
use crate::namer::dnssrv::SrvNamers;
use crate::namer::k8s::Watchers;
use crate::namer::watch::Watched;
use crate::namer::NamerInputs;
use crate::table::{RouterInputs, RoutingSnapshot, SharedSnapshot, SnapshotInputs};
use config::{Config, NamerConfig};

const POLL: Duration = Duration::from_millis(200);
/// How often server certificate files are compared with what is served.
const CERT_POLL: Duration = Duration::from_secs(2);
/// The shortest time between two snapshots for Kubernetes and
/// `io.l5d.dnssrv` changes: a change reaches the cores within this (plus
/// compiling), and a burst of events makes one snapshot per interval (each
/// snapshot empties every core's route cache).
const DISCOVERY_MIN_INTERVAL: Duration = Duration::from_millis(100);

/// The discovery that runs on the control thread's runtime.
pub struct Discovery {
    /// The `io.l5d.k8s` watches (they own the runtime).
    pub k8s: Watchers,
    /// The config's host names.
    pub dns: ConfigNames,
    /// The `io.l5d.dnssrv` namers' records.
    pub srv: SrvNamers,
}

pub struct Control {
    config_path: Option<PathBuf>,
    config: Config,
    shared: SharedSnapshot,
    generation: u64,
    config_watch: Option<Watched>,
    namer_watches: Vec<Watched>,
    inputs: NamerInputs,
    /// The `io.l5d.k8s` watches, and the runtime they run on.
    k8s: Watchers,
    /// The config's host names, refreshed by TTL on the same runtime.
    dns: ConfigNames,
    srv: SrvNamers,
    /// When a Kubernetes or `io.l5d.dnssrv` change was last published.
    last_discovery_publish: std::time::Instant,
    last_cert_poll: std::time::Instant,
    /// Client TLS files whose snapshot failed to compile (a key that does
    /// not match its certificate, half an update): not retried, nor logged
    /// again, until they change.
    client_tls_failed: Option<crate::tls::client::FileContents>,
    /// Set by the signal thread on SIGHUP.
    pub hup: Arc<AtomicBool>,
    pub stop: Arc<AtomicBool>,
    pub stats: Arc<ControlStats>,
}

impl Control {
    /// `inputs` are what the published snapshot was compiled from;
    /// `discovery` the watches and names started for `config` (their state
    /// is in `inputs`).
    pub fn new(
        config_path: Option<PathBuf>,
        config: Config,
        inputs: NamerInputs,
        discovery: Discovery,
        shared: SharedSnapshot,
        generation: u64,
        stats: Arc<ControlStats>,
    ) -> Control {
        let Discovery { k8s, dns, srv } = discovery;
        stats.set_k8s_watches(k8s.stats());
        let config_watch = config_path.as_deref().map(Watched::new);
        let namer_watches = namer_watches(&config);
        Control {
            config_path,
            config,
            shared,
            generation,
            config_watch,
            namer_watches,
            inputs,
            k8s,
            dns,
            srv,
            last_discovery_publish: std::time::Instant::now(),
            last_cert_poll: std::time::Instant::now(),
            client_tls_failed: None,
            hup: Arc::new(AtomicBool::new(false)),
            stop: Arc::new(AtomicBool::new(false)),
            stats,
        }
    }

    /// Runs until `stop` is set.
    pub fn run(mut self) {
        let mut next_poll = std::time::Instant::now() + POLL;
        while !self.stop.load(Ordering::Relaxed) {
            // Runs the k8s watches meanwhile; returns early for a change
            // (not before the spacing allows). A dnssrv change held back by
            // the spacing wakes the loop when it may go.
            let not_before = self.last_discovery_publish + DISCOVERY_MIN_INTERVAL;
            let wake = if self.srv.has_changed() { next_poll.min(not_before) } else { next_poll };
            self.k8s.park(wake, not_before);
            self.publish_discovery(not_before);
            // Then take the records requests asked for (their watches
            // start; the first answer publishes, then wakes the requests).
            // In this order, and with the runtime's tasks still while the
            // control thread is out of `park`, a record answered is a
            // record published.
            self.srv.take_asks();
            // A host name's addresses changed at its refresh.
            if self.dns.take_changed() {
                self.inputs.dns = self.dns.answers(&self.inputs.host_names());
                if self.publish("DNS changed") {
                    self.stats.namer_updates.fetch_add(1, Ordering::Relaxed);
                }
            }
            if std::time::Instant::now() < next_poll {
                continue;
            }
            next_poll = std::time::Instant::now() + POLL;
            self.srv.expire_idle();
            if self.last_cert_poll.elapsed() >= CERT_POLL {
                self.last_cert_poll = std::time::Instant::now();
                self.reload_certificates();
                self.reload_client_tls();
            }
            let hup = self.hup.swap(false, Ordering::Relaxed);
            let file_changed = self.config_watch.as_mut().is_some_and(Watched::changed);
            if hup || file_changed {
                self.reload(if hup { "SIGHUP" } else { "config file changed" });
                continue;
            }
            let mut namers_changed = false;
            for w in &mut self.namer_watches {
                namers_changed |= w.changed();
            }
            if namers_changed {
                let inputs = NamerInputs::load(&self.config, Some(&self.inputs), &self.k8s.views(), &mut self.dns);
                if inputs.files_or_dns_differ(&self.inputs) {
                    self.inputs = inputs;
                    if self.publish("namer changed") {
                        self.stats.namer_updates.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }

    /// Publishes what the Kubernetes watches and the `io.l5d.dnssrv`
    /// refreshes changed, in one snapshot. A dnssrv change waits for
    /// `not_before` (the same spacing as Kubernetes changes, which `park`
    /// applies): clients binding made-up record names change the records
    /// as fast as the rate limit lets them.
    fn publish_discovery(&mut self, not_before: std::time::Instant) {
        let k8s = self.k8s.take_changed();
        if k8s {
            self.inputs.set_k8s(&self.config, &self.k8s.views());
            self.inputs.set_config_maps(self.k8s.config_map_dtabs(), &mut self.dns);
        }
        let due = k8s || std::time::Instant::now() >= not_before;
        let srv = due && self.srv.take_changed();
        if srv {
            self.inputs.set_dnssrv(&self.config, self.srv.views());
        }
        if !k8s && !srv {
            return;
        }
        self.last_discovery_publish = std::time::Instant::now();
        let why = match (k8s, srv) {
            (true, true) => "Kubernetes objects and io.l5d.dnssrv records changed",
            (true, false) => "Kubernetes objects changed",
            _ => "io.l5d.dnssrv records changed",
        };
        if self.publish(why) {
            self.stats.namer_updates.fetch_add(1, Ordering::Relaxed);
        }
        if srv {
            self.srv.published();
        }
    }

    /// Swaps in server TLS whose files (certificate, key, intermediates,
    /// client CA bundle) changed on disk: no restart, open connections
    /// untouched, and new ticket keys with the new policy. A changed but
    /// unusable set is logged once, and the served one stays.
    fn reload_certificates(&self) {
        let snapshot = self.shared.load_full();
        let mut seen = Vec::new();
        for server in &snapshot.servers {
            let Some(tls) = &server.tls else { continue };
            if seen.iter().any(|s| Arc::ptr_eq(s, tls)) {
                continue;
            }
            seen.push(tls.clone());
            match tls.reload_if_changed() {
                crate::tls::server::Reload::Unchanged => {}
                crate::tls::server::Reload::Reloaded => {
                    tracing::info!(router = %server.label, cert = %tls.cert_path().display(), "server TLS files reloaded")
                }
                crate::tls::server::Reload::Failed(e) => tracing::error!(
                    router = %server.label,
                    error = %e,
                    "server TLS files changed but cannot be used; still serving the previous ones"
                ),
            }
        }
    }

    /// Publishes a new snapshot when files of a client TLS profile (trust
    /// roots, a `clientAuth` certificate or key) changed on disk: compiling
    /// it builds the profiles again from the new files. Connections already
    /// pooled keep the identity they were made with, which the new profiles
    /// do not match: they carry no more requests and close when idle.
    fn reload_client_tls(&mut self) {
        let snapshot = self.shared.load_full();
        let changed: Vec<_> = snapshot.routers.iter().filter_map(|r| r.client_tls.changed_files()).collect();
        if changed.is_empty() || self.client_tls_failed.as_ref() == Some(&changed.concat()) {
            return;
        }
        self.client_tls_failed = match self.publish("client TLS files changed") {
            true => None,
            false => Some(changed.concat()),
        };
    }

    /// Compiles the current config and inputs into a new snapshot; returns
    /// whether it was published.
    fn publish(&mut self, why: &str) -> bool {
        match RoutingSnapshot::compile_with(&self.config, &load_inputs(&self.config, &self.inputs), self.generation + 1)
        {
            Ok(snapshot) => {
                self.generation += 1;
                self.shared.publish(snapshot);
                tracing::info!(trigger = why, generation = self.generation, "routing updated");
                true
            }
            Err(e) => {
                tracing::error!(trigger = why, error = %e, "routing update failed; the previous routing keeps serving");
                false
            }
        }
    }

    fn reload(&mut self, why: &str) {
        let Some(path) = self.config_path.clone() else { return };
        let refuse = |stats: &ControlStats, reason: String| {
            stats.reloads_refused.fetch_add(1, Ordering::Relaxed);
            tracing::error!(trigger = why, %reason, "config reload refused; the running config keeps serving");
        };
        let config = match Config::load_with_warnings(&path) {
            Ok((c, warnings)) => {
                for w in warnings {
                    tracing::warn!("{w}");
                }
                c
            }
            Err(e) => return refuse(&self.stats, e.to_string()),
        };
        let (errors, pending) = config.not_yet_in_effect();
        if !errors.is_empty() {
            return refuse(&self.stats, errors.join("; "));
        }
        for w in pending {
            tracing::warn!("{w}");
        }
        if let Some(what) = needs_restart(&self.config, &config) {
            return refuse(&self.stats, format!("{what} changed, which needs a restart"));
        }
        // Watches for API servers the new config names start now (their
        // namers are "not yet listed" until the first list, which publishes
        // again); those it no longer names stop once it is applied.
        if self.k8s.reconcile(&[&self.config, &config]) {
            self.stats.set_k8s_watches(self.k8s.stats());
        }
        let dns_changed = self.dns.reconfigure(&config.corelink.dns);
        self.srv.reconcile(&config);
        let mut inputs = NamerInputs::load(&config, Some(&self.inputs), &self.k8s.views(), &mut self.dns);
        inputs.set_config_maps(self.k8s.config_map_dtabs(), &mut self.dns);
        inputs.set_dnssrv(&config, self.srv.views());
        let snapshot = match RoutingSnapshot::compile_with(&config, &load_inputs(&config, &inputs), self.generation + 1)
        {
            Ok(s) => s,
            Err(e) => {
                if self.k8s.reconcile(&[&self.config]) {
                    self.stats.set_k8s_watches(self.k8s.stats());
                }
                // Back to the running config's DNS and names.
                if dns_changed {
                    self.dns.reconfigure(&self.config.corelink.dns);
                }
                self.dns.resolve(&self.inputs.host_names());
                self.srv.reconcile(&self.config);
                return refuse(&self.stats, e);
            }
        };
        if self.k8s.reconcile(&[&config]) {
            self.stats.set_k8s_watches(self.k8s.stats());
        }
        self.generation += 1;
        self.shared.publish(snapshot);
        self.namer_watches = namer_watches(&config);
        self.inputs = inputs;
        self.config = config;
        self.client_tls_failed = None;
        self.stats.reloads.fetch_add(1, Ordering::Relaxed);
        crate::logging::apply_config_level(self.config.corelink.log_level.as_deref());
        tracing::info!(trigger = why, generation = self.generation, "config reloaded");
    }
}

fn namer_watches(config: &Config) -> Vec<Watched> {
    config
        .namers
        .iter()
        .filter_map(|n| match n {
            NamerConfig::Fs { root_dir, .. } => Some(Watched::new(std::path::Path::new(root_dir))),
            NamerConfig::K8s(_) | NamerConfig::DnsSrv(_) => None,
        })
        .collect()
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

/// Loads everything a snapshot is compiled from besides the namers' state
/// (`namers`, refreshed by the control thread): opens access logs, builds
/// server TLS (shared through its registry, so certificate reloads keep
/// working) and client TLS policies from their files. Blocking: the control
/// thread, start-up and the CLI call it, never the data path.
pub fn load_inputs(config: &Config, namers: &NamerInputs) -> SnapshotInputs {
    let routers = config
        .routers
        .iter()
        .map(|r| RouterInputs {
            access_log: r
                .http_access_log
                .as_ref()
                .map(|path| crate::telemetry::access_log::AccessLog::shared(path, r.http_access_log_append)),
            server_tls: r.servers.iter().map(|s| s.tls.as_ref().map(crate::tls::ServerTls::shared)).collect(),
            client_tls: crate::tls::ClientTlsPolicy::compile(&r.client),
        })
        .collect();
    SnapshotInputs { namers: namers.clone(), routers }
}

/// Loads all inputs afresh (namer directories, DNS, files) and compiles:
/// for `corelink check`, `corelink delegate` and tests. Kubernetes namers
/// are compiled as not yet listed (nothing is watched here).
pub fn compile(config: &Config, generation: u64) -> Result<RoutingSnapshot, String> {
    let mut dns = crate::namer::dns::OneShot::new(&config.corelink.dns);
    let namers = NamerInputs::load(config, None, &Default::default(), &mut dns);
    RoutingSnapshot::compile_with(config, &load_inputs(config, &namers), generation)
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
