//! SMS fallback end to end against the demo (issue 6): `demo-rp-sms` (opted in) gets an SMS
//! confirm link when push is unavailable for a "nothing sent" reason or after the push deadline;
//! the link is read from the SMSC simulator and approved through the confirm page with plain
//! HTTP requests; refusals (denied, acr 3, SIM swapped, SMSC throttled, limits, no opt-in)
//! never produce an SMS.

mod support;

use mcgate::demo::{sms_test_msisdn, Demo};
use mcgate::msisdn::Msisdn;
use serde_json::Value;
use std::time::Duration;
use support::{claims, start_demo, start_demo_with, Answer, Rp};

fn sms_rp(demo: &Demo) -> Rp {
    Rp { client_id: demo.sms_client_id.clone(), ..Rp::new(demo) }
}

/// A test number of `operator` ending in `last` that SMS may reach (not a refused range).
fn number(demo: &Demo, operator: &str, last: u8) -> String {
    sms_test_msisdn(&demo.gateway, "demo-rp-sms", operator, last).expect("test number").digits()
}

/// `digits` with its second-to-last digit set to `d` (the SIM-swap simulator's script).
fn with_second_to_last(digits: &str, d: char) -> String {
    let mut c: Vec<char> = digits.chars().collect();
    let n = c.len();
    c[n - 2] = d;
    c.into_iter().collect()
}

async fn ciba(rp: &Rp, msisdn: &str, extra: &[(&str, &str)]) -> Answer {
    let hint = format!("MSISDN:{msisdn}");
    let mut form = vec![("scope", "openid mc_authn"), ("login_hint", hint.as_str())];
    form.extend_from_slice(extra);
    rp.post("/bc-authorize", &form).await
}

/// The last SMS the SMSC simulator holds for `msisdn` (over its HTTP view), if any.
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

