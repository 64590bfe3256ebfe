//! shared/security.md F-10: Redis slow (50 ms per operation) and a failover mid-transaction.
//! A real `mcgate serve` process reaches its Redis through a relay that holds every command
//! 50 ms ([`support::slow_proxy`]). A replica follows the primary; halfway through a bounded load
//! of CIBA transactions (start, poll until approved, collect, collect again) the primary hands
//! over with Redis's coordinated `FAILOVER` and the relay moves to the new primary, cutting every
//! open connection, as a virtual IP moves. Counted and printed: transactions lost, collected
//! twice, requests answered 503 (retried by the RP, as `temporarily_unavailable` tells it to)
//! and any other failure; and the usage counter against the pushes the gateway counted.
//! Required: 0 lost, 0 double, 0 other failures; the Redis usage count plus the counts the
//! gateway reported as not stored equals its pushes, and Redis never holds more.

mod support;

use mcgate::sim::SimNotification;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::process::{OrangeSim, ServeProcess, RP_SECRET};
use support::redis::TestRedis;
use support::slow_proxy::SlowProxy;

const TRANSACTIONS: usize = 40;
const CONCURRENCY: usize = 8;
const FAILOVER_AFTER: usize = 16;
const REDIS_DELAY: Duration = Duration::from_millis(50);

#[derive(Default)]
struct Counts {
    started: AtomicUsize,
    collected: AtomicUsize,
    lost: AtomicUsize,
    double: AtomicUsize,
    unavailable: AtomicU64,
    other: AtomicU64,
}

/// One RP request; a 503 `temporarily_unavailable` is counted and retried after a short pause
/// (at most 50 times); any other answer is returned with its status.
async fn rp(http: &reqwest::Client, url: &str, form: &[(&str, &str)], counts: &Counts) -> (u16, serde_json::Value) {
    for _ in 0..50 {
        let sent = http.post(url).basic_auth("rp", Some(RP_SECRET)).form(form).send().await;
        let Ok(res) = sent else {
            counts.other.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let status = res.status().as_u16();
        let body: serde_json::Value = res.json().await.unwrap_or(serde_json::Value::Null);
        if status == 503 {
            assert_eq!(body["error"], "temporarily_unavailable", "a 503 says what it is: {body}");
            counts.unavailable.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        return (status, body);
    }
    panic!("{url}: still 503 after 50 tries");
}

/// Start, poll until approved, collect, and collect again (must be refused).
async fn one_transaction(http: reqwest::Client, public: String, counts: Arc<Counts>, n: usize) {
    let msisdn = format!("MSISDN:346000{n:05}1"); // last digit 1: the simulated person approves
    let start = [("scope", "openid mc_authn"), ("login_hint", msisdn.as_str())];
    let (status, ack) = rp(&http, &format!("{public}/bc-authorize"), &start, &counts).await;
    if status != 200 {
        counts.other.fetch_add(1, Ordering::Relaxed);
        eprintln!("bc-authorize {n}: {status} {ack}");
        return;
    }
    counts.started.fetch_add(1, Ordering::Relaxed);
    let id = ack["auth_req_id"].as_str().unwrap().to_owned();
    let form = [("grant_type", "urn:openid:params:grant-type:ciba"), ("auth_req_id", id.as_str())];
    let token_url = format!("{public}/token");
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(1_050)).await;
        let (_, answer) = rp(&http, &token_url, &form, &counts).await;
        match answer["error"].as_str() {
            Some("authorization_pending" | "slow_down") => continue,
            None if answer["id_token"].is_string() => {
                counts.collected.fetch_add(1, Ordering::Relaxed);
                let (_, again) = rp(&http, &token_url, &form, &counts).await;
                if again["error"] != "invalid_grant" {
                    counts.double.fetch_add(1, Ordering::Relaxed);
                    eprintln!("transaction {n} collected twice: {again}");
                }
                return;
            }
            _ => {
                counts.lost.fetch_add(1, Ordering::Relaxed);
                eprintln!("transaction {n} lost: {answer}");
                return;
            }
        }
    }
    counts.lost.fetch_add(1, Ordering::Relaxed);
    eprintln!("transaction {n} never approved");
}

/// A value of one line of the Prometheus text (0 when absent).
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .map(|v| v.trim().parse::<f64>().unwrap())
        .unwrap_or(0.0)
}

