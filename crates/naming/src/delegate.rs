//! Delegation: binding a path through a dtab and namers (finagle
//! `Namer.bind`, linkerd `ConfiguredNamersInterpreter`), with a linkerd-style
//! `DelegateTree` trace for explaining routes.

use std::cell::Cell;
use std::fmt::{self, Write as _};

use super::dtab::{Dentry, Dtab};
use super::inet;
use super::name_tree::{NameTree, Weighted};
use super::path::Path;
use super::rewriting::{RewriteError, Rewriter};

/// Maximum number of nested path lookups (finagle `namerMaxDepth`, linkerd
/// `MaxDepth`): a dtab loop such as `/a=>/a/b` ends in [`BindError::MaxDepth`].
pub const MAX_DEPTH: usize = 100;

/// Maximum number of path lookups in one bind or delegation. Finagle has no
/// such limit, but alternates and unions make binding exponential in the
/// dtab size (`/a=>/b|/b;/b=>/c|/c;…`), and dtabs arrive in `l5d-dtab`
/// request headers, so the work per request is capped.
pub const MAX_LOOKUPS: usize = 1000;

/// Longest path one binding step may look up, in bytes of its segments. A
/// dtab can lengthen the path at every step (`/svc=>/svc/x/x/…`): each step
/// copies it, and the errors name it. Real names are far shorter; an
/// `httpUriInDst` name holds a request's path, at most 4 KiB.
pub const MAX_PATH_BYTES: usize = 8 << 10;

/// Most bytes of paths one bind or delegation may look up, all steps
/// together: with [`MAX_LOOKUPS`] steps of [`MAX_PATH_BYTES`] each, a
/// lengthening dtab in a union would still copy 8 MB per request.
pub const MAX_BIND_PATH_BYTES: usize = 256 << 10;

/// Maximum weight of a delegation's trace: its nodes, each weighted by the
/// size of the rule it records (every node carries the dentry that produced
/// it, as in linkerd's trace). [`MAX_LOOKUPS`] alone does not bound it:
/// `/=>/&/&…` with k branches sends each branch back to the same lookup, so
/// 1000 lookups make 1000·k nodes holding the k-branch rule each, gigabytes
/// for a 600-byte `dtab` given to the admin delegator. Ordinary traces weigh
/// tens to hundreds.
pub const MAX_TRACE_WEIGHT: usize = 100_000;

/// A name bound by a namer: `id` names the concrete destination (e.g.
/// `/#/io.l5d.fs/serviceB` or `/$/inet/127.1/8080`), `residual` is what was
/// left of the path after the namer consumed its part.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BoundName {
    /// The concrete name (finagle `Name.Bound.id`).
    pub id: Path,
    /// The unconsumed rest of the path (finagle `Name.Bound.path`).
    pub residual: Path,
}

impl BoundName {
    /// A bound name.
    pub fn new(id: Path, residual: Path) -> Self {
        BoundName { id, residual }
    }
}

/// Shown as `id ++ residual`: a path that delegates back to the same bound
/// name, which is what finagle expects of bound ids.
impl fmt::Display for BoundName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.id)?;
        if !self.residual.is_empty() {
            write!(f, "{}", self.residual)?;
        }
        Ok(())
    }
}

/// What a namer's lookup gives (finagle `Name`): a bound name, or a path to
/// delegate again (linkerd's rewriting namers, `/$/io.buoyant.porthostPfx/…`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Name {
    /// Bound: a destination (finagle `Name.Bound`).
    Bound(BoundName),
    /// Rewritten by the namer `namer` (its `/$` kind) into `path`, which is
    /// looked up again (finagle `Name.Path`).
    Path {
        /// The namer that rewrote it, e.g. `io.buoyant.porthostPfx`.
        namer: &'static str,
        /// The new path.
        path: Path,
    },
}

/// Configured namers (`io.l5d.fs`, …), implemented by the caller.
///
/// `bind` receives the whole path, e.g. `/#/io.l5d.fs/serviceB/rest`, and
/// returns `None` when no namer owns it (treated as `~`), or the namer's
/// answer — `Some(NameTree::Neg)` when the namer owns the prefix but the name
/// does not exist. The namer chooses `id` and `residual`; linkerd's fs namer
/// gives `id = /#/io.l5d.fs/serviceB`, `residual = /rest`. Namers must not
/// block: they answer from state prepared off the request path.
pub trait Namers {
    /// Binds `path`, or `None` if no namer owns it.
    fn bind(&self, path: &Path) -> Option<NameTree<BoundName>>;
}

impl<N: Namers + ?Sized> Namers for &N {
    fn bind(&self, path: &Path) -> Option<NameTree<BoundName>> {
        (**self).bind(path)
    }
}

/// No configured namers: only the built-in `/$/` names bind.
#[derive(Clone, Copy, Debug, Default)]
pub struct EmptyNamers;

impl Namers for EmptyNamers {
    fn bind(&self, _path: &Path) -> Option<NameTree<BoundName>> {
        None
    }
}

/// Why binding failed as a whole (finagle: a failed `Activity`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BindError {
    /// Delegation nested deeper than [`MAX_DEPTH`]: the dtab loops.
    #[error("Max recursion level {max} reached while delegating {path}")]
    MaxDepth {
        /// The limit.
        max: usize,
        /// The path that would have exceeded it.
        path: Path,
    },
    /// More than [`MAX_LOOKUPS`] lookups.
    #[error("more than {max} lookups while delegating {path}")]
    TooManyLookups {
        /// The limit.
        max: usize,
        /// The path being looked up when the budget ran out.
        path: Path,
    },
    /// A path longer than [`MAX_PATH_BYTES`] (not shown: it is long).
    #[error("a path of {bytes} bytes while delegating, more than the {max} allowed")]
    PathTooLong {
        /// Its length, in bytes of segments.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// More than [`MAX_BIND_PATH_BYTES`] of paths looked up in one bind.
    #[error("{bytes} bytes of paths looked up while delegating, more than the {max} allowed")]
    TooMuchPath {
        /// The bytes of segments of every path looked up so far.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// `/$/<kind>/…` for a kind other than `inet`, `fixedinet`, `nil`, `fail`,
    /// `io.buoyant.rinet` and the [`Rewriter`]s (finagle would try to load a
    /// class named `kind`).
    #[error("Unknown namer: {kind} for path: {path}")]
    UnknownNamer {
        /// The segment after `/$`.
        kind: String,
        /// The whole path.
        path: Path,
    },
    /// `/$/inet/…` without a numeric port.
    #[error("invalid inet path {path}: expected /$/inet/HOST/PORT or /$/inet/PORT")]
    InvalidInet {
        /// The whole path.
        path: Path,
    },
    /// A rewriting namer failed (linkerd: the namer threw).
    #[error(transparent)]
    Rewrite(#[from] RewriteError),
}

fn is_port(s: &[u8]) -> bool {
    !s.is_empty()
        && s.len() <= 5
        && s.iter().all(u8::is_ascii_digit)
        && std::str::from_utf8(s).is_ok_and(|s| s.parse::<u16>().is_ok())
}

/// Finagle's `Namer.global`, minus class loading: `/$/inet/HOST/PORT[/…]`,
/// `/$/inet/PORT[/…]` (no host: localhost), the same for `fixedinet`,
/// `/$/nil[/…]` (Empty) and `/$/fail[/…]` (Fail); and the linkerd namers
/// finagle would load by class name: `/$/io.buoyant.rinet/PORT/HOST[/…]`
/// (see [`inet`]) and the rewriting namers ([`Rewriter`]), whose answer is
/// a [`Name::Path`] or `~`. The inet ids are the `/$/inet/HOST/PORT` and
/// `/$/io.buoyant.rinet/PORT/HOST` parts; nothing is resolved here.
pub fn global_lookup(path: &Path) -> Result<NameTree<Name>, BindError> {
    let kind = match (path.segment(0), path.segment(1)) {
        (Some(b"$"), Some(kind)) => kind,
        _ => return Ok(NameTree::Neg),
    };
    let bound = |id: Path, residual: Path| NameTree::Leaf(Name::Bound(BoundName::new(id, residual)));
    match kind {
        b"inet" | b"fixedinet" => {
            let n = if path.segment(2).is_some() && path.segment(3).is_some_and(is_port) {
                4
            } else if path.segment(2).is_some_and(is_port) {
                3
            } else {
                return Err(BindError::InvalidInet { path: path.clone() });
            };
            Ok(bound(path.take(n), path.drop(n)))
        }
        b"nil" => Ok(NameTree::Empty),
        b"fail" => Ok(NameTree::Fail),
        k if k == inet::RINET.as_bytes() => {
            Ok(inet::rinet_bind(&path.drop(2)).map_or(NameTree::Neg, |(id, residual)| bound(id, residual)))
        }
        other => match Rewriter::from_kind(other) {
            Some(r) => Ok(match r.rewrite(&path.drop(2))? {
                Some(p) => NameTree::Leaf(Name::Path { namer: r.kind(), path: p }),
                None => NameTree::Neg,
            }),
            None => {
                Err(BindError::UnknownNamer { kind: String::from_utf8_lossy(other).into_owned(), path: path.clone() })
            }
        },
    }
}

/// Rewrites `path` by every matching dentry of `matches` (given in the order
/// they are to be tried) into `dst ++ residual`: `~` for no match, the one
/// tree for one match, else an `Alt`.
fn lookup_matches<'d>(matches: impl Iterator<Item = &'d Dentry>, path: &Path) -> NameTree<Path> {
    let mut trees: Vec<NameTree<Path>> = matches
        .map(|d| {
            let suffix = path.drop(d.prefix.len());
            d.dst.map(&mut |p: &Path| p.concat(&suffix))
        })
        .collect();
    match trees.len() {
        0 => NameTree::Neg,
        1 => trees.pop().unwrap_or(NameTree::Neg),
        _ => NameTree::Alt(trees),
    }
}

impl Dtab {
    /// Finagle `Dtab.lookup`: every dentry whose prefix matches rewrites the
    /// path to `dst ++ residual`; the results form an `Alt` in *reverse* dtab
    /// order (later entries win, earlier ones are fall-backs). No match: `~`.
    pub fn lookup(&self, path: &Path) -> NameTree<Path> {
        lookup_matches(self.dentries().iter().rev().filter(|d| d.prefix.matches(path)), path)
    }
}

/// Binds paths through a base dtab, an optional per-request (local) dtab and
/// namers. Cheap to construct; holds only references.
pub struct Delegator<'a, N: ?Sized = EmptyNamers> {
    base: &'a Dtab,
    local: Option<&'a Dtab>,
    namers: &'a N,
    legacy_unprefixed: bool,
}

