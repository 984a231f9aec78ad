//! The objects, the global resourceVersion (the etcd revision) and the
//! history of changes that watches resume from and paginated lists read.
//!
//! One revision counter covers every kind, as etcd's does. Every change is
//! kept in `history` (up to `history_limit` changes); anything at or before
//! `compacted` is gone: a watch resuming from an older revision, or a list
//! asking for one exactly, gets 410 Expired. A list page at an older,
//! still-kept revision is rebuilt by undoing the newer changes, which is how
//! a continue token reads the same snapshot as the first page.

use crate::kinds::Kind;
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::{self, ApiError};
use crate::{clock, continue_token::ContinueToken};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{Shutdown, TcpStream};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// How many changes are kept for watches to resume from, unless changed
/// with `ApiServer::set_history_limit`.
pub(crate) const DEFAULT_HISTORY_LIMIT: usize = 10_000;

/// How long a list waits for a resourceVersion newer than the store's before
/// answering 504 (the apiserver's `blockTimeout` is 3 s).
const FRESHNESS_WAIT: Duration = Duration::from_secs(3);

/// `(namespace, name)`: the order lists are returned in, as etcd keys sort.
type ObjectName = (String, String);

/// One write: `previous` is `None` for a create, `current` `None` for a delete.
#[derive(Debug)]
pub(crate) struct Change {
    pub revision: u64,
    pub kind: &'static Kind,
    pub name: ObjectName,
    pub previous: Option<Arc<Value>>,
    pub current: Option<Arc<Value>>,
}

/// What the store tells an open watch.
#[derive(Debug)]
pub(crate) enum WatchSignal {
    Change(Arc<Change>),
    /// `ApiServer::bookmark` at this revision.
    Bookmark(u64),
    /// `drop_watches`, `set_available(false)` or shutdown: end abruptly.
    Cut,
}

/// Which objects a list or watch is about.
#[derive(Debug, Clone)]
pub(crate) struct ObjectFilter {
    pub kind: &'static Kind,
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl ObjectFilter {
    pub(crate) fn matches(&self, object: &Value) -> bool {
        let namespace_ok = match &self.namespace {
            Some(wanted) => object.pointer("/metadata/namespace").and_then(Value::as_str) == Some(wanted.as_str()),
            None => true,
        };
        namespace_ok && self.labels.matches(object) && self.fields.matches(object)
    }

    fn has_selectors(&self) -> bool {
        self.labels != LabelSelector::default() || self.fields != FieldSelector::default()
    }
}

/// One event of a watch stream.
#[derive(Debug, Clone)]
pub(crate) enum WatchEvent {
    Added(Arc<Value>),
    Modified(Arc<Value>),
    Deleted(Arc<Value>),
    Bookmark(Value),
    Error(Value),
}

impl WatchEvent {
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            WatchEvent::Added(_) => "ADDED",
            WatchEvent::Modified(_) => "MODIFIED",
            WatchEvent::Deleted(_) => "DELETED",
            WatchEvent::Bookmark(_) => "BOOKMARK",
            WatchEvent::Error(_) => "ERROR",
        }
    }

    pub(crate) fn object(&self) -> &Value {
        match self {
            WatchEvent::Added(object) | WatchEvent::Modified(object) | WatchEvent::Deleted(object) => object,
            WatchEvent::Bookmark(object) | WatchEvent::Error(object) => object,
        }
    }

    /// What a change looks like through a watch's selectors (the cacher's
    /// rule): in → in is MODIFIED, out → in ADDED, in → out (or a delete)
    /// DELETED carrying the previous content at the change's revision.
    pub(crate) fn for_change(filter: &ObjectFilter, change: &Change) -> Option<WatchEvent> {
        if !std::ptr::eq(filter.kind, change.kind) {
            return None;
        }
        let current_passes = change.current.as_deref().is_some_and(|object| filter.matches(object));
        let previous_passes = change.previous.as_deref().is_some_and(|object| filter.matches(object));
        match (current_passes, previous_passes, &change.current, &change.previous) {
            (true, true, Some(current), _) => Some(WatchEvent::Modified(current.clone())),
            (true, false, Some(current), _) => Some(WatchEvent::Added(current.clone())),
            (false, true, _, Some(previous)) => {
                Some(WatchEvent::Deleted(Arc::new(with_resource_version(previous, change.revision))))
            }
            _ => None,
        }
    }
}

