//! The `io.l5d.k8s.configMap` interpreter's input: the dtab in one key of one
//! ConfigMap, watched (docs/k8s-namer.md, "The configMap interpreter").
//!
//! The rules are linkerd's `ConfigMapInterpreterConfig`:
//!
//! - the key's text is the dtab;
//! - no ConfigMap (never created, or deleted) or no such key: an empty dtab
//!   (logged once, when it becomes so);
//! - a text that does not parse is refused: logged, counted, and the dtab in
//!   effect stays (on the first read there is none, so it is empty, as in
//!   linkerd); a later good text is applied again (linkerd#1639).
//!
//! [`DtabState`] applies them (pure); [`ConfigMapSink`] feeds it from the
//! watch (`watch::run_scoped`, the namer's list/watch loop, on the one
//! ConfigMap by `fieldSelector=metadata.name=<name>` in its namespace) and
//! tells the control thread, which takes [`ConfigMapDtabs`] into the routing
//! snapshot's inputs. The snapshot puts the dtab in front of the router's.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use config::ConfigMapInterpreterConfig;
use k8s_openapi::api::core::v1::ConfigMap;
use naming::Dtab;

use super::watch::{Sink, WatchStats};

/// What the key held when last read, as far as the dtab is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// The ConfigMap does not exist.
    NoConfigMap,
    /// The ConfigMap has no such key in its `data`.
    NoKey,
    /// The key's text.
    Text(String),
}

/// Why the dtab in effect is what it is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Source {
    /// Not read yet (the API server has not answered): empty.
    #[default]
    Pending,
    /// No ConfigMap: empty.
    NoConfigMap,
    /// No such key: empty.
    NoKey,
    /// The key's dtab.
    Key,
}

/// The dtab a configMap interpreter contributes, as the routing snapshot
/// receives it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConfigMapDtab {
    /// In effect: goes in front of the router's dtab.
    pub dtab: Dtab,
    pub source: Source,
    /// The parse error of the text last refused, while that text is still
    /// what the key holds (the dtab in effect is an earlier one).
    pub refused: Option<String>,
}

impl ConfigMapDtab {
    /// Whether the ConfigMap has been read at least once.
    pub fn synced(&self) -> bool {
        self.source != Source::Pending
    }
}

/// Each configMap interpreter's dtab, by its config.
pub type ConfigMapDtabs = BTreeMap<ConfigMapInterpreterConfig, Arc<ConfigMapDtab>>;

/// What one reading changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing the interpreter uses (another key changed, a relist).
    Unchanged,
    /// A new dtab is in effect (possibly empty: see `source`).
    Applied,
    /// The text does not parse (the error): refused, the dtab in effect
    /// stays.
    Refused(String),
}

/// linkerd's rules over successive readings of the key.
#[derive(Debug, Default)]
pub struct DtabState {
    current: Arc<ConfigMapDtab>,
    last_seen: Option<Seen>,
}

impl DtabState {
    pub fn current(&self) -> &Arc<ConfigMapDtab> {
        &self.current
    }

    /// Applies one reading (a list, an event).
    pub fn observe(&mut self, seen: Seen) -> Outcome {
        if self.last_seen.as_ref() == Some(&seen) {
            return Outcome::Unchanged;
        }
        self.last_seen = Some(seen.clone());
        let next = match seen {
            Seen::NoConfigMap => ConfigMapDtab { dtab: Dtab::empty(), source: Source::NoConfigMap, refused: None },
            Seen::NoKey => ConfigMapDtab { dtab: Dtab::empty(), source: Source::NoKey, refused: None },
            Seen::Text(text) => match Dtab::parse(&text) {
                Ok(dtab) => ConfigMapDtab { dtab, source: Source::Key, refused: None },
                Err(e) => {
                    let error = e.to_string();
                    let mut next = (*self.current).clone();
                    if next.source == Source::Pending {
                        // Nothing was in effect: linkerd's first read of a
                        // broken dtab gives the empty one too.
                        next.source = Source::Key;
                    }
                    next.refused = Some(error.clone());
                    self.current = Arc::new(next);
                    return Outcome::Refused(error);
                }
            },
        };
        if *self.current == next {
            return Outcome::Unchanged;
        }
        self.current = Arc::new(next);
        Outcome::Applied
    }
}

/// The counters of one configMap interpreter's watch, read by the admin
/// server.
#[derive(Debug)]
pub struct ConfigMapStats {
    /// The watch itself (its last event age, reconnects, …, and `synced`).
    pub watch: Arc<WatchStats>,
    /// `<namespace>/<name>`.
    pub config_map: String,
    /// The ConfigMap key.
    pub key: String,
    /// Texts refused because they do not parse.
    pub refused: AtomicU64,
    /// Dtabs applied (an empty one for a missing ConfigMap or key included).
    pub updates: AtomicU64,
    /// Entries in the dtab in effect.
    pub dentries: AtomicU64,
}

