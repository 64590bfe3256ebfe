//! Starting the SMS fallback for one transaction (shared/protocol.md §5, issue 6): the glue
//! between the pure decision ([`super::fallback::decide`]), the SIM-swap gate
//! ([`crate::operators::sim_swap`]), the anti-pumping limits ([`crate::sms::limits`]), the
//! one-time code / confirm link ([`crate::sms::otp`]), the text ([`crate::sms::message`]) and
//! the transport ([`crate::sms::SmsTransport`]). Owns [`SmsFallback`] (the gateway's SMS
//! material, built once by `app::build`) and [`start`].
//!
//! How callers use it:
//! - [`start`]`(gw, &tx, signal, timing, phase, mode)` with the transaction as it stands (not
//!   stored yet at `bc-authorize`, or the stored version) and the operator's signal class.
//!   It decides with [`super::fallback::decide`] (no second copy of the rules), then — only
//!   when the answer is `Sms` — runs the SIM-swap gate, the limits, arms the code or link,
//!   composes and submits the text. It returns [`Started::Sms`] (the transaction to store:
//!   `pending_sms`, channel `sms`, no `operator_ref`, `push_deadline_ms = expires_at_ms`,
//!   the SMSC's message id recorded) or [`Started::NoSms`] with the decision's answer.
//! - The caller stores the result (insert, or compare-and-set from the version it read).
//!   A lost compare-and-set leaves the sent link/code dead (its HMAC is only in the lost
//!   write), and the caller re-applies the SAME [`Started::Sms`] patch ([`apply_sms`]) to the
//!   re-read transaction rather than sending a second SMS.
//! - Race mode (issue 6): `bc-authorize` calls [`race`]`(gw, &tx)` after the operator accepted
//!   the push; `Some(tx)` (still `pending_push`, link armed, SMS sent) is what it stores. A race
//!   ([`racing`]) is answered by whichever channel's compare-and-set lands first; a push that
//!   fails for a "nothing sent" class or times out leaves the link alone (`pending_sms`).
//! - [`start`] never sends for a client without `sms_fallback`, for acr 3, for `access_denied`
//!   or operator configuration errors, or for a "maybe delivered" push before its deadline.

use super::fallback::{
    decide, Decision, FallbackInput, LimitGate, OperatorHealth, Phase, RpAnswer, RpPolicy, SignalClass,
    SmsPreconditions, Timing,
};
use super::{Channel, FailReason, Transaction, TxState};
use crate::app::Gateway;
use crate::msisdn::Msisdn;
use crate::operators::sim_swap::{self, SimSwapClient, UnknownPolicy};
use crate::sms::limits::{LimitError, SmsLimits};
use crate::sms::message::{self, Body, MessageInput, Purpose};
use crate::sms::otp::{SmsMode, SmsState};
use crate::sms::{OutgoingSms, SmsTransport};
use std::collections::HashMap;
use std::sync::Arc;

/// One client's SMS policy (from `[[clients]]`).
#[derive(Debug, Clone)]
pub struct ClientSmsPolicy {
    /// `sms_fallback` opt-in.
    pub sms_fallback: bool,
    /// `sim_swap_max_age_h`.
    pub sim_swap_max_age_h: u32,
    /// `sim_swap_unknown`.
    pub sim_swap_unknown: UnknownPolicy,
    /// `race`: push and SMS link at once for acr 2 (see [`race`]).
    pub race: bool,
}

/// One operator's SMS settings (from `[[operators]]`).
pub struct OperatorSms {
    /// `sms_fallback`: false = never SMS for its subscribers.
    pub sms_fallback: bool,
    /// `error_map` overrides.
    pub error_map: super::fallback::ErrorMap,
    /// Its CAMARA SIM Swap client (`None`: could not be built; every check is `unknown`).
    pub sim_swap: Option<SimSwapClient>,
}

