//! What the admin server shows of the control thread (`server::control`):
//! reloads applied and refused, snapshots published for namer updates, and
//! the `io.l5d.k8s` watches.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::namer::k8s::WatchStats;

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
    /// The Kubernetes watches running (replaced when a reload changes the
    /// API servers). The lock is taken by the control thread and the admin
    /// server only, never on the data path.
    k8s_watches: RwLock<Vec<Arc<WatchStats>>>,
}

impl ControlStats {
    pub fn set_k8s_watches(&self, watches: Vec<Arc<WatchStats>>) {
        match self.k8s_watches.write() {
            Ok(mut w) => *w = watches,
            Err(poisoned) => *poisoned.into_inner() = watches,
        }
    }

    pub fn k8s_watches(&self) -> Vec<Arc<WatchStats>> {
        match self.k8s_watches.read() {
            Ok(w) => w.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Every Kubernetes watch has completed its first list.
    pub fn k8s_synced(&self) -> bool {
        self.k8s_watches().iter().all(|w| w.synced.load(Ordering::Relaxed))
    }
}