/// The watch's sink: readings of the ConfigMap → [`DtabState`], with the log
/// lines and counters, waking the control thread when the dtab changes.
pub struct ConfigMapSink {
    config: ConfigMapInterpreterConfig,
    state: Mutex<DtabState>,
    /// Set when the dtab changed since the control thread last took it.
    pub dirty: AtomicBool,
    changed: Arc<tokio::sync::Notify>,
    pub stats: Arc<ConfigMapStats>,
}

impl ConfigMapSink {
    pub fn new(
        config: ConfigMapInterpreterConfig,
        watch: Arc<WatchStats>,
        changed: Arc<tokio::sync::Notify>,
    ) -> ConfigMapSink {
        let stats = Arc::new(ConfigMapStats {
            watch,
            config_map: format!("{}/{}", config.namespace, config.name),
            key: config.filename.clone(),
            refused: AtomicU64::new(0),
            updates: AtomicU64::new(0),
            dentries: AtomicU64::new(0),
        });
        ConfigMapSink { config, state: Mutex::new(DtabState::default()), dirty: AtomicBool::new(false), changed, stats }
    }

    /// The dtab in effect.
    pub fn current(&self) -> Arc<ConfigMapDtab> {
        match self.state.lock() {
            Ok(state) => state.current().clone(),
            Err(poisoned) => poisoned.into_inner().current().clone(),
        }
    }

    fn is_ours(&self, object: &ConfigMap) -> bool {
        object.metadata.name.as_deref() == Some(self.config.name.as_str())
            && object.metadata.namespace.as_deref().is_none_or(|ns| ns == self.config.namespace)
    }

    fn seen(&self, object: Option<&ConfigMap>) -> Seen {
        match object {
            None => Seen::NoConfigMap,
            Some(cm) => match cm.data.as_ref().and_then(|d| d.get(&self.config.filename)) {
                Some(text) => Seen::Text(text.clone()),
                None => Seen::NoKey,
            },
        }
    }

    fn observe(&self, seen: Seen) {
        let (outcome, current) = {
            let mut state = match self.state.lock() {
                Ok(state) => state,
                Err(poisoned) => poisoned.into_inner(),
            };
            let outcome = state.observe(seen);
            (outcome, state.current().clone())
        };
        let (config_map, key) = (&self.stats.config_map, &self.config.filename);
        match outcome {
            Outcome::Unchanged => return,
            Outcome::Refused(error) => {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                tracing::error!(configmap = %config_map, key = %key, %error, dentries = current.dtab.len(), "io.l5d.k8s.configMap: the dtab does not parse; refused, the previous dtab keeps serving");
            }
            Outcome::Applied => {
                self.stats.updates.fetch_add(1, Ordering::Relaxed);
                self.stats.dentries.store(current.dtab.len() as u64, Ordering::Relaxed);
                match current.source {
                    Source::NoConfigMap => {
                        tracing::warn!(configmap = %config_map, key = %key, "io.l5d.k8s.configMap: the ConfigMap does not exist; its dtab is empty until it is created")
                    }
                    Source::NoKey => {
                        tracing::warn!(configmap = %config_map, key = %key, "io.l5d.k8s.configMap: the ConfigMap has no such key; its dtab is empty")
                    }
                    Source::Key | Source::Pending => {
                        tracing::info!(configmap = %config_map, key = %key, dentries = current.dtab.len(), dtab = %current.dtab.show(), "io.l5d.k8s.configMap: dtab applied")
                    }
                }
            }
        }
        self.dirty.store(true, Ordering::Release);
        self.changed.notify_one();
    }
}

impl Sink<ConfigMap> for ConfigMapSink {
    /// What the key of our ConfigMap holds.
    type Item = Seen;

    fn keep(&self, object: ConfigMap) -> Option<Seen> {
        self.is_ours(&object).then(|| self.seen(Some(&object)))
    }

    fn replace_all(&self, items: Vec<Seen>) {
        self.observe(items.into_iter().next().unwrap_or(Seen::NoConfigMap));
    }

    fn apply(&self, object: &ConfigMap) {
        if self.is_ours(object) {
            self.observe(self.seen(Some(object)));
        }
    }

