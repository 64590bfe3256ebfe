//! Table-driven tests of [`decide`]: one row per row of shared/protocol.md §5's table (with and
//! without SMS), the acr rules (S-32), the "no RP parameter selects SMS" rule (S-33), the
//! "maybe delivered" timing and the SMS preconditions; plus the `error_map` classifier.

use super::*;
use crate::flow::poll::OperatorAnswer;
use crate::operators::PushError;
use SignalClass as C;

const SMS_OK: SmsPreconditions =
    SmsPreconditions { mobile_range: true, sim_swap: Some(SimSwapGate::Passed), limits: Some(LimitGate::Passed) };

/// An SMS-friendly baseline: route found, push capable and healthy, client opted in, acr 2.
fn base(signal: Option<SignalClass>) -> FallbackInput {
    FallbackInput {
        route_found: true,
        push_capable: true,
        health: OperatorHealth::Healthy,
        operator_sms: true,
        signal,
        policy: RpPolicy { sms_fallback: true, min_acr: 2, requested_floor: 2 },
        timing: Timing::BeforePushDeadline,
        phase: Phase::BeforeAck,
        sms: SMS_OK,
    }
}

fn no_sms(mut i: FallbackInput) -> FallbackInput {
    i.policy.sms_fallback = false;
    i
}

fn failed(r: FailReason) -> RpAnswer {
    RpAnswer::State(TxState::Failed(r))
}

fn err(status: u16, error: &'static str) -> RpAnswer {
    RpAnswer::Error { status, error }
}

fn answer(d: Decision) -> Option<RpAnswer> {
    match d {
        Decision::Fail { answer, .. } => Some(answer),
        _ => None,
    }
}

/// (row name, input, expected decision-or-answer).
enum Want {
    Push,
    Sms,
    Fail(RpAnswer),
}

fn check(rows: Vec<(&str, FallbackInput, Want)>) {
    for (name, input, want) in rows {
        let got = decide(&input);
        match want {
            Want::Push => assert_eq!(got, Decision::Push, "{name}"),
            Want::Sms => assert_eq!(got, Decision::Sms, "{name}"),
            Want::Fail(a) => assert_eq!(answer(got), Some(a), "{name}: {got:?}"),
        }
    }
}

#[test]
fn every_row_of_the_fallback_table() {
    let after = |mut i: FallbackInput| {
        i.phase = Phase::AfterAck;
        i
    };
    let past_deadline = |mut i: FallbackInput| {
        i.timing = Timing::AfterPushDeadline;
        i
    };
    let no_mc = {
        let mut i = base(None);
        i.push_capable = false;
        i
    };
    let breaker = {
        let mut i = base(None);
        i.health = OperatorHealth::BreakerOpen;
        i
    };
    check(vec![
        // no_mc: SMS at once; without SMS bc 403 access_denied
        ("no_mc sms", no_mc, Want::Sms),
        ("no_mc no sms", no_sms(no_mc), Want::Fail(err(403, "access_denied"))),
        // unavailable (breaker open, or the operator's signal): SMS at once; else 503 / failed
        ("breaker sms", breaker, Want::Sms),
        ("breaker no sms", no_sms(breaker), Want::Fail(err(503, "temporarily_unavailable"))),
        ("unavailable sms", base(Some(C::Unavailable)), Want::Sms),
        ("unavailable no sms bc", no_sms(base(Some(C::Unavailable))), Want::Fail(err(503, "temporarily_unavailable"))),
        (
            "unavailable no sms later",
            after(no_sms(base(Some(C::Unavailable)))),
            Want::Fail(failed(FailReason::OperatorUnavailable)),
        ),
        // not_enrolled: SMS at once; else 400 unknown_user_id / failed{not_enrolled}
        ("not_enrolled sms", base(Some(C::NotEnrolled)), Want::Sms),
        ("not_enrolled no sms bc", no_sms(base(Some(C::NotEnrolled))), Want::Fail(err(400, "unknown_user_id"))),
        (
            "not_enrolled no sms later",
            after(no_sms(base(Some(C::NotEnrolled)))),
            Want::Fail(failed(FailReason::NotEnrolled)),
        ),
        // push_timeout: SMS only after the deadline, within expires_in; else expired_token
        ("push_timeout before deadline", base(Some(C::PushTimeout)), Want::Push),
        ("push_timeout after deadline", past_deadline(base(Some(C::PushTimeout))), Want::Sms),
        ("silence past deadline", after(past_deadline(base(None))), Want::Sms),
        (
            "push_timeout no sms",
            no_sms(past_deadline(base(Some(C::PushTimeout)))),
            Want::Fail(RpAnswer::State(TxState::Expired)),
        ),
        (
            "push_timeout past expires_in",
            {
                let mut i = base(Some(C::PushTimeout));
                i.timing = Timing::Expired;
                i
            },
            Want::Fail(RpAnswer::State(TxState::Expired)),
        ),
        // denied, config, forged: never SMS
        ("denied", past_deadline(base(Some(C::Denied))), Want::Fail(RpAnswer::State(TxState::Denied))),
        ("config", base(Some(C::Config)), Want::Fail(failed(FailReason::OperatorError))),
        ("forged", after(base(Some(C::Forged))), Want::Fail(failed(FailReason::OperatorTokenInvalid))),
        // rp: never, no operator call; 400
        ("rp", base(Some(C::Rp)), Want::Fail(err(400, "invalid_request"))),
    ]);
}

