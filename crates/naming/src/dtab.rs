//! Delegation tables: `prefix => tree` rules (finagle `Dtab`, `Dentry`,
//! `Dentry.Prefix`).

use std::fmt;

use super::name_tree::{parse_tree, NameTree};
use super::path::{write_segment, Cursor, ParseError, Path, PathBuilder};

/// One element of a dentry prefix.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PrefixElem {
    /// `*`: matches any one segment.
    Any,
    /// A literal segment (a literal `*` is written `\x2a`).
    Label(Box<[u8]>),
}

/// The left-hand side of a dentry: a path whose segments may be `*`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Prefix(Vec<PrefixElem>);

impl Prefix {
    /// A prefix from its elements.
    pub fn new(elems: Vec<PrefixElem>) -> Self {
        Prefix(elems)
    }

    /// A wildcard-free prefix equal to `path`.
    pub fn from_path(path: &Path) -> Self {
        Prefix(path.segments().map(|s| PrefixElem::Label(s.into())).collect())
    }

    /// Parses `/a/*/c` (whitespace around it is ignored).
    pub fn parse(s: &str) -> Result<Prefix, ParseError> {
        let mut cur = Cursor::new(s);
        cur.skip_ws();
        let p = parse_prefix(&mut cur)?;
        cur.skip_ws();
        cur.ensure_end()?;
        Ok(p)
    }

    /// The elements.
    pub fn elems(&self) -> &[PrefixElem] {
        &self.0
    }

    /// Number of elements (segments matched).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for `/`, which matches every path.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `path` starts with this prefix (`*` matches any one segment).
    pub fn matches(&self, path: &Path) -> bool {
        self.0.len() <= path.len()
            && self.0.iter().zip(path.segments()).all(|(e, s)| match e {
                PrefixElem::Any => true,
                PrefixElem::Label(l) => **l == *s,
            })
    }

    /// Canonical text.
    pub fn show(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("/");
        }
        for e in &self.0 {
            f.write_str("/")?;
            match e {
                PrefixElem::Any => f.write_str("*")?,
                PrefixElem::Label(l) => write_segment(f, l)?,
            }
        }
        Ok(())
    }
}

pub(super) fn parse_prefix(cur: &mut Cursor<'_>) -> Result<Prefix, ParseError> {
    cur.eat(b'/', "'/'")?;
    let mut elems = Vec::new();
    if !(cur.at_label_char() || cur.peek() == Some(b'*')) {
        return Ok(Prefix(elems));
    }
    loop {
        if cur.maybe_eat(b'*') {
            elems.push(PrefixElem::Any);
        } else {
            let mut b = PathBuilder::default();
            cur.parse_label_into(&mut b)?;
            let p = b.finish();
            let seg = p.segment(0).unwrap_or_default();
            elems.push(PrefixElem::Label(seg.into()));
        }
        if !cur.maybe_eat(b'/') {
            break;
        }
    }
    Ok(Prefix(elems))
}

/// A delegation rule `prefix => dst`.
#[derive(Clone, Debug, PartialEq)]
pub struct Dentry {
    /// Which paths the rule applies to.
    pub prefix: Prefix,
    /// What the matched prefix is replaced with.
    pub dst: NameTree<Path>,
}

impl Dentry {
    /// A rule.
    pub fn new(prefix: Prefix, dst: NameTree<Path>) -> Self {
        Dentry { prefix, dst }
    }

    /// Parses `prefix => tree`.
    pub fn parse(s: &str) -> Result<Dentry, ParseError> {
        let mut cur = Cursor::new(s);
        let d = parse_dentry(&mut cur)?;
        cur.skip_ws();
        cur.ensure_end()?;
        Ok(d)
    }

    /// Canonical text `prefix=>tree`.
    pub fn show(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Dentry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}=>{}", self.prefix, self.dst)
    }
}

fn parse_dentry(cur: &mut Cursor<'_>) -> Result<Dentry, ParseError> {
    cur.skip_ws();
    let prefix = parse_prefix(cur)?;
    cur.skip_ws();
    cur.eat(b'=', "'=>'")?;
    cur.eat(b'>', "'>'")?;
    let dst = parse_tree(cur, 0)?;
    Ok(Dentry { prefix, dst })
}

/// An ordered list of dentries; later entries take precedence.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Dtab(Vec<Dentry>);

impl Dtab {
    /// The empty dtab.
    pub fn empty() -> Self {
        Dtab(Vec::new())
    }

    /// A dtab from its entries.
    pub fn new(dentries: Vec<Dentry>) -> Self {
        Dtab(dentries)
    }

    /// Parses `dentry (';' dentry)* ';'?` exactly as finagle does: whitespace
    /// between tokens is ignored, the empty string is the empty dtab and one
    /// trailing `;` is allowed, but empty entries (`;;`, a leading `;`) are
    /// errors.
    pub fn parse(s: &str) -> Result<Dtab, ParseError> {
        let mut cur = Cursor::new(s);
        let mut dentries = Vec::new();
        loop {
            cur.skip_ws();
            if !cur.at_end() {
                dentries.push(parse_dentry(&mut cur)?);
                cur.skip_ws();
            }
            if !cur.maybe_eat(b';') {
                break;
            }
        }
        cur.skip_ws();
        cur.ensure_end()?;
        Ok(Dtab(dentries))
    }

