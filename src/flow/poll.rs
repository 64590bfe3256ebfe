//! What an RP poll at `/token` does to a transaction: pure functions of (transaction, now),
//! so every rule — `slow_down`, deadlines, when to ask the operator, collecting an approval —
//! is tested without a network or a store.

use super::{AuthResult, FailReason, Transaction, TxState};

/// The plan for one RP poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollPlan {
    /// Polled inside the interval (or overlapping another poll): store this (interval grown)
    /// and answer `slow_down`.
    SlowDown(Transaction),
    /// Store this (next poll time moved, perhaps now expired) and answer from its state.
    Answer(Transaction),
    /// Store this (claims the operator poll slot), then ask the operator.
    AskOperator(Transaction),
    /// Approved and collectable: compare-and-set to `consumed`, then issue tokens.
    Collect,
    /// Terminal: answer from the state as it is, nothing to store.
    Terminal,
}

/// Plans an RP poll at `now_ms`.
pub fn plan_poll(tx: &Transaction, now_ms: u64, slow_down_step_s: u64) -> PollPlan {
    match tx.state {
        TxState::Approved if now_ms >= tx.expires_at_ms => {
            let mut t = tx.clone();
            t.state = TxState::Expired;
            PollPlan::Answer(t)
        }
        TxState::Approved => PollPlan::Collect,
        s if !s.is_pending() => PollPlan::Terminal,
        _ if now_ms < tx.next_poll_at_ms => {
            let mut t = tx.clone();
            t.interval_s += slow_down_step_s;
            t.next_poll_at_ms = now_ms + t.interval_s * 1000;
            PollPlan::SlowDown(t)
        }
        _ => {
            let mut t = tx.clone();
            t.next_poll_at_ms = now_ms + t.interval_s * 1000;
            if now_ms >= tx.expires_at_ms {
                t.state = TxState::Expired;
                return PollPlan::Answer(t);
            }
            match &mut t.operator_ref {
                None if now_ms >= tx.push_deadline_ms => {
                    // The push may have been delivered but we never learnt its id: it timed out.
                    t.state = TxState::Expired;
                    PollPlan::Answer(t)
                }
                Some(op) if now_ms >= op.next_poll_at_ms && !tx.operator_fetch_in_flight(now_ms) => {
                    op.next_poll_at_ms = now_ms + op.interval_s * 1000;
                    PollPlan::AskOperator(t)
                }
                _ => PollPlan::Answer(t),
            }
        }
    }
}

/// What the operator said about its transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperatorAnswer {
    /// Still waiting; `slow_down` if the operator asked us to poll slower.
    Pending {
        /// Operator answered `slow_down`.
        slow_down: bool,
    },
    /// Approved, with a verified ID token.
    Approved(AuthResult),
    /// The person said no.
    Denied,
    /// The operator's transaction expired.
    Expired,
    /// Anything else.
    Failed(FailReason),
}

