//! The redirect (device-initiated, `mc_di`) hop of the Mobile Connect adapter: the operator
//! authorization URL (our client id, `redirect_uri=<issuer>/callback`, our fresh `state`,
//! `nonce` and PKCE S256 challenge, `login_hint=MSISDN:<digits>`, `acr_values`), and what its
//! return means: an OAuth `error=` classified per shared/protocol.md §5, or a code redeemed at
//! the operator token endpoint (client_secret_basic) whose ID token must carry our nonce.

use super::{oauth_error, MobileConnectCiba, TokenAnswer};
use crate::flow::poll::OperatorAnswer;
use crate::flow::FailReason;
use crate::operators::id_token::{verify_redirect, TokenRejected};
use crate::operators::{PushError, RedirectRequest, RedirectReturn};

impl MobileConnectCiba {
    /// The operator authorization URL for `req`.
    pub(super) async fn redirect_url(&self, req: &RedirectRequest<'_>) -> Result<String, PushError> {
        let endpoints = self.metadata.endpoints().await.map_err(|e| {
            self.metrics.error("connect");
            PushError::Unavailable(format!("metadata: {e}"))
        })?;
        let Some(base) = endpoints.authorization.as_ref() else {
            return Err(PushError::Rejected("the operator publishes no authorization_endpoint".into()));
        };
        let mut login_hint = String::with_capacity(24);
        login_hint.push_str("MSISDN:");
        login_hint.push_str(itoa::Buffer::new().format(req.msisdn.value()));
        let mut q = form_urlencoded::Serializer::new(String::with_capacity(512));
        q.append_pair("response_type", "code")
            .append_pair("client_id", &self.policy.audience)
            .append_pair("redirect_uri", req.redirect_uri)
            .append_pair("scope", "openid mc_authn")
            .append_pair("state", req.state)
            .append_pair("nonce", req.nonce)
            .append_pair("login_hint", &login_hint)
            .append_pair("acr_values", req.acr_values)
            .append_pair("code_challenge", req.code_challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("version", "mc_v1.1");
        if let Some(m) = req.max_age {
            q.append_pair("max_age", itoa::Buffer::new().format(m));
        }
        let base = base.to_string();
        let sep = if base.contains('?') { '&' } else { '?' };
        Ok(format!("{base}{sep}{}", q.finish()))
    }

    /// Classifies the operator's return, redeeming a code when there is one.
    pub(super) async fn redirect_return(&self, ret: RedirectReturn<'_>) -> OperatorAnswer {
        match ret {
            RedirectReturn::Error { error, description } => {
                self.metrics.error("oauth_error");
                tracing::info!(operator = %self.id, error, description = description.unwrap_or("-"), "operator redirect error");
                self.mapped(error, description).map_or_else(|| classify_error(error), super::class_answer)
            }
            RedirectReturn::Code { code, redirect_uri, nonce, code_verifier } => {
                self.redeem(code, redirect_uri, nonce, code_verifier).await
            }
        }
    }

    async fn redeem(&self, code: &str, redirect_uri: &str, nonce: &str, code_verifier: &str) -> OperatorAnswer {
        let unavailable = OperatorAnswer::Failed(FailReason::OperatorUnavailable);
        let Ok(endpoints) = self.metadata.endpoints().await else {
            self.metrics.error("connect");
            return unavailable;
        };
        let form = form_urlencoded::Serializer::new(String::with_capacity(256))
            .append_pair("grant_type", "authorization_code")
            .append_pair("code", code)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("code_verifier", code_verifier)
            .finish();
        let resp = match self.token_exchange(&endpoints.token, form, unavailable.clone()).await {
            Ok(r) => r,
            Err(answer) => return answer,
        };
        if !resp.status.is_success() {
            self.metrics.error("oauth_error");
            let e = oauth_error(&resp.body).map(|e| e.error).unwrap_or_default();
            tracing::warn!(operator = %self.id, error = %e, "operator refused our code redemption");
            return OperatorAnswer::Failed(FailReason::OperatorError);
        }
        let Ok(answer) = serde_json::from_slice::<TokenAnswer>(&resp.body) else {
            self.metrics.error("bad_answer");
            return OperatorAnswer::Failed(FailReason::OperatorTokenInvalid);
        };
        match verify_redirect(&answer.id_token, &self.metadata, &self.policy, nonce).await {
            Ok(r) => OperatorAnswer::Approved(r),
            Err(TokenRejected::KeysUnavailable(_)) => {
                self.metrics.error("connect");
                unavailable
            }
            Err(e) => {
                self.metrics.error("token_invalid");
                tracing::warn!(operator = %self.id, error = %e, "operator ID token rejected");
                OperatorAnswer::Failed(FailReason::OperatorTokenInvalid)
            }
        }
    }
}

/// An operator's authorization-endpoint `error` as the flow's outcome (shared/protocol.md §5).
fn classify_error(error: &str) -> OperatorAnswer {
    match error {
        "access_denied" => OperatorAnswer::Denied,
        "unknown_user_id" | "Not_Found_Entity" => OperatorAnswer::Failed(FailReason::NotEnrolled),
        "server_error" | "temporarily_unavailable" => OperatorAnswer::Failed(FailReason::OperatorUnavailable),
        _ => OperatorAnswer::Failed(FailReason::OperatorError),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_errors_map_to_flow_outcomes() {
        assert_eq!(classify_error("access_denied"), OperatorAnswer::Denied);
        assert_eq!(classify_error("unknown_user_id"), OperatorAnswer::Failed(FailReason::NotEnrolled));
        assert_eq!(classify_error("server_error"), OperatorAnswer::Failed(FailReason::OperatorUnavailable));
        assert_eq!(classify_error("invalid_request"), OperatorAnswer::Failed(FailReason::OperatorError));
    }
}