    /// The entries, in order.
    pub fn dentries(&self) -> &[Dentry] {
        &self.0
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Appends one entry.
    pub fn push(&mut self, d: Dentry) {
        self.0.push(d);
    }

    /// `self ++ other`: `other`'s entries come later and so take precedence
    /// (used for base dtab ++ per-request `l5d-dtab`).
    pub fn concat(&self, other: &Dtab) -> Dtab {
        let mut v = Vec::with_capacity(self.0.len() + other.0.len());
        v.extend_from_slice(&self.0);
        v.extend_from_slice(&other.0);
        Dtab(v)
    }

    /// Canonical text `prefix=>tree;prefix=>tree`.
    pub fn show(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Dtab {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(";")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Dtab {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Dtab, ParseError> {
        Dtab::parse(s)
    }
}

impl std::str::FromStr for Dentry {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Dentry, ParseError> {
        Dentry::parse(s)
    }
}

impl std::str::FromStr for Prefix {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Prefix, ParseError> {
        Prefix::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::super::path::{Found, ParseErrorKind};
    use super::*;

    #[test]
    fn parse_example() {
        let d = Dtab::parse("/svc => /#/io.l5d.fs ;\n /svc/foo => /$/inet/127.1/8080 | /x ;").unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d.show(), "/svc=>/#/io.l5d.fs;/svc/foo=>/$/inet/127.1/8080 | /x");
        assert_eq!(Dtab::parse(&d.show()).unwrap(), d);
        assert_eq!(d.dentries()[1].prefix, Prefix::parse("/svc/foo").unwrap());
    }

    #[test]
    fn empty_and_separators() {
        assert!(Dtab::parse("").unwrap().is_empty());
        assert!(Dtab::parse("  ").unwrap().is_empty());
        assert_eq!(Dtab::parse("/a=>/b ; /c=>/d ; ").unwrap().len(), 2);
        assert_eq!(Dtab::parse(";").unwrap_err().offset, 0);
        assert_eq!(Dtab::parse("/a=>/b;;").unwrap_err().offset, 7);
        assert_eq!(Dtab::empty().show(), "");
        assert_eq!(Dtab::parse("/=>!").unwrap().show(), "/=>!");
    }

    #[test]
    fn wildcards() {
        let p = Prefix::parse("/http/*/host").unwrap();
        assert_eq!(p.len(), 3);
        assert!(p.matches(&Path::parse("/http/1.1/host/x").unwrap()));
        assert!(!p.matches(&Path::parse("/http/1.1/hos").unwrap()));
        assert!(!p.matches(&Path::parse("/http/1.1").unwrap()));
        assert_eq!(p.show(), "/http/*/host");
        let lit = Prefix::parse(r"/\x2a").unwrap();
        assert_eq!(lit.elems(), &[PrefixElem::Label(b"*"[..].into())]);
        assert_eq!(lit.show(), r"/\x2a");
        assert!(!lit.matches(&Path::parse("/x").unwrap()));
        assert!(Prefix::parse("/").unwrap().matches(&Path::empty()));
    }

    #[test]
    fn errors_with_positions() {
        let e = Dtab::parse("/a => /b; /c =>").unwrap_err();
        assert_eq!(e.offset, 15);
        assert_eq!(e.kind, ParseErrorKind::Expected { expected: "name tree", found: Found::End });
        let e = Dtab::parse("/a => /b; /c = > /d").unwrap_err();
        assert_eq!(e.offset, 14);
        let e = Dtab::parse("/a => /b /c => /d").unwrap_err();
        assert_eq!(e.offset, 9);
        let e = Dtab::parse("svc => /b").unwrap_err();
        assert_eq!(e.offset, 0);
        let e = Dtab::parse("/a/*x => /b").unwrap_err();
        assert_eq!(e.offset, 4);
        let e = Dtab::parse("/a => /*").unwrap_err();
        assert_eq!(e.offset, 7);
        let e = Dtab::parse("/a => /b | (/c").unwrap_err();
        assert_eq!(e.offset, 14);
        assert_eq!(e.to_string(), "')' expected but end of input found at byte 14");
    }

    #[test]
    fn concat_orders_override_last() {
        let base = Dtab::parse("/a=>/b").unwrap();
        let local = Dtab::parse("/a=>/c").unwrap();
        assert_eq!(base.concat(&local).show(), "/a=>/b;/a=>/c");
        assert_eq!(Dtab::empty().concat(&local), local);
    }

    #[test]
    fn round_trip_assorted() {
        for s in [
            "/s=>/a & /b;/t/*/u=>0.25*/x & 0.75*(/y | ~);/=>!",
            r"/\x20=>$;/#/io.l5d.fs=>/$/inet/127.1/9000/rest",
            "/a=>(/b | /c) | /d",
        ] {
            let d = Dtab::parse(s).unwrap();
            assert_eq!(d.show(), s);
            assert_eq!(Dtab::parse(&d.show()).unwrap(), d);
        }
    }
}
