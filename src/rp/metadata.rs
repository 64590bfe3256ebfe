//! `/.well-known/openid-configuration`: rendered once at start from the issuer. It advertises
//! what this build really serves (shared/protocol.md §1.1): CIBA poll/ping/push, the code flow
//! with PKCE, userinfo, client secrets and private_key_jwt, signed request objects.

use bytes::Bytes;
use serde_json::json;

/// Renders the metadata document for `issuer`; `id_token_algs` are the algorithms the gateway
/// holds a signing key for.
pub fn render(issuer: &str, id_token_algs: &[&str]) -> Bytes {
    let client_algs = crate::rp::client_jws::CLIENT_ALG_NAMES;
    let doc = json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/jwks"),
        "token_endpoint": format!("{issuer}/token"),
        "authorization_endpoint": format!("{issuer}/authorize"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
        "backchannel_authentication_endpoint": format!("{issuer}/bc-authorize"),
        "si_authorization_endpoint": format!("{issuer}/si-authorize"),
        "backchannel_token_delivery_modes_supported": ["poll", "ping", "push"],
        "backchannel_user_code_parameter_supported": false,
        "grant_types_supported": ["authorization_code", "urn:openid:params:grant-type:ciba"],
        "response_types_supported": ["code", "mc_si_async_code", "mc_si_polling"],
        "id_token_signing_alg_values_supported": id_token_algs,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
        "token_endpoint_auth_signing_alg_values_supported": client_algs,
        "request_object_signing_alg_values_supported": client_algs,
        "backchannel_authentication_request_signing_alg_values_supported": client_algs,
        "request_parameter_supported": true,
        "subject_types_supported": ["pairwise"],
        "acr_values_supported": ["2", "3"],
        "scopes_supported": ["openid", "mc_authn", "mc_authz"],
        "claims_supported": [
            "iss", "sub", "aud", "azp", "exp", "iat", "auth_time", "nonce", "acr", "amr", "at_hash",
            "urn:openid:params:jwt:claim:auth_req_id"
        ],
        "login_hint_methods_supported": ["MSISDN", "ENCR_MSISDN", "PCR"],
        "mc_version": ["mc_v1.1", "mc_v1.2", "mc_v2.0", "mc_di_r2_v2.3", "mc_di_v3.0", "mc_si_r2_v1.0"],
        "mc_discovery_endpoint": format!("{issuer}/v2/discovery"),
    });
    Bytes::from(serde_json::to_vec(&doc).unwrap_or_default())
}
