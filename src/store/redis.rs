//! Redis [`Store`]: the state every gateway instance shares (transactions, replay guards,
//! single-use values, counters). Each operation touches exactly one key, and every key carries a
//! `{hash tag}` (the transaction id or the guard key), so the layout works on a standalone
//! server and on Redis Cluster alike. Every key gets a time-to-live from its deadline, so Redis
//! expires entries itself (`purge_expired` is a no-op).
//!
//! A transaction is one string, `"<version>:<retain until, ms>:<JSON>"`, under
//! `<prefix>txv:{<id>}`: an insert is one native `SET … NX PX` and a read one `GET`; only the
//! compare-and-set is a Lua script (`src/store/redis/cas.lua`), atomic in Redis: it swaps the
//! record in with `SET … XX KEEPTTL GET`, keeps it if the replaced version was the expected one
//! (renewing the TTL only when the retention deadline changed) and puts the old record back
//! otherwise: one write on the usual path.
//! Counters are `INCR` + `PEXPIRE` pipelined in one write; put-if-absent is `SET … NX PX … GET`, so the
//! store needs Redis 7.0 or later. (Native commands cost Redis a fraction of a script call.)
//! Earlier versions kept a transaction as a hash under `<prefix>tx:{<id>}`; the new key space
//! means an older instance never misreads a record, but instances of the two versions do not
//! share in-flight transactions (upgrade all instances together; pending ones then end as
//! unknown: `invalid_grant`).
//!
//! Fails closed: a Redis error or an operation past `timeout_ms` is
//! [`StoreError::Unavailable`], never a local fallback. `ping` answers from a background probe
//! (every `health_interval_ms`, on a connection of its own), so `/ready` never waits on Redis.
//!
//! Connections are per worker thread: a multiplexed connection is driven by a task on the
//! runtime that opened it, and with one runtime per core (`server.runtime = "per_core"`) a shared
//! connection would make every operation from another thread a cross-thread wake-up (both ways).
//! Each thread lazily opens `connections` of its own and uses them round robin.

use super::{CasResult, LogPage, Store, StoreError, Versioned};
use crate::clock::{OffsetClock, SharedClock};
use crate::config::model::StoreConfig;
use crate::flow::Transaction;
use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Script, ToRedisArgs};
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

const CAS_LUA: &str = include_str!("redis/cas.lua");

/// Why a Redis store cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum RedisBuildError {
    /// Neither `url` nor a set `url_env`.
    #[error("store.url_env: environment variable {0} is not set")]
    MissingUrl(String),
    /// `store.url` unusable (the URL itself is not repeated: it may hold a password).
    #[error("store.url: not a usable Redis URL ({0})")]
    BadUrl(String),
}

/// The problems of the Redis part of `[store]`, by key path (for `config::validate`). Empty for
/// a memory store.
pub fn config_problems(cfg: &StoreConfig) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if cfg.kind != "redis" {
        return out;
    }
    match (&cfg.url, &cfg.url_env) {
        (Some(_), Some(_)) => out.push(("store.url", "set either url or url_env, not both".to_string())),
        (None, None) => out.push(("store.url", "a redis store needs url or url_env".to_string())),
        (Some(u), None) if !(u.starts_with("redis://") || u.starts_with("unix://")) => {
            out.push(("store.url", "must start with redis:// (or unix://)".to_string()))
        }
        (None, Some(v)) if v.is_empty() => out.push(("store.url_env", "must not be empty".to_string())),
        _ => {}
    }
    if cfg.key_prefix.is_empty() || cfg.key_prefix.len() > 64 {
        out.push(("store.key_prefix", "must be 1 to 64 characters".to_string()));
    }
    if cfg.key_prefix.chars().any(|c| c.is_whitespace() || c == '{' || c == '}') {
        out.push(("store.key_prefix", "must not contain whitespace or braces (hash tags)".to_string()));
    }
    if !(1..=10_000).contains(&cfg.timeout_ms) {
        out.push(("store.timeout_ms", "must be between 1 and 10000".to_string()));
    }
    if !(1..=10_000).contains(&cfg.connect_timeout_ms) {
        out.push(("store.connect_timeout_ms", "must be between 1 and 10000".to_string()));
    }
    if !(1..=64).contains(&cfg.connections) {
        out.push(("store.connections", "must be between 1 and 64".to_string()));
    }
    if !(50..=4_000).contains(&cfg.health_interval_ms) {
        out.push(("store.health_interval_ms", "must be between 50 and 4000 (/ready turns within 5 s)".to_string()));
    }
    if cfg.poll_cache_slots > 1 << 20 {
        out.push(("store.poll_cache_slots", "must be at most 1048576".to_string()));
    }
    if !(100..=3_600_000).contains(&cfg.clock_offset_warn_ms) {
        out.push(("store.clock_offset_warn_ms", "must be between 100 and 3600000".to_string()));
    }
    if cfg.not_enrolled_index_max > 10_000_000 {
        out.push(("store.not_enrolled_index_max", "must be at most 10000000".to_string()));
    }
    if !(50..=60_000).contains(&cfg.not_enrolled_sync_ms) {
        out.push(("store.not_enrolled_sync_ms", "must be between 50 and 60000".to_string()));
    }
    if !(10..=60_000).contains(&cfg.reconnect_max_delay_ms) {
        out.push(("store.reconnect_max_delay_ms", "must be between 10 and 60000".to_string()));
    }
    out
}

