//! Strong client authentication and signed requests against the demo gateway: `private_key_jwt`
//! at `/bc-authorize` and `/token` (good assertion, then replay, wrong `aud`, expired, wrong key,
//! `alg: none`, wrong method), keys from a `jwks_uri` this test serves on 127.0.0.1:0 (cached,
//! unknown `kid` not refetched within the interval), an ES256 ID token verified with `/jwks`,
//! the rotation-ready JWKS and metadata, and signed request objects at `/bc-authorize` with each
//! bad variant refused as `invalid_request_object`.

mod support;

use base64::Engine;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mcgate::clock::{Clock, SystemClock};
use mcgate::demo::{test_msisdn, Demo};
use mcgate::sim::rp_client::{client_assertion, public_jwks, request_object};
use mcgate::tokens::keys::{generate_p256_pkcs8_pem, generate_rsa_pkcs8_pem, SigningKey};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::{answer, start_demo, start_demo_with, Answer};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const CIBA: &str = "urn:openid:params:grant-type:ciba";

fn now() -> u64 {
    SystemClock.now_s()
}

fn hint(demo: &Demo) -> String {
    format!("MSISDN:{}", test_msisdn(&demo.gateway, "movistar", 1).expect("test number").digits())
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap()
}

/// POSTs a form to the demo's plain listener, without any HTTP authentication.
async fn post(demo: &Demo, path: &str, form: &[(&str, &str)]) -> Answer {
    let url = format!("{}{path}", demo.plain_url.as_deref().unwrap());
    answer(http().post(url).form(form).send().await.unwrap()).await
}

