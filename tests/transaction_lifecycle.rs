//! The transaction lifecycle an RP can rely on (shared/protocol.md §7): every state's answer at
//! `/token` in one table-driven test, the retention window (terminal states readable, then
//! `invalid_grant`), `Idempotency-Key` retries of `/bc-authorize`, and `/cancel`.

mod support;

use mcgate::demo::{test_msisdn, Demo};
use std::sync::atomic::Ordering;
use std::time::Duration;
use support::{start_demo, start_demo_with, Answer, Rp};

const DONE: Duration = Duration::from_secs(15);

fn hint(demo: &Demo, operator: &str, digit: u8) -> String {
    format!("MSISDN:{}", test_msisdn(&demo.gateway, operator, digit).expect("test number").digits())
}

async fn bc_with_key(rp: &Rp, key: &str, form: &[(&str, &str)]) -> Answer {
    let r = rp
        .http
        .post(format!("{}/bc-authorize", rp.base))
        .basic_auth(&rp.client_id, Some(&rp.secret))
        .header("Idempotency-Key", key)
        .form(form)
        .send()
        .await
        .unwrap();
    support::answer(r).await
}

/// operator, scripted digit, extra form fields, expected error, expected description.
type Row = (&'static str, u8, &'static [(&'static str, &'static str)], &'static str, Option<&'static str>);

/// protocol.md §7, row by row: the state reached through the simulated person, and the one
/// answer `/token` gives for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_state_has_its_one_answer_at_the_token_endpoint() {
    let demo = start_demo().await;
    let rp = Rp::new(&demo);

    // pending_push → 400 authorization_pending (the person answers after 300 ms; ask at once).
    let ack = rp.bc_authorize(&hint(&demo, "movistar", 1)).await;
    let id = ack.body["auth_req_id"].as_str().unwrap().to_owned();
    let a = rp.token(&id).await;
    assert_eq!((a.status, a.error()), (400, "authorization_pending"), "{:?}", a.body);
    // approved → 200 tokens, exactly once; consumed → 400 invalid_grant.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (done, _) = rp.poll_until_done(&ack, DONE).await;
    assert_eq!(done.status, 200, "{:?}", done.body);
    assert_eq!(done.body["token_type"], "Bearer");
    let again = rp.token(&id).await;
    assert_eq!((again.status, again.error()), (400, "invalid_grant"), "{:?}", again.body);

    let table: [Row; 3] = [
        // denied → 400 access_denied
        ("vodafone", 2, &[], "access_denied", None),
        // expired → 400 expired_token
        ("orange", 3, &[("requested_expiry", "2")], "expired_token", None),
        // failed{reason} → 400 transaction_failed, error_description = reason
        ("movistar", 0, &[], "transaction_failed", Some("operator_token_invalid")),
    ];
    for (operator, digit, extra, error, description) in table {
        let h = hint(&demo, operator, digit);
        let mut form = vec![("scope", "openid"), ("login_hint", h.as_str())];
        form.extend_from_slice(extra);
        let ack = rp.post("/bc-authorize", &form).await;
        assert_eq!(ack.status, 200, "{operator}/{digit}: {:?}", ack.body);
        let (done, _) = rp.poll_until_done(&ack, DONE).await;
        assert_eq!((done.status, done.error()), (400, error), "{operator}/{digit}: {:?}", done.body);
        if let Some(d) = description {
            assert_eq!(done.body["error_description"], d);
        }
        // Terminal states stay readable with the same answer (never 404/409).
        let id = ack.body["auth_req_id"].as_str().unwrap();
        let later = rp.token(id).await;
        assert_eq!((later.status, later.error()), (400, error), "{operator}/{digit} re-read: {:?}", later.body);
    }

    // Unknown id and another client's id → invalid_grant, the same answer for both.
    assert_eq!(rp.token("no-such-id").await.error(), "invalid_grant");
    demo.stop().await;
}

