//! # corelink-naming: paths, dtabs, name trees, delegation
//!
//! A pure (no I/O, no locks) implementation of finagle / linkerd 1.x naming.
//!
//! * [`path`] — [`Path`]: `/a/b` with `\xNN` escapes for bytes outside
//!   `[A-Za-z0-9_:.#$%-]`; cheap clones and O(1) `drop`/`take` (one shared
//!   buffer plus a segment window). [`Path::single_segment`] builds
//!   `/svc/<Host>`-style names from raw header values without parsing.
//! * [`name_tree`] — [`NameTree`]: `|` (Alt, fail-over), `&` with optional
//!   `W*` weights (Union), `~` Neg, `!` Fail, `$` Empty, parentheses; finagle
//!   `show`, `simplify`, `eval`, plus an allocation-free weighted
//!   [`NameTree::pick`] for the data path.
//! * [`dtab`] — [`Dtab`], [`Dentry`], [`Prefix`] (`*` matches one segment);
//!   finagle syntax `prefix => tree ; …`.
//! * [`delegate`] — [`Delegator`]: binding and linkerd-style traces.
//! * [`inet`] — `/$/io.buoyant.rinet`, and the host and port of bound
//!   `/$/inet` and `/$/io.buoyant.rinet` ids (one reading for both).
//! * [`rewriting`] — linkerd's rewriting namers ([`Rewriter`]):
//!   `io.buoyant.porthostPfx`, `io.buoyant.hostportPfx`,
//!   `io.buoyant.http.domainToPathPfx`, `io.buoyant.http.subdomainOfPfx`.
//! * [`prefix`] — linkerd's `configs[].prefix` patterns (`*`, `{var}`).
//!
//! ## Semantics (finagle `Namer.bind` + linkerd `ConfiguredNamersInterpreter`)
//!
//! 1. A path is looked up in the dtab first — `/#/…` and `/$/…` paths too,
//!    so a dtab can override namers. Every dentry whose prefix matches
//!    rewrites the path to `dst ++ residual`; the rewrites are tried in
//!    *reverse* dtab order (later entries win; a `~` result falls back to
//!    earlier ones). With a per-request dtab the order is
//!    `base ++ local` ([`Delegator::with_local`] avoids building it).
//! 2. Only when the dtab lookup is `~` — no match, or exactly one match whose
//!    destination is literally `~` (a linkerd quirk we keep) — are namers
//!    asked: `/$/inet/HOST/PORT[/rest]`, `/$/inet/PORT`, `/$/fixedinet/…`,
//!    `/$/nil` (`$`), `/$/fail` (`!`) are built in (no DNS: the bound id is
//!    `/$/inet/HOST/PORT`, the residual `/rest`), and so are the linkerd
//!    classes finagle would load by name: `/$/io.buoyant.rinet/PORT/HOST`
//!    (bound, id `/$/io.buoyant.rinet/PORT/HOST`) and the rewriting namers,
//!    whose answer is a new path ([`Name::Path`]) or `~`; any other
//!    `/$/kind` is [`BindError::UnknownNamer`]; `/#/…` paths go to the
//!    caller's [`Namers`]; anything else is `~`.
//! 3. Bound leaves stay; path leaves (the dtab's and the rewriting
//!    namers') are delegated again, up to
//!    [`MAX_DEPTH`] (100) nested lookups ([`BindError::MaxDepth`]) and at
//!    most [`MAX_LOOKUPS`] lookups per request, paths of at most
//!    [`MAX_PATH_BYTES`] and [`MAX_BIND_PATH_BYTES`] of paths in all (not
//!    in finagle; they bound what a hostile `l5d-dtab` header could cost).
//!    A spent budget fails the whole bind, inside a union too.
//! 4. [`Delegator::bind`] (data path) binds alternatives lazily like
//!    finagle — the first non-`~` wins, `!` and `$` stop the fall-through —
//!    and unions eagerly, dropping `~`/`!` branches (a union branch that
//!    errors is dropped if another branch binds). The result is simplified,
//!    has no `Alt`, and [`NameTree::pick`] chooses a [`BoundName`] by weight.
//! 5. [`Delegator::delegate`] follows *every* alternative (linkerd's
//!    delegator) and returns a [`Delegation`]: the linkerd-simplified
//!    [`DelegateTree`] trace, its bound tree, the simplified tree, a text
//!    rendering and linkerd `/delegator.json`-shaped JSON. Errors appear as
//!    `exception` steps instead of failing the whole trace.
//!
//! ## Choices worth knowing
//!
//! * Legacy un-prefixed namer paths (`/io.l5d.fs/foo`): linkerd ≥ 0.6
//!   (linkerd/linkerd#395) answers only `/#/<prefix>`; the old form silently
//!   becomes `~`. That is the default here; the opt-in
//!   [`Delegator::with_legacy_unprefixed_namers`] offers `/#` ++ path to the
//!   namers when the dtab has no entry.
//! * `show` escapes only the offending bytes (`/a\x2fb`); finagle escapes the
//!   whole segment (`/\x61\x2f\x62`). Both parse to the same path.
//! * Union weights print as finagle's `%.2f` (`0.30*/a`) when that
//!   round-trips exactly, otherwise with full precision (`0.333*/a`), so
//!   `parse(show(t)) == t` for every tree with finite non-negative weights
//!   and no empty or single-child Alt/Union (those print as `~` / the child,
//!   as in finagle). Weight `1.0` is omitted.
//! * Parsing follows finagle's hand-written parser: whitespace between
//!   tokens only (not inside a path or inside `=>`), a trailing `;` is fine,
//!   `;;` is an error. Parenthesis nesting is capped at
//!   [`path::MAX_NESTING`]. Errors carry the byte offset.
//! * A trace `exception` step becomes `!` in [`DelegateTree::to_name_tree`]
//!   (linkerd rethrows).
//! * The text trace and `BoundName`'s `Display` show a bound name as
//!   `id ++ residual`, a path that delegates back to the same bound name.
//! * JSON `bound` is `{"id":…,"path":residual}` as in linkerd, without
//!   `addr` (addresses are resolved outside this crate).

pub mod delegate;
pub mod dtab;
pub mod inet;
pub mod name_tree;
pub mod path;
pub mod prefix;
pub mod rewriting;

pub use delegate::{
    global_lookup, BindError, BoundName, DelegateNode, DelegateTree, Delegation, Delegator, EmptyNamers, Name, Namers,
    WeightedDelegate, MAX_BIND_PATH_BYTES, MAX_DEPTH, MAX_LOOKUPS, MAX_PATH_BYTES, MAX_TRACE_WEIGHT,
};
pub use dtab::{Dentry, Dtab, Prefix, PrefixElem};
pub use name_tree::{NameTree, Pick, Status, Weighted};
pub use path::{Found, ParseError, ParseErrorKind, Path, PathError};
pub use rewriting::{RewriteError, Rewriter};