/// Opens the confirm page, then presses Approve (its form's CSRF token included).
async fn approve_link(link: &str) {
    let http = reqwest::Client::new();
    let page = http.get(link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let at = html.find("name=\"csrf\" value=\"").expect("csrf field") + "name=\"csrf\" value=\"".len();
    let csrf: String = html[at..].chars().take_while(|c| *c != '"').collect();
    let done = http.post(link).form(&[("csrf", csrf.as_str()), ("decision", "approve")]).send().await.unwrap();
    assert_eq!(done.status(), 200, "approve accepted");
}

/// Polls `/token` until the answer is not pending (bounded).
async fn poll(rp: &Rp, ack: &Answer) -> Answer {
    rp.poll_until_done(ack, Duration::from_secs(20)).await.0
}

/// Waits (bounded) for an SMS to `msisdn`, polling `/token` meanwhile so the gateway moves on.
async fn wait_for_sms(demo: &Demo, rp: &Rp, ack: &Answer, msisdn: &str) -> String {
    let id = ack.body["auth_req_id"].as_str().unwrap();
    for _ in 0..60 {
        if let Some(t) = sms_text(demo, msisdn).await {
            return t;
        }
        let a = rp.token(id).await;
        assert!(matches!(a.error(), "authorization_pending" | "slow_down"), "still pending: {:?}", a.body);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("no SMS to the number");
}

fn assert_sms_tokens(tokens: &Answer) {
    assert_eq!(tokens.status, 200, "{:?}", tokens.body);
    let id = claims(tokens.body["id_token"].as_str().unwrap());
    assert_eq!(id["acr"], "2");
    assert_eq!(id["amr"], serde_json::json!(["sms"]));
}

#[tokio::test]
async fn not_enrolled_and_operator_500_fall_back_to_an_sms_link_approved_on_the_confirm_page() {
    let demo = start_demo().await;
    let rp = sms_rp(&demo);
    for last in [4u8, 5] {
        let msisdn = number(&demo, "movistar", last);
        let ack = ciba(&rp, &msisdn, &[("binding_message", "Sign in to Demo")]).await;
        assert_eq!(ack.status, 200, "…{last}: {:?}", ack.body);
        let text = sms_text(&demo, &msisdn).await.expect("SMS sent at once");
        assert!(text.contains("Sign in to Demo"), "binding message in the SMS");
        assert_eq!(rp.token(ack.body["auth_req_id"].as_str().unwrap()).await.error(), "authorization_pending");
        approve_link(&confirm_link(&demo, &text)).await;
        assert_sms_tokens(&poll(&rp, &ack).await);
    }
    assert_eq!(demo.smsc.messages().len() as u64, 2, "one SMS per transaction");
    // A client without opt-in never gets SMS: today's answers.
    let plain = Rp::new(&demo);
    assert_eq!(ciba(&plain, &number(&demo, "movistar", 4), &[]).await.error(), "unknown_user_id");
    let ack = ciba(&plain, &number(&demo, "movistar", 5), &[]).await;
    assert!(ack.status == 503 || poll(&plain, &ack).await.error() == "transaction_failed", "{:?}", ack.body);
    assert_eq!(demo.smsc.messages().len() as u64, 2, "no SMS for a client without sms_fallback");
    demo.stop().await;
}

#[tokio::test]
async fn operator_without_mobile_connect_falls_back_for_opted_in_clients_only() {
    let demo = start_demo_with(|t| t.replacen("id = \"vodafone\"\n", "id = \"vodafone\"\npush = false\n", 1)).await;
    let msisdn = number(&demo, "vodafone", 1);
    assert_eq!(ciba(&Rp::new(&demo), &msisdn, &[]).await.error(), "access_denied");
    let rp = sms_rp(&demo);
    let ack = ciba(&rp, &msisdn, &[]).await;
    assert_eq!(ack.status, 200, "{:?}", ack.body);
    let text = sms_text(&demo, &msisdn).await.expect("SMS");
    approve_link(&confirm_link(&demo, &text)).await;
    assert_sms_tokens(&poll(&rp, &ack).await);
    demo.stop().await;
}

#[tokio::test]
async fn denied_and_acr_3_never_produce_an_sms() {
    let demo = start_demo().await;
    let rp = sms_rp(&demo);
    let ack = ciba(&rp, &number(&demo, "movistar", 2), &[]).await;
    assert_eq!(poll(&rp, &ack).await.error(), "access_denied");
    let a = ciba(&rp, &number(&demo, "movistar", 4), &[("acr_values", "3")]).await;
    assert_eq!(a.error(), "unknown_user_id", "acr 3: the class's answer, no SMS");
    assert_eq!(demo.smsc.messages().len() as u64, 0);
    // `mcgate demo` prints which numbers fall back and where the SMS shows.
    let text = mcgate::demo::instructions(&demo, std::path::Path::new("ca.pem"), std::path::Path::new("key.pem"));
    assert!(text.contains(&number(&demo, "movistar", 4)) && text.contains(&format!("{}/sms/", demo.smsc.http_url())));
    demo.stop().await;
}

#[tokio::test]
async fn maybe_delivered_push_falls_back_only_after_the_push_deadline_and_once() {
    // movistar's push deadline 3 s; the slow operator (…6) takes 2 s, the gateway waits 1 s.
    let demo = start_demo_with(|t| t.replacen("push_timeout_s = 60", "push_timeout_s = 3", 1)).await;
    let rp = sms_rp(&demo);
    let msisdn = number(&demo, "movistar", 6);
    let ack = ciba(&rp, &msisdn, &[]).await;
    assert_eq!(ack.status, 200, "{:?}", ack.body);
    assert!(sms_text(&demo, &msisdn).await.is_none(), "no SMS while the push may be live");
    let text = wait_for_sms(&demo, &rp, &ack, &msisdn).await;
    approve_link(&confirm_link(&demo, &text)).await;
    assert_sms_tokens(&poll(&rp, &ack).await);
    assert_eq!(demo.smsc.messages().len() as u64, 1, "one SMS only");
    demo.stop().await;
}

#[tokio::test]
async fn sim_swapped_or_smsc_throttled_fail_clearly() {
    let demo = start_demo().await;
    let rp = sms_rp(&demo);
    let swapped = with_second_to_last(&number(&demo, "movistar", 4), '9');
    let ack = ciba(&rp, &swapped, &[]).await;
    assert_eq!(ack.status, 200, "{:?}", ack.body);
    let a = poll(&rp, &ack).await;
    assert_eq!(a.error(), "transaction_failed");
    assert!(a.body["error_description"].as_str().unwrap_or("").contains("sim_swap"), "{:?}", a.body);
    assert_eq!(demo.smsc.messages().len() as u64, 0, "no SMS to a swapped SIM");

    demo.smsc.set_fault(mcgate::sim::smsc::Fault::Throttle);
    let ack = ciba(&rp, &number(&demo, "movistar", 5), &[]).await;
    let a = poll(&rp, &ack).await;
    assert_eq!(a.error(), "transaction_failed");
    assert!(a.body["error_description"].as_str().unwrap_or("").contains("sms_unavailable"), "{:?}", a.body);
    demo.stop().await;
}

#[tokio::test]
async fn a_pumping_burst_stops_at_the_client_limits_while_push_keeps_working() {
    let demo = start_demo_with(|t| {
        t.replacen(
            "client_name = \"Demo RP (SMS fallback)\"\n",
            "client_name = \"Demo RP (SMS fallback)\"\nsms_hourly_budget = 4\n",
            1,
        )
    })
    .await;
    let rp = sms_rp(&demo);
    let base = number(&demo, "movistar", 4);
    let (mut sent, mut refused) = (0, 0);
    for i in 0..10u32 {
        // Distinct not-enrolled numbers (second-to-last digit 0-5: SIM not swapped).
        let mut c: Vec<char> = base.chars().collect();
        let n = c.len();
        c[n - 2] = char::from_digit(i % 6, 10).unwrap();
        c[n - 3] = char::from_digit(i / 6, 10).unwrap();
        let msisdn: String = c.into_iter().collect();
        assert!(Msisdn::from_digits(msisdn.parse().unwrap()).is_ok());
        let ack = ciba(&rp, &msisdn, &[]).await;
        assert_eq!(ack.status, 200, "{:?}", ack.body);
        let a = rp.token(ack.body["auth_req_id"].as_str().unwrap()).await;
        match a.error() {
            "authorization_pending" => sent += 1,
            "transaction_failed" => {
                assert!(a.body["error_description"].as_str().unwrap_or("").contains("rate_limited"), "{:?}", a.body);
                refused += 1;
            }
            other => panic!("{other}: {:?}", a.body),
        }
    }
    assert!((1..=4).contains(&sent), "sent {sent}");
    assert!(refused >= 6, "refused {refused}");
    assert_eq!(demo.smsc.messages().len() as u64, sent as u64);
    // Push is never blocked by SMS limits, for this client or others.
    for r in [rp.clone(), Rp::new(&demo)] {
        let ack = ciba(&r, &number(&demo, "movistar", 1), &[]).await;
        assert_eq!(poll(&r, &ack).await.status, 200);
    }
    demo.stop().await;
}

/// Value of `name="<name>" value="…"` in a page.
fn hidden(html: &str, name: &str) -> String {
    let needle = format!("name=\"{name}\" value=\"");
    let at = html.find(&needle).unwrap_or_else(|| panic!("{name} field")) + needle.len();
    html[at..].chars().take_while(|c| *c != '"').collect()
}

#[tokio::test]
async fn redirect_flow_with_operator_500_goes_to_the_otp_page_and_the_right_code_gets_tokens() {
    const CB: &str = "http://127.0.0.1/demo-rp-sms/callback";
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let demo = start_demo().await;
    let cert = reqwest::Certificate::from_pem(demo.tls_cert_pem.as_bytes()).unwrap();
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .tls_certs_only([cert])
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let msisdn = number(&demo, "movistar", 5);
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair("response_type", "code")
        .append_pair("client_id", &demo.sms_client_id)
        .append_pair("redirect_uri", CB)
        .append_pair("scope", "openid mc_authn")
        .append_pair("state", "st-sms")
        .append_pair("nonce", "n-sms")
        .append_pair("login_hint", &format!("MSISDN:{msisdn}"))
        .append_pair("code_challenge", CHALLENGE)
        .append_pair("code_challenge_method", "S256");
    let mut next = format!("{}/authorize?{}", demo.public_url, q.finish());
    // RP → /authorize → operator (server_error) → /callback → our OTP page.
    let mut page = None;
    for _ in 0..4 {
        let r = browser.get(&next).send().await.unwrap();
        assert_eq!(r.status(), 302, "{next}");
        let loc = r.headers()["location"].to_str().unwrap().to_owned();
        if loc.starts_with("/sms/otp?") {
            page = Some(format!("{}{loc}", demo.public_url));
            break;
        }
        assert!(!loc.starts_with(CB), "went back to the RP instead: {loc}");
        next = loc;
    }
    let page = page.expect("sent to the OTP page");
    let html = browser.get(&page).send().await.unwrap().text().await.unwrap();
    let text = sms_text(&demo, &msisdn).await.expect("SMS with the code");
    let (host, code) = mcgate::sms::message::parse_origin_bound(&text).expect("origin-bound last line");
    assert_eq!(host, "127.0.0.1");
    let form = [("s", hidden(&html, "s")), ("csrf", hidden(&html, "csrf")), ("code", code)];
    let r = browser.post(format!("{}/sms/otp", demo.public_url)).form(&form).send().await.unwrap();
    assert_eq!(r.status(), 302);
    let back = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    assert!(back.as_str().starts_with(CB));
    let our_code = back.query_pairs().find(|(k, _)| k == "code").expect("code").1.into_owned();
    let rp = sms_rp(&demo);
    let tokens = rp
        .post(
            "/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", &our_code),
                ("redirect_uri", CB),
                ("code_verifier", VERIFIER),
            ],
        )
        .await;
    assert_eq!(tokens.status, 200, "{:?}", tokens.body);
    let id = claims(tokens.body["id_token"].as_str().unwrap());
    assert_eq!(id["acr"], "2");
    assert_eq!(id["amr"], serde_json::json!(["sms", "otp"]));
    assert_eq!(id["nonce"], "n-sms");
    demo.stop().await;
}

