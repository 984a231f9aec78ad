//! Finagle `NameTree`: composite names with fail-over (`|`), weighted
//! load-balancing unions (`&`), and the three terminal markers `~` (Neg: no
//! such name), `!` (Fail: stop, routing fails) and `$` (Empty: the name exists
//! but has no members).

use std::fmt;

use super::path::{Cursor, ParseError, ParseErrorKind, Path, MAX_NESTING};

/// A composite name whose leaves are `T` (a [`Path`] before binding, a
/// [`super::delegate::BoundName`] after).
#[derive(Clone, Debug, PartialEq)]
pub enum NameTree<T> {
    /// A single name.
    Leaf(T),
    /// Fail-over: the first alternative that is not negative wins.
    Alt(Vec<NameTree<T>>),
    /// Weighted union: traffic is spread over the branches by weight.
    Union(Vec<Weighted<T>>),
    /// Negative: nothing here; an enclosing `Alt` falls through.
    Neg,
    /// Failure: stops an enclosing `Alt` from falling through.
    Fail,
    /// Exists but uninhabited; also stops an enclosing `Alt`.
    Empty,
}

/// A union branch with its weight.
#[derive(Clone, Debug, PartialEq)]
pub struct Weighted<T> {
    /// Relative weight (finagle's default is 1.0).
    pub weight: f64,
    /// The branch.
    pub tree: NameTree<T>,
}

impl<T> Weighted<T> {
    /// Weight of a branch written without `W *`.
    pub const DEFAULT_WEIGHT: f64 = 1.0;

    /// A branch.
    pub fn new(weight: f64, tree: NameTree<T>) -> Self {
        Weighted { weight, tree }
    }
}

/// How a tree evaluates, ignoring which leaves it contains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// At least one leaf is selected.
    Leaf,
    /// Evaluates to the empty set (`$`).
    Empty,
    /// Negative (`~`).
    Neg,
    /// Failed (`!`).
    Fail,
}

/// Result of [`NameTree::pick`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pick<'a, T> {
    /// The chosen leaf.
    Leaf(&'a T),
    /// The tree evaluates to the empty set.
    Empty,
    /// The tree is negative: no route.
    Neg,
    /// The tree failed.
    Fail,
}

enum Eval<'a, T> {
    Set(Vec<&'a T>),
    Neg,
    Fail,
}

impl<T> NameTree<T> {
    /// Maps every leaf (finagle `map`).
    pub fn map<U>(&self, f: &mut impl FnMut(&T) -> U) -> NameTree<U> {
        match self {
            NameTree::Leaf(t) => NameTree::Leaf(f(t)),
            NameTree::Alt(ts) => NameTree::Alt(ts.iter().map(|t| t.map(f)).collect()),
            NameTree::Union(ws) => NameTree::Union(ws.iter().map(|w| Weighted::new(w.weight, w.tree.map(f))).collect()),
            NameTree::Neg => NameTree::Neg,
            NameTree::Fail => NameTree::Fail,
            NameTree::Empty => NameTree::Empty,
        }
    }

    /// An evaluation-equivalent, simpler tree (finagle `simplified`): empty
    /// Alt/Union become `~`; single-child Alt/Union collapse (dropping the
    /// weight); Alt drops `~` children and stops after `!`; Union drops `~`
    /// and `!` branches but keeps `$`. `simplify` is idempotent.
    pub fn simplify(&self) -> NameTree<T>
    where
        T: Clone,
    {
        match self {
            NameTree::Alt(ts) => {
                if ts.len() == 1 {
                    return ts[0].simplify();
                }
                let mut acc = Vec::with_capacity(ts.len());
                for t in ts {
                    match t.simplify() {
                        NameTree::Fail => {
                            acc.push(NameTree::Fail);
                            break;
                        }
                        NameTree::Neg => {}
                        t => acc.push(t),
                    }
                }
                match acc.len() {
                    0 => NameTree::Neg,
                    1 => acc.pop().unwrap_or(NameTree::Neg),
                    _ => NameTree::Alt(acc),
                }
            }
            NameTree::Union(ws) => {
                if ws.len() == 1 {
                    return ws[0].tree.simplify();
                }
                let mut acc: Vec<Weighted<T>> = Vec::with_capacity(ws.len());
                for w in ws {
                    match w.tree.simplify() {
                        NameTree::Fail | NameTree::Neg => {}
                        t => acc.push(Weighted::new(w.weight, t)),
                    }
                }
                match acc.len() {
                    0 => NameTree::Neg,
                    1 => acc.pop().map_or(NameTree::Neg, |w| w.tree),
                    _ => NameTree::Union(acc),
                }
            }
            other => other.clone(),
        }
    }