/// An approval nobody collects before `expires_at` is `expired_token`; after the retention
/// window the id is forgotten: `invalid_grant`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uncollected_approval_expires_and_then_is_purged() {
    let demo = start_demo_with(|t| t.replace("terminal_retention_s = 300", "terminal_retention_s = 1")).await;
    let rp = Rp::new(&demo);
    let h = hint(&demo, "movistar", 1);
    let ack = rp.post("/bc-authorize", &[("scope", "openid"), ("login_hint", &h), ("requested_expiry", "1")]).await;
    let id = ack.body["auth_req_id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let a = rp.token(&id).await;
    assert_eq!((a.status, a.error()), (400, "expired_token"), "{:?}", a.body);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let a = rp.token(&id).await;
    assert_eq!((a.status, a.error()), (400, "invalid_grant"), "{:?}", a.body);
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_key_returns_the_same_transaction_without_a_second_push() {
    let demo = start_demo().await;
    let rp = Rp::new(&demo);
    let h = hint(&demo, "vodafone", 1);
    let form = [("scope", "openid"), ("login_hint", h.as_str()), ("binding_message", "Pay 10 EUR")];
    let first = bc_with_key(&rp, "order-4711", &form).await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    let pushes = demo.sims[1].stats.bc_authorize.load(Ordering::SeqCst);
    let retry = bc_with_key(&rp, "order-4711", &form).await;
    assert_eq!(retry.status, 200, "{:?}", retry.body);
    assert_eq!(retry.body["auth_req_id"], first.body["auth_req_id"]);
    assert_eq!(demo.sims[1].stats.bc_authorize.load(Ordering::SeqCst), pushes, "no second push to the phone");

    // The same key for a different request is refused; another key is a new transaction.
    let other = [("scope", "openid"), ("login_hint", h.as_str()), ("binding_message", "Pay 99 EUR")];
    let clash = bc_with_key(&rp, "order-4711", &other).await;
    assert_eq!((clash.status, clash.error()), (422, "invalid_request"), "{:?}", clash.body);
    let fresh = bc_with_key(&rp, "order-4712", &form).await;
    assert_ne!(fresh.body["auth_req_id"], first.body["auth_req_id"]);

    // A request that failed releases its key: the retry is processed anew.
    let unknown = hint(&demo, "movistar", 4);
    let bad = [("scope", "openid"), ("login_hint", unknown.as_str())];
    assert_eq!(bc_with_key(&rp, "order-9", &bad).await.error(), "unknown_user_id");
    assert_eq!(bc_with_key(&rp, "order-9", &bad).await.error(), "unknown_user_id");
    // Processed anew: the operator's "not enrolled" is remembered (push-capability cache,
    // issue 7), so the second attempt is answered without a second operator call.
    assert_eq!(demo.sims[0].stats.bc_authorize.load(Ordering::SeqCst), 1, "the first attempt reached the operator");
    assert_eq!(support::metric(&demo, "mcgate_push_capability_cache_total", &[("outcome", "hit")]).await, 1.0);

    let empty = bc_with_key(&rp, " ", &form).await;
    assert_eq!((empty.status, empty.error()), (400, "invalid_request"));

    // Polling the retried id yields the tokens once.
    let (done, _) = rp.poll_until_done(&retry, DONE).await;
    assert_eq!(done.status, 200, "{:?}", done.body);
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_withdraws_a_pending_transaction_for_good() {
    let demo = start_demo().await;
    let rp = Rp::new(&demo);
    let h = hint(&demo, "orange", 1);
    let ack = rp.bc_authorize(&h).await;
    let id = ack.body["auth_req_id"].as_str().unwrap().to_owned();
    let c = rp.post("/cancel", &[("auth_req_id", &id)]).await;
    assert_eq!(c.status, 200, "{:?}", c.body);
    assert_eq!((c.body["state"].as_str(), c.body["reason"].as_str()), (Some("failed"), Some("cancelled")));
    // The person's late approval never becomes tokens.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let a = rp.token(&id).await;
    assert_eq!((a.error(), a.body["error_description"].as_str()), ("transaction_failed", Some("cancelled")));
    // Cancelling again is harmless; a new request for the same person is not blocked.
    let again = rp.post("/cancel", &[("auth_req_id", &id)]).await;
    assert_eq!((again.status, again.body["reason"].as_str()), (200, Some("cancelled")));
    let next = rp.bc_authorize(&h).await;
    assert_eq!(next.status, 200, "{:?}", next.body);
    let (done, _) = rp.poll_until_done(&next, DONE).await;
    assert_eq!(done.status, 200);
    // A consumed transaction reports its state and stays consumed.
    let id2 = next.body["auth_req_id"].as_str().unwrap();
    let late = rp.post("/cancel", &[("auth_req_id", id2)]).await;
    assert_eq!((late.status, late.body["state"].as_str()), (200, Some("consumed")));
    // Unknown ids and missing parameters are clear errors.
    assert_eq!(rp.post("/cancel", &[("auth_req_id", "nope")]).await.error(), "invalid_grant");
    assert_eq!(rp.post("/cancel", &[]).await.error(), "invalid_request");
    demo.stop().await;
}
