//! The linkerd 1.x configuration model (YAML), plus corelink's own `corelink:`
//! section for what linkerd has no key for (workers, io backend, buffers).
//!
//! Unknown keys are errors: serde's `deny_unknown_fields` reports the key with
//! its line and column, so a typo never silently changes behaviour.

mod model;

pub use model::*;

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
        Config::parse(&text, &path.display().to_string())
    }

    /// Parses and validates. `origin` names the source in error messages.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid { path: origin.to_string(), message };
        let config: Config = serde_yaml_ng::from_str(text).map_err(|e| invalid(describe_yaml_error(&e)))?;
        config.validate().map_err(invalid)?;
        Ok(config)
    }
}

/// serde_yaml_ng puts the location at the end ("... at line 3 column 5"); we
/// lead with it, as compilers do: `line:col: message`.
fn describe_yaml_error(e: &serde_yaml_ng::Error) -> String {
    match e.location() {
        Some(loc) => {
            let text = e.to_string();
            let message = text.split(" at line ").next().unwrap_or(&text);
            format!("{}:{}: {}", loc.line(), loc.column(), message)
        }
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests;