/// A BOOKMARK object: only kind, apiVersion and `metadata.resourceVersion`
/// (plus the `k8s.io/initial-events-end` annotation that ends a streaming list).
pub(crate) fn bookmark_object(kind: &Kind, revision: u64, initial_events_end: bool) -> Value {
    let mut object = json!({
        "kind": kind.kind,
        "apiVersion": kind.api_version,
        "metadata": {"resourceVersion": revision.to_string()},
    });
    if initial_events_end {
        object["metadata"]["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    object
}

fn with_resource_version(object: &Value, revision: u64) -> Value {
    let mut copy = object.clone();
    if let Some(metadata) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.insert("resourceVersion".into(), json!(revision.to_string()));
    }
    copy
}

/// The list query, as decoded from the request.
#[derive(Debug, Default)]
pub(crate) struct ListOptions {
    pub limit: Option<u64>,
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    pub version_match: Option<String>,
}

/// One page of a list.
#[derive(Debug)]
pub(crate) struct ListPage {
    pub revision: u64,
    pub items: Vec<Arc<Value>>,
    pub continue_token: Option<String>,
    pub remaining_item_count: Option<u64>,
}

/// The watch query, as decoded from the request.
#[derive(Debug, Default)]
pub(crate) struct WatchOptions {
    pub resource_version: Option<String>,
    pub version_match: Option<String>,
    pub send_initial_events: Option<bool>,
    pub allow_bookmarks: bool,
}

/// Why a watch did not start.
#[derive(Debug)]
pub(crate) enum WatchRefusal {
    /// Bad options: an ordinary error response.
    Rejected(ApiError),
    /// A compacted resourceVersion: 200, then this as one ERROR event.
    Expired(ApiError),
}

/// A started watch: events to send first, then whatever `signals` brings.
pub(crate) struct WatchStart {
    pub id: u64,
    pub initial: Vec<WatchEvent>,
    pub signals: Receiver<WatchSignal>,
}

struct WatchRegistration {
    kind: &'static Kind,
    sender: Sender<WatchSignal>,
    /// The watch's socket, to cut it at once even while its thread is
    /// blocked writing to a peer that does not read.
    socket: Option<TcpStream>,
}

/// A resourceVersion parameter.
enum RequestedVersion {
    /// Unset or "": the most recent.
    Latest,
    /// "0": any version the server has.
    Any,
    Exactly(u64),
}

fn requested_version(text: Option<&str>) -> Result<RequestedVersion, ApiError> {
    match text {
        None | Some("") => Ok(RequestedVersion::Latest),
        Some("0") => Ok(RequestedVersion::Any),
        Some(text) => text
            .parse::<u64>()
            .map(RequestedVersion::Exactly)
            .map_err(|_| status::bad_request(&format!("invalid resource version: {text:?}"))),
    }
}

struct State {
    revision: u64,
    objects: HashMap<&'static str, BTreeMap<ObjectName, Arc<Value>>>,
    history: VecDeque<Arc<Change>>,
    /// Revisions at or before this one are compacted (see the module docs).
    compacted: u64,
    history_limit: usize,
    watches: BTreeMap<u64, WatchRegistration>,
    next_watch_id: u64,
}

pub(crate) struct Store {
    state: Mutex<State>,
    /// Notified on every write, for lists waiting for a newer revision.
    written: Condvar,
}

/// Fields the server owns: ignored when comparing an applied object with the
/// stored one, overwritten when storing it.
const SERVER_METADATA: [&str; 4] = ["resourceVersion", "uid", "creationTimestamp", "generation"];

fn without_server_metadata(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Some(metadata) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in SERVER_METADATA {
            metadata.remove(field);
        }
    }
    copy
}

fn without_metadata(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Some(map) = copy.as_object_mut() {
        map.remove("metadata");
    }
    copy
}

impl Store {
    pub(crate) fn new() -> Store {
        Store {
            state: Mutex::new(State {
                // An empty etcd is at revision 1; the first write makes 2.
                revision: 1,
                objects: HashMap::new(),
                history: VecDeque::new(),
                compacted: 1,
                history_limit: DEFAULT_HISTORY_LIMIT,
                watches: BTreeMap::new(),
                next_watch_id: 1,
            }),
            written: Condvar::new(),
        }
    }

