//! mcgate: a Mobile Connect aggregator gateway.
//!
//! Relying parties (RPs) call one OpenID Connect / CIBA / Mobile Connect shaped endpoint; mcgate
//! finds the person's operator from the MSISDN (ported numbers first, then the longest prefix),
//! routes the authentication to that operator's Mobile Connect backend, verifies what comes back
//! and issues its own ID token.
//!
//! # Layout
//! - [`clock`]: wall clock and randomness seams (the only place that reads the system time).
//! - [`config`]: `routing.toml` types, loading and whole-file validation.
//! - [`msisdn`]: the [`msisdn::Msisdn`] type: every accepted input form → E.164.
//! - [`keyed_hash`]: HMAC-SHA-256 with a precomputed key state, behind every keyed hash of an
//!   MSISDN or a secret (store keys, audit pseudonyms, log references).
//! - [`discovery`]: `Directory::route(&Msisdn) -> Route`: ported table, then longest prefix.
//! - [`rp`]: the RP-facing HTTP surface (metadata, JWKS, discovery API, bc-authorize, token).
//! - [`flow`]: the transaction state machine, its shared progress step, the ping/push driver
//!   and RP notifications.
//! - [`operators`]: the `OperatorBackend` trait and the Mobile Connect/CIBA adapter.
//! - [`tokens`]: signing keys, JWKS, gateway ID tokens, pairwise subjects, subscriber ids.
//! - [`store`]: the `Store` trait (compare-and-set transactions, replay guards) and its impls.
//! - [`telemetry`]: Prometheus metrics and JSON logs.
//! - [`server`]: listeners, TLS, per-request plumbing, admin endpoints, graceful shutdown.
//! - [`sim`]: the operator simulator used by `demo`, tests and benches.
//! - [`sms`]: the SMS fallback channel: transports, codes and links, message text, limits.
//! - [`demo`]: the embedded-defaults gateway with three simulated operators.
//! - [`app`]: wiring: builds the shared [`app::Gateway`] from a validated config.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod app;
pub mod clock;
pub mod config;
pub mod demo;
pub mod discovery;
pub mod flow;
pub mod keyed_hash;
pub mod msisdn;
pub mod operators;
pub mod rp;
pub mod server;
pub mod sim;
pub mod sms;
pub mod store;
pub mod telemetry;
pub mod tokens;
