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
//! - `configmap`: the `io.l5d.k8s.configMap` interpreter's dtab, from one
//!   watched ConfigMap ([`ConfigMapDtabs`]).
//! - `transform`: the `io.l5d.k8s.daemonset` and `io.l5d.k8s.localnode`
//!   transformers' rules over resolved endpoints. Pure.
//!
//! [`Watchers`] runs the watches on a tokio current-thread runtime the
//! control thread owns and drives while it waits between polls: one
//! [`ClusterStore`] and one watch per resource for each distinct API server
//! (namers with the same `host`/`port`, or all in-cluster ones, share them,
//! and so do `io.l5d.k8s.daemonset` transformers with the same
//! `k8sHost`/`k8sPort`: they read the same Services and EndpointSlices),
//! and one watch of one ConfigMap per distinct configMap interpreter.

pub mod client;
pub mod configmap;
pub mod resolve;
pub mod state;
pub mod transform;
pub mod watch;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use config::{Config, ConfigMapInterpreterConfig, K8sApiConfig, NamerConfig, TransformerConfig};
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

pub use configmap::{ConfigMapDtab, ConfigMapDtabs, ConfigMapStats};
pub use resolve::{resolve, Resolution};
pub use state::{ClusterStore, ClusterView, LabelKeys};
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