#[tokio::test]
async fn operator_error_map_reclassifies_token_endpoint_errors_in_the_ciba_adapter() {
    // The simulator's "deny" (…2) answers access_denied / user_denied at its token endpoint; this
    // operator's error_map says that exact pair means "not enrolled" (nothing reached the person).
    let demo = start_demo_with(|t| {
        let t2 = t.replacen(
            "\"access_denied:user_not_registered\" = \"not_enrolled\"",
            "\"access_denied:user_denied\" = \"not_enrolled\"",
            1,
        );
        assert_ne!(t, t2, "the demo configuration has movistar's error_map entry");
        t2
    })
    .await;
    // A client without SMS fallback gets the mapped class's failure, not access_denied.
    let rp = Rp::new(&demo);
    let msisdn = number(&demo, "movistar", 2);
    let ack = ciba(&rp, &msisdn, &[]).await;
    let done = poll(&rp, &ack).await;
    assert_eq!((done.status, done.error()), (400, "transaction_failed"), "{:?}", done.body);
    assert_eq!(done.body["error_description"], "not_enrolled");
    assert_eq!(demo.smsc.messages().len() as u64, 0, "no SMS for a client without sms_fallback");
    // An opted-in client falls back to SMS: the class is "nothing sent". Polls at the announced
    // interval (the gateway asks the operator on the RP's poll).
    let rp = sms_rp(&demo);
    let ack = ciba(&rp, &msisdn, &[]).await;
    let id = ack.body["auth_req_id"].as_str().unwrap();
    let mut text = None;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let a = rp.token(id).await;
        assert_eq!(a.error(), "authorization_pending", "{:?}", a.body);
        text = sms_text(&demo, &msisdn).await;
        if text.is_some() {
            break;
        }
    }
    approve_link(&confirm_link(&demo, &text.expect("an SMS to the number"))).await;
    assert_sms_tokens(&poll(&rp, &ack).await);
    // Another operator without the entry keeps the built-in rule: denied, no SMS.
    let ack = ciba(&rp, &number(&demo, "vodafone", 2), &[]).await;
    assert_eq!(poll(&rp, &ack).await.error(), "access_denied");
    assert_eq!(demo.smsc.messages().len() as u64, 1);
    demo.stop().await;
}
