//! Operator metadata and JWKS, fetched lazily and cached: endpoints from
//! `<issuer>/.well-known/openid-configuration` (or pinned in `routing.toml`) for `metadata_ttl_s`;
//! the JWKS until a token names an unknown `kid`, then refetched at most once per
//! `jwks_min_refetch_s`. Concurrent misses share one fetch.

use super::http::{call, CallError, HttpClient};
use crate::clock::SharedClock;
use bytes::Bytes;
use http::{Method, Request, Uri};
use http_body_util::Full;
use jsonwebtoken::jwk::JwkSet;
use parking_lot::RwLock;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// Why metadata or keys are not available.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MetadataError {
    /// The fetch failed.
    #[error("{0}")]
    Call(#[from] CallError),
    /// The answer is not usable.
    #[error("{0}")]
    Invalid(String),
}

/// The endpoints the adapter uses.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// CIBA backchannel authentication endpoint (`mode = "ciba"`).
    pub backchannel: Option<Uri>,
    /// Mobile Connect server-initiated endpoint (`mode = "mc_si"`).
    pub si_authorization: Option<Uri>,
    /// Token endpoint.
    pub token: Uri,
    /// JWKS.
    pub jwks: Uri,
    /// Authorization endpoint (redirect flow), when the operator offers one.
    pub authorization: Option<Uri>,
}

/// Endpoints pinned in the config (each overrides the metadata's).
#[derive(Debug, Clone, Default)]
pub struct PinnedEndpoints {
    /// `backchannel_authentication_endpoint`.
    pub backchannel: Option<String>,
    /// `token_endpoint`.
    pub token: Option<String>,
    /// `jwks_uri`.
    pub jwks: Option<String>,
    /// `authorization_endpoint`.
    pub authorization: Option<String>,
    /// `si_authorization_endpoint`.
    pub si_authorization: Option<String>,
}

#[derive(Deserialize)]
struct ProviderMetadata {
    issuer: String,
    #[serde(default)]
    backchannel_authentication_endpoint: Option<String>,
    #[serde(default)]
    token_endpoint: Option<String>,
    #[serde(default)]
    jwks_uri: Option<String>,
    #[serde(default)]
    authorization_endpoint: Option<String>,
    #[serde(default)]
    si_authorization_endpoint: Option<String>,
}

/// Caches one operator's endpoints and keys.
pub struct MetadataCache {
    issuer: String,
    pinned: PinnedEndpoints,
    client: HttpClient,
    clock: SharedClock,
    timeout: Duration,
    ttl_ms: u64,
    jwks_min_refetch_ms: u64,
    endpoints: RwLock<Option<(Arc<Endpoints>, u64)>>,
    jwks: RwLock<Option<(Arc<JwkSet>, u64)>>,
    fetch: tokio::sync::Mutex<()>,
}

impl MetadataCache {
    /// A cache for `issuer`; nothing is fetched until first use.
    pub fn new(
        issuer: String,
        pinned: PinnedEndpoints,
        client: HttpClient,
        clock: SharedClock,
        timeout: Duration,
        ttl_s: u64,
        jwks_min_refetch_s: u64,
    ) -> Self {
        Self {
            issuer,
            pinned,
            client,
            clock,
            timeout,
            ttl_ms: ttl_s * 1000,
            jwks_min_refetch_ms: jwks_min_refetch_s * 1000,
            endpoints: RwLock::new(None),
            jwks: RwLock::new(None),
            fetch: tokio::sync::Mutex::new(()),
        }
    }

    /// The operator's issuer.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Endpoints without any fetch, when `routing.toml` pins the decoupled one (CIBA's
    /// backchannel or MC-SI's), the token endpoint and the JWKS.
    fn all_pinned(&self) -> Option<Endpoints> {
        let p = &self.pinned;
        let parse = |u: &Option<String>| u.as_deref().and_then(|u| u.parse::<Uri>().ok());
        let (backchannel, si_authorization) = (parse(&p.backchannel), parse(&p.si_authorization));
        if backchannel.is_none() && si_authorization.is_none() {
            return None;
        }
        Some(Endpoints {
            backchannel,
            si_authorization,
            token: p.token.as_deref()?.parse().ok()?,
            jwks: p.jwks.as_deref()?.parse().ok()?,
            // Pinning the CIBA/SI endpoints is enough; the redirect hop is then only offered
            // when its endpoint is pinned too.
            authorization: parse(&p.authorization),
        })
    }

