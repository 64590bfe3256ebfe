//! The SMS pages in a real headless Chromium (issue 6): a `pending_sms` transaction is armed in
//! the demo's store directly (`support::sms`), then the confirm-link page (CIBA) and the code
//! page (redirect flow) are used the way a person would — clicking, typing — and the RP collects
//! its answer at `/token`. Covers approve, deny, expired link, reused link, missing CSRF token,
//! a binding message rendered as text, five wrong codes then locked, the right code sending the
//! browser back to the RP, and both pages with JavaScript blocked.

mod support;

use fantoccini::Locator;
use mcgate::demo::Demo;
use mcgate::flow::{FailReason, TxState};
use mcgate::sms::otp::SmsMode;
use std::collections::HashMap;
use std::time::Duration;
use support::browser::{Browser, Scripts};
use support::sms::{arm, code_page_url, confirm_url, REDIRECT_URI, VERIFIER};
use support::{claims, Rp};

const XSS: &str = "<img src=x onerror=alert(1)>";

/// Clicks `css` and waits (bounded) until the browser has left the current document.
async fn click_and_leave(b: &Browser, css: &str) {
    let old = b.wait_for("html").await;
    b.click(css).await;
    for _ in 0..200 {
        if old.tag_name().await.is_err() {
            return; // stale: a new document replaced it
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("clicking {css} did not load a new page");
}

/// Types `code` into the code page and submits it.
async fn type_code(b: &Browser, code: &str) {
    let input = b.wait_for("#code").await;
    input.clear().await.unwrap();
    input.send_keys(code).await.unwrap();
    click_and_leave(b, "form:first-of-type button[type=submit]").await;
}

/// The query of the browser's current URL, which must be the RP's redirect URI.
async fn back_at_rp(b: &Browser) -> HashMap<String, String> {
    let url = b.client.current_url().await.unwrap();
    assert!(url.as_str().starts_with(REDIRECT_URI), "the browser is back at the RP: {url}");
    url.query_pairs().into_owned().collect()
}

/// The confirm page: binding message as text (no dialog, no markup), then approve → tokens.
async fn approve_by_click(demo: &Demo, b: &Browser) {
    let rp = Rp::new(demo);
    let (tx, token) = arm(demo, SmsMode::Link, Some(XSS), "en").await;
    let url = confirm_url(demo, &token);
    b.goto(&url).await;
    assert_eq!(b.lang().await, "en");
    let binding = b.wait_for("#binding").await;
    assert_eq!(binding.text().await.unwrap(), XSS, "the binding message is shown as text");
    assert!(binding.find_all(Locator::Css("img")).await.unwrap().is_empty(), "no markup from it");
    assert!(b.client.find_all(Locator::Css("img")).await.unwrap().is_empty());
    assert!(!b.dialog_open().await, "no script ran");
    assert!(b.text().await.contains("Demo Relying Party"));
    assert_eq!(rp.token(&tx.id).await.error(), "authorization_pending", "showing the page changes nothing");

    click_and_leave(b, "button[value=approve]").await;
    let done = b.text().await;
    assert!(done.contains("Approved. You can go back to the service."), "{done}");
    assert!(!b.dialog_open().await);

    let tokens = rp.token(&tx.id).await;
    assert_eq!(tokens.status, 200, "{:?}", tokens.body);
    let id = claims(tokens.body["id_token"].as_str().unwrap());
    assert_eq!(id["acr"], "2");
    assert_eq!(id["amr"], serde_json::json!(["sms"]));

    // The link again, as a person would reopen it from the SMS: spent.
    b.goto(&url).await;
    let again = b.text().await;
    assert!(again.contains("This link is no longer valid"), "{again}");
    assert!(b.client.find_all(Locator::Css("button")).await.unwrap().is_empty(), "nothing to approve");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirm_page_approve_by_click_gives_tokens_with_amr_sms_and_the_link_is_spent() {
    let demo = support::start_demo().await;
    let b = Browser::start().await;
    approve_by_click(&demo, &b).await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirm_page_deny_by_click_reaches_the_rp_as_access_denied() {
    let demo = support::start_demo().await;
    let rp = Rp::new(&demo);
    let b = Browser::start().await;
    let (tx, token) = arm(&demo, SmsMode::Link, None, "es").await;
    b.goto(&confirm_url(&demo, &token)).await;
    assert_eq!(b.lang().await, "es");
    click_and_leave(&b, "button[value=deny]").await;
    let done = b.text().await;
    assert!(done.contains("Rechazado. No se ha compartido nada con el servicio."), "{done}");
    assert_eq!(rp.token(&tx.id).await.error(), "access_denied");
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_link_shows_the_no_longer_valid_page_and_approves_nothing() {
    // Long enough for a slow (CI, 2 cores) browser to load the page while the link is live.
    const TTL: Duration = Duration::from_secs(8);
    let demo = support::start_demo_with(|t| t.replace("code_ttl_s = 300", "code_ttl_s = 8")).await;
    let rp = Rp::new(&demo);
    let b = Browser::start().await;
    let (tx, token) = arm(&demo, SmsMode::Link, None, "en").await;
    let armed = tokio::time::Instant::now();
    let url = confirm_url(&demo, &token);
    b.goto(&url).await;
    b.wait_for("button[value=approve]").await;
    tokio::time::sleep_until(armed + TTL + Duration::from_millis(300)).await; // past code_ttl_s

    // The page was open before expiry: approving from it is refused.
    click_and_leave(&b, "button[value=approve]").await;
    let refused = b.text().await;
    assert!(refused.contains("no longer valid") || refused.contains("no válido"), "{refused}");
    // Opening the link afresh: the same page.
    b.goto(&url).await;
    let again = b.text().await;
    assert!(again.contains("no longer valid") || again.contains("no válido"), "{again}");
    assert!(b.client.find_all(Locator::Css("button")).await.unwrap().is_empty());
    assert_eq!(rp.token(&tx.id).await.error(), "authorization_pending", "nothing was approved");
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_without_its_csrf_token_gets_the_refused_page_and_changes_nothing() {
    let demo = support::start_demo().await;
    let rp = Rp::new(&demo);
    let b = Browser::start().await;
    let (tx, token) = arm(&demo, SmsMode::Link, None, "en").await;
    b.goto(&confirm_url(&demo, &token)).await;
    b.wait_for("input[name=csrf]").await;
    b.client.execute("document.querySelector('input[name=csrf]').remove();", vec![]).await.unwrap();
    assert!(b.client.find_all(Locator::Css("input[name=csrf]")).await.unwrap().is_empty());
    click_and_leave(&b, "button[value=approve]").await;
    let refused = b.text().await;
    assert!(refused.contains("This form could not be checked."), "{refused}");
    assert_eq!(b.wait_for("title").await.html(true).await.unwrap(), "Request refused");
    assert_eq!(rp.token(&tx.id).await.error(), "authorization_pending", "nothing changed");

    // The link still works with the page as served.
    b.goto(&confirm_url(&demo, &token)).await;
    click_and_leave(&b, "button[value=approve]").await;
    assert!(b.text().await.contains("Approved."));
    assert_eq!(rp.token(&tx.id).await.status, 200);
    b.close().await;
}

/// The code page: the right code sends the browser back with our code, which redeems to
/// `acr "2"`, `amr ["sms","otp"]`.
async fn right_code_by_typing(demo: &Demo, b: &Browser) {
    let rp = Rp::new(demo);
    let (tx, code) = arm(demo, SmsMode::Otp, Some(XSS), "en").await;
    b.goto(&code_page_url(demo, &tx).await).await;
    let input = b.wait_for("#code").await;
    assert_eq!(input.attr("autocomplete").await.unwrap().as_deref(), Some("one-time-code"));
    assert_eq!(b.wait_for("#binding").await.text().await.unwrap(), XSS);
    assert!(b.client.find_all(Locator::Css("img")).await.unwrap().is_empty());
    assert!(!b.dialog_open().await);

    type_code(b, code.expose()).await;
    let q = back_at_rp(b).await;
    assert_eq!(q["state"], "rp-state");
    assert!(!q.contains_key("error"), "{q:?}");
    let tokens = rp
        .post(
            "/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", &q["code"]),
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
async fn code_page_right_code_sends_the_browser_back_to_the_rp_with_a_code() {
    let demo = support::start_demo().await;
    let b = Browser::start().await;
    right_code_by_typing(&demo, &b).await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_wrong_codes_lock_the_transaction_and_the_right_code_is_then_refused() {
    let demo = support::start_demo().await;
    let b = Browser::start().await;
    let (tx, code) = arm(&demo, SmsMode::Otp, None, "en").await;
    let url = code_page_url(&demo, &tx).await;
    b.goto(&url).await;
    let csrf = b.wait_for("input[name=csrf]").await.attr("value").await.unwrap().unwrap();
    let handle = b.wait_for("input[name=s]").await.attr("value").await.unwrap().unwrap();
    let wrong = ["000000", "111111"].into_iter().find(|w| *w != code.expose()).unwrap();

    for attempt in 1..=4 {
        type_code(&b, wrong).await;
        let page = b.text().await;
        assert!(page.contains("That code was not accepted."), "attempt {attempt}: {page}");
        let input = b.wait_for("#code").await;
        assert_eq!(input.attr("aria-invalid").await.unwrap().as_deref(), Some("true"));
    }
    type_code(&b, wrong).await;
    let q = back_at_rp(&b).await;
    assert_eq!(q["error"], "transaction_failed", "{q:?}");
    assert!(q["error_description"].contains("too_many_attempts"), "{q:?}");
    assert_eq!(q["state"], "rp-state");

    // The page again: gone. The right code, posted with the old form's fields: refused.
    b.goto(&url).await;
    assert!(b.text().await.contains("This page is no longer valid"));
    let post = "const f = document.createElement('form'); f.method = 'post'; f.action = '/sms/otp';\
                for (const [k, v] of [['s', arguments[0]], ['csrf', arguments[1]], ['code', arguments[2]]]) {\
                  const i = document.createElement('input'); i.type = 'hidden'; i.name = k; i.value = v; f.appendChild(i);\
                }\
                document.body.appendChild(f); f.submit();";
    let old = b.wait_for("html").await;
    b.client.execute(post, vec![handle.into(), csrf.into(), code.expose().into()]).await.unwrap();
    for _ in 0..200 {
        if old.tag_name().await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(old.tag_name().await.is_err(), "the hand-made form was submitted");
    let refused = b.text().await;
    assert!(refused.contains("This page is no longer valid"), "{refused}");
    assert!(!b.client.current_url().await.unwrap().as_str().starts_with(REDIRECT_URI));

    let stored = demo.gateway.store.get(&tx.id).await.unwrap().unwrap().value;
    assert_eq!(stored.state, TxState::Failed(FailReason::TooManyAttempts));
    assert_eq!(stored.sms.unwrap().attempts, 5);
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_pages_work_with_javascript_blocked() {
    let demo = support::start_demo().await;
    let b = Browser::start_with(Scripts::Off).await;
    // JavaScript really is off: <noscript> content renders.
    b.goto("data:text/html,<noscript><p id=off>scripts off</p></noscript>").await;
    assert_eq!(b.wait_for("#off").await.text().await.unwrap(), "scripts off");
    approve_by_click(&demo, &b).await;
    right_code_by_typing(&demo, &b).await;
    b.close().await;
}
