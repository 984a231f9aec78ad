//! What the admin server shows of the control thread (`server::control`):
//! reloads applied and refused, and snapshots published for namer updates.

use std::sync::atomic::AtomicU64;

/// Counters the admin server reports (reloads, refusals, namer updates;
/// the generation it reads from the published snapshot). Written by the
/// control thread only.
#[derive(Debug, Default)]
pub struct ControlStats {
    pub reloads: AtomicU64,
    pub reloads_refused: AtomicU64,
    /// Routing snapshots published because a namer file or DNS changed.
    pub namer_updates: AtomicU64,
}
