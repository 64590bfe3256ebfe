//! The fallback decision (shared/protocol.md §5): ONE pure function, [`decide`], of what is
//! known about a transaction — route, operator capability and health, the operator's signal
//! class, the RP's policy, the operator's `sms_fallback` switch, timing and the SMS
//! preconditions checked so far — to [`Decision::Push`], [`Decision::Sms`] or
//! [`Decision::Fail`]. Also the operator signal classes ([`SignalClass`]), the per-operator
//! `error_map` of `routing.toml` ([`ErrorMap`], parsed and validated here) and the pure
//! classifier applying it ([`ErrorMap::classify`]).
//!
//! How the integrator calls it:
//! 1. Before the operator call: `decide(&FallbackInput { signal: None, .. })` → `Push`
//!    (start the push) or, for an operator without Mobile Connect / with its breaker open,
//!    `Sms` / `Fail` at once.
//! 2. On the operator's answer: classify it ([`SignalClass::from_push_error`],
//!    [`SignalClass::from_answer`], or [`ErrorMap::classify`] on the raw OAuth error) and
//!    decide again. `Push` then means "keep the live prompt": a "maybe delivered" signal
//!    (`push_timeout`) before the push deadline never yields `Sms` (no two live prompts).
//! 3. `Sms` is "eligible so far": run the checks still `None` in [`SmsPreconditions`] (the
//!    SIM-swap gate, `operators::sim_swap`; then the limits, `sms::limits`, which consume
//!    quota) and decide again with their results; send only when the answer is still `Sms`
//!    and every precondition is known.
//!
//! No RP parameter can select SMS (S-33): the only RP inputs are the acr floor and the client's
//! registered policy. SMS never satisfies acr 3 (S-32).

use super::{FailReason, TxState};
use std::collections::BTreeMap;

/// Operator signal classes (§5), a closed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignalClass {
    /// Operator without Mobile Connect (`push = false`).
    NoMc,
    /// Breaker open, connect refused, 5xx, `server_error`, `temporarily_unavailable`,
    /// `transaction_failed`: nothing sent.
    Unavailable,
    /// `unknown_user_id`, `Not_Found_Entity`, not enrolled: nothing sent.
    NotEnrolled,
    /// Timeout after sending, `expired_token`, silence past `push_timeout_s`: maybe delivered.
    PushTimeout,
    /// The person refused (`access_denied` after interaction).
    Denied,
    /// The operator rejected our request (`invalid_request`, `invalid_scope`, `invalid_client`).
    Config,
    /// Bad signature, `iss`, `aud`, `nonce` or bearer.
    Forged,
    /// The RP's own error: no operator call.
    Rp,
}

impl SignalClass {
    /// Config and label form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoMc => "no_mc",
            Self::Unavailable => "unavailable",
            Self::NotEnrolled => "not_enrolled",
            Self::PushTimeout => "push_timeout",
            Self::Denied => "denied",
            Self::Config => "config",
            Self::Forged => "forged",
            Self::Rp => "rp",
        }
    }

    /// Classes an `error_map` may name (the others are not operator OAuth errors).
    pub const MAPPABLE: [&'static str; 5] = ["unavailable", "not_enrolled", "push_timeout", "denied", "config"];

    /// Parses a mappable class name.
    pub fn parse_mappable(s: &str) -> Option<Self> {
        Some(match s {
            "unavailable" => Self::Unavailable,
            "not_enrolled" => Self::NotEnrolled,
            "push_timeout" => Self::PushTimeout,
            "denied" => Self::Denied,
            "config" => Self::Config,
            _ => return None,
        })
    }

    /// Whether nothing reached the person, so SMS may follow at once.
    pub fn nothing_sent(self) -> bool {
        matches!(self, Self::NoMc | Self::Unavailable | Self::NotEnrolled)
    }

    /// The class of a failed push start (the adapter's classification).
    pub fn from_push_error(e: &crate::operators::PushError) -> Self {
        use crate::operators::PushError as E;
        match e {
            E::NotEnrolled => Self::NotEnrolled,
            E::Unavailable(_) => Self::Unavailable,
            E::MaybeDelivered(_) => Self::PushTimeout,
            E::Rejected(_) => Self::Config,
            // The RP's binding message: the RP can fix it; never an SMS.
            E::BindingMessageRejected(_) => Self::Rp,
        }
    }

    /// The class of an operator's final answer; `None` for pending or approved.
    pub fn from_answer(a: &super::poll::OperatorAnswer) -> Option<Self> {
        use super::poll::OperatorAnswer as A;
        match a {
            A::Pending { .. } | A::Approved(_) => None,
            A::Denied => Some(Self::Denied),
            A::Expired => Some(Self::PushTimeout),
            A::Failed(FailReason::OperatorUnavailable) => Some(Self::Unavailable),
            A::Failed(FailReason::NotEnrolled) => Some(Self::NotEnrolled),
            A::Failed(FailReason::OperatorTokenInvalid) => Some(Self::Forged),
            A::Failed(_) => Some(Self::Config),
        }
    }

    /// Built-in class of an operator OAuth `error` code (§5's table).
    pub fn of_oauth_error(error: &str) -> Self {
        match error {
            "unknown_user_id" | "Not_Found_Entity" => Self::NotEnrolled,
            "server_error" | "temporarily_unavailable" | "transaction_failed" => Self::Unavailable,
            "expired_token" => Self::PushTimeout,
            "access_denied" => Self::Denied,
            _ => Self::Config,
        }
    }
}

