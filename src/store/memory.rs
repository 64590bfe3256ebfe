//! In-memory [`Store`]: transactions in 64 independently locked shards (a short
//! `parking_lot::Mutex` critical section, never held across `.await`), versions for
//! compare-and-set, retention deadlines from the injected clock, and a purge pass driven by the
//! server. One instance only: state dies with the process (L-09: after a restart RPs get
//! `invalid_grant`, never a 500).

use super::{CasResult, LogPage, Store, StoreError, Versioned};
use crate::clock::SharedClock;
use crate::flow::Transaction;
use async_trait::async_trait;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;

const SHARDS: usize = 64;

struct Entry {
    /// Boxed: the maps then hold small entries, so the doubling of a busy shard's table moves
    /// ~48 bytes per transaction instead of the whole transaction (a latency spike under load).
    tx: Box<Transaction>,
    version: u64,
    retain_until_ms: u64,
}

/// Keys are 256-bit random ids (or replay-guard keys the gateway builds), so a fast seeded
/// hash is enough; SipHash cost ~5 % of a bc-authorize.
type FastMap<V> = HashMap<String, V, foldhash::fast::RandomState>;

#[derive(Default)]
struct Shard {
    txs: FastMap<Entry>,
    once: FastMap<u64>,
    values: FastMap<(String, u64)>,
    counters: FastMap<(u64, u64)>,
}

/// One shared log: entries with their sequence number and append time.
#[derive(Default)]
struct Log {
    entries: VecDeque<(u64, u64, String)>,
    next: u64,
}

/// The embedded store.
pub struct MemoryStore {
    shards: Box<[Mutex<Shard>]>,
    hasher: foldhash::fast::RandomState,
    clock: SharedClock,
    logs: Mutex<HashMap<String, Log>>,
}