struct Inner {
    /// Tells this store's per-thread connections apart from another store's.
    id: u64,
    client: redis::Client,
    manager_cfg: ConnectionManagerConfig,
    /// Connections per worker thread.
    per_thread: usize,
    /// The health probe's own connection.
    probe: ConnectionManager,
    prefix: String,
    timeout: Duration,
    clock: SharedClock,
    healthy: AtomicBool,
    cas: Script,
    /// Set when the gateway reads "now" off Redis's clock (`store.shared_clock`).
    follow: Option<ClockFollow>,
}

/// The gateway clock that follows Redis's (`TIME`, sampled by the health probe), with what the
/// NOC sees of it.
pub struct ClockFollow {
    /// The gateway's clock.
    pub clock: Arc<OffsetClock<SharedClock>>,
    /// `mcgate_store_clock_offset_seconds`: Redis's clock minus this host's.
    pub offset_gauge: prometheus::Gauge,
    /// Above this offset (absolute, ms) a warning is logged.
    pub warn_ms: u64,
    /// Whether the last sample was above `warn_ms` (a warning per crossing, not per probe).
    warned: AtomicBool,
}

impl ClockFollow {
    /// Follows Redis's clock with `clock`, reporting on `offset_gauge`.
    pub fn new(clock: Arc<OffsetClock<SharedClock>>, offset_gauge: prometheus::Gauge, warn_ms: u64) -> Self {
        Self { clock, offset_gauge, warn_ms, warned: AtomicBool::new(false) }
    }

    /// One `TIME` answer (`seconds`, `micros`), asked at `sent_ms` and answered at `received_ms`
    /// on this host's clock. A sample whose round trip, read on this host's clock, exceeds
    /// `max_rtt_ms` (the probe's own deadline) is ignored: the host's clock stepped while it was
    /// taken, so the midpoint means nothing.
    fn observe(&self, (seconds, micros): (u64, u64), sent_ms: u64, received_ms: u64, max_rtt_ms: u64) {
        if received_ms.saturating_sub(sent_ms) > max_rtt_ms {
            return;
        }
        let offset = self.clock.observe(seconds * 1000 + micros / 1000, sent_ms, received_ms);
        self.offset_gauge.set(offset as f64 / 1000.0);
        let off = offset.unsigned_abs() > self.warn_ms;
        if self.warned.swap(off, Ordering::Relaxed) != off {
            if off {
                tracing::warn!(
                    offset_ms = offset,
                    "this host's clock is off the store's (Redis TIME): following the store's clock; fix the host's time sync"
                );
            } else {
                tracing::info!(
                    offset_ms = offset,
                    "this host's clock is back within store.clock_offset_warn_ms of the store's"
                );
            }
        }
    }
}

/// The shared store.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

fn unavailable(e: redis::RedisError) -> StoreError {
    // Kind and message only: never the URL (it may carry a password).
    StoreError::Unavailable(format!("redis: {:?}: {}", e.kind(), e.detail().unwrap_or("request failed")))
}