/// Why an `error_map` entry is invalid (validation message; the key path is the caller's).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorMapError {
    /// The key is not `error` or `error:description`.
    #[error("key {0:?} must be \"error\" or \"error:description\" (visible ASCII, error part not empty, at most 256 characters)")]
    BadKey(String),
    /// The value is not a mappable class.
    #[error("class {0:?} unknown; use unavailable, not_enrolled, push_timeout, denied or config")]
    BadClass(String),
}

/// A per-operator `error_map`: `"error[:description]" -> class` overrides of the built-in
/// classification. An exact `error:description` entry wins over an `error` entry, which wins
/// over [`SignalClass::of_oauth_error`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorMap {
    exact: BTreeMap<(String, String), SignalClass>,
    by_error: BTreeMap<String, SignalClass>,
}

impl ErrorMap {
    /// Parses the `routing.toml` table; every bad entry is listed with its key.
    pub fn parse(raw: &BTreeMap<String, String>) -> Result<Self, Vec<(String, ErrorMapError)>> {
        let mut map = Self::default();
        let mut errors = Vec::new();
        for (key, class) in raw {
            let key_ok = !key.is_empty() && key.len() <= 256 && key.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
            let (error, description) = match key.split_once(':') {
                Some((e, d)) => (e, Some(d)),
                None => (key.as_str(), None),
            };
            if !key_ok || error.is_empty() || error.contains(' ') {
                errors.push((key.clone(), ErrorMapError::BadKey(key.clone())));
                continue;
            }
            let Some(class) = SignalClass::parse_mappable(class) else {
                errors.push((key.clone(), ErrorMapError::BadClass(class.clone())));
                continue;
            };
            match description {
                Some(d) => map.exact.insert((error.to_owned(), d.to_owned()), class),
                None => map.by_error.insert(error.to_owned(), class),
            };
        }
        if errors.is_empty() {
            Ok(map)
        } else {
            Err(errors)
        }
    }

    /// The class of an operator's OAuth error (pure).
    pub fn classify(&self, error: &str, description: Option<&str>) -> SignalClass {
        self.lookup(error, description).unwrap_or_else(|| SignalClass::of_oauth_error(error))
    }

    /// The class the map itself gives (exact `error:description`, then `error`); `None` when
    /// no entry applies, so a caller with its own built-in rules (the CIBA adapter) keeps them.
    pub fn lookup(&self, error: &str, description: Option<&str>) -> Option<SignalClass> {
        if let Some(d) = description {
            if let Some(c) = self.exact.get(&(error.to_owned(), d.to_owned())) {
                return Some(*c);
            }
        }
        self.by_error.get(error).copied()
    }
}

/// Operator health (issue 7's breaker plugs in here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OperatorHealth {
    /// Calls go through.
    #[default]
    Healthy,
    /// The breaker is open: no call is made, the operator counts as `unavailable`.
    BreakerOpen,
}

/// Where the transaction is in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timing {
    /// Before the push deadline (`push_timeout_s`).
    BeforePushDeadline,
    /// Past the push deadline, within the transaction's `expires_in`.
    AfterPushDeadline,
    /// Past `expires_in`.
    Expired,
}

/// Whether the person answers the RP at `bc-authorize` (no transaction yet) or later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Inside `bc-authorize` (or `/authorize`), before the acknowledgement.
    BeforeAck,
    /// A transaction exists; the answer is its state.
    AfterAck,
}

