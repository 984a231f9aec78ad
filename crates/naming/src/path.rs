//! Finagle-style hierarchical names: `/a/b/c`.
//!
//! A [`Path`] is a sequence of non-empty byte-string segments. Its textual
//! form (finagle's `Path.show`) writes every segment after a `/`; bytes in
//! `[A-Za-z0-9_:.#$%-]` appear as themselves and every other byte is written
//! `\xNN` (two lowercase hex digits). The empty path is `/`.
//!
//! Representation: one shared, immutable buffer (all segment bytes plus the
//! end offset of each segment) and a window `[start, end)` of segment
//! indices. Cloning is one atomic increment, and `drop`/`take` (used for every
//! dtab rewrite to compute the residual) are O(1) and allocation-free; only
//! `concat` and the constructors allocate. `Arc<[Box<str>]>` would cost one
//! allocation per segment and could not represent non-UTF-8 segments.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, OnceLock};

/// What the parser found where it expected something else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// The input ended.
    End,
    /// This character.
    Char(char),
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Found::End => f.write_str("end of input"),
            Found::Char(c) => write!(f, "{c:?}"),
        }
    }
}

/// Why a path, prefix, name tree, dentry or dtab failed to parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    /// A token was expected and something else was found.
    #[error("{expected} expected but {found} found")]
    Expected {
        /// What the grammar allows here.
        expected: &'static str,
        /// What was there instead.
        found: Found,
    },
    /// Parentheses nested deeper than [`MAX_NESTING`].
    #[error("name tree nested deeper than {max} levels")]
    TooDeep {
        /// The limit.
        max: usize,
    },
}

/// A parse error with the byte offset (into the whole input) where it was
/// detected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} at byte {offset}")]
pub struct ParseError {
    /// Byte offset into the parsed string.
    pub offset: usize,
    /// What went wrong.
    pub kind: ParseErrorKind,
}

/// Error building a path from segments.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Segments must be non-empty (finagle: `require(elems.forall(nonEmpty))`).
    #[error("path segment {index} is empty")]
    EmptySegment {
        /// Index of the offending segment.
        index: usize,
    },
}

/// Maximum parenthesis nesting accepted by the name-tree parser; dtabs arrive
/// in request headers (`l5d-dtab`), so the recursive-descent parser must not
/// be driven into a stack overflow.
pub const MAX_NESTING: usize = 32;

/// Bytes that [`Path::show`] writes unescaped (finagle `Path.showableChars`).
#[inline]
pub fn is_showable(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b':' | b'.' | b'#' | b'$' | b'%' | b'-')
}

#[derive(Debug)]
struct Buf {
    bytes: Box<[u8]>,
    /// `ends[i]` is the end offset (exclusive) of segment `i` in `bytes`.
    ends: Box<[usize]>,
}

fn empty_buf() -> Arc<Buf> {
    static EMPTY: OnceLock<Arc<Buf>> = OnceLock::new();
    EMPTY.get_or_init(|| Arc::new(Buf { bytes: Box::new([]), ends: Box::new([]) })).clone()
}

/// A hierarchical name: a sequence of non-empty byte-string segments.
#[derive(Clone)]
pub struct Path {
    buf: Arc<Buf>,
    start: usize,
    end: usize,
}

/// Accumulates segments, then freezes them into a [`Path`].
#[derive(Default)]
pub(super) struct PathBuilder {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl PathBuilder {
    pub(super) fn push_byte(&mut self, b: u8) {
        self.bytes.push(b);
    }

    /// Ends the current segment (callers guarantee it is non-empty).
    pub(super) fn end_segment(&mut self) {
        self.ends.push(self.bytes.len());
    }

    pub(super) fn push_segment(&mut self, seg: &[u8]) {
        self.bytes.extend_from_slice(seg);
        self.end_segment();
    }

    pub(super) fn finish(self) -> Path {
        if self.ends.is_empty() {
            return Path::empty();
        }
        let n = self.ends.len();
        Path {
            buf: Arc::new(Buf { bytes: self.bytes.into_boxed_slice(), ends: self.ends.into_boxed_slice() }),
            start: 0,
            end: n,
        }
    }
}

impl Path {
    /// The empty path `/` (no allocation).
    pub fn empty() -> Path {
        Path { buf: empty_buf(), start: 0, end: 0 }
    }

    /// Parses the textual form, e.g. `/svc/foo` or `/`. Surrounding ASCII
    /// whitespace is ignored, as in finagle's `Path.read`.
    pub fn parse(s: &str) -> Result<Path, ParseError> {
        let mut cur = Cursor::new(s);
        cur.skip_ws();
        let p = cur.parse_path()?;
        cur.skip_ws();
        cur.ensure_end()?;
        Ok(p)
    }