    /// The state, even if a thread panicked while holding it: the data is
    /// only ever replaced whole, so it stays consistent.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn revision(&self) -> u64 {
        self.lock().revision
    }

    /// Creates or replaces an object; a no-op when nothing but server-owned
    /// metadata differs (the real server writes nothing then either).
    pub(crate) fn apply(&self, kind: &'static Kind, mut object: Value) {
        let namespace = object.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("default").to_string();
        let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
        assert!(!name.is_empty(), "k8s-testapi: apply needs metadata.name: {object}");
        object["metadata"]["namespace"] = json!(namespace);
        let key = (namespace, name);

        let mut state = self.lock();
        let existing = state.objects.get(kind.kind).and_then(|objects| objects.get(&key)).cloned();
        if let Some(existing) = &existing {
            if without_server_metadata(existing) == without_server_metadata(&object) {
                return;
            }
        }
        let revision = state.revision + 1;
        let metadata = &mut object["metadata"];
        metadata["resourceVersion"] = json!(revision.to_string());
        match &existing {
            Some(existing) => {
                metadata["uid"] = existing["metadata"]["uid"].clone();
                metadata["creationTimestamp"] = existing["metadata"]["creationTimestamp"].clone();
            }
            None => {
                metadata["uid"] = json!(clock::fresh_uid());
                metadata["creationTimestamp"] = json!(clock::rfc3339_now());
            }
        }
        if kind.has_generation {
            let generation = match &existing {
                None => 1,
                Some(existing) => {
                    let before = existing.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(1);
                    let spec_changed = without_metadata(existing) != without_metadata(&object);
                    before + i64::from(spec_changed)
                }
            };
            object["metadata"]["generation"] = json!(generation);
        } else if let Some(metadata) = object["metadata"].as_object_mut() {
            metadata.remove("generation");
        }
        let current = Arc::new(object);
        state.objects.entry(kind.kind).or_default().insert(key.clone(), current.clone());
        self.record(&mut state, Change { revision, kind, name: key, previous: existing, current: Some(current) });
    }

    /// Deletes an object if it exists.
    pub(crate) fn delete(&self, kind: &'static Kind, namespace: &str, name: &str) {
        let key = (namespace.to_string(), name.to_string());
        let mut state = self.lock();
        let Some(previous) = state.objects.get_mut(kind.kind).and_then(|objects| objects.remove(&key)) else {
            return;
        };
        let revision = state.revision + 1;
        self.record(&mut state, Change { revision, kind, name: key, previous: Some(previous), current: None });
    }

    fn record(&self, state: &mut State, change: Change) {
        state.revision = change.revision;
        let change = Arc::new(change);
        for registration in state.watches.values() {
            if std::ptr::eq(registration.kind, change.kind) {
                // A watch whose thread is gone deregisters itself; ignore it until then.
                let _ = registration.sender.send(WatchSignal::Change(change.clone()));
            }
        }
        state.history.push_back(change);
        trim_history(state);
        self.written.notify_all();
    }

    pub(crate) fn set_history_limit(&self, limit: usize) {
        let mut state = self.lock();
        state.history_limit = limit;
        trim_history(&mut state);
    }

    /// Compacts everything: only the current revision stays readable.
    pub(crate) fn expire_history(&self) {
        let mut state = self.lock();
        state.history.clear();
        state.compacted = state.revision;
    }

    /// One object as it is now.
    pub(crate) fn get(&self, kind: &Kind, namespace: &str, name: &str) -> Option<Arc<Value>> {
        let state = self.lock();
        state.objects.get(kind.kind)?.get(&(namespace.to_string(), name.to_string())).cloned()
    }

    /// One page of a list (see the module docs for the resourceVersion rules).
    pub(crate) fn list(&self, filter: &ObjectFilter, options: &ListOptions) -> Result<ListPage, ApiError> {
        validate_list_match(options)?;
        let requested = requested_version(options.resource_version.as_deref())?;
        let limit = options.limit.filter(|limit| *limit > 0);
        let mut state = self.lock();

        let (read_revision, after) = match options.continue_token.as_deref().filter(|token| !token.is_empty()) {
            Some(token) => {
                let token = ContinueToken::decode(token)
                    .ok_or_else(|| status::bad_request("invalid continue token: continue key is not valid"))?;
                if matches!(requested, RequestedVersion::Exactly(_)) {
                    return Err(status::bad_request("specifying resource version is not allowed when using continue"));
                }
                let revision = match u64::try_from(token.revision) {
                    Ok(revision) => revision,
                    Err(_) => state.revision, // -1: continue at the latest
                };
                if revision < state.compacted {
                    return Err(continue_expired(&token));
                }
                (revision.min(state.revision), Some(token.after))
            }
            None => {
                let exact = options.version_match.as_deref() == Some("Exact")
                    || (options.version_match.is_none() && limit.is_some());
                let revision = match requested {
                    RequestedVersion::Latest | RequestedVersion::Any => state.revision,
                    RequestedVersion::Exactly(wanted) => {
                        state = self.wait_for_revision(state, wanted)?;
                        if exact {
                            if wanted < state.compacted {
                                return Err(status::expired("The resourceVersion for the provided list is too old."));
                            }
                            wanted
                        } else {
                            state.revision
                        }
                    }
                };
                (revision, None)
            }
        };

        let matching: Vec<(ObjectName, Arc<Value>)> = objects_at(&state, filter.kind, read_revision)
            .into_iter()
            .filter(|(key, _)| after.as_ref().is_none_or(|after| key > after))
            .filter(|(_, object)| filter.matches(object))
            .collect();
        drop(state);
        let page_size = limit.map_or(matching.len(), |limit| matching.len().min(limit as usize));
        let remaining = (matching.len() - page_size) as u64;
        let mut page: Vec<(ObjectName, Arc<Value>)> = matching;
        page.truncate(page_size);
        let continue_token = match page.last() {
            // More exist: the token resumes after the last item, at the same revision.
            Some((last, _)) if remaining > 0 => {
                Some(ContinueToken { revision: read_revision as i64, after: last.clone() }.encode())
            }
            _ => None,
        };
        let remaining_item_count = (continue_token.is_some() && !filter.has_selectors()).then_some(remaining);
        let items = page.into_iter().map(|(_, object)| object).collect();
        Ok(ListPage { revision: read_revision, items, continue_token, remaining_item_count })
    }

    /// Waits (up to the apiserver's 3 s) until the store reaches `wanted`.
    fn wait_for_revision<'a>(
        &'a self,
        state: MutexGuard<'a, State>,
        wanted: u64,
    ) -> Result<MutexGuard<'a, State>, ApiError> {
        let (state, _) = self
            .written
            .wait_timeout_while(state, FRESHNESS_WAIT, |state| state.revision < wanted)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if state.revision < wanted {
            return Err(status::too_large_resource_version(wanted, state.revision));
        }
        Ok(state)
    }

    /// Registers a watch and computes the events it starts with; `socket`
    /// is what `cut_all_watches` shuts down.
    pub(crate) fn start_watch(
        &self,
        filter: &ObjectFilter,
        options: &WatchOptions,
        socket: Option<TcpStream>,
    ) -> Result<WatchStart, WatchRefusal> {
        validate_watch_options(options).map_err(WatchRefusal::Rejected)?;
        let requested = requested_version(options.resource_version.as_deref()).map_err(WatchRefusal::Rejected)?;
        let mut state = self.lock();
        let state_as_added = |state: &State| -> Vec<WatchEvent> {
            objects_at(state, filter.kind, state.revision)
                .into_iter()
                .filter(|(_, object)| filter.matches(object))
                .map(|(_, object)| WatchEvent::Added(object))
                .collect()
        };
        // Kubernetes 1.34 (WatchList on) defaults a legacy watch (resourceVersion
        // "" or "0", no sendInitialEvents, no resourceVersionMatch) to
        // sendInitialEvents=true (apimachinery `SetListOptionsDefaults`).
        let legacy = options.send_initial_events.is_none()
            && options.version_match.is_none()
            && matches!(requested, RequestedVersion::Latest | RequestedVersion::Any);
        let initial = if options.send_initial_events == Some(true) || legacy {
            // The state as ADDED events; for a watch that allows bookmarks,
            // then a bookmark that marks their end.
            let mut events = state_as_added(&state);
            if options.allow_bookmarks {
                events.push(WatchEvent::Bookmark(bookmark_object(filter.kind, state.revision, true)));
            }
            events
        } else {
            match requested {
                RequestedVersion::Latest | RequestedVersion::Any => Vec::new(),
                RequestedVersion::Exactly(from) => {
                    if from < state.compacted {
                        return Err(WatchRefusal::Expired(status::watch_too_old(from, state.compacted)));
                    }
                    state
                        .history
                        .iter()
                        .filter(|change| change.revision > from)
                        .filter_map(|change| WatchEvent::for_change(filter, change))
                        .collect()
                }
            }
        };
        let (sender, signals) = channel();
        let id = state.next_watch_id;
        state.next_watch_id += 1;
        state.watches.insert(id, WatchRegistration { kind: filter.kind, sender, socket });
        Ok(WatchStart { id, initial, signals })
    }

    pub(crate) fn end_watch(&self, id: u64) {
        self.lock().watches.remove(&id);
    }

    pub(crate) fn open_watches(&self) -> usize {
        self.lock().watches.len()
    }

    /// Sends a bookmark at the current revision to every open watch.
    pub(crate) fn bookmark_all(&self) {
        let state = self.lock();
        for registration in state.watches.values() {
            let _ = registration.sender.send(WatchSignal::Bookmark(state.revision));
        }
    }

    /// Ends every open watch abruptly and forgets it.
    pub(crate) fn cut_all_watches(&self) {
        let mut state = self.lock();
        for (_, registration) in std::mem::take(&mut state.watches) {
            let _ = registration.sender.send(WatchSignal::Cut);
            if let Some(socket) = registration.socket {
                let _ = socket.shutdown(Shutdown::Both);
            }
        }
    }
}