/// The RP's registered policy and request (no RP parameter selects SMS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RpPolicy {
    /// Client `sms_fallback` (opt-in).
    pub sms_fallback: bool,
    /// Client `min_acr` (2 or 3).
    pub min_acr: u8,
    /// Lowest acr in the request's `acr_values` ("3 2" → 2; absent → 2).
    pub requested_floor: u8,
}

impl RpPolicy {
    /// Effective floor: max(lowest listed, client `min_acr`) (shared/protocol.md §2).
    pub fn acr_floor(&self) -> u8 {
        self.requested_floor.max(self.min_acr)
    }
}

/// Result of the SIM-swap gate (after the client's unknown-policy was applied).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimSwapGate {
    /// Not swapped within the window (or unknown and the client allows it).
    Passed,
    /// Swapped within the window: `failed{sim_swap}`.
    Swapped,
    /// No definite answer and the client's policy is `deny`: `failed{sim_swap_unknown}`.
    UnknownDenied,
}

/// An SMS limit refusal as far as the decision cares (the limiter's reason, see `sms::limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitGate {
    /// Quota left.
    Passed,
    /// Rate, budget or failure limits: `failed{rate_limited}`.
    Exhausted,
    /// Country not allowed or a premium/fixed range: the number never gets SMS (S-16); the RP
    /// gets the class's answer without SMS.
    NumberRefused,
}

/// SMS preconditions known so far (`None`: not checked yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmsPreconditions {
    /// The number is in a configured operator's mobile range (a route was found from it).
    pub mobile_range: bool,
    /// SIM-swap gate result.
    pub sim_swap: Option<SimSwapGate>,
    /// Anti-pumping limits result.
    pub limits: Option<LimitGate>,
}

/// Everything [`decide`] looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FallbackInput {
    /// A route (operator) was found for the number.
    pub route_found: bool,
    /// Operator `push` capability (Mobile Connect offered).
    pub push_capable: bool,
    /// Operator health.
    pub health: OperatorHealth,
    /// Operator `sms_fallback` switch.
    pub operator_sms: bool,
    /// The operator's signal so far (`None`: the push was not tried or is still pending).
    pub signal: Option<SignalClass>,
    /// The RP's policy.
    pub policy: RpPolicy,
    /// Timing.
    pub timing: Timing,
    /// Where the RP's answer goes.
    pub phase: Phase,
    /// SMS preconditions.
    pub sms: SmsPreconditions,
}

/// Why SMS was not used (closed set, log/metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoSms {
    /// The signal class never falls back (denied, config, forged, rp).
    NeverForClass,
    /// The client did not opt in.
    ClientOptOut,
    /// The operator's `sms_fallback = false`.
    OperatorOff,
    /// The acr floor is 3: SMS never exceeds LoA2.
    AcrAboveSms,
    /// Not a configured mobile range (or refused by country/range rules).
    NotMobileRange,
    /// SIM swapped within the window.
    SimSwap,
    /// SIM-swap unknown, client policy deny.
    SimSwapUnknown,
    /// Limits or budget exhausted.
    RateLimited,
    /// Past `expires_in`.
    Expired,
}

impl NoSms {
    /// Label form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NeverForClass => "never_for_class",
            Self::ClientOptOut => "client_opt_out",
            Self::OperatorOff => "operator_off",
            Self::AcrAboveSms => "acr_above_sms",
            Self::NotMobileRange => "not_mobile_range",
            Self::SimSwap => "sim_swap",
            Self::SimSwapUnknown => "sim_swap_unknown",
            Self::RateLimited => "rate_limited",
            Self::Expired => "expired",
        }
    }
}

/// What the RP is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RpAnswer {
    /// A synchronous error at `bc-authorize`: HTTP status and OAuth `error` (no transaction).
    Error {
        /// HTTP status.
        status: u16,
        /// OAuth error code.
        error: &'static str,
    },
    /// The transaction ends in this state (`/token` answers from it, shared/protocol.md §7).
    State(TxState),
}

/// The decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Start the push, or keep waiting on the live one (never a second prompt).
    Push,
    /// Use SMS (once every precondition is known and passed: see the module doc).
    Sms,
    /// End: the class that ended it, why not SMS (`None` when SMS was never in question), and
    /// what the RP gets.
    Fail {
        /// The effective signal class (`None`: no route).
        class: Option<SignalClass>,
        /// Why SMS was not used.
        no_sms: Option<NoSms>,
        /// What the RP is told.
        answer: RpAnswer,
    },
}

