//! Host names the config mentions (dtabs, namer files, ConfigMap dtabs):
//! resolved before the snapshot that uses them is compiled, then each
//! refreshed when its (clamped) TTL runs out, by a task on the control
//! thread's runtime. A change marks the set dirty and wakes the control
//! thread, which compiles a new snapshot. A name whose lookup fails keeps
//! its last answer: a DNS hiccup must not take a working route away.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use config::DnsConfig;
use tokio::runtime::Runtime;
use tokio::sync::Notify;

use super::{build_resolver, lookup_host, DnsSettings, DnsStats, HostAnswer, Resolver};

/// The shortest wait between two lookups of one name: `minTtlSecs: 0` and
/// `negativeTtlSecs: 0` are valid, and a 0 s TTL or NXDOMAIN would
/// otherwise be asked again as fast as the server answers (3,000 queries
/// a second, a warning each).
const MIN_REFRESH: std::time::Duration = std::time::Duration::from_secs(1);

/// When to ask again after an answer said `due`: never sooner than
/// [`MIN_REFRESH`] from `now`.
fn next_refresh(due: Instant, now: Instant) -> Instant {
    due.max(now + MIN_REFRESH)
}

/// Answers host names for a snapshot. `names` is every name wanted now:
/// a watching resolver stops refreshing the others.
pub trait HostResolver {
    fn resolve(&mut self, names: &[String]) -> HashMap<String, Vec<IpAddr>>;
}

/// Resolves once, for `corelink check`, `corelink delegate` and tests
/// (nothing keeps running).
pub struct OneShot {
    config: DnsConfig,
}

impl OneShot {
    pub fn new(config: &DnsConfig) -> OneShot {
        OneShot { config: config.clone() }
    }
}

impl HostResolver for OneShot {
    fn resolve(&mut self, names: &[String]) -> HashMap<String, Vec<IpAddr>> {
        if names.is_empty() {
            return HashMap::new();
        }
        let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                tracing::warn!(error = %e, "cannot start a runtime to resolve host names");
                return HashMap::new();
            }
        };
        let settings = DnsSettings::from(&self.config);
        rt.block_on(async {
            let resolver = match build_resolver(&self.config) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "host names are not resolved");
                    return HashMap::new();
                }
            };
            let answers = futures::future::join_all(names.iter().map(|n| lookup_host(&resolver, n, &settings))).await;
            names.iter().zip(answers).map(|(name, answer)| (name.clone(), kept(name, answer, None))).collect()
        })
    }
}

/// The addresses an answer leaves a name with: a failure keeps `previous`.
fn kept(name: &str, answer: HostAnswer, previous: Option<&Vec<IpAddr>>) -> Vec<IpAddr> {
    match answer {
        HostAnswer::Addrs { ips, .. } => ips,
        HostAnswer::NoSuchHost { .. } => {
            let kept = previous.cloned().unwrap_or_default();
            tracing::warn!(host = %name, kept = kept.len(), "DNS: no such host");
            kept
        }
        HostAnswer::Failed { error, .. } => {
            let kept = previous.cloned().unwrap_or_default();
            tracing::warn!(host = %name, %error, kept = kept.len(), "DNS resolution failed");
            kept
        }
    }
}

/// What the refresh tasks and the control thread share.
struct Shared {
    answers: Mutex<HashMap<String, Vec<IpAddr>>>,
    dirty: AtomicBool,
    changed: Arc<Notify>,
    stats: Arc<DnsStats>,
}

impl Shared {
    /// Stores an answer; returns when the name is due again.
    fn store(&self, name: &str, answer: HostAnswer) -> Instant {
        let due = Instant::now() + answer.ttl();
        self.stats.config_lookups.fetch_add(1, Ordering::Relaxed);
        if !matches!(answer, HostAnswer::Addrs { .. }) {
            self.stats.config_failures.fetch_add(1, Ordering::Relaxed);
        }
        let mut answers = match self.answers.lock() {
            Ok(a) => a,
            Err(poisoned) => poisoned.into_inner(),
        };
        let previous = answers.get(name);
        let now = kept(name, answer, previous);
        if previous != Some(&now) {
            if previous.is_some() {
                self.stats.config_changes.fetch_add(1, Ordering::Relaxed);
                tracing::info!(host = %name, addrs = ?now, "DNS: addresses changed");
            }
            answers.insert(name.to_string(), now);
            self.dirty.store(true, Ordering::Release);
            self.changed.notify_one();
        }
        due
    }
}

/// The config's host names, kept resolved on the control thread's runtime.
pub struct ConfigNames {
    rt: Arc<Runtime>,
    config: DnsConfig,
    resolver: Option<Arc<Resolver>>,
    /// The resolver and settings as request names use them (`request`).
    current: super::request::Current,
    shared: Arc<Shared>,
    /// One refresh task per name (aborted on drop).
    tasks: BTreeMap<String, tokio::task::JoinHandle<()>>,
}

impl Drop for ConfigNames {
    fn drop(&mut self) {
        self.tasks.values().for_each(|t| t.abort());
    }
}

