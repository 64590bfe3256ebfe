//! The client registry and client authentication: `client_secret_basic`, `client_secret_post`
//! and `private_key_jwt` (verified in `client_assertion.rs`), each client only by the method it
//! is registered for, secrets checked as SHA-256 hashes in constant time (two hashes during a
//! rotation). Unknown client and wrong secret look the same to the caller. Public clients
//! (`none`) authenticate nowhere; only the code grant accepts them, by `client_id` alone, with
//! PKCE ([`ClientRegistry::authenticate_or_public`]).

use super::client_keys::ClientKeys;
use super::error::RpError;
use super::form::Params;
use crate::app::Gateway;
use crate::config::ClientConfig;
use crate::discovery::OperatorIndex;
use base64::Engine;
use http::{header, HeaderMap};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// Authenticates the client of a request to `endpoint_path` (`/token`, `/bc-authorize`) by
/// whichever method the request uses; the client must be registered for that method. A request
/// using two methods is `invalid_request`.
pub async fn authenticate<'g>(
    gw: &'g Gateway,
    headers: &HeaderMap,
    form: &Params<'_>,
    endpoint_path: &str,
) -> Result<&'g RegisteredClient, RpError> {
    let assertion = form.get("client_assertion").is_some() || form.get("client_assertion_type").is_some();
    if !assertion {
        return gw.clients.authenticate(headers, form);
    }
    if headers.contains_key(header::AUTHORIZATION) || form.get("client_secret").is_some() {
        return Err(RpError::invalid_request("use one client authentication method, not two"));
    }
    super::client_assertion::authenticate(gw, form, endpoint_path).await
}

/// How a client authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// HTTP Basic.
    SecretBasic,
    /// `client_id` + `client_secret` in the form.
    SecretPost,
    /// Public client: no secret (redirect flow with PKCE only).
    None,
    /// A JWT signed with one of the client's registered keys (RFC 7523).
    PrivateKeyJwt,
}

/// A relying party as the gateway uses it.
#[derive(Debug, Clone)]
pub struct RegisteredClient {
    /// Client id.
    pub client_id: String,
    /// Display name.
    pub name: String,
    /// Registered method.
    pub method: AuthMethod,
    secret_hashes: Vec<[u8; 32]>,
    /// Allowed scopes.
    pub scopes: Vec<String>,
    /// Registered redirect URIs (exact match).
    pub redirect_uris: Vec<String>,
    /// Pairwise sector.
    pub sector: String,
    /// Lowest acceptable acr.
    pub min_acr: u8,
    /// Operators allowed (empty: all).
    pub allowed_operators: Vec<OperatorIndex>,
    /// Mobile Connect legacy: confidential client allowed to skip PKCE.
    pub mc_legacy: bool,
    /// CIBA token delivery mode.
    pub delivery: crate::flow::DeliveryMode,
    /// Where ping/push notifications go (ping/push clients).
    pub notification_endpoint: Option<String>,
    /// `notification_uri`s its MC server-initiated async requests may name.
    pub notification_uris: Vec<String>,
    /// Public keys (`private_key_jwt`, request objects), set by `app::build`.
    pub keys: Option<Arc<ClientKeys>>,
    /// The last secret that matched `secret_hashes` (skips the hash for a repeated secret).
    verified: Arc<super::verified_secret::VerifiedSecret>,
}

impl RegisteredClient {
    /// From validated config; `operator_index` resolves operator ids.
    pub fn from_config(c: &ClientConfig, operator_index: impl Fn(&str) -> Option<OperatorIndex>) -> Self {
        let secret_hashes = c
            .client_secret_sha256
            .iter()
            .filter_map(|h| hex::decode(h).ok())
            .filter_map(|v| <[u8; 32]>::try_from(v.as_slice()).ok())
            .collect();
        Self {
            client_id: c.client_id.clone(),
            name: c.client_name.clone().unwrap_or_else(|| c.client_id.clone()),
            method: match c.token_endpoint_auth_method.as_str() {
                "client_secret_post" => AuthMethod::SecretPost,
                "none" => AuthMethod::None,
                "private_key_jwt" => AuthMethod::PrivateKeyJwt,
                _ => AuthMethod::SecretBasic,
            },
            secret_hashes,
            scopes: c.scopes.clone(),
            redirect_uris: c.redirect_uris.clone(),
            sector: c.sector_identifier.clone(),
            min_acr: c.min_acr.parse().unwrap_or(2),
            allowed_operators: c.allowed_operators.iter().filter_map(|o| operator_index(o)).collect(),
            mc_legacy: c.mc_legacy,
            delivery: crate::flow::DeliveryMode::from_config(&c.backchannel_token_delivery_mode),
            notification_endpoint: c.backchannel_client_notification_endpoint.clone(),
            notification_uris: c.notification_uris.clone(),
            keys: None,
            verified: Arc::default(),
        }
    }

