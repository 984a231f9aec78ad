//! corelink: a thread-per-core sidecar proxy for linker-to-linker TLS, in the
//! model of linkerd 1.x. The data path, in module order:
//!
//! `server` (workers, listeners, shutdown) → `io` (epoll / io_uring backends)
//! → `proxy` (per-connection state machine) → `http1` (sans-IO codec,
//! the `corelink-http1` crate)
//! → `routing` (identify, delegate through the dtab snapshot) → `pool`
//! (per-core upstream connections). `admin` serves the admin port; `config`
//! reads linkerd 1.x YAML. `telemetry` holds the
//! per-core metrics and the access log. `cli` holds the commands other than `run`
//! (check, delegate, certs, demo), behind `src/main.rs`.

pub mod admin;
pub mod balance;
pub mod cli;
pub mod config;
pub mod io;
pub mod logging;
pub mod namer;
pub mod pool;
pub mod proxy;
pub mod server;
pub mod table;
pub mod telemetry;
pub mod tls;
