//! `io.l5d.k8s`: Kubernetes service discovery, as linkerd's namer, over
//! EndpointSlices (docs/k8s-namer.md).
//!
//! - `state`: the compact Services and EndpointSlices kept per API server
//!   ([`ClusterStore`], updated by the watches) and the immutable
//!   [`ClusterView`] a routing snapshot receives. Pure.
//! - `resolve`: linkerd's `EndpointsNamer` rules: (view, path) → `~`, not yet
//!   known, or bound addresses. Pure; called while binding.
//! - `watch`: the list/watch loop per resource, with its backoff, restart
//!   logs and [`WatchStats`].
//! - `client`: kube's client for a `kubectl proxy` or in-cluster access.
//! - `transform`: the `io.l5d.k8s.daemonset` and `io.l5d.k8s.localnode`
//!   transformers' rules over resolved endpoints. Pure.
//!
//! [`Watchers`] runs the watches on a tokio current-thread runtime the
//! control thread owns and drives while it waits between polls: one
//! [`ClusterStore`] and one watch per resource for each distinct API server
//! (namers with the same `host`/`port`, or all in-cluster ones, share them,
//! and so do `io.l5d.k8s.daemonset` transformers with the same
//! `k8sHost`/`k8sPort`: they read the same Services and EndpointSlices).

pub mod client;
pub mod resolve;
pub mod state;
pub mod transform;
pub mod watch;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use config::{Config, K8sApiConfig, NamerConfig, TransformerConfig};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

pub use resolve::{resolve, Resolution};
pub use state::{ClusterStore, ClusterView};
pub use watch::WatchStats;

/// What each API server's watches know, as of when it was taken.
pub type K8sViews = BTreeMap<K8sApiConfig, Arc<ClusterView>>;

/// A short name for an API server in metrics and logs.
pub fn api_label(api: &K8sApiConfig) -> String {
    match api {
        K8sApiConfig::Proxy { host, port } => format!("{host}:{port}"),
        K8sApiConfig::InCluster { .. } => "in-cluster".to_string(),
    }
}

/// One API server's store and watch tasks (aborted on drop).
struct ApiWatch {
    shared: Arc<watch::Shared>,
    stats: Vec<Arc<WatchStats>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ApiWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The watches of every configured Kubernetes API server, on a runtime the
/// control thread owns.
pub struct Watchers {
    rt: tokio::runtime::Runtime,
    apis: BTreeMap<K8sApiConfig, ApiWatch>,
    changed: Arc<tokio::sync::Notify>,
}

impl Watchers {
    pub fn new() -> std::io::Result<Watchers> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        Ok(Watchers { rt, apis: BTreeMap::new(), changed: Arc::new(tokio::sync::Notify::new()) })
    }

    /// Starts watching the API servers the k8s namers (and daemonset
    /// transformers) of `configs` name and stops watching those none of them
    /// names. Returns whether the set changed.
    pub fn reconcile(&mut self, configs: &[&Config]) -> bool {
        let wanted: Vec<K8sApiConfig> = configs
            .iter()
            .flat_map(|c| &c.namers)
            .filter_map(|n| match n {
                NamerConfig::K8s(k) => Some(k.api.clone()),
                NamerConfig::Fs { .. } => None,
            })
            .chain(configs.iter().flat_map(|c| transformer_apis(c)))
            .collect();
        let before = self.apis.len();
        self.apis.retain(|api, _| wanted.contains(api));
        let mut changed = before != self.apis.len();
        for api in wanted {
            if self.apis.contains_key(&api) {
                continue;
            }
            changed = true;
            let watch = self.start(api.clone());
            self.apis.insert(api, watch);
        }
        changed
    }

    fn start(&self, api: K8sApiConfig) -> ApiWatch {
        let label = api_label(&api);
        let shared = Arc::new(watch::Shared {
            store: Mutex::new(ClusterStore::default()),
            dirty: Default::default(),
            changed: self.changed.clone(),
        });
        let stats = vec![
            Arc::new(WatchStats::new(&label, <Service as watch::Watched>::RESOURCE)),
            Arc::new(WatchStats::new(&label, <EndpointSlice as watch::Watched>::RESOURCE)),
        ];
        tracing::info!(api = %api.describe(), "io.l5d.k8s: watching Services and EndpointSlices (all namespaces)");
        let task = self.rt.spawn({
            let (shared, services, slices) = (shared.clone(), stats[0].clone(), stats[1].clone());
            async move {
                let client = connect(&api).await;
                let s = watch::run::<Service>(client.clone(), shared.clone(), services);
                let e = watch::run::<EndpointSlice>(client, shared, slices);
                futures::future::join(s, e).await;
            }
        });
        ApiWatch { shared, stats, task }
    }

    /// Every watch's stats, for the admin server.
    pub fn stats(&self) -> Vec<Arc<WatchStats>> {
        self.apis.values().flat_map(|w| w.stats.iter().cloned()).collect()
    }

    /// Whether any store changed since the last call (and forgets it).
    pub fn take_changed(&self) -> bool {
        let mut any = false;
        for w in self.apis.values() {
            any |= w.shared.dirty.swap(false, Ordering::AcqRel);
        }
        any
    }

    /// What every API server's watches know now.
    pub fn views(&self) -> K8sViews {
        self.apis
            .iter()
            .map(|(api, w)| {
                let view = match w.shared.store.lock() {
                    Ok(store) => store.view(),
                    Err(poisoned) => poisoned.into_inner().view(),
                };
                (api.clone(), Arc::new(view))
            })
            .collect()
    }

    /// Runs the watches until `deadline`, or until a store changed but not
    /// before `not_before` (so bursts of events make one snapshot).
    pub fn park(&self, deadline: Instant, not_before: Instant) {
        let deadline = tokio::time::Instant::from_std(deadline);
        let not_before = tokio::time::Instant::from_std(not_before);
        let changed = self.changed.clone();
        self.rt.block_on(async move {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => {}
                () = changed.notified() => {
                    tokio::time::sleep_until(not_before.min(deadline)).await;
                }
            }
        });
    }

    /// Waits (running the watches) until every API server's first lists are
    /// done, or `timeout`; returns whether they are.
    pub fn wait_synced(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let synced = self.apis.values().all(|w| w.stats.iter().all(|s| s.synced.load(Ordering::Relaxed)));
            if synced || Instant::now() >= deadline {
                return synced;
            }
            self.park(deadline.min(Instant::now() + Duration::from_millis(20)), Instant::now());
        }
    }
}

/// The API servers the `io.l5d.k8s.daemonset` transformers of `config` read
/// (on namers and in routers' interpreters).
pub fn transformer_apis(config: &Config) -> impl Iterator<Item = K8sApiConfig> + '_ {
    let namers = config.namers.iter().flat_map(|n| n.transformers());
    let routers = config.routers.iter().flat_map(|r| &r.interpreter.transformers);
    namers.chain(routers).filter_map(TransformerConfig::k8s_api).cloned()
}

/// Builds the client, retrying (with a log line every 30 s) while it cannot
/// be built: a missing CA or token file, an unset environment variable.
async fn connect(api: &K8sApiConfig) -> kube::Client {
    let mut last_log: Option<Instant> = None;
    loop {
        match client::build(api) {
            Ok(client) => return client,
            Err(e) => {
                if last_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(30)) {
                    last_log = Some(Instant::now());
                    tracing::error!(api = %api.describe(), error = %e, "io.l5d.k8s: cannot set up the API client; retrying");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