    fn eval_inner(&self) -> Eval<'_, T>
    where
        T: PartialEq,
    {
        match self {
            NameTree::Leaf(t) => Eval::Set(vec![t]),
            NameTree::Empty => Eval::Set(Vec::new()),
            NameTree::Neg => Eval::Neg,
            NameTree::Fail => Eval::Fail,
            NameTree::Alt(ts) => {
                for t in ts {
                    match t.eval_inner() {
                        Eval::Neg => continue,
                        other => return other,
                    }
                }
                Eval::Neg
            }
            NameTree::Union(ws) => {
                let mut acc: Option<Vec<&T>> = None;
                for w in ws {
                    if let Eval::Set(s) = w.tree.eval_inner() {
                        let acc = acc.get_or_insert_with(Vec::new);
                        for t in s {
                            if !acc.contains(&t) {
                                acc.push(t);
                            }
                        }
                    }
                }
                acc.map_or(Eval::Neg, Eval::Set)
            }
        }
    }

    /// Finagle `eval`: the set of leaves the tree denotes, or `None` when it
    /// is negative or failed. Alt takes its first non-negative child (`!` and
    /// `$` stop the fall-through); Union is the union of its non-negative,
    /// non-failed branches (weights are ignored here; see [`Self::pick`]), and
    /// negative when there are none.
    pub fn eval(&self) -> Option<Vec<&T>>
    where
        T: PartialEq,
    {
        match self.eval_inner() {
            Eval::Set(s) => Some(s),
            Eval::Neg | Eval::Fail => None,
        }
    }

    /// Allocation-free classification with the same rules as [`Self::eval`].
    pub fn status(&self) -> Status {
        match self {
            NameTree::Leaf(_) => Status::Leaf,
            NameTree::Empty => Status::Empty,
            NameTree::Neg => Status::Neg,
            NameTree::Fail => Status::Fail,
            NameTree::Alt(ts) => ts.iter().map(NameTree::status).find(|s| *s != Status::Neg).unwrap_or(Status::Neg),
            NameTree::Union(ws) => {
                let mut empty = false;
                for w in ws {
                    match w.tree.status() {
                        Status::Leaf => return Status::Leaf,
                        Status::Empty => empty = true,
                        Status::Neg | Status::Fail => {}
                    }
                }
                if empty {
                    Status::Empty
                } else {
                    Status::Neg
                }
            }
        }
    }

    /// Picks one leaf for a request, without allocating: Alt takes its first
    /// non-negative child; Union chooses among the branches that contain a
    /// leaf with probability proportional to their weights (non-positive or
    /// non-finite weights count as 0; if all weights are 0 the choice is
    /// uniform). `rand` should be uniformly distributed; nested unions derive
    /// fresh bits from it.
    pub fn pick(&self, rand: u64) -> Pick<'_, T> {
        match self {
            NameTree::Leaf(t) => Pick::Leaf(t),
            NameTree::Empty => Pick::Empty,
            NameTree::Neg => Pick::Neg,
            NameTree::Fail => Pick::Fail,
            NameTree::Alt(ts) => {
                for t in ts {
                    match t.status() {
                        Status::Neg => continue,
                        Status::Fail => return Pick::Fail,
                        Status::Empty => return Pick::Empty,
                        Status::Leaf => return t.pick(rand),
                    }
                }
                Pick::Neg
            }
            NameTree::Union(ws) => {
                let w_of = |w: &Weighted<T>| {
                    if w.weight.is_finite() && w.weight > 0.0 {
                        w.weight
                    } else {
                        0.0
                    }
                };
                let mut total = 0.0;
                let mut count = 0u64;
                let mut empty = false;
                for w in ws {
                    match w.tree.status() {
                        Status::Leaf => {
                            total += w_of(w);
                            count += 1;
                        }
                        Status::Empty => empty = true,
                        Status::Neg | Status::Fail => {}
                    }
                }
                if count == 0 {
                    return if empty { Pick::Empty } else { Pick::Neg };
                }
                let live = ws.iter().filter(|w| w.tree.status() == Status::Leaf);
                let next = splitmix64(rand);
                if total > 0.0 && total.is_finite() {
                    // 53 random bits → [0, 1).
                    let x = (rand >> 11) as f64 * (1.0 / (1u64 << 53) as f64) * total;
                    let mut acc = 0.0;
                    let mut last = None;
                    for w in live {
                        let wt = w_of(w);
                        if wt > 0.0 {
                            acc += wt;
                            last = Some(w);
                            if x < acc {
                                return w.tree.pick(next);
                            }
                        }
                    }
                    // Floating-point rounding at the top end.
                    last.map_or(Pick::Neg, |w| w.tree.pick(next))
                } else {
                    let k = (rand % count) as usize;
                    let mut live = live;
                    live.nth(k).map_or(Pick::Neg, |w| w.tree.pick(next))
                }
            }
        }
    }
}

