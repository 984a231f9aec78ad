//! A YAML tree that remembers where every node came from.
//!
//! Built from `saphyr-parser`'s event stream (each event carries a span), so
//! every key and value keeps its line and column. Nothing is merged or
//! dropped while building: a mapping is a list of entries in document order,
//! which is what lets [`check_duplicates`] find a key given twice (most YAML
//! loaders, serde's included, silently keep the last one).
//!
//! Guards for hostile input: nesting is limited to [`MAX_DEPTH`] levels (the
//! checks that walk the tree recurse), and alias expansion to [`MAX_NODES`]
//! nodes in total (a "billion laughs" document cannot blow up memory).

use std::collections::HashMap;
use std::fmt;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

/// Deepest nesting accepted; linkerd configs need about 8.
pub(crate) const MAX_DEPTH: usize = 64;
/// Most nodes a document may hold once aliases are expanded.
pub(crate) const MAX_NODES: usize = 1_000_000;

/// A position in the source: line and column, both counted from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    pub line: usize,
    pub column: usize,
}

impl Mark {
    pub(crate) const START: Mark = Mark { line: 1, column: 1 };

    fn of(span: &Span) -> Mark {
        Mark { line: span.start.line(), column: span.start.col() + 1 }
    }
}

impl fmt::Display for Mark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub value: Value,
    pub mark: Mark,
}

#[derive(Debug, Clone)]
pub(crate) enum Value {
    /// `plain` is false for quoted and block scalars and for `!!str`: those
    /// are always strings, never numbers, booleans or null.
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

/// A scalar resolved by the YAML 1.2 core schema.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Scalar<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
}

impl Node {
    pub(crate) fn empty_map(mark: Mark) -> Node {
        Node { value: Value::Map(Vec::new()), mark }
    }

    /// The scalar's value by the YAML 1.2 core schema, or None for a
    /// sequence or mapping.
    pub(crate) fn scalar(&self) -> Option<Scalar<'_>> {
        match &self.value {
            Value::Scalar { text, plain: false } => Some(Scalar::Str(text)),
            Value::Scalar { text, plain: true } => Some(resolve_plain(text)),
            _ => None,
        }
    }

    pub(crate) fn is_null(&self) -> bool {
        matches!(self.scalar(), Some(Scalar::Null))
    }

    /// The node's text when it is a scalar (whatever its resolved type).
    pub(crate) fn text(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// How the node reads in an error message: `mapping`, `sequence`,
    /// `string "abc"`, `integer 12` ...
    pub(crate) fn describe(&self) -> String {
        match (&self.value, self.scalar()) {
            (Value::Seq(_), _) => "a sequence".into(),
            (Value::Map(_), _) => "a mapping".into(),
            (_, Some(Scalar::Null)) => "null".into(),
            (_, Some(Scalar::Bool(b))) => format!("boolean {b}"),
            (_, Some(Scalar::Int(i))) => format!("integer {i}"),
            (_, Some(Scalar::Float(_))) => format!("number {}", self.text().unwrap_or("")),
            (_, Some(Scalar::Str(s))) => format!("string {s:?}"),
            (Value::Scalar { .. }, None) => "a scalar".into(),
        }
    }

    /// Nodes in this subtree, and how deep it nests (a scalar is 0 deep).
    fn measure(&self) -> (usize, usize) {
        let children: Vec<&Node> = match &self.value {
            Value::Scalar { .. } => Vec::new(),
            Value::Seq(items) => items.iter().collect(),
            Value::Map(entries) => entries.iter().flat_map(|(k, v)| [k, v]).collect(),
        };
        let mut size = 1;
        let mut depth = 0;
        for child in children {
            let (s, d) = child.measure();
            size += s;
            depth = depth.max(d + 1);
        }
        (size, depth)
    }
}

/// Where the value at `key_path` (`routers[0].servers[1].tls.certPath`, the
/// form every config message uses) is written in `text`; `None` when the
/// text does not parse or has no such key. Lets checks that run on the
/// decoded config (certificate files, for one) point at the line that names
/// the file, as decoding errors do.
pub fn locate(text: &str, key_path: &str) -> Option<Mark> {
    let root = parse(text).ok()??;
    let mut node = &root;
    for part in key_path.split('.') {
        let (key, indices) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            let Value::Map(entries) = &node.value else { return None };
            node = &entries.iter().find(|(k, _)| k.text() == Some(key))?.1;
        }
        for index in indices.split('[').skip(1) {
            let index: usize = index.strip_suffix(']')?.parse().ok()?;
            let Value::Seq(items) = &node.value else { return None };
            node = items.get(index)?;
        }
    }
    Some(node.mark)
}