    fn delete(&self, object: &ConfigMap) {
        if self.is_ours(object) {
            self.observe(Seen::NoConfigMap);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Seen {
        Seen::Text(s.to_string())
    }

    #[test]
    fn a_good_dtab_is_applied_and_the_same_text_again_changes_nothing() {
        let mut state = DtabState::default();
        assert!(!state.current().synced());
        assert_eq!(state.observe(text("/svc => /$/inet/127.0.0.1/1;")), Outcome::Applied);
        assert_eq!(state.current().dtab, Dtab::parse("/svc=>/$/inet/127.0.0.1/1").unwrap());
        assert_eq!(state.current().source, Source::Key);
        assert_eq!(state.observe(text("/svc => /$/inet/127.0.0.1/1;")), Outcome::Unchanged);
        // The same dtab written differently: nothing to publish either.
        assert_eq!(state.observe(text("/svc=>/$/inet/127.0.0.1/1")), Outcome::Unchanged);
    }

    #[test]
    fn a_broken_dtab_is_refused_and_the_previous_one_stays_until_a_good_one() {
        let mut state = DtabState::default();
        state.observe(text("/svc => /$/inet/127.0.0.1/1;"));
        let before = state.current().dtab.clone();
        assert!(matches!(state.observe(text("blargh im not a dtab!!!")), Outcome::Refused(_)));
        assert_eq!(state.current().dtab, before, "the old dtab keeps serving");
        assert!(state.current().refused.is_some());
        // The same broken text again (another key changed): not refused twice.
        assert_eq!(state.observe(text("blargh im not a dtab!!!")), Outcome::Unchanged);
        // A good one afterwards is applied (linkerd#1639).
        assert_eq!(state.observe(text("/svc => /$/inet/127.0.0.1/2;")), Outcome::Applied);
        assert_eq!(state.current().dtab, Dtab::parse("/svc=>/$/inet/127.0.0.1/2").unwrap());
        assert_eq!(state.current().refused, None);
    }

    #[test]
    fn a_broken_dtab_on_the_first_read_gives_the_empty_dtab() {
        let mut state = DtabState::default();
        assert!(matches!(state.observe(text("/svc => ")), Outcome::Refused(_)));
        assert!(state.current().synced());
        assert!(state.current().dtab.is_empty());
    }

    #[test]
    fn no_config_map_or_no_key_gives_the_empty_dtab_once() {
        let mut state = DtabState::default();
        assert_eq!(state.observe(Seen::NoConfigMap), Outcome::Applied, "the first read: synced, empty");
        assert!(state.current().synced() && state.current().dtab.is_empty());
        assert_eq!(state.observe(Seen::NoConfigMap), Outcome::Unchanged, "logged once");
        state.observe(text("/a => /b;"));
        assert_eq!(state.observe(Seen::NoKey), Outcome::Applied);
        assert!(state.current().dtab.is_empty());
        assert_eq!(state.current().source, Source::NoKey);
        // A broken text, then the ConfigMap deleted: empty, not the old one.
        state.observe(text("/a => /b;"));
        state.observe(text("nope"));
        assert_eq!(state.observe(Seen::NoConfigMap), Outcome::Applied);
        assert!(state.current().dtab.is_empty());
        assert_eq!(state.current().refused, None);
    }

    fn config_map(name: &str, data: &[(&str, &str)]) -> ConfigMap {
        let data: BTreeMap<String, String> = data.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "prod", "resourceVersion": "7"},
            "data": data,
        }))
        .unwrap()
    }

    #[test]
    fn the_sink_reads_only_its_config_map_and_key_and_counts() {
        let config = ConfigMapInterpreterConfig {
            api: config::K8sApiConfig::Proxy { host: "localhost".into(), port: 8001 },
            namespace: "prod".into(),
            name: "dtabs".into(),
            filename: "out.dtab".into(),
        };
        let sink = ConfigMapSink::new(
            config,
            Arc::new(WatchStats::new("localhost:8001", "configmaps/prod/dtabs")),
            Default::default(),
        );
        let listed: Vec<Seen> = [config_map("other", &[("out.dtab", "/x => /y;")])]
            .into_iter()
            .filter_map(|o| Sink::keep(&sink, o))
            .collect();
        assert!(listed.is_empty());
        sink.replace_all(listed);
        assert_eq!(sink.current().source, Source::NoConfigMap, "another ConfigMap is not ours");
        assert!(sink.dirty.swap(false, Ordering::AcqRel));
        sink.apply(&config_map("dtabs", &[("out.dtab", "/svc => /$/inet/127.0.0.1/1;"), ("other", "x")]));
        assert_eq!(sink.current().dtab.len(), 1);
        assert!(sink.dirty.swap(false, Ordering::AcqRel));
        // Another key changed: nothing to publish.
        sink.apply(&config_map("dtabs", &[("out.dtab", "/svc => /$/inet/127.0.0.1/1;"), ("other", "y")]));
        assert!(!sink.dirty.load(Ordering::Acquire));
        sink.apply(&config_map("dtabs", &[("out.dtab", "/svc => ;;")]));
        assert_eq!(sink.stats.refused.load(Ordering::Relaxed), 1);
        assert_eq!(sink.current().dtab.len(), 1, "the old dtab keeps serving");
        sink.delete(&config_map("dtabs", &[]));
        assert!(sink.current().dtab.is_empty());
        assert_eq!(sink.stats.updates.load(Ordering::Relaxed), 3);
    }
}