/// The usage push count of client `rp` at `orange` on `redis` (RESP read by hand).
fn usage_count(redis: &TestRedis) -> u64 {
    let keys = redis.command(&["KEYS", "*usage:*:rp:push:orange*"]);
    let key = keys.lines().find(|l| l.contains("usage:")).unwrap_or_else(|| panic!("no usage key: {keys:?}"));
    let value = redis.command(&["GET", key]);
    value.lines().nth(1).unwrap_or_else(|| panic!("GET {key}: {value:?}")).parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_redis_and_a_failover_mid_transaction_lose_and_double_nothing() {
    let primary = TestRedis::start();
    let replica = TestRedis::start();
    assert!(replica.command(&["REPLICAOF", "127.0.0.1", &primary.port.to_string()]).starts_with("+OK"));
    let synced = Instant::now() + Duration::from_secs(10);
    while !replica.command(&["INFO", "replication"]).contains("master_link_status:up") {
        assert!(Instant::now() < synced, "the replica did not sync");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let proxy = SlowProxy::start(primary.port, REDIS_DELAY).await;

    let dir = tempfile::tempdir().unwrap();
    let orange = OrangeSim::start(SimNotification::Poll).await;
    let config =
        orange.write_config(dir.path(), &proxy.url(), "timeout_ms = 1000\nreconnect_max_delay_ms = 100", "", "warn");
    let gw = ServeProcess::start(&config);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    gw.wait_ready(Duration::from_secs(10)).await; // behind the slow relay

    let counts = Arc::new(Counts::default());
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..CONCURRENCY {
        let (http, public, counts, next) = (http.clone(), gw.public.clone(), counts.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= TRANSACTIONS {
                    return;
                }
                one_transaction(http.clone(), public.clone(), counts.clone(), n).await;
            }
        }));
    }

    // Failover once enough transactions are under way: Redis pauses writers, lets the replica
    // catch up and swaps roles; then the relay follows the new primary.
    let under_way = Instant::now() + Duration::from_secs(60);
    while counts.started.load(Ordering::Relaxed) < FAILOVER_AFTER {
        assert!(Instant::now() < under_way, "the load did not get going");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let in_flight = counts.started.load(Ordering::Relaxed) - counts.collected.load(Ordering::Relaxed);
    let reply = primary.command(&["FAILOVER"]);
    assert!(reply.starts_with("+OK"), "FAILOVER: {reply:?}");
    let promoted = Instant::now() + Duration::from_secs(10);
    while !replica.command(&["ROLE"]).contains("master") {
        assert!(Instant::now() < promoted, "the replica was not promoted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    proxy.move_to(replica.port);
    for w in workers {
        w.await.unwrap();
    }

    let (started, collected) = (counts.started.load(Ordering::Relaxed), counts.collected.load(Ordering::Relaxed));
    let (lost, double) = (counts.lost.load(Ordering::Relaxed), counts.double.load(Ordering::Relaxed));
    let (unavailable, other) = (counts.unavailable.load(Ordering::Relaxed), counts.other.load(Ordering::Relaxed));
    let text = http.get(format!("{}/metrics", gw.admin)).send().await.unwrap().text().await.unwrap();
    let pushes = metric(&text, "mcgate_usage_pushes_total{client=\"rp\"}") as u64;
    let not_stored = metric(&text, "mcgate_usage_store_errors_total") as u64;
    let insert_s = metric(&text, "mcgate_store_operation_duration_seconds_sum{op=\"insert\"}")
        / metric(&text, "mcgate_store_operation_duration_seconds_count{op=\"insert\"}");
    let in_redis = usage_count(&replica);
    eprintln!(
        "F-10: {TRANSACTIONS} transactions, {in_flight} in flight at the failover; started {started}, collected \
         {collected}, lost {lost}, collected twice {double}, 503 answers retried {unavailable}, other failures \
         {other}; mean insert {insert_s:.3} s; usage: {pushes} pushes counted, {in_redis} in Redis, {not_stored} reported not stored"
    );
    assert!(in_flight > 0, "the failover happened mid-transaction");
    assert!(insert_s >= REDIS_DELAY.as_secs_f64(), "Redis was slow: inserts took {insert_s:.3} s on average");
    assert_eq!(started, TRANSACTIONS, "every transaction started (503s retried)");
    assert_eq!((lost, double, other), (0, 0, 0), "lost, collected twice, other failures");
    assert_eq!(collected, TRANSACTIONS);
    assert!(in_redis <= pushes, "Redis never counts a push twice ({in_redis} > {pushes})");
    assert!(
        in_redis + not_stored >= pushes,
        "every push is in Redis or reported ({in_redis} + {not_stored} < {pushes})"
    );
    assert!(primary.command(&["ROLE"]).contains("slave"), "the old primary follows the new one");
}