/// The RP's answer for `class` when no SMS follows (§5, last column).
fn answer_without_sms(class: SignalClass, phase: Phase) -> RpAnswer {
    use RpAnswer::{Error, State};
    match (class, phase) {
        (SignalClass::NoMc, _) => Error { status: 403, error: "access_denied" },
        (SignalClass::Unavailable, Phase::BeforeAck) => Error { status: 503, error: "temporarily_unavailable" },
        (SignalClass::Unavailable, Phase::AfterAck) => State(TxState::Failed(FailReason::OperatorUnavailable)),
        (SignalClass::NotEnrolled, Phase::BeforeAck) => Error { status: 400, error: "unknown_user_id" },
        (SignalClass::NotEnrolled, Phase::AfterAck) => State(TxState::Failed(FailReason::NotEnrolled)),
        (SignalClass::PushTimeout, _) => State(TxState::Expired),
        (SignalClass::Denied, _) => State(TxState::Denied),
        (SignalClass::Config, _) => State(TxState::Failed(FailReason::OperatorError)),
        (SignalClass::Forged, _) => State(TxState::Failed(FailReason::OperatorTokenInvalid)),
        (SignalClass::Rp, _) => Error { status: 400, error: "invalid_request" },
    }
}

/// The fallback decision (pure; see the module doc for the calling sequence).
pub fn decide(i: &FallbackInput) -> Decision {
    let fail =
        |class: Option<SignalClass>, no_sms: Option<NoSms>, answer: RpAnswer| Decision::Fail { class, no_sms, answer };
    if i.signal == Some(SignalClass::Rp) {
        return fail(Some(SignalClass::Rp), None, answer_without_sms(SignalClass::Rp, i.phase));
    }
    if !i.route_found {
        // S-16: SMS only to a known operator's mobile ranges.
        return fail(None, Some(NoSms::NotMobileRange), RpAnswer::Error { status: 400, error: "unknown_user_id" });
    }
    let class = if !i.push_capable {
        SignalClass::NoMc
    } else if i.health == OperatorHealth::BreakerOpen && i.signal.is_none() {
        SignalClass::Unavailable
    } else {
        match i.signal {
            // Silence past the push deadline is a push timeout.
            None if i.timing != Timing::BeforePushDeadline => SignalClass::PushTimeout,
            None => return Decision::Push,
            Some(c) => c,
        }
    };
    let without = |no_sms: NoSms| fail(Some(class), Some(no_sms), answer_without_sms(class, i.phase));
    if matches!(class, SignalClass::Denied | SignalClass::Config | SignalClass::Forged) {
        return without(NoSms::NeverForClass);
    }
    if i.timing == Timing::Expired {
        return fail(Some(class), Some(NoSms::Expired), RpAnswer::State(TxState::Expired));
    }
    if !i.policy.sms_fallback {
        return without(NoSms::ClientOptOut);
    }
    if !i.operator_sms {
        return without(NoSms::OperatorOff);
    }
    if i.policy.acr_floor() > 2 {
        return without(NoSms::AcrAboveSms);
    }
    if !i.sms.mobile_range || i.sms.limits == Some(LimitGate::NumberRefused) {
        return without(NoSms::NotMobileRange);
    }
    // Maybe delivered: the prompt may be live until the push deadline.
    if class == SignalClass::PushTimeout && i.timing == Timing::BeforePushDeadline {
        return Decision::Push;
    }
    match i.sms.sim_swap {
        Some(SimSwapGate::Swapped) => {
            return fail(Some(class), Some(NoSms::SimSwap), RpAnswer::State(TxState::Failed(FailReason::SimSwap)))
        }
        Some(SimSwapGate::UnknownDenied) => {
            return fail(
                Some(class),
                Some(NoSms::SimSwapUnknown),
                RpAnswer::State(TxState::Failed(FailReason::SimSwapUnknown)),
            )
        }
        Some(SimSwapGate::Passed) | None => {}
    }
    if i.sms.limits == Some(LimitGate::Exhausted) {
        return fail(Some(class), Some(NoSms::RateLimited), RpAnswer::State(TxState::Failed(FailReason::RateLimited)));
    }
    Decision::Sms
}

#[cfg(test)]
mod tests;
