//! The redirect (authorization code) flow end to end against the demo gateway and its simulated
//! operators: a browser with redirects disabled follows every hop by hand (RP → `/authorize` →
//! operator `/authorize` → `/callback` → the RP's `redirect_uri`), then the RP redeems the code
//! at `/token` and calls `/userinfo`. Operator outcomes are scripted by the MSISDN's last digit.

mod support;

use mcgate::demo::{test_msisdn, Demo};
use serde_json::Value;
use std::time::Duration;
use support::{answer, claims, Answer};

const RP_CALLBACK: &str = "http://127.0.0.1/demo-rp/callback";
const SPA_CALLBACK: &str = "http://127.0.0.1/demo-spa/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// A browser that never follows redirects and trusts the demo's certificate.
struct Browser {
    http: reqwest::Client,
}

/// One answer to the browser.
struct Hop {
    status: u16,
    location: Option<String>,
    content_type: String,
    body: String,
}

impl Browser {
    fn new(demo: &Demo) -> Self {
        let cert = reqwest::Certificate::from_pem(demo.tls_cert_pem.as_bytes()).unwrap();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .tls_certs_only([cert])
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        Self { http }
    }

    async fn hop(&self, r: reqwest::RequestBuilder) -> Hop {
        let r = r.send().await.expect("request");
        let h = r.headers();
        let location = h.get("location").map(|v| v.to_str().unwrap().to_owned());
        let content_type = h.get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        Hop { status: r.status().as_u16(), location, content_type, body: r.text().await.unwrap_or_default() }
    }

    async fn get(&self, url: &str) -> Hop {
        self.hop(self.http.get(url)).await
    }

    /// Follows 302s from `url` until one points at `redirect_uri` (at most 4 hops); returns
    /// that location and the operator URL seen on the way.
    async fn run_to_rp(&self, url: &str, redirect_uri: &str) -> (url::Url, String) {
        let mut next = url.to_owned();
        let mut operator_url = String::new();
        for i in 0..4 {
            let hop = self.get(&next).await;
            assert_eq!(hop.status, 302, "hop {i} to {next}: {} {}", hop.status, hop.body);
            let loc = hop.location.expect("Location");
            if loc.starts_with(redirect_uri) {
                return (url::Url::parse(&loc).unwrap(), operator_url);
            }
            if i == 0 {
                operator_url = loc.clone();
            }
            next = loc;
        }
        panic!("no redirect back to {redirect_uri} within 4 hops");
    }
}

/// An authorization request.
struct Request<'a> {
    client_id: &'a str,
    redirect_uri: &'a str,
    login_hint: Option<String>,
    pkce: bool,
    extra: Vec<(&'a str, &'a str)>,
}

impl<'a> Request<'a> {
    fn new(client_id: &'a str, redirect_uri: &'a str, login_hint: String) -> Self {
        Self { client_id, redirect_uri, login_hint: Some(login_hint), pkce: true, extra: vec![] }
    }

    fn url(&self, demo: &Demo) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("response_type", "code")
            .append_pair("client_id", self.client_id)
            .append_pair("redirect_uri", self.redirect_uri)
            .append_pair("scope", "openid mc_authn")
            .append_pair("state", "rp-state-123")
            .append_pair("nonce", "rp-nonce-456");
        if let Some(h) = &self.login_hint {
            q.append_pair("login_hint", h);
        }
        if self.pkce {
            q.append_pair("code_challenge", CHALLENGE).append_pair("code_challenge_method", "S256");
        }
        for (k, v) in &self.extra {
            q.append_pair(k, v);
        }
        format!("{}/authorize?{}", demo.public_url, q.finish())
    }
}

fn number(demo: &Demo, operator: &str, digit: u8) -> String {
    format!("MSISDN:{}", test_msisdn(&demo.gateway, operator, digit).expect("test number").digits())
}

