//! The `Store` contract, run unchanged against the memory store and against the Redis store (a
//! private `redis-server` on an ephemeral loopback port): insert/get/CAS, replay guards,
//! single-use values under concurrency, counters, TTL expiry.

mod support;

use mcgate::clock::{SharedClock, SystemClock};
use mcgate::config::model::StoreConfig;
use mcgate::flow::{Transaction, TxState};
use mcgate::store::redis::RedisStore;
use mcgate::store::{CasResult, LogPage, MemoryStore, Store, StoreError};
use std::sync::Arc;
use std::time::Duration;
use support::redis::TestRedis;

const RACERS: usize = 32;

fn clock() -> SharedClock {
    Arc::new(SystemClock)
}

fn now() -> u64 {
    clock().now_ms()
}

fn tx(id: &str) -> Transaction {
    Transaction { id: id.into(), client_id: "rp".into(), operator: "movistar".into(), ..Default::default() }
}

fn unique(tag: &str) -> String {
    format!("{tag}-{}", mcgate::clock::random_token(8))
}

async fn contract(store: Arc<dyn Store>) {
    let far = now() + 60_000;

    // insert, duplicate insert, get
    let id = unique("tx");
    let v = store.insert(tx(&id), far).await.unwrap();
    assert_eq!(v, 1);
    assert!(matches!(store.insert(tx(&id), far).await, Err(StoreError::AlreadyExists)));
    let got = store.get(&id).await.unwrap().expect("inserted transaction");
    assert_eq!((got.version, got.value.clone()), (1, tx(&id)));
    assert!(store.get(&unique("missing")).await.unwrap().is_none());

    // CAS applied, then a stale version conflicts and reports the current value
    let mut approved = got.value.clone();
    approved.state = TxState::Approved;
    assert_eq!(store.compare_and_set(1, approved.clone(), far).await.unwrap(), CasResult::Applied { version: 2 });
    match store.compare_and_set(1, got.value.clone(), far).await.unwrap() {
        CasResult::Conflict { current: Some(cur) } => {
            assert_eq!((cur.version, cur.value.state), (2, TxState::Approved))
        }
        other => panic!("stale CAS must conflict with the current value, got {other:?}"),
    }
    let missing = tx(&unique("gone"));
    assert_eq!(store.compare_and_set(1, missing, far).await.unwrap(), CasResult::Conflict { current: None });

    // N concurrent CAS on one version: exactly one wins
    let race = unique("race");
    let v = store.insert(tx(&race), far).await.unwrap();
    let mut handles = Vec::new();
    for i in 0..RACERS {
        let s = store.clone();
        let race = race.clone();
        handles.push(tokio::spawn(async move {
            let mut t = tx(&race);
            t.state = if i % 2 == 0 { TxState::Approved } else { TxState::Denied };
            matches!(s.compare_and_set(v, t, far).await.unwrap(), CasResult::Applied { .. })
        }));
    }
    let mut wins = 0;
    for h in handles {
        wins += h.await.unwrap() as usize;
    }
    assert_eq!(wins, 1, "exactly one of {RACERS} racing CAS wins");
    assert_eq!(store.get(&race).await.unwrap().unwrap().version, 2);

    // remember_once
    let jti = unique("jti");
    assert!(store.remember_once(&jti, far).await.unwrap());
    assert!(!store.remember_once(&jti, far).await.unwrap());

    // put_if_absent, get_value, take
    let k = unique("val");
    assert_eq!(store.put_if_absent(&k, "one", far).await.unwrap(), None);
    assert_eq!(store.put_if_absent(&k, "two", far).await.unwrap().as_deref(), Some("one"));
    assert_eq!(store.get_value(&k).await.unwrap().as_deref(), Some("one"));
    assert_eq!(store.take(&k).await.unwrap().as_deref(), Some("one"));
    assert_eq!(store.take(&k).await.unwrap(), None);
    assert_eq!(store.get_value(&k).await.unwrap(), None);

    // take: one winner among N concurrent takers
    let code = unique("code");
    store.put_if_absent(&code, "secret", far).await.unwrap();
    let mut handles = Vec::new();
    for _ in 0..RACERS {
        let s = store.clone();
        let code = code.clone();
        handles.push(tokio::spawn(async move { s.take(&code).await.unwrap().is_some() }));
    }
    let mut takers = 0;
    for h in handles {
        takers += h.await.unwrap() as usize;
    }
    assert_eq!(takers, 1, "a single-use value goes to exactly one of {RACERS} takers");

    // counters: concurrent increments all counted, apart from values, reset
    let c = unique("ctr");
    let mut handles = Vec::new();
    for _ in 0..RACERS {
        let s = store.clone();
        let c = c.clone();
        handles.push(tokio::spawn(async move { s.incr(&c, far).await.unwrap() }));
    }
    let mut seen = Vec::new();
    for h in handles {
        seen.push(h.await.unwrap());
    }
    seen.sort();
    assert_eq!(seen, (1..=RACERS as u64).collect::<Vec<_>>(), "every increment counted once");
    assert_eq!(store.counter(&c).await.unwrap(), RACERS as u64);
    assert_eq!(store.get_value(&c).await.unwrap(), None, "counters live apart from values");
    store.reset_counter(&c).await.unwrap();
    assert_eq!(store.counter(&c).await.unwrap(), 0);
    assert_eq!(store.counter(&unique("never")).await.unwrap(), 0);

    // insert and count together: each its own result; an id already there still counts
    let (counted_tx, usage) = (unique("counted"), unique("usage"));
    let (inserted, n) = store.insert_counted(tx(&counted_tx), far, &usage, far).await;
    assert_eq!((inserted.unwrap(), n.unwrap()), (1, 1));
    let (again, n) = store.insert_counted(tx(&counted_tx), far, &usage, far).await;
    assert!(matches!(again, Err(StoreError::AlreadyExists)), "duplicate id: {again:?}");
    assert_eq!(n.unwrap(), 2, "the count does not depend on the insert");
    assert_eq!(store.get(&counted_tx).await.unwrap().expect("stored").value, tx(&counted_tx));
    assert_eq!(store.counter(&usage).await.unwrap(), 2);

    // TTL expiry of every kind of entry
    let short = now() + 300;
    let (tid, once, val, ctr) = (unique("ttl-tx"), unique("ttl-once"), unique("ttl-val"), unique("ttl-ctr"));
    store.insert(tx(&tid), short).await.unwrap();
    assert!(store.remember_once(&once, short).await.unwrap());
    store.put_if_absent(&val, "v", short).await.unwrap();
    store.incr(&ctr, short).await.unwrap();
    store.incr(&ctr, short).await.unwrap();
    assert_eq!(store.counter(&ctr).await.unwrap(), 2);
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(store.get(&tid).await.unwrap().is_none(), "expired transaction is gone");
    assert!(store.remember_once(&once, now() + 60_000).await.unwrap(), "expired guard can be recorded again");
    assert_eq!(store.get_value(&val).await.unwrap(), None);
    assert_eq!(store.take(&val).await.unwrap(), None);
    assert_eq!(store.put_if_absent(&val, "w", now() + 60_000).await.unwrap(), None);
    assert_eq!(store.counter(&ctr).await.unwrap(), 0, "expired counter reads 0");
    assert_eq!(store.incr(&ctr, now() + 60_000).await.unwrap(), 1, "expired counter restarts");
    // an expired transaction's id can be inserted again
    assert_eq!(store.insert(tx(&tid), far).await.unwrap(), 1);

    // The shared log: appended entries read back in order, from a cursor, in pages.
    let log = unique("log");
    let empty = store.log_read(&log, None, 10).await.unwrap();
    assert_eq!(empty, LogPage { entries: vec![], cursor: None }, "an empty log");
    for e in ["one", "two two", "three"] {
        store.log_append(&log, e, 60_000).await.unwrap();
    }
    let first = store.log_read(&log, None, 2).await.unwrap();
    assert_eq!(first.entries, ["one", "two two"]);
    let rest = store.log_read(&log, first.cursor.as_deref(), 10).await.unwrap();
    assert_eq!(rest.entries, ["three"]);
    let none = store.log_read(&log, rest.cursor.as_deref(), 10).await.unwrap();
    assert_eq!((none.entries.len(), &none.cursor), (0, &rest.cursor), "nothing new: the cursor stays");
    store.log_append(&log, "four", 60_000).await.unwrap();
    assert_eq!(store.log_read(&log, none.cursor.as_deref(), 10).await.unwrap().entries, ["four"]);
    assert!(store.log_read(&unique("other-log"), None, 10).await.unwrap().entries.is_empty(), "logs are apart");

    store.ping().await.expect("store answers");
}

