//! Simulators for `demo`, tests and benches: [`operator`] is a real OIDC/CIBA OP over HTTP whose
//! outcomes are scripted by the MSISDN; [`rp_sink`] is an RP's ping/push notification endpoint. Knows nothing of the gateway's internals: it speaks only
//! the wire protocol an operator speaks.

pub mod operator;
pub mod rp_sink;

pub use operator::{Outcome, SentCallback, SimConfig, SimNotification, SimOperator};