/// SplitMix64 step, used to derive independent bits for nested unions.
#[inline]
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Writes a union weight as finagle does (`%.2f`) when that round-trips, and
/// with full (shortest round-trip) precision otherwise, so parse∘show is the
/// identity. Finagle would print `0.333` as `0.33`.
fn write_weight(f: &mut fmt::Formatter<'_>, w: f64) -> fmt::Result {
    let two = format!("{w:.2}");
    if two.parse::<f64>().ok() == Some(w) {
        f.write_str(&two)
    } else {
        write!(f, "{w}")
    }
}

// Port of finagle NameTree.show / show1 / showSimple / showParens.
fn show_top<T: fmt::Display>(t: &NameTree<T>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match t {
        NameTree::Union(ws) if ws.len() == 1 => show_top(&ws[0].tree, f),
        NameTree::Alt(ts) if ts.len() == 1 => show_top(&ts[0], f),
        NameTree::Alt(ts) if !ts.is_empty() => {
            for (i, t) in ts.iter().enumerate() {
                if i > 0 {
                    f.write_str(" | ")?;
                }
                show1(t, f)?;
            }
            Ok(())
        }
        _ => show1(t, f),
    }
}

fn show1<T: fmt::Display>(t: &NameTree<T>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match t {
        NameTree::Union(ws) if ws.len() == 1 => show1(&ws[0].tree, f),
        NameTree::Alt(ts) if ts.len() == 1 => show1(&ts[0], f),
        NameTree::Union(ws) if !ws.is_empty() => {
            for (i, w) in ws.iter().enumerate() {
                if i > 0 {
                    f.write_str(" & ")?;
                }
                if w.weight != Weighted::<T>::DEFAULT_WEIGHT {
                    write_weight(f, w.weight)?;
                    f.write_str("*")?;
                }
                show_simple(&w.tree, f)?;
            }
            Ok(())
        }
        NameTree::Alt(ts) if !ts.is_empty() => show_parens(t, f),
        _ => show_simple(t, f),
    }
}

fn show_simple<T: fmt::Display>(t: &NameTree<T>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match t {
        NameTree::Union(ws) if ws.len() == 1 => show_simple(&ws[0].tree, f),
        NameTree::Alt(ts) if ts.len() == 1 => show_simple(&ts[0], f),
        NameTree::Union(ws) if !ws.is_empty() => show_parens(t, f),
        NameTree::Alt(ts) if !ts.is_empty() => show_parens(t, f),
        NameTree::Leaf(l) => write!(f, "{l}"),
        NameTree::Fail => f.write_str("!"),
        // Finagle prints an empty Alt/Union as "" (unparseable); they
        // evaluate negative, so we print `~`.
        NameTree::Neg | NameTree::Alt(_) | NameTree::Union(_) => f.write_str("~"),
        NameTree::Empty => f.write_str("$"),
    }
}

fn show_parens<T: fmt::Display>(t: &NameTree<T>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.write_str("(")?;
    show_top(t, f)?;
    f.write_str(")")
}

impl<T: fmt::Display> NameTree<T> {
    /// The finagle textual form, e.g. `/a | 0.30*/b & 0.70*/c | ~`.
    pub fn show(&self) -> String {
        self.to_string()
    }
}

impl<T: fmt::Display> fmt::Display for NameTree<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        show_top(self, f)
    }
}