    /// Builds a path from raw segments (no parsing or unescaping).
    pub fn from_segments<I, S>(segments: I) -> Result<Path, PathError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        let mut b = PathBuilder::default();
        for (index, seg) in segments.into_iter().enumerate() {
            let seg = seg.as_ref();
            if seg.is_empty() {
                return Err(PathError::EmptySegment { index });
            }
            b.push_segment(seg);
        }
        Ok(b.finish())
    }

    /// A one-segment path holding `s` verbatim, without parsing: the HTTP
    /// identifier turns `Host: a/b` into the single segment `a/b`
    /// (shown `/a\x2fb`), exactly as linkerd uses the header value.
    pub fn single_segment(s: &str) -> Result<Path, PathError> {
        Path::from_segments([s])
    }

    /// Number of segments.
    #[inline]
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Bytes of its segments, all together (no separators or escapes).
    #[inline]
    pub fn byte_len(&self) -> usize {
        if self.is_empty() {
            return 0;
        }
        let from = if self.start == 0 { 0 } else { self.buf.ends[self.start - 1] };
        self.buf.ends[self.end - 1] - from
    }

    /// True for `/`.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Segment `i`, if any.
    #[inline]
    pub fn segment(&self, i: usize) -> Option<&[u8]> {
        if i >= self.len() {
            return None;
        }
        let idx = self.start + i;
        let s = if idx == 0 { 0 } else { self.buf.ends[idx - 1] };
        let e = self.buf.ends[idx];
        self.buf.bytes.get(s..e)
    }

    /// Segment `i` as UTF-8, if it exists and is valid UTF-8.
    pub fn segment_str(&self, i: usize) -> Option<&str> {
        self.segment(i).and_then(|s| std::str::from_utf8(s).ok())
    }

    /// Iterates over the segments.
    pub fn segments(&self) -> Segments<'_> {
        Segments { path: self, front: 0, back: self.len() }
    }

    /// Whether `prefix`'s segments are the first segments of `self`.
    pub fn starts_with(&self, prefix: &Path) -> bool {
        prefix.len() <= self.len() && prefix.segments().zip(self.segments()).all(|(a, b)| a == b)
    }

    /// Drops the first `n` segments (O(1), no allocation).
    pub fn drop(&self, n: usize) -> Path {
        let n = n.min(self.len());
        Path { buf: self.buf.clone(), start: self.start + n, end: self.end }
    }

    /// Keeps the first `n` segments (O(1), no allocation).
    pub fn take(&self, n: usize) -> Path {
        let n = n.min(self.len());
        Path { buf: self.buf.clone(), start: self.start, end: self.start + n }
    }

    /// `self ++ other`; allocates unless one side is empty.
    pub fn concat(&self, other: &Path) -> Path {
        if other.is_empty() {
            return self.clone();
        }
        if self.is_empty() {
            return other.clone();
        }
        let mut b = PathBuilder::default();
        for s in self.segments().chain(other.segments()) {
            b.push_segment(s);
        }
        b.finish()
    }

    /// The canonical textual form (finagle `Path.show`).
    pub fn show(&self) -> String {
        self.to_string()
    }
}

impl Default for Path {
    fn default() -> Self {
        Path::empty()
    }
}

/// Writes one segment with `\xNN` escapes for bytes outside the showable set.
///
/// Finagle escapes *every* byte of a segment that contains any unshowable
/// byte (`a/b` → `\x61\x2f\x62`); we escape only the offending bytes
/// (`a\x2fb`), which is easier to read and parses to the same segment.
pub(super) fn write_segment(f: &mut impl fmt::Write, seg: &[u8]) -> fmt::Result {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &b in seg {
        if is_showable(b) {
            f.write_char(b as char)?;
        } else {
            f.write_str("\\x")?;
            f.write_char(HEX[usize::from(b >> 4)] as char)?;
            f.write_char(HEX[usize::from(b & 0xf)] as char)?;
        }
    }
    Ok(())
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("/");
        }
        for seg in self.segments() {
            f.write_str("/")?;
            write_segment(f, seg)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Path({self})")
    }
}

impl PartialEq for Path {
    fn eq(&self, other: &Path) -> bool {
        self.len() == other.len() && self.segments().eq(other.segments())
    }
}

impl Eq for Path {}

impl Hash for Path {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_usize(self.len());
        for s in self.segments() {
            s.hash(state);
        }
    }
}

