//! SMS race mode end to end against the demo (issue 6): `demo-rp-sms` with `race = true` gets the
//! operator's push AND an SMS confirm link at once for acr 2; the first approval wins by
//! compare-and-set and the other channel is withdrawn (exactly one approval); acr 3 never races.
//! The link is read from the demo's SMSC simulator and answered with plain HTTP requests.

mod support;

use mcgate::demo::{sms_test_msisdn, Demo};
use serde_json::Value;
use std::time::Duration;
use support::{claims, start_demo_tuned, Answer, Rp};

/// The demo with `race = true` on `demo-rp-sms`, the simulated person answering the push after
/// `approve_after`.
async fn race_demo(approve_after: Duration) -> Demo {
    start_demo_tuned(
        &[],
        |t| {
            let at = t.find("client_id = \"demo-rp-sms\"").expect("demo-rp-sms in the config");
            let (head, tail) = t.split_at(at);
            format!("{head}{}", tail.replacen("sms_fallback = true\n", "sms_fallback = true\nrace = true\n", 1))
        },
        |o| o.approve_after = approve_after,
    )
    .await
}

fn sms_rp(demo: &Demo) -> Rp {
    Rp { client_id: demo.sms_client_id.clone(), ..Rp::new(demo) }
}

/// A movistar test number ending in `last` (1: the operator approves; 7: approves with acr 3).
fn number(demo: &Demo, last: u8) -> String {
    sms_test_msisdn(&demo.gateway, "demo-rp-sms", "movistar", last).expect("test number").digits()
}

async fn ciba(rp: &Rp, msisdn: &str, extra: &[(&str, &str)]) -> Answer {
    let hint = format!("MSISDN:{msisdn}");
    let mut form = vec![("scope", "openid mc_authn"), ("login_hint", hint.as_str())];
    form.extend_from_slice(extra);
    let ack = rp.post("/bc-authorize", &form).await;
    assert_eq!(ack.status, 200, "{:?}", ack.body);
    ack
}

/// The last SMS the SMSC simulator holds for `msisdn`, if any.
async fn sms_text(demo: &Demo, msisdn: &str) -> Option<String> {
    let r = reqwest::get(format!("{}/sms/{msisdn}", demo.smsc.http_url())).await.ok()?;
    if r.status() != 200 {
        return None;
    }
    let body: Value = r.json().await.ok()?;
    body["text"].as_str().map(str::to_owned)
}

/// The confirm link of an SMS text, rewritten to the plain loopback listener.
fn confirm_link(demo: &Demo, text: &str) -> String {
    let start = text.find(&format!("{}/sms/confirm/", demo.public_url)).expect("confirm link in the SMS");
    let link: String = text[start..].chars().take_while(|c| !c.is_whitespace()).collect();
    link.replace(&demo.public_url, demo.plain_url.as_deref().unwrap())
}

/// Opens the confirm page (must be live) and returns its CSRF token.
async fn open_link(link: &str) -> String {
    let page = reqwest::get(link).await.unwrap();
    assert_eq!(page.status(), 200, "the race's link page is live");
    let html = page.text().await.unwrap();
    let at = html.find("name=\"csrf\" value=\"").expect("csrf field") + "name=\"csrf\" value=\"".len();
    html[at..].chars().take_while(|c| *c != '"').collect()
}

/// Presses Approve; returns the page's status (200: approved, 404: no longer valid).
async fn press_approve(link: &str, csrf: &str) -> u16 {
    let r = reqwest::Client::new().post(link).form(&[("csrf", csrf), ("decision", "approve")]).send().await.unwrap();
    r.status().as_u16()
}

async fn poll(rp: &Rp, ack: &Answer) -> Answer {
    rp.poll_until_done(ack, Duration::from_secs(20)).await.0
}

fn id_claims(tokens: &Answer) -> Value {
    assert_eq!(tokens.status, 200, "{:?}", tokens.body);
    claims(tokens.body["id_token"].as_str().unwrap())
}

