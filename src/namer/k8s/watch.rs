//! One list-then-watch loop per watched resource, over kube's `Api::list`
//! and `Api::watch` (the raw event stream, bookmarks included).
//!
//! - **List**, then **watch** from the list's `resourceVersion` with
//!   `allowWatchBookmarks`; every event and bookmark moves the version on.
//! - **`410 Gone`** (or an `Expired` status in the stream: the version is
//!   older than the API server's history) → list again at once.
//! - **A stream that ends or breaks** → watch again at once from the last
//!   version; if that fails (the API server is down), retry with a jittered
//!   backoff from 50 ms, doubling to 2 s. The backoff resets once a watch has
//!   delivered an event or stayed up a second.
//! - **A silent stream**: the server ends each watch after `timeoutSeconds`
//!   (240–290 s, spread); a stream that has not ended 30 s after that is
//!   presumed dead and restarted.
//!
//! kube-runtime's `watcher` does the same list/watch/relist dance, but it
//! swallows bookmarks and clean stream ends (so neither the age of a watch's
//! last sign of life nor every restart could be reported), and its
//! `default_backoff` starts at 800 ms and grows to 30 s. Stale endpoints from
//! watches that silently stopped were linkerd's most reported Kubernetes bug,
//! so each restart is logged with its reason and counted ([`WatchStats`]).

use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use serde::de::DeserializeOwned;

use super::state::{ClusterStore, ObjectKey, ServiceInfo, SliceInfo, SERVICE_NAME_LABEL};

/// Counters and ages of one watch, read by the admin server.
#[derive(Debug)]
pub struct WatchStats {
    /// Which API server (`localhost:8001`, `in-cluster`).
    pub api: String,
    /// `services`, `endpointslices`, `configmaps/<namespace>/<name>`.
    pub resource: String,
    /// When the watch last heard from the API server: a list, an event or a
    /// bookmark (ms since `epoch`).
    last_event_ms: AtomicU64,
    epoch: Instant,
    /// Watch streams opened again after the first (after a drop, an error,
    /// a timeout or a `410 Gone`).
    pub reconnects: AtomicU64,
    /// Lists after the first (after `410 Gone`).
    pub relists: AtomicU64,
    /// Events applied (ADDED, MODIFIED, DELETED), bookmarks not included.
    pub events: AtomicU64,
    /// Failed lists and watch requests (the API server down, refusing us).
    pub errors: AtomicU64,
    /// The first list has completed.
    pub synced: AtomicBool,
}

impl WatchStats {
    pub fn new(api: &str, resource: impl Into<String>) -> WatchStats {
        WatchStats {
            api: api.to_string(),
            resource: resource.into(),
            last_event_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            reconnects: AtomicU64::new(0),
            relists: AtomicU64::new(0),
            events: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            synced: AtomicBool::new(false),
        }
    }

    fn heard(&self) {
        self.last_event_ms.store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// How long since the API server last said anything on this watch (since
    /// the watch started, if never).
    pub fn last_event_age(&self) -> Duration {
        let now = self.epoch.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_event_ms.load(Ordering::Relaxed)))
    }
}

/// Where the watches put what they learn, shared by the watches of one API
/// server and read by the control thread.
pub struct Shared {
    pub store: Mutex<ClusterStore>,
    /// Set when the store changed since the control thread last took it.
    pub dirty: AtomicBool,
    /// Wakes the control thread.
    pub changed: Arc<tokio::sync::Notify>,
}

impl Shared {
    fn update(&self, f: impl FnOnce(&mut ClusterStore) -> bool) {
        let changed = match self.store.lock() {
            Ok(mut store) => f(&mut store),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        };
        if changed {
            self.dirty.store(true, Ordering::Release);
            self.changed.notify_one();
        }
    }
}

/// What a watch can list and watch.
pub trait Object: kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + 'static {}

impl<K: kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + 'static> Object for K {}

