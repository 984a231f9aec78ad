//! What corelink reports about the traffic it serves:
//!
//! - [`metrics`]: per-core counters, gauges and latency histograms
//!   (`CoreMetrics`), recorded without locks; the `metrics` cargo feature
//!   compiles the recording out.
//! - [`snapshot`]: what each core hands the admin server on a scrape, and
//!   their merge into linkerd's flat scopes.
//! - [`prometheus`]: the merged snapshot in Prometheus text format.
//! - [`access_log`]: linkerd's `httpAccessLog`, formatted per core, written
//!   by a thread per log.

pub mod access_log;
pub mod metrics;
pub mod prometheus;
pub mod snapshot;
