//! corelink: a thread-per-core sidecar proxy for linker-to-linker TLS, in the
//! model of linkerd 1.x. The data path, in module order:
//!
//! `server` (workers, listeners, shutdown) → `io` (epoll / io_uring backends)
//! → `proxy` (per-connection state machine, on `http1`, the sans-IO codec of
//! the `corelink-http1` crate) → `table` (the per-core route table: identify,
//! delegate through the dtab snapshot with the `corelink-naming` crate, pick
//! an endpoint; each server's settings; why a request has no route) →
//! `balance` (balancers, failure accrual), `pool` (per-core upstream
//! connections), `tls`, `namer` and `telemetry`. Imports follow the same
//! order: `table` never imports `proxy`. `admin` serves the admin port;
//! the `corelink-config` crate reads linkerd 1.x YAML. `telemetry` holds the
//! per-core metrics and the access log. `cli` holds the commands other than `run`
//! (check, delegate, certs, demo), behind `src/main.rs`.

pub mod admin;
pub mod balance;
pub mod cli;
pub mod io;
pub mod logging;
pub mod namer;
pub mod pool;
pub mod proxy;
pub mod server;
pub mod table;
pub mod telemetry;
pub mod tls;
