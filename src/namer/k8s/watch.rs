//! One list-then-watch loop per watched resource, over kube's `Api::list`
//! and `Api::watch` (the raw event stream, bookmarks included).
//!
//! - **List**, then **watch** from the list's `resourceVersion` with
//!   `allowWatchBookmarks`; every event and bookmark moves the version on.
//! - **An ERROR event** (`410 Expired`: the version is older than the API
//!   server's history; `504 Too large resource version`: it is ahead of the
//!   server, …) ends the watch, and the next step is a fresh **list**, after
//!   the backoff, as client-go's reflector does: resuming from the same
//!   version would meet the same error. A `410 Gone` answered to the watch
//!   request itself lists again too, through the backoff. Lists (these, and
//!   a failed list's retry) have a backoff of their own, client-go's: none
//!   the first time, then 800 ms doubling to 30 s, reset by a watch that
//!   stayed up two minutes; a lagging replica that errors every watch then
//!   gets a whole-cluster list from each sidecar every 30 s, not every 2 s.
//! - **A stream that ends or breaks** → watch again at once from the last
//!   version; if that fails (the API server is down), retry with a jittered
//!   backoff from 50 ms, doubling to 2 s. The backoff resets once a watch has
//!   delivered an event (ADDED, MODIFIED, DELETED: bookmarks do not count) or
//!   stayed up a second, unless an ERROR event ended it.
//! - **No answer**: kube's client has no read timeout, so each list page,
//!   and each watch request until its stream starts, must answer within
//!   [`ANSWER_WITHIN`] (30 s), or it fails (logged, retried with backoff).
//! - **A silent stream**: the server ends each watch after `timeoutSeconds`
//!   (240–290 s, spread); a stream that has not ended [`ANSWER_WITHIN`] after
//!   that is presumed dead and restarted.
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

use futures::Stream;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use kube::core::Status;
use serde::de::DeserializeOwned;

use super::state::{ClusterStore, LabelKeys, ObjectKey, ServiceInfo, SliceInfo, SERVICE_NAME_LABEL};

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
    /// Lists after the first (after an ERROR event, `410 Gone` included).
    pub relists: AtomicU64,
    /// Events applied (ADDED, MODIFIED, DELETED), bookmarks not included.
    pub events: AtomicU64,
    /// Failed lists and watch requests (the API server down, refusing us,
    /// not answering), and ERROR events other than `410 Expired`.
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
    /// The store's label keys, for converting listed Services without
    /// taking its lock.
    label_keys: LabelKeys,
    /// Set when the store changed since the control thread last took it.
    pub dirty: AtomicBool,
    /// Wakes the control thread.
    pub changed: Arc<tokio::sync::Notify>,
}

impl Shared {
    pub fn new(store: ClusterStore, changed: Arc<tokio::sync::Notify>) -> Shared {
        Shared {
            label_keys: store.label_keys().clone(),
            store: Mutex::new(store),
            dirty: AtomicBool::new(false),
            changed,
        }
    }

    /// The label keys the store keeps.
    pub fn label_keys(&self) -> &LabelKeys {
        &self.label_keys
    }

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
    /// What the sink keeps of one listed object: a list converts each page
    /// as it arrives, so only this is held until the list completes, not
    /// every page's decoded objects.
    type Item: Send;
    /// What to keep of one listed object (None: nothing).
    fn keep(&self, object: K) -> Option<Self::Item>;
    /// A full list: replaces everything known (objects missing from it were
    /// deleted meanwhile).
    fn replace_all(&self, items: Vec<Self::Item>);
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
    /// What the store keeps of one object.
    type Info: Send;
    /// What the store keeps of `object`, Services' labels in `label_keys`.
    fn compact(object: &Self, label_keys: &LabelKeys) -> Option<(ObjectKey, Self::Info)>;
    fn replace_all(store: &mut ClusterStore, items: Vec<(ObjectKey, Self::Info)>) -> bool;
    fn apply(store: &mut ClusterStore, object: &Self) -> bool;
    fn delete(store: &mut ClusterStore, object: &Self) -> bool;
}