#[tokio::test]
async fn memory_store_meets_the_contract() {
    contract(Arc::new(MemoryStore::new(clock()))).await;
}

fn redis_config(url: String) -> StoreConfig {
    StoreConfig { kind: "redis".into(), url: Some(url), ..StoreConfig::default() }
}

async fn ready(store: &dyn Store) {
    for _ in 0..100 {
        if store.ping().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("redis store never became healthy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_meets_the_contract() {
    let redis = TestRedis::start();
    let store = Arc::new(RedisStore::new(&redis_config(redis.url()), clock(), None).unwrap());
    ready(store.as_ref()).await;
    contract(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_keys_carry_the_prefix_a_hash_tag_and_a_ttl() {
    let redis = TestRedis::start();
    let store = RedisStore::new(&redis_config(redis.url()), clock(), None).unwrap();
    store.insert(tx("abc"), now() + 30_000).await.unwrap();
    store.remember_once("jti:x", now() + 30_000).await.unwrap();
    assert_eq!(store.put_if_absent("idem", "v", now() + 20_000).await.unwrap(), None);
    assert_eq!(store.incr("n", now() + 10_000).await.unwrap(), 1);
    let (inserted, n) = store.insert_counted(tx("def"), now() + 30_000, "m", now() + 10_000).await;
    assert_eq!((inserted.unwrap(), n.unwrap()), (1, 1));
    let keys = redis.command(&["KEYS", "*"]);
    for key in ["mcgate:txv:{abc}", "mcgate:once:{jti:x}", "mcgate:val:{idem}", "mcgate:ctr:{n}", "mcgate:txv:{def}"] {
        assert!(keys.contains(key), "{key} in {keys}");
    }
    for (key, max) in [
        ("mcgate:txv:{abc}", 30_000),
        ("mcgate:val:{idem}", 20_000),
        ("mcgate:ctr:{n}", 10_000),
        ("mcgate:txv:{def}", 30_000),
        ("mcgate:ctr:{m}", 10_000),
    ] {
        assert!((1..=max).contains(&pttl(&redis, key)), "{key}: TTL follows its deadline");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_log_is_a_stream_and_a_reader_behind_a_flushed_one_starts_over() {
    let redis = TestRedis::start();
    let store = RedisStore::new(&redis_config(redis.url()), clock(), None).unwrap();
    store.log_append("pushcap", "1 a", 60_000).await.unwrap();
    assert_eq!(redis.command(&["TYPE", "mcgate:log:{pushcap}"]).trim(), "+stream");
    let page = store.log_read("pushcap", None, 10).await.unwrap();
    assert_eq!(page.entries, ["1 a"]);
    // Far ahead of the stream (as after a flush, or a Redis restarted on a slower clock).
    let ahead = format!("{}-0", now() + 3_600_000);
    // A later millisecond: the new stream's first id is then past the old cursor.
    tokio::time::sleep(Duration::from_millis(5)).await;
    redis.command(&["DEL", "mcgate:log:{pushcap}"]);
    store.log_append("pushcap", "2 b", 60_000).await.unwrap();
    let behind = store.log_read("pushcap", Some(&ahead), 10).await.unwrap();
    assert_eq!(behind, LogPage { entries: vec![], cursor: None }, "start over");
    assert_eq!(store.log_read("pushcap", None, 10).await.unwrap().entries, ["2 b"]);
    let end = store.log_read("pushcap", page.cursor.as_deref(), 10).await.unwrap();
    assert_eq!(end.entries, ["2 b"], "a cursor behind the stream's end reads on");
}

/// The key's time to live, ms (negative: none or no key).
fn pttl(redis: &TestRedis, key: &str) -> i64 {
    redis.command(&["PTTL", key]).trim().trim_start_matches(':').parse().unwrap()
}

/// The value of a RESP bulk-string reply (`$<len>\r\n<value>\r\n`).
fn bulk(reply: &str) -> String {
    let (_, rest) = reply.split_once("\r\n").expect("a bulk string");
    rest.trim_end_matches("\r\n").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_transaction_record_is_version_deadline_json_in_one_string() {
    let redis = TestRedis::start();
    let store = RedisStore::new(&redis_config(redis.url()), clock(), None).unwrap();
    let far = now() + 60_000;
    let key = "mcgate:txv:{rec}";
    store.insert(tx("rec"), far).await.unwrap();
    let record = bulk(&redis.command(&["GET", key]));
    let mut parts = record.splitn(3, ':');
    assert_eq!((parts.next(), parts.next()), (Some("1"), Some(far.to_string().as_str())));
    assert_eq!(serde_json::from_str::<Transaction>(parts.next().unwrap()).unwrap(), tx("rec"));

    // Same retention deadline: the record is replaced, the TTL is the insert's.
    redis.command(&["PEXPIRE", key, "40000"]);
    let mut approved = tx("rec");
    approved.state = TxState::Approved;
    assert_eq!(store.compare_and_set(1, approved.clone(), far).await.unwrap(), CasResult::Applied { version: 2 });
    assert!(bulk(&redis.command(&["GET", key])).starts_with(&format!("2:{far}:{{")));
    assert!((30_000..=40_000).contains(&pttl(&redis, key)), "TTL kept when the deadline did not move");
    // A new retention deadline renews the TTL from it.
    let soon = now() + 5_000;
    assert_eq!(store.compare_and_set(2, approved.clone(), soon).await.unwrap(), CasResult::Applied { version: 3 });
    assert!((1..=5_000).contains(&pttl(&redis, key)), "TTL follows the new deadline");
    let read = store.get("rec").await.unwrap().unwrap();
    assert_eq!((read.version, read.value), (3, approved.clone()));

    // A version whose digits start another's ("1" and "12") is still a conflict, with the
    // current value; the current record and its TTL stay as they were.
    let twelve = format!("12:{far}:{}", serde_json::to_string(&approved).unwrap());
    assert_eq!(redis.command(&["SET", key, &twelve, "PX", "50000"]), "+OK\r\n");
    match store.compare_and_set(1, tx("rec"), now() + 9_000).await.unwrap() {
        CasResult::Conflict { current: Some(cur) } => assert_eq!((cur.version, cur.value), (12, approved)),
        other => panic!("expected a conflict at version 12, got {other:?}"),
    }
    assert_eq!(bulk(&redis.command(&["GET", key])), twelve, "the loser's write is undone");
    assert!((40_000..=50_000).contains(&pttl(&redis, key)), "and the winner's TTL kept");
    // Gone: nothing is written (no record comes back to life).
    redis.command(&["DEL", key]);
    assert_eq!(store.compare_and_set(12, tx("rec"), far).await.unwrap(), CasResult::Conflict { current: None });
    assert_eq!(redis.command(&["EXISTS", key]), ":0\r\n");

    // A record of the old layout (a hash under tx:{id}) is another key space: never read.
    redis.command(&["HSET", "mcgate:tx:{old}", "v", "1", "d", &serde_json::to_string(&tx("old")).unwrap()]);
    assert!(store.get("old").await.unwrap().is_none());
    // A record that is not "<version>:<deadline>:<JSON>" fails closed, not as a missing transaction.
    for bad in ["garbage", "1:{}", "x:1:{}"] {
        redis.command(&["SET", "mcgate:txv:{bad}", bad]);
        assert!(matches!(store.get("bad").await, Err(StoreError::Unavailable(_))), "{bad}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fails_closed_and_recovers() {
    let mut redis = TestRedis::start();
    let cfg = StoreConfig { health_interval_ms: 200, ..redis_config(redis.url()) };
    let store = RedisStore::new(&cfg, clock(), None).unwrap();
    ready(&store).await;
    redis.stop();
    let started = std::time::Instant::now();
    assert!(matches!(store.get("x").await, Err(StoreError::Unavailable(_))), "no local fallback");
    assert!(matches!(store.remember_once("j", now() + 1_000).await, Err(StoreError::Unavailable(_))));
    assert!(started.elapsed() < Duration::from_secs(2), "fails within the operation timeout");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(store.ping().await.is_err(), "health probe reports the outage");
    redis.restart();
    let mut ok = false;
    for _ in 0..50 {
        if store.ping().await.is_ok() && store.get("x").await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "store back by itself within 5 s");
}
