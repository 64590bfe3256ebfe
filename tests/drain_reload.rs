//! Hot reload and graceful drain under a bounded load loop, against the real `mcgate serve`
//! (shared/security.md L-05, L-06, F-12, F-13).
//!
//! "Failed" request: a transport error on an accepted request, any 5xx, or any status other
//! than the expected ones (2xx; 400 `authorization_pending` while a person has not answered).
//! A connection refused after the listeners closed (drain) is "not accepted", counted apart.

mod edge_support;

use edge_support::*;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    pending: AtomicU64,
    failed: AtomicU64,
    refused: AtomicU64,
}

impl Counts {
    fn line(&self) -> String {
        format!(
            "ok={} pending={} failed={} refused_after_close={}",
            self.ok.load(Ordering::SeqCst),
            self.pending.load(Ordering::SeqCst),
            self.failed.load(Ordering::SeqCst),
            self.refused.load(Ordering::SeqCst)
        )
    }
}

/// One counted request; returns the JSON answer when it was not failed/refused.
async fn counted(
    http: &reqwest::Client,
    counts: &Counts,
    url: String,
    client: (&str, &str),
    form: &[(&str, &str)],
) -> Option<(u16, serde_json::Value)> {
    let r = match http.post(url).basic_auth(client.0, Some(client.1)).form(form).send().await {
        Ok(r) => r,
        Err(e) if e.is_connect() => {
            counts.refused.fetch_add(1, Ordering::SeqCst);
            return None;
        }
        Err(e) => {
            eprintln!("failed (transport): {e:?}");
            counts.failed.fetch_add(1, Ordering::SeqCst);
            return None;
        }
    };
    let status = r.status().as_u16();
    let body: serde_json::Value = match r.json().await {
        Ok(b) => b,
        Err(e) => {
            eprintln!("failed (body): {status} {e:?}");
            counts.failed.fetch_add(1, Ordering::SeqCst);
            return None;
        }
    };
    match (status, body["error"].as_str()) {
        (200..=299, _) => counts.ok.fetch_add(1, Ordering::SeqCst),
        (400, Some("authorization_pending")) => counts.pending.fetch_add(1, Ordering::SeqCst),
        _ => {
            eprintln!("failed (status): {status} {body}");
            counts.failed.fetch_add(1, Ordering::SeqCst)
        }
    };
    Some((status, body))
}

/// One CIBA flow: bc-authorize, then polls every `interval` until tokens (or an error).
/// Returns whether the flow ended with tokens.
async fn flow(http: &reqwest::Client, counts: &Counts, base: &str, client: (&str, &str), msisdn: &str) -> bool {
    let hint = format!("MSISDN:{msisdn}");
    let form = [("scope", "openid"), ("login_hint", hint.as_str())];
    let Some((200, ack)) = counted(http, counts, format!("{base}/bc-authorize"), client, &form).await else {
        return false;
    };
    let id = ack["auth_req_id"].as_str().unwrap().to_owned();
    let interval = Duration::from_secs(ack["interval"].as_u64().unwrap_or(1));
    for _ in 0..20 {
        tokio::time::sleep(interval + Duration::from_millis(30)).await;
        let form = [("grant_type", "urn:openid:params:grant-type:ciba"), ("auth_req_id", id.as_str())];
        match counted(http, counts, format!("{base}/token"), client, &form).await {
            Some((200, body)) => return body["id_token"].is_string(),
            Some((400, b)) if b["error"] == "authorization_pending" => continue,
            _ => return false,
        }
    }
    false
}

fn config(sims: &Sims, with_orange: bool, clients: &[&str], marker: usize, edge: &str) -> String {
    let mut text = head_toml("drain_timeout_ms = 10000", edge);
    text.push_str("[ciba]\ninterval_s = 1\n\n");
    text.push_str(&operator_toml(&sims.ops[0], "346"));
    if with_orange {
        text.push_str(&operator_toml(&sims.ops[1], "347"));
    }
    for c in clients {
        text.push_str(&client_toml(c));
    }
    // A harmless per-reload change: the first client's display name.
    text.push_str(&format!("# generation marker {marker}\n"));
    text
}

