//! `routing.toml`: loading, parsing and validation. [`load`] and [`parse`] return either a
//! [`LoadedConfig`] that passed every check or a [`ConfigErrors`] listing every problem with its
//! key path. Nothing here knows about HTTP.

pub mod edge;
pub mod jwks;
pub mod model;
pub mod records;
pub mod resilience;
pub mod secret;
pub mod validate;

pub use edge::EdgeConfig;
pub use model::*;
pub use records::{AuditConfig, Micros, UsageConfig};
pub use secret::Secret;
pub use validate::{validate, ValidateOptions};

use std::fmt;
use std::path::{Path, PathBuf};

/// The configuration as written in the repository, embedded for `demo` and for tests.
pub const EMBEDDED_ROUTING_TOML: &str = include_str!("../../routing.toml");

/// One problem, at one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// TOML key path, e.g. `clients[0].client_secret_sha256[0]`.
    pub path: String,
    /// What is wrong and, where possible, how to fix it.
    pub message: String,
}

/// Every problem found in a file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}: {}", e.path, e.message)?;
        }
        Ok(())
    }
}

impl ConfigErrors {
    fn one(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self(vec![ConfigError { path: path.into(), message: message.into() }])
    }
}

/// A validated configuration and the directory its relative paths are resolved against.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The configuration.
    pub config: Config,
    /// Directory of the file (relative paths in it are relative to this).
    pub base_dir: PathBuf,
}

impl LoadedConfig {
    /// Resolves a path written in the file.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        self.base_dir.join(p)
    }
}

/// Parses and validates TOML text.
pub fn parse(text: &str, base_dir: &Path, opts: ValidateOptions) -> Result<LoadedConfig, ConfigErrors> {
    let config = parse_unvalidated(text)?;
    validate(&config, base_dir, opts)?;
    Ok(LoadedConfig { config, base_dir: base_dir.to_path_buf() })
}

/// Parses TOML text without the semantic checks (callers that patch the config, like `demo`,
/// validate afterwards).
pub fn parse_unvalidated(text: &str) -> Result<Config, ConfigErrors> {
    let de =
        toml::Deserializer::parse(text).map_err(|e| ConfigErrors::one("(file)", e.to_string().trim().to_string()))?;
    serde_path_to_error::deserialize::<_, Config>(de).map_err(|e| {
        let path = e.path().to_string();
        let msg = e.into_inner().message().trim().to_string();
        ConfigErrors::one(if path == "." { "(file)".into() } else { path }, msg)
    })
}

/// Reads, parses and validates a file.
pub fn load(path: &Path, opts: ValidateOptions) -> Result<LoadedConfig, ConfigErrors> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigErrors::one("(file)", format!("cannot read {}: {e}", path.display())))?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let base = if base.as_os_str().is_empty() { PathBuf::from(".") } else { base };
    parse(&text, &base, opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_routing_toml_is_valid() {
        let loaded = parse(EMBEDDED_ROUTING_TOML, Path::new("."), ValidateOptions { check_environment: false });
        assert!(loaded.is_ok(), "{}", loaded.err().map(|e| e.to_string()).unwrap_or_default());
    }

    #[test]
    fn unknown_field_names_its_key() {
        let text = EMBEDDED_ROUTING_TOML.replace("[server]", "[server]\nlisten_typo = 1");
        let err = parse_unvalidated(&text).unwrap_err();
        assert_eq!(err.0.len(), 1);
        assert!(err.0[0].path.starts_with("server"), "{err}");
        assert!(err.0[0].message.contains("listen_typo"), "{err}");
    }

    #[test]
    fn sms_code_settings_are_bounded_and_every_bad_one_is_named() {
        let text = EMBEDDED_ROUTING_TOML
            .replace("code_digits = 6 ", "code_digits = 5 ")
            .replace("code_ttl_s = 300 ", "code_ttl_s = 301 ")
            .replace("max_attempts = 5 ", "max_attempts = 6 ")
            .replace("max_segments = 2 ", "max_segments = 0 ")
            .replace("default_language = \"es\"", "default_language = \"fr\"");
        let err = parse(&text, Path::new("."), ValidateOptions { check_environment: false }).unwrap_err().to_string();
        for key in ["code_digits", "code_ttl_s", "max_attempts", "max_segments", "default_language"] {
            assert!(err.contains(&format!("sms_codes.{key}")), "{key}: {err}");
        }
    }
}
