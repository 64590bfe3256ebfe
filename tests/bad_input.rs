//! Bad input at the RP endpoints: every refusal is the status and OAuth error of
//! shared/protocol.md §2, with no operator call and nothing stored.

mod support;

use std::sync::atomic::Ordering;
use support::{answer, start_demo, Rp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_authentication_failures_are_401_invalid_client() {
    let demo = start_demo().await;
    let rp = Rp::new(&demo);
    let url = format!("{}/bc-authorize", rp.base);
    let form = [("scope", "openid"), ("login_hint", "MSISDN:34700000011")];

    let wrong = answer(rp.http.post(&url).basic_auth("demo-rp", Some("wrong")).form(&form).send().await.unwrap()).await;
    assert_eq!((wrong.status, wrong.error()), (401, "invalid_client"));
    assert_eq!(wrong.headers["www-authenticate"], "Basic realm=\"mcgate\"");
    let unknown =
        answer(rp.http.post(&url).basic_auth("nobody", Some(&rp.secret)).form(&form).send().await.unwrap()).await;
    assert_eq!(unknown.body, wrong.body, "unknown client and wrong secret look alike");
    let none = answer(rp.http.post(&url).form(&form).send().await.unwrap()).await;
    assert_eq!((none.status, none.error()), (401, "invalid_client"));
    // demo-rp is registered for client_secret_basic: the same secret in the form is refused.
    let mut post = form.to_vec();
    post.extend([("client_id", "demo-rp"), ("client_secret", rp.secret.as_str())]);
    let wrong_method = answer(rp.http.post(&url).form(&post).send().await.unwrap()).await;
    assert_eq!((wrong_method.status, wrong_method.error()), (401, "invalid_client"));
    // demo-rp-post is registered for client_secret_post and works that way.
    let mut post = form.to_vec();
    post.extend([("client_id", "demo-rp-post"), ("client_secret", rp.secret.as_str())]);
    let ok = answer(rp.http.post(&url).form(&post).send().await.unwrap()).await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    assert_eq!(
        demo.sims.iter().map(|s| s.stats.bc_authorize.load(Ordering::SeqCst)).sum::<u64>(),
        1,
        "only the authenticated request reached an operator"
    );
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_are_400_with_the_right_code() {
    let demo = start_demo().await;
    let rp = Rp::new(&demo);
    let long_binding = "x".repeat(65);
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("scope", "openid"), ("login_hint", "MSISDN:34abc000001")], "invalid_request"),
        (vec![("scope", "openid"), ("login_hint", "+0034700000011")], "invalid_request"),
        (vec![("scope", "openid"), ("login_hint", "tel:34700000011")], "invalid_request"),
        (vec![("scope", "openid"), ("login_hint", "+34 700 000 011;ext=1")], "invalid_request"),
        (vec![("scope", "openid"), ("login_hint", "+")], "invalid_request"),
        (vec![("scope", "openid"), ("login_hint", "+３４700000011")], "invalid_request"),
        (vec![("scope", "openid"), ("login_hint", "+3470000001122334")], "invalid_request"),
        (vec![("scope", "openid")], "invalid_request"),
        (vec![("scope", "openid"), ("login_hint", "MSISDN:34700000011"), ("id_token_hint", "x")], "invalid_request"),
        (vec![("scope", "mc_authn"), ("login_hint", "MSISDN:34700000011")], "invalid_scope"),
        (vec![("scope", "openid mc_authz"), ("login_hint", "MSISDN:34700000011")], "invalid_scope"),
        (vec![("login_hint", "MSISDN:34700000011")], "invalid_scope"),
        (vec![("scope", "openid"), ("login_hint", "MSISDN:34700000011"), ("acr_values", "4")], "invalid_request"),
        (vec![("scope", "openid"), ("login_hint", "MSISDN:34700000011"), ("requested_expiry", "0")], "invalid_request"),
        (
            vec![("scope", "openid"), ("login_hint", "MSISDN:34700000011"), ("requested_expiry", "abc")],
            "invalid_request",
        ),
        (
            vec![("scope", "openid"), ("login_hint", "MSISDN:34700000011"), ("binding_message", long_binding.as_str())],
            "invalid_binding_message",
        ),
        (
            vec![("scope", "openid"), ("login_hint", "MSISDN:34700000011"), ("binding_message", "Pay\u{202E}0001")],
            "invalid_binding_message",
        ),
        (vec![("scope", "openid"), ("login_hint", "PCR:abc")], "invalid_request"),
        (vec![("scope", "openid"), ("login_hint", "ENCR_MSISDN:not-ours")], "invalid_request"),
        // Valid E.164 outside every operator's range: unknown_user_id, no operator call.
        (vec![("scope", "openid"), ("login_hint", "+442071234567")], "unknown_user_id"),
        (vec![("scope", "openid"), ("login_hint", "+34905123456")], "unknown_user_id"),
    ];
    for (form, code) in &cases {
        let a = rp.post("/bc-authorize", form).await;
        assert_eq!((a.status, a.error()), (400, *code), "{form:?} → {:?}", a.body);
        assert!(a.body["error_description"].as_str().is_some_and(|d| !d.is_empty()));
        assert_eq!(a.headers["cache-control"], "no-store");
    }
    // A repeated parameter is refused.
    let r = rp
        .http
        .post(format!("{}/bc-authorize", rp.base))
        .basic_auth(&rp.client_id, Some(&rp.secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("scope=openid&login_hint=MSISDN:34700000011&login_hint=MSISDN:34700000021")
        .send()
        .await
        .unwrap();
    let a = answer(r).await;
    assert_eq!((a.status, a.error()), (400, "invalid_request"));
    // Error descriptions never echo the number.
    let a = rp.post("/bc-authorize", &[("scope", "openid"), ("login_hint", "+3470000001122334")]).await;
    assert!(!a.body.to_string().contains("70000001122334"));
    assert_eq!(
        demo.sims.iter().map(|s| s.stats.bc_authorize.load(Ordering::SeqCst)).sum::<u64>(),
        0,
        "no bad request reached an operator"
    );
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_wrong_type_and_wrong_method() {
    let demo = start_demo().await;
    let rp = Rp::new(&demo);
    let url = format!("{}/bc-authorize", rp.base);
    let big = "a=".to_string() + &"x".repeat(70 * 1024);
    let r = rp
        .http
        .post(&url)
        .basic_auth(&rp.client_id, Some(&rp.secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(big)
        .send()
        .await
        .unwrap();
    let a = answer(r).await;
    assert_eq!((a.status, a.error()), (413, "payload_too_large"));
    // The unread body makes the server close this connection: it says so, or the client's pool
    // would send the next request on a closing socket (a broken pipe in CI once).
    assert_eq!(a.headers["connection"], "close");
    let r = rp
        .http
        .post(&url)
        .basic_auth(&rp.client_id, Some(&rp.secret))
        .json(&serde_json::json!({"scope": "openid"}))
        .send()
        .await
        .unwrap();
    let a = answer(r).await;
    assert_eq!(a.status, 415);
    assert_eq!(a.headers["connection"], "close", "refused before its body was read");
    // A refusal after the body was read keeps the connection.
    let r = rp
        .http
        .post(&url)
        .basic_auth(&rp.client_id, Some("wrong"))
        .form(&[("scope", "openid"), ("login_hint", "MSISDN:34600000001")])
        .send()
        .await
        .unwrap();
    let a = answer(r).await;
    assert_eq!(a.status, 401);
    assert!(!a.headers.contains_key("connection"), "{:?}", a.headers);
    let r = rp.http.get(&url).send().await.unwrap();
    let a = answer(r).await;
    assert_eq!((a.status, a.error()), (405, "method_not_allowed"));
    assert_eq!(a.headers["allow"], "POST");
    let a = answer(rp.http.get(format!("{}/nope", rp.base)).send().await.unwrap()).await;
    assert_eq!(a.status, 404);
    let a = answer(rp.http.get(format!("{}/metrics", rp.base)).send().await.unwrap()).await;
    assert_eq!(a.status, 404, "metrics live on the admin listener only");
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_endpoint_errors() {
    let demo = start_demo().await;
    let rp = Rp::new(&demo);
    let a = rp.post("/token", &[("grant_type", "password"), ("username", "x")]).await;
    assert_eq!((a.status, a.error()), (400, "unsupported_grant_type"));
    let a = rp.post("/token", &[("grant_type", "authorization_code"), ("code", "x")]).await;
    assert_eq!((a.status, a.error()), (400, "invalid_request"), "redirect_uri missing");
    let a = rp
        .post(
            "/token",
            &[("grant_type", "authorization_code"), ("code", "x"), ("redirect_uri", "https://rp.example.org/callback")],
        )
        .await;
    assert_eq!((a.status, a.error()), (400, "invalid_grant"), "unknown code");
    let a = rp.post("/token", &[("auth_req_id", "x")]).await;
    assert_eq!(a.error(), "invalid_request");
    let a = rp.post("/token", &[("grant_type", "urn:openid:params:grant-type:ciba")]).await;
    assert_eq!(a.error(), "invalid_request");
    let a = rp.token("guessed-auth-req-id").await;
    assert_eq!((a.status, a.error()), (400, "invalid_grant"));

    // Polling inside the interval → slow_down, and the interval grows.
    let ack = rp.post("/bc-authorize", &[("scope", "openid"), ("login_hint", "MSISDN:34700000013")]).await;
    let id = ack.body["auth_req_id"].as_str().unwrap();
    assert_eq!(rp.token(id).await.error(), "authorization_pending");
    let fast = rp.token(id).await;
    assert_eq!((fast.status, fast.error()), (400, "slow_down"));
    assert_eq!(rp.token(id).await.error(), "slow_down", "still inside the grown interval");

    // Another client's auth_req_id is invalid_grant for everyone else.
    let other = answer(
        rp.http
            .post(format!("{}/token", rp.base))
            .form(&[
                ("grant_type", "urn:openid:params:grant-type:ciba"),
                ("auth_req_id", id),
                ("client_id", "demo-rp-post"),
                ("client_secret", rp.secret.as_str()),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((other.status, other.error()), (400, "invalid_grant"));
    demo.stop().await;
}