    /// Whether this is a public client (no secret).
    pub fn is_public(&self) -> bool {
        self.method == AuthMethod::None
    }

    fn secret_matches(&self, secret: &str) -> bool {
        if self.verified.matches(secret.as_bytes()) {
            return true;
        }
        let ok = self.secret_hash_matches(secret);
        if ok {
            self.verified.remember(secret.as_bytes());
        }
        ok
    }

    fn secret_hash_matches(&self, secret: &str) -> bool {
        // aws-lc's SHA-256 uses the CPU's SHA extensions: this runs on every CIBA poll.
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secret.as_bytes());
        let mut h = [0u8; 32];
        h.copy_from_slice(d.as_ref());
        // Check every hash so timing does not reveal which one matched.
        self.secret_hashes.iter().fold(false, |ok, want| ok | bool::from(want.ct_eq(&h)))
    }
}

/// Clients by id.
#[derive(Debug, Default)]
pub struct ClientRegistry {
    clients: HashMap<String, RegisteredClient, foldhash::fast::RandomState>,
}

impl ClientRegistry {
    /// From registered clients.
    pub fn new(clients: impl IntoIterator<Item = RegisteredClient>) -> Self {
        Self { clients: clients.into_iter().map(|c| (c.client_id.clone(), c)).collect() }
    }

    /// Looks a client up.
    pub fn get(&self, id: &str) -> Option<&RegisteredClient> {
        self.clients.get(id)
    }

    /// Authenticates the request's client from its `Authorization` header and form by a client
    /// secret (see [`authenticate`] for every method).
    pub fn authenticate(&self, headers: &HeaderMap, form: &Params<'_>) -> Result<&RegisteredClient, RpError> {
        let mut buf = [0u8; BASIC_BUF];
        let basic = parse_basic_into(headers, &mut buf)?;
        let post_secret = form.get("client_secret");
        let (id, secret, method) = match (basic, post_secret) {
            (Some(_), Some(_)) => {
                return Err(RpError::invalid_request("use one client authentication method, not two"))
            }
            (Some((id, secret)), None) => {
                if let Some(body_id) = form.get("client_id") {
                    if body_id != id {
                        return Err(RpError::invalid_request("client_id differs from the authenticated client"));
                    }
                }
                (id, secret, AuthMethod::SecretBasic)
            }
            (None, Some(secret)) => {
                let id = form.get("client_id").ok_or(RpError::InvalidClient { basic: false })?;
                (Cow::Borrowed(id), Cow::Borrowed(secret), AuthMethod::SecretPost)
            }
            (None, None) => return Err(RpError::InvalidClient { basic: false }),
        };
        let fail = RpError::InvalidClient { basic: method == AuthMethod::SecretBasic };
        let client = self.clients.get(id.as_ref()).ok_or(fail.clone())?;
        if client.method != method || !client.secret_matches(&secret) {
            return Err(fail);
        }
        Ok(client)
    }
}

impl ClientRegistry {
    /// Token endpoint, code grant: a confidential client authenticates as registered; a
    /// request without credentials names a public client by `client_id` (its PKCE verifier is
    /// what proves it). A confidential client can never pass as public.
    pub fn authenticate_or_public(&self, headers: &HeaderMap, form: &Params<'_>) -> Result<&RegisteredClient, RpError> {
        if headers.contains_key(header::AUTHORIZATION) || form.get("client_secret").is_some() {
            return self.authenticate(headers, form);
        }
        let id = form.get("client_id").ok_or(RpError::InvalidClient { basic: false })?;
        self.clients.get(id).filter(|c| c.is_public()).ok_or(RpError::InvalidClient { basic: false })
    }
}