impl ConfigNames {
    /// `rt` is the control thread's runtime (it runs the refreshes while the
    /// control thread parks on it); `changed` wakes the control thread.
    pub fn new(rt: Arc<Runtime>, changed: Arc<Notify>, config: &DnsConfig, stats: Arc<DnsStats>) -> ConfigNames {
        let shared =
            Arc::new(Shared { answers: Mutex::new(HashMap::new()), dirty: AtomicBool::new(false), changed, stats });
        let mut names = ConfigNames {
            rt,
            config: config.clone(),
            resolver: None,
            current: Arc::default(),
            shared,
            tasks: BTreeMap::new(),
        };
        names.resolver = names.build();
        names.set_current();
        names
    }

    fn set_current(&self) {
        let now = self.resolver.clone().map(|resolver| super::request::RequestResolver {
            resolver,
            config: self.config.clone(),
            names_per_lookup: super::names_per_lookup(&self.config),
        });
        match self.current.lock() {
            Ok(mut c) => *c = now,
            Err(poisoned) => *poisoned.into_inner() = now,
        }
    }

    /// Starts serving the cores' asks for request names on this runtime,
    /// with this resolver (kept up to date on reloads).
    pub fn serve_requests(&self, channels: super::request::ControlChannels, srv: super::request::SrvHandoff) {
        self.rt.spawn(super::request::serve(channels, self.current.clone(), self.shared.stats.clone(), srv));
    }

    fn build(&self) -> Option<Arc<Resolver>> {
        let _guard = self.rt.enter();
        match build_resolver(&self.config) {
            Ok(r) => Some(Arc::new(r)),
            Err(e) => {
                tracing::error!(error = %e, "host names will not be resolved");
                None
            }
        }
    }

    /// The resolver, for the other DNS users on this runtime.
    pub fn resolver(&self) -> Option<Arc<Resolver>> {
        self.resolver.clone()
    }

    /// Takes a reloaded `corelink.dns`: a different one rebuilds the resolver
    /// and resolves every name again (at the next [`HostResolver::resolve`]).
    /// Returns whether it changed.
    pub fn reconfigure(&mut self, config: &DnsConfig) -> bool {
        if *config == self.config {
            return false;
        }
        self.config = config.clone();
        self.resolver = self.build();
        self.set_current();
        self.tasks.values().for_each(|t| t.abort());
        self.tasks.clear();
        true
    }

    /// Whether an answer changed since the last call (and forgets it).
    pub fn take_changed(&self) -> bool {
        self.shared.dirty.swap(false, Ordering::AcqRel)
    }

    /// The current answers for `names`.
    pub fn answers(&self, names: &[String]) -> HashMap<String, Vec<IpAddr>> {
        let answers = match self.shared.answers.lock() {
            Ok(a) => a,
            Err(poisoned) => poisoned.into_inner(),
        };
        names.iter().map(|n| (n.clone(), answers.get(n).cloned().unwrap_or_default())).collect()
    }
}

impl HostResolver for ConfigNames {
    /// Resolves the names not watched yet now (concurrently, each bounded
    /// by the resolution timeout), starts their refresh tasks, stops those
    /// of names no longer wanted, and returns every wanted name's answer.
    fn resolve(&mut self, names: &[String]) -> HashMap<String, Vec<IpAddr>> {
        self.tasks.retain(|name, task| {
            let keep = names.contains(name);
            if !keep {
                task.abort();
            }
            keep
        });
        if let Ok(mut answers) = self.shared.answers.lock() {
            answers.retain(|name, _| names.contains(name));
        }
        let Some(resolver) = self.resolver.clone() else { return self.answers(names) };
        let settings = DnsSettings::from(&self.config);
        let mut new: Vec<&String> = names.iter().filter(|n| !self.tasks.contains_key(*n)).collect();
        new.sort();
        new.dedup();
        let shared = self.shared.clone();
        let first: Vec<Instant> = self.rt.block_on(async {
            let answers = futures::future::join_all(new.iter().map(|n| lookup_host(&resolver, n, &settings))).await;
            new.iter().zip(answers).map(|(name, answer)| shared.store(name, answer)).collect()
        });
        for (name, due) in new.into_iter().zip(first) {
            let due = next_refresh(due, Instant::now());
            let (resolver, shared, name2) = (resolver.clone(), self.shared.clone(), name.clone());
            let task = self.rt.spawn(async move {
                let mut due = due;
                loop {
                    tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
                    let answer = lookup_host(&resolver, &name2, &settings).await;
                    due = next_refresh(shared.store(&name2, answer), Instant::now());
                }
            });
            self.tasks.insert(name.clone(), task);
        }
        // The first answers are in what is returned: not a change to publish.
        self.shared.dirty.store(false, Ordering::Release);
        self.answers(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_asked_at_most_once_a_second() {
        let now = Instant::now();
        assert_eq!(next_refresh(now, now), now + MIN_REFRESH, "a 0 s TTL");
        let later = now + std::time::Duration::from_secs(30);
        assert_eq!(next_refresh(later, now), later, "a 30 s TTL");
    }
}
