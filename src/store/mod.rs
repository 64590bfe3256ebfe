//! The `Store`: where transactions, replay guards and shared counters live. Every state change is
//! a compare-and-set on a version number, so duplicate callbacks, concurrent polls or several
//! gateway instances can never approve or consume a transaction twice. `memory` is the embedded
//! default (one instance); `redis` has the same contract and is shared by several instances.
//! Knows no business rules.

pub mod instrumented;
pub mod memory;
pub mod redis;
pub mod select;

use crate::flow::Transaction;
use async_trait::async_trait;

pub use memory::MemoryStore;

/// A value with the version the store holds it at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T> {
    /// The value.
    pub value: T,
    /// Version; bumped by every successful write.
    pub version: u64,
}

/// Result of a compare-and-set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CasResult {
    /// Written; the new version.
    Applied {
        /// New version.
        version: u64,
    },
    /// Someone else wrote first (or the entry is gone): the current value, if any.
    Conflict {
        /// What the store holds now.
        current: Option<Box<Versioned<Transaction>>>,
    },
}

/// The store failed (not "not found": that is `Ok(None)`).
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// Insert of an id that already exists.
    #[error("an entry with this id already exists")]
    AlreadyExists,
    /// The backend is unreachable or failed.
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

/// A page of a shared log ([`Store::log_read`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogPage {
    /// The entries, oldest first.
    pub entries: Vec<String>,
    /// Where the next read goes on from (the last entry's position, or the one given when the
    /// page is empty; `None` only for an empty log read from its start).
    pub cursor: Option<String>,
}

/// Transactions and replay guards, shared by every instance of the gateway.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Inserts a new transaction kept until `retain_until_ms`; fails if the id exists.
    async fn insert(&self, tx: Transaction, retain_until_ms: u64) -> Result<u64, StoreError>;
    /// Reads a transaction.
    async fn get(&self, id: &str) -> Result<Option<Versioned<Transaction>>, StoreError>;
    /// Replaces the transaction if it is still at `expected_version`.
    async fn compare_and_set(
        &self,
        expected_version: u64,
        tx: Transaction,
        retain_until_ms: u64,
    ) -> Result<CasResult, StoreError>;
    /// Records `key` until `until_ms`; `true` the first time, `false` if already recorded
    /// (replay guards: `jti`s, codes).
    async fn remember_once(&self, key: &str, until_ms: u64) -> Result<bool, StoreError>;
    /// Stores `value` under `key` until `until_ms` unless a live value is there already; returns
    /// `None` when stored, `Some(existing)` otherwise (idempotency keys, aliases).
    async fn put_if_absent(&self, key: &str, value: &str, until_ms: u64) -> Result<Option<String>, StoreError>;
    /// Removes and returns the live value under `key`: at most one caller ever gets it
    /// (single-use codes).
    async fn take(&self, key: &str) -> Result<Option<String>, StoreError>;
    /// Reads the live value under `key` without changing it (revocation records).
    async fn get_value(&self, key: &str) -> Result<Option<String>, StoreError>;
    /// Atomically adds 1 to the counter under `key` (a missing or expired counter counts from
    /// 0), keeps it until `until_ms`, and returns the new value: shared counters such as the
    /// SMS failures per MSISDN (S-06). Redis: `INCR` + `PEXPIRE` in one pipelined write.
    /// Counters live apart from [`Store::put_if_absent`] values; [`Store::reset_counter`] clears one.
    async fn incr(&self, key: &str, until_ms: u64) -> Result<u64, StoreError>;
    /// [`Store::insert`] and [`Store::incr`] of `counter` together, each with its own result:
    /// for a caller that must count what it stores (an accepted push is billed whether or not
    /// its transaction could be kept). Redis sends both in one pipelined write and reads one
    /// reply batch; the default runs the two calls concurrently.
    async fn insert_counted(
        &self,
        tx: Transaction,
        retain_until_ms: u64,
        counter: &str,
        counter_until_ms: u64,
    ) -> (Result<u64, StoreError>, Result<u64, StoreError>) {
        tokio::join!(self.insert(tx, retain_until_ms), self.incr(counter, counter_until_ms))
    }
    /// Deletes the counter under `key` (Redis: `DEL`).
    async fn reset_counter(&self, key: &str) -> Result<(), StoreError>;
    /// Reads the counter under `key` (0 if missing or expired).
    async fn counter(&self, key: &str) -> Result<u64, StoreError>;
    /// Appends `entry` to the time-ordered log `log`, which every instance sharing the store
    /// reads with [`Store::log_read`] (announcements such as "this number is not enrolled").
    /// Entries older than `keep_ms` may be dropped by this or a later append (Redis: a stream,
    /// `XADD … MINID ~`).
    async fn log_append(&self, log: &str, entry: &str, keep_ms: u64) -> Result<(), StoreError>;
    /// Up to `max` entries of `log` appended after `cursor` (`None`: from the oldest kept), in
    /// the order they were appended, and the cursor to go on from. Entries dropped for age are
    /// skipped without notice.
    async fn log_read(&self, log: &str, cursor: Option<&str>, max: usize) -> Result<LogPage, StoreError>;
    /// Whether the store answers (readiness).
    async fn ping(&self) -> Result<(), StoreError>;
    /// Drops entries past their retention; returns the state labels of dropped transactions.
    async fn purge_expired(&self) -> Result<Vec<&'static str>, StoreError>;
}