/// The registry of a validated configuration, with each client's keys, and the clients whose
/// ID tokens are not RS256. A client whose `id_token_signed_response_alg` has no signing key,
/// or whose keys cannot be read, stops the start.
pub fn build_registry(
    loaded: &crate::config::LoadedConfig,
    keys: &crate::tokens::KeySet,
    clock: crate::clock::SharedClock,
    operator_index: impl Fn(&str) -> Option<OperatorIndex> + Copy,
) -> Result<(ClientRegistry, HashMap<String, jsonwebtoken::Algorithm>), crate::app::BuildError> {
    let cfg = &loaded.config;
    let j = &cfg.client_jwt;
    let mut settings: Option<super::client_keys::FetchSettings> = None;
    let mut fetch = || -> Result<super::client_keys::FetchSettings, String> {
        if settings.is_none() {
            let timeout = std::time::Duration::from_millis(j.jwks_fetch_timeout_ms);
            let client = crate::operators::http::PerThreadClient::new(timeout, None)?.shared();
            settings = Some(super::client_keys::FetchSettings {
                client,
                clock: clock.clone(),
                ttl_ms: j.jwks_cache_ttl_s * 1000,
                min_refetch_ms: j.jwks_min_refetch_s * 1000,
                timeout,
            });
        }
        settings.clone().ok_or_else(|| "no fetch settings".to_string())
    };
    let mut clients = Vec::with_capacity(cfg.clients.len());
    let mut algs = HashMap::new();
    for c in &cfg.clients {
        let bad = |m: String| crate::app::BuildError::Client(c.client_id.clone(), m);
        let mut rc = RegisteredClient::from_config(c, operator_index);
        rc.keys = ClientKeys::from_config(c, &loaded.base_dir, &mut fetch).map_err(bad)?.map(Arc::new);
        let alg = match c.id_token_signed_response_alg.as_str() {
            "ES256" => jsonwebtoken::Algorithm::ES256,
            _ => jsonwebtoken::Algorithm::RS256,
        };
        if keys.signer(alg).is_none() {
            return Err(bad(format!(
                "id_token_signed_response_alg {alg:?} needs a signing key of that type in keys.signing_keys"
            )));
        }
        if alg != jsonwebtoken::Algorithm::RS256 {
            algs.insert(c.client_id.clone(), alg);
        }
        clients.push(rc);
    }
    Ok((ClientRegistry::new(clients), algs))
}

/// `Authorization: Basic` credentials (form-urlencoded id and secret, RFC 6749 §2.3.1).
pub fn parse_basic(headers: &HeaderMap) -> Result<Option<(String, String)>, RpError> {
    let mut buf = [0u8; BASIC_BUF];
    Ok(parse_basic_into(headers, &mut buf)?.map(|(id, secret)| (id.into_owned(), secret.into_owned())))
}

/// A client id and secret, decoded.
type Credentials<'b> = (Cow<'b, str>, Cow<'b, str>);

/// Decoded credentials up to this many bytes are decoded on the stack (longer ones on the heap).
const BASIC_BUF: usize = 256;

/// [`parse_basic`] without allocating in the usual case: the credentials are base64-decoded into
/// `buf` and borrowed from it unless they are longer or percent-encoded. Same answers, same
/// errors as decoding onto the heap.
fn parse_basic_into<'b>(headers: &HeaderMap, buf: &'b mut [u8; BASIC_BUF]) -> Result<Option<Credentials<'b>>, RpError> {
    let Some(v) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let bad = RpError::InvalidClient { basic: true };
    let v = v.to_str().map_err(|_| bad.clone())?;
    let Some((scheme, rest)) = v.split_once(' ') else {
        return Err(bad);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(bad);
    }
    let engine = &base64::engine::general_purpose::STANDARD;
    let rest = rest.trim();
    // Base64 decodes to at most 3 bytes per 4 characters (rounded up): this always fits.
    let (id, secret) = if rest.len().div_ceil(4) * 3 <= BASIC_BUF {
        let n = engine.decode_slice(rest, &mut buf[..]).map_err(|_| bad.clone())?;
        let raw = std::str::from_utf8(&buf[..n]).map_err(|_| bad.clone())?;
        let (id, secret) = raw.split_once(':').ok_or(bad.clone())?;
        (form_decoded(id), form_decoded(secret))
    } else {
        let raw = String::from_utf8(engine.decode(rest).map_err(|_| bad.clone())?).map_err(|_| bad.clone())?;
        let (id, secret) = raw.split_once(':').ok_or(bad.clone())?;
        (form_decoded(id).map(|c| Cow::Owned(c.into_owned())), form_decoded(secret).map(|c| Cow::Owned(c.into_owned())))
    };
    Ok(Some((id.map_err(|_| bad.clone())?, secret.map_err(|_| bad)?)))
}

