//! A relying party's public keys, used to verify what it signs (`private_key_jwt` assertions,
//! request objects): inline or file JWKS checked at load, or a `jwks_uri` fetched over the
//! gateway's rustls/hyper client, cached for `client_jwt.jwks_cache_ttl_s` and refetched for an
//! unknown `kid` at most once per `client_jwt.jwks_min_refetch_s` (failed fetches count too, so
//! a stream of unknown `kid`s cannot turn the gateway into a fetch amplifier). Key choice: by
//! `kid`, or the only key of the algorithm's type when the JWS names none.

use crate::clock::SharedClock;
use crate::operators::http::{call, HttpClient};
use bytes::Bytes;
use http::{Method, Request, Uri};
use http_body_util::Full;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};
use parking_lot::RwLock;
use std::sync::Arc;
use std::time::Duration;

/// Why no key was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyLookupError {
    /// No registered key matches the `kid` and algorithm.
    #[error("no registered key matches the kid and algorithm")]
    NoKey,
    /// The client's `jwks_uri` could not be fetched or parsed (detail for the log only).
    #[error("the client's jwks_uri is unavailable: {0}")]
    Unavailable(String),
}

/// Fetch settings for `jwks_uri` clients.
#[derive(Clone)]
pub struct FetchSettings {
    /// Pooled HTTP client (rustls, certificates verified).
    pub client: HttpClient,
    /// Clock for cache ages.
    pub clock: SharedClock,
    /// Cache lifetime, ms.
    pub ttl_ms: u64,
    /// Smallest interval between fetches, ms.
    pub min_refetch_ms: u64,
    /// Whole-fetch timeout.
    pub timeout: Duration,
}

/// A fetched set and when it was fetched.
struct Cached {
    set: Option<Arc<JwkSet>>,
    fetched_at_ms: u64,
    last_attempt_ms: Option<u64>,
}

/// A `jwks_uri` and what was fetched from it.
struct Remote {
    uri: Uri,
    settings: FetchSettings,
    cached: RwLock<Cached>,
    /// One fetch at a time.
    fetch: tokio::sync::Mutex<()>,
}

enum Source {
    Static(Arc<JwkSet>),
    Remote(Box<Remote>),
}

/// One client's keys.
pub struct ClientKeys {
    source: Source,
}

impl std::fmt::Debug for ClientKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            Source::Static(set) => write!(f, "ClientKeys(static, {} keys)", set.keys.len()),
            Source::Remote(r) => write!(f, "ClientKeys(jwks_uri {})", r.uri),
        }
    }
}

impl ClientKeys {
    /// Keys registered in the configuration.
    pub fn fixed(set: JwkSet) -> Self {
        Self { source: Source::Static(Arc::new(set)) }
    }

    /// Keys published at `uri`; nothing is fetched until first use.
    pub fn remote(uri: Uri, settings: FetchSettings) -> Self {
        Self {
            source: Source::Remote(Box::new(Remote {
                uri,
                settings,
                cached: RwLock::new(Cached { set: None, fetched_at_ms: 0, last_attempt_ms: None }),
                fetch: tokio::sync::Mutex::new(()),
            })),
        }
    }

    /// The key to verify a JWS with header `alg` and `kid`.
    pub async fn key_for(&self, kid: Option<&str>, alg: Algorithm) -> Result<DecodingKey, KeyLookupError> {
        match &self.source {
            Source::Static(set) => select(set, kid, alg).ok_or(KeyLookupError::NoKey),
            Source::Remote(r) => {
                let Remote { uri, settings, cached, fetch } = &**r;
                let now = settings.clock.now_ms();
                let (fresh, may_refetch) = {
                    let c = cached.read();
                    let fresh = c.set.clone().filter(|_| now < c.fetched_at_ms.saturating_add(settings.ttl_ms));
                    let may = c.last_attempt_ms.is_none_or(|t| now >= t.saturating_add(settings.min_refetch_ms));
                    (fresh, may)
                };
                if let Some(set) = &fresh {
                    if let Some(k) = select(set, kid, alg) {
                        return Ok(k);
                    }
                    if !may_refetch {
                        return Err(KeyLookupError::NoKey);
                    }
                }
                let set = refetch(uri, settings, cached, fetch).await?;
                select(&set, kid, alg).ok_or(KeyLookupError::NoKey)
            }
        }
    }
}

