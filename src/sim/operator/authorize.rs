//! The simulated operator's redirect flow: `GET /authorize` (response_type `code`, our
//! client id, any `redirect_uri`, `state`, `nonce`, `login_hint`, `acr_values`, optional PKCE
//! S256) answering by the login_hint's last digit like the CIBA side, a no-JS page asking for
//! the number when there is no hint, and the `authorization_code` grant at `/token`
//! (client_secret_basic, single-use code, same `redirect_uri`, PKCE checked) returning an ID
//! token with the caller's nonce.

use super::{json_ok, oauth, Outcome, SimOperator};
use crate::flow::redirect::{pkce_ok, valid_pkce_value};
use crate::msisdn::{Msisdn, ParseRules};
use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::Ordering;

/// How long a simulated code stays redeemable, ms.
const CODE_TTL_MS: u64 = 60_000;

/// An issued, not yet redeemed code.
pub(super) struct SimCode {
    msisdn: Msisdn,
    outcome: Outcome,
    redirect_uri: String,
    nonce: String,
    acr_values: String,
    code_challenge: Option<String>,
    expires_ms: u64,
}

impl SimOperator {
    /// `GET /authorize`.
    pub(super) async fn authorize(&self, query: &str) -> Response<Full<Bytes>> {
        self.stats.authorize.fetch_add(1, Ordering::Relaxed);
        let q: HashMap<String, String> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
        let get = |k: &str| q.get(k).map(String::as_str).filter(|v| !v.is_empty());
        if get("client_id") != Some(self.cfg.client_id.as_str()) {
            return html(StatusCode::BAD_REQUEST, "Unknown client", "<p>This client is not registered here.</p>");
        }
        let Some(redirect_uri) = get("redirect_uri").filter(|u| url::Url::parse(u).is_ok()) else {
            return html(StatusCode::BAD_REQUEST, "Bad redirect_uri", "<p>redirect_uri is missing or not a URL.</p>");
        };
        let state = get("state");
        let back = |params: &[(&str, &str)]| redirect(redirect_uri, params, state);
        if get("response_type") != Some("code") {
            return back(&[("error", "unsupported_response_type")]);
        }
        let Some(nonce) = get("nonce") else {
            return back(&[("error", "invalid_request"), ("error_description", "nonce is required")]);
        };
        let challenge = get("code_challenge");
        if challenge.is_some_and(|c| !valid_pkce_value(c))
            || (challenge.is_some() && get("code_challenge_method") != Some("S256"))
        {
            return back(&[("error", "invalid_request"), ("error_description", "PKCE: S256 only")]);
        }
        let Some(hint) = get("login_hint") else {
            return number_page(&q);
        };
        let Ok(msisdn) = Msisdn::parse(hint, &ParseRules::default()) else {
            return back(&[("error", "invalid_request"), ("error_description", "login_hint must be an MSISDN")]);
        };
        let outcome = Outcome::for_msisdn(&msisdn);
        match outcome {
            Outcome::Deny => return back(&[("error", "access_denied"), ("error_description", "user_denied")]),
            Outcome::UnknownSubscriber => return back(&[("error", "unknown_user_id")]),
            Outcome::ServerError => return back(&[("error", "server_error")]),
            Outcome::NeverAnswer => {
                return html(StatusCode::OK, "Check your phone", "<p>Waiting for your answer on your phone…</p>")
            }
            Outcome::Slow => tokio::time::sleep(self.cfg.slow).await,
            _ => {}
        }
        let code = crate::clock::random_token(16);
        let now = crate::clock::Clock::now_ms(&self.clock);
        self.codes.lock().insert(
            code.clone(),
            SimCode {
                msisdn,
                outcome,
                redirect_uri: redirect_uri.to_owned(),
                nonce: nonce.to_owned(),
                acr_values: get("acr_values").unwrap_or("2").to_owned(),
                code_challenge: challenge.map(str::to_owned),
                expires_ms: now + CODE_TTL_MS,
            },
        );
        back(&[("code", &code)])
    }

    /// `POST /token` with `grant_type=authorization_code` (client already authenticated).
    pub(super) fn token_code(&self, form: &HashMap<String, String>) -> Response<Full<Bytes>> {
        let get = |k: &str| form.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let Some(c) = get("code").and_then(|code| self.codes.lock().remove(code)) else {
            return oauth(StatusCode::BAD_REQUEST, "invalid_grant", "unknown or used code");
        };
        let now = crate::clock::Clock::now_ms(&self.clock);
        if now >= c.expires_ms || get("redirect_uri") != Some(c.redirect_uri.as_str()) {
            return oauth(StatusCode::BAD_REQUEST, "invalid_grant", "expired code or other redirect_uri");
        }
        if !pkce_ok(c.code_challenge.as_deref(), get("code_verifier")) {
            return oauth(StatusCode::BAD_REQUEST, "invalid_grant", "PKCE verification failed");
        }
        let pin = c.outcome == Outcome::ApprovePin && c.acr_values.split(' ').any(|a| a == "3");
        let (acr, amr) = if pin { ("3", "SIM_PIN") } else { ("2", "SIM_OK") };
        let key = if c.outcome == Outcome::ForgedToken { &*self.forged } else { self.keys.active() };
        let sub = crate::tokens::id_token::half_hash(&format!("{}:{}", self.cfg.operator_id, c.msisdn.value()));
        let now_s = now / 1000;
        let claims = json!({
            "iss": self.issuer, "aud": self.cfg.client_id, "sub": sub, "iat": now_s, "exp": now_s + 300,
            "auth_time": now_s, "acr": acr, "amr": [amr], "nonce": c.nonce,
        });
        match key.sign(&claims) {
            Ok(id_token) => json_ok(json!({
                "access_token": crate::clock::random_token(32), "token_type": "Bearer", "expires_in": 300, "id_token": id_token,
            })),
            Err(_) => oauth(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "signing failed"),
        }
    }
}

/// 302 to `uri` with `params` (+ `state`) added to its query.
fn redirect(uri: &str, params: &[(&str, &str)], state: Option<&str>) -> Response<Full<Bytes>> {
    let mut url = match url::Url::parse(uri) {
        Ok(u) => u,
        Err(_) => return html(StatusCode::BAD_REQUEST, "Bad redirect_uri", "<p>redirect_uri is not a URL.</p>"),
    };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
        if let Some(s) = state {
            q.append_pair("state", s);
        }
    }
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::FOUND;
    if let Ok(v) = HeaderValue::from_str(url.as_str()) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The "your mobile number" page: a GET form back to `/authorize` carrying every parameter.
fn number_page(q: &HashMap<String, String>) -> Response<Full<Bytes>> {
    let mut hidden = String::new();
    for (k, v) in q.iter().filter(|(k, _)| k.as_str() != "login_hint") {
        hidden.push_str(&format!("<input type=\"hidden\" name=\"{}\" value=\"{}\">", escape(k), escape(v)));
    }
    let body = format!(
        "<form method=\"get\" action=\"/authorize\">{hidden}<label for=\"login_hint\">Your mobile number</label> \
         <input id=\"login_hint\" name=\"login_hint\" type=\"tel\" autocomplete=\"tel\" required> \
         <button type=\"submit\">Continue</button></form>"
    );
    html(StatusCode::OK, "Simulated operator: sign in", &body)
}

fn html(status: StatusCode, title: &str, body: &str) -> Response<Full<Bytes>> {
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body><main><h1>{title}</h1>{body}</main></body></html>"
    );
    let mut r = Response::new(Full::new(Bytes::from(page)));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// HTML-escaping is the same as the gateway's pages'.
use crate::rp::html::escape;