/// The gateway's SMS fallback material.
pub struct SmsFallback {
    /// The configured transport (`None`: no `[sms.transport]`, every SMS is `sms_unavailable`).
    pub transport: Option<Arc<dyn SmsTransport>>,
    /// Anti-pumping limits (shared with the next configuration on reload).
    pub limits: Arc<SmsLimits>,
    /// Per operator, by `OperatorIndex`.
    pub operators: Vec<OperatorSms>,
    /// Per client id.
    pub clients: HashMap<String, ClientSmsPolicy>,
}

impl SmsFallback {
    /// The policy of `client_id` (an unknown client never gets SMS).
    pub fn client(&self, client_id: &str) -> ClientSmsPolicy {
        self.clients.get(client_id).cloned().unwrap_or(ClientSmsPolicy {
            sms_fallback: false,
            sim_swap_max_age_h: 240,
            sim_swap_unknown: UnknownPolicy::Deny,
            race: false,
        })
    }

    /// Whether `client_id` opted in (cheap pre-check before any work).
    pub fn opted_in(&self, client_id: &str) -> bool {
        self.clients.get(client_id).is_some_and(|c| c.sms_fallback)
    }
}

/// What [`start`] did.
#[derive(Debug, Clone)]
pub enum Started {
    /// The SMS went out: store this transaction (`pending_sms`).
    Sms(Box<Transaction>),
    /// No SMS: the decision's answer (a state for a stored transaction, or an error before
    /// the acknowledgement). `reason` is the metric label.
    NoSms {
        /// What the RP gets.
        answer: RpAnswer,
        /// Why no SMS (metric label): a `NoSms` reason or `sms_unavailable`.
        reason: &'static str,
    },
}

/// The SMS part of `sent` applied to `onto` (a re-read version of the same transaction).
pub fn apply_sms(onto: &Transaction, sent: &Transaction) -> Transaction {
    Transaction {
        state: sent.state,
        channel: sent.channel,
        operator_ref: None,
        operator_fetch_until_ms: None,
        push_deadline_ms: sent.push_deadline_ms,
        sms: sent.sms.clone(),
        ..onto.clone()
    }
}

/// The signal class of an operator OAuth error, through the operator's `error_map`.
pub fn classify(gw: &Gateway, operator: &str, error: &str, description: Option<&str>) -> SignalClass {
    match gw.operator_index(operator).and_then(|i| gw.sms.operators.get(i.0 as usize)) {
        Some(o) => o.error_map.classify(error, description),
        None => SignalClass::of_oauth_error(error),
    }
}

/// Where `tx` is in time at `now_ms`.
pub fn timing(tx: &Transaction, now_ms: u64) -> Timing {
    if now_ms >= tx.expires_at_ms {
        Timing::Expired
    } else if now_ms >= tx.push_deadline_ms {
        Timing::AfterPushDeadline
    } else {
        Timing::BeforePushDeadline
    }
}

fn input(gw: &Gateway, tx: &Transaction, signal: Option<SignalClass>, timing: Timing, phase: Phase) -> FallbackInput {
    let idx = gw.operator_index(&tx.operator);
    let backend = idx.and_then(|i| gw.operators.get(i.0 as usize));
    let op_sms = idx.and_then(|i| gw.sms.operators.get(i.0 as usize));
    let client = gw.sms.client(&tx.client_id);
    let min_acr = gw.clients.get(&tx.client_id).map_or(2, |c| c.min_acr);
    FallbackInput {
        route_found: backend.is_some(),
        push_capable: backend.is_some_and(|b| b.push_capable()),
        health: backend.map_or(OperatorHealth::Healthy, |b| b.health()),
        operator_sms: op_sms.is_some_and(|o| o.sms_fallback),
        signal,
        // The transaction's floor already includes the client's minimum.
        policy: RpPolicy { sms_fallback: client.sms_fallback, min_acr, requested_floor: tx.acr_floor },
        timing,
        phase,
        sms: SmsPreconditions { mobile_range: true, sim_swap: None, limits: None },
    }
}

