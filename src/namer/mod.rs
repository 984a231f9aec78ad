//! Namers: where bound names get their addresses.
//!
//! - `fs`: linkerd's `io.l5d.fs` (a directory of service files).
//! - `watch`: change detection for watched paths (fs namers, the config file,
//!   certificates), by polling content fingerprints.
//! - `/$/inet/HOST/PORT` is built into `naming::delegate`; its host names are
//!   resolved into the snapshot (`table::snapshot`).

pub mod fs;
pub mod watch;

pub use fs::{FsState, WeightedAddr};
