//! Bodies operators POST to `/op/{operator}/notify`, parsed in one place: CIBA ping
//! (`{auth_req_id}`), CIBA push (`{auth_req_id, id_token, …}`) and push errors
//! (`{auth_req_id, error, error_description}`). Mobile Connect server-initiated (`mc_si_async_code`)
//! results have the same two shapes (success `{auth_req_id, state?, access_token, token_type,
//! expires_in, id_token, correlation_id?}`, error `{auth_req_id, error, error_description}`), so
//! they parse to [`OperatorCallback::Tokens`] and [`OperatorCallback::Error`]; what a body means
//! (e.g. whose nonce its ID token must carry) is the operator's adapter's business. Only the
//! shape is checked here; the bearer, the transaction and the ID token are checked by the caller
//! and the adapter.

use serde::Deserialize;

/// Longest operator `auth_req_id` accepted.
pub const MAX_ID_LEN: usize = 1024;

/// One parsed callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperatorCallback {
    /// CIBA ping: the result is ready at the operator's token endpoint.
    Ping {
        /// The operator's transaction id.
        auth_req_id: String,
    },
    /// CIBA push of the result.
    Tokens {
        /// The operator's transaction id.
        auth_req_id: String,
        /// The operator's ID token (verified by the adapter).
        id_token: String,
    },
    /// CIBA push of an error.
    Error {
        /// The operator's transaction id.
        auth_req_id: String,
        /// OAuth error code.
        error: String,
        /// Its description, if any.
        error_description: Option<String>,
    },
}

impl OperatorCallback {
    /// The operator's transaction id it is about.
    pub fn auth_req_id(&self) -> &str {
        match self {
            Self::Ping { auth_req_id } | Self::Tokens { auth_req_id, .. } | Self::Error { auth_req_id, .. } => {
                auth_req_id
            }
        }
    }
}

/// A body that is none of the known shapes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadCallback(pub &'static str);

/// Every field any known shape uses; unknown fields are tolerated (operators add their own).
#[derive(Deserialize)]
struct Raw {
    auth_req_id: Option<String>,
    id_token: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Parses a JSON callback body.
pub fn parse(body: &[u8]) -> Result<OperatorCallback, BadCallback> {
    let raw: Raw = serde_json::from_slice(body).map_err(|_| BadCallback("body must be a JSON object"))?;
    let auth_req_id = raw.auth_req_id.filter(|s| !s.is_empty()).ok_or(BadCallback("auth_req_id is required"))?;
    if auth_req_id.len() > MAX_ID_LEN {
        return Err(BadCallback("auth_req_id is too long"));
    }
    Ok(match (raw.error, raw.id_token) {
        (Some(error), _) => OperatorCallback::Error { auth_req_id, error, error_description: raw.error_description },
        (None, Some(id_token)) => OperatorCallback::Tokens { auth_req_id, id_token },
        (None, None) => OperatorCallback::Ping { auth_req_id },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_ciba_shapes_parse() {
        assert_eq!(parse(br#"{"auth_req_id":"a"}"#), Ok(OperatorCallback::Ping { auth_req_id: "a".into() }));
        assert!(matches!(
            parse(br#"{"auth_req_id":"a","access_token":"x","token_type":"Bearer","id_token":"j","expires_in":1}"#),
            Ok(OperatorCallback::Tokens { id_token, .. }) if id_token == "j"
        ));
        assert!(matches!(
            parse(br#"{"auth_req_id":"a","error":"access_denied"}"#),
            Ok(OperatorCallback::Error { error, .. }) if error == "access_denied"
        ));
    }

    #[test]
    fn mobile_connect_si_bodies_parse() {
        let ok = br#"{"auth_req_id":"a","state":"s","access_token":"x","token_type":"Bearer","expires_in":3600,
            "id_token":"j","correlation_id":"c"}"#;
        assert_eq!(parse(ok), Ok(OperatorCallback::Tokens { auth_req_id: "a".into(), id_token: "j".into() }));
        assert_eq!(
            parse(br#"{"auth_req_id":"a","error":"access_denied","error_description":"user_denied","correlation_id":"c"}"#),
            Ok(OperatorCallback::Error {
                auth_req_id: "a".into(),
                error: "access_denied".into(),
                error_description: Some("user_denied".into())
            })
        );
    }

    #[test]
    fn junk_is_refused() {
        for bad in [&b""[..], b"[]", b"{}", br#"{"auth_req_id":""}"#, br#"{"auth_req_id":5}"#] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
