//! Running the proxy: bind listener groups, start one pinned worker thread per
//! core with its own event loop, and shut down gracefully on signals.

pub mod control;
mod run;
mod sys;
mod worker;

pub use run::{run, RunOptions};
pub use sys::raise_nofile_limit;