#[test]
fn no_route_is_unknown_user_id_and_never_sms() {
    let mut i = base(Some(C::NotEnrolled));
    i.route_found = false;
    let d = decide(&i);
    assert_eq!(answer(d), Some(err(400, "unknown_user_id")));
    assert!(matches!(d, Decision::Fail { no_sms: Some(NoSms::NotMobileRange), .. }));
}

#[test]
fn sms_never_satisfies_acr_3_but_3_2_may_end_at_2() {
    // acr_values=3: floor 3 → never SMS (S-32): the class's answer, never a weaker token.
    let mut only3 = base(Some(C::Unavailable));
    only3.policy.requested_floor = 3;
    let d = decide(&only3);
    assert_eq!(answer(d), Some(err(503, "temporarily_unavailable")));
    assert!(matches!(d, Decision::Fail { no_sms: Some(NoSms::AcrAboveSms), .. }));
    // client min_acr 3 overrides a request for "3 2"
    let mut min3 = base(Some(C::NoMc));
    min3.policy.min_acr = 3;
    assert!(matches!(decide(&min3), Decision::Fail { no_sms: Some(NoSms::AcrAboveSms), .. }));
    // "3 2": lowest listed is 2, client min 2 → SMS may end at "2"
    let three_two = base(Some(C::Unavailable));
    assert_eq!(RpPolicy { sms_fallback: true, min_acr: 2, requested_floor: 2 }.acr_floor(), 2);
    assert_eq!(decide(&three_two), Decision::Sms);
}

#[test]
fn no_rp_parameter_selects_sms_while_push_is_up() {
    // S-33: the input has no RP parameter but the acr floor; with push up and nothing known
    // yet, the answer is push, however SMS-friendly everything else is.
    for floor in [2, 3] {
        let mut i = base(None);
        i.policy.requested_floor = floor;
        assert_eq!(decide(&i), Decision::Push);
    }
}

#[test]
fn operator_switch_and_client_opt_in_both_gate_sms() {
    let mut off = base(Some(C::Unavailable));
    off.operator_sms = false;
    assert!(matches!(decide(&off), Decision::Fail { no_sms: Some(NoSms::OperatorOff), .. }));
    assert!(matches!(
        decide(&no_sms(base(Some(C::Unavailable)))),
        Decision::Fail { no_sms: Some(NoSms::ClientOptOut), .. }
    ));
}

#[test]
fn sms_preconditions_gate_in_order_and_unknown_ones_leave_sms_eligible() {
    let with = |sms: SmsPreconditions| {
        let mut i = base(Some(C::NotEnrolled));
        i.phase = Phase::AfterAck;
        i.sms = sms;
        decide(&i)
    };
    assert_eq!(with(SmsPreconditions { mobile_range: true, sim_swap: None, limits: None }), Decision::Sms);
    assert_eq!(
        answer(with(SmsPreconditions { sim_swap: Some(SimSwapGate::Swapped), ..SMS_OK })),
        Some(failed(FailReason::SimSwap))
    );
    assert_eq!(
        answer(with(SmsPreconditions { sim_swap: Some(SimSwapGate::UnknownDenied), ..SMS_OK })),
        Some(failed(FailReason::SimSwapUnknown))
    );
    assert_eq!(
        answer(with(SmsPreconditions { limits: Some(LimitGate::Exhausted), ..SMS_OK })),
        Some(failed(FailReason::RateLimited))
    );
    // a refused number (premium, foreign) gets the class's answer without SMS
    assert_eq!(
        answer(with(SmsPreconditions { limits: Some(LimitGate::NumberRefused), ..SMS_OK })),
        Some(failed(FailReason::NotEnrolled))
    );
    assert_eq!(answer(with(SmsPreconditions { mobile_range: false, ..SMS_OK })), Some(failed(FailReason::NotEnrolled)));
}

