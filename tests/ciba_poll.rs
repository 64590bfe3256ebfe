//! CIBA poll end to end against the demo gateway and its three simulated operators: a round
//! trip through each operator, ported and nested-prefix routing, every scripted outcome mapped
//! to the RP answer shared/protocol.md gives, and the ID token verified with the gateway's JWKS.

mod support;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mcgate::demo::{test_msisdn, Demo};
use std::sync::atomic::Ordering;
use std::time::Duration;
use support::{claims, metric, start_demo, Rp};

const DONE: Duration = Duration::from_secs(15);

fn hint(demo: &Demo, operator: &str, digit: u8) -> String {
    format!("MSISDN:{}", test_msisdn(&demo.gateway, operator, digit).expect("test number").digits())
}

async fn verified_claims(demo: &Demo, rp: &Rp, id_token: &str) -> serde_json::Value {
    let jwks: JwkSet = rp.http.get(format!("{}/jwks", rp.base)).send().await.unwrap().json().await.unwrap();
    let kid = jsonwebtoken::decode_header(id_token).unwrap().kid.unwrap();
    let key = DecodingKey::from_jwk(jwks.find(&kid).expect("kid published")).unwrap();
    let mut v = Validation::new(Algorithm::RS256);
    v.set_issuer(&[demo.public_url.as_str()]);
    v.set_audience(&[demo.client_id.as_str()]);
    jsonwebtoken::decode::<serde_json::Value>(id_token, &key, &v).expect("ID token verifies").claims
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_through_each_operator() {
    let demo = start_demo().await;
    let rp = Rp::new(&demo);
    for (i, op) in ["movistar", "vodafone", "orange"].into_iter().enumerate() {
        let before = demo.sims[i].stats.bc_authorize.load(Ordering::SeqCst);
        let ack = rp.bc_authorize(&hint(&demo, op, 1)).await;
        assert_eq!(ack.status, 200, "{op}: {:?}", ack.body);
        assert_eq!(ack.body["expires_in"], 300);
        assert_eq!(ack.body["interval"], 1);
        let id = ack.body["auth_req_id"].as_str().unwrap();
        assert!(id.len() >= 43, "auth_req_id carries at least 256 bits");
        assert_eq!(demo.sims[i].stats.bc_authorize.load(Ordering::SeqCst), before + 1, "{op} got the push");

        let first = rp.token(id).await;
        assert_eq!(first.error(), "authorization_pending", "{op}: {:?}", first.body);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let (done, _) = rp.poll_until_done(&ack, DONE).await;
        assert_eq!(done.status, 200, "{op}: {:?}", done.body);
        assert_eq!(done.body["token_type"], "Bearer");
        assert_eq!(done.headers["cache-control"], "no-store");
        let c = verified_claims(&demo, &rp, done.body["id_token"].as_str().unwrap()).await;
        assert_eq!(c["acr"], "2");
        assert_eq!(c["amr"], serde_json::json!(["SIM_OK"]));
        assert_eq!(c["azp"], "demo-rp");
        let sub = c["sub"].as_str().unwrap();
        assert!(!sub.contains(&hint(&demo, op, 1)[10..]), "sub never carries the MSISDN");
        let at_hash = mcgate::tokens::id_token::half_hash(done.body["access_token"].as_str().unwrap());
        assert_eq!(c["at_hash"], at_hash);

        let again = rp.token(id).await;
        assert_eq!((again.status, again.error()), (400, "invalid_grant"), "collected once");
    }
    assert_eq!(metric(&demo, "mcgate_transactions", &[("state", "consumed")]).await, 3.0);
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairwise_subject_is_stable_per_sector() {
    // demo-rp-post moves to another sector; demo-rp-ping stays in demo-rp's.
    let demo = support::start_demo_with(|t| {
        t.replace(
            "redirect_uris = [\"https://rp2.example.org/callback\"]\nsector_identifier = \"rp.example.org\"",
            "redirect_uris = [\"https://rp2.example.org/callback\"]\nsector_identifier = \"townhall.example.org\"",
        )
    })
    .await;
    let rp = Rp::new(&demo);
    let other_sector = Rp { client_id: "demo-rp-post".into(), ..Rp::new(&demo) };
    let sub_via = |rp: &Rp, hint: String| {
        let rp = rp.clone();
        async move {
            let ack = if rp.client_id == "demo-rp-post" {
                let form = [
                    ("scope", "openid"),
                    ("login_hint", hint.as_str()),
                    ("client_id", "demo-rp-post"),
                    ("client_secret", rp.secret.as_str()),
                ];
                let r = rp.http.post(format!("{}/bc-authorize", rp.base)).form(&form).send().await.unwrap();
                support::answer(r).await
            } else {
                rp.bc_authorize(&hint).await
            };
            assert_eq!(ack.status, 200, "{:?}", ack.body);
            tokio::time::sleep(Duration::from_millis(400)).await;
            let id = ack.body["auth_req_id"].as_str().unwrap();
            let done = if rp.client_id == "demo-rp-post" {
                let form = [
                    ("grant_type", "urn:openid:params:grant-type:ciba"),
                    ("auth_req_id", id),
                    ("client_id", "demo-rp-post"),
                    ("client_secret", rp.secret.as_str()),
                ];
                let mut answer = None;
                for _ in 0..15 {
                    let r = rp.http.post(format!("{}/token", rp.base)).form(&form).send().await.unwrap();
                    let a = support::answer(r).await;
                    if a.error() != "authorization_pending" {
                        answer = Some(a);
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(1050)).await;
                }
                answer.expect("answered within 15 polls")
            } else {
                rp.poll_until_done(&ack, DONE).await.0
            };
            assert_eq!(done.status, 200, "{:?}", done.body);
            claims(done.body["id_token"].as_str().unwrap())["sub"].as_str().unwrap().to_owned()
        }
    };
    let person = hint(&demo, "movistar", 1);
    let first = sub_via(&rp, person.clone()).await;
    assert_eq!(first, sub_via(&rp, person.clone()).await, "the same person is one identity for one sector");
    assert!(!first.contains(&person[10..]), "never the MSISDN");
    // PCR:<sub> names the same person again, for this client's sector only.
    assert_eq!(sub_via(&rp, format!("PCR:{first}")).await, first);
    let elsewhere = sub_via(&other_sector, person.clone()).await;
    assert_ne!(elsewhere, first, "unlinkable across sectors");
    let form = [
        ("scope", "openid"),
        ("login_hint", &format!("PCR:{first}") as &str),
        ("client_id", "demo-rp-post"),
        ("client_secret", other_sector.secret.as_str()),
    ];
    let r = rp.http.post(format!("{}/bc-authorize", rp.base)).form(&form).send().await.unwrap();
    let refused = support::answer(r).await;
    assert_eq!((refused.status, refused.error()), (400, "invalid_request"), "another sector's PCR: {:?}", refused.body);
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ported_number_reaches_the_operator_of_the_ported_table() {
    let demo = start_demo().await;
    let rp = Rp::new(&demo);
    // 34609000101 has a movistar prefix (34609) but is ported to orange.
    let orange_before = demo.sims[2].stats.bc_authorize.load(Ordering::SeqCst);
    let movistar_before = demo.sims[0].stats.bc_authorize.load(Ordering::SeqCst);
    let ack = rp.bc_authorize("MSISDN:34609000101").await;
    assert_eq!(ack.status, 200, "{:?}", ack.body);
    assert_eq!(demo.sims[2].stats.bc_authorize.load(Ordering::SeqCst), orange_before + 1);
    assert_eq!(demo.sims[0].stats.bc_authorize.load(Ordering::SeqCst), movistar_before);
    assert_eq!(
        metric(&demo, "mcgate_transactions_started_total", &[("operator", "orange"), ("source", "ported")]).await,
        1.0
    );
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_prefixes_pick_the_longest() {
    let demo = start_demo().await;
    let rp = Rp::new(&demo);
    // 34600 → vodafone, 346001 → orange (routing.toml).
    let ack = rp.bc_authorize("tel:+34-600-100-011").await;
    assert_eq!(ack.status, 200);
    let ack2 = rp.bc_authorize("+34 600 200 011").await;
    assert_eq!(ack2.status, 200);
    assert_eq!(demo.sims[2].stats.bc_authorize.load(Ordering::SeqCst), 1, "346001… went to orange");
    assert_eq!(demo.sims[1].stats.bc_authorize.load(Ordering::SeqCst), 1, "34600 2… went to vodafone");
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripted_outcomes_map_to_the_protocol_answers() {
    let demo = start_demo().await;
    let rp = Rp::new(&demo);

    // Deny → access_denied (400 at /token).
    let ack = rp.bc_authorize(&hint(&demo, "vodafone", 2)).await;
    let (done, _) = rp.poll_until_done(&ack, DONE).await;
    assert_eq!((done.status, done.error()), (400, "access_denied"), "{:?}", done.body);

    // Never answers → expired_token once the requested expiry passes.
    let ack = rp
        .post(
            "/bc-authorize",
            &[("scope", "openid"), ("login_hint", &hint(&demo, "orange", 3)), ("requested_expiry", "2")],
        )
        .await;
    assert_eq!(ack.body["expires_in"], 2);
    let (done, pending) = rp.poll_until_done(&ack, DONE).await;
    assert_eq!(done.error(), "expired_token", "{:?}", done.body);
    assert!(pending >= 1);

    // Unknown subscriber → unknown_user_id at bc-authorize (shared/protocol.md §5 "not_enrolled", no SMS).
    let a = rp.bc_authorize(&hint(&demo, "movistar", 4)).await;
    assert_eq!((a.status, a.error()), (400, "unknown_user_id"), "{:?}", a.body);

    // Operator 500 → 503 temporarily_unavailable with Retry-After, at once.
    let a = rp.bc_authorize(&hint(&demo, "movistar", 5)).await;
    assert_eq!((a.status, a.error()), (503, "temporarily_unavailable"), "{:?}", a.body);
    assert_eq!(a.headers["retry-after"], "1");
    assert!(
        metric(&demo, "mcgate_operator_errors_total", &[("operator", "movistar"), ("kind", "http_5xx")]).await >= 1.0
    );

    // Slow operator (2 s, gateway timeout 1 s): maybe delivered → acknowledged, never a second
    // prompt, ends expired_token; the call was bounded by the timeout, nothing hangs.
    let a = rp
        .post(
            "/bc-authorize",
            &[("scope", "openid"), ("login_hint", &hint(&demo, "vodafone", 6)), ("requested_expiry", "2")],
        )
        .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    let (done, _) = rp.poll_until_done(&a, DONE).await;
    assert_eq!(done.error(), "expired_token");
    assert!(
        metric(&demo, "mcgate_operator_errors_total", &[("operator", "vodafone"), ("kind", "timeout")]).await >= 1.0
    );

    // PIN with acr_values=3 → acr "3", amr SIM_PIN.
    let a = rp
        .post(
            "/bc-authorize",
            &[("scope", "openid mc_authn"), ("login_hint", &hint(&demo, "orange", 7)), ("acr_values", "3")],
        )
        .await;
    let (done, _) = rp.poll_until_done(&a, DONE).await;
    let c = claims(done.body["id_token"].as_str().expect("tokens"));
    assert_eq!((c["acr"].as_str(), c["amr"][0].as_str()), (Some("3"), Some("SIM_PIN")));

    // acr_values=3 but the operator only achieves 2 → transaction_failed, never a weaker token.
    let a = rp
        .post("/bc-authorize", &[("scope", "openid"), ("login_hint", &hint(&demo, "orange", 1)), ("acr_values", "3")])
        .await;
    let (done, _) = rp.poll_until_done(&a, DONE).await;
    assert_eq!((done.error(), done.body["error_description"].as_str()), ("transaction_failed", Some("operator_error")));

    // Forged operator token (key not in its JWKS) → transaction_failed operator_token_invalid.
    let a = rp.bc_authorize(&hint(&demo, "movistar", 0)).await;
    let (done, _) = rp.poll_until_done(&a, DONE).await;
    assert_eq!(
        (done.error(), done.body["error_description"].as_str()),
        ("transaction_failed", Some("operator_token_invalid"))
    );
    assert!(
        metric(&demo, "mcgate_operator_errors_total", &[("operator", "movistar"), ("kind", "token_invalid")]).await
            >= 1.0
    );
    demo.stop().await;
}