    /// The current endpoints, fetching metadata when needed.
    pub async fn endpoints(&self) -> Result<Arc<Endpoints>, MetadataError> {
        let now = self.clock.now_ms();
        if let Some((e, at)) = &*self.endpoints.read() {
            if now < at + self.ttl_ms {
                return Ok(e.clone());
            }
        }
        let _guard = self.fetch.lock().await;
        if let Some((e, at)) = &*self.endpoints.read() {
            if self.clock.now_ms() < at + self.ttl_ms {
                return Ok(e.clone());
            }
        }
        let e = Arc::new(match self.all_pinned() {
            Some(e) => e,
            None => self.fetch_metadata().await?,
        });
        *self.endpoints.write() = Some((e.clone(), self.clock.now_ms()));
        Ok(e)
    }

    async fn get(&self, uri: &Uri) -> Result<Bytes, MetadataError> {
        let req = Request::builder()
            .method(Method::GET)
            .uri(uri.clone())
            .header(http::header::ACCEPT, "application/json")
            .body(Full::new(Bytes::new()))
            .map_err(|e| MetadataError::Invalid(e.to_string()))?;
        let resp = call(&self.client, req, self.timeout).await?;
        if !resp.status.is_success() {
            return Err(MetadataError::Invalid(format!("HTTP {}", resp.status.as_u16())));
        }
        Ok(resp.body)
    }

    async fn fetch_metadata(&self) -> Result<Endpoints, MetadataError> {
        let url = format!("{}/.well-known/openid-configuration", self.issuer.trim_end_matches('/'));
        let uri: Uri = url.parse().map_err(|_| MetadataError::Invalid("bad metadata URL".into()))?;
        let body = self.get(&uri).await?;
        let md: ProviderMetadata = serde_json::from_slice(&body)
            .map_err(|e| MetadataError::Invalid(format!("metadata is not valid JSON: {e}")))?;
        if md.issuer != self.issuer {
            return Err(MetadataError::Invalid("metadata issuer differs from the configured issuer".into()));
        }
        let pick = |pinned: &Option<String>, found: Option<String>, name: &str| -> Result<Uri, MetadataError> {
            pinned
                .clone()
                .or(found)
                .ok_or_else(|| MetadataError::Invalid(format!("metadata has no {name}")))?
                .parse()
                .map_err(|_| MetadataError::Invalid(format!("metadata {name} is not a URL")))
        };
        // The decoupled endpoints are optional here; the adapter of the operator's mode requires its own.
        let optional = |pinned: &Option<String>, found: Option<String>, name: &str| -> Result<_, MetadataError> {
            match pinned.clone().or(found) {
                Some(u) => Ok(Some(
                    u.parse::<Uri>().map_err(|_| MetadataError::Invalid(format!("metadata {name} is not a URL")))?,
                )),
                None => Ok(None),
            }
        };
        Ok(Endpoints {
            backchannel: optional(
                &self.pinned.backchannel,
                md.backchannel_authentication_endpoint,
                "backchannel_authentication_endpoint",
            )?,
            si_authorization: optional(
                &self.pinned.si_authorization,
                md.si_authorization_endpoint,
                "si_authorization_endpoint",
            )?,
            token: pick(&self.pinned.token, md.token_endpoint, "token_endpoint")?,
            jwks: pick(&self.pinned.jwks, md.jwks_uri, "jwks_uri")?,
            authorization: match self.pinned.authorization.clone().or(md.authorization_endpoint) {
                Some(a) => Some(
                    a.parse()
                        .map_err(|_| MetadataError::Invalid("metadata authorization_endpoint is not a URL".into()))?,
                ),
                None => None,
            },
        })
    }

    /// The JWKS; `refresh_for_kid` asks for a refetch because a token named an unknown key
    /// (honoured at most once per `jwks_min_refetch_s`).
    pub async fn jwks(&self, refresh_for_kid: bool) -> Result<Arc<JwkSet>, MetadataError> {
        let now = self.clock.now_ms();
        if let Some((set, at)) = &*self.jwks.read() {
            if !refresh_for_kid || now < at + self.jwks_min_refetch_ms {
                return Ok(set.clone());
            }
        }
        let _guard = self.fetch.lock().await;
        if let Some((set, at)) = &*self.jwks.read() {
            if self.clock.now_ms() < at + self.jwks_min_refetch_ms {
                return Ok(set.clone());
            }
        }
        drop(_guard);
        let endpoints = self.endpoints().await?;
        let body = self.get(&endpoints.jwks).await?;
        let set: JwkSet =
            serde_json::from_slice(&body).map_err(|e| MetadataError::Invalid(format!("JWKS is not valid: {e}")))?;
        let set = Arc::new(set);
        *self.jwks.write() = Some((set.clone(), self.clock.now_ms()));
        Ok(set)
    }
}
