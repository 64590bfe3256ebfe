//! The gateway on the Redis store (a private `redis-server` on an ephemeral loopback port): a
//! full CIBA poll round trip lands in Redis; with Redis killed the gateway fails closed
//! (bc-authorize and /token: 503 `temporarily_unavailable` + `Retry-After`, `/ready` false
//! within 5 s, `/live`, metadata and JWKS still served, no local fallback); with Redis back it
//! recovers by itself within 5 s.

mod support;

use std::time::{Duration, Instant};
use support::redis::TestRedis;
use support::Rp;

const OUTAGE_REQUESTS: usize = 20;

async fn status(url: String) -> u16 {
    reqwest::get(url).await.map(|r| r.status().as_u16()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_round_trip_fails_closed_and_recovers() {
    let mut redis = TestRedis::start();
    let url = redis.url();
    let demo = support::start_demo_with(|t| {
        t.replace("kind = \"memory\"", &format!("kind = \"redis\"\nurl = \"{url}\"\nhealth_interval_ms = 200"))
    })
    .await;
    let rp = Rp::new(&demo);
    let (ready, live) = (format!("{}/ready", demo.admin_url), format!("{}/live", demo.admin_url));
    let until = Instant::now() + Duration::from_secs(5);
    while status(ready.clone()).await != 200 {
        assert!(Instant::now() < until, "never ready on a running Redis");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A full poll round trip, through Redis.
    let ack = rp.bc_authorize("MSISDN:34700000011").await;
    assert_eq!(ack.status, 200, "{:?}", ack.body);
    let old_id = ack.body["auth_req_id"].as_str().unwrap().to_owned();
    assert!(redis.command(&["KEYS", "mcgate:txv:*"]).contains("mcgate:txv:{"), "the transaction lives in Redis");
    let (done, _) = rp.poll_until_done(&ack, Duration::from_secs(15)).await;
    assert_eq!(done.status, 200, "{:?}", done.body);
    assert!(done.body["id_token"].is_string());
    assert_eq!(rp.token(&old_id).await.error(), "invalid_grant", "tokens are handed out once");
    let pending = rp.bc_authorize("MSISDN:34700000013").await; // never answers: still pending later
    let pending_id = pending.body["auth_req_id"].as_str().unwrap().to_owned();

    // Redis goes away: fail closed.
    redis.stop();
    let (mut wrongly_served, mut closed) = (0, 0);
    for i in 0..OUTAGE_REQUESTS {
        let a = if i % 2 == 0 { rp.bc_authorize("MSISDN:34700000011").await } else { rp.token(&pending_id).await };
        if a.status == 503 && a.error() == "temporarily_unavailable" && a.headers.contains_key("retry-after") {
            closed += 1;
        } else {
            wrongly_served += 1;
            eprintln!("served during the outage: {} {:?}", a.status, a.body);
        }
    }
    println!("redis outage: {closed} refused with 503, wrongly served = {wrongly_served}");
    assert_eq!(wrongly_served, 0);
    let base = demo.plain_url.clone().unwrap();
    assert_eq!(status(format!("{base}/.well-known/openid-configuration")).await, 200, "metadata still served");
    assert_eq!(status(format!("{base}/jwks")).await, 200, "JWKS still served");
    let down = Instant::now();
    while status(ready.clone()).await != 503 {
        assert!(down.elapsed() < Duration::from_secs(5), "/ready still true 5 s into the outage");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status(live.clone()).await, 200, "/live stays ok");
    let errors = support::metric(&demo, "mcgate_store_errors_total", &[]).await;
    assert!(errors >= OUTAGE_REQUESTS as f64, "store errors counted: {errors}");

    // Redis is back (empty): the gateway recovers by itself.
    redis.restart();
    let back = Instant::now();
    loop {
        let a = rp.bc_authorize("MSISDN:34700000011").await;
        if a.status == 200 && status(ready.clone()).await == 200 {
            break;
        }
        assert!(back.elapsed() < Duration::from_secs(5), "not recovered 5 s after Redis returned: {:?}", a.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("recovered {:?} after Redis returned", back.elapsed());
    let ops = support::metric(&demo, "mcgate_store_operation_duration_seconds_count", &[("op", "insert")]).await;
    assert!(ops >= 3.0, "store operations timed: {ops}");
    demo.stop().await;
}

/// The poll cache is a hint, never an answer: a transaction another writer moved after this
/// instance cached it (here: denied, written straight into Redis as another instance would)
/// is answered from the store's value, not from the cached pending one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_on_a_stale_cached_version_answers_from_the_current_one() {
    let redis = TestRedis::start();
    let url = redis.url();
    let demo =
        support::start_demo_with(|t| t.replace("kind = \"memory\"", &format!("kind = \"redis\"\nurl = \"{url}\"")))
            .await;
    let rp = Rp::new(&demo);
    let ack = rp.bc_authorize("MSISDN:34700000013").await; // the simulator never answers it
    assert_eq!(ack.status, 200, "{:?}", ack.body);
    let id = ack.body["auth_req_id"].as_str().unwrap().to_owned();
    rp.token(&id).await; // due: asks the operator
    assert_eq!(rp.token(&id).await.error(), "slow_down", "early: written, and cached");

    // Another writer denies it: new JSON, version bumped.
    let key = format!("mcgate:txv:{{{id}}}");
    let reply = redis.command(&["GET", &key]);
    let record = reply.split_once("\r\n").map(|(_, rest)| rest.trim_end_matches("\r\n")).unwrap();
    let mut parts = record.splitn(3, ':');
    let (version, deadline, json) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
    assert!(json.contains(r#""state":{"state":"pending_push"}"#), "{json}");
    let denied = json.replace(r#""state":{"state":"pending_push"}"#, r#""state":{"state":"denied"}"#);
    let bumped = format!("{}:{deadline}:{denied}", version.parse::<u64>().unwrap() + 1);
    assert_eq!(redis.command(&["SET", &key, &bumped, "KEEPTTL"]), "+OK\r\n");

    assert_eq!(rp.token(&id).await.error(), "access_denied", "the store's value, not the cached one");
    demo.stop().await;
}