impl NameTree<Path> {
    /// Parses finagle name-tree syntax:
    ///
    /// ```text
    /// tree   ::= tree1 ('|' tree1)*
    /// tree1  ::= weighted ('&' weighted)*
    /// weighted ::= (weight '*')? simple      weight ::= [0-9]*\.?[0-9]+
    /// simple ::= '(' tree ')' | path | '!' | '~' | '$'
    /// ```
    pub fn parse(s: &str) -> Result<NameTree<Path>, ParseError> {
        let mut cur = Cursor::new(s);
        let t = parse_tree(&mut cur, 0)?;
        cur.skip_ws();
        cur.ensure_end()?;
        Ok(t)
    }
}

impl std::str::FromStr for NameTree<Path> {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        NameTree::parse(s)
    }
}

pub(super) fn parse_tree(cur: &mut Cursor<'_>, depth: usize) -> Result<NameTree<Path>, ParseError> {
    let mut trees = Vec::new();
    loop {
        trees.push(parse_tree1(cur, depth)?);
        cur.skip_ws();
        if !cur.maybe_eat(b'|') {
            break;
        }
    }
    Ok(if trees.len() == 1 { trees.pop().unwrap_or(NameTree::Neg) } else { NameTree::Alt(trees) })
}

fn parse_tree1(cur: &mut Cursor<'_>, depth: usize) -> Result<NameTree<Path>, ParseError> {
    let mut ws = Vec::new();
    loop {
        ws.push(parse_weighted(cur, depth)?);
        cur.skip_ws();
        if !cur.maybe_eat(b'&') {
            break;
        }
    }
    Ok(if ws.len() == 1 { ws.pop().map_or(NameTree::Neg, |w| w.tree) } else { NameTree::Union(ws) })
}

fn is_number_char(b: Option<u8>) -> bool {
    matches!(b, Some(b'0'..=b'9' | b'.'))
}

fn parse_weighted(cur: &mut Cursor<'_>, depth: usize) -> Result<Weighted<Path>, ParseError> {
    cur.skip_ws();
    let weight = if is_number_char(cur.peek()) {
        let start = cur.pos();
        let mut seen_dot = false;
        while is_number_char(cur.peek()) {
            if cur.peek() == Some(b'.') {
                if seen_dot {
                    return Err(cur.expected("number char"));
                }
                seen_dot = true;
            }
            cur.bump();
        }
        let text = cur_slice(cur, start);
        if text == "." {
            return Err(ParseError {
                offset: start,
                kind: ParseErrorKind::Expected { expected: "weight", found: super::path::Found::Char('.') },
            });
        }
        let w: f64 = text.parse().map_err(|_| ParseError {
            offset: start,
            kind: ParseErrorKind::Expected { expected: "weight", found: super::path::Found::Char('.') },
        })?;
        // A weight too long for f64 parses as infinity, which `show` cannot
        // write back as a weight: reject it where it starts.
        if !w.is_finite() {
            let first = text.chars().next().unwrap_or('0');
            return Err(ParseError {
                offset: start,
                kind: ParseErrorKind::Expected { expected: "finite weight", found: super::path::Found::Char(first) },
            });
        }
        cur.skip_ws();
        cur.eat(b'*', "'*'")?;
        w
    } else {
        Weighted::<Path>::DEFAULT_WEIGHT
    };
    Ok(Weighted::new(weight, parse_simple(cur, depth)?))
}

fn cur_slice<'a>(cur: &Cursor<'a>, start: usize) -> &'a str {
    cur.slice_from(start)
}