fn trim_history(state: &mut State) {
    while state.history.len() > state.history_limit {
        if let Some(dropped) = state.history.pop_front() {
            state.compacted = dropped.revision;
        }
    }
}

/// A kind's objects as they were at `revision` (which must not be compacted):
/// the current ones with every newer change undone, in key order.
fn objects_at(state: &State, kind: &Kind, revision: u64) -> Vec<(ObjectName, Arc<Value>)> {
    let current = state.objects.get(kind.kind);
    let mut objects: BTreeMap<ObjectName, Arc<Value>> = current.cloned().unwrap_or_default();
    for change in state.history.iter().rev().take_while(|change| change.revision > revision) {
        if !std::ptr::eq(change.kind, kind) {
            continue;
        }
        match &change.previous {
            Some(previous) => objects.insert(change.name.clone(), previous.clone()),
            None => objects.remove(&change.name),
        };
    }
    objects.into_iter().collect()
}

/// 410 for a continue token whose snapshot is compacted, with a token that
/// continues at the latest revision (`handleCompactedErrorForPaging`).
fn continue_expired(token: &ContinueToken) -> ApiError {
    let mut error = status::expired(
        "The provided continue parameter is too old to display a consistent list result. You can start a new list \
         without the continue parameter, or use the continue token in this response to retrieve the remainder of the \
         results. Continuing with the provided token results in an inconsistent list - objects that were created, \
         modified, or deleted between the time the first chunk was returned and now may show up in the list.",
    );
    let latest = ContinueToken { revision: -1, after: token.after.clone() };
    error.status["metadata"] = json!({"continue": latest.encode()});
    error
}