/// What one bind or delegation has spent: steps ([`MAX_LOOKUPS`]), bytes
/// of the paths they looked up ([`MAX_BIND_PATH_BYTES`]), and (delegation
/// only) the trace's weight ([`MAX_TRACE_WEIGHT`]).
#[derive(Default)]
struct Budget {
    /// Steps taken: lookups, and steps refused for depth.
    lookups: Cell<usize>,
    path_bytes: Cell<usize>,
    trace_weight: Cell<usize>,
    /// Binding steps begun, refused or not (what the tests count).
    #[cfg(test)]
    steps: Cell<usize>,
}

impl Budget {
    fn take(&self, path: &Path) -> Result<(), BindError> {
        let n = self.lookups.get() + 1;
        self.lookups.set(n);
        if n > MAX_LOOKUPS {
            return Err(BindError::TooManyLookups { max: MAX_LOOKUPS, path: path.clone() });
        }
        // Counted before the length check: a path too long was copied too.
        let bytes = path.byte_len();
        let total = self.path_bytes.get() + bytes;
        self.path_bytes.set(total);
        if total > MAX_BIND_PATH_BYTES {
            return Err(BindError::TooMuchPath { bytes: total, max: MAX_BIND_PATH_BYTES });
        }
        if bytes > MAX_PATH_BYTES {
            return Err(BindError::PathTooLong { bytes, max: MAX_PATH_BYTES });
        }
        Ok(())
    }

    /// Whether `e` says this budget is spent: every step left would fail
    /// too, so the whole bind fails.
    fn spent(e: &BindError) -> bool {
        matches!(e, BindError::TooManyLookups { .. } | BindError::TooMuchPath { .. })
    }

    /// Takes the weight of converting `tree` into trace nodes that each
    /// record `dentry`; false once the trace would outweigh
    /// [`MAX_TRACE_WEIGHT`] (nothing is taken then).
    fn take_trace<T>(&self, tree: &NameTree<T>, dentry: Option<&Dentry>) -> bool {
        let rule = dentry.map_or(0, |d| tree_size(&d.dst));
        let weight = tree_size(tree).saturating_mul(1 + rule);
        let total = self.trace_weight.get().saturating_add(weight);
        if total > MAX_TRACE_WEIGHT {
            return false;
        }
        self.trace_weight.set(total);
        true
    }
}

/// The number of nodes of a name tree.
fn tree_size<T>(tree: &NameTree<T>) -> usize {
    match tree {
        NameTree::Leaf(_) | NameTree::Neg | NameTree::Fail | NameTree::Empty => 1,
        NameTree::Alt(ts) => 1 + ts.iter().map(tree_size).sum::<usize>(),
        NameTree::Union(ws) => 1 + ws.iter().map(|w| tree_size(&w.tree)).sum::<usize>(),
    }
}

/// The exception node that stands for a part of the trace left out.
fn trace_too_large(path: &Path, dentry: Option<&Dentry>) -> DelegateTree {
    let message = format!("delegation trace too large (weight over {MAX_TRACE_WEIGHT}); not followed further");
    DelegateTree::new(path.clone(), dentry, DelegateNode::Exception(message))
}

impl<'a, N: Namers + ?Sized> Delegator<'a, N> {
    /// Delegates through `dtab`, then `namers`.
    pub fn new(dtab: &'a Dtab, namers: &'a N) -> Self {
        Delegator { base: dtab, local: None, namers, legacy_unprefixed: false }
    }

    /// Adds a per-request dtab (`l5d-dtab`), consulted as if appended to the
    /// base dtab (`base ++ local`), without building the concatenation.
    pub fn with_local(mut self, local: &'a Dtab) -> Self {
        self.local = Some(local);
        self
    }

    /// Pre-0.6 linkerd compatibility (off by default, as in linkerd 1.x):
    /// when the dtab has no entry for a path that starts with neither `/#`
    /// nor `/$`, offer `/#` ++ path to the namers, so `/io.l5d.fs/foo` binds
    /// like `/#/io.l5d.fs/foo` (the bound id keeps the `/#` form).
    pub fn with_legacy_unprefixed_namers(mut self, on: bool) -> Self {
        self.legacy_unprefixed = on;
        self
    }

    /// Matching dentries in the order they are tried: local entries last to
    /// first, then base entries last to first.
    fn matching<'s>(&'s self, path: &'s Path) -> impl Iterator<Item = &'a Dentry> + 's {
        let local: &'a [Dentry] = self.local.map_or(&[], |d| d.dentries());
        local.iter().rev().chain(self.base.dentries().iter().rev()).filter(move |d| d.prefix.matches(path))
    }

    /// `(base ++ local).lookup(path)`.
    pub fn lookup(&self, path: &Path) -> NameTree<Path> {
        lookup_matches(self.matching(path), path)
    }

    /// Asks the built-in `/$/` namer or the configured namers.
    fn lookup_namers(&self, path: &Path) -> Result<NameTree<Name>, BindError> {
        let configured = |p: &Path| {
            self.namers.bind(p).map_or(NameTree::Neg, |t| t.map(&mut |b: &BoundName| Name::Bound(b.clone())))
        };
        match path.segment(0) {
            Some(b"$") => global_lookup(path),
            Some(b"#") => Ok(configured(path)),
            Some(_) if self.legacy_unprefixed => {
                let hashed = Path::single_segment("#").unwrap_or_default().concat(path);
                Ok(configured(&hashed))
            }
            _ => Ok(NameTree::Neg),
        }
    }

    /// The single matching dentry whose destination is literally `~`, or no
    /// match at all, means the lookup is `~`, and then (as in linkerd) the
    /// namers are asked. Returns the matches otherwise.
    fn dtab_matches(&self, path: &Path) -> Option<Vec<&'a Dentry>> {
        let mut it = self.matching(path);
        let first = it.next()?;
        match it.next() {
            None if first.dst == NameTree::Neg => None,
            None => Some(vec![first]),
            Some(second) => {
                let mut v = vec![first, second];
                v.extend(it);
                Some(v)
            }
        }
    }

    /// Binds `path` for the data path (finagle `Namer.bind` over
    /// `ConfiguredNamersInterpreter.lookup`). Alternates are bound lazily:
    /// the first that is not `~` wins (`!` and `$` stop the fall-through);
    /// unions bind every branch and drop `~`/`!` ones. The result is
    /// simplified and contains no `Alt`; use [`NameTree::pick`] on it.
    ///
    /// Errors (loops, unknown `/$/` namers) fail the whole bind, except inside
    /// a union where a branch that binds wins over branches that error.
    pub fn bind(&self, path: &Path) -> Result<NameTree<BoundName>, BindError> {
        self.bind_path(path, 0, &Budget::default())
    }

    fn bind_path(&self, path: &Path, depth: usize, budget: &Budget) -> Result<NameTree<BoundName>, BindError> {
        #[cfg(test)]
        budget.steps.set(budget.steps.get() + 1);
        // A step refused for depth takes from the budget too: unions absorb
        // that error and try their next branch, so without it a wide union
        // at the depth limit tried every branch at every level.
        budget.take(path)?;
        if depth > MAX_DEPTH {
            return Err(BindError::MaxDepth { max: MAX_DEPTH, path: path.clone() });
        }
        match self.dtab_matches(path) {
            None => {
                let t = self.lookup_namers(path)?;
                // A rewritten name is looked up again, one level deeper
                // (finagle: `lookup(path).flatMap(bind(lookup, depth + 1))`).
                bind_tree(&t, &|n: &Name| match n {
                    Name::Bound(b) => Ok(NameTree::Leaf(b.clone())),
                    Name::Path { path, .. } => self.bind_path(path, depth + 1, budget),
                })
            }
            Some(matches) => {
                for d in matches {
                    let suffix = path.drop(d.prefix.len());
                    let leaf = |p: &Path| self.bind_path(&p.concat(&suffix), depth + 1, budget);
                    match bind_tree(&d.dst, &leaf)? {
                        NameTree::Neg => continue,
                        other => return Ok(other),
                    }
                }
                Ok(NameTree::Neg)
            }
        }
    }

    /// Delegates `path`, recording every step (linkerd's delegator). Unlike
    /// [`Self::bind`], every alternative is followed, so the trace shows the
    /// fall-backs too. Errors become `exception` nodes at the point they
    /// occur (linkerd fails the whole delegation for a loop).
    pub fn delegate(&self, path: &Path) -> Delegation {
        let trace = self.delegate_leaf(path.clone(), None, 0, &Budget::default()).simplified();
        let tree = trace.to_name_tree();
        let simplified = tree.simplify();
        let bound = self.bind(path);
        Delegation { path: path.clone(), trace, tree, simplified, bound }
    }

    /// linkerd `delegateBind` of `Leaf(_, dentry, Name.Path(path))`.
    fn delegate_leaf(&self, path: Path, dentry: Option<&Dentry>, depth: usize, budget: &Budget) -> DelegateTree {
        let err = if depth > MAX_DEPTH {
            Some(BindError::MaxDepth { max: MAX_DEPTH, path: path.clone() })
        } else {
            budget.take(&path).err()
        };
        if let Some(e) = err {
            return DelegateTree::new(path, dentry, DelegateNode::Exception(e.to_string()));
        }
        let inner = self.delegate_lookup(&path, dentry, depth + 1, budget);
        DelegateTree::new(path, dentry, DelegateNode::Delegate(Box::new(inner)))
    }

    /// linkerd `delegateLookup` followed by `delegateBind` at `depth`.
    fn delegate_lookup(&self, path: &Path, dentry: Option<&Dentry>, depth: usize, budget: &Budget) -> DelegateTree {
        let via_dst = |d: &'a Dentry| {
            if !budget.take_trace(&d.dst, Some(d)) {
                return trace_too_large(path, Some(d));
            }
            let suffix = path.drop(d.prefix.len());
            let leaf = |p: &Path| self.delegate_leaf(p.concat(&suffix), Some(d), depth, budget);
            convert(path, Some(d), &d.dst, &leaf)
        };
        match self.dtab_matches(path) {
            None => {
                // A single `prefix=>~` match keeps its dentry in the trace.
                let d = self.matching(path).next().or(dentry);
                match self.lookup_namers(path) {
                    Ok(t) if !budget.take_trace(&t, d) => trace_too_large(path, d),
                    // A rewritten path keeps the dentry that led to the
                    // namer, as in linkerd's trace.
                    Ok(t) => convert(path, d, &t, &|n: &Name| match n {
                        Name::Bound(b) => DelegateTree::new(path.clone(), d, DelegateNode::Leaf(b.clone())),
                        Name::Path { namer, path: to } => {
                            let next = self.delegate_leaf(to.clone(), d, depth, budget);
                            DelegateTree::new(
                                path.clone(),
                                d,
                                DelegateNode::Rewrite { namer: (*namer).to_string(), tree: Box::new(next) },
                            )
                        }
                    }),
                    Err(e) => DelegateTree::new(path.clone(), dentry, DelegateNode::Exception(e.to_string())),
                }
            }
            Some(matches) if matches.len() == 1 => via_dst(matches[0]),
            Some(matches) => {
                DelegateTree::new(path.clone(), dentry, DelegateNode::Alt(matches.into_iter().map(via_dst).collect()))
            }
        }
    }
}

