//! The log filter at runtime: [`super::logging`] installs the subscriber's `EnvFilter` behind a
//! `tracing_subscriber::reload` layer and hands its handle here; the admin listener reads and
//! replaces it ([`current`], [`set`]). One process has one subscriber, so one handle.
//!
//! Owns: validating and swapping the filter. Must not know: HTTP.

use std::sync::OnceLock;
use tracing_subscriber::reload::Handle;
use tracing_subscriber::{EnvFilter, Registry};

/// Why a filter cannot be read or set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogLevelError {
    /// This process logs through another subscriber (or none).
    #[error("the runtime log filter is not available in this process")]
    NotInstalled,
    /// Empty, or not an `EnvFilter` directive list.
    #[error("not a valid log filter: {0}")]
    Invalid(String),
    /// The subscriber is gone.
    #[error("the log filter could not be replaced: {0}")]
    Reload(String),
}

static HANDLE: OnceLock<Handle<EnvFilter, Registry>> = OnceLock::new();

/// Remembers the handle of the installed subscriber (first one wins).
pub(crate) fn install(handle: Handle<EnvFilter, Registry>) {
    let _ = HANDLE.set(handle);
}

/// A directive list, checked: non-empty, every directive valid (e.g. `debug`,
/// `info,mcgate::operators=debug`).
pub fn parse(directives: &str) -> Result<EnvFilter, LogLevelError> {
    let d = directives.trim();
    if d.is_empty() {
        return Err(LogLevelError::Invalid("empty".into()));
    }
    if d.chars().any(char::is_control) {
        return Err(LogLevelError::Invalid("control characters".into()));
    }
    EnvFilter::builder().parse(d).map_err(|e| LogLevelError::Invalid(e.to_string()))
}

/// The filter in force, as directives.
pub fn current() -> Result<String, LogLevelError> {
    let h = HANDLE.get().ok_or(LogLevelError::NotInstalled)?;
    h.with_current(|f| f.to_string()).map_err(|e| LogLevelError::Reload(e.to_string()))
}

/// Replaces the filter by `directives` (checked first); returns the filter now in force.
pub fn set(directives: &str) -> Result<String, LogLevelError> {
    let filter = parse(directives)?;
    let h = HANDLE.get().ok_or(LogLevelError::NotInstalled)?;
    h.reload(filter).map_err(|e| LogLevelError::Reload(e.to_string()))?;
    current()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_are_checked() {
        for ok in ["debug", "info,mcgate=debug", " warn ", "mcgate::operators=trace"] {
            assert!(parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "  ", "mcgate=verbose", "info\nerror", "[{"] {
            assert!(matches!(parse(bad), Err(LogLevelError::Invalid(_))), "{bad:?}");
        }
    }
}