impl MemoryStore {
    /// An empty store reading time from `clock`.
    pub fn new(clock: SharedClock) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: Default::default(),
            clock,
            logs: Mutex::new(HashMap::new()),
        }
    }

    fn shard(&self, key: &str) -> &Mutex<Shard> {
        &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS]
    }

    /// Number of stored transactions (tests, metrics).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().txs.len()).sum()
    }

    /// Whether the store holds no transaction.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn insert(&self, tx: Transaction, retain_until_ms: u64) -> Result<u64, StoreError> {
        let now = self.clock.now_ms();
        let mut shard = self.shard(&tx.id).lock();
        if let Some(e) = shard.txs.get(&tx.id) {
            if e.retain_until_ms > now {
                return Err(StoreError::AlreadyExists);
            }
        }
        shard.txs.insert(tx.id.clone(), Entry { tx: Box::new(tx), version: 1, retain_until_ms });
        Ok(1)
    }

    async fn get(&self, id: &str) -> Result<Option<Versioned<Transaction>>, StoreError> {
        let now = self.clock.now_ms();
        let shard = self.shard(id).lock();
        Ok(shard
            .txs
            .get(id)
            .filter(|e| e.retain_until_ms > now)
            .map(|e| Versioned { value: (*e.tx).clone(), version: e.version }))
    }

    async fn compare_and_set(
        &self,
        expected_version: u64,
        tx: Transaction,
        retain_until_ms: u64,
    ) -> Result<CasResult, StoreError> {
        let now = self.clock.now_ms();
        let mut shard = self.shard(&tx.id).lock();
        match shard.txs.get_mut(&tx.id).filter(|e| e.retain_until_ms > now) {
            Some(e) if e.version == expected_version => {
                e.version += 1;
                *e.tx = tx; // the box is reused
                e.retain_until_ms = retain_until_ms;
                Ok(CasResult::Applied { version: e.version })
            }
            Some(e) => Ok(CasResult::Conflict {
                current: Some(Box::new(Versioned { value: (*e.tx).clone(), version: e.version })),
            }),
            None => Ok(CasResult::Conflict { current: None }),
        }
    }

    async fn remember_once(&self, key: &str, until_ms: u64) -> Result<bool, StoreError> {
        let now = self.clock.now_ms();
        let mut shard = self.shard(key).lock();
        match shard.once.get(key) {
            Some(&until) if until > now => Ok(false),
            _ => {
                shard.once.insert(key.to_owned(), until_ms);
                Ok(true)
            }
        }
    }

    async fn put_if_absent(&self, key: &str, value: &str, until_ms: u64) -> Result<Option<String>, StoreError> {
        let now = self.clock.now_ms();
        let mut shard = self.shard(key).lock();
        match shard.values.get(key) {
            Some((existing, until)) if *until > now => Ok(Some(existing.clone())),
            _ => {
                shard.values.insert(key.to_owned(), (value.to_owned(), until_ms));
                Ok(None)
            }
        }
    }

    async fn take(&self, key: &str) -> Result<Option<String>, StoreError> {
        let now = self.clock.now_ms();
        let mut shard = self.shard(key).lock();
        Ok(shard.values.remove(key).filter(|(_, until)| *until > now).map(|(v, _)| v))
    }

    async fn get_value(&self, key: &str) -> Result<Option<String>, StoreError> {
        let now = self.clock.now_ms();
        let shard = self.shard(key).lock();
        Ok(shard.values.get(key).filter(|(_, until)| *until > now).map(|(v, _)| v.clone()))
    }

    async fn incr(&self, key: &str, until_ms: u64) -> Result<u64, StoreError> {
        let now = self.clock.now_ms();
        let bump = |entry: &mut (u64, u64)| {
            if entry.1 <= now {
                entry.0 = 0;
            }
            entry.0 += 1;
            entry.1 = until_ms;
            entry.0
        };
        let mut shard = self.shard(key).lock();
        // Looked up by `&str` first: the key is copied only for a counter's first increment.
        Ok(match shard.counters.get_mut(key) {
            Some(entry) => bump(entry),
            None => {
                let mut entry = (0, 0);
                let n = bump(&mut entry);
                shard.counters.insert(key.to_owned(), entry);
                n
            }
        })
    }

    async fn reset_counter(&self, key: &str) -> Result<(), StoreError> {
        self.shard(key).lock().counters.remove(key);
        Ok(())
    }

    async fn counter(&self, key: &str) -> Result<u64, StoreError> {
        let now = self.clock.now_ms();
        let shard = self.shard(key).lock();
        Ok(shard.counters.get(key).filter(|(_, until)| *until > now).map_or(0, |(n, _)| *n))
    }

    async fn log_append(&self, log: &str, entry: &str, keep_ms: u64) -> Result<(), StoreError> {
        let now = self.clock.now_ms();
        let mut logs = self.logs.lock();
        let log = logs.entry(log.to_owned()).or_default();
        while log.entries.front().is_some_and(|(_, at, _)| at.saturating_add(keep_ms) < now) {
            log.entries.pop_front();
        }
        log.next += 1;
        let seq = log.next;
        log.entries.push_back((seq, now, entry.to_owned()));
        Ok(())
    }

    async fn log_read(&self, log: &str, cursor: Option<&str>, max: usize) -> Result<LogPage, StoreError> {
        let after = match cursor {
            None => 0,
            Some(c) => c.parse::<u64>().map_err(|_| StoreError::Unavailable("log cursor unreadable".into()))?,
        };
        let logs = self.logs.lock();
        let Some(l) = logs.get(log).filter(|l| after <= l.next) else {
            // Never written (or a cursor from elsewhere): read from the start next time.
            return Ok(LogPage::default());
        };
        let first = l.entries.partition_point(|(seq, _, _)| *seq <= after);
        let entries: Vec<&(u64, u64, String)> = l.entries.range(first..).take(max).collect();
        let cursor = entries.last().map(|(seq, _, _)| seq.to_string()).or_else(|| cursor.map(str::to_owned));
        Ok(LogPage { entries: entries.into_iter().map(|(_, _, e)| e.clone()).collect(), cursor })
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn purge_expired(&self) -> Result<Vec<&'static str>, StoreError> {
        let now = self.clock.now_ms();
        let mut dropped = Vec::new();
        for s in self.shards.iter() {
            let mut shard = s.lock();
            shard.txs.retain(|_, e| {
                let keep = e.retain_until_ms > now;
                if !keep {
                    dropped.push(e.tx.state.as_str());
                }
                keep
            });
            shard.once.retain(|_, until| *until > now);
            shard.values.retain(|_, (_, until)| *until > now);
            shard.counters.retain(|_, (_, until)| *until > now);
        }
        Ok(dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::flow::TxState;
    use std::sync::Arc;

    fn tx(id: &str) -> Transaction {
        Transaction::sample(id, 0)
    }

    #[tokio::test]
    async fn compare_and_set_lets_exactly_one_writer_win() {
        let clock = Arc::new(ManualClock::new(0));
        let store = Arc::new(MemoryStore::new(clock));
        let v = store.insert(tx("a"), 10_000).await.unwrap();
        assert!(matches!(store.insert(tx("a"), 10_000).await, Err(StoreError::AlreadyExists)));
        let mut handles = Vec::new();
        for _ in 0..50 {
            let s = store.clone();
            handles.push(tokio::spawn(async move {
                let mut t = tx("a");
                t.state = TxState::Approved;
                matches!(s.compare_and_set(v, t, 10_000).await.unwrap(), CasResult::Applied { .. })
            }));
        }
        let mut wins = 0;
        for h in handles {
            wins += h.await.unwrap() as u32;
        }
        assert_eq!(wins, 1);
        assert_eq!(store.get("a").await.unwrap().unwrap().version, 2);
    }

    #[tokio::test]
    async fn entries_vanish_after_retention_and_purge_reports_states() {
        let clock = Arc::new(ManualClock::new(0));
        let store = MemoryStore::new(clock.clone());
        store.insert(tx("a"), 1_000).await.unwrap();
        assert!(store.get("a").await.unwrap().is_some());
        clock.advance_ms(1_000);
        assert!(store.get("a").await.unwrap().is_none());
        assert_eq!(store.purge_expired().await.unwrap(), vec!["pending_push"]);
        assert!(store.is_empty());
    }

    #[tokio::test]
    async fn remember_once_guards_replays_until_expiry() {
        let clock = Arc::new(ManualClock::new(0));
        let store = MemoryStore::new(clock.clone());
        assert!(store.remember_once("jti:1", 500).await.unwrap());
        assert!(!store.remember_once("jti:1", 500).await.unwrap());
        clock.advance_ms(500);
        assert!(store.remember_once("jti:1", 900).await.unwrap());
    }

    #[tokio::test]
    async fn put_if_absent_keeps_the_first_value_and_take_is_single_use() {
        let clock = Arc::new(ManualClock::new(0));
        let store = MemoryStore::new(clock.clone());
        assert_eq!(store.put_if_absent("k", "one", 500).await.unwrap(), None);
        assert_eq!(store.put_if_absent("k", "two", 500).await.unwrap().as_deref(), Some("one"));
        assert_eq!(store.take("k").await.unwrap().as_deref(), Some("one"));
        assert_eq!(store.take("k").await.unwrap(), None);
        store.put_if_absent("e", "v", 100).await.unwrap();
        clock.advance_ms(100);
        assert_eq!(store.take("e").await.unwrap(), None, "expired values are never returned");
        assert_eq!(store.put_if_absent("e", "w", 900).await.unwrap(), None);
    }

    #[tokio::test]
    async fn counters_increment_atomically_expire_and_reset() {
        let clock = Arc::new(ManualClock::new(0));
        let store = Arc::new(MemoryStore::new(clock.clone()));
        let mut handles = Vec::new();
        for _ in 0..20 {
            let s = store.clone();
            handles.push(tokio::spawn(async move { s.incr("f", 1_000).await.unwrap() }));
        }
        let mut seen = Vec::new();
        for h in handles {
            seen.push(h.await.unwrap());
        }
        seen.sort();
        assert_eq!(seen, (1..=20).collect::<Vec<u64>>(), "every increment is counted once");
        assert_eq!(store.counter("f").await.unwrap(), 20);
        clock.advance_ms(1_000);
        assert_eq!(store.counter("f").await.unwrap(), 0, "expired");
        assert_eq!(store.incr("f", 2_000).await.unwrap(), 1, "an expired counter restarts");
        store.reset_counter("f").await.unwrap();
        assert_eq!(store.counter("f").await.unwrap(), 0);
    }
}