fn no_sms(d: Decision) -> Started {
    match d {
        Decision::Fail { answer, no_sms, .. } => {
            Started::NoSms { answer, reason: no_sms.map_or("never_for_class", |n| n.as_str()) }
        }
        // `Push`: keep the live prompt (the caller leaves the transaction as it is).
        _ => Started::NoSms { answer: RpAnswer::State(TxState::PendingPush), reason: "push" },
    }
}

fn unavailable() -> Started {
    Started::NoSms { answer: RpAnswer::State(TxState::Failed(FailReason::SmsUnavailable)), reason: "sms_unavailable" }
}

/// Decides, gates and — when everything allows it — sends the SMS for `tx`. See the module doc.
pub async fn start(
    gw: &Gateway,
    tx: &Transaction,
    signal: Option<SignalClass>,
    timing: Timing,
    phase: Phase,
    mode: SmsMode,
    language: Option<&str>,
) -> Started {
    let started = start_inner(gw, tx, signal, timing, phase, mode, language).await;
    let op = tx.operator.as_str();
    match &started {
        Started::Sms(_) => {
            gw.metrics.sms_fallbacks.with_label_values(&[op, "sent"]).inc();
            gw.metrics.auth.fallback(op, signal.map_or("push_timeout", |s| s.as_str()));
        }
        Started::NoSms { reason, .. } => gw.metrics.sms_fallbacks.with_label_values(&[op, reason]).inc(),
    }
    gw.audit.fallback(tx, signal, if let Started::NoSms { reason, .. } = &started { reason } else { "sent" }).await;
    started
}

async fn start_inner(
    gw: &Gateway,
    tx: &Transaction,
    signal: Option<SignalClass>,
    timing: Timing,
    phase: Phase,
    mode: SmsMode,
    language: Option<&str>,
) -> Started {
    let mut input = input(gw, tx, signal, timing, phase);
    let d = decide(&input);
    if d != Decision::Sms {
        return no_sms(d);
    }
    // Never two live prompts: a transaction already on SMS is never armed again here.
    if tx.state == TxState::PendingSms || tx.sms.is_some() {
        return Started::NoSms { answer: RpAnswer::State(tx.state), reason: "already_sms" };
    }
    let Ok(msisdn) = Msisdn::from_digits(tx.msisdn) else { return unavailable() };
    let client = gw.sms.client(&tx.client_id);

    // SIM-swap gate (S-14), then the limits (consume quota last).
    let status = match gw.operator_index(&tx.operator).and_then(|i| gw.sms.operators.get(i.0 as usize)) {
        Some(OperatorSms { sim_swap: Some(c), .. }) => c.check(&msisdn, client.sim_swap_max_age_h).await,
        _ => sim_swap::SimSwapStatus::Unknown,
    };
    input.sms.sim_swap = Some(sim_swap::gate(status, client.sim_swap_unknown));
    let d = decide(&input);
    if d != Decision::Sms {
        return no_sms(d);
    }
    input.sms.limits = Some(match gw.sms.limits.admit(&tx.client_id, &msisdn).await {
        Ok(()) => LimitGate::Passed,
        Err(LimitError::Refused { reason, .. }) => reason.gate(),
        Err(LimitError::Store(e)) => {
            tracing::warn!(error = %e, "SMS limits unavailable");
            return unavailable();
        }
    });
    let d = decide(&input);
    if d != Decision::Sms {
        return no_sms(d);
    }
    // Arm the code or link on the transaction as it will be stored.
    let mut next = tx.clone();
    next.state = TxState::PendingSms;
    next.channel = Channel::Sms;
    next.operator_ref = None;
    next.operator_fetch_until_ms = None;
    next.push_deadline_ms = next.expires_at_ms;
    send(gw, tx, next, mode, language).await
}

