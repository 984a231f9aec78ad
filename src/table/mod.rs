//! # Table: the per-core route table
//!
//! What the data path asks per request, on top of the pure naming library
//! ([`naming`]: paths, dtabs, name trees, delegation):
//!
//! * `snapshot` — [`RoutingSnapshot`]: config, dtabs and namer state
//!   compiled into one immutable value, published with arc-swap
//!   ([`SharedSnapshot`]). Compiling does no I/O: it receives
//!   [`SnapshotInputs`] loaded by `namer/` and `server::control::load_inputs`.
//! * `identifier` — [`Identifiers`]: a request → its destination path under
//!   the router's `dstPrefix`.
//! * `cache` — [`RouteTable`]: each core's cache of resolved destinations
//!   ([`Route`]s), keyed by the snapshot's generation. No lock anywhere.
//! * `settings` — [`ServerSettings`]: one server's limits, timeouts, TLS
//!   and access log, compiled into the snapshot and copied per core.
//! * `transform` — [`Transformer`]: linkerd's transformers (`io.l5d.port`,
//!   `io.l5d.localhost`, `io.l5d.k8s.daemonset`, `io.l5d.k8s.localnode`),
//!   compiled into the snapshot and applied to bound addresses.
//! * `names` — [`names::CoreNames`]: each core's answers for host names
//!   only requests supplied, asked of the control thread and awaited.
//! * `error` — [`RouteError`]: why a request has no route; `proxy` answers
//!   each as linkerd does.

mod cache;
mod error;
mod identifier;
pub mod names;
mod settings;
mod snapshot;
mod transform;

pub use crate::namer::NamerInputs;
pub use cache::{LastRoute, Route, RouteTable, RouteTls};
pub use error::RouteError;
pub use identifier::{consume_segments, ClientContext, Identifier, Identifiers};
pub use settings::{IoLimit, IoLimits, IoOp, IoSetting, ServerSettings};
pub use snapshot::{
    ConfiguredNamer, Endpoints, NamerKind, NoRequestHosts, RequestHosts, RouterInputs, RouterRoutes, RoutingSnapshot,
    SharedSnapshot, SnapshotInputs, Unresolved,
};
pub use transform::{Target, Transformer};
