//! The operator side of Mobile Connect server-initiated (`mode = "mc_si"`): an RP doing plain
//! CIBA poll (`/bc-authorize` + `/token`) against the demo's `mc_si_demo` operator, whose
//! simulator checks the gateway's signed request object against the gateway's `/jwks` and pushes
//! the person's answer to `/op/mc_si_demo/notify`. Covers every scripted outcome the RP can see,
//! the nonce check on the pushed ID token, the callback's bearer, unknown ids and duplicates.

mod support;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mcgate::demo::{test_msisdn, Demo};
use mcgate::sim::operator::SiRequest;
use mcgate::sim::SimOperator;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use support::{answer, claims, metric, start_demo, Answer, Rp};

const OP: &str = "mc_si_demo";
const DONE: Duration = Duration::from_secs(15);

fn msisdn(demo: &Demo, digit: u8) -> String {
    test_msisdn(&demo.gateway, OP, digit).expect("test number").digits()
}

fn sim(demo: &Demo) -> &Arc<SimOperator> {
    demo.sims.iter().find(|s| s.operator_id() == OP).expect("mc_si_demo simulator")
}

/// The request the simulator accepted for `digits` (the last one).
fn si_request(demo: &Demo, digits: &str) -> SiRequest {
    let hint = format!("MSISDN:{digits}");
    sim(demo).si_requests().into_iter().rev().find(|r| r.claims["login_hint"] == hint.as_str()).expect("SI request")
}

/// POSTs a callback body to `/op/mc_si_demo/notify` with `bearer`.
async fn notify(rp: &Rp, bearer: &str, body: &Value) -> Answer {
    let r = rp
        .http
        .post(format!("{}/op/{OP}/notify", rp.base))
        .bearer_auth(bearer)
        .json(body)
        .send()
        .await
        .expect("notify");
    answer(r).await
}

