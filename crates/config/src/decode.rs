//! The schema walk's tools: reading typed values out of the positioned tree,
//! with every error and warning carrying `file:line:col: key.path`.
//!
//! Each mapping declares its keys in a table ([`KeySpec`]): supported,
//! accepted with a warning, or rejected. [`Obj::check`] runs the table over
//! the mapping's keys in document order before anything is read, so an
//! unknown or rejected key is reported where it stands, whatever else is
//! wrong further down.

use std::net::IpAddr;

use super::yaml::{join, Mark, Node, Scalar, Value};
use super::{ConfigError, Problem};

/// What corelink does with a linkerd key.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Status {
    Supported,
    /// Accepted; the reason is logged at start-up.
    Warn(&'static str),
    /// An error: ignoring it would change routing or security.
    Reject(&'static str),
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct KeySpec {
    pub name: &'static str,
    pub status: Status,
}

pub(crate) const fn ok(name: &'static str) -> KeySpec {
    KeySpec { name, status: Status::Supported }
}

pub(crate) const fn warn(name: &'static str, why: &'static str) -> KeySpec {
    KeySpec { name, status: Status::Warn(why) }
}

pub(crate) const fn reject(name: &'static str, why: &'static str) -> KeySpec {
    KeySpec { name, status: Status::Reject(why) }
}

/// Where the walk reports to.
pub(crate) struct Ctx<'o> {
    pub origin: &'o str,
    warnings: Vec<(Mark, String)>,
}

impl<'o> Ctx<'o> {
    pub fn new(origin: &'o str) -> Ctx<'o> {
        Ctx { origin, warnings: Vec::new() }
    }

    /// The warnings, in document order.
    pub fn into_warnings(mut self) -> Vec<String> {
        self.warnings.sort_by_key(|(mark, _)| (mark.line, mark.column));
        self.warnings.into_iter().map(|(_, w)| w).collect()
    }

    pub fn err(&self, mark: Mark, path: &str, problem: Problem) -> ConfigError {
        ConfigError::At {
            origin: self.origin.to_string(),
            line: mark.line,
            column: mark.column,
            key: if path.is_empty() { "(document)".into() } else { path.to_string() },
            problem,
        }
    }

    pub fn invalid(&self, mark: Mark, path: &str, message: impl Into<String>) -> ConfigError {
        self.err(mark, path, Problem::Invalid(message.into()))
    }

    pub fn warn(&mut self, mark: Mark, path: &str, message: &str) {
        let text = format!("{}:{mark}: {path}: warning: {message}", self.origin);
        self.warnings.push((mark, text));
    }
}

pub(crate) type Result<T> = std::result::Result<T, ConfigError>;

/// A value at a key path.
#[derive(Clone, Copy)]
pub(crate) struct Val<'n> {
    pub node: &'n Node,
    pub mark: Mark,
}

/// A mapping being read.
pub(crate) struct Obj<'n> {
    pub mark: Mark,
    pub path: String,
    entries: &'n [(Node, Node)],
}