impl PartialOrd for Path {
    fn partial_cmp(&self, other: &Path) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Path {
    fn cmp(&self, other: &Path) -> Ordering {
        self.segments().cmp(other.segments())
    }
}

impl std::str::FromStr for Path {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Path, ParseError> {
        Path::parse(s)
    }
}

/// Iterator over a path's segments.
#[derive(Clone)]
pub struct Segments<'a> {
    path: &'a Path,
    front: usize,
    back: usize,
}

impl<'a> Iterator for Segments<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.front >= self.back {
            return None;
        }
        let s = self.path.segment(self.front);
        self.front += 1;
        s
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.back - self.front;
        (n, Some(n))
    }
}

impl DoubleEndedIterator for Segments<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.front >= self.back {
            return None;
        }
        self.back -= 1;
        self.path.segment(self.back)
    }
}

impl ExactSizeIterator for Segments<'_> {}

/// Byte cursor shared by the path, name-tree and dtab parsers (a port of
/// finagle's hand-written `NameTreeParsers`).
pub(super) struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(super) fn new(s: &'a str) -> Self {
        Cursor { s, pos: 0 }
    }

    #[inline]
    pub(super) fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    #[inline]
    pub(super) fn pos(&self) -> usize {
        self.pos
    }

    #[inline]
    pub(super) fn bump(&mut self) {
        self.pos += 1;
    }

    /// The input from `start` to the current position.
    pub(super) fn slice_from(&self, start: usize) -> &'a str {
        self.s.get(start..self.pos).unwrap_or("")
    }

    pub(super) fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    pub(super) fn maybe_eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.bump();
            true
        } else {
            false
        }
    }

    pub(super) fn eat(&mut self, b: u8, expected: &'static str) -> Result<(), ParseError> {
        if self.maybe_eat(b) {
            Ok(())
        } else {
            Err(self.expected(expected))
        }
    }

    pub(super) fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) = self.peek() {
            self.bump();
        }
    }

    /// An error at the current position.
    pub(super) fn expected(&self, expected: &'static str) -> ParseError {
        let found = match self.s.get(self.pos..).and_then(|r| r.chars().next()) {
            Some(c) => Found::Char(c),
            None if self.at_end() => Found::End,
            // Offset inside a multi-byte character: report the raw byte.
            None => Found::Char(char::from(self.peek().unwrap_or(0))),
        };
        ParseError { offset: self.pos, kind: ParseErrorKind::Expected { expected, found } }
    }

    pub(super) fn error(&self, kind: ParseErrorKind) -> ParseError {
        ParseError { offset: self.pos, kind }
    }

    pub(super) fn ensure_end(&self) -> Result<(), ParseError> {
        if self.at_end() {
            Ok(())
        } else {
            Err(self.expected("end of input"))
        }
    }

    #[inline]
    pub(super) fn at_label_char(&self) -> bool {
        matches!(self.peek(), Some(b) if is_showable(b) || b == b'\\')
    }

    fn hex(&mut self) -> Result<u8, ParseError> {
        let v = match self.peek() {
            Some(b @ b'0'..=b'9') => b - b'0',
            Some(b @ b'a'..=b'f') => b - b'a' + 10,
            Some(b @ b'A'..=b'F') => b - b'A' + 10,
            _ => return Err(self.expected("hex digit")),
        };
        self.bump();
        Ok(v)
    }

    /// One label (segment): one or more showable bytes or `\xNN` escapes.
    pub(super) fn parse_label_into(&mut self, b: &mut PathBuilder) -> Result<(), ParseError> {
        if !self.at_label_char() {
            return Err(self.expected("label char"));
        }
        while let Some(c) = self.peek() {
            if is_showable(c) {
                b.push_byte(c);
                self.bump();
            } else if c == b'\\' {
                self.bump();
                self.eat(b'x', "'x'")?;
                let hi = self.hex()?;
                let lo = self.hex()?;
                b.push_byte((hi << 4) | lo);
            } else {
                break;
            }
        }
        b.end_segment();
        Ok(())
    }

    /// `'/' labels | '/'` at the current position (no leading whitespace).
    pub(super) fn parse_path(&mut self) -> Result<Path, ParseError> {
        self.eat(b'/', "'/'")?;
        let mut b = PathBuilder::default();
        if !self.at_label_char() {
            return Ok(Path::empty());
        }
        loop {
            self.parse_label_into(&mut b)?;
            if !self.maybe_eat(b'/') {
                break;
            }
        }
        Ok(b.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Path {
        Path::parse(s).unwrap()
    }

    #[test]
    fn byte_len_counts_the_segments_of_the_view() {
        let p = Path::parse("/ab/c/def").unwrap();
        assert_eq!(p.byte_len(), 6);
        assert_eq!(p.drop(1).byte_len(), 4);
        assert_eq!(p.take(2).byte_len(), 3);
        assert_eq!(p.drop(1).take(1).byte_len(), 1);
        assert_eq!(Path::empty().byte_len(), 0);
        assert_eq!(p.drop(3).byte_len(), 0);
    }

    #[test]
    fn parse_and_show() {
        assert_eq!(p("/").len(), 0);
        assert_eq!(p("/").show(), "/");
        let a = p("/a/b/c");
        assert_eq!(a.len(), 3);
        assert_eq!(a.segment(1), Some(&b"b"[..]));
        assert_eq!(a.show(), "/a/b/c");
        assert_eq!(p("  /x  ").show(), "/x");
        let odd = p("/Az09_:.#$%-");
        assert_eq!(odd.show(), "/Az09_:.#$%-");
    }

    #[test]
    fn escapes_both_ways() {
        let a = p(r"/a\x2fb/\x20\xFF");
        assert_eq!(a.segment(0), Some(&b"a/b"[..]));
        assert_eq!(a.segment(1), Some(&[0x20u8, 0xff][..]));
        assert_eq!(a.show(), r"/a\x2fb/\x20\xff");
        assert_eq!(p(&a.show()), a);
        let h = Path::single_segment("a/b").unwrap();
        assert_eq!(h.len(), 1);
        assert_eq!(h.show(), r"/a\x2fb");
        assert_eq!(p(&h.show()), h);
        let u = Path::single_segment("héllo world*").unwrap();
        assert_eq!(u.show(), r"/h\xc3\xa9llo\x20world\x2a");
        assert_eq!(p(&u.show()), u);
        assert_eq!(u.segment_str(0), Some("héllo world*"));
        assert_eq!(Path::single_segment(""), Err(PathError::EmptySegment { index: 0 }));
    }

    #[test]
    fn errors_have_offsets() {
        let e = Path::parse("a").unwrap_err();
        assert_eq!(e.offset, 0);
        let e = Path::parse("/a/").unwrap_err();
        assert_eq!(e.offset, 3);
        assert_eq!(e.kind, ParseErrorKind::Expected { expected: "label char", found: Found::End });
        let e = Path::parse("/a b").unwrap_err();
        assert_eq!(e.offset, 3);
        let e = Path::parse("//a").unwrap_err();
        assert_eq!(e.offset, 1);
        let e = Path::parse(r"/a\x4").unwrap_err();
        assert_eq!(e.offset, 5);
        let e = Path::parse(r"/a\y41").unwrap_err();
        assert_eq!(e.offset, 3);
        let e = Path::parse("/a/*").unwrap_err();
        assert_eq!(e.offset, 3);
        assert_eq!(e.to_string(), "label char expected but '*' found at byte 3");
        let e = Path::parse("/é").unwrap_err();
        assert_eq!(e.offset, 1);
        assert_eq!(e.kind, ParseErrorKind::Expected { expected: "end of input", found: Found::Char('é') });
    }

    #[test]
    fn helpers() {
        let a = p("/a/b/c");
        assert!(a.starts_with(&p("/a/b")));
        assert!(a.starts_with(&Path::empty()));
        assert!(!a.starts_with(&p("/a/c")));
        assert!(!p("/a").starts_with(&a));
        assert_eq!(a.drop(1), p("/b/c"));
        assert_eq!(a.drop(5), Path::empty());
        assert_eq!(a.take(2), p("/a/b"));
        assert_eq!(a.drop(1).take(1), p("/b"));
        assert_eq!(a.drop(1).take(1).show(), "/b");
        assert_eq!(a.take(1).concat(&a.drop(2)), p("/a/c"));
        assert_eq!(Path::empty().concat(&a), a);
        assert_eq!(Path::from_segments(["x", "y"]).unwrap().to_string(), "/x/y");
        assert_eq!(Path::from_segments(["x", ""]), Err(PathError::EmptySegment { index: 1 }));
        let rev: Vec<&[u8]> = a.segments().rev().collect();
        assert_eq!(rev, vec![&b"c"[..], b"b", b"a"]);
        assert_eq!(format!("{:?}", a.drop(1)), "Path(/b/c)");
        use std::collections::HashSet;
        let set: HashSet<Path> = [a.drop(1), p("/b/c")].into_iter().collect();
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn random_round_trip() {
        let mut seed = 0x1234_5678_9abc_def0u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..500 {
            let n = (next() % 5) as usize;
            let segs: Vec<Vec<u8>> = (0..n)
                .map(|_| {
                    let len = 1 + (next() % 6) as usize;
                    (0..len).map(|_| (next() & 0xff) as u8).collect()
                })
                .collect();
            let path = Path::from_segments(&segs).unwrap();
            assert_eq!(Path::parse(&path.show()).unwrap(), path);
        }
    }
}
