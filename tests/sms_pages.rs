//! The SMS pages over HTTP against the real demo gateway: a `pending_sms` transaction is put
//! into the demo's store directly (`tests/support/sms.rs`; tests/sms_fallback.rs drives the real
//! fallback path), then the confirm-link page (CIBA) and the code page (redirect flow) are driven like a
//! browser without JavaScript would, and the RP collects its answer at `/token`.

mod support;

use mcgate::demo::Demo;
use mcgate::flow::{Transaction, TxState};
use mcgate::sms::otp::{self, SmsMode};
use std::time::Duration;
use support::sms::{arm, REDIRECT_URI, VERIFIER};
use support::{claims, Rp};

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn base(demo: &Demo) -> String {
    demo.plain_url.clone().unwrap()
}

fn csrf_of(html: &str) -> String {
    let start = html.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    html[start..].split('"').next().unwrap().to_owned()
}

async fn page(r: reqwest::Response) -> (u16, reqwest::header::HeaderMap, String) {
    (r.status().as_u16(), r.headers().clone(), r.text().await.unwrap())
}

fn assert_strict_headers(h: &reqwest::header::HeaderMap) {
    let csp = h["content-security-policy"].to_str().unwrap();
    for part in ["default-src 'none'", "form-action 'self'", "frame-ancestors 'none'"] {
        assert!(csp.contains(part), "{csp}");
    }
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirm_link_renders_without_changing_state_then_approves_once_with_honest_amr() {
    let demo = support::start_demo().await;
    let rp = Rp::new(&demo);
    let b = browser();
    let (tx, token) = arm(&demo, SmsMode::Link, Some("Pay 10 EUR <script>alert(1)</script>"), "ca").await;
    let url = format!("{}/sms/confirm/{}", base(&demo), token.expose());

    // GET ×3 + HEAD: pages only, the RP still waits (S-10).
    let mut html = String::new();
    for _ in 0..3 {
        let (status, headers, body) = page(b.get(&url).send().await.unwrap()).await;
        assert_eq!(status, 200, "{body}");
        assert_strict_headers(&headers);
        html = body;
    }
    assert_eq!(b.head(&url).send().await.unwrap().status(), 200);
    assert!(html.contains("<html lang=\"ca\">"), "ui_locales decides the language");
    assert!(html.contains("Demo Relying Party"), "the RP's name is shown");
    assert!(html.contains("Pay 10 EUR &lt;script&gt;alert(1)&lt;/script&gt;"), "binding message escaped");
    assert!(!html.contains("<script>"), "no markup from the binding message");
    assert!(html.contains("value=\"approve\"") && html.contains("value=\"deny\""));
    assert_eq!(rp.token(&tx.id).await.error(), "authorization_pending");

    // No CSRF token, or a wrong one: 403 and nothing changes.
    let (status, _, _) = page(b.post(&url).form(&[("decision", "approve")]).send().await.unwrap()).await;
    assert_eq!(status, 403);
    let (status, _, _) =
        page(b.post(&url).form(&[("decision", "approve"), ("csrf", "forged")]).send().await.unwrap()).await;
    assert_eq!(status, 403);
    tokio::time::sleep(Duration::from_millis(1_100)).await; // the RP's 1 s interval
    assert_eq!(rp.token(&tx.id).await.error(), "authorization_pending");

    let csrf = csrf_of(&html);
    let (status, _, body) =
        page(b.post(&url).form(&[("decision", "approve"), ("csrf", &csrf)]).send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Aprovat"), "{body}");

    // Reused link: one "no longer valid" page, for GET and POST alike.
    let (status, _, again) = page(b.get(&url).send().await.unwrap()).await;
    assert_eq!(status, 404);
    assert!(again.contains("Enllaç no vàlid"), "{again}");
    let (status, _, _) = page(b.post(&url).form(&[("decision", "deny"), ("csrf", &csrf)]).send().await.unwrap()).await;
    assert_eq!(status, 404);
    let (status, _, unknown) =
        page(b.get(format!("{}/sms/confirm/not-a-token", base(&demo))).send().await.unwrap()).await;
    assert_eq!(status, 404);
    assert!(unknown.contains("<html lang=\"es\">"), "no transaction: the default language");

    let tokens = rp.token(&tx.id).await;
    assert_eq!(tokens.status, 200, "{:?}", tokens.body);
    let id = claims(tokens.body["id_token"].as_str().unwrap());
    assert_eq!(id["acr"], "2");
    assert_eq!(id["amr"], serde_json::json!(["sms"]));
    assert_eq!(rp.token(&tx.id).await.error(), "invalid_grant", "collected once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirm_link_deny_reaches_the_rp_as_access_denied() {
    let demo = support::start_demo().await;
    let rp = Rp::new(&demo);
    let b = browser();
    let (tx, token) = arm(&demo, SmsMode::Link, None, "en").await;
    let url = format!("{}/sms/confirm/{}", base(&demo), token.expose());
    let html = b.get(&url).header("accept-language", "es").send().await.unwrap().text().await.unwrap();
    assert!(html.contains("<html lang=\"en\">"), "ui_locales before Accept-Language");
    let r = b.post(&url).form(&[("decision", "deny"), ("csrf", &csrf_of(&html))]).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(rp.token(&tx.id).await.error(), "access_denied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_link_shows_the_invalid_page_and_approves_nothing() {
    let demo = support::start_demo_with(|t| t.replace("code_ttl_s = 300", "code_ttl_s = 1")).await;
    let rp = Rp::new(&demo);
    let b = browser();
    let (tx, token) = arm(&demo, SmsMode::Link, None, "en").await;
    let url = format!("{}/sms/confirm/{}", base(&demo), token.expose());
    let html = b.get(&url).send().await.unwrap().text().await.unwrap();
    let csrf = csrf_of(&html);
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let (status, _, body) = page(b.get(&url).send().await.unwrap()).await;
    assert_eq!(status, 404);
    assert!(body.contains("Enlace no válido"), "the link is forgotten with its code: default language; {body}");
    let (status, _, _) =
        page(b.post(&url).form(&[("decision", "approve"), ("csrf", &csrf)]).send().await.unwrap()).await;
    assert_eq!(status, 404, "an approval after expiry is refused");
    assert_eq!(rp.token(&tx.id).await.error(), "authorization_pending", "the transaction itself runs on");
}

/// The redirect flow's code page: its URL, the page and its CSRF token.
async fn open_code_page(demo: &Demo, tx: &Transaction) -> (String, String) {
    let path = mcgate::rp::sms_otp::open_page(&demo.gateway, tx).await.unwrap();
    let url = format!("{}{path}", base(demo));
    let handle = path.split("s=").nth(1).unwrap().to_owned();
    let (status, headers, html) = page(browser().get(&url).send().await.unwrap()).await;
    assert_eq!(status, 200, "{html}");
    assert_strict_headers(&headers);
    for a11y in
        ["autocomplete=\"one-time-code\"", "inputmode=\"numeric\"", "<label for=\"code\">", "<html lang=\"es\">"]
    {
        assert!(html.contains(a11y), "{a11y} in {html}");
    }
    (handle, csrf_of(&html))
}

async fn submit(demo: &Demo, form: &[(&str, &str)]) -> (u16, reqwest::header::HeaderMap, String) {
    page(browser().post(format!("{}/sms/otp", base(demo))).form(form).send().await.unwrap()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn right_code_sends_the_browser_back_with_a_code_that_redeems_to_acr_2_sms_otp() {
    let demo = support::start_demo().await;
    let rp = Rp::new(&demo);
    let (tx, code) = arm(&demo, SmsMode::Otp, Some("Sign in to <b>Demo</b>"), "es").await;
    let (handle, csrf) = open_code_page(&demo, &tx).await;

    let (status, _, _) = submit(&demo, &[("s", &handle), ("code", code.expose())]).await;
    assert_eq!(status, 403, "no CSRF token");
    let spaced = format!("{} {}", &code.expose()[..3], &code.expose()[3..]);
    let (status, headers, body) = submit(&demo, &[("s", &handle), ("csrf", &csrf), ("code", &spaced)]).await;
    assert_eq!(status, 302, "{body}");
    let location = url::Url::parse(headers["location"].to_str().unwrap()).unwrap();
    assert!(location.as_str().starts_with(REDIRECT_URI));
    let q: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(q["state"], "rp-state");
    let our_code = q["code"].clone();

    let (status, _, _) = submit(&demo, &[("s", &handle), ("csrf", &csrf), ("code", code.expose())]).await;
    assert_eq!(status, 404, "single use");

    let tokens = rp
        .post(
            "/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", &our_code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", VERIFIER),
            ],
        )
        .await;
    assert_eq!(tokens.status, 200, "{:?}", tokens.body);
    let id = claims(tokens.body["id_token"].as_str().unwrap());
    assert_eq!(id["acr"], "2");
    assert_eq!(id["amr"], serde_json::json!(["sms", "otp"]));
    assert_eq!(id["nonce"], "rp-nonce");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_wrong_codes_lock_the_transaction_and_the_right_one_then_fails() {
    let demo = support::start_demo().await;
    let (tx, code) = arm(&demo, SmsMode::Otp, Some("<script>x</script>"), "es").await;
    let (handle, csrf) = open_code_page(&demo, &tx).await;
    let wrong = if code.expose() == "000000" { "111111" } else { "000000" };
    let mut pages = Vec::new();
    for junk in [wrong, "12", "abcdef", wrong] {
        let (status, _, html) = submit(&demo, &[("s", &handle), ("csrf", &csrf), ("code", junk)]).await;
        assert_eq!(status, 400, "{html}");
        assert!(html.contains("No se ha aceptado el código"));
        assert!(html.contains("&lt;script&gt;x&lt;/script&gt;") && !html.contains("<script>"));
        pages.push(html);
    }
    assert!(pages.windows(2).all(|w| w[0] == w[1]), "wrong, short and junk codes look alike");
    let (status, headers, _) = submit(&demo, &[("s", &handle), ("csrf", &csrf), ("code", wrong)]).await;
    assert_eq!(status, 302, "the 5th wrong code ends it");
    let location = headers["location"].to_str().unwrap();
    assert!(location.contains("error=transaction_failed"), "{location}");
    assert!(location.contains("too_many_attempts"), "{location}");
    let (status, _, _) = submit(&demo, &[("s", &handle), ("csrf", &csrf), ("code", code.expose())]).await;
    assert_eq!(status, 404, "a right code after the cap is refused");
    let stored = demo.gateway.store.get(&tx.id).await.unwrap().unwrap().value;
    assert_eq!(stored.state, TxState::Failed(mcgate::flow::FailReason::TooManyAttempts));
    assert_eq!(stored.sms.unwrap().attempts, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_on_the_code_page_sends_access_denied() {
    let demo = support::start_demo().await;
    let (tx, _) = arm(&demo, SmsMode::Otp, None, "es").await;
    let (handle, csrf) = open_code_page(&demo, &tx).await;
    let (status, headers, _) = submit(&demo, &[("s", &handle), ("csrf", &csrf), ("action", "cancel")]).await;
    assert_eq!(status, 302);
    assert!(headers["location"].to_str().unwrap().contains("error=access_denied"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_parallel_right_codes_approve_exactly_once() {
    let demo = support::start_demo().await;
    let (tx, code) = arm(&demo, SmsMode::Otp, None, "es").await;
    let code = std::sync::Arc::new(code.expose().to_owned());
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (gw, id, code) = (demo.gateway.clone(), tx.id.clone(), code.clone());
            tokio::spawn(async move { otp::submit_code(&gw, &id, &code).await.unwrap() })
        })
        .collect();
    let mut approved = 0;
    for t in tasks {
        if matches!(t.await.unwrap(), otp::Verdict::Done(d) if d.state == TxState::Approved) {
            approved += 1;
        }
    }
    assert_eq!(approved, 1, "one compare-and-set wins (S-03)");
    let stored = demo.gateway.store.get(&tx.id).await.unwrap().unwrap().value;
    assert_eq!((stored.state, stored.sms.unwrap().attempts), (TxState::Approved, 0));
}