fn b64(v: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

/// An unsigned JWT (`alg: none`).
fn unsigned(claims: &Value) -> String {
    format!("{}.{}.", b64(&json!({"alg": "none", "typ": "JWT"})), b64(claims))
}

fn assertion_claims(client_id: &str, aud: &str) -> Value {
    let t = now();
    json!({"iss": client_id, "sub": client_id, "aud": aud, "iat": t, "exp": t + 60, "jti": mcgate::clock::random_token(16)})
}

/// A bc-authorize form authenticated by `assertion`.
async fn bc_with(demo: &Demo, assertion: &str, extra: &[(&str, &str)]) -> Answer {
    let h = hint(demo);
    let mut form = vec![
        ("client_assertion_type", ASSERTION_TYPE),
        ("client_assertion", assertion),
        ("scope", "openid mc_authn"),
        ("login_hint", h.as_str()),
    ];
    form.extend_from_slice(extra);
    post(demo, "/bc-authorize", &form).await
}

async fn token_with(demo: &Demo, assertion: &str, auth_req_id: &str) -> Answer {
    post(
        demo,
        "/token",
        &[
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", assertion),
            ("grant_type", CIBA),
            ("auth_req_id", auth_req_id),
        ],
    )
    .await
}

fn fresh(demo: &Demo) -> String {
    client_assertion(&demo.jwt_client_key, &demo.jwt_client_id, &demo.public_url, now(), 60).unwrap()
}

fn assert_invalid_client(a: &Answer, what: &str, description_has: &str) {
    assert_eq!((a.status, a.error()), (401, "invalid_client"), "{what}: {:?}", a.body);
    let d = a.body["error_description"].as_str().unwrap_or("");
    assert!(d.contains(description_has), "{what}: description {d:?} should name {description_has:?}");
    assert!(!d.contains("eyJ"), "{what}: no token content in the description");
}

async fn jwks(demo: &Demo) -> JwkSet {
    http().get(format!("{}/jwks", demo.plain_url.as_deref().unwrap())).send().await.unwrap().json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_key_jwt_client_runs_ciba_and_gets_an_es256_id_token_that_verifies() {
    let demo = start_demo().await;
    let ack = bc_with(&demo, &fresh(&demo), &[]).await;
    assert_eq!(ack.status, 200, "{:?}", ack.body);
    let id = ack.body["auth_req_id"].as_str().unwrap().to_owned();
    // The token endpoint's own URL is an accepted audience too.
    let aud_token = format!("{}/token", demo.public_url);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let done = loop {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let a = client_assertion(&demo.jwt_client_key, &demo.jwt_client_id, &aud_token, now(), 60).unwrap();
        let t = token_with(&demo, &a, &id).await;
        if t.error() != "authorization_pending" && t.error() != "slow_down" {
            break t;
        }
        assert!(tokio::time::Instant::now() < deadline, "still pending");
    };
    assert_eq!(done.status, 200, "{:?}", done.body);
    let id_token = done.body["id_token"].as_str().unwrap();
    let header = jsonwebtoken::decode_header(id_token).unwrap();
    assert_eq!(header.alg, Algorithm::ES256, "the client registered ES256");
    let set = jwks(&demo).await;
    let key = DecodingKey::from_jwk(set.find(header.kid.as_deref().unwrap()).expect("kid published")).unwrap();
    let mut v = Validation::new(Algorithm::ES256);
    v.set_issuer(&[demo.public_url.as_str()]);
    v.set_audience(&[demo.jwt_client_id.as_str()]);
    let claims = jsonwebtoken::decode::<Value>(id_token, &key, &v).expect("ES256 ID token verifies").claims;
    assert_eq!(claims["azp"], "demo-rp-jwt");
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_assertions_are_invalid_client_and_reach_no_operator() {
    let demo = start_demo().await;
    let id = demo.jwt_client_id.clone();
    let issuer = demo.public_url.clone();

    // Replay: the same assertion twice.
    let once = fresh(&demo);
    assert_eq!(bc_with(&demo, &once, &[]).await.status, 200);
    assert_invalid_client(&bc_with(&demo, &once, &[]).await, "replayed jti", "jti");

    // Wrong audience.
    let other_aud = client_assertion(&demo.jwt_client_key, &id, "https://other.example", now(), 60).unwrap();
    assert_invalid_client(&bc_with(&demo, &other_aud, &[]).await, "wrong aud", "aud");

    // Expired (beyond the 60 s skew).
    let old = client_assertion(&demo.jwt_client_key, &id, &issuer, now() - 400, 120).unwrap();
    assert_invalid_client(&bc_with(&demo, &old, &[]).await, "expired", "expired");

    // Lifetime over the maximum (300 s).
    let long = client_assertion(&demo.jwt_client_key, &id, &issuer, now(), 3600).unwrap();
    assert_invalid_client(&bc_with(&demo, &long, &[]).await, "too long", "lifetime");

    // Signed with a key that is not registered.
    let stranger = SigningKey::from_pem(generate_p256_pkcs8_pem().unwrap().as_bytes()).unwrap();
    let wrong_key = client_assertion(&stranger, &id, &issuer, now(), 60).unwrap();
    assert_invalid_client(&bc_with(&demo, &wrong_key, &[]).await, "wrong key", "key");

    // alg none.
    let none = unsigned(&assertion_claims(&id, &issuer));
    assert_invalid_client(&bc_with(&demo, &none, &[]).await, "alg none", "alg");

    // iss/sub of another client.
    let mut c = assertion_claims("demo-rp", &issuer);
    c["sub"] = json!(id);
    let forged = demo.jwt_client_key.sign(&c).unwrap();
    assert_invalid_client(&bc_with(&demo, &forged, &[]).await, "iss", "iss");

    // Missing jti and a string exp.
    let mut c = assertion_claims(&id, &issuer);
    c.as_object_mut().unwrap().remove("jti");
    assert_invalid_client(&bc_with(&demo, &demo.jwt_client_key.sign(&c).unwrap(), &[]).await, "no jti", "jti");
    let mut c = assertion_claims(&id, &issuer);
    c["exp"] = json!("tomorrow");
    assert_invalid_client(&bc_with(&demo, &demo.jwt_client_key.sign(&c).unwrap(), &[]).await, "exp type", "exp");

    // Wrong assertion type.
    let a = post(
        &demo,
        "/bc-authorize",
        &[("client_assertion_type", "urn:other"), ("client_assertion", &fresh(&demo)), ("scope", "openid")],
    )
    .await;
    assert_invalid_client(&a, "assertion type", "client_assertion_type");

    // The token endpoint checks the same way.
    assert_invalid_client(&token_with(&demo, &none, "x").await, "token, alg none", "alg");
    assert_invalid_client(&token_with(&demo, &old, "x").await, "token, expired", "expired");

    let pushes: u64 = demo.sims.iter().map(|s| s.stats.bc_authorize.load(Ordering::SeqCst)).sum();
    assert_eq!(pushes, 1, "only the one good request reached an operator");
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_may_only_use_its_registered_method() {
    let demo = start_demo().await;
    let issuer = demo.public_url.clone();
    // A secret client presenting a (validly shaped) assertion signed by some key.
    let k = SigningKey::from_pem(generate_p256_pkcs8_pem().unwrap().as_bytes()).unwrap();
    let a = client_assertion(&k, "demo-rp", &issuer, now(), 60).unwrap();
    let r = post(
        &demo,
        "/token",
        &[
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &a),
            ("grant_type", CIBA),
            ("auth_req_id", "x"),
        ],
    )
    .await;
    assert_invalid_client(&r, "secret client with an assertion", "private_key_jwt");
    // The key client presenting the demo secret (Basic and post).
    let r = answer(
        http()
            .post(format!("{}/token", demo.plain_url.as_deref().unwrap()))
            .basic_auth(&demo.jwt_client_id, Some(demo.client_secret.expose()))
            .form(&[("grant_type", CIBA), ("auth_req_id", "x")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((r.status, r.error()), (401, "invalid_client"), "{:?}", r.body);
    let r = post(
        &demo,
        "/token",
        &[
            ("client_id", &demo.jwt_client_id),
            ("client_secret", demo.client_secret.expose()),
            ("grant_type", CIBA),
            ("auth_req_id", "x"),
        ],
    )
    .await;
    assert_eq!((r.status, r.error()), (401, "invalid_client"), "{:?}", r.body);
    // Two methods at once.
    let r = answer(
        http()
            .post(format!("{}/token", demo.plain_url.as_deref().unwrap()))
            .basic_auth("demo-rp", Some(demo.client_secret.expose()))
            .form(&[
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", &fresh(&demo)),
                ("grant_type", CIBA),
                ("auth_req_id", "x"),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((r.status, r.error()), (400, "invalid_request"), "{:?}", r.body);
    demo.stop().await;
}

/// A JWKS endpoint on 127.0.0.1:0 that counts its fetches and whose document can be replaced.
struct JwksServer {
    url: String,
    body: Arc<parking_lot::RwLock<String>>,
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    async fn start(initial: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        let body = Arc::new(parking_lot::RwLock::new(initial));
        let hits = Arc::new(AtomicUsize::new(0));
        let (b, h) = (body.clone(), hits.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let (b, h) = (b.clone(), h.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |_req| {
                        h.fetch_add(1, Ordering::SeqCst);
                        let text = b.read().clone();
                        async move {
                            Ok::<_, std::convert::Infallible>(
                                http::Response::builder()
                                    .header("content-type", "application/json")
                                    .body(http_body_util::Full::new(bytes::Bytes::from(text)))
                                    .unwrap(),
                            )
                        }
                    });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, svc).await;
                });
            }
        });
        Self { url, body, hits, task }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_from_a_jwks_uri_are_fetched_once_cached_and_not_refetched_for_every_unknown_kid() {
    let first = SigningKey::from_pem(generate_rsa_pkcs8_pem().unwrap().as_bytes()).unwrap();
    let server = JwksServer::start(public_jwks(&first)).await;
    let uri = server.url.clone();
    let demo = start_demo_with(move |t| {
        format!(
            "{t}\n[[clients]]\nclient_id = \"uri-rp\"\ntoken_endpoint_auth_method = \"private_key_jwt\"\n\
             jwks_uri = \"{uri}\"\nsector_identifier = \"uri.example\"\n"
        )
    })
    .await;
    let issuer = demo.public_url.clone();
    assert_eq!(server.hits.load(Ordering::SeqCst), 0, "nothing fetched before first use");
    for _ in 0..3 {
        let a = client_assertion(&first, "uri-rp", &issuer, now(), 60).unwrap();
        let r = bc_with(&demo, &a, &[]).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    assert_eq!(server.hits.load(Ordering::SeqCst), 1, "one fetch serves every request while cached");

    // The client rotates to a new key: its kid is unknown, and the last fetch was moments ago
    // (jwks_min_refetch_s = 60), so the gateway does not fetch again yet.
    let second = SigningKey::from_pem(generate_p256_pkcs8_pem().unwrap().as_bytes()).unwrap();
    *server.body.write() = public_jwks(&second);
    for _ in 0..3 {
        let a = client_assertion(&second, "uri-rp", &issuer, now(), 60).unwrap();
        assert_invalid_client(&bc_with(&demo, &a, &[]).await, "unknown kid", "key");
    }
    assert_eq!(server.hits.load(Ordering::SeqCst), 1, "unknown kids do not trigger a fetch each");
    server.task.abort();
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_kid_is_refetched_once_the_interval_allows() {
    let first = SigningKey::from_pem(generate_p256_pkcs8_pem().unwrap().as_bytes()).unwrap();
    let server = JwksServer::start(public_jwks(&first)).await;
    let uri = server.url.clone();
    let demo = start_demo_with(move |t| {
        format!(
            "{}\n[[clients]]\nclient_id = \"uri-rp\"\ntoken_endpoint_auth_method = \"private_key_jwt\"\n\
             jwks_uri = \"{uri}\"\nsector_identifier = \"uri.example\"\n",
            t.replace("jwks_min_refetch_s = 60              #", "jwks_min_refetch_s = 0 #")
        )
    })
    .await;
    assert_eq!(demo.gateway.client_jwt.jwks_min_refetch_s, 0, "test config applied");
    let issuer = demo.public_url.clone();
    let a = client_assertion(&first, "uri-rp", &issuer, now(), 60).unwrap();
    assert_eq!(bc_with(&demo, &a, &[]).await.status, 200);
    let second = SigningKey::from_pem(generate_rsa_pkcs8_pem().unwrap().as_bytes()).unwrap();
    *server.body.write() = public_jwks(&second);
    let b = client_assertion(&second, "uri-rp", &issuer, now(), 60).unwrap();
    let r = bc_with(&demo, &b, &[]).await;
    assert_eq!(r.status, 200, "the rotated key is fetched: {:?}", r.body);
    assert_eq!(server.hits.load(Ordering::SeqCst), 2);
    server.task.abort();
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_publishes_rotation_keys_with_distinct_kids_and_metadata_advertises_the_algorithms() {
    let demo = start_demo().await;
    let set = jwks(&demo).await;
    assert!(set.keys.len() >= 3, "two RSA keys (rotation) and one P-256 key");
    let kids: std::collections::HashSet<_> = set.keys.iter().map(|k| k.common.key_id.clone().unwrap()).collect();
    assert_eq!(kids.len(), set.keys.len(), "distinct kids");
    let raw: Value =
        http().get(format!("{}/jwks", demo.plain_url.as_deref().unwrap())).send().await.unwrap().json().await.unwrap();
    for k in raw["keys"].as_array().unwrap() {
        assert_eq!(k["use"], "sig");
        assert!(k["alg"] == "RS256" || k["alg"] == "ES256", "{k}");
        assert!(k.get("d").is_none(), "public parts only");
    }
    let md: Value = http()
        .get(format!("{}/.well-known/openid-configuration", demo.plain_url.as_deref().unwrap()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(md["id_token_signing_alg_values_supported"], json!(["RS256", "ES256"]));
    assert!(md["token_endpoint_auth_methods_supported"].as_array().unwrap().contains(&json!("private_key_jwt")));
    for k in [
        "token_endpoint_auth_signing_alg_values_supported",
        "request_object_signing_alg_values_supported",
        "backchannel_authentication_request_signing_alg_values_supported",
    ] {
        assert_eq!(md[k], json!(["RS256", "PS256", "ES256"]), "{k}");
    }
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_request_objects_are_accepted_and_every_bad_variant_is_invalid_request_object() {
    let demo = start_demo().await;
    let id = demo.jwt_client_id.clone();
    let issuer = demo.public_url.clone();
    let key = demo.jwt_client_key.clone();
    let h = hint(&demo);
    let params = [("scope", "openid mc_authn"), ("login_hint", h.as_str()), ("binding_message", "Sign in")];
    let bc = |request: String, extra: Vec<(&'static str, String)>| {
        let demo = &demo;
        async move {
            let assertion = fresh(demo);
            let mut form: Vec<(&str, String)> = vec![
                ("client_assertion_type", ASSERTION_TYPE.into()),
                ("client_assertion", assertion),
                ("request", request),
            ];
            form.extend(extra);
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            post(demo, "/bc-authorize", &form).await
        }
    };
    let before = demo.sims[0].stats.bc_authorize.load(Ordering::SeqCst);

    // Good: the parameters come from the object only.
    let good = request_object(&key, &id, &issuer, &params, now(), 60).unwrap();
    let ok = bc(good.clone(), vec![]).await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    assert!(ok.body["auth_req_id"].is_string());
    // Outer parameters may repeat the object's values...
    let same = request_object(&key, &id, &issuer, &params, now(), 60).unwrap();
    assert_eq!(bc(same, vec![("scope", "openid mc_authn".into())]).await.status, 200);
    // ...but not contradict them.
    let other = request_object(&key, &id, &issuer, &params, now(), 60).unwrap();
    let r = bc(other, vec![("login_hint", "MSISDN:34700000021".into())]).await;
    assert_eq!((r.status, r.error()), (400, "invalid_request"), "{:?}", r.body);

    let bad = |what: &'static str, r: Answer, has: &str| {
        assert_eq!((r.status, r.error()), (400, "invalid_request_object"), "{what}: {:?}", r.body);
        let d = r.body["error_description"].as_str().unwrap_or("");
        assert!(d.contains(has), "{what}: {d:?} should name {has:?}");
    };
    // Replayed jti.
    bad("replayed jti", bc(good, vec![]).await, "jti");
    // Bad signature: a valid object's signature swapped for another key's.
    let stranger = SigningKey::from_pem(generate_p256_pkcs8_pem().unwrap().as_bytes()).unwrap();
    let mut forged = request_object(&stranger, &id, &issuer, &params, now(), 60).unwrap();
    let genuine = request_object(&key, &id, &issuer, &params, now(), 60).unwrap();
    let head = genuine.split('.').next().unwrap().to_owned();
    forged = format!("{head}.{}", forged.split_once('.').unwrap().1);
    bad("bad signature", bc(forged, vec![]).await, "signature");
    // Wrong aud, wrong iss.
    bad(
        "wrong aud",
        bc(request_object(&key, &id, "https://other.example", &params, now(), 60).unwrap(), vec![]).await,
        "aud",
    );
    bad("wrong iss", bc(request_object(&key, "demo-rp", &issuer, &params, now(), 60).unwrap(), vec![]).await, "iss");
    // Expired, too long, not yet valid.
    bad("expired", bc(request_object(&key, &id, &issuer, &params, now() - 500, 100).unwrap(), vec![]).await, "expired");
    bad("lifetime", bc(request_object(&key, &id, &issuer, &params, now(), 3600).unwrap(), vec![]).await, "lifetime");
    let mut c: Value = support::claims(&request_object(&key, &id, &issuer, &params, now(), 60).unwrap());
    c["nbf"] = json!(now() + 600);
    c["iat"] = json!(now() + 600);
    c["exp"] = json!(now() + 660);
    bad("nbf ahead", bc(key.sign(&c).unwrap(), vec![]).await, "nbf");
    // Missing nbf (required for CIBA request objects).
    c.as_object_mut().unwrap().remove("nbf");
    c["iat"] = json!(now());
    c["exp"] = json!(now() + 60);
    bad("no nbf", bc(key.sign(&c).unwrap(), vec![]).await, "nbf");
    // alg none.
    let mut c: Value = support::claims(&request_object(&key, &id, &issuer, &params, now(), 60).unwrap());
    c["jti"] = json!("unsigned-1");
    bad("alg none", bc(unsigned(&c), vec![]).await, "alg");

    assert_eq!(
        demo.sims[0].stats.bc_authorize.load(Ordering::SeqCst),
        before + 2,
        "only the two accepted requests reached the operator"
    );
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_client_without_keys_gets_invalid_request_object() {
    let demo = start_demo().await;
    let k = SigningKey::from_pem(generate_p256_pkcs8_pem().unwrap().as_bytes()).unwrap();
    let obj = request_object(
        &k,
        "demo-rp",
        &demo.public_url,
        &[("scope", "openid"), ("login_hint", &hint(&demo))],
        now(),
        60,
    )
    .unwrap();
    let rp = support::Rp::new(&demo);
    let r = rp.post("/bc-authorize", &[("request", obj.as_str())]).await;
    assert_eq!((r.status, r.error()), (400, "invalid_request_object"), "{:?}", r.body);
    demo.stop().await;
}
