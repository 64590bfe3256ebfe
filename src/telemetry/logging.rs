//! Structured logs through `tracing`: one JSON object per line on stderr (or human text), with
//! the level from `routing.toml` unless `RUST_LOG` says otherwise. Callers log masked MSISDNs
//! only (`Msisdn`'s `Display` masks) and never a secret, code or token.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; a second call (tests) is a no-op.
pub fn init(level: &str, format: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false);
    let _ = if format == "text" {
        builder.try_init()
    } else {
        builder.json().flatten_event(true).with_current_span(false).try_init()
    };
}