fn parse_simple(cur: &mut Cursor<'_>, depth: usize) -> Result<NameTree<Path>, ParseError> {
    cur.skip_ws();
    match cur.peek() {
        Some(b'(') => {
            if depth >= MAX_NESTING {
                return Err(cur.error(ParseErrorKind::TooDeep { max: MAX_NESTING }));
            }
            cur.bump();
            let t = parse_tree(cur, depth + 1)?;
            cur.skip_ws();
            cur.eat(b')', "')'")?;
            Ok(t)
        }
        Some(b'/') => Ok(NameTree::Leaf(cur.parse_path()?)),
        Some(b'!') => {
            cur.bump();
            Ok(NameTree::Fail)
        }
        Some(b'~') => {
            cur.bump();
            Ok(NameTree::Neg)
        }
        Some(b'$') => {
            cur.bump();
            Ok(NameTree::Empty)
        }
        _ => Err(cur.expected("name tree")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> NameTree<Path> {
        NameTree::parse(s).unwrap()
    }
    fn leaf(s: &str) -> NameTree<Path> {
        NameTree::Leaf(Path::parse(s).unwrap())
    }
    fn w(weight: f64, tree: NameTree<Path>) -> Weighted<Path> {
        Weighted::new(weight, tree)
    }

    #[test]
    fn infinite_weight_is_an_error() {
        let text = format!("1{}*/b & /c", "0".repeat(309));
        let err = NameTree::<Path>::parse(&text).unwrap_err();
        assert_eq!(err.offset, 0);
    }

    #[test]
    fn parse_precedence() {
        assert_eq!(
            t("/foo & /bar | /baz | $"),
            NameTree::Alt(vec![
                NameTree::Union(vec![w(1.0, leaf("/foo")), w(1.0, leaf("/bar"))]),
                leaf("/baz"),
                NameTree::Empty,
            ])
        );
        assert_eq!(t(" 0.3 * /a &.7*/b "), NameTree::Union(vec![w(0.3, leaf("/a")), w(0.7, leaf("/b"))]));
        assert_eq!(t("0.5*/a"), leaf("/a"));
        assert_eq!(
            t("/a & (/b | ~) | !"),
            NameTree::Alt(vec![
                NameTree::Union(vec![w(1.0, leaf("/a")), w(1.0, NameTree::Alt(vec![leaf("/b"), NameTree::Neg]))]),
                NameTree::Fail
            ])
        );
        assert_eq!(t("/"), leaf("/"));
    }

    #[test]
    fn parse_errors() {
        let e = NameTree::parse("/a |").unwrap_err();
        assert_eq!(e.offset, 4);
        let e = NameTree::parse("/a /b").unwrap_err();
        assert_eq!(e.offset, 3);
        let e = NameTree::parse("1.2.3*/a").unwrap_err();
        assert_eq!(e.offset, 3);
        let e = NameTree::parse(".*/a").unwrap_err();
        assert_eq!(e.offset, 0);
        let e = NameTree::parse("0.5 /a").unwrap_err();
        assert_eq!(e.offset, 4);
        let e = NameTree::parse("(/a | /b").unwrap_err();
        assert_eq!(e.offset, 8);
        assert_eq!(e.to_string(), "')' expected but end of input found at byte 8");
        let deep = "(".repeat(10_000);
        let e = NameTree::parse(&deep).unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::TooDeep { max: MAX_NESTING });
        assert_eq!(e.offset, MAX_NESTING);
    }

    #[test]
    fn show_matches_finagle() {
        for s in [
            "/a | /b",
            "/a & /b",
            "0.50*/a & 0.50*/b",
            "/a & (/b | /c)",
            "(/a | /b) | /c",
            "/a | 0.30*/b & 0.70*/c | ~ | ! | $",
            "(/a & /b) & /c",
            "/",
            r"/a\x2fb",
        ] {
            assert_eq!(t(s).show(), s);
        }
        assert_eq!(t("0.5*/a&2*/b").show(), "0.50*/a & 2.00*/b");
        assert_eq!(t("0.333*/a&/b").show(), "0.333*/a & /b");
        assert_eq!(NameTree::<Path>::Alt(vec![]).show(), "~");
        assert_eq!(NameTree::Alt(vec![leaf("/a")]).show(), "/a");
    }

    #[test]
    fn simplify_like_finagle() {
        assert_eq!(t("~ | /a | ~").simplify(), leaf("/a"));
        assert_eq!(t("~ | ! | /a").simplify(), NameTree::Fail);
        assert_eq!(t("/a | ! | /b").simplify(), t("/a | !"));
        assert_eq!(t("/a & ~ & !").simplify(), leaf("/a"));
        assert_eq!(t("/a & $").simplify(), t("/a & $"));
        assert_eq!(t("~ & !").simplify(), NameTree::Neg);
        assert_eq!(NameTree::<Path>::Union(vec![]).simplify(), NameTree::Neg);
        let x = t("(~ | /a) & (/b | ~ | /c) | ~ | $");
        assert_eq!(x.simplify().simplify(), x.simplify());
    }

    #[test]
    fn eval_set_semantics() {
        let a = Path::parse("/a").unwrap();
        let b = Path::parse("/b").unwrap();
        assert_eq!(t("~ | /a | /b").eval(), Some(vec![&a]));
        assert_eq!(t("! | /a").eval(), None);
        assert_eq!(t("$ | /a").eval(), Some(vec![]));
        assert_eq!(t("~ | ~").eval(), None);
        assert_eq!(t("/a & ~ & /b & /a").eval(), Some(vec![&a, &b]));
        assert_eq!(t("~ & ~").eval(), None);
        assert_eq!(t("! & /a").eval(), Some(vec![&a]));
        assert_eq!(t("$ & ~").eval(), Some(vec![]));
        assert_eq!(t("/a & ~").status(), Status::Leaf);
        assert_eq!(t("~ | ! | /a").status(), Status::Fail);
        assert_eq!(t("~ | $ | /a").status(), Status::Empty);
    }

    #[test]
    fn pick_alt_and_terminals() {
        let a = Path::parse("/a").unwrap();
        assert_eq!(t("~ | /a | /b").pick(7), Pick::Leaf(&a));
        assert_eq!(t("~ | ! | /a").pick(7), Pick::Fail);
        assert_eq!(t("~ | $ | /a").pick(7), Pick::Empty);
        assert_eq!(t("~ | ~").pick(7), Pick::Neg);
        assert_eq!(t("$ & ~").pick(7), Pick::Empty);
        // Only inhabited branches of a union can be chosen.
        for r in 0..100u64 {
            assert_eq!(t("/a & $ & ~ & !").pick(splitmix64(r)), Pick::Leaf(&a));
        }
    }

    #[test]
    fn pick_weighted_statistics() {
        let tree = t("0.3*/a & 0.7*/b");
        let a = Path::parse("/a").unwrap();
        let mut seed = 42u64;
        let mut hits = 0;
        for _ in 0..10_000 {
            seed = splitmix64(seed);
            if tree.pick(seed) == Pick::Leaf(&a) {
                hits += 1;
            }
        }
        assert!((2800..=3200).contains(&hits), "{hits}");
        // Nested: 0.5 * (a|b 50/50) vs c.
        let nested = t("/c & (/a & /b)");
        let mut counts = [0u32; 3];
        for i in 0..10_000u64 {
            if let Pick::Leaf(p) = nested.pick(splitmix64(i)) {
                let k = usize::from(p.segment(0).unwrap()[0] - b'a');
                counts[k] += 1;
            }
        }
        assert!((2300..=2700).contains(&counts[0]), "{counts:?}");
        assert!((2300..=2700).contains(&counts[1]), "{counts:?}");
        assert!((4800..=5200).contains(&counts[2]), "{counts:?}");
        // All-zero weights: uniform.
        let zero = t("0*/a & 0*/b");
        let n = (0..1000u64).filter(|i| zero.pick(splitmix64(*i)) == Pick::Leaf(&a)).count();
        assert!((400..=600).contains(&n), "{n}");
    }

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = splitmix64(self.0);
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn random_tree(rng: &mut Rng, depth: u32) -> NameTree<Path> {
        let k = if depth == 0 { rng.below(4) } else { rng.below(6) };
        match k {
            0 => {
                let n = rng.below(3) as usize;
                let segs: Vec<Vec<u8>> =
                    (0..n).map(|_| (0..1 + rng.below(3)).map(|_| rng.next() as u8).collect()).collect();
                NameTree::Leaf(Path::from_segments(segs).unwrap())
            }
            1 => NameTree::Neg,
            2 => NameTree::Fail,
            3 => NameTree::Empty,
            4 => NameTree::Alt((0..2 + rng.below(3)).map(|_| random_tree(rng, depth - 1)).collect()),
            _ => NameTree::Union(
                (0..2 + rng.below(3))
                    .map(|_| {
                        let weight = match rng.below(4) {
                            0 => 1.0,
                            1 => rng.below(1000) as f64 / 100.0,
                            2 => rng.below(100_000) as f64 / 7.0,
                            _ => 0.0,
                        };
                        Weighted::new(weight, random_tree(rng, depth - 1))
                    })
                    .collect(),
            ),
        }
    }

    #[test]
    fn random_round_trip_and_simplify_fixpoint() {
        let mut rng = Rng(0xfeed);
        for _ in 0..2000 {
            let tree = random_tree(&mut rng, 4);
            let shown = tree.show();
            let back = NameTree::parse(&shown).unwrap();
            assert_eq!(back, tree, "{shown}");
            let s = tree.simplify();
            assert_eq!(s.simplify(), s);
            assert_eq!(s.eval(), tree.eval());
            assert_eq!(s.status(), tree.status());
        }
    }
}