impl<K: Watched> Sink<K> for Shared {
    type Item = (ObjectKey, K::Info);
    fn keep(&self, object: K) -> Option<Self::Item> {
        K::compact(&object, &self.label_keys)
    }
    fn replace_all(&self, items: Vec<Self::Item>) {
        self.update(|store| K::replace_all(store, items));
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
    type Info = ServiceInfo;
    fn compact(object: &Self, label_keys: &LabelKeys) -> Option<(ObjectKey, ServiceInfo)> {
        ServiceInfo::from_k8s(object, label_keys)
    }
    fn replace_all(store: &mut ClusterStore, items: Vec<(ObjectKey, ServiceInfo)>) -> bool {
        store.replace_services(items)
    }
    fn apply(store: &mut ClusterStore, object: &Self) -> bool {
        match ServiceInfo::from_k8s(object, store.label_keys()) {
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
    type Info = SliceInfo;
    fn compact(object: &Self, _: &LabelKeys) -> Option<(ObjectKey, SliceInfo)> {
        SliceInfo::from_k8s(object)
    }
    fn replace_all(store: &mut ClusterStore, items: Vec<(ObjectKey, SliceInfo)>) -> bool {
        store.replace_slices(items)
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
    first: Duration,
    max: Duration,
}

pub const BACKOFF_FIRST: Duration = Duration::from_millis(50);
pub const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Lists again after a failed list, an ERROR event or a 410: client-go's
/// reflector backoff (800 ms doubling to 30 s). A list is the expensive
/// call (the whole cluster's Services or slices, a quorum read), and a
/// lagging API server replica that answers every watch with an error would
/// otherwise get one from every sidecar every 2 s.
pub const RELIST_FIRST: Duration = Duration::from_millis(800);
pub const RELIST_MAX: Duration = Duration::from_secs(30);
/// A watch up this long without an error resets the relist backoff
/// (client-go: 2 minutes).
pub const RELIST_HEALTHY: Duration = Duration::from_secs(120);

impl Backoff {
    pub fn new(seed: u64) -> Backoff {
        Backoff { next: None, seed: seed | 1, first: BACKOFF_FIRST, max: BACKOFF_MAX }
    }

    /// The backoff between lists.
    pub fn relists(seed: u64) -> Backoff {
        Backoff { next: None, seed: seed | 1, first: RELIST_FIRST, max: RELIST_MAX }
    }

    pub fn reset(&mut self) {
        self.next = None;
    }

    /// The wait before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let Some(base) = self.next else {
            self.next = Some(self.first);
            return Duration::ZERO;
        };
        self.next = Some((base * 2).min(self.max));
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

/// Pages of one list at most (500,000 objects at [`PAGE`], far more than any
/// cluster has): a `continue` token that never ends fails the list, which is
/// retried with backoff, rather than growing memory without bound.
const MAX_PAGES: usize = 1_000;

/// How long the API server may take to answer a list page, or a watch
/// request until its stream starts; also how long past its `timeoutSeconds`
/// a watch stream may stay open before it is presumed dead. kube's client
/// has only a connect timeout (client.rs), so without this a peer that
/// accepts and never answers (a hung `kubectl proxy`, a half-open
/// connection) would hold a list or a watch forever, with nothing logged.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(30);

/// The loop's bounds (tests shorten them).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// See [`ANSWER_WITHIN`].
    pub answer_within: Duration,
    /// Objects per list page.
    pub page: u32,
    /// Pages of one list at most.
    pub max_pages: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { answer_within: ANSWER_WITHIN, page: PAGE, max_pages: MAX_PAGES }
    }
}

/// Why a list or a watch request failed.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("{0}")]
    Kube(#[from] kube::Error),
    #[error("no answer within {}s", .0.as_secs_f64())]
    NoAnswer(Duration),
    #[error("the list did not end after {0} pages (a `continue` token that never ends?)")]
    EndlessList(usize),
}

/// `fut`, failed with [`RequestError::NoAnswer`] if it takes longer than
/// `limit`.
async fn within<T>(
    limit: Duration,
    fut: impl std::future::Future<Output = Result<T, kube::Error>>,
) -> Result<T, RequestError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(answer) => Ok(answer?),
        Err(_) => Err(RequestError::NoAnswer(limit)),
    }
}