async fn wait_generation(http: &reqwest::Client, admin: &str, want: f64) {
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let g = metric(http, admin, "mcgate_config_generation").await;
        if g == want {
            return;
        }
        assert!(Instant::now() < end, "generation {g}, want {want}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_reloads_under_load_fail_nothing_and_an_invalid_file_is_rejected_with_every_problem() {
    let sims = start_sims(&["movistar", "orange"], Duration::from_millis(300), Duration::from_secs(1)).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routing.toml");
    std::fs::write(&path, config(&sims, false, &["rp"], 0, "")).unwrap();
    let gw = Gateway::start(&path);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    let base = gw.public.clone();

    // Before the reloads: the client rp2 and operator orange's numbers are unknown.
    let r = http
        .post(format!("{base}/bc-authorize"))
        .basic_auth("rp2", Some("test"))
        .form(&[("scope", "openid"), ("login_hint", "MSISDN:34600000001")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "rp2 not configured yet");

    // The bounded load loop: 6 tasks of CIBA flows + 2 tasks of metadata reads, until `stop`.
    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let flows_ok = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for t in 0..8u32 {
        let (http, counts, stop, base, flows_ok) =
            (http.clone(), counts.clone(), stop.clone(), base.clone(), flows_ok.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u32;
            while !stop.load(Ordering::SeqCst) && n < 2_000 {
                n += 1;
                if t < 6 {
                    let msisdn = format!("3460{t}{:04}1", n % 10_000);
                    if flow(&http, &counts, &base, ("rp", "test"), &msisdn).await {
                        flows_ok.fetch_add(1, Ordering::SeqCst);
                    }
                } else {
                    match http.get(format!("{base}/.well-known/openid-configuration")).send().await {
                        Ok(r) if r.status() == 200 => counts.ok.fetch_add(1, Ordering::SeqCst),
                        other => {
                            eprintln!("failed (metadata): {other:?}");
                            counts.failed.fetch_add(1, Ordering::SeqCst)
                        }
                    };
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }));
    }

    // Ten valid reloads by SIGHUP, ~400 ms apart; orange added at the 3rd, rp2 at the 5th.
    for i in 1..=10usize {
        let clients: &[&str] = if i >= 5 { &["rp", "rp2"] } else { &["rp"] };
        std::fs::write(&path, config(&sims, i >= 3, clients, i, "")).unwrap();
        gw.signal("HUP");
        wait_generation(&http, &gw.admin, 1.0 + i as f64).await;
        if i == 6 {
            // Added without a restart: the new client, on the new operator.
            assert!(flow(&http, &counts, &base, ("rp2", "test"), "34700000001").await, "rp2 on orange after reload");
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    assert_eq!(metric(&http, &gw.admin, "mcgate_config_reloads_total{outcome=\"ok\"}").await, 10.0);

    // An invalid file: rejected (SIGHUP: logged with every key), the running config stays.
    let valid = std::fs::read_to_string(&path).unwrap();
    let invalid = valid.replace("[edge]\n", "[edge]\nmax_in_flight = 0\nmax_headers = 0\n");
    std::fs::write(&path, &invalid).unwrap();
    gw.signal("HUP");
    let end = Instant::now() + Duration::from_secs(15);
    while metric(&http, &gw.admin, "mcgate_config_reloads_total{outcome=\"rejected\"}").await < 1.0 {
        assert!(Instant::now() < end, "SIGHUP with an invalid file not counted as rejected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(metric(&http, &gw.admin, "mcgate_config_generation").await, 11.0, "old config runs on");
    // Logs are written in batches: wait (bounded) for both lines.
    let end = Instant::now() + Duration::from_secs(5);
    let logged = loop {
        let logged: Vec<String> =
            gw.lines.lock().unwrap().iter().filter(|l| l.contains("configuration reload rejected")).cloned().collect();
        if logged.len() >= 2 || Instant::now() > end {
            break logged;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(logged.iter().any(|l| l.contains("edge.max_in_flight")), "{logged:?}");
    assert!(logged.iter().any(|l| l.contains("edge.max_headers")), "{logged:?}");

    // The same through POST /reload: 422 with the full list as JSON.
    let r = http.post(format!("{}/reload", gw.admin)).send().await.unwrap();
    assert_eq!(r.status(), 422);
    let body: serde_json::Value = r.json().await.unwrap();
    let paths: Vec<&str> = body["problems"].as_array().unwrap().iter().map(|p| p["path"].as_str().unwrap()).collect();
    assert_eq!(body["error"], "invalid_configuration");
    assert!(paths.contains(&"edge.max_in_flight") && paths.contains(&"edge.max_headers"), "{paths:?}");
    // rp2 still works (the old configuration runs on).
    assert!(flow(&http, &counts, &base, ("rp2", "test"), "34700000011").await);

    // A valid file through POST /reload: 200 and the next generation.
    std::fs::write(&path, &valid).unwrap();
    let r = http.post(format!("{}/reload", gw.admin)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["generation"], 12);
    assert_eq!(metric(&http, &gw.admin, "mcgate_config_reloads_total{outcome=\"rejected\"}").await, 2.0);

    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    let total = counts.ok.load(Ordering::SeqCst) + counts.pending.load(Ordering::SeqCst);
    println!(
        "reload under load: 11 reloads ok + 2 rejected; requests {total} answered: {}; CIBA flows completed {}",
        counts.line(),
        flows_ok.load(Ordering::SeqCst)
    );
    assert_eq!(counts.failed.load(Ordering::SeqCst), 0, "{}", counts.line());
    assert_eq!(counts.refused.load(Ordering::SeqCst), 0, "{}", counts.line());
    assert!(flows_ok.load(Ordering::SeqCst) >= 6, "the load loop did work");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_removed_by_reload_fails_its_pending_transactions_with_a_clear_answer() {
    let sims = start_sims(&["movistar", "orange"], Duration::from_millis(300), Duration::from_secs(1)).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routing.toml");
    std::fs::write(&path, config(&sims, true, &["rp"], 0, "")).unwrap();
    let gw = Gateway::start(&path);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    let ack: serde_json::Value = http
        .post(format!("{}/bc-authorize", gw.public))
        .basic_auth("rp", Some("test"))
        .form(&[("scope", "openid"), ("login_hint", "MSISDN:34700000003")]) // orange; never answers
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = ack["auth_req_id"].as_str().unwrap_or_else(|| panic!("{ack}")).to_owned();

    std::fs::write(&path, config(&sims, false, &["rp"], 1, "")).unwrap();
    gw.signal("HUP");
    wait_generation(&http, &gw.admin, 2.0).await;
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        let r = http
            .post(format!("{}/token", gw.public))
            .basic_auth("rp", Some("test"))
            .form(&[("grant_type", "urn:openid:params:grant-type:ciba"), ("auth_req_id", id.as_str())])
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"], "transaction_failed", "{body}");
        assert_eq!(body["error_description"], "operator_unavailable", "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_under_load_unready_first_in_flight_completes_then_refuses() {
    // Slow acknowledgements (last digit 6) keep requests in flight across the SIGTERM.
    let sims = start_sims(&["movistar", "orange"], Duration::from_millis(300), Duration::from_millis(1500)).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routing.toml");
    std::fs::write(&path, config(&sims, false, &["rp"], 0, "unready_delay_ms = 1000")).unwrap();
    let mut gw = Gateway::start(&path);
    // A fresh connection per request: "accepted" is then exact (refused = never accepted).
    let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).pool_max_idle_per_host(0).build().unwrap();
    let base = gw.public.clone();

    let counts = Arc::new(Counts::default());
    let closed = Arc::new(AtomicBool::new(false));
    let slow_ok = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for t in 0..8u32 {
        let (http, counts, closed, base, slow_ok) =
            (http.clone(), counts.clone(), closed.clone(), base.clone(), slow_ok.clone());
        tasks.push(tokio::spawn(async move {
            // Each task runs until its requests are refused (listeners closed), bounded.
            for n in 0..200u32 {
                let before = counts.refused.load(Ordering::SeqCst);
                if t < 4 {
                    flow(&http, &counts, &base, ("rp", "test"), &format!("3461{t}{n:04}1")).await;
                } else {
                    let hint = format!("MSISDN:3461{t}{n:04}6");
                    let form = [("scope", "openid"), ("login_hint", hint.as_str())];
                    if let Some((200, _)) =
                        counted(&http, &counts, format!("{base}/bc-authorize"), ("rp", "test"), &form).await
                    {
                        slow_ok.fetch_add(1, Ordering::SeqCst);
                    }
                }
                if counts.refused.load(Ordering::SeqCst) > before || closed.load(Ordering::SeqCst) {
                    return;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ready = http.get(format!("{}/ready", gw.admin)).send().await.unwrap();
    assert_eq!(ready.status(), 200);

    gw.signal("TERM");
    let sigterm = Instant::now();
    // /ready turns 503 first, while the public listener still serves (unready_delay_ms = 1000).
    let ready = http.get(format!("{}/ready", gw.admin)).send().await.unwrap();
    let unready_after = sigterm.elapsed();
    assert_eq!(ready.status(), 503, "unready at once");
    let served = http.get(format!("{base}/jwks")).send().await.expect("still serving during the unready delay");
    assert_eq!(served.status(), 200);
    assert_eq!(
        served.headers().get("connection").map(|v| v.to_str().unwrap()),
        Some("close"),
        "draining answers close"
    );

    // After the delay the listeners close: new connections are refused.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let refused = http.get(format!("{base}/jwks")).send().await;
    assert!(refused.as_ref().is_err_and(|e| e.is_connect()), "new connections refused: {refused:?}");
    closed.store(true, Ordering::SeqCst);

    for t in tasks {
        t.await.unwrap();
    }
    assert!(gw.wait_exit(Duration::from_secs(15)), "clean exit after the drain");
    let accepted = counts.ok.load(Ordering::SeqCst) + counts.pending.load(Ordering::SeqCst);
    println!(
        "drain under load: /ready 503 after {unready_after:?}; accepted {accepted}: {}; slow bc-authorize completed {}",
        counts.line(),
        slow_ok.load(Ordering::SeqCst)
    );
    assert_eq!(counts.failed.load(Ordering::SeqCst), 0, "{}", counts.line());
    assert!(slow_ok.load(Ordering::SeqCst) >= 4, "slow requests were served");
}
