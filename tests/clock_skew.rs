//! shared/security.md F-15: one instance's clock five minutes off. Three real `mcgate serve`
//! processes share one private `redis-server`: A on the host's clock, B five minutes slow and C
//! five minutes fast (libfaketime, `LD_PRELOAD`; the monotonic clock is left alone). Each
//! follows Redis's clock (`store.shared_clock`, the default), so:
//! - a transaction that expired (real time) is answered `expired_token` by the slow instance,
//!   never `authorization_pending` or tokens (expired items accepted: 0);
//! - a live transaction is approved through the fast instance, never `expired_token`, and the
//!   fast instance's ID token carries the real `iat`, not one five minutes ahead;
//! - each instance publishes its offset (`mcgate_store_clock_offset_seconds`) and the skewed
//!   ones log a warning.

mod support;

use base64::Engine;

use mcgate::sim::SimNotification;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::process::{rp_post, OrangeSim, ServeProcess};
use support::redis::TestRedis;

const FIVE_MINUTES_S: f64 = 300.0;

/// libfaketime's preload library (Debian package `libfaketime`, installed by `scripts/test`).
/// Missing → the test fails loudly: it cannot stage the fault without it.
fn libfaketime() -> PathBuf {
    let found = std::fs::read_dir("/usr/lib")
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("faketime/libfaketime.so.1"))
        .find(|p| p.exists());
    found
        .expect("libfaketime.so.1 not found under /usr/lib/*/faketime: apt-get install libfaketime (scripts/test does)")
}

async fn rp(http: &reqwest::Client, url: String, form: &[(&str, &str)]) -> serde_json::Value {
    rp_post(http, &url, form).await.1
}

/// The instance's published offset once its probe has sampled Redis's clock near `want_s`.
async fn offset_near(http: &reqwest::Client, admin: &str, want_s: f64) -> f64 {
    let mut last = f64::NAN;
    for _ in 0..50 {
        let text = http.get(format!("{admin}/metrics")).send().await.unwrap().text().await.unwrap();
        last = text
            .lines()
            .find_map(|l| l.strip_prefix("mcgate_store_clock_offset_seconds "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(f64::NAN);
        if (last - want_s).abs() < 5.0 {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{admin}: mcgate_store_clock_offset_seconds = {last}, want about {want_s}");
}

fn real_now_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_five_minutes_off_neither_accepts_expired_nor_expires_live_transactions() {
    let faketime = libfaketime();
    let redis = TestRedis::start();
    let dir = tempfile::tempdir().unwrap();
    let orange = OrangeSim::start(SimNotification::Poll).await;
    let config = orange.write_config(dir.path(), &redis.url(), "", "", "info");
    let skewed = |offset: &'static str, log: &str| {
        let env =
            [("LD_PRELOAD", faketime.to_str().unwrap()), ("FAKETIME", offset), ("FAKETIME_DONT_FAKE_MONOTONIC", "1")];
        ServeProcess::start_with(&config, &env, Some(&dir.path().join(log)))
    };
    let a = ServeProcess::start(&config);
    let slow = skewed("-5m", "slow.log");
    let fast = skewed("+5m", "fast.log");
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();

    // Each instance measured its distance to Redis's clock (the faked ones prove the fault is
    // staged: without libfaketime taking effect these would read about 0).
    let on_host = offset_near(&http, &a.admin, 0.0).await;
    let of_slow = offset_near(&http, &slow.admin, FIVE_MINUTES_S).await;
    let of_fast = offset_near(&http, &fast.admin, -FIVE_MINUTES_S).await;
    eprintln!("offsets (Redis minus host, s): host {on_host:.3}, slow {of_slow:.3}, fast {of_fast:.3}");

    // Expired (real time) on A, polled on the slow instance: expired_token.
    let start = [("scope", "openid mc_authn"), ("login_hint", "MSISDN:34600000013"), ("requested_expiry", "2")];
    let ack = rp(&http, format!("{}/bc-authorize", a.public), &start).await;
    let expiring = ack["auth_req_id"].as_str().unwrap_or_else(|| panic!("{ack}")).to_owned();
    tokio::time::sleep(Duration::from_millis(3_200)).await;
    let form = [("grant_type", "urn:openid:params:grant-type:ciba"), ("auth_req_id", expiring.as_str())];
    let late = rp(&http, format!("{}/token", slow.public), &form).await;
    assert_eq!(late["error"], "expired_token", "an expired transaction, polled on the slow instance: {late}");
    let on_a = rp(&http, format!("{}/token", a.public), &form).await;
    assert_eq!(on_a["error"], "expired_token", "and it stays expired: {on_a}");

    // Live, started on A and collected through the fast instance: tokens with the real iat.
    let start = [("scope", "openid mc_authn"), ("login_hint", "MSISDN:34600000011")];
    let ack = rp(&http, format!("{}/bc-authorize", a.public), &start).await;
    let live = ack["auth_req_id"].as_str().unwrap_or_else(|| panic!("{ack}")).to_owned();
    let form = [("grant_type", "urn:openid:params:grant-type:ciba"), ("auth_req_id", live.as_str())];
    let mut answer = serde_json::Value::Null;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        answer = rp(&http, format!("{}/token", fast.public), &form).await;
        assert_ne!(answer["error"], "expired_token", "a live transaction, polled on the fast instance: {answer}");
        if answer["error"] != "authorization_pending" && answer["error"] != "slow_down" {
            break;
        }
    }
    let id_token =
        answer["id_token"].as_str().unwrap_or_else(|| panic!("no ID token from the fast instance: {answer}"));
    let payload = id_token.split('.').nth(1).unwrap();
    let claims: serde_json::Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    let iat = claims["iat"].as_u64().unwrap();
    let now = real_now_s();
    assert!(iat.abs_diff(now) <= 5, "iat {iat} from the fast instance, real now {now}: {claims}");

    // The skewed instances said so in their logs (flushed within a second).
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    for log in ["slow.log", "fast.log"] {
        let text = std::fs::read_to_string(dir.path().join(log)).unwrap();
        assert!(
            text.lines().any(|l| l.contains("\"WARN\"") && l.contains("clock is off the store's")),
            "{log} has no clock warning:\n{text}"
        );
    }
}