/// Runs forever (until its task is aborted): lists and watches `K` in every
/// namespace on `client`, keeping `shared`'s store up to date.
pub async fn run<K: Watched>(client: kube::Client, shared: Arc<Shared>, stats: Arc<WatchStats>) {
    let scope = Scope { api: Api::<K>::all(client), labels: K::SELECTOR.map(str::to_string), fields: None };
    run_scoped(scope, &*shared, stats).await
}

/// Runs forever (until its task is aborted): lists and watches what `scope`
/// selects, telling `sink`.
pub async fn run_scoped<K: Object, S: Sink<K> + ?Sized>(scope: Scope<K>, sink: &S, stats: Arc<WatchStats>) {
    run_with(scope, sink, stats, Limits::default()).await
}

/// [`run_scoped`] within `limits`.
pub async fn run_with<K: Object, S: Sink<K> + ?Sized>(
    scope: Scope<K>,
    sink: &S,
    stats: Arc<WatchStats>,
    limits: Limits,
) {
    let api = &scope.api;
    let mut backoff = Backoff::new(stats.epoch.elapsed().as_nanos() as u64 ^ stats.resource.len() as u64);
    let mut relists = Backoff::relists(backoff.seed.rotate_left(17));
    let mut version: Option<String> = None;
    let mut listed_once = false;
    let mut failing: Failing = None;
    stats.heard();
    loop {
        if version.is_none() {
            match list(&scope, sink, &limits).await {
                Ok((items, rv)) => {
                    stats.heard();
                    if listed_once {
                        stats.relists.fetch_add(1, Ordering::Relaxed);
                    }
                    listed_once = true;
                    let kept = items.len();
                    sink.replace_all(items);
                    stats.synced.store(true, Ordering::Relaxed);
                    tracing::info!(api = %stats.api, resource = %stats.resource, objects = kept, resource_version = %rv, "io.l5d.k8s: listed");
                    version = Some(rv);
                    recovered(&stats, &mut failing);
                }
                Err(e) => {
                    failed(&stats, &mut failing, "list", &e);
                    tokio::time::sleep(relists.next_delay().max(RELIST_FIRST)).await;
                    continue;
                }
            }
        }
        let Some(rv) = version.clone() else { continue };
        let timeout = 240 + (backoff.seed % 51) as u32;
        let params = watch_params(&scope, timeout);
        let started = Instant::now();
        let stream = match within(limits.answer_within, api.watch(&params, &rv)).await {
            Ok(stream) => stream,
            Err(RequestError::Kube(kube::Error::Api(status))) if status.code == 410 => {
                // Through the backoff (nothing the first time after a
                // healthy watch): a peer answering 410 to every watch must
                // not get back-to-back lists of the whole cluster.
                version = None;
                let delay = backoff.next_delay().max(relists.next_delay());
                tracing::info!(api = %stats.api, resource = %stats.resource, resource_version = %rv, delay_ms = delay.as_millis() as u64, "io.l5d.k8s: watch lists again: 410 Gone (the version is older than the API server keeps)");
                tokio::time::sleep(delay).await;
                continue;
            }
            Err(e) => {
                failed(&stats, &mut failing, "watch", &e);
                tokio::time::sleep(backoff.next_delay().max(BACKOFF_FIRST)).await;
                continue;
            }
        };
        recovered(&stats, &mut failing);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(u64::from(timeout)) + limits.answer_within;
        let followed = follow(stream, sink, &stats, &mut version, deadline, limits.answer_within).await;
        stats.reconnects.fetch_add(1, Ordering::Relaxed);
        let errored = matches!(followed.end, End::Error(_));
        if let End::Error(status) = &followed.end {
            // Whatever the error, resuming from the same version would meet
            // it again: list afresh (after the backoff).
            version = None;
            if !is_expired(status) {
                stats.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        if !errored && (followed.delivered || started.elapsed() >= Duration::from_secs(1)) {
            backoff.reset();
        }
        // A watch that stayed up this long was healthy however it ended (a
        // 410 after minutes of quiet is the usual end): the next list waits
        // for nothing.
        if started.elapsed() >= RELIST_HEALTHY {
            relists.reset();
        }
        let mut delay = if errored { backoff.next_delay().max(BACKOFF_FIRST) } else { backoff.next_delay() };
        if version.is_none() {
            delay = delay.max(relists.next_delay());
        }
        let why = followed.end.reason(started.elapsed());
        let action = if version.is_none() { "lists again" } else { "watches again" };
        let delay_ms = delay.as_millis() as u64;
        match &followed.end {
            End::Ended if started.elapsed() >= Duration::from_secs(200) => {
                tracing::debug!(api = %stats.api, resource = %stats.resource, reason = %why, "io.l5d.k8s: watch {action}")
            }
            End::Error(status) if !is_expired(status) => {
                tracing::warn!(api = %stats.api, resource = %stats.resource, reason = %why, delay_ms, "io.l5d.k8s: watch {action}")
            }
            _ => {
                tracing::info!(api = %stats.api, resource = %stats.resource, reason = %why, delay_ms, "io.l5d.k8s: watch {action}")
            }
        }
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }
}

/// How a watch stream ended.
#[derive(Debug)]
enum End {
    /// The API server ended it (at its `timeoutSeconds`, or earlier).
    Ended,
    /// It broke, or outstayed its deadline.
    Broke(String),
    /// An ERROR event.
    Error(Box<Status>),
}

impl End {
    fn reason(&self, after: Duration) -> String {
        match self {
            End::Ended => format!("the API server ended the stream after {:.1}s", after.as_secs_f64()),
            End::Broke(why) => why.clone(),
            End::Error(status) if is_expired(status) => format!("410 Gone: {}", status.message),
            End::Error(status) => format!("error event {} {}: {}", status.code, status.reason, status.message),
        }
    }
}

/// The version is older than the API server's history.
fn is_expired(status: &Status) -> bool {
    status.code == 410 || status.reason == "Expired"
}

/// What one watch stream did.
#[derive(Debug)]
struct Followed {
    end: End,
    /// It delivered at least one event (bookmarks and errors do not count).
    delivered: bool,
}

/// Applies one watch stream's events to `sink` until it ends, breaks, sends
/// an ERROR event or passes `deadline`.
async fn follow<K: Object, S: Sink<K> + ?Sized>(
    stream: impl Stream<Item = Result<WatchEvent<K>, kube::Error>>,
    sink: &S,
    stats: &WatchStats,
    version: &mut Option<String>,
    deadline: tokio::time::Instant,
    grace: Duration,
) -> Followed {
    let mut stream = std::pin::pin!(stream);
    let mut delivered = false;
    let end = loop {
        let next = match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(next) => next,
            Err(_) => {
                break End::Broke(format!("no end of the stream {}s after its timeoutSeconds", grace.as_secs_f64()))
            }
        };
        let event = match next {
            None => break End::Ended,
            Some(Err(e)) => break End::Broke(format!("the stream broke: {e}")),
            Some(Ok(event)) => event,
        };
        match event {
            WatchEvent::Added(o) | WatchEvent::Modified(o) => {
                delivered = true;
                stats.heard();
                stats.events.fetch_add(1, Ordering::Relaxed);
                bump(version, &o);
                sink.apply(&o);
            }
            WatchEvent::Deleted(o) => {
                delivered = true;
                stats.heard();
                stats.events.fetch_add(1, Ordering::Relaxed);
                bump(version, &o);
                sink.delete(&o);
            }
            // A sign of life, but not a sign that the watch works.
            WatchEvent::Bookmark(b) => {
                stats.heard();
                *version = Some(b.metadata.resource_version);
            }
            // Not a sign of life: the peer answers, but the watch fails.
            WatchEvent::Error(status) => break End::Error(status),
        }
    };
    Followed { end, delivered }
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

/// Every page of a list, each converted by `sink` as it arrives, and the
/// list's resource version.
async fn list<K: Object, S: Sink<K> + ?Sized>(
    scope: &Scope<K>,
    sink: &S,
    limits: &Limits,
) -> Result<(Vec<S::Item>, String), RequestError> {
    let api = &scope.api;
    let mut params = ListParams::default().limit(limits.page);
    if let Some(labels) = &scope.labels {
        params = params.labels(labels);
    }
    if let Some(fields) = &scope.fields {
        params = params.fields(fields);
    }
    let mut items = Vec::new();
    for _ in 0..limits.max_pages {
        let page = within(limits.answer_within, api.list(&params)).await?;
        items.extend(page.items.into_iter().filter_map(|o| sink.keep(o)));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok((items, page.metadata.resource_version.unwrap_or_default())),
        }
    }
    Err(RequestError::EndlessList(limits.max_pages))
}

/// A run of failed requests: when it started, when it was last logged.
type Failing = Option<(Instant, Instant)>;

/// Logs the first failure of a run of failures, then one line every 30 s.
fn failed(stats: &WatchStats, failing: &mut Failing, what: &str, e: &RequestError) {
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
    use k8s_testapi::objects::{self, ServicePort, TargetPort};
    use k8s_testapi::{ApiServer, WatchFault};

    #[test]
    fn lists_back_off_from_800ms_to_30s() {
        let mut b = Backoff::relists(7);
        assert_eq!(b.next_delay(), Duration::ZERO, "the first list after a healthy watch waits for nothing");
        let second = b.next_delay();
        assert!(second <= RELIST_FIRST && second >= RELIST_FIRST / 2, "{second:?}");
        let delays: Vec<Duration> = (0..12).map(|_| b.next_delay()).collect();
        assert!(delays.iter().all(|d| *d <= RELIST_MAX), "{delays:?}");
        assert!(delays[8] >= RELIST_MAX / 2, "a peer erroring every watch gets a list every 15-30 s: {delays:?}");
    }

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

    fn shared() -> Shared {
        Shared::new(ClusterStore::default(), Arc::new(tokio::sync::Notify::new()))
    }

    fn event(json: serde_json::Value) -> Result<WatchEvent<Service>, kube::Error> {
        Ok(serde_json::from_value(json).unwrap())
    }

    fn bookmark(rv: &str) -> Result<WatchEvent<Service>, kube::Error> {
        event(serde_json::json!({"type": "BOOKMARK", "object": {"kind": "Service", "apiVersion": "v1",
                                  "metadata": {"resourceVersion": rv}}}))
    }

    async fn follow_all(events: Vec<Result<WatchEvent<Service>, kube::Error>>) -> (Followed, Option<String>, u64) {
        let (sink, stats) = (shared(), WatchStats::new("test", "services"));
        // So that a sign of life is a time after the epoch.
        tokio::time::sleep(Duration::from_millis(5)).await;
        let mut version = Some("1".to_string());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let followed =
            follow(futures::stream::iter(events), &sink, &stats, &mut version, deadline, ANSWER_WITHIN).await;
        (followed, version, stats.last_event_ms.load(Ordering::Relaxed))
    }

    #[tokio::test]
    async fn only_events_count_as_delivered_and_an_error_is_no_sign_of_life() {
        // Bookmarks move the version on and are a sign of life, but a
        // watch that delivered only bookmarks has not shown that it works.
        let (followed, version, heard) = follow_all(vec![bookmark("7")]).await;
        assert!(matches!(followed.end, End::Ended) && !followed.delivered, "{followed:?}");
        assert_eq!(version.as_deref(), Some("7"));
        assert!(heard > 0);
        // An ERROR event ends the stream; it neither delivers nor is heard.
        let error = event(serde_json::json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1",
            "metadata": {}, "status": "Failure", "reason": "Timeout", "code": 504,
            "message": "Too large resource version: 9, current: 8"}}));
        let (followed, version, heard) = follow_all(vec![error, bookmark("8")]).await;
        assert!(matches!(&followed.end, End::Error(s) if s.code == 504 && !is_expired(s)), "{followed:?}");
        assert!(!followed.delivered);
        assert_eq!(version.as_deref(), Some("1"), "nothing after the error is read");
        assert_eq!(heard, 0);
        // A real event does count.
        let added = event(serde_json::json!({"type": "ADDED", "object": {"kind": "Service", "apiVersion": "v1",
            "metadata": {"name": "web", "namespace": "prod", "resourceVersion": "9"}}}));
        let (followed, version, _) = follow_all(vec![added]).await;
        assert!(followed.delivered);
        assert_eq!(version.as_deref(), Some("9"));
    }

    /// A watch of Services on a test API server, in a task of the test's
    /// runtime.
    struct Harness {
        api: ApiServer,
        shared: Arc<Shared>,
        stats: Arc<WatchStats>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Harness {
        fn start(api: ApiServer, limits: Limits) -> Harness {
            let config = config::K8sApiConfig::Proxy { host: "127.0.0.1".into(), port: api.addr().port() };
            let client = super::super::client::build(&config).unwrap();
            let shared = Arc::new(shared());
            let stats = Arc::new(WatchStats::new("test", "services"));
            let task = tokio::spawn({
                let (shared, stats) = (shared.clone(), stats.clone());
                async move {
                    let scope = Scope { api: Api::<Service>::all(client), labels: None, fields: None };
                    run_with(scope, &*shared, stats, limits).await
                }
            });
            Harness { api, shared, stats, task }
        }

        /// `(lists, watches)` the API server received.
        fn requests(&self) -> (usize, usize) {
            let requests = self.api.requests();
            let watches = requests.iter().filter(|r| r.is_watch()).count();
            (requests.len() - watches, watches)
        }

        fn errors(&self) -> u64 {
            self.stats.errors.load(Ordering::Relaxed)
        }

        fn services(&self) -> usize {
            self.shared.store.lock().unwrap().view().services.len()
        }
    }

    impl Drop for Harness {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    /// Waits (running the watch) until `condition` holds; false after `limit`.
    async fn until(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
        let start = Instant::now();
        while !condition() {
            if start.elapsed() >= limit {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    fn api_with_services(n: usize) -> ApiServer {
        let api = ApiServer::start();
        for i in 0..n {
            let port = ServicePort { name: Some("http"), port: 80, target_port: TargetPort::Number(8080) };
            api.apply(objects::service("prod", &format!("web-{i}"), &[port]));
        }
        api
    }

    fn quick() -> Limits {
        Limits { answer_within: Duration::from_millis(300), ..Limits::default() }
    }

    #[tokio::test]
    async fn an_error_event_lists_again_after_the_backoff_and_is_no_sign_of_life() {
        let w = Harness::start(api_with_services(1), quick());
        assert!(until(Duration::from_secs(5), || w.stats.synced.load(Ordering::Relaxed)).await);
        assert!(until(Duration::from_secs(5), || w.api.open_watches() == 1).await);
        // Every watch now meets `504 Too large resource version`; lists hang,
        // so nothing else is heard from the API server.
        w.api.hang_lists(true);
        w.api.fail_watches(Some(WatchFault::VersionAhead));
        w.api.drop_watches();
        let (lists, watches) = w.requests();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let (lists_after, watches_after) = w.requests();
        assert!(lists_after > lists, "the ERROR event led to a new list");
        assert!(watches_after - watches <= 3, "{} watches in 1.5 s", watches_after - watches);
        let age = w.stats.last_event_age();
        assert!(age >= Duration::from_millis(1200), "an ERROR event is no sign of life: {age:?}");
        assert!(w.errors() >= 2, "the ERROR event and the hung list are errors: {}", w.errors());
        // Healthy again: listed, and watching.
        w.api.hang_lists(false);
        w.api.fail_watches(None);
        assert!(until(Duration::from_secs(5), || w.api.open_watches() == 1).await);
        assert!(w.stats.relists.load(Ordering::Relaxed) >= 1);
    }

    #[tokio::test]
    async fn a_peer_that_never_answers_fails_the_list_and_the_watch_which_are_retried() {
        let api = api_with_services(1);
        api.hang_lists(true);
        let w = Harness::start(api, quick());
        assert!(until(Duration::from_secs(5), || w.errors() >= 2).await, "the hung list times out");
        assert!(w.requests().0 >= 2, "and is retried");
        assert!(!w.stats.synced.load(Ordering::Relaxed));
        w.api.hang_lists(false);
        assert!(until(Duration::from_secs(5), || w.stats.synced.load(Ordering::Relaxed)).await);
        assert!(until(Duration::from_secs(5), || w.api.open_watches() == 1).await);
        // A watch request that is never answered.
        w.api.fail_watches(Some(WatchFault::Hang));
        w.api.drop_watches();
        let (errors, watches) = (w.errors(), w.requests().1);
        assert!(until(Duration::from_secs(5), || w.errors() >= errors + 2).await, "the hung watch times out");
        assert!(w.requests().1 >= watches + 2, "and is retried");
        w.api.fail_watches(None);
        assert!(until(Duration::from_secs(5), || w.api.open_watches() == 1).await);
        let port = ServicePort { name: Some("http"), port: 80, target_port: TargetPort::Number(8080) };
        w.api.apply(objects::service("prod", "new", &[port]));
        assert!(until(Duration::from_secs(5), || w.services() == 2).await);
    }

    #[tokio::test]
    async fn a_410_answered_to_every_watch_request_lists_again_through_the_backoff() {
        let api = api_with_services(1);
        api.fail_watches(Some(WatchFault::Gone));
        let w = Harness::start(api, quick());
        tokio::time::sleep(Duration::from_millis(1500)).await;
        // 0, then 25–50 ms doubling: at most about eight lists in 1.5 s.
        let (lists, watches) = w.requests();
        assert!((2..=10).contains(&lists), "{lists} lists in 1.5 s");
        assert!(watches >= 2);
        assert!(w.stats.relists.load(Ordering::Relaxed) >= 1);
    }

    #[tokio::test]
    async fn a_list_past_its_page_bound_fails_and_a_paged_list_replaces_what_was_known() {
        let api = api_with_services(5);
        let w = Harness::start(api, Limits { page: 1, max_pages: 4, ..quick() });
        assert!(until(Duration::from_secs(5), || w.errors() >= 1).await, "five pages: past the bound");
        assert!(!w.stats.synced.load(Ordering::Relaxed));
        w.api.delete("Service", "prod", "web-4");
        assert!(until(Duration::from_secs(5), || w.stats.synced.load(Ordering::Relaxed)).await, "four pages");
        assert_eq!(w.services(), 4);
        // Missed deletions (the history compacted meanwhile): the new paged
        // list drops them.
        w.api.set_available(false);
        w.api.delete("Service", "prod", "web-0");
        w.api.delete("Service", "prod", "web-2");
        w.api.expire_history();
        w.api.set_available(true);
        assert!(until(Duration::from_secs(5), || w.services() == 2).await, "{} services", w.services());
    }
}