/// finagle `Namer.bind` over one tree whose leaves are bound by `leaf`.
fn bind_tree<T>(
    tree: &NameTree<T>,
    leaf: &dyn Fn(&T) -> Result<NameTree<BoundName>, BindError>,
) -> Result<NameTree<BoundName>, BindError> {
    match tree {
        NameTree::Leaf(t) => leaf(t),
        NameTree::Neg => Ok(NameTree::Neg),
        NameTree::Fail => Ok(NameTree::Fail),
        NameTree::Empty => Ok(NameTree::Empty),
        NameTree::Alt(ts) => {
            for t in ts {
                match bind_tree(t, leaf)? {
                    NameTree::Neg => continue,
                    other => return Ok(other),
                }
            }
            Ok(NameTree::Neg)
        }
        NameTree::Union(ws) if ws.len() <= 1 => match ws.first() {
            Some(w) => bind_tree(&w.tree, leaf),
            None => Ok(NameTree::Neg),
        },
        NameTree::Union(ws) => {
            let mut oks = Vec::with_capacity(ws.len());
            let mut first_err = None;
            for w in ws {
                match bind_tree(&w.tree, leaf) {
                    Ok(NameTree::Neg | NameTree::Fail) => {}
                    Ok(t) => oks.push(Weighted::new(w.weight, t)),
                    // The budget is the whole bind's: once spent, every
                    // branch left would fail its first lookup too, and
                    // trying each one at every union still open cost
                    // 1000·k steps (150 ms for a 12 KiB `l5d-dtab` of
                    // `/=>/&/&…`). The bind fails at once.
                    Err(e) if Budget::spent(&e) => return Err(e),
                    Err(e) => {
                        first_err.get_or_insert(e);
                    }
                }
            }
            match (oks.len(), first_err) {
                (0, Some(e)) => Err(e),
                (0, None) => Ok(NameTree::Neg),
                (1, _) => Ok(oks.pop().map_or(NameTree::Neg, |w| w.tree)),
                _ => Ok(NameTree::Union(oks)),
            }
        }
    }
}

/// linkerd `DelegateTree.fromNameTree` followed by `delegateBind` of the
/// structure (`leaf` binds the leaves).
fn convert<T>(path: &Path, d: Option<&Dentry>, tree: &NameTree<T>, leaf: &dyn Fn(&T) -> DelegateTree) -> DelegateTree {
    let node = match tree {
        NameTree::Leaf(t) => return leaf(t),
        NameTree::Neg => DelegateNode::Neg,
        NameTree::Fail => DelegateNode::Fail,
        NameTree::Empty => DelegateNode::Empty,
        NameTree::Alt(ts) => match ts.as_slice() {
            [] => DelegateNode::Neg,
            [t] => DelegateNode::Delegate(Box::new(convert(path, d, t, leaf))),
            ts => DelegateNode::Alt(ts.iter().map(|t| convert(path, d, t, leaf)).collect()),
        },
        NameTree::Union(ws) => match ws.as_slice() {
            [] => DelegateNode::Neg,
            [w] => DelegateNode::Delegate(Box::new(convert(path, d, &w.tree, leaf))),
            ws => DelegateNode::Union(
                ws.iter()
                    .map(|w| WeightedDelegate { weight: w.weight, tree: convert(path, d, &w.tree, leaf) })
                    .collect(),
            ),
        },
    };
    DelegateTree::new(path.clone(), d, node)
}

/// One step of a delegation (linkerd `DelegateTree`): `path` is the name at
/// this step and `dentry` the rule that produced it (`None` at the root).
#[derive(Clone, Debug, PartialEq)]
pub struct DelegateTree {
    /// The path at this step.
    pub path: Path,
    /// The dentry that rewrote the parent's path into `path`.
    pub dentry: Option<Dentry>,
    /// What happened here.
    pub node: DelegateNode,
}

/// The kinds of delegation step.
#[derive(Clone, Debug, PartialEq)]
pub enum DelegateNode {
    /// Delegation stopped with an error (loop, unknown namer, budget).
    Exception(String),
    /// `$`.
    Empty,
    /// `!`.
    Fail,
    /// `~`: no dentry and no namer.
    Neg,
    /// The path was rewritten into the child.
    Delegate(Box<DelegateTree>),
    /// A namer bound the path.
    Leaf(BoundName),
    /// A rewriting namer (`namer`, e.g. `io.buoyant.porthostPfx`) turned the
    /// path into `tree`'s path, which was delegated again. linkerd's trace
    /// has no step for this (it shows the rewritten path at once); here it
    /// is its own step, written to JSON as a `delegate`.
    Rewrite { namer: String, tree: Box<DelegateTree> },
    /// Alternatives, tried first to last.
    Alt(Vec<DelegateTree>),
    /// Weighted union.
    Union(Vec<WeightedDelegate>),
    /// An interpreter transformer rewrote the bound name (linkerd
    /// `DelegateTree.Transformation`): `name` is the transformer, `bound`
    /// the name before it, `tree` what it became (a leaf whose path is the
    /// new id, or the next transformation).
    Transformation { name: String, bound: BoundName, tree: Box<DelegateTree> },
}

/// A weighted union branch of a trace.
#[derive(Clone, Debug, PartialEq)]
pub struct WeightedDelegate {
    /// The branch weight.
    pub weight: f64,
    /// The branch.
    pub tree: DelegateTree,
}

impl DelegateTree {
    fn new(path: Path, dentry: Option<&Dentry>, node: DelegateNode) -> Self {
        DelegateTree { path, dentry: dentry.cloned(), node }
    }

    /// linkerd `DelegateTree.simplified`: drops `delegate` steps that do not
    /// change the path, collapses single-child alt/union, flattens nested
    /// alts of the same path.
    pub fn simplified(self) -> DelegateTree {
        let DelegateTree { path, dentry, node } = self;
        let node = match node {
            DelegateNode::Delegate(inner) => {
                let s = inner.simplified();
                if s.path == path {
                    return s;
                }
                DelegateNode::Delegate(Box::new(s))
            }
            // Never collapsed: the rewrite is a step of its own.
            DelegateNode::Rewrite { namer, tree } => DelegateNode::Rewrite { namer, tree: Box::new(tree.simplified()) },
            DelegateNode::Alt(mut ts) => match ts.len() {
                0 => DelegateNode::Neg,
                1 => {
                    let only = ts.pop().map(Box::new);
                    return match only {
                        Some(t) => DelegateTree { path, dentry, node: DelegateNode::Delegate(t) }.simplified(),
                        None => DelegateTree { path, dentry, node: DelegateNode::Neg },
                    };
                }
                _ => {
                    let mut out = Vec::with_capacity(ts.len());
                    for t in ts {
                        let s = t.simplified();
                        match s.node {
                            DelegateNode::Alt(inner) if s.path == path => out.extend(inner),
                            node => out.push(DelegateTree { node, ..s }),
                        }
                    }
                    DelegateNode::Alt(out)
                }
            },
            DelegateNode::Union(mut ws) => match ws.len() {
                0 => DelegateNode::Neg,
                1 => {
                    let only = ws.pop().map(|w| Box::new(w.tree));
                    return match only {
                        Some(t) => DelegateTree { path, dentry, node: DelegateNode::Delegate(t) }.simplified(),
                        None => DelegateTree { path, dentry, node: DelegateNode::Neg },
                    };
                }
                _ => DelegateNode::Union(
                    ws.into_iter().map(|w| WeightedDelegate { weight: w.weight, tree: w.tree.simplified() }).collect(),
                ),
            },
            other => other,
        };
        DelegateTree { path, dentry, node }
    }

