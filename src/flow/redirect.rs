//! The redirect (authorization code) flow's part of a [`super::Transaction`]: what the RP asked
//! for at `/authorize` (echoed or checked later: `redirect_uri`, `state`, `nonce`, PKCE
//! challenge, `max_age`) and our own operator-side values (fresh `state`, `nonce` and PKCE
//! verifier, never the RP's). Plus the pure rules of PKCE S256 and `max_age`.

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A pending or finished browser flow.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedirectFlow {
    /// The RP's registered redirect URI, exactly as sent.
    pub redirect_uri: String,
    /// The RP's `state` (echoed on every redirect back).
    pub state: String,
    /// The RP's `nonce` (put in our ID token).
    pub nonce: String,
    /// The RP's PKCE S256 challenge (absent only for `mc_legacy` confidential clients).
    #[serde(default)]
    pub code_challenge: Option<String>,
    /// The RP's `max_age`, seconds.
    #[serde(default)]
    pub max_age: Option<u64>,
    /// Mobile Connect `version` requested.
    pub version: String,
    /// Our `state` at the operator (names this transaction at `/callback`).
    #[serde(default)]
    pub op_state: String,
    /// Our `nonce` at the operator (checked in its ID token).
    #[serde(default)]
    pub op_nonce: String,
    /// Our PKCE verifier at the operator.
    #[serde(default)]
    pub op_code_verifier: String,
}

/// `base64url(SHA-256(verifier))` (RFC 7636 S256).
pub fn s256(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Whether `v` is a syntactically valid PKCE verifier or S256 challenge: 43–128 characters of
/// `[A-Za-z0-9-._~]`.
pub fn valid_pkce_value(v: &str) -> bool {
    (43..=128).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// PKCE at the token endpoint: with a challenge, a valid verifier hashing to it is required;
/// without one, a verifier must not be sent (RFC 9700 §2.1.1: no downgrade).
pub fn pkce_ok(challenge: Option<&str>, verifier: Option<&str>) -> bool {
    match (challenge, verifier) {
        (Some(c), Some(v)) => valid_pkce_value(v) && bool::from(s256(v).as_bytes().ct_eq(c.as_bytes())),
        (None, None) => true,
        _ => false,
    }
}

/// Whether an authentication at `auth_time_s` is fresh enough for `max_age` at `now_s`,
/// allowing `skew_s` of clock difference with the operator.
pub fn fresh_enough(max_age: Option<u64>, auth_time_s: u64, now_s: u64, skew_s: u64) -> bool {
    match max_age {
        None => true,
        Some(m) => auth_time_s.saturating_add(m).saturating_add(skew_s) >= now_s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s256_matches_rfc7636_appendix_b() {
        let v = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert_eq!(s256(v), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        assert!(pkce_ok(Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"), Some(v)));
    }

    #[test]
    fn pkce_refuses_missing_wrong_and_unexpected_verifiers() {
        let c = s256(&"a".repeat(43));
        assert!(!pkce_ok(Some(&c), None), "missing verifier");
        assert!(!pkce_ok(Some(&c), Some(&"b".repeat(43))), "wrong verifier");
        assert!(!pkce_ok(Some(&c), Some("short")), "malformed verifier");
        assert!(!pkce_ok(None, Some(&"a".repeat(43))), "verifier without a challenge");
        assert!(pkce_ok(None, None));
    }

    #[test]
    fn max_age_allows_skew_only() {
        assert!(fresh_enough(None, 0, 1_000_000, 0));
        assert!(fresh_enough(Some(60), 1_000, 1_060, 0));
        assert!(!fresh_enough(Some(60), 1_000, 1_061, 0));
        assert!(fresh_enough(Some(0), 1_000, 1_030, 60));
    }
}