/// Applies the operator's answer to a pending transaction at `now_ms`; `None` if nothing changes.
pub fn apply_operator_answer(
    tx: &Transaction,
    answer: &OperatorAnswer,
    now_ms: u64,
    acr_floor: u8,
) -> Option<Transaction> {
    if !tx.state.is_pending() {
        return None;
    }
    let mut t = tx.clone();
    match answer {
        OperatorAnswer::Pending { slow_down: false } => return None,
        OperatorAnswer::Pending { slow_down: true } => {
            if let Some(op) = &mut t.operator_ref {
                op.interval_s += 5;
                op.next_poll_at_ms = now_ms + op.interval_s * 1000;
            }
        }
        OperatorAnswer::Approved(r) => {
            let achieved: u8 = r.acr.parse().unwrap_or(0);
            if achieved < acr_floor {
                // S-32: an RP minimum out of reach is an error, never a weaker token.
                t.state = TxState::Failed(FailReason::OperatorError);
            } else {
                t.state = TxState::Approved;
                t.result = Some(r.clone());
            }
        }
        OperatorAnswer::Denied => t.state = TxState::Denied,
        OperatorAnswer::Expired => t.state = TxState::Expired,
        OperatorAnswer::Failed(reason) => t.state = TxState::Failed(*reason),
    }
    Some(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tx(now: u64) -> Transaction {
        Transaction::sample("id", now)
    }

    #[test]
    fn early_poll_slows_down_and_grows_interval() {
        let t = tx(0);
        match plan_poll(&t, 4_999, 5) {
            PollPlan::SlowDown(n) => {
                assert_eq!(n.interval_s, 10);
                assert_eq!(n.next_poll_at_ms, 4_999 + 10_000);
            }
            p => panic!("{p:?}"),
        }
    }

    #[test]
    fn due_poll_asks_operator_and_claims_its_slot() {
        match plan_poll(&tx(0), 5_000, 5) {
            PollPlan::AskOperator(n) => {
                assert_eq!(n.next_poll_at_ms, 10_000);
                assert_eq!(n.operator_ref.unwrap().next_poll_at_ms, 7_000);
            }
            p => panic!("{p:?}"),
        }
    }

    #[test]
    fn operator_not_due_answers_pending() {
        let mut t = tx(0);
        t.operator_ref.as_mut().unwrap().next_poll_at_ms = 9_000;
        assert!(matches!(plan_poll(&t, 5_000, 5), PollPlan::Answer(n) if n.state == TxState::PendingPush));
    }

    #[test]
    fn past_expiry_is_expired_exactly_at_the_deadline() {
        let t = tx(0);
        assert!(matches!(plan_poll(&t, 299_999, 5), PollPlan::AskOperator(_)));
        assert!(matches!(plan_poll(&t, 300_000, 5), PollPlan::Answer(n) if n.state == TxState::Expired));
    }

    #[test]
    fn unknown_operator_id_times_out_at_push_deadline() {
        let mut t = tx(0);
        t.operator_ref = None;
        assert!(matches!(plan_poll(&t, 59_999, 5), PollPlan::Answer(n) if n.state == TxState::PendingPush));
        assert!(matches!(plan_poll(&t, 60_000, 5), PollPlan::Answer(n) if n.state == TxState::Expired));
    }

    #[test]
    fn approved_is_collected_once_then_terminal() {
        let mut t = tx(0);
        t.state = TxState::Approved;
        assert_eq!(plan_poll(&t, 1_000, 5), PollPlan::Collect);
        assert!(matches!(plan_poll(&t, 300_000, 5), PollPlan::Answer(n) if n.state == TxState::Expired));
        t.state = TxState::Consumed;
        assert_eq!(plan_poll(&t, 1_000, 5), PollPlan::Terminal);
    }

    #[test]
    fn operator_answers_move_pending_transactions_only() {
        let t = tx(0);
        let ok = AuthResult { acr: "2".into(), amr: vec!["SIM_OK".into()], auth_time: 1 };
        let a = apply_operator_answer(&t, &OperatorAnswer::Approved(ok.clone()), 1, 2).unwrap();
        assert_eq!(a.state, TxState::Approved);
        assert_eq!(a.result.as_ref(), Some(&ok));
        assert_eq!(apply_operator_answer(&a, &OperatorAnswer::Denied, 1, 2), None);
        assert_eq!(apply_operator_answer(&t, &OperatorAnswer::Denied, 1, 2).unwrap().state, TxState::Denied);
        assert_eq!(apply_operator_answer(&t, &OperatorAnswer::Pending { slow_down: false }, 1, 2), None);
        let low = apply_operator_answer(&t, &OperatorAnswer::Approved(ok), 1, 3).unwrap();
        assert_eq!(low.state, TxState::Failed(FailReason::OperatorError), "acr 2 never satisfies a floor of 3");
    }
}