impl ApiWatch {
    /// A copy of the store (its view is maps of `Arc`s, but the slice
    /// index is copied: for a restart, not for every snapshot).
    fn store(&self) -> ClusterStore {
        match self.shared.store.lock() {
            Ok(store) => store.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The label keys its store keeps.
    fn label_keys(&self) -> &LabelKeys {
        self.shared.label_keys()
    }
}

impl Drop for ApiWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One configMap interpreter's watch of its ConfigMap (aborted on drop).
struct ConfigMapWatch {
    sink: Arc<configmap::ConfigMapSink>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ConfigMapWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the admin server shows of the watches.
#[derive(Debug, Clone, Default)]
pub struct K8sStats {
    /// Every watch: the namers' and the configMap interpreters'.
    pub watches: Vec<Arc<WatchStats>>,
    /// The configMap interpreters' own counters.
    pub config_maps: Vec<Arc<ConfigMapStats>>,
}

/// The watches of every configured Kubernetes API server, on a runtime the
/// control thread owns.
pub struct Watchers {
    /// Shared with the DNS refreshes (`namer::dns`), which run on it too.
    rt: Arc<tokio::runtime::Runtime>,
    apis: BTreeMap<K8sApiConfig, ApiWatch>,
    config_maps: BTreeMap<ConfigMapInterpreterConfig, ConfigMapWatch>,
    changed: Arc<tokio::sync::Notify>,
}

impl Watchers {
    pub fn new() -> std::io::Result<Watchers> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        Ok(Watchers {
            rt: Arc::new(rt),
            apis: BTreeMap::new(),
            config_maps: BTreeMap::new(),
            changed: Arc::new(tokio::sync::Notify::new()),
        })
    }

    /// The control thread's runtime: other discovery (DNS) runs its tasks
    /// on it, and [`Watchers::park`] drives them too.
    pub fn runtime(&self) -> Arc<tokio::runtime::Runtime> {
        self.rt.clone()
    }

    /// What wakes [`Watchers::park`]: other discovery notifies it when its
    /// answers changed.
    pub fn notifier(&self) -> Arc<tokio::sync::Notify> {
        self.changed.clone()
    }

    /// Starts watching the API servers the k8s namers (and daemonset
    /// transformers) of `configs` name, and the ConfigMaps their configMap
    /// interpreters name, and stops watching those none of them names.
    /// Returns whether the set changed.
    pub fn reconcile(&mut self, configs: &[&Config]) -> bool {
        let config_maps_changed = self.reconcile_config_maps(configs);
        let wanted = wanted_apis(configs);
        let before = self.apis.len();
        self.apis.retain(|api, _| wanted.contains_key(api));
        let mut changed = before != self.apis.len();
        for (api, keys) in wanted {
            let (store, stats) = match self.apis.get(&api) {
                None => (ClusterStore::keeping(Arc::new(keys)), None),
                Some(w) if keys.is_subset(w.label_keys()) => continue,
                Some(w) => {
                    // A `labelSelector` key the Services were listed without
                    // (a reload added it): watch again, keeping it too. The
                    // new watches start from a copy of what is known, which
                    // keeps serving (the new key's names are "not yet
                    // listed" until the Services' list).
                    let mut all = (**w.label_keys()).clone();
                    all.extend(keys);
                    tracing::info!(api = %api.describe(), label_keys = ?all, "io.l5d.k8s: a labelSelector key is new: listing again");
                    (w.store().keeping_more(Arc::new(all)), Some(w.stats.clone()))
                }
            };
            changed = true;
            let watch = self.start(api.clone(), store, stats);
            self.apis.insert(api, watch);
        }
        changed || config_maps_changed
    }

    /// The ConfigMap watches of [`Watchers::reconcile`]: one per distinct
    /// configMap interpreter config.
    fn reconcile_config_maps(&mut self, configs: &[&Config]) -> bool {
        let wanted: Vec<ConfigMapInterpreterConfig> =
            configs.iter().flat_map(|c| &c.routers).filter_map(|r| r.interpreter.config_map.clone()).collect();
        let before = self.config_maps.len();
        self.config_maps.retain(|c, _| wanted.contains(c));
        let mut changed = before != self.config_maps.len();
        for c in wanted {
            if self.config_maps.contains_key(&c) {
                continue;
            }
            changed = true;
            let watch = self.start_config_map(c.clone());
            self.config_maps.insert(c, watch);
        }
        changed
    }

    fn start_config_map(&self, config: ConfigMapInterpreterConfig) -> ConfigMapWatch {
        let resource = format!("configmaps/{}/{}", config.namespace, config.name);
        let stats = Arc::new(WatchStats::new(&api_label(&config.api), resource));
        let sink = Arc::new(configmap::ConfigMapSink::new(config.clone(), stats.clone(), self.changed.clone()));
        tracing::info!(api = %config.api.describe(), configmap = %format!("{}/{}", config.namespace, config.name), key = %config.filename, "io.l5d.k8s.configMap: watching the ConfigMap");
        let task = self.rt.spawn({
            let sink = sink.clone();
            async move {
                let client = connect(&config.api).await;
                // One object by name: a list and a watch with
                // `fieldSelector=metadata.name=<name>`, which a Role with
                // `resourceNames: [<name>]` allows (docs/k8s-namer.md).
                let scope = watch::Scope {
                    api: kube::Api::<ConfigMap>::namespaced(client, &config.namespace),
                    labels: None,
                    fields: Some(format!("metadata.name={}", config.name)),
                };
                watch::run_scoped(scope, &*sink, stats).await;
            }
        });
        ConfigMapWatch { sink, task }
    }

    /// Starts the watches of `api` into `store`, counting into `stats` (new
    /// ones if None).
    fn start(&self, api: K8sApiConfig, store: ClusterStore, stats: Option<Vec<Arc<WatchStats>>>) -> ApiWatch {
        let label = api_label(&api);
        let shared = Arc::new(watch::Shared::new(store, self.changed.clone()));
        let stats = stats.unwrap_or_else(|| {
            vec![
                Arc::new(WatchStats::new(&label, <Service as watch::Watched>::RESOURCE)),
                Arc::new(WatchStats::new(&label, <EndpointSlice as watch::Watched>::RESOURCE)),
            ]
        });
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
    pub fn stats(&self) -> K8sStats {
        let config_maps: Vec<Arc<ConfigMapStats>> = self.config_maps.values().map(|w| w.sink.stats.clone()).collect();
        let watches = self.apis.values().flat_map(|w| w.stats.iter().cloned());
        K8sStats { watches: watches.chain(config_maps.iter().map(|c| c.watch.clone())).collect(), config_maps }
    }

    /// Whether any store or ConfigMap dtab changed since the last call (and
    /// forgets it).
    pub fn take_changed(&self) -> bool {
        let mut any = false;
        for w in self.apis.values() {
            any |= w.shared.dirty.swap(false, Ordering::AcqRel);
        }
        for w in self.config_maps.values() {
            any |= w.sink.dirty.swap(false, Ordering::AcqRel);
        }
        any
    }

    /// The dtab each configMap interpreter's ConfigMap gives now.
    pub fn config_map_dtabs(&self) -> ConfigMapDtabs {
        self.config_maps.iter().map(|(c, w)| (c.clone(), w.sink.current())).collect()
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
            let synced = self.stats().watches.iter().all(|s| s.synced.load(Ordering::Relaxed));
            if synced || Instant::now() >= deadline {
                return synced;
            }
            self.park(deadline.min(Instant::now() + Duration::from_millis(20)), Instant::now());
        }
    }
}

/// The API servers to watch for `configs`, each with the `labelSelector` keys
/// of the namers on it (daemonset transformers read no label).
fn wanted_apis(configs: &[&Config]) -> BTreeMap<K8sApiConfig, BTreeSet<String>> {
    let mut wanted: BTreeMap<K8sApiConfig, BTreeSet<String>> = BTreeMap::new();
    for namer in configs.iter().flat_map(|c| &c.namers) {
        if let NamerConfig::K8s(k) = namer {
            wanted.entry(k.api.clone()).or_default().extend(k.label_selector.clone());
        }
    }
    for api in configs.iter().flat_map(|c| transformer_apis(c)) {
        wanted.entry(api).or_default();
    }
    wanted
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
