//! The push-capability cache (issue 7): "this number is not enrolled at its operator"
//! (`unknown_user_id`), remembered in the shared [`Store`] for `not_enrolled_ttl_s` so that
//! every gateway instance sends the next authentication of that number straight to the right
//! channel (SMS where the client's policy allows it, else `unknown_user_id`) without asking the
//! operator again; a successful push start forgets it (when the lookup before it could not
//! tell: after a definite miss there is nothing to forget, and the store call is skipped). The
//! key is a keyed hash (HMAC under the SMS HMAC secret,
//! [`crate::keyed_hash::KeyedHasher::digest`]) of operator and number, never the number.
//! A store failure is a cache miss: the operator is asked as before.
//! With a shared store the look-up goes to the store only for numbers in this instance's
//! [`NotEnrolledIndex`] (which every instance's new entries reach through the store's log), so
//! the usual push makes no store call before it.

use crate::clock::SharedClock;
use crate::keyed_hash::KeyedHasher;
use crate::msisdn::Msisdn;
use crate::operators::resilience::not_enrolled_index::NotEnrolledIndex;
use crate::store::Store;
use crate::telemetry::metrics::ResilienceMetrics;
use prometheus::IntCounter;
use std::sync::Arc;

/// What every operator's cache shares: the store, the clock and the HMAC key.
#[derive(Clone)]
pub struct CacheParts {
    /// The (shared) store.
    pub store: Arc<dyn Store>,
    /// Wall clock of the store's deadlines.
    pub clock: SharedClock,
    /// HMAC of the store keys, keyed by the SMS HMAC secret.
    pub key: KeyedHasher,
    /// The local index in front of a shared store (`None`: every look-up asks the store).
    pub index: Option<Arc<NotEnrolledIndex>>,
}

/// One operator's view of the cache.
pub struct PushCapabilityCache {
    parts: CacheParts,
    operator: String,
    ttl_ms: u64,
    /// How long announcements stay in the store's log (an announcement must outlive every
    /// operator's marks), ms.
    log_keep_ms: u64,
    hit: IntCounter,
    store: IntCounter,
    invalidate: IntCounter,
}

/// Store key prefix.
const PREFIX: &str = "pushcap:";

/// What a cache lookup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Remembered as not enrolled.
    NotEnrolled,
    /// Nothing remembered.
    Absent,
    /// The store failed: treated as a miss, but an entry may exist.
    Unknown,
    /// Not asked: the local index vouched that no instance has marked the number (one it has
    /// not read yet may have: see [`Self::started`](PushCapabilityCache::started)).
    Vouched,
}

impl PushCapabilityCache {
    /// The cache of `operator`, entries kept `ttl_s`; its announcements of new entries stay in
    /// the store's log `log_keep_ms`.
    pub fn new(parts: CacheParts, operator: &str, ttl_s: u64, log_keep_ms: u64, metrics: &ResilienceMetrics) -> Self {
        let c = |o: &str| metrics.push_cache.with_label_values(&[o]);
        Self {
            parts,
            operator: operator.to_owned(),
            ttl_ms: ttl_s.saturating_mul(1000),
            log_keep_ms,
            hit: c("hit"),
            store: c("store"),
            invalidate: c("invalidate"),
        }
    }

    /// The store key of `msisdn` at this operator.
    pub fn key(&self, msisdn: &Msisdn) -> String {
        let digest = self.parts.key.digest(&[
            b"mcgate push capability v1",
            self.operator.as_bytes(),
            &msisdn.value().to_be_bytes(),
        ]);
        // Into a stack buffer: `hex::encode` collects chars one by one (~1.7 k instructions).
        let mut hex = [0u8; 64];
        let _ = hex::encode_to_slice(digest, &mut hex);
        let mut k = String::with_capacity(PREFIX.len() + hex.len());
        k.push_str(PREFIX);
        k.push_str(std::str::from_utf8(&hex).unwrap_or_default());
        k
    }

    /// Whether `msisdn` is remembered as not enrolled (counted as a hit).
    pub async fn not_enrolled(&self, msisdn: &Msisdn) -> bool {
        self.lookup(&self.key(msisdn)).await == Lookup::NotEnrolled
    }