impl<'n> Obj<'n> {
    pub fn new(ctx: &Ctx, node: &'n Node, path: &str) -> Result<Obj<'n>> {
        match &node.value {
            Value::Map(entries) => Ok(Obj { mark: node.mark, path: path.to_string(), entries }),
            _ => Err(type_error(ctx, node, path, "a mapping")),
        }
    }

    /// Applies the key tables: unknown and rejected keys are errors, warned
    /// keys add a warning. Keys must be scalars.
    pub fn check(&self, ctx: &mut Ctx, tables: &[&[KeySpec]]) -> Result<()> {
        for (key, value) in self.entries {
            let Some(name) = key.text() else {
                return Err(ctx.invalid(key.mark, &self.path, "a key must be a plain string"));
            };
            let path = join(&self.path, name);
            let spec = tables.iter().flat_map(|t| t.iter()).find(|s| s.name == name);
            match spec.map(|s| s.status) {
                None => {
                    let known: Vec<&'static str> = tables.iter().flat_map(|t| t.iter()).map(|s| s.name).collect();
                    return Err(ctx.err(
                        key.mark,
                        &path,
                        Problem::UnknownKey { suggestion: suggest(name, &known), known: known.join(", ") },
                    ));
                }
                Some(Status::Reject(why)) => {
                    return Err(ctx.err(key.mark, &path, Problem::Rejected(why.to_string())));
                }
                Some(Status::Warn(why)) if !value.is_null() => ctx.warn(key.mark, &path, why),
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// The value at `key`; None when absent or null (as in linkerd, where a
    /// null is the same as leaving the key out).
    pub fn get(&self, key: &str) -> Option<Val<'n>> {
        self.entries
            .iter()
            .find(|(k, _)| k.text() == Some(key))
            .map(|(_, v)| v)
            .filter(|v| !v.is_null())
            .map(|v| Val { node: v, mark: v.mark })
    }

    /// Where `key` is written (or the mapping, when absent).
    pub fn key_mark(&self, key: &str) -> Mark {
        self.entries.iter().find(|(k, _)| k.text() == Some(key)).map_or(self.mark, |(k, _)| k.mark)
    }

    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn path(&self, key: &str) -> String {
        join(&self.path, key)
    }

    pub fn require(&self, ctx: &Ctx, key: &str) -> Result<Val<'n>> {
        self.get(key).ok_or_else(|| ctx.err(self.mark, &self.path(key), Problem::Missing))
    }

    pub fn str(&self, ctx: &Ctx, key: &str) -> Result<Option<String>> {
        self.get(key).map(|v| v.str(ctx, &self.path(key))).transpose()
    }

    pub fn bool(&self, ctx: &Ctx, key: &str) -> Result<Option<bool>> {
        self.get(key).map(|v| v.bool(ctx, &self.path(key))).transpose()
    }

    pub fn f64(&self, ctx: &Ctx, key: &str) -> Result<Option<f64>> {
        self.get(key).map(|v| v.f64(ctx, &self.path(key))).transpose()
    }

    /// An integer in `min..=max`.
    pub fn int<T: TryFrom<i64>>(&self, ctx: &Ctx, key: &str, min: i64, max: i64) -> Result<Option<T>> {
        self.get(key).map(|v| v.int(ctx, &self.path(key), min, max)).transpose()
    }

    /// Milliseconds, seconds, sizes: a non-negative integer.
    pub fn u64(&self, ctx: &Ctx, key: &str) -> Result<Option<u64>> {
        self.int(ctx, key, 0, i64::MAX)
    }

    pub fn usize(&self, ctx: &Ctx, key: &str) -> Result<Option<usize>> {
        self.int(ctx, key, 0, i64::from(u32::MAX))
    }

    pub fn u32(&self, ctx: &Ctx, key: &str) -> Result<Option<u32>> {
        self.int(ctx, key, 0, i64::from(u32::MAX))
    }

    pub fn port(&self, ctx: &Ctx, key: &str) -> Result<Option<u16>> {
        self.int(ctx, key, 0, i64::from(u16::MAX))
    }

    pub fn ip(&self, ctx: &Ctx, key: &str) -> Result<Option<IpAddr>> {
        self.get(key).map(|v| v.ip(ctx, &self.path(key))).transpose()
    }

    /// A dtab-style path: starts with `/`.
    pub fn path_str(&self, ctx: &Ctx, key: &str) -> Result<Option<String>> {
        self.get(key).map(|v| v.path_str(ctx, &self.path(key))).transpose()
    }

    pub fn obj(&self, ctx: &Ctx, key: &str) -> Result<Option<Obj<'n>>> {
        self.get(key).map(|v| Obj::new(ctx, v.node, &self.path(key))).transpose()
    }

    /// A sequence of values with their paths (`key[i]`).
    pub fn seq(&self, ctx: &Ctx, key: &str) -> Result<Vec<(String, Val<'n>)>> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(v) => v.seq(ctx, &self.path(key)),
        }
    }

    /// `kind`, which selects the variant of a polymorphic object, with the
    /// position of its value.
    pub fn kind(&self, ctx: &Ctx) -> Result<Option<(String, Mark)>> {
        match self.get("kind") {
            None => Ok(None),
            Some(v) => Ok(Some((v.str(ctx, &self.path("kind"))?, v.mark))),
        }
    }
}