    /// The bound name tree (linkerd `toNameTree`; an `exception` step
    /// becomes `!` where linkerd would rethrow).
    pub fn to_name_tree(&self) -> NameTree<BoundName> {
        match &self.node {
            DelegateNode::Exception(_) | DelegateNode::Fail => NameTree::Fail,
            DelegateNode::Empty => NameTree::Empty,
            DelegateNode::Neg => NameTree::Neg,
            DelegateNode::Delegate(t) | DelegateNode::Rewrite { tree: t, .. } => t.to_name_tree(),
            DelegateNode::Leaf(b) => NameTree::Leaf(b.clone()),
            DelegateNode::Transformation { tree, .. } => tree.to_name_tree(),
            DelegateNode::Alt(ts) => NameTree::Alt(ts.iter().map(|t| t.to_name_tree()).collect()),
            DelegateNode::Union(ws) => {
                NameTree::Union(ws.iter().map(|w| Weighted::new(w.weight, w.tree.to_name_tree())).collect())
            }
        }
    }

    /// Appends the indented text rendering (two spaces per level).
    pub fn render_text_into(&self, out: &mut String, level: usize) {
        self.render_line(out, level, None);
    }

    fn render_line(&self, out: &mut String, level: usize, weight: Option<f64>) {
        for _ in 0..level {
            out.push_str("  ");
        }
        if let Some(w) = weight {
            let _ = write!(out, "{w}* ");
        }
        let _ = write!(out, "{}", self.path);
        if let Some(d) = &self.dentry {
            let _ = write!(out, " [{d}]");
        }
        match &self.node {
            DelegateNode::Exception(m) => {
                let _ = write!(out, " -> error: {m}");
            }
            DelegateNode::Empty => out.push_str(" -> $ (empty)"),
            DelegateNode::Fail => out.push_str(" -> ! (fail)"),
            DelegateNode::Neg => out.push_str(" -> ~ (neg)"),
            DelegateNode::Leaf(b) => {
                let _ = write!(out, " -> bound {}", b.id);
                if !b.residual.is_empty() {
                    let _ = write!(out, " residual {}", b.residual);
                }
            }
            DelegateNode::Alt(_) => out.push_str(" -> alt"),
            DelegateNode::Union(_) => out.push_str(" -> union"),
            DelegateNode::Transformation { name, bound, .. } => {
                let _ = write!(out, " -> bound {} -> transformed by {name}", bound.id);
            }
            DelegateNode::Rewrite { namer, .. } => {
                let _ = write!(out, " -> rewritten by {namer}");
            }
            DelegateNode::Delegate(_) => {}
        }
        out.push('\n');
        match &self.node {
            DelegateNode::Delegate(t)
            | DelegateNode::Rewrite { tree: t, .. }
            | DelegateNode::Transformation { tree: t, .. } => t.render_line(out, level + 1, None),
            DelegateNode::Alt(ts) => {
                for t in ts {
                    t.render_line(out, level + 1, None);
                }
            }
            DelegateNode::Union(ws) => {
                for w in ws {
                    w.tree.render_line(out, level + 1, Some(w.weight));
                }
            }
            _ => {}
        }
    }

    /// Appends linkerd's `/delegator.json` form (`DelegateApiHandler`):
    /// `{"type":…,"path":…,"dentry":{"prefix":…,"dst":…},…}` with
    /// `delegate`, `alt`, `union` (`[{"weight":…,"tree":…}]`), `bound`
    /// (`{"id":…,"path":residual}`; no `addr`, addresses are resolved
    /// elsewhere), `transformation` (`name`, `bound` before, `tree` after)
    /// or `message`. `dentry` is omitted at the root.
    pub fn write_json(&self, out: &mut String) {
        let ty = match &self.node {
            DelegateNode::Exception(_) => "exception",
            DelegateNode::Empty => "empty",
            DelegateNode::Fail => "fail",
            DelegateNode::Neg => "neg",
            DelegateNode::Delegate(_) | DelegateNode::Rewrite { .. } => "delegate",
            DelegateNode::Leaf(_) => "leaf",
            DelegateNode::Alt(_) => "alt",
            DelegateNode::Union(_) => "union",
            DelegateNode::Transformation { .. } => "transformation",
        };
        out.push_str("{\"type\":");
        json_str(out, ty);
        out.push_str(",\"path\":");
        let path = match &self.node {
            // linkerd shows these two specially.
            DelegateNode::Neg if self.path.is_empty() => "~".to_string(),
            DelegateNode::Fail if !(self.path.segment(0) == Some(b"$") && self.path.segment(1) == Some(b"fail")) => {
                "!".to_string()
            }
            _ => self.path.show(),
        };
        json_str(out, &path);
        if let Some(d) = &self.dentry {
            out.push_str(",\"dentry\":{\"prefix\":");
            json_str(out, &d.prefix.show());
            out.push_str(",\"dst\":");
            json_str(out, &d.dst.show());
            out.push('}');
        }
        match &self.node {
            DelegateNode::Exception(m) => {
                out.push_str(",\"message\":");
                json_str(out, m);
            }
            DelegateNode::Delegate(t) | DelegateNode::Rewrite { tree: t, .. } => {
                out.push_str(",\"delegate\":");
                t.write_json(out);
            }
            DelegateNode::Leaf(b) => {
                out.push_str(",\"bound\":{\"id\":");
                json_str(out, &b.id.show());
                out.push_str(",\"path\":");
                json_str(out, &b.residual.show());
                out.push('}');
            }
            DelegateNode::Transformation { name, bound, tree } => {
                out.push_str(",\"name\":");
                json_str(out, name);
                out.push_str(",\"bound\":{\"id\":");
                json_str(out, &bound.id.show());
                out.push_str(",\"path\":");
                json_str(out, &bound.residual.show());
                out.push_str("},\"tree\":");
                tree.write_json(out);
            }
            DelegateNode::Alt(ts) => {
                out.push_str(",\"alt\":[");
                for (i, t) in ts.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    t.write_json(out);
                }
                out.push(']');
            }
            DelegateNode::Union(ws) => {
                out.push_str(",\"union\":[");
                for (i, w) in ws.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str("{\"weight\":");
                    json_f64(out, w.weight);
                    out.push_str(",\"tree\":");
                    w.tree.write_json(out);
                    out.push('}');
                }
                out.push(']');
            }
            DelegateNode::Empty | DelegateNode::Fail | DelegateNode::Neg => {}
        }
        out.push('}');
    }

    /// [`Self::write_json`] into a new string.
    pub fn to_json(&self) -> String {
        let mut s = String::new();
        self.write_json(&mut s);
        s
    }
}

/// Writes `s` as a JSON string literal.
pub fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Writes a JSON number (`1.0`, `0.3`); non-finite values become `null`.
fn json_f64(out: &mut String, v: f64) {
    if v.is_finite() {
        let _ = write!(out, "{v:?}");
    } else {
        out.push_str("null");
    }
}

/// The outcome of [`Delegator::delegate`].
#[derive(Clone, Debug, PartialEq)]
pub struct Delegation {
    /// The path that was delegated.
    pub path: Path,
    /// The (linkerd-simplified) trace.
    pub trace: DelegateTree,
    /// The bound tree as the trace gives it, unsimplified.
    pub tree: NameTree<BoundName>,
    /// `tree.simplify()`: every alternative still in it.
    pub simplified: NameTree<BoundName>,
    /// What [`Delegator::bind`] (finagle's `bind`, and the data path) gives:
    /// the first alternative that is not negative; no `Alt` left.
    pub bound: Result<NameTree<BoundName>, BindError>,
}

/// A bound leaf as finagle shows `Name.Bound`: its id, and the residual path
/// beside it rather than appended (`/$/inet/1234 (residual /foobar)`), since
/// requests go to the id and carry the residual.
struct ShownBound<'a>(&'a BoundName);

impl fmt::Display for ShownBound<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.id)?;
        if !self.0.residual.is_empty() {
            write!(f, " (residual {})", self.0.residual)?;
        }
        Ok(())
    }
}

impl Delegation {
    /// One line per step, two spaces of indent per level (the whole tree,
    /// every alternative), then `=> TREE`: what the path binds to, as the
    /// data path binds it, in finagle syntax.
    pub fn render_text(&self) -> String {
        let mut s = String::new();
        self.trace.render_text_into(&mut s, 0);
        let _ = match &self.bound {
            Ok(tree) => writeln!(s, "=> {}", tree.map(&mut |b| ShownBound(b).to_string())),
            Err(e) => writeln!(s, "=> error: {e}"),
        };
        s
    }

    /// The trace as linkerd `/delegator.json` JSON.
    pub fn to_json(&self) -> String {
        self.trace.to_json()
    }

