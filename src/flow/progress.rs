//! The one step that moves a pending transaction forward with the operator's answer, shared by
//! the RP's poll at `/token`, the background [`super::driver`] and operator callbacks: claim the
//! operator poll slot (and its fetch lease, [`with_fetch_lease`]), ask the operator, apply the
//! answer with compare-and-set ([`ask_operator`]: a lost race re-applies it, since the operator
//! hands a result out only once). Also the pure
//! [`plan_advance`] the driver runs on its own (the RP's poll has [`super::poll::plan_poll`]),
//! and the token issuance of an approved transaction (poll and push deliver the same tokens).

use super::poll::{apply_operator_answer, OperatorAnswer};
use super::{Transaction, TxState};
use crate::app::Gateway;
use crate::msisdn::Msisdn;
use crate::store::{CasResult, StoreError, Versioned};
use crate::tokens::id_token::{Approval, IssuedTokens};

/// How often a step re-reads after losing a compare-and-set before giving up for now.
pub const CAS_ATTEMPTS: usize = 4;

/// A step failed.
#[derive(Debug, thiserror::Error)]
pub enum ProgressError {
    /// The store failed.
    #[error("transaction store: {0}")]
    Store(#[from] StoreError),
    /// A fetch was planned for a transaction without an operator transaction id (a bug).
    #[error("transaction has no operator transaction to ask about")]
    UnknownOperator,
}

/// What applying an answer did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing to change (the operator is still waiting).
    Unchanged,
    /// Written at `version`.
    Applied {
        /// New version.
        version: u64,
        /// The transaction as written.
        tx: Box<Transaction>,
    },
    /// Another writer moved the transaction first: re-read.
    Conflict,
}

/// Compare-and-set with the transition metric; `Some(new_version)` when applied.
pub async fn cas(gw: &Gateway, version: u64, old: &Transaction, new: Transaction) -> Result<Option<u64>, StoreError> {
    Ok(match cas_or_current(gw, version, old, new).await? {
        CasResult::Applied { version } => Some(version),
        CasResult::Conflict { .. } => None,
    })
}

/// [`cas`] that keeps what a lost compare-and-set hands back: the value it lost to (`None`: the
/// transaction is gone), as fresh as a read.
pub async fn cas_or_current(
    gw: &Gateway,
    version: u64,
    old: &Transaction,
    new: Transaction,
) -> Result<CasResult, StoreError> {
    let (from, to, new_state) = (old.state.as_str(), new.state.as_str(), new.state);
    let retain = new.retain_until_ms(gw.ciba.terminal_retention_s * 1000);
    let counted = gw.metrics.auth.moved(old.state, &new);
    let audit = gw.audit.transition_event(old, &new);
    match gw.store.compare_and_set(version, new, retain).await? {
        CasResult::Applied { version } => {
            counted.inc();
            gw.audit.emit(audit).await;
            if from != to {
                gw.metrics.transition(Some(from), Some(to));
                if let TxState::Failed(reason) = new_state {
                    gw.metrics.failed(reason.as_str());
                }
            }
            Ok(CasResult::Applied { version })
        }
        conflict => Ok(conflict),
    }
}

/// Applies an operator answer to `tx` (held at `version`).
pub async fn apply_answer(
    gw: &Gateway,
    version: u64,
    tx: &Transaction,
    answer: &OperatorAnswer,
) -> Result<Step, StoreError> {
    let Some(moved) = apply_operator_answer(tx, answer, gw.clock.now_ms(), tx.acr_floor) else {
        return Ok(Step::Unchanged);
    };
    Ok(match cas(gw, version, tx, moved.clone()).await? {
        Some(version) => Step::Applied { version, tx: Box::new(moved) },
        None => Step::Conflict,
    })
}

/// `claimed` (its operator poll slot planned at `now_ms`) with the fetch lease taken: until it
/// ends (or the answer is applied) no other poll, driver step or operator ping fetches.
pub fn with_fetch_lease(gw: &Gateway, mut claimed: Transaction, now_ms: u64) -> Transaction {
    claimed.operator_fetch_until_ms = Some(now_ms.saturating_add(gw.ciba.operator_fetch_lease_ms));
    claimed
}

/// Asks the operator about `claimed` (already written at `claimed_version` with its operator
/// poll slot and fetch lease taken, [`with_fetch_lease`]) and applies the answer.
pub async fn ask_operator(gw: &Gateway, claimed_version: u64, claimed: &Transaction) -> Result<Step, ProgressError> {
    let Some(op_ref) = claimed.operator_ref.as_ref() else {
        return Err(ProgressError::UnknownOperator);
    };
    let answer = match gw.operator(&claimed.operator) {
        Some(operator) => {
            crate::telemetry::trace::join_transaction(claimed.trace_id.as_deref());
            operator.poll(op_ref).await
        }
        // Removed by a reload: nobody can ask it any more, so the transaction ends now, with
        // the truth (`transaction_failed`/`operator_unavailable`), not an error at every poll.
        None => {
            tracing::warn!(operator = %claimed.operator, "the transaction's operator is no longer configured: failed");
            OperatorAnswer::Failed(super::FailReason::OperatorUnavailable)
        }
    };
    Ok(settle_fetch(gw, claimed_version, claimed.clone(), &answer).await?)
}

