//! `Idempotency-Key` on `POST /bc-authorize`: an RP that retries a request (a timeout on its side, a
//! crash between send and receive) gets the same `auth_req_id` back instead of a second push to
//! the person's phone. The key is scoped to the client; the stored value is our transaction id
//! plus a fingerprint of the request's parameters, so a key reused for a different request is
//! refused (422, as draft-ietf-httpapi-idempotency-key-header says) and a retry that arrives
//! while the first request is still talking to the operator gets 409 (retry later).

use super::error::RpError;
use super::form::Params;
use crate::store::Store;
use http::HeaderMap;

/// Header carrying the RP's request id.
pub const HEADER: &str = "idempotency-key";
/// Longest key accepted.
const MAX_KEY_LEN: usize = 255;
/// Parameters that authenticate the client rather than describe the request: left out of the
/// fingerprint (a retry may carry a fresh `client_assertion`).
const AUTH_PARAMS: [&str; 4] = ["client_id", "client_secret", "client_assertion", "client_assertion_type"];

/// The RP's key, checked: 1–255 visible ASCII characters.
pub fn key(headers: &HeaderMap) -> Result<Option<&str>, RpError> {
    let mut values = headers.get_all(HEADER).iter();
    let Some(v) = values.next() else { return Ok(None) };
    if values.next().is_some() {
        return Err(RpError::invalid_request("Idempotency-Key is repeated"));
    }
    let k = v.to_str().ok().map(|s| s.trim_matches('"')).unwrap_or("");
    if k.is_empty() || k.len() > MAX_KEY_LEN || !k.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(RpError::invalid_request("Idempotency-Key must be 1-255 visible ASCII characters"));
    }
    Ok(Some(k))
}

/// SHA-256 over the request's parameters in name order (client authentication left out), hex.
pub fn fingerprint(form: &Params<'_>) -> String {
    let mut pairs: Vec<(&str, &str)> = form.iter().filter(|(k, _)| !AUTH_PARAMS.contains(k)).collect();
    pairs.sort_unstable();
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for (k, v) in pairs {
        // Length-prefixed so `a=bc` and `ab=c` differ.
        ctx.update(&(k.len() as u64).to_be_bytes());
        ctx.update(k.as_bytes());
        ctx.update(&(v.len() as u64).to_be_bytes());
        ctx.update(v.as_bytes());
    }
    hex::encode(ctx.finish().as_ref())
}

/// What the key says about this request.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// First use: start the transaction under this id (release the claim if it fails).
    Fresh {
        /// Store key of the claim.
        store_key: String,
        /// The transaction id to use.
        tx_id: String,
    },
    /// A retry of an earlier request: answer with that transaction.
    Replay {
        /// The earlier transaction's id.
        tx_id: String,
    },
}

/// Claims `key` for `client_id` until `until_ms`, or finds the earlier claim.
pub async fn claim(
    store: &dyn Store,
    client_id: &str,
    key: &str,
    fingerprint: &str,
    until_ms: u64,
) -> Result<Claim, RpError> {
    let store_key = format!("idem:{}:{client_id}:{key}", client_id.len());
    let tx_id = crate::clock::random_token(32);
    let value = format!("{tx_id} {fingerprint}");
    match store.put_if_absent(&store_key, &value, until_ms).await.map_err(unavailable)? {
        None => Ok(Claim::Fresh { store_key, tx_id }),
        Some(existing) => match existing.split_once(' ') {
            Some((earlier, fp)) if fp == fingerprint => Ok(Claim::Replay { tx_id: earlier.to_owned() }),
            _ => Err(RpError::IdempotencyMismatch),
        },
    }
}

/// Forgets a claim whose request failed, so the RP may retry with the same key.
pub async fn release(store: &dyn Store, store_key: &str) {
    if let Err(e) = store.take(store_key).await {
        tracing::warn!(error = %e, "could not release an idempotency key");
    }
}

fn unavailable(e: crate::store::StoreError) -> RpError {
    RpError::TemporarilyUnavailable(format!("transaction store: {e}").into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::store::MemoryStore;
    use std::sync::Arc;

    #[test]
    fn keys_are_checked() {
        let mut h = HeaderMap::new();
        assert_eq!(key(&h), Ok(None));
        h.insert(HEADER, "abc-123".parse().unwrap());
        assert_eq!(key(&h), Ok(Some("abc-123")));
        h.insert(HEADER, "has space".parse().unwrap());
        assert!(key(&h).is_err());
        h.insert(HEADER, "x".repeat(256).parse().unwrap());
        assert!(key(&h).is_err());
        h.insert(HEADER, "a".parse().unwrap());
        h.append(HEADER, "b".parse().unwrap());
        assert!(key(&h).is_err(), "repeated header");
    }

    #[test]
    fn fingerprint_ignores_order_and_client_authentication() {
        let a = Params::parse(b"scope=openid&login_hint=MSISDN%3A34600000001&client_secret=one").unwrap();
        let b = Params::parse(b"client_secret=two&login_hint=MSISDN:34600000001&scope=openid").unwrap();
        let c = Params::parse(b"scope=openid&login_hint=MSISDN:34600000002").unwrap();
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(fingerprint(&a), fingerprint(&c));
    }

    #[tokio::test]
    async fn a_key_is_claimed_once_per_client_and_bound_to_its_request() {
        let store = MemoryStore::new(Arc::new(ManualClock::new(0)));
        let Claim::Fresh { store_key, tx_id } = claim(&store, "rp", "k1", "fp", 1000).await.unwrap() else {
            panic!("first use is fresh");
        };
        assert_eq!(claim(&store, "rp", "k1", "fp", 1000).await.unwrap(), Claim::Replay { tx_id });
        assert_eq!(claim(&store, "rp", "k1", "other", 1000).await, Err(RpError::IdempotencyMismatch));
        assert!(matches!(claim(&store, "rp2", "k1", "fp", 1000).await.unwrap(), Claim::Fresh { .. }));
        release(&store, &store_key).await;
        assert!(matches!(claim(&store, "rp", "k1", "fp", 1000).await.unwrap(), Claim::Fresh { .. }));
    }
}