#[tokio::test]
async fn link_approved_first_wins_and_the_later_operator_approval_changes_nothing() {
    let demo = race_demo(Duration::from_millis(1500)).await;
    let rp = sms_rp(&demo);
    let msisdn = number(&demo, 1);
    let ack = ciba(&rp, &msisdn, &[("binding_message", "Race 1")]).await;
    let text = sms_text(&demo, &msisdn).await.expect("race: the SMS link goes out at once beside the push");
    assert!(text.contains("Race 1"));
    let link = confirm_link(&demo, &text);
    let csrf = open_link(&link).await;
    assert_eq!(press_approve(&link, &csrf).await, 200, "the link approves the pending_push race");
    // The operator's person approves too once `approve_after` passes: it must not matter.
    tokio::time::sleep(Duration::from_millis(1800)).await;
    let id = id_claims(&poll(&rp, &ack).await);
    assert_eq!(id["acr"], "2");
    assert_eq!(id["amr"], serde_json::json!(["sms"]), "the link won: amr says sms");
    // Exactly one approval: the link is spent, the auth_req_id too.
    assert_eq!(press_approve(&link, &csrf).await, 404);
    assert_eq!(rp.token(ack.body["auth_req_id"].as_str().unwrap()).await.error(), "invalid_grant");
    assert_eq!(demo.smsc.messages().len(), 1, "one SMS");
    demo.stop().await;
}

#[tokio::test]
async fn push_approved_first_wins_and_the_link_is_no_longer_valid() {
    let demo = race_demo(Duration::from_millis(300)).await;
    let rp = sms_rp(&demo);
    let msisdn = number(&demo, 1);
    let ack = ciba(&rp, &msisdn, &[]).await;
    let text = sms_text(&demo, &msisdn).await.expect("race SMS");
    let link = confirm_link(&demo, &text);
    let csrf = open_link(&link).await;
    // The RP's polling collects the operator's approval before anyone presses the link.
    let id = id_claims(&poll(&rp, &ack).await);
    assert_eq!(id["acr"], "2");
    assert_ne!(id["amr"], serde_json::json!(["sms"]), "the push won: the operator's amr");
    assert_eq!(reqwest::get(&link).await.unwrap().status(), 404, "link page no longer valid");
    assert_eq!(press_approve(&link, &csrf).await, 404, "the link cannot approve a second time");
    demo.stop().await;
}

#[tokio::test]
async fn either_channel_may_win_but_exactly_one_approval_counts() {
    let demo = race_demo(Duration::from_millis(300)).await;
    let rp = sms_rp(&demo);
    let msisdn = number(&demo, 1);
    let ack = ciba(&rp, &msisdn, &[]).await;
    let link = confirm_link(&demo, &sms_text(&demo, &msisdn).await.expect("race SMS"));
    let csrf = open_link(&link).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Both channels answer at once.
    let (pressed, tokens) = tokio::join!(press_approve(&link, &csrf), poll(&rp, &ack));
    let id = id_claims(&tokens);
    match pressed {
        200 => assert_eq!(id["amr"], serde_json::json!(["sms"]), "the link's approval won"),
        404 => assert_ne!(id["amr"], serde_json::json!(["sms"]), "the push's approval won"),
        other => panic!("unexpected confirm page status {other}"),
    }
    assert_eq!(id["acr"], "2");
    assert_eq!(press_approve(&link, &csrf).await, 404, "no second approval");
    demo.stop().await;
}

#[tokio::test]
async fn acr_3_never_races() {
    let demo = race_demo(Duration::from_millis(300)).await;
    let rp = sms_rp(&demo);
    let msisdn = number(&demo, 7);
    let ack = ciba(&rp, &msisdn, &[("acr_values", "3")]).await;
    let id = id_claims(&poll(&rp, &ack).await);
    assert_eq!(id["acr"], "3", "the operator's PIN approval");
    assert!(sms_text(&demo, &msisdn).await.is_none(), "no SMS for acr 3");
    assert_eq!(demo.smsc.messages().len(), 0);
    demo.stop().await;
}
