//! The per-connection proxy: glues the sans-IO HTTP/1 codec to a backend's
//! streams, the routing snapshot and the per-core pool.
//!
//! - `core`: per-core state shared by the connections of one worker.
//! - `buffers`: the core's recycled I/O buffers.
//! - `upstream`: the core's upstream connections: idle pool, `maxSize` slots.
//! - `conn`: the client connection loop (read head, route, exchange, repeat).
//! - `parked`: idle keep-alive connections, parked without a task.
//! - `request`: what `conn` hands `exchange` for one request, and `Next`.
//! - `exchange`: one request/response with an upstream, incl. the retry.
//! - `rules`: whether each connection is reused after an exchange (pure).
//! - `body`: streaming a body from one stream to another with backpressure.
//! - `timed`: per-operation limits on body reads and writes.
//! - `watchdog`: the coarse per-core deadlines those limits use.
//! - `tunnel`: raw byte relay after Upgrade/CONNECT.
//! - `error`: failures, their side, status and `l5d-err` text.

mod body;
mod buffers;
mod conn;
mod core;
mod error;
mod exchange;
mod parked;
mod request;
mod rules;
mod timed;
mod tunnel;
mod upstream;
mod watchdog;

pub use conn::{serve_connection, watch_parked};
pub use core::{Core, Shutdown};
pub use error::{ProxyError, Side};
pub use timed::{IoLimit, IoLimits, IoOp, IoSetting};
pub use upstream::PoolKey;
