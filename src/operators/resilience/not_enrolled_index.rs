//! The local index of the numbers remembered as "not enrolled" (issue 7). With a shared store
//! (Redis) the push-capability cache ([`super::push_cache`]) asks the store only about numbers
//! in this index, so the usual bc-authorize — a number nobody has marked — makes no
//! push-capability round trip before its push.
//!
//! The index holds the cache keys remembered by every instance: this instance's own, and the
//! others', read from the store's shared log ([`Store::log_read`]; Redis: a stream) every
//! `store.not_enrolled_sync_ms`. It filters, it never answers:
//! - a key in the index is still looked up in the store, which may have forgotten or expired it
//!   (and two keys may share an index slot);
//! - a key missing from it, because another instance remembered it since the last read, can
//!   only cost one call to the operator, which answers "not enrolled" again;
//! - while it cannot vouch for being complete — before its first read of the log, after a
//!   failed or late read, or after it overflowed `store.not_enrolled_index_max` (until what it
//!   dropped has expired) — every look-up goes to the store, as without it.
//!
//! A push that starts for a number the index vouched for is remembered for a few sync periods:
//! if another instance's announcement of that number arrives meanwhile (it marked the number
//! just before this push proved it enrolled), the mark is forgotten in the store instead of
//! indexed, as a successful push after a store look-up would have done.

use crate::clock::SharedClock;
use crate::store::{Store, StoreError};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::time::Instant;

/// The shared log the instances announce their entries on.
pub const LOG: &str = "pushcap";
/// Entries read per store call.
const PAGE: usize = 1000;
/// A read older than this many sync periods no longer vouches for the index.
const STALE_PERIODS: u32 = 3;

/// This instance's index (one per process; kept across reloads).
pub struct NotEnrolledIndex {
    store: Arc<dyn Store>,
    clock: SharedClock,
    max_entries: usize,
    every: Duration,
    hasher: foldhash::fast::RandomState,
    state: Mutex<State>,
}

/// Most pushes remembered as "started after the index vouched" ([`NotEnrolledIndex::started`]).
const MAX_STARTED: usize = 65_536;

#[derive(Default)]
struct State {
    /// Index slot (a hash of the cache key) → remembered until, ms.
    entries: HashMap<u64, u64, foldhash::fast::RandomState>,
    /// The earliest `until` in `entries` (nothing to sweep before it).
    next_expiry_ms: u64,
    /// Slots of numbers pushed successfully after the index vouched for them, and when.
    started: HashMap<u64, Instant, foldhash::fast::RandomState>,
    /// Where the next read of the log goes on from.
    cursor: Option<String>,
    /// When the last complete read of the log began (`None` after a failed one).
    synced_at: Option<Instant>,
    /// Entries were dropped (full index) that live until this time: incomplete until then.
    incomplete_until_ms: u64,
}

impl NotEnrolledIndex {
    /// An empty index over `store`'s log, read every `every`, holding at most `max_entries`;
    /// the reading task runs (on the current runtime) while the index lives.
    pub fn start(store: Arc<dyn Store>, clock: SharedClock, max_entries: usize, every: Duration) -> Arc<Self> {
        let index = Arc::new(Self::new(store, clock, max_entries, every));
        tokio::spawn(sync_loop(Arc::downgrade(&index), every));
        index
    }

    /// The index without its reading task ([`Self::sync`] by hand; tests).
    pub fn new(store: Arc<dyn Store>, clock: SharedClock, max_entries: usize, every: Duration) -> Self {
        Self { store, clock, max_entries, every, hasher: Default::default(), state: Mutex::new(State::default()) }
    }