/// One form-urlencoded credential: borrowed unless it has `%` or `+`.
fn form_decoded(s: &str) -> Result<Cow<'_, str>, ()> {
    if memchr::memchr2(b'%', b'+', s.as_bytes()).is_none() {
        return Ok(Cow::Borrowed(s));
    }
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8()
        .map(|c| Cow::Owned(c.into_owned()))
        .map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::secret::secret_sha256_hex;

    fn registry() -> ClientRegistry {
        let cfg = ClientConfig {
            client_id: "rp".into(),
            client_name: None,
            token_endpoint_auth_method: "client_secret_basic".into(),
            client_secret_sha256: vec![secret_sha256_hex("old"), secret_sha256_hex("s3cr3t")],
            backchannel_token_delivery_mode: "poll".into(),
            backchannel_client_notification_endpoint: None,
            scopes: vec!["openid".into()],
            redirect_uris: vec![],
            sector_identifier: "x".into(),
            min_acr: "2".into(),
            allowed_operators: vec![],
            id_token_signed_response_alg: "RS256".into(),
            mc_legacy: false,
            jwks: None,
            jwks_file: None,
            jwks_uri: None,
            notification_uris: vec![],
            ..registry_cfg()
        };
        ClientRegistry::new([RegisteredClient::from_config(&cfg, |_| None)])
    }

    fn basic(id: &str, secret: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let v = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
        h.insert(header::AUTHORIZATION, format!("Basic {v}").parse().unwrap());
        h
    }

    #[test]
    fn both_rotation_hashes_authenticate_and_wrong_ones_do_not() {
        let r = registry();
        let empty = Params::default();
        assert!(r.authenticate(&basic("rp", "s3cr3t"), &empty).is_ok());
        assert!(r.authenticate(&basic("rp", "old"), &empty).is_ok());
        assert_eq!(r.authenticate(&basic("rp", "nope"), &empty).unwrap_err(), RpError::InvalidClient { basic: true });
        // Repeated and alternating secrets (the verified-secret memo) give the same answers.
        for secret in ["s3cr3t", "s3cr3t", "old", "s3cr3t", "s3cr3", "s3cr3tt", ""] {
            let ok = secret == "s3cr3t" || secret == "old";
            assert_eq!(r.authenticate(&basic("rp", secret), &empty).is_ok(), ok, "{secret:?}");
        }
        assert_eq!(
            r.authenticate(&basic("who", "s3cr3t"), &empty).unwrap_err(),
            RpError::InvalidClient { basic: true }
        );
    }

    #[test]
    fn public_clients_pass_only_without_credentials_and_confidential_ones_never_do() {
        let mut r = registry();
        let public = ClientConfig {
            client_id: "app".into(),
            token_endpoint_auth_method: "none".into(),
            client_secret_sha256: vec![],
            ..registry_cfg()
        };
        r.clients.insert("app".into(), RegisteredClient::from_config(&public, |_| None));
        let form = Params::parse(b"client_id=app").unwrap();
        assert_eq!(r.authenticate_or_public(&HeaderMap::new(), &form).unwrap().client_id, "app");
        let confidential = Params::parse(b"client_id=rp").unwrap();
        assert!(r.authenticate_or_public(&HeaderMap::new(), &confidential).is_err(), "no secret");
        assert!(r.authenticate_or_public(&basic("rp", "s3cr3t"), &Params::default()).is_ok());
        assert!(r.authenticate(&basic("app", ""), &Params::default()).is_err(), "a public client has no secret");
    }

    fn registry_cfg() -> ClientConfig {
        toml::from_str(
            r#"
            client_id = "rp"
            token_endpoint_auth_method = "client_secret_basic"
            scopes = ["openid"]
            sector_identifier = "x"
            "#,
        )
        .expect("client config")
    }

    #[test]
    fn basic_credentials_decode_on_the_stack_and_the_heap_alike() {
        let header = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, v.parse().unwrap());
            h
        };
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let long_secret = "s".repeat(400);
        let cases = [
            (format!("Basic {}", b64("rp:s3cr3t")), Some(("rp".to_string(), "s3cr3t".to_string()))),
            (format!("basic  {} ", b64("r%3Ap:a+b%2B")), Some(("r:p".into(), "a b+".into()))),
            (format!("Basic {}", b64(&format!("rp:{long_secret}"))), Some(("rp".into(), long_secret.clone()))),
            (
                format!("Basic {}", b64(&format!("r%3Ap:{long_secret}+"))),
                Some(("r:p".into(), format!("{long_secret} "))),
            ),
            (format!("Basic {}", b64("rp:")), Some(("rp".into(), String::new()))),
        ];
        for (value, want) in cases {
            assert_eq!(parse_basic(&header(&value)).unwrap(), want, "{value}");
        }
        let bad = [
            "Bearer abc".to_string(),
            "Basic".to_string(),
            "Basic !!!!".to_string(),
            format!("Basic {}", b64("no-colon")),
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode([0xff, b':', b'x'])),
            format!("Basic {}", b64("rp:%ff")),
            format!("Basic {}", b64(&format!("rp:{long_secret}%ff"))),
            format!("Basic {}", b64("rp:s3cr3").trim_end_matches('=')),
        ];
        for value in bad {
            assert_eq!(parse_basic(&header(&value)).unwrap_err(), RpError::InvalidClient { basic: true }, "{value}");
        }
        assert_eq!(parse_basic(&HeaderMap::new()).unwrap(), None);
    }

    #[test]
    fn a_client_cannot_use_a_method_it_is_not_registered_for() {
        let r = registry();
        let form = Params::parse(b"client_id=rp&client_secret=s3cr3t").unwrap();
        assert_eq!(r.authenticate(&HeaderMap::new(), &form).unwrap_err(), RpError::InvalidClient { basic: false });
    }
}