/// `resourceVersionMatch` rules of `ValidateListOptions` for lists.
fn validate_list_match(options: &ListOptions) -> Result<(), ApiError> {
    let Some(version_match) = options.version_match.as_deref() else {
        return Ok(());
    };
    if version_match != "Exact" && version_match != "NotOlderThan" {
        return Err(status::invalid_list_options(
            "resourceVersionMatch",
            &format!("Unsupported value: {version_match:?}: supported values: \"Exact\", \"NotOlderThan\""),
        ));
    }
    let resource_version = options.resource_version.as_deref().unwrap_or("");
    if resource_version.is_empty() {
        return Err(status::invalid_list_options(
            "resourceVersionMatch",
            "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
        ));
    }
    if options.continue_token.as_deref().is_some_and(|token| !token.is_empty()) {
        return Err(status::invalid_list_options(
            "resourceVersionMatch",
            "Forbidden: resourceVersionMatch is forbidden when continue is provided",
        ));
    }
    if version_match == "Exact" && resource_version == "0" {
        return Err(status::invalid_list_options(
            "resourceVersionMatch",
            "Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
        ));
    }
    Ok(())
}

/// The watch rules of `ValidateListOptions` (WatchList enabled, as in 1.34).
fn validate_watch_options(options: &WatchOptions) -> Result<(), ApiError> {
    match (options.send_initial_events, options.version_match.as_deref()) {
        (None, None) | (Some(_), Some("NotOlderThan")) => Ok(()),
        (None, Some(_)) => Err(status::invalid_list_options(
            "resourceVersionMatch",
            "Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
        )),
        (Some(_), _) => Err(status::invalid_list_options(
            "resourceVersionMatch",
            "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::{CONFIG_MAP, SERVICE};

    fn filter(kind: &'static Kind) -> ObjectFilter {
        ObjectFilter { kind, namespace: None, labels: LabelSelector::default(), fields: FieldSelector::default() }
    }

    fn config_map(name: &str, value: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}, "data": {"k": value}})
    }

    fn names(page: &ListPage) -> Vec<String> {
        page.items.iter().map(|item| item["metadata"]["name"].as_str().unwrap_or("").to_string()).collect()
    }

    #[test]
    fn apply_assigns_server_metadata_and_skips_no_ops() {
        let store = Store::new();
        store.apply(&CONFIG_MAP, config_map("a", "1"));
        let first = store.get(&CONFIG_MAP, "default", "a").unwrap();
        assert_eq!(first["metadata"]["resourceVersion"], "2");
        assert!(first["metadata"]["generation"].is_null(), "ConfigMaps carry no generation");
        store.apply(&CONFIG_MAP, config_map("a", "1"));
        assert_eq!(store.revision(), 2, "an identical apply writes nothing");
        store.apply(&CONFIG_MAP, config_map("a", "2"));
        let second = store.get(&CONFIG_MAP, "default", "a").unwrap();
        assert_eq!(second["metadata"]["resourceVersion"], "3");
        assert_eq!(second["metadata"]["uid"], first["metadata"]["uid"]);
        assert_eq!(second["metadata"]["creationTimestamp"], first["metadata"]["creationTimestamp"]);
    }

    #[test]
    fn pages_read_the_first_pages_snapshot() {
        let store = Store::new();
        for name in ["a", "b", "c", "d"] {
            store.apply(&CONFIG_MAP, config_map(name, "1"));
        }
        let options = ListOptions { limit: Some(2), ..Default::default() };
        let first = store.list(&filter(&CONFIG_MAP), &options).unwrap();
        assert_eq!(names(&first), ["a", "b"]);
        assert_eq!(first.remaining_item_count, Some(2));
        // Changes after the first page do not show in the next ones.
        store.delete(&CONFIG_MAP, "default", "c");
        store.apply(&CONFIG_MAP, config_map("e", "1"));
        let next = ListOptions { limit: Some(2), continue_token: first.continue_token.clone(), ..Default::default() };
        let second = store.list(&filter(&CONFIG_MAP), &next).unwrap();
        assert_eq!(names(&second), ["c", "d"]);
        assert_eq!(second.revision, first.revision);
        assert!(second.continue_token.is_none());
        // Once compacted, the token is refused with one that continues at the latest.
        store.expire_history();
        let error = store.list(&filter(&CONFIG_MAP), &next).unwrap_err();
        assert_eq!(error.code, 410);
        let latest = error.status["metadata"]["continue"].as_str().unwrap().to_string();
        let resumed = ListOptions { continue_token: Some(latest), ..Default::default() };
        assert_eq!(names(&store.list(&filter(&CONFIG_MAP), &resumed).unwrap()), ["d", "e"]);
    }

    #[test]
    fn watch_resumes_from_history_and_expires() {
        let store = Store::new();
        store.apply(&SERVICE, json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}}));
        store.apply(&CONFIG_MAP, config_map("a", "1"));
        store.apply(&CONFIG_MAP, config_map("a", "2"));
        let from = |rv: &str| WatchOptions { resource_version: Some(rv.into()), ..Default::default() };
        let start = store.start_watch(&filter(&CONFIG_MAP), &from("2"), None).ok().unwrap();
        let types: Vec<_> = start.initial.iter().map(WatchEvent::type_name).collect();
        assert_eq!(types, ["ADDED", "MODIFIED"]);
        assert_eq!(store.open_watches(), 1);
        store.end_watch(start.id);
        store.set_history_limit(1);
        match store.start_watch(&filter(&CONFIG_MAP), &from("2"), None) {
            Err(WatchRefusal::Expired(error)) => {
                assert_eq!(error.status["message"], "too old resource version: 2 (3)")
            }
            _ => panic!("expected 410"),
        }
        assert_eq!(store.open_watches(), 0);
    }
}
