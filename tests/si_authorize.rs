//! Mobile Connect server-initiated authentication (`/si-authorize`, shared/protocol.md §1.4)
//! against the demo gateway: `mc_si_async_code` delivered to the demo's RP notification sink
//! (right bearer, the RP's nonce and the auth_req_id claim in a verifiable ID token, then
//! consumed), a refusal delivered as `access_denied`, `mc_si_polling` collected at `/token`, GET,
//! form and JSON requests, every refused variant with its error, and the `mc_legacy` relaxation.

mod support;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mcgate::clock::{Clock, SystemClock};
use mcgate::demo::{test_msisdn, Demo};
use mcgate::sim::rp_client::request_object;
use mcgate::tokens::keys::{generate_p256_pkcs8_pem, SigningKey};
use serde_json::{json, Value};
use std::time::Duration;
use support::{answer, claims, start_demo, start_demo_with, Answer, Rp};

const ASYNC: &str = "mc_si_async_code";
const POLLING: &str = "mc_si_polling";
const SCOPE: &str = "openid mc_authn";

fn now() -> u64 {
    SystemClock.now_s()
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap()
}

fn url(demo: &Demo, path: &str) -> String {
    format!("{}{path}", demo.plain_url.as_deref().unwrap())
}

/// The notification URI registered for the demo SI client (the demo's RP sink).
fn sink_uri(demo: &Demo) -> String {
    format!("{}/{}", demo.rp_sink.url(), demo.si_client_id)
}

fn msisdn(demo: &Demo, last_digit: u8) -> String {
    format!("MSISDN:{}", test_msisdn(&demo.gateway, "movistar", last_digit).expect("test number").digits())
}