/// Fetches (one fetch at a time; a caller that waited reuses what the other fetched).
async fn refetch(
    uri: &Uri,
    s: &FetchSettings,
    cached: &RwLock<Cached>,
    fetch: &tokio::sync::Mutex<()>,
) -> Result<Arc<JwkSet>, KeyLookupError> {
    let _one = fetch.lock().await;
    let now = s.clock.now_ms();
    {
        let c = cached.read();
        if c.last_attempt_ms.is_some_and(|t| now < t.saturating_add(s.min_refetch_ms)) {
            // Someone fetched while we waited, or the interval forbids another fetch: use
            // what there is (possibly stale) rather than fetching again.
            return c.set.clone().ok_or(KeyLookupError::Unavailable("the last fetch failed recently".into()));
        }
    }
    cached.write().last_attempt_ms = Some(now);
    match fetch_jwks(uri, s).await {
        Ok(set) => {
            let set = Arc::new(set);
            let mut c = cached.write();
            c.set = Some(set.clone());
            c.fetched_at_ms = s.clock.now_ms();
            Ok(set)
        }
        Err(e) => {
            tracing::warn!(jwks_uri = %uri, error = %e, "client jwks_uri fetch failed");
            // A stale set is better than none while the client's host is down.
            cached.read().set.clone().ok_or(KeyLookupError::Unavailable(e))
        }
    }
}

async fn fetch_jwks(uri: &Uri, s: &FetchSettings) -> Result<JwkSet, String> {
    let req = Request::builder()
        .method(Method::GET)
        .uri(uri.clone())
        .header(http::header::ACCEPT, "application/json")
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let resp = call(&s.client, req, s.timeout).await.map_err(|e| e.to_string())?;
    if !resp.status.is_success() {
        return Err(format!("HTTP {}", resp.status.as_u16()));
    }
    let text = std::str::from_utf8(&resp.body).map_err(|_| "JWKS is not UTF-8".to_string())?;
    crate::config::jwks::parse_client_jwks(text)
}

/// Whether `jwk` can verify `alg`: right key type (RSA for RS256/PS256, EC P-256 for ES256),
/// `alg` absent or equal, `use` absent or `sig` (checked at parse).
fn fits(jwk: &Jwk, alg: Algorithm) -> bool {
    let family_ok = match (&jwk.algorithm, alg) {
        (AlgorithmParameters::RSA(_), Algorithm::RS256 | Algorithm::PS256) => true,
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES256) => ec.curve == EllipticCurve::P256,
        _ => false,
    };
    let alg_ok = match jwk.common.key_algorithm {
        None => true,
        Some(KeyAlgorithm::RS256) => alg == Algorithm::RS256,
        Some(KeyAlgorithm::PS256) => alg == Algorithm::PS256,
        Some(KeyAlgorithm::ES256) => alg == Algorithm::ES256,
        Some(_) => false,
    };
    family_ok && alg_ok
}

/// The key named `kid`, or, without a `kid`, the only key fitting `alg`.
fn select(set: &JwkSet, kid: Option<&str>, alg: Algorithm) -> Option<DecodingKey> {
    let jwk = match kid {
        Some(kid) => set.keys.iter().find(|k| k.common.key_id.as_deref() == Some(kid) && fits(k, alg))?,
        None => {
            let mut fitting = set.keys.iter().filter(|k| fits(k, alg));
            let only = fitting.next()?;
            if fitting.next().is_some() {
                return None;
            }
            only
        }
    };
    DecodingKey::from_jwk(jwk).ok()
}

impl ClientKeys {
    /// The keys a client registered (`jwks`, `jwks_file` or `jwks_uri`), if any; `fetch` makes
    /// the settings for a `jwks_uri` client.
    pub fn from_config(
        c: &crate::config::ClientConfig,
        base_dir: &std::path::Path,
        fetch: &mut dyn FnMut() -> Result<FetchSettings, String>,
    ) -> Result<Option<Self>, String> {
        if let Some(text) = &c.jwks {
            return crate::config::jwks::parse_client_jwks(text)
                .map(|s| Some(Self::fixed(s)))
                .map_err(|e| format!("jwks: {e}"));
        }
        if let Some(f) = &c.jwks_file {
            let path = base_dir.join(f);
            let text = std::fs::read_to_string(&path).map_err(|e| format!("jwks_file {}: {e}", path.display()))?;
            return crate::config::jwks::parse_client_jwks(&text)
                .map(|s| Some(Self::fixed(s)))
                .map_err(|e| format!("jwks_file {}: {e}", path.display()));
        }
        if let Some(u) = &c.jwks_uri {
            let uri: Uri = u.parse().map_err(|_| "jwks_uri is not a URL".to_string())?;
            return Ok(Some(Self::remote(uri, fetch()?)));
        }
        Ok(None)
    }
}