impl RedisStore {
    /// Connects lazily (the gateway starts, and stays not ready, while Redis is down) and starts
    /// the health probe. Must run inside a Tokio runtime.
    /// With `follow`, the health probe reads Redis's `TIME` and keeps that clock on it.
    pub fn new(cfg: &StoreConfig, clock: SharedClock, follow: Option<ClockFollow>) -> Result<Self, RedisBuildError> {
        let url = match (&cfg.url, &cfg.url_env) {
            (Some(u), _) => u.clone(),
            (None, Some(var)) => std::env::var(var).map_err(|_| RedisBuildError::MissingUrl(var.clone()))?,
            (None, None) => return Err(RedisBuildError::MissingUrl("(none)".into())),
        };
        let bad_url = |e: redis::RedisError| RedisBuildError::BadUrl(format!("{:?}", e.kind()));
        // TCP_NODELAY (redis-rs leaves Nagle on): commands of many requests share a multiplexed
        // connection, and Nagle would hold each small write until the previous one is ACKed —
        // up to a delayed-ACK timeout when Redis is slow to answer.
        let info = redis::IntoConnectionInfo::into_connection_info(url.as_str())
            .map_err(bad_url)?
            .set_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true));
        let client = redis::Client::open(info).map_err(bad_url)?;
        let manager_cfg = ConnectionManagerConfig::new()
            .set_response_timeout(Some(Duration::from_millis(cfg.timeout_ms)))
            .set_connection_timeout(Some(Duration::from_millis(cfg.connect_timeout_ms)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(cfg.reconnect_max_delay_ms));
        let probe = ConnectionManager::new_lazy_with_config(client.clone(), manager_cfg.clone())
            .map_err(|e| RedisBuildError::BadUrl(format!("{:?}", e.kind())))?;
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        let inner = Arc::new(Inner {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            client,
            manager_cfg,
            per_thread: cfg.connections.max(1),
            probe,
            prefix: cfg.key_prefix.clone(),
            timeout: Duration::from_millis(cfg.timeout_ms),
            clock,
            healthy: AtomicBool::new(false),
            cas: Script::new(CAS_LUA),
            follow,
        });
        tokio::spawn(health_loop(Arc::downgrade(&inner), Duration::from_millis(cfg.health_interval_ms)));
        Ok(Self { inner })
    }

    /// The next of this thread's connections (opened lazily, on this thread's runtime).
    fn conn(&self) -> Result<ConnectionManager, StoreError> {
        thread_local! {
            static CONNS: RefCell<Vec<ThreadConns>> = const { RefCell::new(Vec::new()) };
        }
        CONNS.with(|all| {
            let mut all = all.borrow_mut();
            if let Some(t) = all.iter_mut().find(|t| t.store == self.inner.id) {
                t.next = (t.next + 1) % t.conns.len();
                return Ok(t.conns[t.next].clone());
            }
            // Connections of dropped stores (tests build many) go with the next new one.
            all.retain(|t| t.owner.strong_count() > 0);
            let conns = (0..self.inner.per_thread)
                .map(|_| {
                    ConnectionManager::new_lazy_with_config(self.inner.client.clone(), self.inner.manager_cfg.clone())
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(unavailable)?;
            let first = conns[0].clone();
            all.push(ThreadConns { store: self.inner.id, owner: Arc::downgrade(&self.inner), conns, next: 0 });
            Ok(first)
        })
    }

    fn tx_key(&self, id: &str) -> String {
        format!("{}txv:{{{id}}}", self.inner.prefix)
    }

    fn key(&self, space: &str, key: &str) -> String {
        format!("{}{space}:{{{key}}}", self.inner.prefix)
    }

    /// Milliseconds from now to `until_ms` on the gateway's clock (at least 1: Redis rejects 0).
    fn ttl_ms(&self, until_ms: u64) -> u64 {
        until_ms.saturating_sub(self.inner.clock.now_ms()).max(1)
    }

    /// Adds to `pipe` the increment of counter `key`, kept until `until_ms`: its new value is
    /// the pipeline's next reply. One write, two commands, no MULTI: INCR is atomic by itself
    /// and the deadline follows in the same round trip (an increment interleaved from elsewhere
    /// can only swap two deadlines milliseconds apart). MULTI/EXEC doubled the commands Redis
    /// ran per count.
    fn add_incr(&self, pipe: &mut redis::Pipeline, key: &str, until_ms: u64) {
        let key = self.key("ctr", key);
        pipe.cmd("INCR").arg(&key).cmd("PEXPIRE").arg(&key).arg(self.ttl_ms(until_ms)).ignore();
    }

    fn live(&self, until_ms: u64) -> bool {
        until_ms > self.inner.clock.now_ms()
    }

    async fn run<T>(&self, fut: impl std::future::Future<Output = redis::RedisResult<T>>) -> Result<T, StoreError> {
        match tokio::time::timeout(self.inner.timeout, fut).await {
            Ok(r) => r.map_err(unavailable),
            Err(_) => Err(StoreError::Unavailable("redis: operation timed out".into())),
        }
    }

    async fn cmd<T: redis::FromRedisValue>(&self, name: &str, args: &[&dyn ToRedisArgsDyn]) -> Result<T, StoreError> {
        let mut c = redis::cmd(name);
        for a in args {
            a.push_arg(&mut c);
        }
        let mut conn = self.conn()?;
        self.run(async move { c.query_async::<T>(&mut conn).await }).await
    }
}

/// One thread's connections to one store.
struct ThreadConns {
    store: u64,
    owner: Weak<Inner>,
    conns: Vec<ConnectionManager>,
    next: usize,
}

/// Object-safe helper to pass mixed argument types to [`RedisStore::cmd`].
trait ToRedisArgsDyn: Sync {
    fn push_arg(&self, c: &mut redis::Cmd);
}

impl<T: ToRedisArgs + Sync> ToRedisArgsDyn for T {
    fn push_arg(&self, c: &mut redis::Cmd) {
        c.arg(self);
    }
}

async fn health_loop(inner: Weak<Inner>, every: Duration) {
    loop {
        let Some(strong) = inner.upgrade() else { return };
        let mut conn = strong.probe.clone();
        let ok = match &strong.follow {
            // `TIME` proves liveness as PING does, and samples Redis's clock.
            Some(follow) => {
                let sent = follow.clock.base_now_ms();
                let answer =
                    tokio::time::timeout(strong.timeout, redis::cmd("TIME").query_async::<(u64, u64)>(&mut conn)).await;
                match answer {
                    Ok(Ok(time)) => {
                        let max_rtt = strong.timeout.as_millis() as u64;
                        follow.observe(time, sent, follow.clock.base_now_ms(), max_rtt);
                        true
                    }
                    _ => false,
                }
            }
            None => matches!(
                tokio::time::timeout(strong.timeout, redis::cmd("PING").query_async::<String>(&mut conn)).await,
                Ok(Ok(_))
            ),
        };
        if strong.healthy.swap(ok, Ordering::SeqCst) != ok {
            if ok {
                tracing::info!("redis store answers again");
            } else {
                tracing::warn!("redis store not answering: failing closed");
            }
        }
        drop(strong);
        tokio::time::sleep(every).await;
    }
}

/// A stream id `<ms>-<seq>` as a comparable pair (unreadable: the smallest).
fn stream_id(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}

fn decode(json: &str) -> Result<Transaction, StoreError> {
    serde_json::from_str(json).map_err(|_| StoreError::Unavailable("redis: unreadable transaction record".into()))
}

/// The stored record of `tx` at `version`, kept until `retain_until_ms`:
/// `"<version>:<retain_until_ms>:<JSON>"`.
fn encode(version: u64, retain_until_ms: u64, tx: &Transaction) -> Result<String, StoreError> {
    use std::io::Write;
    let mut out = Vec::with_capacity(640);
    write!(out, "{version}:{retain_until_ms}:")
        .map_err(|e| StoreError::Unavailable(format!("encoding a transaction: {e}")))?;
    serde_json::to_writer(&mut out, tx).map_err(|e| StoreError::Unavailable(format!("encoding a transaction: {e}")))?;
    // serde_json writes UTF-8 only.
    String::from_utf8(out).map_err(|_| StoreError::Unavailable("encoding a transaction: not UTF-8".into()))
}

/// A stored record back: its version and transaction.
fn decode_record(record: &str) -> Result<Versioned<Transaction>, StoreError> {
    let unreadable = || StoreError::Unavailable("redis: unreadable transaction record".into());
    let (version, rest) = record.split_once(':').ok_or_else(unreadable)?;
    let (retain_until, json) = rest.split_once(':').ok_or_else(unreadable)?;
    let version = version.parse().map_err(|_| unreadable())?;
    retain_until.parse::<u64>().map_err(|_| unreadable())?;
    Ok(Versioned { value: decode(json)?, version })
}

#[async_trait]
impl Store for RedisStore {
    async fn insert(&self, tx: Transaction, retain_until_ms: u64) -> Result<u64, StoreError> {
        let key = self.tx_key(&tx.id);
        let record = encode(1, retain_until_ms, &tx)?;
        let ttl = self.ttl_ms(retain_until_ms);
        let set: Option<String> = self.cmd("SET", &[&key, &record, &"NX", &"PX", &ttl]).await?;
        match set {
            Some(_) => Ok(1),
            None => Err(StoreError::AlreadyExists),
        }
    }

    async fn get(&self, id: &str) -> Result<Option<Versioned<Transaction>>, StoreError> {
        let key = self.tx_key(id);
        let record: Option<String> = self.cmd("GET", &[&key]).await?;
        record.as_deref().map(decode_record).transpose()
    }

    async fn compare_and_set(
        &self,
        expected_version: u64,
        tx: Transaction,
        retain_until_ms: u64,
    ) -> Result<CasResult, StoreError> {
        let key = self.tx_key(&tx.id);
        let version = expected_version.saturating_add(1);
        let record = encode(version, retain_until_ms, &tx)?;
        let ttl = self.ttl_ms(retain_until_ms);
        let mut conn = self.conn()?;
        let script = &self.inner.cas;
        let reply: redis::Value = self
            .run(async move {
                script
                    .key(key)
                    .arg(format!("{expected_version}:{retain_until_ms}:"))
                    .arg(format!("{expected_version}:"))
                    .arg(record)
                    .arg(ttl)
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        match reply {
            redis::Value::Int(1) => Ok(CasResult::Applied { version }),
            redis::Value::Nil => Ok(CasResult::Conflict { current: None }),
            redis::Value::BulkString(current) => {
                let current = std::str::from_utf8(&current)
                    .map_err(|_| StoreError::Unavailable("redis: unreadable transaction record".into()))?;
                Ok(CasResult::Conflict { current: Some(Box::new(decode_record(current)?)) })
            }
            _ => Err(StoreError::Unavailable("redis: unexpected compare-and-set reply".into())),
        }
    }

    async fn remember_once(&self, key: &str, until_ms: u64) -> Result<bool, StoreError> {
        if !self.live(until_ms) {
            // Already past its deadline: nothing to guard (the memory store behaves the same).
            return Ok(true);
        }
        let key = self.key("once", key);
        let ttl = self.ttl_ms(until_ms);
        let set: Option<String> = self.cmd("SET", &[&key, &"1", &"NX", &"PX", &ttl]).await?;
        Ok(set.is_some())
    }

    async fn put_if_absent(&self, key: &str, value: &str, until_ms: u64) -> Result<Option<String>, StoreError> {
        let key = self.key("val", key);
        let ttl = self.ttl_ms(until_ms);
        // Redis >= 7.0: NX with GET stores only when absent and returns what was there.
        self.cmd("SET", &[&key, &value, &"NX", &"PX", &ttl, &"GET"]).await
    }

    async fn take(&self, key: &str) -> Result<Option<String>, StoreError> {
        let key = self.key("val", key);
        self.cmd("GETDEL", &[&key]).await
    }

    async fn get_value(&self, key: &str) -> Result<Option<String>, StoreError> {
        let key = self.key("val", key);
        self.cmd("GET", &[&key]).await
    }

    async fn incr(&self, key: &str, until_ms: u64) -> Result<u64, StoreError> {
        let mut pipe = redis::pipe();
        self.add_incr(&mut pipe, key, until_ms);
        let mut conn = self.conn()?;
        let (n,): (u64,) = self.run(async move { pipe.query_async(&mut conn).await }).await?;
        Ok(n)
    }

    async fn insert_counted(
        &self,
        tx: Transaction,
        retain_until_ms: u64,
        counter: &str,
        counter_until_ms: u64,
    ) -> (Result<u64, StoreError>, Result<u64, StoreError>) {
        let record = match encode(1, retain_until_ms, &tx) {
            Ok(r) => r,
            Err(e) => return (Err(e), self.incr(counter, counter_until_ms).await),
        };
        // The insert (as in `insert`) and the count (as in `incr`): one write, one reply batch.
        let mut pipe = redis::pipe();
        pipe.cmd("SET").arg(self.tx_key(&tx.id)).arg(record).arg("NX").arg("PX").arg(self.ttl_ms(retain_until_ms));
        self.add_incr(&mut pipe, counter, counter_until_ms);
        let mut conn = match self.conn() {
            Ok(c) => c,
            Err(e) => return (Err(e.clone()), Err(e)),
        };
        let reply = self.run(async move { pipe.query_async::<(Option<String>, u64)>(&mut conn).await }).await;
        match reply {
            Ok((set, n)) => (set.map(|_| 1).ok_or(StoreError::AlreadyExists), Ok(n)),
            Err(e) => (Err(e.clone()), Err(e)),
        }
    }

    async fn reset_counter(&self, key: &str) -> Result<(), StoreError> {
        let key = self.key("ctr", key);
        let _: i64 = self.cmd("DEL", &[&key]).await?;
        Ok(())
    }

    async fn counter(&self, key: &str) -> Result<u64, StoreError> {
        let key = self.key("ctr", key);
        let n: Option<u64> = self.cmd("GET", &[&key]).await?;
        Ok(n.unwrap_or(0))
    }

    async fn log_append(&self, log: &str, entry: &str, keep_ms: u64) -> Result<(), StoreError> {
        let key = self.key("log", log);
        // Stream ids are Redis's milliseconds: entries older than `keep_ms` go (in whole macro
        // nodes, `~`) as later ones arrive.
        let min_id = self.inner.clock.now_ms().saturating_sub(keep_ms);
        let _: String = self.cmd("XADD", &[&key, &"MINID", &"~", &min_id, &"*", &"e", &entry]).await?;
        Ok(())
    }

    async fn log_read(&self, log: &str, cursor: Option<&str>, max: usize) -> Result<LogPage, StoreError> {
        let key = self.key("log", log);
        // `(id` is exclusive (Redis >= 6.2).
        let start = cursor.map_or_else(|| "-".to_owned(), |c| format!("({c}"));
        let rows: Vec<(String, Vec<String>)> = self.cmd("XRANGE", &[&key, &start, &"+", &"COUNT", &max]).await?;
        if let (true, Some(c)) = (rows.is_empty(), cursor) {
            // Nothing new, or a stream that restarted behind the cursor (flushed, or a Redis
            // without persistence restarted on a slower clock): then read it from its start.
            let newest: Vec<(String, Vec<String>)> = self.cmd("XREVRANGE", &[&key, &"+", &"-", &"COUNT", &1]).await?;
            let behind = match newest.first() {
                None => true,
                Some((id, _)) => stream_id(id) < stream_id(c),
            };
            return Ok(LogPage { entries: Vec::new(), cursor: (!behind).then(|| c.to_owned()) });
        }
        let cursor = rows.last().map(|(id, _)| id.clone()).or_else(|| cursor.map(str::to_owned));
        // One entry per row (a row without our field reads as an empty entry), so a full page
        // always has `max` entries.
        let entries = rows
            .into_iter()
            .map(|(_, fields)| {
                fields.chunks(2).find(|f| f[0] == "e").and_then(|f| f.get(1).cloned()).unwrap_or_default()
            })
            .collect();
        Ok(LogPage { entries, cursor })
    }

    async fn ping(&self) -> Result<(), StoreError> {
        if self.inner.healthy.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(StoreError::Unavailable("redis: not answering the health probe".into()))
        }
    }

    async fn purge_expired(&self) -> Result<Vec<&'static str>, StoreError> {
        // Every key has a TTL: Redis expires entries itself.
        Ok(Vec::new())
    }
}