/// Where a watch puts what it learns.
pub trait Sink<K>: Send + Sync {
    /// A full list: replaces everything known (objects missing from it were
    /// deleted meanwhile).
    fn replace_all(&self, objects: &[K]);
    /// An ADDED or MODIFIED event.
    fn apply(&self, object: &K);
    /// A DELETED event.
    fn delete(&self, object: &K);
}

/// What one watch lists and watches: a resource in every namespace or one,
/// with optional label and field selectors.
pub struct Scope<K> {
    pub api: Api<K>,
    pub labels: Option<String>,
    pub fields: Option<String>,
}

/// A resource the namer watches, and how its objects go into the store.
pub trait Watched: Object {
    const RESOURCE: &'static str;
    /// The label selector of the list and watch requests.
    const SELECTOR: Option<&'static str>;
    fn replace_all(store: &mut ClusterStore, objects: &[Self]) -> bool;
    fn apply(store: &mut ClusterStore, object: &Self) -> bool;
    fn delete(store: &mut ClusterStore, object: &Self) -> bool;
}

impl<K: Watched> Sink<K> for Shared {
    fn replace_all(&self, objects: &[K]) {
        self.update(|store| K::replace_all(store, objects));
    }
    fn apply(&self, object: &K) {
        self.update(|store| K::apply(store, object));
    }
    fn delete(&self, object: &K) {
        self.update(|store| K::delete(store, object));
    }
}

fn object_key<K: kube::Resource>(object: &K) -> Option<ObjectKey> {
    Some((object.meta().namespace.clone()?, object.meta().name.clone()?))
}

impl Watched for Service {
    const RESOURCE: &'static str = "services";
    const SELECTOR: Option<&'static str> = None;
    fn replace_all(store: &mut ClusterStore, objects: &[Self]) -> bool {
        store.replace_services(objects.iter().filter_map(ServiceInfo::from_k8s).collect())
    }
    fn apply(store: &mut ClusterStore, object: &Self) -> bool {
        match ServiceInfo::from_k8s(object) {
            Some((key, info)) => store.apply_service(key, info),
            None => false,
        }
    }
    fn delete(store: &mut ClusterStore, object: &Self) -> bool {
        object_key(object).is_some_and(|key| store.delete_service(&key))
    }
}

impl Watched for EndpointSlice {
    const RESOURCE: &'static str = "endpointslices";
    /// Slices that belong to a Service (all the controller makes).
    const SELECTOR: Option<&'static str> = Some(SERVICE_NAME_LABEL);
    fn replace_all(store: &mut ClusterStore, objects: &[Self]) -> bool {
        store.replace_slices(objects.iter().filter_map(SliceInfo::from_k8s).collect())
    }
    fn apply(store: &mut ClusterStore, object: &Self) -> bool {
        match SliceInfo::from_k8s(object) {
            Some((key, info)) => store.apply_slice(key, info),
            // Lost its service label: it no longer belongs to a Service.
            None => object_key(object).is_some_and(|key| store.delete_slice(&key)),
        }
    }
    fn delete(store: &mut ClusterStore, object: &Self) -> bool {
        object_key(object).is_some_and(|key| store.delete_slice(&key))
    }
}

/// Reconnect backoff: nothing before the first retry after a drop, then
/// 50 ms doubling to 2 s, each with up to 50 % jitter off.
pub struct Backoff {
    next: Option<Duration>,
    seed: u64,
}

pub const BACKOFF_FIRST: Duration = Duration::from_millis(50);
pub const BACKOFF_MAX: Duration = Duration::from_secs(2);

impl Backoff {
    pub fn new(seed: u64) -> Backoff {
        Backoff { next: None, seed: seed | 1 }
    }

    pub fn reset(&mut self) {
        self.next = None;
    }

    /// The wait before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let Some(base) = self.next else {
            self.next = Some(BACKOFF_FIRST);
            return Duration::ZERO;
        };
        self.next = Some((base * 2).min(BACKOFF_MAX));
        // xorshift: jitter without a dependency.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let off = base.as_micros() as u64 / 2 * (self.seed % 1000) / 1000;
        base - Duration::from_micros(off)
    }
}