/// The claims of a valid request for `response_type` (async: with token and notification_uri).
fn base_claims(demo: &Demo, response_type: &str, hint: &str, nonce: &str) -> Vec<(String, String)> {
    let mut c: Vec<(String, String)> = [
        ("client_id", demo.si_client_id.as_str()),
        ("response_type", response_type),
        ("scope", SCOPE),
        ("version", "mc_si_r2_v1.0"),
        ("nonce", nonce),
        ("login_hint", hint),
        ("acr_values", "2"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if response_type == ASYNC {
        c.push(("client_notification_token".into(), "si-bearer-123".into()));
        c.push(("notification_uri".into(), sink_uri(demo)));
    }
    c
}

/// Signs `claims` as the demo SI client (iss, aud, iat, nbf, exp, fresh jti added).
fn sign(demo: &Demo, claims: &[(String, String)]) -> String {
    let refs: Vec<(&str, &str)> = claims.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    request_object(&demo.jwt_client_key, &demo.si_client_id, &demo.public_url, &refs, now(), 60).unwrap()
}

/// Replaces (or with `None` removes) one claim.
fn with(mut claims: Vec<(String, String)>, name: &str, value: Option<&str>) -> Vec<(String, String)> {
    claims.retain(|(k, _)| k != name);
    if let Some(v) = value {
        claims.push((name.into(), v.into()));
    }
    claims
}

/// POSTs the outer form (no HTTP authentication).
async fn si_form(demo: &Demo, response_type: &str, request: &str) -> Answer {
    let form = [
        ("client_id", demo.si_client_id.as_str()),
        ("response_type", response_type),
        ("scope", SCOPE),
        ("request", request),
    ];
    answer(http().post(url(demo, "/si-authorize")).form(&form).send().await.unwrap()).await
}

/// The sink's notification for `auth_req_id`, waited for (bounded).
async fn delivered(demo: &Demo, auth_req_id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let found = demo.rp_sink.received().into_iter().find(|n| n["body"]["auth_req_id"] == auth_req_id);
        if let Some(n) = found {
            return n;
        }
        assert!(tokio::time::Instant::now() < deadline, "no notification for the transaction");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn si_rp(demo: &Demo) -> Rp {
    let mut rp = Rp::new(demo);
    rp.client_id = demo.si_client_id.clone();
    rp
}

/// Verifies an ID token with the gateway's `/jwks` (RS256 for the SI client) and returns its claims.
async fn verified(demo: &Demo, id_token: &str) -> Value {
    let set: JwkSet = http().get(url(demo, "/jwks")).send().await.unwrap().json().await.unwrap();
    let header = jsonwebtoken::decode_header(id_token).unwrap();
    assert_eq!(header.alg, Algorithm::RS256, "RS256 is the default for MC clients");
    let key = DecodingKey::from_jwk(set.find(header.kid.as_deref().unwrap()).expect("kid published")).unwrap();
    let mut v = Validation::new(Algorithm::RS256);
    v.set_issuer(&[demo.public_url.as_str()]);
    v.set_audience(&[demo.si_client_id.as_str()]);
    jsonwebtoken::decode::<Value>(id_token, &key, &v).expect("ID token verifies").claims
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_code_delivers_tokens_with_the_rp_nonce_to_the_notification_uri_then_is_consumed() {
    let demo = start_demo().await;
    let request = sign(&demo, &base_claims(&demo, ASYNC, &msisdn(&demo, 1), "rp-nonce-42"));
    let ack = si_form(&demo, ASYNC, &request).await;
    assert_eq!(ack.status, 200, "{:?}", ack.body);
    assert!(ack.body["expires_in"].as_u64().is_some_and(|e| e > 0));
    assert!(ack.body.get("interval").is_none(), "async_code: nothing to poll");
    let id = ack.body["auth_req_id"].as_str().unwrap().to_owned();

    let n = delivered(&demo, &id).await;
    assert_eq!(n["path"], format!("/{}", demo.si_client_id));
    assert_eq!(n["authorization"], "Bearer si-bearer-123", "the request's client_notification_token");
    let body = &n["body"];
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["access_token"].is_string() && body["expires_in"].is_u64(), "{body}");
    let c = verified(&demo, body["id_token"].as_str().unwrap()).await;
    assert_eq!(c["nonce"], "rp-nonce-42", "the RP's nonce, never ours");
    assert_eq!(c["urn:openid:params:jwt:claim:auth_req_id"], id.as_str());
    assert_eq!((c["acr"].as_str(), c["azp"].as_str()), (Some("2"), Some("demo-rp-si")));
    assert!(c["at_hash"].is_string());

    // Delivered = consumed: /cancel reports it, /token will not hand out a second set.
    let rp = si_rp(&demo);
    let mut state = Value::Null;
    for _ in 0..50 {
        state = rp.post("/cancel", &[("auth_req_id", &id)]).await.body["state"].clone();
        if state == "consumed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(state, "consumed");
    let poll = rp.token(&id).await;
    assert_eq!((poll.status, poll.error()), (400, "unauthorized_client"), "{:?}", poll.body);
    let same = demo.rp_sink.received().iter().filter(|n| n["body"]["auth_req_id"] == id.as_str()).count();
    assert_eq!(same, 1, "exactly one delivery");
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_is_delivered_as_access_denied() {
    let demo = start_demo().await;
    let request = sign(&demo, &base_claims(&demo, ASYNC, &msisdn(&demo, 2), "n-deny"));
    let ack = si_form(&demo, ASYNC, &request).await;
    assert_eq!(ack.status, 200, "{:?}", ack.body);
    let id = ack.body["auth_req_id"].as_str().unwrap();
    let n = delivered(&demo, id).await;
    assert_eq!(n["authorization"], "Bearer si-bearer-123");
    assert_eq!(n["body"]["error"], "access_denied", "{}", n["body"]);
    assert!(n["body"]["error_description"].is_string());
    assert!(n["body"].get("id_token").is_none());
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_is_collected_at_the_token_endpoint_and_get_and_json_work_too() {
    let demo = start_demo().await;
    let rp = si_rp(&demo);

    // JSON body, with the client's Basic credentials verified as well.
    let request = sign(&demo, &base_claims(&demo, POLLING, &msisdn(&demo, 1), "json-nonce"));
    let body = json!({"client_id": demo.si_client_id, "response_type": POLLING, "scope": SCOPE, "request": request});
    let r = http()
        .post(url(&demo, "/si-authorize"))
        .basic_auth(&demo.si_client_id, Some(demo.client_secret.expose()))
        .json(&body)
        .send()
        .await
        .unwrap();
    let ack = answer(r).await;
    assert_eq!(ack.status, 200, "{:?}", ack.body);
    assert!(ack.body["interval"].as_u64().is_some(), "polling: the interval is announced");
    let (done, _) = rp.poll_until_done(&ack, Duration::from_secs(20)).await;
    assert_eq!(done.status, 200, "{:?}", done.body);
    let c = verified(&demo, done.body["id_token"].as_str().unwrap()).await;
    assert_eq!(c["nonce"], "json-nonce");
    assert!(c.get("urn:openid:params:jwt:claim:auth_req_id").is_none(), "only async results carry it");
    let again = rp.token(ack.body["auth_req_id"].as_str().unwrap()).await;
    assert_eq!(again.error(), "invalid_grant", "collected once");

    // GET with the query.
    let request = sign(&demo, &base_claims(&demo, POLLING, &msisdn(&demo, 1), "get-nonce"));
    let query = [
        ("client_id", demo.si_client_id.as_str()),
        ("response_type", POLLING),
        ("scope", SCOPE),
        ("request", &request),
    ];
    let ack = answer(http().get(url(&demo, "/si-authorize")).query(&query).send().await.unwrap()).await;
    assert_eq!(ack.status, 200, "{:?}", ack.body);
    let (done, _) = rp.poll_until_done(&ack, Duration::from_secs(20)).await;
    assert_eq!(claims(done.body["id_token"].as_str().unwrap())["nonce"], "get-nonce");

    // Form POST.
    let request = sign(&demo, &base_claims(&demo, POLLING, &msisdn(&demo, 1), "form-nonce"));
    let ack = si_form(&demo, POLLING, &request).await;
    assert_eq!(ack.status, 200, "{:?}", ack.body);

    // Metadata advertises the endpoint.
    let meta: Value =
        http().get(url(&demo, "/.well-known/openid-configuration")).send().await.unwrap().json().await.unwrap();
    assert_eq!(meta["si_authorization_endpoint"], format!("{}/si-authorize", demo.public_url));
    for rt in [ASYNC, POLLING] {
        assert!(meta["response_types_supported"].as_array().unwrap().iter().any(|v| v == rt), "{rt}");
    }
    assert!(meta["mc_version"].as_array().unwrap().iter().any(|v| v == "mc_si_r2_v1.0"));
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_request_gets_its_error() {
    let demo = start_demo().await;
    let hint = msisdn(&demo, 1);
    let good = base_claims(&demo, ASYNC, &hint, "n");
    let expect = |a: &Answer, status: u16, error: &str, what: &str| {
        assert_eq!((a.status, a.error()), (status, error), "{what}: {:?}", a.body);
        let d = a.body["error_description"].as_str().unwrap_or("");
        assert!(!d.contains("eyJ") && !d.contains("si-bearer"), "{what}: nothing secret echoed: {d}");
    };

    let bad = |name: &str, value: Option<&str>| sign(&demo, &with(good.clone(), name, value));
    expect(&si_form(&demo, ASYNC, &bad("scope", Some("openid"))).await, 400, "invalid_request", "inner scope differs");
    expect(
        &si_form(&demo, ASYNC, &bad("response_type", Some(POLLING))).await,
        400,
        "invalid_request",
        "inner type differs",
    );
    expect(
        &si_form(&demo, ASYNC, &bad("response_type", None)).await,
        400,
        "invalid_request",
        "outer three not repeated",
    );
    expect(&si_form(&demo, ASYNC, &bad("client_id", Some("demo-rp"))).await, 400, "invalid_request", "inner client_id");
    expect(&si_form(&demo, ASYNC, &bad("version", Some("mc_si_r1_v1.0"))).await, 400, "invalid_request", "version");
    expect(&si_form(&demo, ASYNC, &bad("version", None)).await, 400, "invalid_request", "no version");
    expect(&si_form(&demo, ASYNC, &bad("nonce", None)).await, 400, "invalid_request", "no nonce");
    expect(&si_form(&demo, ASYNC, &bad("acr_values", None)).await, 400, "invalid_request", "no acr_values");
    let unregistered = bad("notification_uri", Some("https://evil.example/notify"));
    let a = si_form(&demo, ASYNC, &unregistered).await;
    expect(&a, 400, "invalid_request", "unregistered notification_uri");
    assert!(a.body["error_description"].as_str().unwrap().contains("notification_uri"));
    expect(&si_form(&demo, ASYNC, &bad("notification_uri", None)).await, 400, "invalid_request", "no notification_uri");
    let a = si_form(&demo, ASYNC, &bad("client_notification_token", None)).await;
    expect(&a, 400, "invalid_request", "no client_notification_token");
    assert!(a.body["error_description"].as_str().unwrap().contains("client_notification_token"));
    let spaced = bad("client_notification_token", Some("has spaces"));
    expect(&si_form(&demo, ASYNC, &spaced).await, 400, "invalid_request", "token not visible ASCII");
    expect(&si_form(&demo, ASYNC, &bad("login_hint", Some("MSISDN:abc"))).await, 400, "invalid_request", "bad hint");
    expect(&si_form(&demo, "code", &sign(&demo, &good)).await, 400, "unsupported_response_type", "response_type");

    // The signature, lifetime and replay checks of every request object.
    let stranger = SigningKey::from_pem(generate_p256_pkcs8_pem().unwrap().as_bytes()).unwrap();
    let refs: Vec<(&str, &str)> = good.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let foreign = request_object(&stranger, &demo.si_client_id, &demo.public_url, &refs, now(), 60).unwrap();
    expect(&si_form(&demo, ASYNC, &foreign).await, 400, "invalid_request_object", "unregistered key");
    // One character in the middle of the signature changed (never the padding bits at its end).
    let mut tampered = sign(&demo, &good).into_bytes();
    let i = tampered.len() - 20;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    expect(&si_form(&demo, ASYNC, &tampered).await, 400, "invalid_request_object", "bad signature");
    let expired =
        request_object(&demo.jwt_client_key, &demo.si_client_id, &demo.public_url, &refs, now() - 600, 60).unwrap();
    expect(&si_form(&demo, ASYNC, &expired).await, 400, "invalid_request_object", "expired");
    let wrong_aud =
        request_object(&demo.jwt_client_key, &demo.si_client_id, "https://other.example", &refs, now(), 60).unwrap();
    expect(&si_form(&demo, ASYNC, &wrong_aud).await, 400, "invalid_request_object", "aud");
    let once = sign(&demo, &good);
    assert_eq!(si_form(&demo, ASYNC, &once).await.status, 200);
    expect(&si_form(&demo, ASYNC, &once).await, 400, "invalid_request_object", "replayed jti");

    // Who the client is.
    let form = |id: &str| {
        vec![
            ("client_id", id.to_owned()),
            ("response_type", ASYNC.into()),
            ("scope", SCOPE.into()),
            ("request", sign(&demo, &good)),
        ]
    };
    let post = |f: Vec<(&'static str, String)>| {
        let req = http().post(url(&demo, "/si-authorize")).form(&f);
        async move { answer(req.send().await.unwrap()).await }
    };
    expect(&post(form("nobody")).await, 401, "invalid_client", "unknown client");
    expect(&post(form("demo-rp")).await, 401, "invalid_client", "client without keys");
    let mut missing = form(&demo.si_client_id);
    missing.retain(|(k, _)| *k != "request");
    expect(&post(missing).await, 400, "invalid_request", "no request");
    let r = http()
        .post(url(&demo, "/si-authorize"))
        .basic_auth(&demo.si_client_id, Some("wrong-secret"))
        .form(&form(&demo.si_client_id))
        .send()
        .await
        .unwrap();
    expect(&answer(r).await, 401, "invalid_client", "credentials sent are checked");
    let mut outer_differs = form(&demo.si_client_id);
    outer_differs.push(("login_hint", msisdn(&demo, 2)));
    expect(&post(outer_differs).await, 400, "invalid_request", "outer login_hint differs from the object");

    // Bodies.
    let r = http()
        .post(url(&demo, "/si-authorize"))
        .header("content-type", "application/json")
        .body(r#"{"client_id":"demo-rp-si","response_type":"mc_si_async_code","scope":["openid"],"request":"x"}"#)
        .send()
        .await
        .unwrap();
    expect(&answer(r).await, 400, "invalid_request", "JSON values must be strings");
    let r =
        http().post(url(&demo, "/si-authorize")).header("content-type", "text/plain").body("x").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 415);
    let r = http().put(url(&demo, "/si-authorize")).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.headers()["allow"].to_str().unwrap()), (405, "GET, POST"));
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mc_legacy_clients_may_omit_exp_iat_and_jti_strict_ones_may_not() {
    let legacy_line = "mc_legacy = false   # true: its SI";
    let timeless = |demo: &Demo| {
        let mut c = serde_json::Map::new();
        for (k, v) in base_claims(demo, POLLING, &msisdn(demo, 1), "legacy-nonce") {
            c.insert(k, Value::String(v));
        }
        c.insert("iss".into(), demo.si_client_id.clone().into());
        c.insert("aud".into(), demo.public_url.clone().into());
        demo.jwt_client_key.sign(&Value::Object(c)).unwrap()
    };

    let strict = start_demo().await;
    let a = si_form(&strict, POLLING, &timeless(&strict)).await;
    assert_eq!((a.status, a.error()), (400, "invalid_request_object"), "{:?}", a.body);
    strict.stop().await;

    let legacy = start_demo_with(|t| {
        assert!(t.contains(legacy_line));
        t.replace(legacy_line, "mc_legacy = true   # true: its SI")
    })
    .await;
    let ack = si_form(&legacy, POLLING, &timeless(&legacy)).await;
    assert_eq!(ack.status, 200, "{:?}", ack.body);
    let (done, _) = si_rp(&legacy).poll_until_done(&ack, Duration::from_secs(20)).await;
    assert_eq!(claims(done.body["id_token"].as_str().unwrap())["nonce"], "legacy-nonce");
    // Time claims that are present are still checked.
    let refs_owned = base_claims(&legacy, POLLING, &msisdn(&legacy, 1), "n");
    let refs: Vec<(&str, &str)> = refs_owned.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let expired =
        request_object(&legacy.jwt_client_key, &legacy.si_client_id, &legacy.public_url, &refs, now() - 600, 60)
            .unwrap();
    assert_eq!(si_form(&legacy, POLLING, &expired).await.error(), "invalid_request_object");
    legacy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_retry_with_a_fresh_object_gets_the_same_transaction() {
    let demo = start_demo().await;
    let claims = base_claims(&demo, POLLING, &msisdn(&demo, 3), "idem-nonce");
    let send = |request: String| {
        let form = vec![
            ("client_id", demo.si_client_id.clone()),
            ("response_type", POLLING.into()),
            ("scope", SCOPE.into()),
            ("request", request),
        ];
        let req = http().post(url(&demo, "/si-authorize")).header("idempotency-key", "si-retry-1").form(&form);
        async move { answer(req.send().await.unwrap()).await }
    };
    let first = send(sign(&demo, &claims)).await;
    let retry = send(sign(&demo, &claims)).await;
    assert_eq!((first.status, retry.status), (200, 200), "{:?} {:?}", first.body, retry.body);
    assert_eq!(first.body["auth_req_id"], retry.body["auth_req_id"]);
    let other = send(sign(&demo, &with(claims.clone(), "nonce", Some("another")))).await;
    assert_eq!(other.status, 422, "same key, different request: {:?}", other.body);
    demo.stop().await;
}