/// Applies the answer of a claimed fetch and releases its lease. The operator hands a result
/// out once, so a lost compare-and-set (an RP's `slow_down` write, a callback) must not drop
/// it: re-read and apply again while the transaction is still pending for the same operator
/// transaction. `Conflict` only when someone else ended it meanwhile.
async fn settle_fetch(
    gw: &Gateway,
    mut version: u64,
    mut tx: Transaction,
    answer: &OperatorAnswer,
) -> Result<Step, StoreError> {
    let lease = tx.operator_fetch_until_ms;
    let op_id = tx.operator_ref.as_ref().map(|o| o.auth_req_id.clone());
    // SMS fallback on an operator failure (sent at most once, whatever the races below).
    let fallback = match super::fallback::SignalClass::from_answer(answer) {
        Some(class) => super::sms_start::after_push(gw, &tx, class).await,
        None => None,
    };
    for _ in 0..CAS_ATTEMPTS {
        let moved = match &fallback {
            Some(sent) if tx.state.is_pending() => Some(super::sms_start::apply_sms(&tx, sent)),
            _ => apply_operator_answer(&tx, answer, gw.clock.now_ms(), tx.acr_floor),
        };
        let (next, changed) = match moved {
            Some(moved) => (moved, true),
            // Still pending: only the lease to release (if it is still ours).
            None if lease.is_some() && tx.operator_fetch_until_ms == lease => (tx.clone(), false),
            None => return Ok(Step::Unchanged),
        };
        let next = Transaction { operator_fetch_until_ms: None, ..next };
        if let Some(v) = cas(gw, version, &tx, next.clone()).await? {
            return Ok(if changed { Step::Applied { version: v, tx: Box::new(next) } } else { Step::Unchanged });
        }
        let Some(current) = gw.store.get(&tx.id).await? else { return Ok(Step::Conflict) };
        let same_operator_tx = current.value.operator_ref.as_ref().map(|o| &o.auth_req_id) == op_id.as_ref();
        if !current.value.state.is_pending() || !same_operator_tx {
            return Ok(Step::Conflict);
        }
        (tx, version) = (current.value, current.version);
    }
    Ok(Step::Conflict)
}

/// What the driver does with a transaction now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdvancePlan {
    /// Store this (expired) transaction.
    Expire(Transaction),
    /// Store this (operator poll slot claimed), then ask the operator.
    AskOperator(Transaction),
    /// Nothing to do before this time, ms.
    Wait(u64),
    /// Not pending: nothing the operator can change.
    Settled,
}

/// Plans the driver's step on `tx` at `now_ms`. Unlike the RP's poll it never touches the RP's
/// own interval (`next_poll_at_ms`), so an RP polling as well is never told `slow_down` for it.
pub fn plan_advance(tx: &Transaction, now_ms: u64) -> AdvancePlan {
    let expire = || {
        let mut t = tx.clone();
        t.state = TxState::Expired;
        AdvancePlan::Expire(t)
    };
    match tx.state {
        TxState::Approved if now_ms >= tx.expires_at_ms => expire(),
        s if !s.is_pending() => AdvancePlan::Settled,
        _ if now_ms >= tx.expires_at_ms => expire(),
        _ => match &tx.operator_ref {
            // The push may have been delivered but we never learnt its id: it times out.
            None if now_ms >= tx.push_deadline_ms => expire(),
            None => AdvancePlan::Wait(tx.push_deadline_ms.min(tx.expires_at_ms)),
            Some(_) if tx.operator_fetch_in_flight(now_ms) => {
                AdvancePlan::Wait(tx.operator_fetch_until_ms.unwrap_or(now_ms).min(tx.expires_at_ms))
            }
            Some(op) if now_ms >= op.next_poll_at_ms => {
                let mut t = tx.clone();
                if let Some(o) = &mut t.operator_ref {
                    o.next_poll_at_ms = now_ms + o.interval_s.max(1) * 1000;
                }
                AdvancePlan::AskOperator(t)
            }
            Some(op) => AdvancePlan::Wait(op.next_poll_at_ms.min(tx.expires_at_ms)),
        },
    }
}