    /// Shows transformers, as linkerd does: `f` gives, for each bound name,
    /// the name its namer gives (a namer's own transformers only change the
    /// id: linkerd wraps the namer) and the interpreter's transformations,
    /// in order, each `(transformer, name after it)`. Each leaf with
    /// transformations becomes a chain of `transformation` steps ending in
    /// the final leaf; `tree`, `simplified` and `bound` get the final names.
    pub fn transformed(self, f: &impl Fn(&BoundName) -> (BoundName, Vec<(String, BoundName)>)) -> Delegation {
        let last = |b: &BoundName| -> BoundName {
            let (namer, steps) = f(b);
            steps.last().map_or(namer, |(_, after)| after.clone())
        };
        Delegation {
            path: self.path,
            trace: self.trace.transformed(f),
            tree: self.tree.map(&mut |b| last(b)),
            simplified: self.simplified.map(&mut |b| last(b)),
            bound: self.bound.map(|t| t.map(&mut |b| last(b))),
        }
    }
}

impl DelegateTree {
    fn transformed(self, f: &impl Fn(&BoundName) -> (BoundName, Vec<(String, BoundName)>)) -> DelegateTree {
        let DelegateTree { path, dentry, node } = self;
        let node = match node {
            DelegateNode::Leaf(b) => {
                let (namer, steps) = f(&b);
                // Built from the last step back: each transformation holds
                // what follows it.
                let mut before: Vec<BoundName> = vec![namer.clone()];
                before.extend(steps.iter().map(|(_, after)| after.clone()));
                let mut tree: Option<DelegateTree> = None;
                for (i, (name, after)) in steps.iter().enumerate().rev() {
                    let inner = tree.take().unwrap_or_else(|| DelegateTree {
                        path: after.id.clone(),
                        dentry: None,
                        node: DelegateNode::Leaf(after.clone()),
                    });
                    let at = if i == 0 { path.clone() } else { before[i].id.clone() };
                    let d = if i == 0 { dentry.clone() } else { None };
                    tree = Some(DelegateTree {
                        path: at,
                        dentry: d,
                        node: DelegateNode::Transformation {
                            name: name.clone(),
                            bound: before[i].clone(),
                            tree: Box::new(inner),
                        },
                    });
                }
                match tree {
                    Some(t) => return t,
                    None => DelegateNode::Leaf(namer),
                }
            }
            DelegateNode::Delegate(t) => DelegateNode::Delegate(Box::new(t.transformed(f))),
            DelegateNode::Rewrite { namer, tree } => {
                DelegateNode::Rewrite { namer, tree: Box::new(tree.transformed(f)) }
            }
            DelegateNode::Alt(ts) => DelegateNode::Alt(ts.into_iter().map(|t| t.transformed(f)).collect()),
            DelegateNode::Union(ws) => DelegateNode::Union(
                ws.into_iter().map(|w| WeightedDelegate { weight: w.weight, tree: w.tree.transformed(f) }).collect(),
            ),
            other => other,
        };
        DelegateTree { path, dentry, node }
    }
}

#[cfg(test)]
mod tests {
    use super::super::name_tree::Pick;
    use super::super::rewriting::RewriteError;
    use super::*;
    use std::collections::HashMap;

    fn p(s: &str) -> Path {
        Path::parse(s).unwrap()
    }
    fn dtab(s: &str) -> Dtab {
        Dtab::parse(s).unwrap()
    }
    fn bound(id: &str, residual: &str) -> NameTree<BoundName> {
        NameTree::Leaf(BoundName::new(p(id), p(residual)))
    }
    fn bind(d: &str, path: &str) -> Result<NameTree<BoundName>, BindError> {
        Delegator::new(&dtab(d), &TestNamers).bind(&p(path))
    }

    /// `/#/io.l5d.fs/NAME[/…]` for NAME in {foo, bar}; other names: `~`.
    struct TestNamers;
    impl Namers for TestNamers {
        fn bind(&self, path: &Path) -> Option<NameTree<BoundName>> {
            if !path.starts_with(&p("/#/io.l5d.fs")) {
                return None;
            }
            match path.segment(2) {
                Some(b"foo" | b"bar") => Some(NameTree::Leaf(BoundName::new(path.take(3), path.drop(3)))),
                _ => Some(NameTree::Neg),
            }
        }
    }

    #[test]
    fn an_inet_name_always_binds_whatever_its_host() {
        // finagle's Namer.global: `/$/inet/HOST/PORT` is a bound leaf
        // whether or not HOST resolves, so the alternative is never taken;
        // a host that does not exist fails inside the binding.
        let d = "/svc=>/$/inet | /$/inet/fallback/1";
        assert_eq!(bind(d, "/svc/missing/80"), Ok(bound("/$/inet/missing/80", "/")));
    }

    #[test]
    fn dtab_lookup_shapes() {
        let d = dtab("/a=>/b;/a/c=>/d|/e;/x=>/y");
        assert_eq!(d.lookup(&p("/z")), NameTree::Neg);
        assert_eq!(d.lookup(&p("/a/q")).show(), "/b/q");
        assert_eq!(d.lookup(&p("/a/c/r")).show(), "(/d/r | /e/r) | /b/c/r");
        assert_eq!(dtab("/a=>~").lookup(&p("/a")), NameTree::Neg);
        assert_eq!(dtab("/=>/r").lookup(&p("/a/b")).show(), "/r/a/b");
    }

    #[test]
    fn later_dentries_win_and_fall_back_on_neg() {
        let d = "/svc=>/$/inet/a/1;/svc=>/$/inet/b/2";
        assert_eq!(bind(d, "/svc/x"), Ok(bound("/$/inet/b/2", "/x")));
        // `/a=>/b; /a=>~` sends /a to /b.
        assert_eq!(bind("/b=>/$/inet/h/80;/a=>/b;/a=>~", "/a"), Ok(bound("/$/inet/h/80", "/")));
        // The later entry leads nowhere (/nowhere has no dentry, no namer).
        assert_eq!(bind("/svc=>/$/inet/a/1;/svc=>/nowhere", "/svc"), Ok(bound("/$/inet/a/1", "/")));
        // A namer's ~ falls back too.
        assert_eq!(bind("/svc=>/#/io.l5d.fs/foo;/svc=>/#/io.l5d.fs/nope", "/svc"), Ok(bound("/#/io.l5d.fs/foo", "/")));
        assert_eq!(bind("/svc=>/a", "/svc"), Ok(NameTree::Neg));
        assert_eq!(bind("", "/svc"), Ok(NameTree::Neg));
    }

    #[test]
    fn wildcards() {
        let d = "/http/1.1/*/*=>/svc;/svc=>/#/io.l5d.fs";
        assert_eq!(bind(d, "/http/1.1/GET/host/foo/rest"), Ok(bound("/#/io.l5d.fs/foo", "/rest")));
        let d = "/svc/*=>/$/inet/any/1;/svc/foo=>/#/io.l5d.fs/foo";
        assert_eq!(bind(d, "/svc/foo"), Ok(bound("/#/io.l5d.fs/foo", "/")));
        assert_eq!(bind(d, "/svc/bar/x"), Ok(bound("/$/inet/any/1", "/x")));
    }

    #[test]
    fn fail_and_empty_stop_fall_through() {
        let d = "/svc=>/$/inet/a/1;/svc=>!";
        assert_eq!(bind(d, "/svc"), Ok(NameTree::Fail));
        let d = "/svc=>/$/inet/a/1;/svc=>$";
        assert_eq!(bind(d, "/svc"), Ok(NameTree::Empty));
        assert_eq!(bind("/svc=>~ | ! | /$/inet/a/1", "/svc"), Ok(NameTree::Fail));
        assert_eq!(bind("/svc=>~ | $ | /$/inet/a/1", "/svc"), Ok(NameTree::Empty));
        assert_eq!(bind("/svc=>~ | /$/inet/a/1 | !", "/svc"), Ok(bound("/$/inet/a/1", "/")));
        // /$/fail and /$/nil.
        assert_eq!(bind("/svc=>/$/fail | /$/inet/a/1", "/svc"), Ok(NameTree::Fail));
        assert_eq!(bind("/svc=>/$/nil | /$/inet/a/1", "/svc"), Ok(NameTree::Empty));
        // The trace agrees after simplification.
        let d = dtab("/svc=>/$/inet/a/1;/svc=>!");
        let del = Delegator::new(&d, &EmptyNamers).delegate(&p("/svc"));
        assert_eq!(del.simplified, NameTree::Fail);
    }

    #[test]
    fn negation() {
        // A single `=>~` match is a plain Neg lookup, so namers still answer
        // (linkerd: `dtab.lookup(path) == Neg` → namers).
        assert_eq!(bind("/#/io.l5d.fs=>~", "/#/io.l5d.fs/foo"), Ok(bound("/#/io.l5d.fs/foo", "/")));
        // Two matches form an Alt, which is not literally Neg: no namers.
        assert_eq!(bind("/#/io.l5d.fs=>~;/#/io.l5d.fs=>~", "/#/io.l5d.fs/foo"), Ok(NameTree::Neg));
        assert_eq!(bind("/svc=>~", "/svc/foo"), Ok(NameTree::Neg));
        assert_eq!(bind("/svc=>~ & ~", "/svc/foo"), Ok(NameTree::Neg));
    }

    #[test]
    fn namer_binding_and_residuals() {
        let d = "/svc=>/#/io.l5d.fs";
        assert_eq!(bind(d, "/svc/foo"), Ok(bound("/#/io.l5d.fs/foo", "/")));
        assert_eq!(bind(d, "/svc/foo/a/b"), Ok(bound("/#/io.l5d.fs/foo", "/a/b")));
        assert_eq!(bind(d, "/svc/nope"), Ok(NameTree::Neg));
        // Direct /#/ paths need no dentry.
        assert_eq!(bind("", "/#/io.l5d.fs/bar"), Ok(bound("/#/io.l5d.fs/bar", "/")));
        // Unowned /#/ prefix.
        assert_eq!(bind("", "/#/io.l5d.k8s/x"), Ok(NameTree::Neg));
        // Host: serviceB → /svc/serviceB with a verbatim segment.
        let host = p("/svc").concat(&Path::single_segment("foo").unwrap());
        let dt = dtab(d);
        assert_eq!(Delegator::new(&dt, &TestNamers).bind(&host), Ok(bound("/#/io.l5d.fs/foo", "/")));
    }

