//! Simulators for `demo`, tests and benches: [`operator`] is a real OIDC/CIBA OP over HTTP whose
//! outcomes are scripted by the MSISDN; [`rp_sink`] is an RP's ping/push notification endpoint;
//! [`rp_client`] signs what a `private_key_jwt` relying party sends. Knows nothing of the
//! gateway's internals: it speaks only the wire protocol.

pub mod operator;
pub mod rp_client;
pub mod rp_sink;
pub mod smsc;

pub use operator::{Outcome, SentCallback, SimConfig, SimNotification, SimOperator};