fn param(u: &url::Url, name: &str) -> Option<String> {
    u.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// Redeems `code` as a confidential client (Basic) or, with `secret = None`, as a public one.
async fn redeem(demo: &Demo, client_id: &str, secret: Option<&str>, form: &[(&str, &str)]) -> Answer {
    let http = reqwest::Client::new();
    let mut body: Vec<(&str, &str)> = vec![("grant_type", "authorization_code")];
    body.extend_from_slice(form);
    let mut r = http.post(format!("{}/token", demo.plain_url.as_ref().unwrap()));
    match secret {
        Some(s) => r = r.basic_auth(client_id, Some(s)),
        None => body.push(("client_id", client_id)),
    }
    answer(r.form(&body).send().await.unwrap()).await
}

async fn confidential(demo: &Demo, code: &str, redirect_uri: &str, verifier: Option<&str>) -> Answer {
    let mut form = vec![("code", code), ("redirect_uri", redirect_uri)];
    if let Some(v) = verifier {
        form.push(("code_verifier", v));
    }
    redeem(demo, &demo.client_id, Some(demo.client_secret.expose()), &form).await
}

async fn userinfo(demo: &Demo, auth: Option<&str>, post: bool) -> Answer {
    let http = reqwest::Client::new();
    let url = format!("{}/userinfo", demo.plain_url.as_ref().unwrap());
    let mut r = if post { http.post(url) } else { http.get(url) };
    if let Some(a) = auth {
        r = r.header("authorization", a);
    }
    answer(r.send().await.unwrap()).await
}

/// Runs a flow to the RP's redirect_uri and returns the code.
async fn code_for(demo: &Demo, b: &Browser, req: &Request<'_>) -> String {
    let (back, _) = b.run_to_rp(&req.url(demo), req.redirect_uri).await;
    param(&back, "code").unwrap_or_else(|| panic!("no code in {back}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path_with_pkce_state_nonce_iss_tokens_and_userinfo() {
    let demo = support::start_demo().await;
    let b = Browser::new(&demo);
    let req = Request::new("demo-rp", RP_CALLBACK, number(&demo, "movistar", 1));
    let (back, operator_url) = b.run_to_rp(&req.url(&demo), RP_CALLBACK).await;

    // The operator hop carries our own values, never the RP's.
    let op = url::Url::parse(&operator_url).unwrap();
    assert!(operator_url.starts_with(demo.sims[0].issuer()), "{operator_url}");
    assert_eq!(param(&op, "redirect_uri").unwrap(), format!("{}/callback", demo.public_url));
    assert!(param(&op, "login_hint").unwrap().starts_with("MSISDN:34"));
    for (ours, rp) in [("state", "rp-state-123"), ("nonce", "rp-nonce-456")] {
        let v = param(&op, ours).unwrap();
        assert_ne!(v, rp, "the RP's {ours} must not reach the operator");
        assert!(v.len() >= 22, "{ours} has at least 128 bits");
    }
    assert_eq!(param(&op, "code_challenge_method").as_deref(), Some("S256"));

    // Back at the RP: code, the RP's state, our issuer (RFC 9207).
    assert_eq!(param(&back, "state").as_deref(), Some("rp-state-123"));
    assert_eq!(param(&back, "iss").as_deref(), Some(demo.public_url.as_str()));
    let code = param(&back, "code").unwrap();
    assert!(code.len() >= 43, "256-bit code");

    let t = confidential(&demo, &code, RP_CALLBACK, Some(VERIFIER)).await;
    assert_eq!(t.status, 200, "{:?}", t.body);
    assert_eq!(t.headers["cache-control"], "no-store");
    let at = t.body["access_token"].as_str().unwrap();
    let c = claims(t.body["id_token"].as_str().unwrap());
    assert_eq!(c["nonce"], "rp-nonce-456");
    assert_eq!(c["iss"], Value::String(demo.public_url.clone()));
    assert_eq!(c["aud"], "demo-rp");
    assert_eq!(c["acr"], "2");
    assert_eq!(c["amr"], serde_json::json!(["SIM_OK"]));
    assert!(c["auth_time"].as_u64().unwrap() > 0);
    assert_eq!(c["at_hash"], mcgate::tokens::id_token::half_hash(at));
    let sub = c["sub"].as_str().unwrap();
    assert!(!sub.contains(&req.login_hint.as_ref().unwrap()[7..]), "sub never reveals the MSISDN");
    // The access token is an RFC 9068 JWT for our userinfo endpoint.
    let atc = claims(at);
    assert_eq!(atc["aud"], format!("{}/userinfo", demo.public_url));
    assert_eq!(atc["client_id"], "demo-rp");
    assert_eq!(atc["sub"], sub);

    for post in [false, true] {
        let u = userinfo(&demo, Some(&format!("Bearer {at}")), post).await;
        assert_eq!(u.status, 200, "{:?}", u.body);
        assert_eq!(u.body["sub"], sub);
    }

    // Reusing the code fails.
    let again = confidential(&demo, &code, RP_CALLBACK, Some(VERIFIER)).await;
    assert_eq!((again.status, again.error()), (400, "invalid_grant"));
    demo.stop().await;
}

/// S-26: a replayed authorization code revokes the access token issued from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_code_revokes_the_access_token_issued_from_it() {
    let demo = support::start_demo().await;
    let b = Browser::new(&demo);
    let code = code_for(&demo, &b, &Request::new("demo-rp", RP_CALLBACK, number(&demo, "movistar", 1))).await;
    let t = confidential(&demo, &code, RP_CALLBACK, Some(VERIFIER)).await;
    assert_eq!(t.status, 200, "{:?}", t.body);
    let bearer = format!("Bearer {}", t.body["access_token"].as_str().unwrap());
    assert_eq!(userinfo(&demo, Some(&bearer), false).await.status, 200, "works before the replay");

    // Another, unrelated token stays valid through the replay.
    let other_code = code_for(&demo, &b, &Request::new("demo-rp", RP_CALLBACK, number(&demo, "movistar", 1))).await;
    let other = confidential(&demo, &other_code, RP_CALLBACK, Some(VERIFIER)).await;
    let other_bearer = format!("Bearer {}", other.body["access_token"].as_str().unwrap());

    let replay = confidential(&demo, &code, RP_CALLBACK, Some(VERIFIER)).await;
    assert_eq!((replay.status, replay.error()), (400, "invalid_grant"));
    for post in [false, true] {
        let u = userinfo(&demo, Some(&bearer), post).await;
        assert_eq!(u.status, 401, "the first access token is dead: {:?}", u.body);
        let challenge = u.headers["www-authenticate"].to_str().unwrap();
        assert!(challenge.contains("invalid_token"), "{challenge}");
    }
    let again = confidential(&demo, &code, RP_CALLBACK, Some(VERIFIER)).await;
    assert_eq!((again.status, again.error()), (400, "invalid_grant"), "a third use is still refused");
    assert_eq!(userinfo(&demo, Some(&other_bearer), false).await.status, 200, "other tokens live on");
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn userinfo_refuses_missing_and_bad_tokens_in_www_authenticate() {
    let demo = support::start_demo().await;
    let none = userinfo(&demo, None, false).await;
    assert_eq!(none.status, 401);
    let challenge = none.headers["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("Bearer") && !challenge.contains("error="), "{challenge}");
    for bad in ["Bearer nope", "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."] {
        let r = userinfo(&demo, Some(bad), false).await;
        assert_eq!(r.status, 401);
        let challenge = r.headers["www-authenticate"].to_str().unwrap();
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    }
    // An ID token is not an access token.
    let b = Browser::new(&demo);
    let code = code_for(&demo, &b, &Request::new("demo-rp", RP_CALLBACK, number(&demo, "vodafone", 1))).await;
    let t = confidential(&demo, &code, RP_CALLBACK, Some(VERIFIER)).await;
    let id_token = t.body["id_token"].as_str().unwrap();
    let r = userinfo(&demo, Some(&format!("Bearer {id_token}")), false).await;
    assert_eq!(r.status, 401);
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unregistered_redirect_uris_get_an_html_page_and_never_a_redirect() {
    let demo = support::start_demo().await;
    let b = Browser::new(&demo);
    let hint = number(&demo, "movistar", 1);
    for uri in [
        "http://127.0.0.1/demo-rp/callback/",
        "http://127.0.0.1/demo-rp/callback?x=1",
        "HTTP://127.0.0.1/demo-rp/callback",
        "https://127.0.0.1/demo-rp/callback",
        "https://rp.example.org@evil.example/callback",
        "https://evil.example/callback",
        SPA_CALLBACK, // another client's
    ] {
        let hop = b.get(&Request::new("demo-rp", uri, hint.clone()).url(&demo)).await;
        assert_eq!(hop.status, 400, "{uri}");
        assert!(hop.location.is_none(), "{uri}: no redirect");
        assert!(hop.content_type.starts_with("text/html"), "{uri}: {}", hop.content_type);
        assert!(!hop.body.contains("evil.example"), "nothing reflected");
    }
    let unknown = b.get(&Request::new("who", RP_CALLBACK, hint).url(&demo)).await;
    assert_eq!((unknown.status, unknown.location.is_none()), (400, true));
    // An unknown or replayed state at /callback is a page too.
    let cb = b.get(&format!("{}/callback?state=forged&code=x", demo.public_url)).await;
    assert_eq!((cb.status, cb.location.is_none()), (400, true));
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkce_verifier_missing_or_wrong_and_foreign_client_are_invalid_grant() {
    let demo = support::start_demo().await;
    let b = Browser::new(&demo);
    let req = Request::new("demo-rp", RP_CALLBACK, number(&demo, "orange", 1));

    let code = code_for(&demo, &b, &req).await;
    let r = confidential(&demo, &code, RP_CALLBACK, None).await;
    assert_eq!((r.status, r.error()), (400, "invalid_grant"), "missing verifier");

    let code = code_for(&demo, &b, &req).await;
    let r = confidential(&demo, &code, RP_CALLBACK, Some("wrong-verifier-wrong-verifier-wrong-verifier-x")).await;
    assert_eq!((r.status, r.error()), (400, "invalid_grant"), "wrong verifier");

    let code = code_for(&demo, &b, &req).await;
    let r = confidential(&demo, &code, "http://127.0.0.1/other", Some(VERIFIER)).await;
    assert_eq!((r.status, r.error()), (400, "invalid_grant"), "other redirect_uri");

    // demo-rp's code presented by demo-rp-post (same secret, other client): refused, and burnt.
    let code = code_for(&demo, &b, &req).await;
    let secret = demo.client_secret.expose().to_owned();
    let form = [
        ("code", code.as_str()),
        ("redirect_uri", RP_CALLBACK),
        ("code_verifier", VERIFIER),
        ("client_id", "demo-rp-post"),
        ("client_secret", secret.as_str()),
    ];
    let http = reqwest::Client::new();
    let mut body = vec![("grant_type", "authorization_code")];
    body.extend_from_slice(&form);
    let r = answer(http.post(format!("{}/token", demo.plain_url.as_ref().unwrap())).form(&body).send().await.unwrap())
        .await;
    assert_eq!((r.status, r.error()), (400, "invalid_grant"), "another client's code: {:?}", r.body);
    let r = confidential(&demo, &code, RP_CALLBACK, Some(VERIFIER)).await;
    assert_eq!((r.status, r.error()), (400, "invalid_grant"), "a code tried by another client is dead");

    // A confidential client cannot pass as public.
    let code = code_for(&demo, &b, &req).await;
    let r =
        redeem(&demo, "demo-rp", None, &[("code", &code), ("redirect_uri", RP_CALLBACK), ("code_verifier", VERIFIER)])
            .await;
    assert_eq!((r.status, r.error()), (401, "invalid_client"));
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_client_needs_pkce_and_redeems_with_client_id_only() {
    let demo = support::start_demo().await;
    let b = Browser::new(&demo);
    let mut req = Request::new("demo-spa", SPA_CALLBACK, number(&demo, "movistar", 1));
    req.pkce = false;
    let hop = b.get(&req.url(&demo)).await;
    assert_eq!(hop.status, 302);
    let back = url::Url::parse(&hop.location.unwrap()).unwrap();
    assert!(back.as_str().starts_with(SPA_CALLBACK));
    assert_eq!(param(&back, "error").as_deref(), Some("invalid_request"));
    assert_eq!(param(&back, "state").as_deref(), Some("rp-state-123"));
    assert_eq!(param(&back, "iss").as_deref(), Some(demo.public_url.as_str()));

    req.pkce = true;
    let code = code_for(&demo, &b, &req).await;
    let r = redeem(&demo, "demo-spa", None, &[("code", &code), ("redirect_uri", SPA_CALLBACK)]).await;
    assert_eq!((r.status, r.error()), (400, "invalid_grant"), "no verifier");
    let code = code_for(&demo, &b, &req).await;
    let r = redeem(
        &demo,
        "demo-spa",
        None,
        &[("code", &code), ("redirect_uri", SPA_CALLBACK), ("code_verifier", VERIFIER)],
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(claims(r.body["id_token"].as_str().unwrap())["aud"], "demo-spa");
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_outcomes_come_back_as_redirect_errors_with_state() {
    let demo = support::start_demo().await;
    let b = Browser::new(&demo);
    for (digit, error, description) in [
        (2, "access_denied", None),
        (0, "transaction_failed", Some("operator_token_invalid")),
        (4, "transaction_failed", Some("not_enrolled")),
        (5, "transaction_failed", Some("operator_unavailable")),
    ] {
        let req = Request::new("demo-rp", RP_CALLBACK, number(&demo, "movistar", digit));
        let (back, _) = b.run_to_rp(&req.url(&demo), RP_CALLBACK).await;
        assert_eq!(param(&back, "error").as_deref(), Some(error), "digit {digit}: {back}");
        if let Some(d) = description {
            assert_eq!(param(&back, "error_description").as_deref(), Some(d), "digit {digit}");
        }
        assert_eq!(param(&back, "state").as_deref(), Some("rp-state-123"));
        assert_eq!(param(&back, "iss").as_deref(), Some(demo.public_url.as_str()));
        assert!(param(&back, "code").is_none());
    }
    // Early refusals (before the operator) go back the same way.
    let mut req = Request::new("demo-rp", RP_CALLBACK, number(&demo, "movistar", 1));
    req.extra.push(("acr_values", "4"));
    let hop = b.get(&req.url(&demo)).await;
    let back = url::Url::parse(&hop.location.expect("redirect")).unwrap();
    assert_eq!(param(&back, "error").as_deref(), Some("invalid_request"));
    let req = Request::new("demo-rp", RP_CALLBACK, "MSISDN:4420700000001".into());
    let back = url::Url::parse(&b.get(&req.url(&demo)).await.location.expect("redirect")).unwrap();
    assert_eq!(param(&back, "error").as_deref(), Some("unknown_user_id"));
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pin_approval_gives_acr_3_and_legacy_clients_may_skip_pkce() {
    let demo = support::start_demo_with(|t| t.replacen("mc_legacy = false", "mc_legacy = true", 1)).await;
    let b = Browser::new(&demo);
    let mut req = Request::new("demo-rp", RP_CALLBACK, number(&demo, "vodafone", 7));
    req.extra.push(("acr_values", "3"));
    req.extra.push(("max-age", "600"));
    req.pkce = false;
    let code = code_for(&demo, &b, &req).await;
    let t = confidential(&demo, &code, RP_CALLBACK, None).await;
    assert_eq!(t.status, 200, "{:?}", t.body);
    let c = claims(t.body["id_token"].as_str().unwrap());
    assert_eq!((c["acr"].as_str(), c["amr"][0].as_str()), (Some("3"), Some("SIM_PIN")));
    // Without a challenge, a verifier is a downgrade attempt.
    let code = code_for(&demo, &b, &req).await;
    let r = confidential(&demo, &code, RP_CALLBACK, Some(VERIFIER)).await;
    assert_eq!((r.status, r.error()), (400, "invalid_grant"));
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_login_hint_a_number_page_asks_and_its_token_is_single_use() {
    let demo = support::start_demo().await;
    let b = Browser::new(&demo);
    let mut req = Request::new("demo-rp", RP_CALLBACK, String::new());
    req.login_hint = None;
    let page = b.get(&req.url(&demo)).await;
    assert_eq!(page.status, 200);
    assert!(page.content_type.starts_with("text/html"));
    // Browsers apply `form-action` to the 302 that answers the form: every operator's origin
    // (and the RP's, for error redirects) must be allowed, or the browser stays on the page.
    let raw = b.http.get(req.url(&demo)).send().await.unwrap();
    let csp = raw.headers()["content-security-policy"].to_str().unwrap().to_owned();
    for sim in &demo.sims {
        assert!(csp.contains(sim.issuer()), "{} missing from {csp}", sim.issuer());
    }
    assert!(csp.contains("http://127.0.0.1") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(page.body.contains("<label for=\"login_hint\">") && !page.body.contains("<script"), "{}", page.body);
    let token = page.body.split("name=\"request\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();

    let submit = |hint: &str| {
        b.http.post(format!("{}/authorize", demo.public_url)).form(&[("request", token.as_str()), ("login_hint", hint)])
    };
    // A wrong number: the page again, with a fresh token and an explanation.
    let wrong = b.hop(submit("12ab")).await;
    assert_eq!(wrong.status, 400);
    assert!(wrong.body.contains("role=\"alert\""));
    let token2 = wrong.body.split("name=\"request\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    assert_ne!(token2, token);
    // The first token is spent.
    let replay = b.hop(submit("600 000 001")).await;
    assert_eq!((replay.status, replay.location.is_none()), (400, true));

    let digits = test_msisdn(&demo.gateway, "movistar", 1).unwrap().digits();
    let ok = b
        .hop(
            b.http
                .post(format!("{}/authorize", demo.public_url))
                .form(&[("request", token2.as_str()), ("login_hint", &format!("+{digits}"))]),
        )
        .await;
    assert_eq!(ok.status, 302, "{}", ok.body);
    let (back, _) = b.run_to_rp(&ok.location.unwrap(), RP_CALLBACK).await;
    assert_eq!(param(&back, "state").as_deref(), Some("rp-state-123"));
    let t = confidential(&demo, &param(&back, "code").unwrap(), RP_CALLBACK, Some(VERIFIER)).await;
    assert_eq!(t.status, 200, "{:?}", t.body);
    demo.stop().await;
}