    /// What the cache holds under the number's store key ([`Self::key`], computed once per
    /// push); a hit is counted.
    pub async fn lookup(&self, key: &str) -> Lookup {
        let index = self.parts.index.as_deref();
        if index.is_some_and(|i| i.vouches_absent(key)) {
            return Lookup::Vouched;
        }
        match self.parts.store.get_value(key).await {
            Ok(Some(_)) => {
                self.hit.inc();
                // Found while the index could not vouch (or in a shared slot): indexed now, so
                // the next look-up of this number asks the store again at once.
                if let Some(i) = index {
                    i.insert(key, self.parts.clock.now_ms().saturating_add(self.ttl_ms));
                }
                Lookup::NotEnrolled
            }
            Ok(None) => Lookup::Absent,
            Err(_) => Lookup::Unknown,
        }
    }

    /// Remembers that `msisdn` is not enrolled.
    pub async fn remember_not_enrolled(&self, msisdn: &Msisdn) {
        self.remember_not_enrolled_at(&self.key(msisdn)).await
    }

    /// [`Self::remember_not_enrolled`] by the number's store key.
    pub async fn remember_not_enrolled_at(&self, key: &str) {
        let until = self.parts.clock.now_ms().saturating_add(self.ttl_ms);
        match self.parts.store.put_if_absent(key, "not_enrolled", until).await {
            Ok(None) => {
                self.store.inc();
                if let Some(i) = &self.parts.index {
                    i.announce(key, until, self.log_keep_ms).await;
                }
            }
            // Another instance stored it first (and announced it, unless that failed).
            Ok(Some(_)) => {
                if let Some(i) = &self.parts.index {
                    i.insert(key, until);
                }
            }
            Err(_) => {}
        }
    }

    /// A push to the number under `key` started after a [`Lookup::Vouched`]: a mark of it
    /// that another instance made meanwhile is forgotten (now if this index has read it since,
    /// else when it does).
    pub async fn started(&self, key: &str) {
        if self.parts.index.as_ref().is_some_and(|i| i.started(key)) {
            self.forget_at(key).await;
        }
    }

    /// Forgets `msisdn` (a push to it started: it is enrolled now).
    pub async fn forget(&self, msisdn: &Msisdn) {
        self.forget_at(&self.key(msisdn)).await
    }

    /// [`Self::forget`] by the number's store key.
    pub async fn forget_at(&self, key: &str) {
        if let Ok(Some(_)) = self.parts.store.take(key).await {
            self.invalidate.inc();
        }
        if let Some(i) = &self.parts.index {
            i.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    #[tokio::test]
    async fn remembers_by_keyed_hash_until_the_ttl_and_forgets_on_success() {
        let clock = Arc::new(crate::clock::ManualClock::new(1_000_000));
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new(clock.clone()));
        let registry = prometheus::Registry::new();
        let metrics = ResilienceMetrics::register(&registry, &["movistar".into()]).unwrap();
        let parts = CacheParts { store, clock: clock.clone(), key: KeyedHasher::new(b"k"), index: None };
        let cache = PushCapabilityCache::new(parts.clone(), "movistar", 60, 120_000, &metrics);
        let n = Msisdn::from_digits(34_600_000_004).unwrap();
        assert!(!cache.key(&n).contains("600000004"), "never the number");
        // Shared with other instances through the store: the key must never change.
        use hmac::{Hmac, Mac};
        let mut m = Hmac::<sha2::Sha256>::new_from_slice(b"k").unwrap();
        for p in [&b"mcgate push capability v1"[..], b"movistar", &34_600_000_004u64.to_be_bytes()] {
            m.update(&(p.len() as u64).to_be_bytes());
            m.update(p);
        }
        assert_eq!(cache.key(&n), format!("pushcap:{}", hex::encode(m.finalize().into_bytes())));
        assert_ne!(cache.key(&n), PushCapabilityCache::new(parts, "orange", 60, 120_000, &metrics).key(&n));
        assert!(!cache.not_enrolled(&n).await);
        cache.remember_not_enrolled(&n).await;
        assert!(cache.not_enrolled(&n).await);
        clock.advance_ms(60_001);
        assert!(!cache.not_enrolled(&n).await, "expired");
        cache.remember_not_enrolled(&n).await;
        cache.forget(&n).await;
        assert!(!cache.not_enrolled(&n).await, "forgotten");
        let count = |o: &str| metrics.push_cache.with_label_values(&[o]).get();
        assert_eq!((count("hit"), count("store"), count("invalidate")), (1, 2, 1));
    }
}