    #[test]
    fn inet_binding() {
        assert_eq!(bind("", "/$/inet/127.1/8080"), Ok(bound("/$/inet/127.1/8080", "/")));
        assert_eq!(bind("", "/$/inet/localhost/8080/x/y"), Ok(bound("/$/inet/localhost/8080", "/x/y")));
        assert_eq!(bind("", "/$/inet/8080"), Ok(bound("/$/inet/8080", "/")));
        assert_eq!(bind("", "/$/inet/8080/x"), Ok(bound("/$/inet/8080", "/x")));
        assert_eq!(bind("", "/$/fixedinet/h/1"), Ok(bound("/$/fixedinet/h/1", "/")));
        assert_eq!(bind("", "/$/inet/host/http"), Err(BindError::InvalidInet { path: p("/$/inet/host/http") }));
        assert_eq!(bind("", "/$/inet/h/70000"), Err(BindError::InvalidInet { path: p("/$/inet/h/70000") }));
        let e = bind("", "/$/com.example.Namer/x").unwrap_err();
        assert_eq!(e.to_string(), "Unknown namer: com.example.Namer for path: /$/com.example.Namer/x");
        assert_eq!(bind("", "/$"), Ok(NameTree::Neg));
        let d = "/svc=>/$/inet/127.1/8080";
        assert_eq!(bind(d, "/svc/a"), Ok(bound("/$/inet/127.1/8080", "/a")));
    }

    /// linkerd's `linkerd/examples/proxy.yaml` dtab.
    const PROXY: &str = "/ph=>/$/io.buoyant.rinet;/svc=>/ph/80;/svc=>/$/io.buoyant.porthostPfx/ph";

    #[test]
    fn rinet_binding() {
        // linkerd's RinetTest: id /$/io.buoyant.rinet/PORT/HOST, residual.
        assert_eq!(
            bind("", "/$/io.buoyant.rinet/12345/localhost/residual"),
            Ok(bound("/$/io.buoyant.rinet/12345/localhost", "/residual"))
        );
        // Always binds, whatever the port or host: the address fails later,
        // so an alternative after it is never reached.
        let d = "/svc=>/$/io.buoyant.rinet/http/no.such.host.invalid | /$/inet/127.0.0.1/9";
        assert_eq!(bind(d, "/svc"), Ok(bound("/$/io.buoyant.rinet/http/no.such.host.invalid", "/")));
        assert_eq!(bind("", "/$/io.buoyant.rinet/80/::1"), Ok(bound("/$/io.buoyant.rinet/80/::1", "/")));
        // Fewer than two segments: negative, so an alternative takes over
        // (no default host, unlike /$/inet/PORT).
        assert_eq!(bind("", "/$/io.buoyant.rinet/80"), Ok(NameTree::Neg));
        assert_eq!(bind("", "/$/io.buoyant.rinet"), Ok(NameTree::Neg));
        let d = "/svc=>/$/io.buoyant.rinet/80 | /$/inet/127.0.0.1/9";
        assert_eq!(bind(d, "/svc"), Ok(bound("/$/inet/127.0.0.1/9", "/")));
    }

    #[test]
    fn proxy_example_dtab() {
        // Host with a port: porthostPfx (the later dentry) wins.
        assert_eq!(bind(PROXY, "/svc/127.0.0.1:8080"), Ok(bound("/$/io.buoyant.rinet/8080/127.0.0.1", "/")));
        assert_eq!(
            bind(PROXY, "/svc/web.example.com:8080/a/b"),
            Ok(bound("/$/io.buoyant.rinet/8080/web.example.com", "/a/b"))
        );
        // Without a port it is negative and /svc=>/ph/80 takes over.
        assert_eq!(bind(PROXY, "/svc/localhost"), Ok(bound("/$/io.buoyant.rinet/80/localhost", "/")));
        // Neither an IPv6 literal nor an upper-case port splits: port 80,
        // with a host that will not resolve.
        assert_eq!(bind(PROXY, "/svc/::1"), Ok(bound("/$/io.buoyant.rinet/80/::1", "/")));
        assert_eq!(bind(PROXY, "/svc/h:HTTP"), Ok(bound("/$/io.buoyant.rinet/80/h:HTTP", "/")));
        // No host in the Host: the rewrite fails the binding (linkerd: the
        // Path constructor throws), no fall-through.
        assert_eq!(
            bind(PROXY, "/svc/:8080"),
            Err(BindError::Rewrite(RewriteError::EmptySegment {
                kind: "io.buoyant.porthostPfx",
                args: p("/ph/:8080")
            }))
        );
        // No name at all: /ph/80 → rinet with one segment → ~.
        assert_eq!(bind(PROXY, "/svc"), Ok(NameTree::Neg));
    }

    #[test]
    fn rewriting_namers_fall_through_in_alternations() {
        // The rewrite matches: the later alternative is not needed.
        let d = "/svc=>/$/io.buoyant.porthostPfx/ph | /$/inet/127.0.0.1/9;/ph=>/$/io.buoyant.rinet";
        assert_eq!(bind(d, "/svc/10.0.0.1:80"), Ok(bound("/$/io.buoyant.rinet/80/10.0.0.1", "/")));
        // It does not: ~, the next alternative binds.
        assert_eq!(bind(d, "/svc/10.0.0.1"), Ok(bound("/$/inet/127.0.0.1/9", "/10.0.0.1")));
        // The first alternative binds: the rewriting namer is not reached.
        let d = "/svc=>/$/inet/127.0.0.1/9 | /$/io.buoyant.porthostPfx/ph;/ph=>/$/io.buoyant.rinet";
        assert_eq!(bind(d, "/svc/10.0.0.1:80"), Ok(bound("/$/inet/127.0.0.1/9", "/10.0.0.1:80")));
        // A rewrite to a path nothing binds is ~ too.
        let d = "/svc=>/$/io.buoyant.porthostPfx/nowhere | /$/inet/127.0.0.1/9";
        assert_eq!(bind(d, "/svc/10.0.0.1:80"), Ok(bound("/$/inet/127.0.0.1/9", "/10.0.0.1:80")));
        // Between dentries as well (later first).
        let d = "/svc=>/$/inet/127.0.0.1/9;/svc=>/$/io.buoyant.http.subdomainOfPfx/a.b/ph;/ph=>/$/io.buoyant.rinet/80";
        assert_eq!(bind(d, "/svc/x.a.b"), Ok(bound("/$/io.buoyant.rinet/80/x", "/")));
        assert_eq!(bind(d, "/svc/x.c.d"), Ok(bound("/$/inet/127.0.0.1/9", "/x.c.d")));
        // In a union, a negative rewrite drops out.
        let d = "/svc=>/$/io.buoyant.porthostPfx/ph & /$/inet/127.0.0.1/9;/ph=>/$/io.buoyant.rinet";
        assert_eq!(bind(d, "/svc/h"), Ok(bound("/$/inet/127.0.0.1/9", "/h")));
    }

    #[test]
    fn rewriting_namers_through_the_dtab() {
        // linkerd's docs/namer.md examples.
        let d = "/ip-hostport=>/$/inet;/svc=>/$/io.buoyant.hostportPfx/ip-hostport";
        assert_eq!(bind(d, "/svc/127.0.0.1:8080/x"), Ok(bound("/$/inet/127.0.0.1/8080", "/x")));
        assert_eq!(bind(d, "/svc/127.0.0.1"), Ok(NameTree::Neg));
        // A named port reaches /$/inet, which wants a number.
        assert_eq!(bind(d, "/svc/127.0.0.1:http"), Err(BindError::InvalidInet { path: p("/$/inet/127.0.0.1/http") }));
        let d = "/s=>/#/io.l5d.fs;/svc=>/$/io.buoyant.http.domainToPathPfx/s";
        assert_eq!(bind(d, "/svc/x.foo/r"), Ok(bound("/#/io.l5d.fs/foo", "/x/r")));
        assert_eq!(bind(d, "/svc/x.nope"), Ok(NameTree::Neg));
        let d = "/consulSvc=>/#/io.l5d.fs;/svc=>/$/io.buoyant.http.subdomainOfPfx/service.consul/consulSvc";
        assert_eq!(bind(d, "/svc/foo.service.consul:8500/r"), Ok(bound("/#/io.l5d.fs/foo", "/r")));
        assert_eq!(bind(d, "/svc/foo.service.other"), Ok(NameTree::Neg));
        // The dtab is asked before the namer.
        let d = "/$/io.buoyant.porthostPfx/ph=>/$/inet/127.0.0.1/1";
        assert_eq!(bind(d, "/$/io.buoyant.porthostPfx/ph/h:2"), Ok(bound("/$/inet/127.0.0.1/1", "/h:2")));
        // A rewrite counts as a nested lookup: a loop through one ends.
        let e = bind("/a=>/$/io.buoyant.http.domainToPathPfx/a", "/a/x").unwrap_err();
        assert!(matches!(e, BindError::MaxDepth { .. }), "{e}");
        // Other io.buoyant classes are unknown namers.
        let e = bind("", "/$/io.buoyant.http.anyMethod/GET/x").unwrap_err();
        assert!(matches!(e, BindError::UnknownNamer { .. }), "{e}");
    }

