//! Observability: Prometheus metric handles ([`metrics`]) and structured logs ([`logging`]).
//! Labels come only from closed sets (endpoint, outcome, operator id, state, error kind): never
//! an MSISDN, a token or a secret.

pub mod audit;
pub mod json_lines;
pub mod log_level;
pub mod logging;
pub mod metrics;
pub mod msisdn_ref;
pub mod noc;
pub mod pseudonym;
pub mod trace;
pub mod usage;

pub use metrics::Metrics;