#[test]
fn maybe_delivered_never_gives_two_live_prompts() {
    // Whatever the SMS preconditions, a maybe-delivered push before its deadline stays push.
    for sim_swap in [None, Some(SimSwapGate::Passed)] {
        for limits in [None, Some(LimitGate::Passed)] {
            let mut i = base(Some(C::PushTimeout));
            i.sms = SmsPreconditions { mobile_range: true, sim_swap, limits };
            for phase in [Phase::BeforeAck, Phase::AfterAck] {
                i.phase = phase;
                assert_eq!(decide(&i), Decision::Push);
            }
        }
    }
    // A "maybe delivered" push start is classified push_timeout, nothing-sent ones fall back at once.
    assert_eq!(SignalClass::from_push_error(&PushError::MaybeDelivered("t".into())), C::PushTimeout);
    assert!(!C::PushTimeout.nothing_sent());
    for e in [PushError::NotEnrolled, PushError::Unavailable("x".into())] {
        assert!(SignalClass::from_push_error(&e).nothing_sent());
    }
}

#[test]
fn adapter_classifications_map_to_classes() {
    assert_eq!(SignalClass::from_push_error(&PushError::Rejected("x".into())), C::Config);
    assert_eq!(SignalClass::from_push_error(&PushError::BindingMessageRejected("x".into())), C::Rp);
    assert_eq!(SignalClass::from_answer(&OperatorAnswer::Denied), Some(C::Denied));
    assert_eq!(SignalClass::from_answer(&OperatorAnswer::Expired), Some(C::PushTimeout));
    assert_eq!(SignalClass::from_answer(&OperatorAnswer::Pending { slow_down: false }), None);
    assert_eq!(SignalClass::from_answer(&OperatorAnswer::Failed(FailReason::OperatorTokenInvalid)), Some(C::Forged));
    assert_eq!(
        SignalClass::from_answer(&OperatorAnswer::Failed(FailReason::OperatorUnavailable)),
        Some(C::Unavailable)
    );
    assert_eq!(SignalClass::from_answer(&OperatorAnswer::Failed(FailReason::NotEnrolled)), Some(C::NotEnrolled));
    assert_eq!(SignalClass::from_answer(&OperatorAnswer::Failed(FailReason::OperatorError)), Some(C::Config));
}

fn map(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
    entries.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn error_map_overrides_exact_then_by_error_then_built_in() {
    let m = ErrorMap::parse(&map(&[
        ("access_denied:timeout", "push_timeout"),
        ("access_denied:user_not_registered", "not_enrolled"),
        ("invalid_request", "unavailable"),
    ]))
    .unwrap();
    assert_eq!(m.classify("access_denied", Some("timeout")), C::PushTimeout);
    assert_eq!(m.classify("access_denied", Some("user_not_registered")), C::NotEnrolled);
    assert_eq!(m.classify("access_denied", Some("user_denied")), C::Denied, "built-in");
    assert_eq!(m.classify("access_denied", None), C::Denied);
    assert_eq!(m.classify("invalid_request", Some("whatever")), C::Unavailable);
    let built_in = ErrorMap::default();
    for (e, c) in [
        ("unknown_user_id", C::NotEnrolled),
        ("Not_Found_Entity", C::NotEnrolled),
        ("server_error", C::Unavailable),
        ("temporarily_unavailable", C::Unavailable),
        ("transaction_failed", C::Unavailable),
        ("expired_token", C::PushTimeout),
        ("access_denied", C::Denied),
        ("invalid_request", C::Config),
        ("invalid_scope", C::Config),
        ("invalid_client", C::Config),
    ] {
        assert_eq!(built_in.classify(e, None), c, "{e}");
    }
}

#[test]
fn error_map_lists_every_bad_entry() {
    let errors = ErrorMap::parse(&map(&[
        ("", "config"),
        (":desc", "config"),
        ("ok", "forged"),
        ("ok2", "sms"),
        ("bad\u{7}", "config"),
        ("fine:with space", "denied"),
    ]))
    .unwrap_err();
    let keys: Vec<&str> = errors.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, vec!["", ":desc", "bad\u{7}", "ok", "ok2"]);
    assert!(matches!(errors[3].1, ErrorMapError::BadClass(_)));
    assert!(matches!(errors[0].1, ErrorMapError::BadKey(_)));
}