    #[test]
    fn rewrites_in_the_trace() {
        let d = dtab(PROXY);
        let del = Delegator::new(&d, &EmptyNamers).delegate(&p("/svc/127.0.0.1:8080"));
        assert_eq!(
            del.render_text(),
            "/svc/127.0.0.1:8080 -> alt\n\
             \x20 /$/io.buoyant.porthostPfx/ph/127.0.0.1:8080 [/svc=>/$/io.buoyant.porthostPfx/ph] -> rewritten by io.buoyant.porthostPfx\n\
             \x20   /ph/8080/127.0.0.1 [/svc=>/$/io.buoyant.porthostPfx/ph]\n\
             \x20     /$/io.buoyant.rinet/8080/127.0.0.1 [/ph=>/$/io.buoyant.rinet] -> bound /$/io.buoyant.rinet/8080/127.0.0.1\n\
             \x20 /ph/80/127.0.0.1:8080 [/svc=>/ph/80]\n\
             \x20   /$/io.buoyant.rinet/80/127.0.0.1:8080 [/ph=>/$/io.buoyant.rinet] -> bound /$/io.buoyant.rinet/80/127.0.0.1:8080\n\
             => /$/io.buoyant.rinet/8080/127.0.0.1\n"
        );
        let json = del.to_json();
        assert!(
            json.contains(concat!(
                r#"{"type":"delegate","path":"/$/io.buoyant.porthostPfx/ph/127.0.0.1:8080","dentry":{"prefix":"/svc","dst":"/$/io.buoyant.porthostPfx/ph"},"#,
                r#""delegate":{"type":"delegate","path":"/ph/8080/127.0.0.1","dentry":{"prefix":"/svc","dst":"/$/io.buoyant.porthostPfx/ph"},"#,
                r#""delegate":{"type":"leaf","path":"/$/io.buoyant.rinet/8080/127.0.0.1","dentry":{"prefix":"/ph","dst":"/$/io.buoyant.rinet"},"#,
                r#""bound":{"id":"/$/io.buoyant.rinet/8080/127.0.0.1","path":"/"}}}}"#
            )),
            "{json}"
        );
        // A rewrite that does not match is a ~ step; one that fails, an
        // exception step.
        let text = Delegator::new(&d, &EmptyNamers).delegate(&p("/svc/localhost")).render_text();
        assert!(
            text.contains("  /$/io.buoyant.porthostPfx/ph/localhost [/svc=>/$/io.buoyant.porthostPfx/ph] -> ~ (neg)\n"),
            "{text}"
        );
        assert!(text.ends_with("=> /$/io.buoyant.rinet/80/localhost\n"), "{text}");
        let text = Delegator::new(&d, &EmptyNamers).delegate(&p("/svc/:1")).render_text();
        assert!(
            text.contains("/$/io.buoyant.porthostPfx/ph/:1 [/svc=>/$/io.buoyant.porthostPfx/ph] -> error: io.buoyant.porthostPfx cannot rewrite /ph/:1: the result would have an empty segment\n"),
            "{text}"
        );
        assert!(
            text.ends_with(
                "=> error: io.buoyant.porthostPfx cannot rewrite /ph/:1: the result would have an empty segment\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn dtab_rewrites_hash_and_dollar_paths_first() {
        let d = "/svc=>/#/io.l5d.fs;/#/io.l5d.fs/foo=>/$/inet/override/1";
        assert_eq!(bind(d, "/svc/foo"), Ok(bound("/$/inet/override/1", "/")));
        assert_eq!(bind(d, "/svc/bar"), Ok(bound("/#/io.l5d.fs/bar", "/")));
        let d = "/$/inet/127.1/8080=>/$/inet/10.0.0.1/80";
        assert_eq!(bind(d, "/$/inet/127.1/8080/r"), Ok(bound("/$/inet/10.0.0.1/80", "/r")));
        // Rewriting into a path that is then Neg falls through to the
        // earlier entry, not to the namer (the lookup was not Neg).
        let d = "/#/io.l5d.fs/foo=>/$/inet/a/1;/#/io.l5d.fs/foo=>/nowhere";
        assert_eq!(bind(d, "/#/io.l5d.fs/foo"), Ok(bound("/$/inet/a/1", "/")));
        let d = "/#/io.l5d.fs/foo=>/nowhere";
        assert_eq!(bind(d, "/#/io.l5d.fs/foo"), Ok(NameTree::Neg));
    }

    #[test]
    fn local_dtab_overrides_base() {
        let base = dtab("/svc=>/#/io.l5d.fs");
        let local = dtab("/svc/foo=>/$/inet/canary/1");
        let del = Delegator::new(&base, &TestNamers).with_local(&local);
        assert_eq!(del.bind(&p("/svc/foo")), Ok(bound("/$/inet/canary/1", "/")));
        assert_eq!(del.bind(&p("/svc/bar")), Ok(bound("/#/io.l5d.fs/bar", "/")));
        let cat = base.concat(&local);
        assert_eq!(del.lookup(&p("/svc/foo")), cat.lookup(&p("/svc/foo")));
        assert_eq!(Delegator::new(&cat, &TestNamers).bind(&p("/svc/foo")), del.bind(&p("/svc/foo")));
    }

    #[test]
    fn unions_and_weighted_selection() {
        let d = "/svc=>0.3*/#/io.l5d.fs/foo & 0.7*/#/io.l5d.fs/bar";
        let t = bind(d, "/svc").unwrap();
        assert_eq!(t.show(), "0.30*/#/io.l5d.fs/foo & 0.70*/#/io.l5d.fs/bar");
        let mut counts: HashMap<String, u32> = HashMap::new();
        let mut r = 0x5eed_u64;
        for _ in 0..10_000 {
            r = r.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            match t.pick(r) {
                Pick::Leaf(b) => *counts.entry(b.id.show()).or_default() += 1,
                other => panic!("{other:?}"),
            }
        }
        let foo = counts["/#/io.l5d.fs/foo"];
        assert!((2800..=3200).contains(&foo), "{counts:?}");
        // Neg and failing branches drop out of a union.
        let d = "/svc=>/#/io.l5d.fs/foo & /#/io.l5d.fs/nope & /$/bogus";
        assert_eq!(bind(d, "/svc"), Ok(bound("/#/io.l5d.fs/foo", "/")));
        assert_eq!(bind("/svc=>/a & /b", "/svc"), Ok(NameTree::Neg));
        assert!(bind("/svc=>/$/bogus & /$/bogus2", "/svc").is_err());
    }

    #[test]
    fn recursion_limit() {
        let e = bind("/a=>/a/x", "/a").unwrap_err();
        assert!(matches!(e, BindError::MaxDepth { max: MAX_DEPTH, .. }), "{e}");
        assert!(e.to_string().starts_with("Max recursion level 100 reached"));
        let e = bind("/a=>/b;/b=>/a", "/a").unwrap_err();
        assert!(matches!(e, BindError::MaxDepth { .. }));
        // A loop in a losing alternative still fails the bind (finagle).
        assert!(bind("/svc=>/$/inet/a/1;/svc=>/loop;/loop=>/loop", "/svc").is_err());
        // The trace records the exception instead.
        let d = dtab("/a=>/b;/b=>/a");
        let del = Delegator::new(&d, &EmptyNamers).delegate(&p("/a"));
        assert_eq!(del.simplified, NameTree::Fail);
        assert!(del.to_json().contains("\"type\":\"exception\""));
        assert!(del.render_text().contains("-> error: Max recursion level"));
    }

    #[test]
    fn lookup_budget() {
        // 2^20 paths if followed naively.
        let mut s = String::new();
        for i in 0..20 {
            s.push_str(&format!("/n{i}=>/n{} | /n{};", i + 1, i + 1));
        }
        let e = bind(&s, "/n0").unwrap_err();
        assert!(matches!(e, BindError::TooManyLookups { .. }), "{e}");
        let d = dtab(&s);
        let del = Delegator::new(&d, &EmptyNamers).delegate(&p("/n0"));
        assert!(del.to_json().contains("more than 1000 lookups"));
    }

    #[test]
    fn a_wide_rule_that_loops_cannot_grow_the_trace_without_bound() {
        // Found by a review of fuzz/dtab: `/=>/&/&…` sends each of its k
        // branches back to the same lookup. Every node of the trace records
        // the k-branch rule, so the lookup budget alone let the trace reach
        // 1000·k nodes of k branches each (k = 300, a 600-byte `dtab` query
        // to the admin delegator, would hold gigabytes).
        for k in [120, 3000] {
            let d = dtab(&format!("/=>{}", vec!["/"; k].join("&")));
            let del = Delegator::new(&d, &EmptyNamers).delegate(&p("/a"));
            let json = del.to_json();
            assert!(json.len() < 1 << 20, "k = {k}: {} bytes of trace", json.len());
            assert!(json.contains("delegation trace too large"), "{}", &json[..json.len().min(2000)]);
        }
        // An ordinary delegation is far below the bound.
        let d = dtab("/svc=>/#/io.l5d.fs;/svc/b=>/$/inet/127.0.0.1/1|/#/io.l5d.fs/b");
        let del = Delegator::new(&d, &TestNamers).delegate(&p("/svc/b"));
        assert!(!del.to_json().contains("too large"));
    }

    #[test]
    fn a_spent_lookup_budget_ends_the_bind_inside_a_union_too() {
        // Each of the k branches leads back to the same lookup. Before, a
        // union went on trying its branches after the budget was spent:
        // 1000·k steps refused one by one, 150 ms of a worker for k = 6000
        // (a 12 KiB `l5d-dtab`). Counted in steps asked for, not timed.
        let k = 200;
        let d = dtab(&format!("/=>{}", vec!["/"; k].join("&")));
        let budget = Budget::default();
        let e = Delegator::new(&d, &EmptyNamers).bind_path(&p("/svc/a"), 0, &budget);
        assert!(matches!(e, Err(BindError::TooManyLookups { .. })), "{e:?}");
        assert_eq!(budget.steps.get(), MAX_LOOKUPS + 1, "steps begun");
        // Binding steps refused for depth count too: a union of k branches
        // back to the same path reaches the depth limit first, and each
        // level's union then tried all k branches there.
        let loop_dtab = dtab(&format!("/svc=>/a;/a=>{}", vec!["/a"; k].join("&")));
        let budget = Budget::default();
        let e = Delegator::new(&loop_dtab, &EmptyNamers).bind_path(&p("/svc/x"), 0, &budget);
        assert!(e.is_err(), "{e:?}");
        assert!(budget.steps.get() <= MAX_LOOKUPS + 1, "{} steps", budget.steps.get());
    }

    #[test]
    fn a_dtab_that_lengthens_the_path_stops_at_the_length_bounds() {
        // Each step appends k segments (found by a review of the inputs a
        // client controls: with `dtabHeaders`, a 12 KiB header made every
        // step copy a path growing up to the depth limit, 280 MB live).
        let x = vec!["x"; 600].join("/");
        let d = dtab(&format!("/svc=>/svc/{x}"));
        let e = Delegator::new(&d, &EmptyNamers).bind(&p("/svc/a")).unwrap_err();
        assert!(matches!(e, BindError::PathTooLong { .. }), "{e}");
        assert!(e.to_string().len() < 200, "the error does not show the path: {e}");

        // A path too long ends one branch of a union, not the union: steps
        // go on, each below the length bound, and the bytes of all of them
        // are bounded (here 40 more bytes a step, two branches a step).
        let x = vec!["x"; 40].join("/");
        let d = dtab(&format!("/svc=>/svc/{x} & /svc/{x}"));
        let budget = Budget::default();
        let e = Delegator::new(&d, &EmptyNamers).bind_path(&p("/svc/a"), 0, &budget).unwrap_err();
        assert!(matches!(e, BindError::TooMuchPath { .. }), "{e}");
        assert!(budget.steps.get() < MAX_LOOKUPS, "{} steps", budget.steps.get());

        let del = Delegator::new(&d, &EmptyNamers).delegate(&p("/svc/a"));
        let json = del.to_json();
        assert!(json.len() < 2 << 20, "{} bytes of trace", json.len());
    }

    #[test]
    fn transformations_wrap_leaves_as_linkerd_shows_them() {
        let d = dtab("/svc=>/#/io.l5d.fs/foo | /$/inet/127.0.0.1/1");
        let del = Delegator::new(&d, &TestNamers).delegate(&p("/svc/x"));
        let pre = |s: &str, b: &BoundName| BoundName::new(p(s).concat(&b.id), b.residual.clone());
        // A namer transformer (/%/n) only on fs names; two interpreter ones.
        let del = del.transformed(&|b: &BoundName| {
            let named = if b.id.starts_with(&p("/#")) { pre("/%/n", b) } else { b.clone() };
            let one = pre("/%/one", &named);
            let two = pre("/%/two", &one);
            (named, vec![("t1".to_string(), one), ("t2".to_string(), two)])
        });
        assert_eq!(del.bound, Ok(bound("/%/two/%/one/%/n/#/io.l5d.fs/foo", "/x")));
        let text = del.render_text();
        assert!(
            text.contains(
                "/#/io.l5d.fs/foo/x [/svc=>/#/io.l5d.fs/foo | /$/inet/127.0.0.1/1] -> bound /%/n/#/io.l5d.fs/foo -> transformed by t1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("/%/one/%/n/#/io.l5d.fs/foo -> bound /%/one/%/n/#/io.l5d.fs/foo -> transformed by t2\n"),
            "{text}"
        );
        assert!(
            text.contains("/%/two/%/one/%/n/#/io.l5d.fs/foo -> bound /%/two/%/one/%/n/#/io.l5d.fs/foo residual /x\n"),
            "{text}"
        );
        assert!(text.contains("-> transformed by t2\n      /%/two/%/one/$/inet/127.0.0.1/1 -> bound"), "{text}");
        let json = del.to_json();
        assert!(
            json.contains("{\"type\":\"transformation\",\"path\":\"/#/io.l5d.fs/foo/x\",\"dentry\":{\"prefix\":\"/svc\",\"dst\":\"/#/io.l5d.fs/foo | /$/inet/127.0.0.1/1\"},\"name\":\"t1\",\"bound\":{\"id\":\"/%/n/#/io.l5d.fs/foo\",\"path\":\"/x\"},\"tree\":{\"type\":\"transformation\""),
            "{json}"
        );
        // Without transformations, a leaf stays a leaf (with the namer's id).
        let del = Delegator::new(&d, &TestNamers).delegate(&p("/svc")).transformed(&|b| (pre("/%/n", b), vec![]));
        assert_eq!(del.bound, Ok(bound("/%/n/#/io.l5d.fs/foo", "/")));
        assert!(!del.to_json().contains("transformation"));
    }

    #[test]
    fn legacy_unprefixed_namers() {
        let d = dtab("/svc=>/io.l5d.fs");
        let plain = Delegator::new(&d, &TestNamers);
        assert_eq!(plain.bind(&p("/svc/foo")), Ok(NameTree::Neg));
        let legacy = Delegator::new(&d, &TestNamers).with_legacy_unprefixed_namers(true);
        assert_eq!(legacy.bind(&p("/svc/foo")), Ok(bound("/#/io.l5d.fs/foo", "/")));
    }

    #[test]
    fn trace_text_and_json() {
        let d = dtab("/svc=>/#/io.l5d.fs");
        let del = Delegator::new(&d, &TestNamers).delegate(&p("/svc/foo"));
        assert_eq!(
            del.render_text(),
            "/svc/foo\n  /#/io.l5d.fs/foo [/svc=>/#/io.l5d.fs] -> bound /#/io.l5d.fs/foo\n=> /#/io.l5d.fs/foo\n"
        );
        assert_eq!(
            del.to_json(),
            concat!(
                r#"{"type":"delegate","path":"/svc/foo","delegate":"#,
                r#"{"type":"leaf","path":"/#/io.l5d.fs/foo","dentry":{"prefix":"/svc","dst":"/#/io.l5d.fs"},"#,
                r#""bound":{"id":"/#/io.l5d.fs/foo","path":"/"}}}"#
            )
        );
        assert_eq!(del.simplified, bound("/#/io.l5d.fs/foo", "/"));
    }

    #[test]
    fn trace_alt_and_union() {
        let d = dtab("/svc=>/$/inet/old/1;/svc=>/#/io.l5d.fs/nope;/svc/w=>0.25*/$/inet/a/1 & 0.75*/$/inet/b/2");
        let del = Delegator::new(&d, &TestNamers).delegate(&p("/svc"));
        assert_eq!(
            del.render_text(),
            "/svc -> alt\n\
             \x20 /#/io.l5d.fs/nope [/svc=>/#/io.l5d.fs/nope] -> ~ (neg)\n\
             \x20 /$/inet/old/1 [/svc=>/$/inet/old/1] -> bound /$/inet/old/1\n\
             => /$/inet/old/1\n"
        );
        assert_eq!(
            del.to_json(),
            concat!(
                r#"{"type":"alt","path":"/svc","alt":["#,
                r#"{"type":"neg","path":"/#/io.l5d.fs/nope","dentry":{"prefix":"/svc","dst":"/#/io.l5d.fs/nope"}},"#,
                r#"{"type":"leaf","path":"/$/inet/old/1","dentry":{"prefix":"/svc","dst":"/$/inet/old/1"},"bound":{"id":"/$/inet/old/1","path":"/"}}]}"#
            )
        );
        let del = Delegator::new(&d, &TestNamers).delegate(&p("/svc/w/x"));
        let text = del.render_text();
        assert!(
            text.contains("  0.25* /$/inet/a/1/x [/svc/w=>0.25*/$/inet/a/1 & 0.75*/$/inet/b/2] -> bound /$/inet/a/1 residual /x\n"),
            "{text}"
        );
        // The trace keeps the fall-back; the `=>` line is what the data path
        // binds (the union), with the residuals beside the bound ids.
        assert!(text.contains("/$/inet/old/1/w/x [/svc=>/$/inet/old/1] -> bound"), "{text}");
        assert!(text.ends_with("=> 0.25*/$/inet/a/1 (residual /x) & 0.75*/$/inet/b/2 (residual /x)\n"), "{text}");
        let json = del.to_json();
        assert!(json.contains(r#""union":[{"weight":0.25,"tree":{"type":"leaf""#), "{json}");
        // The data path picks the union (the later entry) and ignores the
        // fall-back.
        let b = Delegator::new(&d, &TestNamers).bind(&p("/svc/w/x")).unwrap();
        assert_eq!(b.show(), "0.25*/$/inet/a/1/x & 0.75*/$/inet/b/2/x");
    }

    #[test]
    fn json_escaping() {
        let mut s = String::new();
        json_str(&mut s, "a\"b\\c\nd\u{1}é");
        assert_eq!(s, r#""a\"b\\c\nd\u0001é""#);
        let mut s = String::new();
        json_f64(&mut s, 1.0);
        json_f64(&mut s, f64::NAN);
        assert_eq!(s, "1.0null");
    }
}
