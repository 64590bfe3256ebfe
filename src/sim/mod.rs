//! Simulators for `demo`, tests and benches: [`operator`] is a real OIDC/CIBA OP over HTTP whose
//! outcomes are scripted by the MSISDN. Knows nothing of the gateway's internals: it speaks only
//! the wire protocol an operator speaks.

pub mod operator;

pub use operator::{Outcome, SimConfig, SimOperator};