fn resolve_plain(text: &str) -> Scalar<'_> {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Scalar::Null,
        "true" | "True" | "TRUE" => return Scalar::Bool(true),
        "false" | "False" | "FALSE" => return Scalar::Bool(false),
        _ => {}
    }
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    if !unsigned.is_empty() && unsigned.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(i) = text.strip_prefix('+').unwrap_or(text).parse::<i64>() {
            return Scalar::Int(i);
        }
    }
    if let Some(hex) = text.strip_prefix("0x") {
        if let Ok(i) = i64::from_str_radix(hex, 16) {
            return Scalar::Int(i);
        }
    }
    if let Some(oct) = text.strip_prefix("0o") {
        if let Ok(i) = i64::from_str_radix(oct, 8) {
            return Scalar::Int(i);
        }
    }
    let numeric = unsigned.bytes().any(|b| b.is_ascii_digit())
        && unsigned.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    if numeric {
        if let Ok(f) = text.parse::<f64>() {
            return Scalar::Float(f);
        }
    }
    Scalar::Str(text)
}

/// Why the text is not a YAML document we can read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub mark: Mark,
    pub message: String,
}

enum Frame {
    Seq { items: Vec<Node>, mark: Mark, anchor: usize },
    Map { entries: Vec<(Node, Node)>, key: Option<Node>, mark: Mark, anchor: usize },
}

struct Anchored {
    node: Node,
    size: usize,
    depth: usize,
}

struct Builder {
    stack: Vec<Frame>,
    root: Option<Node>,
    anchors: HashMap<usize, Anchored>,
    nodes: usize,
}

impl Builder {
    /// Places a finished node; `new_nodes` is how many nodes it adds.
    fn add(&mut self, node: Node, mark: Mark, new_nodes: usize) -> Result<(), SyntaxError> {
        self.nodes += new_nodes;
        if self.nodes > MAX_NODES {
            return Err(SyntaxError { mark, message: format!("the document expands to more than {MAX_NODES} nodes") });
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                None => *key = Some(node),
                Some(k) => entries.push((k, node)),
            },
        }
        Ok(())
    }

    fn anchor(&mut self, anchor: usize, node: &Node) {
        if anchor != 0 {
            // Bounded: everything in the node passed the depth check.
            let (size, depth) = node.measure();
            let node = node.clone();
            self.anchors.insert(anchor, Anchored { node, size, depth });
        }
    }

    fn push(&mut self, frame: Frame, mark: Mark) -> Result<(), SyntaxError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(SyntaxError { mark, message: format!("nesting deeper than {MAX_DEPTH} levels") });
        }
        self.stack.push(frame);
        Ok(())
    }
}

/// Parses one YAML document. `Ok(None)` for an empty stream.
pub(crate) fn parse(text: &str) -> Result<Option<Node>, SyntaxError> {
    let mut b = Builder { stack: Vec::new(), root: None, anchors: HashMap::new(), nodes: 0 };
    let mut documents = 0usize;
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| SyntaxError {
            mark: Mark { line: e.marker().line(), column: e.marker().col() + 1 },
            message: e.info().to_string(),
        })?;
        let mark = Mark::of(&span);
        match event {
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(SyntaxError {
                        mark,
                        message: "a second YAML document: a config file holds exactly one".into(),
                    });
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                let mut plain = style == ScalarStyle::Plain;
                if let Some(tag) = tag {
                    if !tag.is_yaml_core_schema() {
                        return Err(SyntaxError { mark, message: format!("unsupported YAML tag {tag}") });
                    }
                    if tag.suffix == "str" {
                        plain = false;
                    }
                }
                let node = Node { value: Value::Scalar { text: text.into_owned(), plain }, mark };
                b.anchor(anchor, &node);
                b.add(node, mark, 1)?;
            }
            Event::SequenceStart(anchor, tag) => {
                reject_custom_tag(tag.as_deref(), mark)?;
                b.push(Frame::Seq { items: Vec::new(), mark, anchor }, mark)?;
            }
            Event::MappingStart(anchor, tag) => {
                reject_custom_tag(tag.as_deref(), mark)?;
                b.push(Frame::Map { entries: Vec::new(), key: None, mark, anchor }, mark)?;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match b.stack.pop() {
                    Some(Frame::Seq { items, mark, anchor }) => (Node { value: Value::Seq(items), mark }, anchor),
                    Some(Frame::Map { entries, mark, anchor, .. }) => {
                        (Node { value: Value::Map(entries), mark }, anchor)
                    }
                    None => return Err(SyntaxError { mark, message: "unbalanced collection end".into() }),
                };
                // Its children were counted as they arrived.
                b.anchor(anchor, &node);
                b.add(node, mark, 1)?;
            }
            Event::Alias(id) => {
                let Some(target) = b.anchors.get(&id) else {
                    return Err(SyntaxError { mark, message: "alias to an unknown anchor".into() });
                };
                if b.stack.len() + target.depth > MAX_DEPTH {
                    return Err(SyntaxError { mark, message: format!("nesting deeper than {MAX_DEPTH} levels") });
                }
                if b.nodes + target.size > MAX_NODES {
                    return Err(SyntaxError {
                        mark,
                        message: format!("the document expands to more than {MAX_NODES} nodes"),
                    });
                }
                let (node, size) = (target.node.clone(), target.size);
                b.add(node, mark, size)?;
            }
        }
    }
    Ok(b.root)
}

