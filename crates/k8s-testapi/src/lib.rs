//! A test Kubernetes API server: a stand-in for kube-apiserver's wire
//! protocol, for corelink's `io.l5d.k8s` namer tests, on loopback only.
//!
//! It serves Services, EndpointSlices and ConfigMaps: list, get and watch,
//! over HTTP/1.1 (plain, or TLS with a bearer token), one thread per
//! connection (at most 256). Tests change the objects through [`ApiServer`]
//! and misbehave it on purpose (cut watches, compact history, go down).
//!
//! ```
//! use k8s_testapi::{objects, ApiServer};
//! let server = ApiServer::start();
//! server.apply(objects::config_map("prod", "dtabs", &[("default", "/svc => /#/io.l5d.k8s/prod/http;")]));
//! println!("http://{}/api/v1/namespaces/prod/configmaps/dtabs", server.addr());
//! ```
//!
//! # The API
//!
//! ```text
//! ApiServer::start() -> ApiServer                         plain HTTP, no auth (like `kubectl proxy`)
//! ApiServer::start_tls(cert_chain_pem, key_pem, token)   HTTPS, ALPN http/1.1, bearer token or 401
//! ApiServer::try_start_tls(..) -> Result<ApiServer, TlsSetupError>
//! ApiServer::start_on(addr) -> io::Result<ApiServer>     plain HTTP on a given loopback address
//! addr()  set_token(token)  apply(object)  delete(kind, namespace, name)  get(kind, namespace, name)
//! resource_version()  drop_watches()  expire_history()  set_history_limit(changes)  bookmark()
//! set_available(up)  requests() -> Vec<Request>  open_watches()
//! fail_watches(Option<WatchFault>)  hang_lists(hang)
//! ```
//!
//! Faults for clients' error handling: [`ApiServer::fail_watches`] makes
//! every new watch meet a [`WatchFault`]: `VersionAhead` (the ERROR event
//! kube-apiserver sends a watch from a version ahead of it: `504 Too large
//! resource version`), `Gone` (the watch request answered 410 Expired), or
//! `Hang` (read, never answered); [`ApiServer::hang_lists`] hangs lists.
//!
//! [`objects`] builds objects shaped exactly like the fixtures in
//! `fixtures/`: [`objects::service`], [`objects::endpoint_slice`] (with
//! [`objects::Endpoint`]s: `Endpoint::ready(addr)`, `not_ready`,
//! `terminating`, `.on_node(..)`, `.in_zone(..)`) and [`objects::config_map`].
//! The fixtures and builder output are checked against the Kubernetes 1.34
//! OpenAPI schemas with `kubernetes-validate` 1.37.0 (`--strict -k 1.34.0`)
//! by `validate-fixtures.sh`.
//!
//! # What it does as kube-apiserver does
//!
//! * Paths: `/api/v1/{services,configmaps}`, `/apis/discovery.k8s.io/v1/endpointslices`,
//!   each also under `namespaces/{ns}/`, and `namespaces/{ns}/{plural}/{name}` for a get;
//!   the legacy `/watch/` prefix; `GET /version`, `/api`, `/apis`, `/api/v1`,
//!   `/apis/discovery.k8s.io/v1`. Anything else: 404 `Status` NotFound; a
//!   missing object: 404 NotFound with `details {name, kind[, group]}`.
//!   Methods other than GET: 405.
//! * One resourceVersion (etcd revision) for all kinds, as a string,
//!   increasing by one per write. `apply` sets `resourceVersion`, `uid` and
//!   `creationTimestamp` (kept across updates) and, for EndpointSlices only
//!   (as their registry strategy does), `generation` (1, then +1 when
//!   anything outside `metadata` changes). An apply that changes nothing
//!   writes nothing and sends no event.
//! * List: `labelSelector` (`=`, `==`, `!=`, `k`, `!k`, `in`, `notin`, `>`, `<`,
//!   comma = AND), `fieldSelector` (`metadata.name`, `metadata.namespace`;
//!   others 400 "field label not supported"), `limit` + `continue` (the
//!   real token format; every page reads the first page's snapshot;
//!   `remainingItemCount` when there are no selectors), `resourceVersion` +
//!   `resourceVersionMatch`: unset/"" = latest, "0" = any (latest here),
//!   `N` = not older than N (waits up to 3 s, then 504 "Too large resource
//!   version"), `Exact` (or, legacy, `N` with a `limit`) = the snapshot at N,
//!   410 Expired "The resourceVersion for the provided list is too old." once
//!   compacted. A compacted continue token: 410 with a `metadata.continue`
//!   that continues at the latest. Items carry no `kind`/`apiVersion`, as
//!   typed lists are encoded by the apiserver.
//! * Watch (`watch=true|1`): 200, `Content-Type: application/json`,
//!   `Transfer-Encoding: chunked`, one `{"type":…,"object":…}\n` per chunk.
//!   `resourceVersion` ""/"0": the current state as ADDED first; `N`: every
//!   change after N; N compacted: one ERROR event with the 410 `Status`
//!   (`reason: Expired`, `too old resource version: N (C)`), then the stream
//!   ends cleanly. `sendInitialEvents=true` (with
//!   `resourceVersionMatch=NotOlderThan`, else 422): the state as ADDED, then,
//!   if `allowWatchBookmarks=true`, a BOOKMARK annotated
//!   `k8s.io/initial-events-end: "true"`. As in 1.34 (WatchList on by
//!   default), a watch from ""/"0" without those parameters is defaulted to
//!   `sendInitialEvents=true`, so with bookmarks allowed it gets that
//!   bookmark after its ADDED events too.
//!   BOOKMARK objects carry only kind, apiVersion and `metadata.resourceVersion`.
//!   `timeoutSeconds` ends the stream with the terminating chunk (default
//!   1800 s); the connection stays usable. Selectors filter events; an
//!   object that leaves a watch's selection is sent as DELETED (its previous
//!   content at the new resourceVersion), one that enters it as ADDED. A
//!   DELETED event carries the object at the deletion's resourceVersion.
//! * History: the latest 10,000 changes (see `set_history_limit`);
//!   `expire_history` compacts all of it.
//! * HTTP/1.1 keep-alive, `Connection: close`, HTTP/1.0; heads up to 64 KiB,
//!   bodies up to 1 MiB (discarded); malformed requests get Go's plain-text
//!   400/431/505 and a close. Auth errors: 401 `Status` (reason Unauthorized).
//!
//! # Where it differs
//!
//! No writes over HTTP (tests write through [`ApiServer`]), no
//! `managedFields`, no protobuf/CBOR or Table output, no HTTP/2, no
//! aggregated discovery. Bookmarks come only from [`ApiServer::bookmark`]
//! and the streaming-list end (the real server also sends them about once a
//! minute). A watch from a future resourceVersion simply waits for it
//! (`WatchFault::VersionAhead` gives the real server's answer on demand).
//! The server's JSON has its keys sorted (clients must not care).

mod clock;
mod continue_token;
mod http;
mod kinds;
pub mod load;
pub mod objects;
mod query;
mod selector;
mod server;
mod status;
mod store;
mod tls;

pub use server::{ApiServer, Request, WatchFault};
pub use tls::TlsSetupError;
