//! The GSMA Discovery API v2 (`/v2/discovery`, shared/protocol.md §1.2): an MC client sends its
//! Basic credentials, its registered `Redirect_URL` and the person's MSISDN (or the operator's
//! MCC/MNC) and learns the serving operator and the endpoints to use — all at this gateway.
//! Without either it gets a 202 pointing at the operator-selection page, which sends the
//! browser back to the registered `Redirect_URL` with `mcc_mnc`. Errors carry `description`
//! and `correlation_id`, which MC client libraries read.

use super::error::RpError;
use super::form::Params;
use super::RequestLog;
use crate::app::{Gateway, OperatorInfo};
use crate::rp::client_auth::RegisteredClient;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde_json::json;

/// `/v2/discovery`, GET query or POST form (already merged into `form`).
pub async fn handle(
    gw: &Gateway,
    headers: &HeaderMap,
    form: &Params<'_>,
    log: &mut RequestLog,
) -> Response<Full<Bytes>> {
    let correlation_id = form.get("correlation_id").map(|c| c.chars().take(128).collect::<String>());
    match discover(gw, headers, form, log, correlation_id.as_deref()) {
        Ok(r) => r,
        Err(e) => e.into_response(correlation_id.as_deref()),
    }
}

/// Discovery failures (their own body shape).
#[derive(Debug)]
pub enum DiscoveryError {
    /// An RP error with the usual OAuth code.
    Rp(RpError),
    /// No operator serves the number.
    NotFound,
}

impl DiscoveryError {
    fn code_str(&self) -> &'static str {
        match self {
            Self::Rp(e) => e.code(),
            Self::NotFound => "Not_Found_Entity",
        }
    }

    fn into_response(self, correlation_id: Option<&str>) -> Response<Full<Bytes>> {
        let (status, code, desc) = match &self {
            Self::Rp(e) => (e.status(), e.code(), e.description().into_owned()),
            Self::NotFound => (StatusCode::NOT_FOUND, "Not_Found_Entity", "no operator serves this number".to_owned()),
        };
        let body =
            json!({"error": code, "description": desc, "error_description": desc, "correlation_id": correlation_id});
        let mut r = super::error::json_response(status, serde_json::to_vec(&body).unwrap_or_default());
        r.extensions_mut().insert(super::ErrorCode(self.code_str()));
        if matches!(self, Self::Rp(RpError::InvalidClient { .. })) {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"mcgate\""));
        }
        r
    }
}

impl From<RpError> for DiscoveryError {
    fn from(e: RpError) -> Self {
        Self::Rp(e)
    }
}

fn discover(
    gw: &Gateway,
    headers: &HeaderMap,
    form: &Params<'_>,
    log: &mut RequestLog,
    correlation_id: Option<&str>,
) -> Result<Response<Full<Bytes>>, DiscoveryError> {
    if headers.get(header::AUTHORIZATION).is_none() {
        return Err(RpError::InvalidClient { basic: true }.into());
    }
    let client = gw.clients.authenticate(headers, form)?;
    log.client = Some(client.client_id.clone());
    let redirect = form.get("Redirect_URL").ok_or_else(|| RpError::invalid_request("Redirect_URL is required"))?;
    if !client.redirect_uris.iter().any(|u| u == redirect) {
        return Err(RpError::invalid_request("Redirect_URL is not registered for this client").into());
    }
    let mut subscriber_id = None;
    let operator: &OperatorInfo = if let Some(raw) = form.get("MSISDN") {
        let msisdn = crate::msisdn::Msisdn::parse(raw, &gw.rules)
            .map_err(|e| RpError::InvalidRequest(format!("MSISDN: {e}").into()))?;
        log.msisdn = Some(msisdn);
        let route = gw.directory.route(&msisdn).ok_or(DiscoveryError::NotFound)?;
        log.route_source = Some(route.source.as_str());
        subscriber_id = Some(gw.subscriber_ids.seal(&msisdn, &client.client_id, gw.clock.now_s() + gw.discovery_ttl_s));
        gw.operator_info.get(route.operator.0 as usize).ok_or(DiscoveryError::NotFound)?
    } else if let Some(mcc_mnc) = selected_mcc_mnc(form)? {
        gw.operator_info.iter().find(|o| o.mcc_mnc.contains(&mcc_mnc)).ok_or(DiscoveryError::NotFound)?
    } else {
        let href = format!(
            "{}/v2/discovery/operator-selection?client_id={}&Redirect_URL={}",
            gw.issuer,
            enc(&client.client_id),
            enc(redirect)
        );
        let body = json!({"links": [{"rel": "operatorSelection", "href": href}], "correlation_id": correlation_id});
        return Ok(super::error::json_response(StatusCode::ACCEPTED, serde_json::to_vec(&body).unwrap_or_default()));
    };
    log.operator = Some(operator.id.clone());
    Ok(found(gw, client, operator, headers, subscriber_id, correlation_id))
}

