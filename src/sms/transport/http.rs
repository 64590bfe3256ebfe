//! [`HttpTransport`]: `SmsTransport` over a generic HTTP SMS provider. One `POST` of
//! `{"to":"+34…","text":"…","reference":"…"}` (JSON) to the configured URL with
//! `Authorization: Bearer <api key>` (the key from an environment variable, never logged),
//! bounded by `timeout_ms` (L-01: 5 s). Answers: 2xx with `{"message_id":"…"}` → accepted
//! (a 2xx without one is still accepted, under `ref:<reference>`); 4xx → `Rejected` (nothing
//! sent); 5xx, timeout, connection failure → `Unavailable`. Never retried: after a timeout the
//! provider may have sent the SMS, so the caller must not send another.
//!
//! Delivery receipts (a provider webhook) are not implemented: `delivery_state` is always
//! `Pending`.

use crate::config::Secret;
use crate::operators::http::{LegacyClient, PerThreadClient};
use crate::sms::{DeliveryState, OutgoingSms, SmsError, SmsTransport, SubmitReceipt};
use async_trait::async_trait;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full, Limited};
use std::time::Duration;

/// Largest provider answer read, bytes.
const MAX_ANSWER: usize = 16 * 1024;

/// Everything the HTTP transport needs (from `[sms.transport.http]`).
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Provider endpoint.
    pub url: String,
    /// Bearer token.
    pub api_key: Secret,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Whole-request timeout.
    pub timeout: Duration,
}

/// HTTP provider transport (see the module doc).
pub struct HttpTransport {
    settings: HttpSettings,
    uri: http::Uri,
    auth: HeaderValue,
    client: LegacyClient,
}

impl HttpTransport {
    /// A transport for `settings`; fails on a bad URL or key.
    pub fn new(settings: HttpSettings) -> Result<Self, String> {
        let uri: http::Uri = settings.url.parse().map_err(|e| format!("sms.transport.http.url: {e}"))?;
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", settings.api_key.expose()))
            .map_err(|_| "sms.transport.http: the API key is not a valid header value".to_string())?;
        auth.set_sensitive(true);
        let client = PerThreadClient::new(settings.connect_timeout, None)?.legacy();
        Ok(Self { settings, uri, auth, client })
    }

    async fn exchange(&self, body: Bytes) -> Result<(http::StatusCode, Bytes), SmsError> {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(self.uri.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json")
            .body(Full::new(body))
            .map_err(|e| SmsError::Unavailable(e.to_string()))?;
        req.headers_mut().insert(header::AUTHORIZATION, self.auth.clone());
        let resp = self.client.request(req).await.map_err(|e| SmsError::Unavailable(format!("provider: {e}")))?;
        let status = resp.status();
        let body = Limited::new(resp.into_body(), MAX_ANSWER).collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        Ok((status, body))
    }
}

#[async_trait]
impl SmsTransport for HttpTransport {
    fn kind(&self) -> &'static str {
        "http"
    }

    async fn submit(&self, sms: &OutgoingSms<'_>) -> Result<SubmitReceipt, SmsError> {
        let body = serde_json::json!({ "to": sms.to.e164(), "text": sms.text, "reference": sms.reference });
        let body = Bytes::from(body.to_string());
        let t = self.settings.timeout;
        let result = match tokio::time::timeout(t, self.exchange(body)).await {
            Err(_) => Err(SmsError::Unavailable(format!("no provider answer within {} ms", t.as_millis()))),
            Ok(Err(e)) => Err(e),
            Ok(Ok((status, body))) if status.is_success() => {
                let id = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v.get("message_id").and_then(|m| m.as_str()).map(str::to_owned))
                    .filter(|id| !id.is_empty())
                    .unwrap_or_else(|| format!("ref:{}", sms.reference));
                Ok(SubmitReceipt { message_id: id })
            }
            Ok(Ok((status, _))) if status.is_client_error() => {
                Err(SmsError::Rejected(format!("provider answered HTTP {}", status.as_u16())))
            }
            Ok(Ok((status, _))) => Err(SmsError::Unavailable(format!("provider answered HTTP {}", status.as_u16()))),
        };
        match &result {
            Ok(r) => {
                // The `ref:` fallback id names the transaction (its auth_req_id): not for logs.
                let id = if r.message_id.starts_with("ref:") { "-" } else { r.message_id.as_str() };
                tracing::info!(to = %sms.to.masked(), message_id = id, "sms submitted")
            }
            Err(e) => tracing::warn!(to = %sms.to.masked(), error = %e, "sms not submitted"),
        }
        result
    }

    fn delivery_state(&self, _message_id: &str) -> DeliveryState {
        DeliveryState::Pending
    }
}
