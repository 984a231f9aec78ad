//! The linkerd 1.x configuration (YAML), plus corelink's own `corelink:`
//! section for what linkerd has no key for (workers, io backend, buffers).
//!
//! Every linkerd key is supported, accepted with a warning (it changes
//! nothing that matters here, e.g. `telemetry`), or rejected (ignoring it
//! would change routing or security). Unknown, rejected and duplicated keys,
//! type errors and invalid values are errors of the form
//! `file:line:col: key.path: problem`; warnings come back as strings of the
//! same form for the CLI to log. `docs/config.md` lists every key.
//!
//! # Why a positioned tree and a hand-written schema walk
//!
//! serde (with `deny_unknown_fields`) reports a position for an unknown key
//! only at the top of a struct: inside `kind:`-tagged enums it buffers the
//! value and loses the position, it cannot say "accepted with a warning",
//! and serde_yaml_ng, like most loaders, keeps the last of two duplicated
//! keys without a word. So parsing is two steps:
//!
//! 1. [`yaml`]: `saphyr-parser`'s event stream (a pure-Rust YAML 1.2
//!    parser whose every event carries a span) is built into a small tree in
//!    which every node keeps its line and column and mappings keep all their
//!    entries in order; a pass over the whole tree rejects duplicate keys.
//! 2. [`schema`]: a walk over that tree with one key table per mapping
//!    (supported / warn / reject, the same tables `docs/config.md` is checked
//!    against) reads typed values, so every error (`kind` included, and a
//!    string where a number goes) points at the exact node.
//!
//! serde_yaml_ng's event API is not public, and a serde pass after a schema
//! walk would duplicate every type; reading the tree directly is less code.

mod client;
mod decode;
mod model;
mod schema;
mod yaml;

pub use model::*;
pub use yaml::{locate, Mark};

use std::path::Path;

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    /// Something at one place in the file: `origin:line:column: key: problem`.
    #[error("{origin}:{line}:{column}: {key}: {problem}")]
    At {
        origin: String,
        line: usize,
        column: usize,
        /// The key's path, e.g. `routers[0].client.tls.commonName`.
        key: String,
        problem: Problem,
    },
}

/// What is wrong at a position.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Problem {
    #[error("YAML syntax error: {0}")]
    Syntax(String),
    #[error("unknown key{}", match suggestion { Some(s) => format!("; did you mean `{s}`?"), None => format!(" (expected one of: {known})") })]
    UnknownKey { suggestion: Option<&'static str>, known: String },
    #[error("duplicate key (first given at {first_line}:{first_column})")]
    DuplicateKey { first_line: usize, first_column: usize },
    /// A linkerd key or kind corelink refuses: ignoring it would change
    /// routing or security.
    #[error("rejected: {0}")]
    Rejected(String),
    #[error("unknown kind `{kind}` (expected one of: {expected})")]
    UnknownKind { kind: String, expected: String },
    #[error("expected {expected}, found {found}")]
    Type { expected: &'static str, found: String },
    #[error("missing required key")]
    Missing,
    #[error("{0}")]
    Invalid(String),
}

impl ConfigError {
    /// The problem, when the error has a position.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            ConfigError::At { problem, .. } => Some(problem),
            ConfigError::Read { .. } => None,
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::load_with_warnings(path).map(|(config, _)| config)
    }

    /// Loads and validates; the warnings (`file:line:col: key: warning: ...`)
    /// are for the caller to log.
    pub fn load_with_warnings(path: &Path) -> Result<(Config, Vec<String>), ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
        Config::parse_with_warnings(&text, &path.display().to_string())
    }

    /// Parses and validates. `origin` names the source in error messages.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        Config::parse_with_warnings(text, origin).map(|(config, _)| config)
    }

    /// Parses and validates, returning the warnings too.
    pub fn parse_with_warnings(text: &str, origin: &str) -> Result<(Config, Vec<String>), ConfigError> {
        let mut ctx = decode::Ctx::new(origin);
        let root = yaml::parse(text)
            .map_err(|e| ctx.err(e.mark, "", Problem::Syntax(e.message)))?
            .unwrap_or_else(|| yaml::Node::empty_map(Mark::START));
        yaml::check_duplicates(&root, "").map_err(|d| {
            ctx.err(d.mark, &d.path, Problem::DuplicateKey { first_line: d.first.line, first_column: d.first.column })
        })?;
        let config = schema::config(&mut ctx, &root)?;
        Ok((config, ctx.into_warnings()))
    }
}

#[cfg(test)]
mod tests;

impl Config {
    /// The effective configuration as JSON (linkerd's `/config.json`):
    /// linkerd's key names, defaults filled in, unset optional keys left
    /// out. File paths (certificates, keys, namer directories) are shown;
    /// the config holds no key material, so none can appear.
    pub fn effective_json(&self) -> String {
        fn strip_nulls(v: &mut serde_json::Value) {
            match v {
                serde_json::Value::Object(map) => {
                    map.retain(|_, v| !v.is_null());
                    map.values_mut().for_each(strip_nulls);
                }
                serde_json::Value::Array(items) => items.iter_mut().for_each(strip_nulls),
                _ => {}
            }
        }
        let mut value = match serde_json::to_value(self) {
            Ok(v) => v,
            // Every type here serializes (string keys, finite numbers).
            Err(e) => return format!("{{\"error\": {:?}}}", e.to_string()),
        };
        strip_nulls(&mut value);
        serde_json::to_string_pretty(&value).unwrap_or_default()
    }

    /// Keys this build reads and validates but does not act on yet, as
    /// warnings: traffic flows, without that behaviour. (Errors: none left;
    /// a key whose absence would silently weaken security belongs there.)
    /// None left either since `timeoutMs` and `maxConcurrentRequests` took
    /// effect; kept so the next such key has its place.
    pub fn not_yet_in_effect(&self) -> (Vec<String>, Vec<String>) {
        (Vec::new(), Vec::new())
    }

    /// Start-up warnings about client TLS that does not protect every
    /// destination, naming the router: validation off (encrypted, but anyone
    /// can impersonate the peer), or a non-strict boundPath (destinations no
    /// prefix matches go in plaintext, as linkerd did).
    pub fn tls_warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for r in &self.routers {
            let label = r.label();
            let all = r.client.tls.iter().chain(r.client.configs.iter().filter_map(|c| c.params.tls.as_ref()));
            for tls in all {
                if !tls.validates() {
                    out.push(format!(
                        "router {label}: client TLS without validation: traffic is encrypted but the peers are NOT authenticated"
                    ));
                }
                if let ClientTlsConfig::BoundPath { strict: false, .. } = tls {
                    out.push(format!(
                        "router {label}: client TLS boundPath with strict: false: bound paths that match no prefix are sent in PLAINTEXT"
                    ));
                }
            }
        }
        out.dedup();
        out
    }
}