/// `Selected-MCC`/`Selected-MNC` or `Identified-MCC`/`Identified-MNC` as "MCC-MNC".
fn selected_mcc_mnc(form: &Params<'_>) -> Result<Option<String>, RpError> {
    for (mcc, mnc) in [("Selected-MCC", "Selected-MNC"), ("Identified-MCC", "Identified-MNC")] {
        match (form.get(mcc), form.get(mnc)) {
            (Some(c), Some(n))
                if c.len() == 3
                    && (2..=3).contains(&n.len())
                    && c.bytes().chain(n.bytes()).all(|b| b.is_ascii_digit()) =>
            {
                return Ok(Some(format!("{c}-{n}")))
            }
            (None, None) => {}
            _ => {
                return Err(RpError::InvalidRequest(format!("{mcc} and {mnc} must both be digits (3 and 2-3)").into()))
            }
        }
    }
    Ok(None)
}

fn found(
    gw: &Gateway,
    client: &RegisteredClient,
    op: &OperatorInfo,
    headers: &HeaderMap,
    subscriber_id: Option<String>,
    correlation_id: Option<&str>,
) -> Response<Full<Bytes>> {
    let iss = &gw.issuer;
    let link = |rel: &str, href: String| json!({"rel": rel, "href": href});
    let links = vec![
        link("authorization", format!("{iss}/authorize")),
        link("token", format!("{iss}/token")),
        link("userinfo", format!("{iss}/userinfo")),
        link("jwks", format!("{iss}/jwks")),
        link("openid-configuration", format!("{iss}/.well-known/openid-configuration")),
        link("issuer", iss.clone()),
        link("applicationShortName", client.name.clone()),
    ];
    let body = json!({
        "ttl": gw.clock.now_ms() + gw.discovery_ttl_s * 1000,
        "subscriber_id": subscriber_id,
        "correlation_id": correlation_id,
        "response": {
            "client_id": client.client_id,
            // The verified Basic secret is echoed, as the Discovery API specifies; it is never stored or logged.
            "client_secret": basic_secret(headers).unwrap_or_default(),
            "serving_operator": op.id,
            "country": op.country,
            "currency": "EUR",
            "apis": {"operatorid": {"link": links}},
        },
    });
    super::error::json_response(StatusCode::OK, serde_json::to_vec(&body).unwrap_or_default())
}

fn basic_secret(headers: &HeaderMap) -> Option<String> {
    super::client_auth::parse_basic(headers).ok().flatten().map(|(_, secret)| secret)
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// `/v2/discovery/operator-selection`: without `mcc_mnc`, an HTML list of operators; with it,
/// a redirect to the client's registered `Redirect_URL` (never anywhere else).
pub fn operator_selection(gw: &Gateway, query: &Params<'_>) -> Response<Full<Bytes>> {
    let client = query.get("client_id").and_then(|c| gw.clients.get(c));
    let redirect = query.get("Redirect_URL");
    let Some((client, redirect)) = client.zip(redirect).filter(|(c, r)| c.redirect_uris.iter().any(|u| u == r)) else {
        return html(
            StatusCode::BAD_REQUEST,
            "<h1>Invalid request</h1><p>Unknown client or unregistered Redirect_URL.</p>".into(),
        );
    };
    if let Some(sel) = query.get("mcc_mnc") {
        let known = gw.operator_info.iter().any(|o| o.mcc_mnc.iter().any(|m| m.replace('-', "_") == sel));
        if !known {
            return html(StatusCode::BAD_REQUEST, "<h1>Unknown operator</h1>".into());
        }
        let sep = if redirect.contains('?') { '&' } else { '?' };
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = StatusCode::FOUND;
        if let Ok(v) = HeaderValue::from_str(&format!("{redirect}{sep}mcc_mnc={sel}")) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        return r;
    }
    let mut items = String::new();
    for o in &gw.operator_info {
        if let Some(m) = o.mcc_mnc.first() {
            items.push_str(&format!(
                "<li><a href=\"?client_id={}&amp;Redirect_URL={}&amp;mcc_mnc={}\">{}</a></li>",
                enc(&client.client_id),
                enc(redirect),
                m.replace('-', "_"),
                escape(&o.name)
            ));
        }
    }
    html(StatusCode::OK, format!("<h1>Choose your mobile operator</h1><ul>{items}</ul>"))
}

fn html(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let page = format!(
        "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>mcgate</title><body>{body}</body></html>"
    );
    let mut r = Response::new(Full::new(Bytes::from(page)));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("content-security-policy", HeaderValue::from_static("default-src 'none'; style-src 'self'"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    r
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