/// Lists per page: a cluster-wide list of 10,000 slices is many megabytes of
/// JSON; pages bound what is held at once.
const PAGE: u32 = 500;

/// Runs forever (until its task is aborted): lists and watches `K` in every
/// namespace on `client`, keeping `shared`'s store up to date.
pub async fn run<K: Watched>(client: kube::Client, shared: Arc<Shared>, stats: Arc<WatchStats>) {
    let scope = Scope { api: Api::<K>::all(client), labels: K::SELECTOR.map(str::to_string), fields: None };
    run_scoped(scope, &*shared, stats).await
}

/// Runs forever (until its task is aborted): lists and watches what `scope`
/// selects, telling `sink`.
pub async fn run_scoped<K: Object, S: Sink<K> + ?Sized>(scope: Scope<K>, sink: &S, stats: Arc<WatchStats>) {
    let api = &scope.api;
    let mut backoff = Backoff::new(stats.epoch.elapsed().as_nanos() as u64 ^ stats.resource.len() as u64);
    let mut version: Option<String> = None;
    let mut listed_once = false;
    let mut failing: Failing = None;
    stats.heard();
    loop {
        if version.is_none() {
            match list(&scope).await {
                Ok((objects, rv)) => {
                    stats.heard();
                    if listed_once {
                        stats.relists.fetch_add(1, Ordering::Relaxed);
                    }
                    listed_once = true;
                    sink.replace_all(&objects);
                    stats.synced.store(true, Ordering::Relaxed);
                    tracing::info!(api = %stats.api, resource = %stats.resource, objects = objects.len(), resource_version = %rv, "io.l5d.k8s: listed");
                    version = Some(rv);
                    recovered(&stats, &mut failing);
                }
                Err(e) => {
                    failed(&stats, &mut failing, "list", &e);
                    tokio::time::sleep(backoff.next_delay().max(BACKOFF_FIRST)).await;
                    continue;
                }
            }
        }
        let Some(rv) = version.clone() else { continue };
        let timeout = 240 + (backoff.seed % 51) as u32;
        let params = watch_params(&scope, timeout);
        let started = Instant::now();
        let stream = match api.watch(&params, &rv).await {
            Ok(stream) => stream,
            Err(kube::Error::Api(status)) if status.code == 410 => {
                tracing::info!(api = %stats.api, resource = %stats.resource, resource_version = %rv, "io.l5d.k8s: watch lists again: 410 Gone (the version is older than the API server keeps)");
                version = None;
                continue;
            }
            Err(e) => {
                failed(&stats, &mut failing, "watch", &e);
                tokio::time::sleep(backoff.next_delay().max(BACKOFF_FIRST)).await;
                continue;
            }
        };
        recovered(&stats, &mut failing);
        let mut stream = std::pin::pin!(stream);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(u64::from(timeout) + 30);
        let mut delivered = false;
        let why: String = loop {
            let next = match tokio::time::timeout_at(deadline, stream.next()).await {
                Ok(next) => next,
                Err(_) => break format!("no end of the stream {}s after its timeoutSeconds", 30),
            };
            match next {
                None => break format!("the API server ended the stream after {:.1}s", started.elapsed().as_secs_f64()),
                Some(Err(e)) => break format!("the stream broke: {e}"),
                Some(Ok(event)) => {
                    stats.heard();
                    delivered = true;
                    match event {
                        WatchEvent::Added(o) | WatchEvent::Modified(o) => {
                            stats.events.fetch_add(1, Ordering::Relaxed);
                            bump(&mut version, &o);
                            sink.apply(&o);
                        }
                        WatchEvent::Deleted(o) => {
                            stats.events.fetch_add(1, Ordering::Relaxed);
                            bump(&mut version, &o);
                            sink.delete(&o);
                        }
                        WatchEvent::Bookmark(b) => version = Some(b.metadata.resource_version),
                        WatchEvent::Error(status) if status.code == 410 || status.reason == "Expired" => {
                            version = None;
                            break format!("410 Gone: {}", status.message);
                        }
                        WatchEvent::Error(status) => break format!("error event {}: {}", status.code, status.message),
                    }
                }
            }
        };
        stats.reconnects.fetch_add(1, Ordering::Relaxed);
        let normal = why.starts_with("the API server ended") && started.elapsed() >= Duration::from_secs(200);
        if delivered || started.elapsed() >= Duration::from_secs(1) {
            backoff.reset();
        }
        let delay = backoff.next_delay();
        let action = if version.is_none() { "lists again" } else { "watches again" };
        if normal {
            tracing::debug!(api = %stats.api, resource = %stats.resource, reason = %why, "io.l5d.k8s: watch {action}");
        } else {
            tracing::info!(api = %stats.api, resource = %stats.resource, reason = %why, delay_ms = delay.as_millis() as u64, "io.l5d.k8s: watch {action}");
        }
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }
}

