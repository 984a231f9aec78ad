//! # Routing: the per-core route table
//!
//! What the data path asks per request, on top of the pure naming library
//! ([`naming`]: paths, dtabs, name trees, delegation):
//!
//! * `snapshot` — [`RoutingSnapshot`]: config, dtabs and namer state
//!   compiled into one immutable value, published with arc-swap
//!   ([`SharedSnapshot`]).
//! * `identifier` — [`Identifiers`]: a request → its destination path under
//!   the router's `dstPrefix`.
//! * `cache` — [`CoreRoutes`]: each core's cache of resolved destinations
//!   ([`Route`]s), keyed by the snapshot's generation. No lock anywhere.
//! * `error` — [`RouteError`]: why a request has no route; `proxy` answers
//!   each as linkerd does.

mod cache;
mod error;
mod identifier;
mod snapshot;

pub use cache::{CoreRoutes, Route, RouteTls};
pub use error::RouteError;
pub use identifier::{consume_segments, Identifier, Identifiers};
pub use snapshot::{Endpoints, FsNamer, NamerInputs, RouterRoutes, RoutingSnapshot, SharedSnapshot};
