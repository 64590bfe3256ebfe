//! [`PollCache`]: the newest version of each recently polled transaction this instance has read
//! or written, so an RP's poll at `/token` can go straight to its compare-and-set (one store
//! round trip) instead of reading first (two). Only a hint, never an answer: the
//! compare-and-set checks the version, and a lost one hands back the current value, which the
//! poll then plans on (the conflict doubles as the read). Answers that write nothing (terminal
//! states) and side effects (the SMS fallback at the push deadline) always come from a fresh
//! read. Direct-mapped: `slots` entries chosen by a hash of the id, a newer entry replaces an
//! older one; shared by every worker thread. Used with the Redis store (`[store]
//! poll_cache_slots`); 0 slots turns it off.

use super::Transaction;
use crate::store::Versioned;
use parking_lot::Mutex;
use std::hash::BuildHasher;
use std::sync::Arc;

/// A cached transaction at the version the store held it.
pub type Cached = Arc<Versioned<Transaction>>;

/// Recently polled transactions, by id.
pub struct PollCache {
    slots: Box<[Mutex<Option<Cached>>]>,
    hasher: foldhash::fast::FixedState,
}

impl std::fmt::Debug for PollCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PollCache").field("slots", &self.slots.len()).finish()
    }
}

impl PollCache {
    /// A cache of `slots` entries (0: off).
    pub fn new(slots: usize) -> Self {
        Self { slots: (0..slots).map(|_| Mutex::new(None)).collect(), hasher: foldhash::fast::FixedState::default() }
    }

    /// Whether it keeps anything (more than 0 slots).
    pub fn enabled(&self) -> bool {
        !self.slots.is_empty()
    }

    fn slot(&self, id: &str) -> Option<&Mutex<Option<Cached>>> {
        if self.slots.is_empty() {
            return None;
        }
        let i = self.hasher.hash_one(id) as usize % self.slots.len();
        self.slots.get(i)
    }

    /// The last version of `id` seen here, if still cached.
    pub fn get(&self, id: &str) -> Option<Cached> {
        let cached = self.slot(id)?.lock().clone()?;
        (cached.value.id == id).then_some(cached)
    }

    /// Remembers `seen` (read from or written to the store) unless a newer version of the same
    /// transaction is cached already; returns it.
    pub fn put(&self, seen: Cached) -> Cached {
        if let Some(slot) = self.slot(&seen.value.id) {
            let mut slot = slot.lock();
            let newer_cached = slot.as_ref().is_some_and(|c| c.value.id == seen.value.id && c.version > seen.version);
            if !newer_cached {
                *slot = Some(seen.clone());
            }
        }
        seen
    }

    /// Drops `id` (gone from the store, or written at a version not known here).
    pub fn forget(&self, id: &str) {
        if let Some(slot) = self.slot(id) {
            let mut slot = slot.lock();
            if slot.as_ref().is_some_and(|c| c.value.id == id) {
                *slot = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(id: &str, version: u64) -> Cached {
        Arc::new(Versioned { value: Transaction::sample(id, 0), version })
    }

    #[test]
    fn keeps_the_newest_version_per_id_and_forgets_on_request() {
        let cache = PollCache::new(64);
        assert!(cache.get("a").is_none());
        cache.put(seen("a", 3));
        cache.put(seen("a", 2));
        assert_eq!(cache.get("a").map(|c| c.version), Some(3), "an older version never replaces a newer one");
        cache.put(seen("a", 4));
        assert_eq!(cache.get("a").map(|c| c.version), Some(4));
        cache.forget("a");
        assert!(cache.get("a").is_none());
    }

    #[test]
    fn a_colliding_id_replaces_the_slot_and_is_never_mistaken_for_another() {
        let cache = PollCache::new(1);
        cache.put(seen("a", 7));
        assert!(cache.get("b").is_none(), "same slot, other id");
        cache.put(seen("b", 1));
        assert!(cache.get("a").is_none());
        assert_eq!(cache.get("b").map(|c| c.version), Some(1));
        cache.forget("a");
        assert!(cache.get("b").is_some(), "forgetting another id leaves the slot alone");
    }

    #[test]
    fn zero_slots_is_off() {
        let cache = PollCache::new(0);
        cache.put(seen("a", 1));
        assert!(cache.get("a").is_none());
    }
}
