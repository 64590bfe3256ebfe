//! `GET`/`POST /userinfo` (OIDC Core §5.3): the Bearer access token (our RFC 9068 JWT,
//! verified with our keys, then one store read for a revocation record, S-26) answers
//! `{"sub": …}`. No token → 401 with a bare Bearer challenge; a bad, expired or revoked one →
//! 401 `WWW-Authenticate: Bearer error="invalid_token"`.

use super::error::{json_response, RpError};
use super::RequestLog;
use crate::app::Gateway;
use crate::tokens::access_token;
use bytes::Bytes;
use http::{header, HeaderMap, Response, StatusCode};
use http_body_util::Full;

/// Handles one userinfo request.
pub async fn handle(gw: &Gateway, headers: &HeaderMap, log: &mut RequestLog) -> Result<Response<Full<Bytes>>, RpError> {
    let value = headers.get(header::AUTHORIZATION).ok_or(RpError::MissingToken)?;
    let value = value.to_str().map_err(|_| RpError::InvalidToken("the Authorization header is malformed"))?;
    let (scheme, token) = value.split_once(' ').ok_or(RpError::MissingToken)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(RpError::MissingToken);
    }
    let claims = access_token::verify(&gw.tokens.keys, &gw.issuer, token.trim(), gw.clock.now_s())
        .map_err(|_| RpError::InvalidToken("the access token is invalid or expired"))?;
    log.client = Some(claims.client_id);
    let revoked = crate::tokens::revocation::is_revoked(&*gw.store, &claims.jti)
        .await
        .map_err(|e| RpError::TemporarilyUnavailable(format!("transaction store: {e}").into()))?;
    if revoked {
        return Err(RpError::InvalidToken("the access token was revoked"));
    }
    let body = serde_json::json!({ "sub": claims.sub });
    Ok(json_response(StatusCode::OK, serde_json::to_vec(&body).unwrap_or_default()))
}