fn watch_params<K>(scope: &Scope<K>, timeout: u32) -> WatchParams {
    let mut params = WatchParams::default().timeout(timeout);
    if let Some(labels) = &scope.labels {
        params = params.labels(labels);
    }
    if let Some(fields) = &scope.fields {
        params = params.fields(fields);
    }
    params
}

/// The resource version an event carries becomes the one to watch from.
fn bump<K: kube::Resource>(version: &mut Option<String>, object: &K) {
    if let Some(rv) = &object.meta().resource_version {
        *version = Some(rv.clone());
    }
}

/// Every page of a list, and the list's resource version.
async fn list<K: Object>(scope: &Scope<K>) -> Result<(Vec<K>, String), kube::Error> {
    let api = &scope.api;
    let mut params = ListParams::default().limit(PAGE);
    if let Some(labels) = &scope.labels {
        params = params.labels(labels);
    }
    if let Some(fields) = &scope.fields {
        params = params.fields(fields);
    }
    let mut objects = Vec::new();
    loop {
        let page = api.list(&params).await?;
        objects.extend(page.items);
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok((objects, page.metadata.resource_version.unwrap_or_default())),
        }
    }
}

/// A run of failed requests: when it started, when it was last logged.
type Failing = Option<(Instant, Instant)>;

/// Logs the first failure of a run of failures, then one line every 30 s.
fn failed(stats: &WatchStats, failing: &mut Failing, what: &str, e: &kube::Error) {
    let n = stats.errors.fetch_add(1, Ordering::Relaxed) + 1;
    let now = Instant::now();
    let (start, logged) = failing.get_or_insert((now, now));
    if *logged == now || logged.elapsed() >= Duration::from_secs(30) {
        *logged = now;
        tracing::warn!(api = %stats.api, resource = %stats.resource, error = %e, errors = n, failing_for_s = start.elapsed().as_secs(), "io.l5d.k8s: {what} failed; retrying (what is known so far keeps serving)");
    }
}

fn recovered(stats: &WatchStats, failing: &mut Failing) {
    if let Some((start, _)) = failing.take() {
        tracing::info!(api = %stats.api, resource = %stats.resource, after_ms = start.elapsed().as_millis() as u64, "io.l5d.k8s: the API server answers again");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_immediate_then_under_100ms_and_capped() {
        let mut b = Backoff::new(42);
        assert_eq!(b.next_delay(), Duration::ZERO);
        let second = b.next_delay();
        assert!(second <= BACKOFF_FIRST && second >= BACKOFF_FIRST / 2, "{second:?}");
        let delays: Vec<Duration> = (0..20).map(|_| b.next_delay()).collect();
        assert!(delays.iter().all(|d| *d <= BACKOFF_MAX), "{delays:?}");
        assert!(delays[10] >= BACKOFF_MAX / 2, "{delays:?}");
        b.reset();
        assert_eq!(b.next_delay(), Duration::ZERO);
    }
}