/// Arms the code or link on `next` (the transaction as it will be stored), composes and
/// submits the text; `tx` is the transaction as it stood (its operator names the metric).
async fn send(gw: &Gateway, tx: &Transaction, mut next: Transaction, mode: SmsMode, language: Option<&str>) -> Started {
    let Some(transport) = gw.sms.transport.as_ref() else {
        tracing::warn!("SMS fallback chosen but no [sms.transport] is configured");
        return unavailable();
    };
    let Ok(msisdn) = Msisdn::from_digits(tx.msisdn) else { return unavailable() };
    let now = gw.clock.now_ms();
    let Ok((state, secret)) = gw.sms_codes.arm(&next, mode, now, language) else { return unavailable() };
    next.sms = Some(Box::new(state));
    let url;
    let host;
    let body = match mode {
        SmsMode::Link => {
            if let Err(e) = crate::sms::otp::publish_link(gw, &secret, &next).await {
                tracing::warn!(error = %e, "SMS link index unavailable");
                return unavailable();
            }
            url = crate::sms::otp::confirm_url(&gw.issuer, &secret);
            Body::Link { url: &url }
        }
        SmsMode::Otp => {
            host = message::issuer_host(&gw.issuer).unwrap_or_default();
            Body::Otp { issuer_host: &host, code: secret.expose() }
        }
    };
    let lang = next
        .sms
        .as_ref()
        .and_then(|s| s.language.as_deref())
        .and_then(crate::sms::language::Language::from_tag)
        .unwrap_or(gw.sms_codes.default_language);
    let rp_name = gw.clients.get(&tx.client_id).map_or(tx.client_id.as_str(), |c| c.name.as_str());
    let expires = next.sms.as_deref().map_or(next.expires_at_ms, |s: &SmsState| s.expires_at_ms);
    let composed = match message::compose(
        &MessageInput {
            language: lang,
            rp_name,
            purpose: Purpose::of_scope(&tx.scope),
            binding_message: tx.binding_message.as_deref(),
            minutes_left: expires.saturating_sub(now) / 60_000,
            body,
        },
        gw.sms_codes.max_segments,
    ) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "SMS text refused");
            return unavailable();
        }
    };
    match transport.submit(&OutgoingSms { to: &msisdn, text: &composed.text, reference: &tx.id }).await {
        Ok(receipt) => {
            if let Some(s) = next.sms.as_mut() {
                s.message_id = Some(receipt.message_id);
            }
            tracing::info!(msisdn = %msisdn.masked(), transport = transport.kind(), "SMS fallback sent");
            gw.usage.sms_accepted(&tx.client_id, &tx.operator).await;
            Started::Sms(Box::new(next))
        }
        Err(e) => {
            tracing::warn!(msisdn = %msisdn.masked(), error = %e, "SMS fallback not sent");
            unavailable()
        }
    }
}

/// Whether `tx` is a race (issue 6): its push is live (`pending_push`) and a confirm link is
/// armed beside it. Either channel may answer; the first compare-and-set wins.
pub fn racing(tx: &Transaction) -> bool {
    tx.state == TxState::PendingPush && tx.sms.as_ref().is_some_and(|s| s.mode == SmsMode::Link)
}

