//! What the admin server shows of the control thread (`server::control`):
//! reloads applied and refused, snapshots published for namer updates, and
//! the `io.l5d.k8s` watches and the `io.l5d.k8s.configMap` interpreters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::namer::dns::DnsStats;
use crate::namer::k8s::{ConfigMapStats, K8sStats, WatchStats};

/// Counters the admin server reports (reloads, refusals, namer updates;
/// the generation it reads from the published snapshot). Written by the
/// control thread only.
#[derive(Debug, Default)]
pub struct ControlStats {
    pub reloads: AtomicU64,
    pub reloads_refused: AtomicU64,
    /// Routing snapshots published because a namer file, DNS or a watched
    /// Kubernetes object changed.
    pub namer_updates: AtomicU64,
    /// DNS lookups (`namer::dns`), counted by the control thread's tasks.
    pub dns: Arc<DnsStats>,
    /// The Kubernetes watches running (replaced when a reload changes the
    /// API servers or ConfigMaps). The lock is taken by the control thread
    /// and the admin server only, never on the data path.
    k8s: RwLock<K8sStats>,
}

impl ControlStats {
    /// Stats whose DNS counters are `dns` (made before the admin server is).
    pub fn with_dns(dns: Arc<DnsStats>) -> ControlStats {
        ControlStats { dns, ..Default::default() }
    }

    pub fn set_k8s_watches(&self, stats: K8sStats) {
        match self.k8s.write() {
            Ok(mut w) => *w = stats,
            Err(poisoned) => *poisoned.into_inner() = stats,
        }
    }

    fn k8s(&self) -> K8sStats {
        match self.k8s.read() {
            Ok(w) => w.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Every watch: the namers' and the configMap interpreters'.
    pub fn k8s_watches(&self) -> Vec<Arc<WatchStats>> {
        self.k8s().watches
    }

    /// The configMap interpreters' counters.
    pub fn k8s_config_maps(&self) -> Vec<Arc<ConfigMapStats>> {
        self.k8s().config_maps
    }

    /// Every Kubernetes watch has completed its first list (a configMap
    /// interpreter's: its first read of the ConfigMap).
    pub fn k8s_synced(&self) -> bool {
        self.k8s_watches().iter().all(|w| w.synced.load(Ordering::Relaxed))
    }
}