fn reject_custom_tag(tag: Option<&saphyr_parser::Tag>, mark: Mark) -> Result<(), SyntaxError> {
    match tag {
        Some(tag) if !tag.is_yaml_core_schema() => {
            Err(SyntaxError { mark, message: format!("unsupported YAML tag {tag}") })
        }
        _ => Ok(()),
    }
}

/// A key given twice in one mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Duplicate {
    pub path: String,
    pub mark: Mark,
    pub first: Mark,
}

/// Finds the first key (in document order) given twice in one mapping,
/// anywhere in the tree, ignored sections included.
pub(crate) fn check_duplicates(node: &Node, path: &str) -> Result<(), Duplicate> {
    match &node.value {
        Value::Scalar { .. } => Ok(()),
        Value::Seq(items) => {
            items.iter().enumerate().try_for_each(|(i, item)| check_duplicates(item, &format!("{path}[{i}]")))
        }
        Value::Map(entries) => {
            let mut seen: HashMap<&str, Mark> = HashMap::new();
            for (key, value) in entries {
                let name = key.text().unwrap_or("");
                let key_path = join(path, name);
                if let Some(first) = seen.insert(name, key.mark) {
                    return Err(Duplicate { path: key_path, mark: key.mark, first });
                }
                check_duplicates(value, &key_path)?;
            }
            Ok(())
        }
    }
}

/// `routers[0]` + `servers` = `routers[0].servers`.
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(text: &str) -> Node {
        parse(text).unwrap().unwrap()
    }

    #[test]
    fn marks_are_one_based_and_scalars_resolve() {
        let n = root("a: 1\nb:\n  - x\n  - \"2\"\n  - 2.5\n  - ~\n  - true\n");
        let Value::Map(entries) = &n.value else { panic!("map") };
        assert_eq!(entries[0].0.mark, Mark { line: 1, column: 1 });
        assert_eq!(entries[0].1.scalar(), Some(Scalar::Int(1)));
        let Value::Seq(items) = &entries[1].1.value else { panic!("seq") };
        assert_eq!(items[0].mark, Mark { line: 3, column: 5 });
        assert_eq!(items[0].scalar(), Some(Scalar::Str("x")));
        assert_eq!(items[1].scalar(), Some(Scalar::Str("2")));
        assert_eq!(items[2].scalar(), Some(Scalar::Float(2.5)));
        assert_eq!(items[3].scalar(), Some(Scalar::Null));
        assert_eq!(items[4].scalar(), Some(Scalar::Bool(true)));
        assert_eq!(resolve_plain("inf"), Scalar::Str("inf"));
        assert_eq!(resolve_plain("yes"), Scalar::Str("yes"));
    }

    #[test]
    fn duplicates_anywhere_are_found() {
        let n = root("a:\n  b: 1\n  c: 2\n  b: 3\n");
        let d = check_duplicates(&n, "").unwrap_err();
        assert_eq!(d.path, "a.b");
        assert_eq!(d.mark, Mark { line: 4, column: 3 });
        assert_eq!(d.first, Mark { line: 2, column: 3 });
    }

    #[test]
    fn aliases_expand_and_bombs_do_not() {
        let n = root("a: &x {k: 1}\nb: *x\n");
        let Value::Map(entries) = &n.value else { panic!("map") };
        assert!(matches!(&entries[1].1.value, Value::Map(e) if e.len() == 1));
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            bomb.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        let err = parse(&bomb).unwrap_err();
        assert!(err.message.contains("nodes"), "{err:?}");
    }

    #[test]
    fn syntax_errors_and_limits_have_positions() {
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.mark.line >= 1, "{err:?}");
        let deep = "[".repeat(MAX_DEPTH + 1);
        assert!(parse(&deep).unwrap_err().message.contains("nesting"));
        assert!(parse("a: 1\n---\nb: 2\n").unwrap_err().message.contains("second YAML document"));
        assert!(parse("a: !custom 1\n").unwrap_err().message.contains("tag"));
        assert_eq!(root("a: !!str 12\n").describe(), "a mapping");
    }
}