/// Race mode (issue 6): for a `race = true` client whose effective acr floor is 2 (never acr 3),
/// a CIBA transaction whose push the operator accepted (`pending_push` with an `operator_ref`)
/// ALSO gets the SMS confirm link, sent now. The SIM-swap gate and the anti-pumping limits
/// still apply: when they refuse (or nothing can be sent) the answer is `None` and just the push
/// runs. `Some`: the transaction to store — still `pending_push`, channel `push`, its
/// `operator_ref` kept, `sms` armed (see [`racing`]). Call before the first store of the
/// transaction (`bc-authorize`).
pub async fn race(gw: &Gateway, tx: &Transaction) -> Option<Transaction> {
    let client = gw.sms.client(&tx.client_id);
    let min_acr = gw.clients.get(&tx.client_id).map_or(3, |c| c.min_acr);
    if !client.race
        || !client.sms_fallback
        || tx.acr_floor.max(min_acr) != 2
        || tx.state != TxState::PendingPush
        || tx.operator_ref.is_none()
        || tx.sms.is_some()
        || tx.redirect.is_some()
    {
        return None;
    }
    let op_sms = gw.operator_index(&tx.operator).and_then(|i| gw.sms.operators.get(i.0 as usize))?;
    if !op_sms.sms_fallback {
        return None;
    }
    let msisdn = Msisdn::from_digits(tx.msisdn).ok()?;
    let status = match &op_sms.sim_swap {
        Some(c) => c.check(&msisdn, client.sim_swap_max_age_h).await,
        None => sim_swap::SimSwapStatus::Unknown,
    };
    if sim_swap::gate(status, client.sim_swap_unknown) != super::fallback::SimSwapGate::Passed {
        tracing::info!(msisdn = %msisdn.masked(), "race: SIM-swap gate refused the SMS; push only");
        return None;
    }
    match gw.sms.limits.admit(&tx.client_id, &msisdn).await {
        Ok(()) => {}
        Err(e) => {
            tracing::info!(msisdn = %msisdn.masked(), error = %e, "race: SMS refused by the limits; push only");
            return None;
        }
    }
    match send(gw, tx, tx.clone(), SmsMode::Link, None).await {
        Started::Sms(sent) => {
            gw.metrics.sms_fallbacks.with_label_values(&[tx.operator.as_str(), "sent"]).inc();
            gw.metrics.auth.fallback(tx.operator.as_str(), "race");
            gw.audit.fallback(tx, None, "race_sent").await;
            Some(*sent)
        }
        Started::NoSms { .. } => None,
    }
}

/// A race whose push failed with `signal`: the link carries on alone (`pending_sms`, no
/// operator) for the "nothing happened" classes; `None` for the others (the operator's
/// outcome — a denial, a configuration error — ends the transaction and so the link).
fn link_alone(tx: &Transaction, signal: SignalClass) -> Option<Transaction> {
    match signal {
        SignalClass::Unavailable | SignalClass::NotEnrolled | SignalClass::PushTimeout | SignalClass::NoMc => {
            Some(Transaction {
                state: TxState::PendingSms,
                channel: Channel::Sms,
                operator_ref: None,
                operator_fetch_until_ms: None,
                push_deadline_ms: tx.expires_at_ms,
                ..tx.clone()
            })
        }
        _ => None,
    }
}

/// The state a stored transaction takes for a [`Started::NoSms`] answer: `Some` when it ends
/// the transaction (an SMS-specific refusal such as `failed{sim_swap}`), `None` when the
/// caller keeps its own outcome (no SMS was ever in question).
pub fn sms_refusal_state(started: &Started) -> Option<TxState> {
    match started {
        Started::NoSms {
            answer:
                RpAnswer::State(
                    s @ TxState::Failed(
                        FailReason::SimSwap
                        | FailReason::SimSwapUnknown
                        | FailReason::RateLimited
                        | FailReason::SmsUnavailable,
                    ),
                ),
            ..
        } => Some(*s),
        _ => None,
    }
}

/// For a stored `pending_push` transaction whose operator signalled `signal`: the SMS fallback
/// as a transaction to write instead of the caller's own outcome — `pending_sms` with the SMS
/// sent, or an SMS refusal (`failed{sim_swap|sim_swap_unknown|rate_limited|sms_unavailable}`).
/// `None`: no SMS was in question (client not opted in, a class that never falls back, a
/// "maybe delivered" push before its deadline…); the caller keeps its outcome. Apply the
/// result to any re-read version with [`apply_sms`]: it is computed (and sent) once.
pub async fn after_push(gw: &Gateway, tx: &Transaction, signal: SignalClass) -> Option<Transaction> {
    if tx.state != TxState::PendingPush || !gw.sms.opted_in(&tx.client_id) {
        return None;
    }
    if racing(tx) {
        return link_alone(tx, signal);
    }
    let now = gw.clock.now_ms();
    let mode = if tx.redirect.is_some() { SmsMode::Otp } else { SmsMode::Link };
    let started = start(gw, tx, Some(signal), timing(tx, now), Phase::AfterAck, mode, None).await;
    if let Some(state) = sms_refusal_state(&started) {
        let mut t = tx.clone();
        t.state = state;
        return Some(t);
    }
    match started {
        Started::Sms(sent) => Some(*sent),
        Started::NoSms { .. } => None,
    }
}

