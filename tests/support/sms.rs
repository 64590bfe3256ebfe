//! SMS fallback fixtures for page tests: arms a `pending_sms` transaction of the demo client
//! straight in the demo's store (confirm link for CIBA, or code for the redirect flow), as the
//! fallback path would, so the pages can be driven without an operator failing first.

use mcgate::demo::Demo;
use mcgate::flow::redirect::{s256, RedirectFlow};
use mcgate::flow::{Transaction, TxState};
use mcgate::sms::otp::{self, OneTimeSecret, SmsMode};

/// Where the armed redirect-flow transactions send the browser back (nothing need answer there).
pub const REDIRECT_URI: &str = "http://127.0.0.1/demo-rp/callback";
/// The PKCE verifier of the armed redirect-flow transactions.
pub const VERIFIER: &str = "sms-pages-test-verifier-0123456789-abcdefghijklmnop";

/// A `pending_sms` transaction of the demo client, armed in `mode` (`Otp`: with a redirect flow
/// to [`REDIRECT_URI`], state `rp-state`, nonce `rp-nonce`, PKCE of [`VERIFIER`]), stored; for
/// `Link` the confirm link is published. Returns it and its secret (the code or link token).
pub async fn arm(demo: &Demo, mode: SmsMode, binding: Option<&str>, language: &str) -> (Transaction, OneTimeSecret) {
    let gw = &demo.gateway;
    let now = gw.clock.now_ms();
    let mut tx = Transaction {
        id: mcgate::clock::random_token(32),
        client_id: demo.client_id.clone(),
        msisdn: 34600000001,
        operator: gw.operator_info[0].id.clone(),
        route_source: "prefix".into(),
        state: TxState::PendingSms,
        scope: "openid mc_authn".into(),
        acr_floor: 2,
        binding_message: binding.map(str::to_owned),
        created_at_ms: now,
        expires_at_ms: now + 300_000,
        interval_s: 1,
        next_poll_at_ms: now,
        push_deadline_ms: now + 300_000,
        ..Default::default()
    };
    if mode == SmsMode::Otp {
        tx.redirect = Some(Box::new(RedirectFlow {
            redirect_uri: REDIRECT_URI.into(),
            state: "rp-state".into(),
            nonce: "rp-nonce".into(),
            code_challenge: Some(s256(VERIFIER)),
            version: "mc_v1.1".into(),
            ..Default::default()
        }));
    }
    let (state, secret) = gw.sms_codes.arm(&tx, mode, now, Some(language)).unwrap();
    tx.sms = Some(Box::new(state));
    gw.store.insert(tx.clone(), tx.expires_at_ms + 300_000).await.unwrap();
    if mode == SmsMode::Link {
        otp::publish_link(gw, &secret, &tx).await.unwrap();
    }
    (tx, secret)
}

/// The absolute URL of the confirm page of link `token`.
pub fn confirm_url(demo: &Demo, token: &OneTimeSecret) -> String {
    format!("{}/sms/confirm/{}", demo.plain_url.as_deref().expect("plain listener"), token.expose())
}

/// Opens the code page of the armed OTP transaction `tx`; its absolute URL.
pub async fn code_page_url(demo: &Demo, tx: &Transaction) -> String {
    let path = mcgate::rp::sms_otp::open_page(&demo.gateway, tx).await.unwrap();
    format!("{}{path}", demo.plain_url.as_deref().expect("plain listener"))
}