    fn slot(&self, key: &str) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Whether `key` is certainly not remembered anywhere as not enrolled (the store look-up
    /// can be skipped). `false` means "ask the store".
    pub fn vouches_absent(&self, key: &str) -> bool {
        let now_ms = self.clock.now_ms();
        let state = self.state.lock();
        let fresh = state.synced_at.is_some_and(|t| t.elapsed() <= self.every * STALE_PERIODS);
        fresh && now_ms >= state.incomplete_until_ms && state.entries.get(&self.slot(key)).is_none_or(|&u| u <= now_ms)
    }

    /// Adds `key`, remembered until `until_ms`, to this instance's index only.
    pub fn insert(&self, key: &str, until_ms: u64) {
        let slot = self.slot(key);
        let mut state = self.state.lock();
        self.insert_locked(&mut state, slot, until_ms);
    }

    /// Adds `key` here and tells the other instances (through the store's log, kept `keep_ms`).
    /// A failed announcement is logged; the others then learn the number from the operator.
    pub async fn announce(&self, key: &str, until_ms: u64, keep_ms: u64) {
        self.insert(key, until_ms);
        if let Err(e) = self.store.log_append(LOG, &format!("{until_ms} {key}"), keep_ms).await {
            tracing::warn!(error = %e, "could not announce a not-enrolled number to the other instances");
        }
    }

    /// Drops `key` from this instance's index (a push to it started).
    pub fn remove(&self, key: &str) {
        let slot = self.slot(key);
        self.state.lock().entries.remove(&slot);
    }

    /// A push to `key` started after this index vouched for it. Returns whether the key has been
    /// indexed since (another instance's mark arrived during the push): the caller then forgets
    /// it. Otherwise a mark that arrives within the next sync periods is forgotten by the read.
    pub fn started(&self, key: &str) -> bool {
        let slot = self.slot(key);
        let mut state = self.state.lock();
        if state.entries.remove(&slot).is_some() {
            return true;
        }
        if state.started.len() < MAX_STARTED {
            state.started.insert(slot, Instant::now());
        }
        false
    }

    /// Number of indexed keys (tests, diagnostics).
    pub fn len(&self) -> usize {
        self.state.lock().entries.len()
    }

    /// Whether the index holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Indexes `slot` until `until_ms`. A full index drops it and stops vouching until it would
    /// have expired (no sweep here: expired entries go at the next read).
    fn insert_locked(&self, state: &mut State, slot: u64, until_ms: u64) {
        if let Some(u) = state.entries.get_mut(&slot) {
            *u = (*u).max(until_ms);
            return;
        }
        if state.entries.len() >= self.max_entries {
            if state.incomplete_until_ms <= self.clock.now_ms() {
                tracing::warn!(
                    max = self.max_entries,
                    "not-enrolled index full (store.not_enrolled_index_max): push-capability look-ups go to the store"
                );
            }
            state.incomplete_until_ms = state.incomplete_until_ms.max(until_ms);
            return;
        }
        state.next_expiry_ms = if state.entries.is_empty() { until_ms } else { state.next_expiry_ms.min(until_ms) };
        state.entries.insert(slot, until_ms);
    }

    /// Reads the log from where the last read ended, to its end; drops expired entries. A mark
    /// of a number pushed here since the index vouched for it is forgotten in the store instead
    /// of indexed. A failed read leaves the index unable to vouch until a read succeeds.
    pub async fn sync(&self) -> Result<usize, StoreError> {
        let began = Instant::now();
        let result = self.read_log().await;
        let mut state = self.state.lock();
        match &result {
            Ok(_) => state.synced_at = Some(began),
            Err(_) => state.synced_at = None,
        }
        result
    }

    async fn read_log(&self) -> Result<usize, StoreError> {
        let mut cursor = self.state.lock().cursor.clone();
        let mut read = 0;
        loop {
            let page = self.store.log_read(LOG, cursor.as_deref(), PAGE).await?;
            let now_ms = self.clock.now_ms();
            let mut forget = Vec::new();
            {
                let mut state = self.state.lock();
                let window = self.every * STALE_PERIODS;
                state.started.retain(|_, at| at.elapsed() <= window);
                for entry in &page.entries {
                    let Some((until, key)) = entry.split_once(' ') else { continue };
                    let Ok(until_ms) = until.parse::<u64>() else { continue };
                    if until_ms <= now_ms {
                        continue;
                    }
                    let slot = self.slot(key);
                    if state.started.contains_key(&slot) {
                        forget.push(key.to_owned());
                    } else {
                        self.insert_locked(&mut state, slot, until_ms);
                    }
                }
                if page.entries.len() < PAGE && now_ms >= state.next_expiry_ms {
                    state.entries.retain(|_, u| *u > now_ms);
                    state.next_expiry_ms = state.entries.values().copied().min().unwrap_or(u64::MAX);
                }
                state.cursor = page.cursor.clone();
            }
            for key in forget {
                // The number proved enrolled after it was marked: as a started push would.
                self.store.take(&key).await?;
            }
            read += page.entries.len();
            cursor = page.cursor;
            if page.entries.len() < PAGE {
                return Ok(read);
            }
        }
    }
}

async fn sync_loop(index: Weak<NotEnrolledIndex>, every: Duration) {
    // Whether the last read failed: a warning per failure streak.
    let mut failing = false;
    loop {
        let Some(index) = index.upgrade() else { return };
        let result = index.sync().await;
        let was_failing = std::mem::replace(&mut failing, result.is_err());
        match result {
            Err(e) if !was_failing => tracing::warn!(
                error = %e,
                "not-enrolled index: reading the shared log failed; push-capability look-ups go to the store"
            ),
            Ok(_) if was_failing => tracing::info!("not-enrolled index: reading the shared log again"),
            _ => {}
        }
        drop(index);
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::store::MemoryStore;

    #[tokio::test]
    async fn a_mark_made_elsewhere_during_a_vouched_push_is_forgotten_not_indexed() {
        let (clock, store) = memory_store(1_000_000);
        let (a, b) = (index_over(&store, &clock, 100), index_over(&store, &clock, 100));
        a.sync().await.unwrap();
        b.sync().await.unwrap();
        // B marks x while A, vouching for x, pushes it successfully.
        assert!(a.vouches_absent("pushcap:x"));
        store.put_if_absent("pushcap:x", "not_enrolled", 1_060_000).await.unwrap();
        b.announce("pushcap:x", 1_060_000, 120_000).await;
        assert!(!a.started("pushcap:x"), "not read yet: remembered");
        a.sync().await.unwrap();
        assert!(a.vouches_absent("pushcap:x"), "not indexed");
        assert_eq!(store.get_value("pushcap:x").await.unwrap(), None, "forgotten in the store");
        // Read before the push ended: the caller forgets it.
        store.put_if_absent("pushcap:y", "not_enrolled", 1_060_000).await.unwrap();
        b.announce("pushcap:y", 1_060_000, 120_000).await;
        a.sync().await.unwrap();
        assert!(a.started("pushcap:y"), "indexed since: the caller forgets it");
        assert!(a.vouches_absent("pushcap:y"));
    }

    #[tokio::test]
    async fn a_failed_read_stops_vouching_and_a_flushed_log_is_read_again_from_its_start() {
        let (clock, store) = memory_store(1_000_000);
        let index = index_over(&store, &clock, 100);
        index.sync().await.unwrap();
        assert!(index.vouches_absent("k"));
        index.state.lock().cursor = Some("not a cursor".into());
        assert!(index.sync().await.is_err());
        assert!(!index.vouches_absent("k"), "a failed read cannot vouch");
        // A cursor past the log's end (the log was flushed and began again): read from the start.
        index.state.lock().cursor = Some("99".into());
        index.sync().await.unwrap();
        store.log_append(LOG, "1060000 k", 60_000).await.unwrap();
        index.sync().await.unwrap();
        assert!(!index.vouches_absent("k"), "read from the new log's start");
    }

    /// A manual clock at `start_ms` and a memory store reading it.
    fn memory_store(start_ms: u64) -> (Arc<ManualClock>, Arc<dyn Store>) {
        let clock = Arc::new(ManualClock::new(start_ms));
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new(clock.clone()));
        (clock, store)
    }

    fn index_over(store: &Arc<dyn Store>, clock: &Arc<ManualClock>, max: usize) -> NotEnrolledIndex {
        NotEnrolledIndex::new(store.clone(), clock.clone(), max, Duration::from_secs(60))
    }

    #[tokio::test]
    async fn vouches_only_after_a_read_and_learns_what_other_instances_announce() {
        let (clock, store) = memory_store(1_000_000);
        let (a, b) = (index_over(&store, &clock, 100), index_over(&store, &clock, 100));
        assert!(!b.vouches_absent("pushcap:x"), "never read the log: cannot vouch");
        b.sync().await.unwrap();
        assert!(b.vouches_absent("pushcap:x"));
        a.announce("pushcap:x", 1_060_000, 60_000).await;
        assert!(!a.vouches_absent("pushcap:x"), "the announcer indexes it at once");
        assert!(b.vouches_absent("pushcap:x"), "b has not read the log since");
        assert_eq!(b.sync().await.unwrap(), 1);
        assert!(!b.vouches_absent("pushcap:x"));
        assert!(b.vouches_absent("pushcap:y"));
        assert_eq!(b.sync().await.unwrap(), 0, "the cursor moved on");
        clock.advance_ms(60_000);
        assert!(b.vouches_absent("pushcap:x"), "expired");
        b.sync().await.unwrap();
        assert!(b.is_empty(), "expired entries are dropped");
        let late = index_over(&store, &clock, 100);
        late.sync().await.unwrap();
        assert!(late.vouches_absent("pushcap:x"), "a late reader skips expired entries");
    }

    #[tokio::test]
    async fn a_full_index_stops_vouching_until_what_it_dropped_has_expired() {
        let (clock, store) = memory_store(0);
        let index = index_over(&store, &clock, 2);
        index.sync().await.unwrap();
        index.insert("k1", 1_000);
        index.insert("k2", 1_000);
        assert!(index.vouches_absent("k9"));
        index.insert("k3", 5_000);
        assert!(!index.vouches_absent("k9"), "k3 was dropped: the index cannot vouch");
        clock.advance_ms(1_000);
        assert!(!index.vouches_absent("k9"), "k3 still lives");
        index.sync().await.unwrap(); // sweeps k1 and k2
        index.insert("k4", 9_000);
        clock.advance_ms(4_000);
        assert!(index.vouches_absent("k9"), "what was dropped has expired");
        assert!(!index.vouches_absent("k4"), "k4 found room once k1 and k2 expired");
    }

    #[tokio::test(start_paused = true)]
    async fn a_stale_read_stops_vouching() {
        let (clock, store) = memory_store(0);
        let index = index_over(&store, &clock, 10);
        index.sync().await.unwrap();
        assert!(index.vouches_absent("k"));
        tokio::time::advance(Duration::from_secs(60 * u64::from(STALE_PERIODS) + 1)).await;
        assert!(!index.vouches_absent("k"), "no read for three periods");
        index.remove("k");
        index.sync().await.unwrap();
        assert!(index.vouches_absent("k"));
    }
}