impl<'n> Val<'n> {
    pub fn str(&self, ctx: &Ctx, path: &str) -> Result<String> {
        match self.node.scalar() {
            Some(Scalar::Null) | None => Err(type_error(ctx, self.node, path, "a string")),
            Some(_) => Ok(self.node.text().unwrap_or_default().to_string()),
        }
    }

    pub fn bool(&self, ctx: &Ctx, path: &str) -> Result<bool> {
        match self.node.scalar() {
            Some(Scalar::Bool(b)) => Ok(b),
            _ => Err(type_error(ctx, self.node, path, "true or false")),
        }
    }

    pub fn f64(&self, ctx: &Ctx, path: &str) -> Result<f64> {
        match self.node.scalar() {
            Some(Scalar::Float(f)) if f.is_finite() => Ok(f),
            Some(Scalar::Int(i)) => Ok(i as f64),
            _ => Err(type_error(ctx, self.node, path, "a number")),
        }
    }

    pub fn int<T: TryFrom<i64>>(&self, ctx: &Ctx, path: &str, min: i64, max: i64) -> Result<T> {
        match self.node.scalar() {
            Some(Scalar::Int(i)) if (min..=max).contains(&i) => {
                T::try_from(i).map_err(|_| ctx.invalid(self.mark, path, format!("{i} is out of range")))
            }
            Some(Scalar::Int(i)) => Err(ctx.invalid(self.mark, path, format!("{i} is out of range ({min} to {max})"))),
            _ => Err(type_error(ctx, self.node, path, "an integer")),
        }
    }

    pub fn ip(&self, ctx: &Ctx, path: &str) -> Result<IpAddr> {
        let text = self.str(ctx, path)?;
        let parsed = match text.as_str() {
            "localhost" => Ok(IpAddr::from([127, 0, 0, 1])),
            other => other.parse::<IpAddr>(),
        };
        parsed.map_err(|_| type_error(ctx, self.node, path, "an IP address"))
    }

    pub fn path_str(&self, ctx: &Ctx, path: &str) -> Result<String> {
        let text = self.str(ctx, path)?;
        if !text.starts_with('/') {
            return Err(ctx.invalid(self.mark, path, format!("{text:?} is not a path: it must start with '/'")));
        }
        Ok(text)
    }

    pub fn obj(&self, ctx: &Ctx, path: &str) -> Result<Obj<'n>> {
        Obj::new(ctx, self.node, path)
    }

    pub fn seq(&self, ctx: &Ctx, path: &str) -> Result<Vec<(String, Val<'n>)>> {
        match &self.node.value {
            Value::Seq(items) => Ok(items
                .iter()
                .enumerate()
                .map(|(i, node)| (format!("{path}[{i}]"), Val { node, mark: node.mark }))
                .collect()),
            _ => Err(type_error(ctx, self.node, path, "a sequence")),
        }
    }

    pub fn is_seq(&self) -> bool {
        matches!(self.node.value, Value::Seq(_))
    }
}

pub(crate) fn type_error(ctx: &Ctx, node: &Node, path: &str, expected: &'static str) -> ConfigError {
    ctx.err(node.mark, path, Problem::Type { expected, found: node.describe() })
}

/// The known key closest to a misspelt one (edit distance ≤ 2, or equal
/// but for case).
fn suggest(name: &str, known: &[&'static str]) -> Option<&'static str> {
    known
        .iter()
        .map(|k| (k, distance(&name.to_ascii_lowercase(), &k.to_ascii_lowercase())))
        .filter(|(_, d)| *d <= 2)
        .min_by_key(|(_, d)| *d)
        .map(|(k, _)| *k)
}

fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(suggest("certpath", &["certPath", "keyPath"]), Some("certPath"));
        assert_eq!(suggest("kepath", &["certPath", "keyPath"]), Some("keyPath"));
        assert_eq!(suggest("zzz", &["certPath"]), None);
    }
}