/// One driver step on transaction `id`: expire it or ask its operator when due. Returns the
/// transaction as it stands afterwards (`None`: gone) and, while pending, when to look again.
pub async fn advance(gw: &Gateway, id: &str) -> Result<Option<(Versioned<Transaction>, Option<u64>)>, ProgressError> {
    for _ in 0..CAS_ATTEMPTS {
        let Some(current) = gw.store.get(id).await? else { return Ok(None) };
        let (tx, version) = (&current.value, current.version);
        // A driver step joins the transaction's trace (a request keeps its own).
        crate::telemetry::trace::join_transaction(tx.trace_id.as_deref());
        if super::sms_start::on_push_deadline(gw, tx, version).await? {
            continue;
        }
        match plan_advance(tx, gw.clock.now_ms()) {
            AdvancePlan::Settled => return Ok(Some((current, None))),
            AdvancePlan::Wait(at) => return Ok(Some((current, Some(at)))),
            AdvancePlan::Expire(next) => {
                cas(gw, version, tx, next).await?;
            }
            AdvancePlan::AskOperator(next) => {
                let next = with_fetch_lease(gw, next, gw.clock.now_ms());
                if let Some(claimed) = cas(gw, version, tx, next.clone()).await? {
                    ask_operator(gw, claimed, &next).await?;
                }
            }
        }
    }
    // Lost every race: others are moving it; look again soon.
    Ok(gw.store.get(id).await?.map(|v| (v, Some(gw.clock.now_ms()))))
}

/// Issues the tokens of an approved transaction; `with_auth_req_id` adds the CIBA
/// `urn:openid:params:jwt:claim:auth_req_id` claim (push and MC-SI async deliveries). The ID
/// token carries the RP's `nonce` when the request sent one (MC server-initiated, redirect flow).
pub fn issue_tokens(gw: &Gateway, tx: &Transaction, with_auth_req_id: bool) -> Result<IssuedTokens, String> {
    let result = tx.result.as_ref().ok_or("approved without a result")?;
    let client = gw.clients.get(&tx.client_id).ok_or("client vanished")?;
    let msisdn = Msisdn::from_digits(tx.msisdn).map_err(|_| "stored MSISDN invalid")?;
    let sub = gw.pairwise.subject(&client.sector, &msisdn);
    let approval = Approval {
        client_id: &tx.client_id,
        sub: &sub,
        auth_time: result.auth_time,
        acr: &result.acr,
        amr: &result.amr,
        nonce: tx.nonce.as_deref().or(tx.redirect.as_ref().map(|f| f.nonce.as_str())),
        auth_req_id: with_auth_req_id.then_some(tx.id.as_str()),
        scope: &tx.scope,
    };
    gw.tokens.issue(&approval, gw.clock.now_s()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_asks_the_operator_only_when_due_and_leaves_the_rp_interval_alone() {
        let t = Transaction::sample("id", 0);
        assert_eq!(plan_advance(&t, 1_999), AdvancePlan::Wait(2_000));
        match plan_advance(&t, 2_000) {
            AdvancePlan::AskOperator(n) => {
                assert_eq!(n.operator_ref.unwrap().next_poll_at_ms, 4_000);
                assert_eq!(n.next_poll_at_ms, t.next_poll_at_ms, "the RP's own interval is untouched");
            }
            p => panic!("{p:?}"),
        }
    }

    #[test]
    fn driver_expires_at_the_deadline_and_settles_terminal_states() {
        let mut t = Transaction::sample("id", 0);
        assert!(matches!(plan_advance(&t, 300_000), AdvancePlan::Expire(n) if n.state == TxState::Expired));
        t.state = TxState::Denied;
        assert_eq!(plan_advance(&t, 1_000), AdvancePlan::Settled);
        t.state = TxState::Approved;
        assert_eq!(plan_advance(&t, 1_000), AdvancePlan::Settled);
        assert!(matches!(plan_advance(&t, 300_000), AdvancePlan::Expire(_)), "uncollected approval expires");
    }

    #[test]
    fn a_fetch_in_flight_holds_the_operator_slot_until_its_lease_ends() {
        let mut t = Transaction::sample("id", 0);
        t.operator_fetch_until_ms = Some(12_000);
        assert_eq!(plan_advance(&t, 2_000), AdvancePlan::Wait(12_000), "slot due, but a fetch is running");
        assert!(matches!(plan_advance(&t, 12_000), AdvancePlan::AskOperator(_)), "a stale lease expires");
        assert!(matches!(crate::flow::poll::plan_poll(&t, 5_000, 5), crate::flow::poll::PollPlan::Answer(_)));
        assert!(matches!(crate::flow::poll::plan_poll(&t, 12_000, 5), crate::flow::poll::PollPlan::AskOperator(_)));
    }

    #[test]
    fn unknown_operator_id_waits_for_the_push_deadline() {
        let mut t = Transaction::sample("id", 0);
        t.operator_ref = None;
        assert_eq!(plan_advance(&t, 1_000), AdvancePlan::Wait(60_000));
        assert!(matches!(plan_advance(&t, 60_000), AdvancePlan::Expire(_)));
    }
}
