//! The push-capability cache across instances (issue 7): two real `mcgate serve` processes share
//! one private `redis-server`. A number the operator does not know, learned by instance A, is
//! answered by instance B without calling the operator (B's not-enrolled index read A's
//! announcement from the store's log); a bc-authorize for any other number makes no
//! push-capability look-up in Redis (no `GET`, counted in `INFO commandstats`), and a marked
//! number is still confirmed in Redis before it is refused.

mod support;

use mcgate::sim::SimNotification;
use std::sync::atomic::Ordering;
use std::time::Duration;
use support::process::{rp_post, OrangeSim, ServeProcess};
use support::redis::TestRedis;

async fn bc_authorize(base: &str, msisdn: &str) -> (u16, serde_json::Value) {
    let form = [("scope", "openid"), ("login_hint", &format!("MSISDN:{msisdn}"))];
    rp_post(&reqwest::Client::new(), &format!("{base}/bc-authorize"), &form).await
}

/// Calls of one Redis command since the server started.
fn calls(redis: &TestRedis, command: &str) -> u64 {
    let stats = redis.command(&["INFO", "commandstats"]);
    stats
        .lines()
        .find_map(|l| l.strip_prefix(&format!("cmdstat_{command}:calls=")))
        .map_or(0, |rest| rest.split(',').next().unwrap().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_number_learned_on_one_instance_is_not_pushed_again_from_another() {
    let redis = TestRedis::start();
    let orange = OrangeSim::start(SimNotification::Poll).await;
    let dir = tempfile::tempdir().unwrap();
    let config = orange.write_config(dir.path(), &redis.url(), "not_enrolled_sync_ms = 100", "", "warn");
    let (a, b) = (ServeProcess::start(&config), ServeProcess::start(&config));
    a.wait_ready(Duration::from_secs(10)).await;
    b.wait_ready(Duration::from_secs(10)).await;
    let operator_calls = || orange.sim.stats.bc_authorize.load(Ordering::SeqCst);

    // A number the simulator does not know (ends in 4): A asks the operator and remembers it.
    let unknown = "34600000014";
    let (status, body) = bc_authorize(&a.public, unknown).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("unknown_user_id")), "{body}");
    assert_eq!(operator_calls(), 1);

    // B reads A's announcement within its sync period (100 ms here), then refuses the number
    // without asking the operator, after confirming it in Redis (one GET).
    tokio::time::sleep(Duration::from_millis(400)).await;
    let gets = calls(&redis, "get");
    let (status, body) = bc_authorize(&b.public, unknown).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("unknown_user_id")), "{body}");
    assert_eq!(operator_calls(), 1, "answered from the shared cache, not by the operator");
    assert_eq!(calls(&redis, "get") - gets, 1, "a marked number is confirmed in Redis");

    // Any other number: pushed without a push-capability look-up (no GET at all) on both.
    for (i, base) in [&a.public, &b.public].into_iter().enumerate() {
        let gets = calls(&redis, "get");
        let (status, body) = bc_authorize(base, &format!("346000002{i}1")).await;
        assert_eq!(status, 200, "{body}");
        assert!(body["auth_req_id"].is_string(), "{body}");
        assert_eq!(calls(&redis, "get"), gets, "no push-capability round trip before the push");
    }
    assert_eq!(operator_calls(), 3);
    // Both instances still refuse the unknown number without the operator.
    for base in [&a.public, &b.public] {
        assert_eq!(bc_authorize(base, unknown).await.1["error"], "unknown_user_id");
    }
    assert_eq!(operator_calls(), 3);
    let entries = redis.command(&["XLEN", "mcgate:log:{pushcap}"]);
    assert_eq!(entries.trim(), ":1", "one announcement: A's (B found the entry, it did not store it)");
}