/// Whether [`on_push_deadline`] would start the SMS fallback for `tx` at `now_ms`: a pending push
/// past its deadline, no operator fetch in flight, the client opted in to SMS.
pub fn push_deadline_due(gw: &Gateway, tx: &Transaction, now_ms: u64) -> bool {
    tx.state == TxState::PendingPush
        && timing(tx, now_ms) == Timing::AfterPushDeadline
        && !tx.operator_fetch_in_flight(now_ms)
        && gw.sms.opted_in(&tx.client_id)
}

/// The push deadline of a `pending_push` transaction (held at `version`) has passed: for an
/// opted-in client, the "maybe delivered" push falls back to SMS now (one SMS only: the
/// compare-and-set from `version` decides; a lost race leaves that SMS's link dead). Returns
/// whether the transaction was rewritten (the caller re-reads it).
pub async fn on_push_deadline(gw: &Gateway, tx: &Transaction, version: u64) -> Result<bool, crate::store::StoreError> {
    if !push_deadline_due(gw, tx, gw.clock.now_ms()) {
        return Ok(false);
    }
    let Some(next) = after_push(gw, tx, SignalClass::PushTimeout).await else { return Ok(false) };
    Ok(super::progress::cas(gw, version, tx, next).await?.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::poll::{apply_operator_answer, OperatorAnswer};
    use crate::sms::otp::{check_decision, Check, Decision};

    fn race_tx(now: u64) -> Transaction {
        let mut tx = Transaction::sample("race", now);
        tx.sms = Some(Box::new(SmsState {
            mode: SmsMode::Link,
            code_mac: "00".into(),
            attempts: 0,
            expires_at_ms: now + 60_000,
            sends: 1,
            message_id: None,
            language: None,
        }));
        tx
    }

    #[test]
    fn a_pending_push_with_an_armed_link_is_a_race_and_the_link_may_answer_it() {
        let tx = race_tx(1_000);
        assert!(racing(&tx));
        let Check::Approve(won) = check_decision(&tx, Decision::Approve, 2_000) else {
            panic!("link answers the race")
        };
        assert_eq!(won.state, TxState::Approved);
        let r = won.result.as_ref().unwrap();
        assert_eq!((r.acr.as_str(), r.amr.clone()), ("2", vec!["sms".to_string()]));
        // The operator's later approval is a no-op on the terminal state.
        let op = crate::flow::AuthResult { acr: "2".into(), amr: vec!["SIM_OK".into()], auth_time: 3 };
        assert!(apply_operator_answer(&won, &OperatorAnswer::Approved(op), 3_000, 2).is_none());
        assert!(!racing(&won));
    }

    #[test]
    fn an_operator_approval_ends_the_race_and_an_expired_link_leaves_the_push() {
        let tx = race_tx(1_000);
        let op = crate::flow::AuthResult { acr: "2".into(), amr: vec!["SIM_OK".into()], auth_time: 3 };
        let won = apply_operator_answer(&tx, &OperatorAnswer::Approved(op), 2_000, 2).unwrap();
        assert!(matches!(check_decision(&won, Decision::Approve, 2_500), Check::NotPending));
        assert!(matches!(check_decision(&tx, Decision::Approve, 61_500), Check::NotPending));
    }

    #[test]
    fn a_race_whose_push_fails_for_nothing_sent_keeps_the_link_alone() {
        let tx = race_tx(1_000);
        let alone = link_alone(&tx, SignalClass::PushTimeout).unwrap();
        assert_eq!((alone.state, alone.channel), (TxState::PendingSms, Channel::Sms));
        assert!(alone.operator_ref.is_none());
        assert!(link_alone(&tx, SignalClass::Denied).is_none());
    }
}
