//! SMS transports: [`smpp::SmppTransport`] (SMPP 3.4 session to an SMSC) and
//! [`http::HttpTransport`] (a generic HTTP SMS provider), both behind
//! [`crate::sms::SmsTransport`]; [`build`] makes the one `[sms.transport]` names.
//! [`encode`] turns text into SMPP segments, [`receipts`] remembers delivery receipts.
//!
//! Integrator: `let t: Option<Arc<dyn SmsTransport>> = sms::transport::build(&cfg.sms)?;` once,
//! inside a tokio runtime that lives as long as the gateway (the SMPP supervisor task runs
//! there), then `t.submit(&OutgoingSms { to, text, reference }).await` and, later,
//! `t.delivery_state(&receipt.message_id)`.

pub mod encode;
pub mod http;
pub mod receipts;
pub mod smpp;

use crate::config::model::SmsConfig;
use crate::config::Secret;
use crate::sms::SmsTransport;
use std::sync::Arc;
use std::time::Duration;

/// Builds the configured transport; `Ok(None)` when `[sms.transport]` is absent. Errors name
/// the missing piece (a section, an unset environment variable).
pub fn build(cfg: &SmsConfig) -> Result<Option<Arc<dyn SmsTransport>>, String> {
    let Some(t) = &cfg.transport else { return Ok(None) };
    match t.kind.as_str() {
        "smpp" => {
            let c = t.smpp.as_ref().ok_or("sms.transport.smpp: missing for kind = \"smpp\"")?;
            let password = match (&c.password, &c.password_env) {
                (Some(p), _) => p.clone(),
                (None, Some(var)) => Secret::new(
                    std::env::var(var).map_err(|_| format!("sms.transport.smpp.password_env: {var} is not set"))?,
                ),
                (None, None) => return Err("sms.transport.smpp: set password or password_env".into()),
            };
            let settings = smpp::SmppSettings::from_config(c, t.max_segments, password);
            Ok(Some(Arc::new(smpp::SmppTransport::start(settings))))
        }
        "http" => {
            let c = t.http.as_ref().ok_or("sms.transport.http: missing for kind = \"http\"")?;
            let key = std::env::var(&c.api_key_env)
                .map_err(|_| format!("sms.transport.http.api_key_env: {} is not set", c.api_key_env))?;
            let settings = http::HttpSettings {
                url: c.url.clone(),
                api_key: Secret::new(key),
                connect_timeout: Duration::from_millis(c.connect_timeout_ms),
                timeout: Duration::from_millis(c.timeout_ms),
            };
            Ok(Some(Arc::new(http::HttpTransport::new(settings)?)))
        }
        other => Err(format!("sms.transport.kind: unknown transport {other:?} (smpp or http)")),
    }
}