/// Waits (bounded) until the simulator has made `n` callbacks.
async fn callbacks(demo: &Demo, n: usize) -> Vec<mcgate::sim::SentCallback> {
    let end = tokio::time::Instant::now() + DONE;
    loop {
        let sent = sim(demo).sent();
        if sent.len() >= n {
            return sent;
        }
        assert!(tokio::time::Instant::now() < end, "only {} of {n} operator callbacks", sent.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_carry_the_operators_acr_amr_and_the_request_object_is_ours() {
    let demo = start_demo().await;
    let rp = Rp::new(&demo);
    let digits = msisdn(&demo, 1);
    let ack = rp
        .post(
            "/bc-authorize",
            &[
                ("scope", "openid mc_authn"),
                ("login_hint", &format!("MSISDN:{digits}")),
                ("binding_message", "Sign in 42"),
            ],
        )
        .await;
    assert_eq!(ack.status, 200, "{:?}", ack.body);
    let auth_req_id = ack.body["auth_req_id"].as_str().unwrap().to_owned();
    let (done, _) = rp.poll_until_done(&ack, DONE).await;
    assert_eq!(done.status, 200, "{:?}", done.body);
    let c = claims(done.body["id_token"].as_str().unwrap());
    assert_eq!((c["acr"].as_str(), c["amr"].clone()), (Some("2"), json!(["SIM_OK"])));
    assert!(c.get("nonce").is_none(), "our operator-side nonce never reaches the RP: {c}");
    assert_eq!(sim(&demo).stats.bc_authorize.load(Ordering::SeqCst), 0, "no CIBA call to an mc_si operator");
    assert_eq!(sim(&demo).stats.token.load(Ordering::SeqCst), 0, "nothing polls an mc_si operator");

    // PIN: acr 3 only because the operator's token says so.
    let pin = rp
        .post(
            "/bc-authorize",
            &[
                ("scope", "openid mc_authn"),
                ("login_hint", &format!("MSISDN:{}", msisdn(&demo, 7))),
                ("acr_values", "3"),
            ],
        )
        .await;
    let (done, _) = rp.poll_until_done(&pin, DONE).await;
    let c = claims(done.body["id_token"].as_str().expect("tokens"));
    assert_eq!((c["acr"].as_str(), c["amr"].clone()), (Some("3"), json!(["SIM_PIN"])));

    // The request object verifies against the gateway's published keys and carries our values.
    let req = si_request(&demo, &digits);
    let jwks: JwkSet = rp.http.get(format!("{}/jwks", rp.base)).send().await.unwrap().json().await.unwrap();
    let header = jsonwebtoken::decode_header(&req.request).unwrap();
    assert_eq!(header.alg, Algorithm::RS256);
    let key = DecodingKey::from_jwk(jwks.find(&header.kid.unwrap()).expect("kid in /jwks")).unwrap();
    let mut v = Validation::new(Algorithm::RS256);
    v.set_audience(&[sim(&demo).issuer()]);
    v.set_issuer(&["mcgate"]);
    v.set_required_spec_claims(&["exp", "iat", "nbf", "iss", "aud"]);
    let rc = jsonwebtoken::decode::<Value>(&req.request, &key, &v).expect("request object verifies").claims;
    assert_eq!(rc["version"], "mc_si_r2_v1.0");
    assert_eq!(rc["response_type"], "mc_si_async_code");
    assert_eq!(rc["client_id"], "mcgate");
    assert_eq!(rc["scope"], "openid mc_authn");
    assert_eq!(rc["login_hint"], format!("MSISDN:{digits}"));
    assert_eq!(rc["acr_values"], "2");
    assert_eq!(rc["binding_message"], "Sign in 42");
    assert_eq!(rc["notification_uri"], format!("{}/op/{OP}/notify", demo.public_url));
    assert_eq!(rc["exp"].as_u64().unwrap() - rc["iat"].as_u64().unwrap(), 60, "si_request_lifetime_s");
    assert!(rc["jti"].as_str().is_some_and(|j| j.len() >= 22));
    // Our nonce: derived from the transaction's stored notification hash, fresh per transaction.
    let tx = demo.gateway.store.get(&auth_req_id).await.unwrap().expect("transaction").value;
    let nonce = mcgate::operators::mobile_connect::si_nonce(tx.operator_notify_sha256.as_deref().unwrap());
    assert_eq!(rc["nonce"], nonce.as_str());
    assert_ne!(rc["nonce"], si_request(&demo, &msisdn(&demo, 7)).claims["nonce"]);
    let token = rc["client_notification_token"].as_str().unwrap();
    assert!(token.starts_with(&format!("{auth_req_id}.")), "the per-transaction <id>.<secret> token");
    // The pushed ID token carried that nonce.
    let sent = callbacks(&demo, 2).await;
    let ours = sent.iter().find(|s| s.authorization == format!("Bearer {token}")).expect("callback with our token");
    let body: Value = serde_json::from_str(&ours.body).unwrap();
    assert_eq!(claims(body["id_token"].as_str().unwrap())["nonce"], nonce.as_str());
    assert_eq!(ours.status, 204);
    let calls =
        metric(&demo, "mcgate_operator_request_duration_seconds_count", &[("operator", OP), ("call", "si_authorize")]);
    assert_eq!(calls.await, 2.0);
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denials_forged_tokens_wrong_nonces_and_early_refusals_reach_the_rp_per_protocol() {
    let demo = start_demo().await;
    let rp = Rp::new(&demo);

    let deny = rp.bc_authorize(&format!("MSISDN:{}", msisdn(&demo, 2))).await;
    let (done, _) = rp.poll_until_done(&deny, DONE).await;
    assert_eq!((done.status, done.error()), (400, "access_denied"), "{:?}", done.body);

    let forged = rp.bc_authorize(&format!("MSISDN:{}", msisdn(&demo, 0))).await;
    let (done, _) = rp.poll_until_done(&forged, DONE).await;
    assert_eq!((done.status, done.error()), (400, "transaction_failed"), "{:?}", done.body);
    assert_eq!(done.body["error_description"], "operator_token_invalid");

    // A validly signed operator token with someone else's nonce is refused the same way.
    let digits = msisdn(&demo, 3); // the person never answers: we answer in the operator's place
    let ack = rp.bc_authorize(&format!("MSISDN:{digits}")).await;
    assert_eq!(ack.status, 200, "{:?}", ack.body);
    let req = si_request(&demo, &digits);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let mut id_claims = json!({"iss": sim(&demo).issuer(), "aud": "mcgate", "sub": "s", "iat": now, "exp": now + 300,
        "acr": "2", "amr": ["SIM_OK"], "nonce": "not-our-nonce"});
    let wrong = sim(&demo).sign_id_token(&id_claims).unwrap();
    let bearer = req.claims["client_notification_token"].as_str().unwrap();
    let body = json!({"auth_req_id": req.auth_req_id, "access_token": "x", "token_type": "Bearer", "expires_in": 300,
        "id_token": wrong, "state": "s", "correlation_id": "c"});
    assert_eq!(notify(&rp, bearer, &body).await.status, 204);
    let id = ack.body["auth_req_id"].as_str().unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let done = rp.token(id).await;
    assert_eq!((done.status, done.error()), (400, "transaction_failed"), "{:?}", done.body);
    assert_eq!(done.body["error_description"], "operator_token_invalid");
    // … and the same token with our nonce would have been accepted, so the nonce was the reason.
    let ack2 = rp.bc_authorize(&format!("MSISDN:{digits}")).await;
    let req2 = si_request(&demo, &digits);
    id_claims["nonce"] = req2.claims["nonce"].clone();
    let right = sim(&demo).sign_id_token(&id_claims).unwrap();
    let body = json!({"auth_req_id": req2.auth_req_id, "access_token": "x", "token_type": "Bearer", "expires_in": 300,
        "id_token": right});
    assert_eq!(notify(&rp, req2.claims["client_notification_token"].as_str().unwrap(), &body).await.status, 204);
    let (done, _) = rp.poll_until_done(&ack2, DONE).await;
    assert_eq!(done.status, 200, "{:?}", done.body);

    let unknown = rp.bc_authorize(&format!("MSISDN:{}", msisdn(&demo, 4))).await;
    assert_eq!((unknown.status, unknown.error()), (400, "unknown_user_id"), "{:?}", unknown.body);
    let down = rp.bc_authorize(&format!("MSISDN:{}", msisdn(&demo, 5))).await;
    assert_eq!((down.status, down.error()), (503, "temporarily_unavailable"), "{:?}", down.body);
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_need_the_bearer_name_the_operator_transaction_and_count_once() {
    let demo = start_demo().await;
    let rp = Rp::new(&demo);

    // Wrong bearer → 401; right bearer, another operator id → 404; nothing changes.
    let digits = msisdn(&demo, 3);
    let ack = rp.bc_authorize(&format!("MSISDN:{digits}")).await;
    let id = ack.body["auth_req_id"].as_str().unwrap();
    let req = si_request(&demo, &digits);
    let bearer = req.claims["client_notification_token"].as_str().unwrap();
    let denial = json!({"auth_req_id": req.auth_req_id, "error": "access_denied", "error_description": "user_denied"});
    assert_eq!(notify(&rp, &format!("{id}.not-the-secret"), &denial).await.status, 401);
    assert_eq!(notify(&rp, "no-dot", &denial).await.status, 401);
    let other = json!({"auth_req_id": "someone-elses", "error": "access_denied"});
    assert_eq!(notify(&rp, bearer, &other).await.status, 404);
    let before = demo.gateway.store.get(id).await.unwrap().unwrap();
    assert_eq!(before.value.state.as_str(), "pending_push");

    // The right callback decides; its duplicate answers 204 and changes nothing.
    assert_eq!(notify(&rp, bearer, &denial).await.status, 204);
    let after = demo.gateway.store.get(id).await.unwrap().unwrap();
    assert_eq!(after.value.state.as_str(), "denied");
    assert_eq!(notify(&rp, bearer, &denial).await.status, 204);
    let approve_late =
        json!({"auth_req_id": req.auth_req_id, "id_token": "x.y.z", "access_token": "a", "token_type": "Bearer"});
    assert_eq!(notify(&rp, bearer, &approve_late).await.status, 204);
    let again = demo.gateway.store.get(id).await.unwrap().unwrap();
    assert_eq!(again.version, after.version, "a duplicate is not a second state change");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(rp.token(id).await.error(), "access_denied");

    // The simulator's own (approving) callback replayed: 204, still one approval, one collection.
    let ok = rp.bc_authorize(&format!("MSISDN:{}", msisdn(&demo, 8))).await;
    let ok_id = ok.body["auth_req_id"].as_str().unwrap();
    let sent = callbacks(&demo, 1).await;
    assert_eq!(sent[0].status, 204);
    let approved = demo.gateway.store.get(ok_id).await.unwrap().unwrap();
    assert_eq!(approved.value.state.as_str(), "approved");
    let replay = rp
        .http
        .post(format!("{}/op/{OP}/notify", rp.base))
        .header("authorization", &sent[0].authorization)
        .header("content-type", "application/json")
        .body(sent[0].body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status().as_u16(), 204);
    assert_eq!(demo.gateway.store.get(ok_id).await.unwrap().unwrap().version, approved.version);
    let (done, _) = rp.poll_until_done(&ok, DONE).await;
    assert_eq!(done.status, 200, "{:?}", done.body);
    assert_eq!(rp.token(ok_id).await.error(), "invalid_grant", "collected once");

    // Without any callback the transaction simply expires (nothing to poll at the operator).
    let silent = rp
        .post(
            "/bc-authorize",
            &[("scope", "openid"), ("login_hint", &format!("MSISDN:{}", msisdn(&demo, 3))), ("requested_expiry", "2")],
        )
        .await;
    assert_eq!(silent.status, 200, "{:?}", silent.body);
    let (done, _) = rp.poll_until_done(&silent, DONE).await;
    assert_eq!(done.error(), "expired_token", "{:?}", done.body);
    assert_eq!(sim(&demo).stats.token.load(Ordering::SeqCst), 0);
    demo.stop().await;
}
