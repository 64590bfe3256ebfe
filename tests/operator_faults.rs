//! Staged operator faults (issue 7; shared/security.md F-01..F-07, L-02..L-04) against the demo
//! gateway, with movistar's `bc-authorize` and `token` endpoints behind a switchable proxy
//! ([`support::faults`]) or on a refused port: breaker state (admin `/metrics`), the fallback
//! taken (SMS for `demo-rp-sms`, a clear 503 otherwise), the RP's answers and the metrics are
//! asserted for each. Durations come from the `[resilience]` section written here.

mod support;

use mcgate::demo::{sms_test_msisdn, Demo};
use std::time::Duration;
use support::faults::{breaker_state, movistar_numbers, Faulty, Mode};
use support::{metric, start_demo_keeping, Answer, Rp};

/// Test thresholds: 5 consecutive failures (L-02), a short open period, no rate trips, a 20 %
/// retry budget without the per-second allowance (so the ratio alone is measured).
const RESILIENCE: &str = "breaker_consecutive_failures = 5\nbreaker_open_ms = 600\nbreaker_max_open_ms = 5000\n\
                          breaker_failure_rate = 0.95\nbreaker_min_calls = 50\nretry_budget_ratio = 0.2\n\
                          retry_budget_min_per_s = 0\nretry_jitter_min_ms = 50\nretry_jitter_max_ms = 250\n\
                          not_enrolled_ttl_s = 60\n";

async fn demo_with(f: &Faulty, edit: impl FnOnce(String) -> String) -> Demo {
    demo_with_resilience(f, RESILIENCE, edit).await
}

async fn demo_with_resilience(f: &Faulty, resilience: &str, edit: impl FnOnce(String) -> String) -> Demo {
    start_demo_keeping(&["movistar"], |t| edit(f.edit_config(t, resilience))).await
}

fn sms_rp(demo: &Demo) -> Rp {
    Rp { client_id: demo.sms_client_id.clone(), ..Rp::new(demo) }
}

async fn push(rp: &Rp, msisdn: &str) -> Answer {
    rp.bc_authorize(&format!("MSISDN:{msisdn}")).await
}

async fn errors(demo: &Demo, kind: &str) -> f64 {
    metric(demo, "mcgate_operator_errors_total", &[("operator", "movistar"), ("kind", kind)]).await
}

async fn transitions(demo: &Demo, to: &str) -> f64 {
    metric(demo, "mcgate_operator_breaker_transitions_total", &[("operator", "movistar"), ("to", to)]).await
}

fn assert_503(a: &Answer) {
    assert_eq!(a.status, 503, "{:?}", a.body);
    assert_eq!(a.error(), "temporarily_unavailable");
    assert_eq!(a.headers.get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
}

/// Waits past the open period (bounded).
async fn open_period() {
    tokio::time::sleep(Duration::from_millis(700)).await;
}

#[tokio::test]
async fn operator_down_opens_the_breaker_after_five_then_sms_or_503_without_calling_it() {
    let f = Faulty::start("mcgate", false).await;
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let demo = demo_with(&f, |t| t.replace(&f.proxy_url, &dead)).await;
    let text = reqwest::get(format!("{}/metrics", demo.admin_url)).await.unwrap().text().await.unwrap();
    for op in ["movistar", "vodafone", "orange"] {
        assert!(text.contains(&format!("mcgate_operator_breaker_state{{operator=\"{op}\"}} 0")), "{op} exported");
    }
    let rp = Rp::new(&demo);
    let numbers = movistar_numbers(&demo, 1, 7);
    for n in &numbers[..5] {
        assert_503(&push(&rp, n).await);
    }
    assert_eq!(breaker_state(&demo, "movistar").await, 2.0, "open after 5 refused connections");
    assert_eq!(transitions(&demo, "open").await, 1.0);
    let connect_errors = errors(&demo, "connect").await;
    assert!(connect_errors >= 5.0, "{connect_errors}");
    let retries = metric(&demo, "mcgate_operator_retries_total", &[("operator", "movistar")]).await;
    assert!(retries <= 1.0, "connect retries within the 20 % budget of 5 calls: {retries}");
    // Open: the next attempts never reach the operator.
    assert_503(&push(&rp, &numbers[5]).await);
    assert_eq!(errors(&demo, "connect").await, connect_errors, "no call while open");
    // The SMS client gets an SMS at once.
    let sms = sms_test_msisdn(&demo.gateway, "demo-rp-sms", "movistar", 1).unwrap().digits();
    let ack = push(&sms_rp(&demo), &sms).await;
    assert_eq!(ack.status, 200, "{:?}", ack.body);
    assert_eq!(demo.smsc.messages().len(), 1, "SMS instead of the push");
    assert_eq!(errors(&demo, "connect").await, connect_errors, "still no call");
    assert_eq!(f.bc_count(), 0);
    // The other operators are unaffected.
    assert_eq!(breaker_state(&demo, "vodafone").await, 0.0);
    let v = mcgate::demo::test_msisdn(&demo.gateway, "vodafone", 1).unwrap().digits();
    assert_eq!(push(&rp, &v).await.status, 200);
    demo.stop().await;
}

#[tokio::test]
async fn slow_operator_calls_end_at_the_timeout_and_open_the_breaker() {
    let f = Faulty::start("mcgate", false).await;
    let demo = demo_with(&f, |t| t).await;
    let rp = Rp::new(&demo);
    f.set(Mode::Hang);
    let numbers = movistar_numbers(&demo, 1, 6);
    for n in &numbers[..5] {
        let started = tokio::time::Instant::now();
        let a = push(&rp, n).await;
        // Maybe delivered: acknowledged, the push deadline decides (never a second prompt).
        assert_eq!(a.status, 200, "{:?}", a.body);
        assert!(started.elapsed() < Duration::from_secs(5), "ended by the 1 s call timeout");
    }
    assert_eq!(errors(&demo, "timeout").await, 5.0);
    assert_eq!(breaker_state(&demo, "movistar").await, 2.0);
    assert_503(&push(&rp, &numbers[5]).await);
    assert_eq!(f.bc_count(), 5, "no call while open");
    demo.stop().await;
}

#[tokio::test]
async fn flapping_operator_half_open_sends_exactly_one_probe_and_its_success_closes() {
    let f = Faulty::start("mcgate", false).await;
    let demo = demo_with(&f, |t| t).await;
    let rp = Rp::new(&demo);
    let ok = movistar_numbers(&demo, 1, 20);
    let slow = movistar_numbers(&demo, 6, 5);
    // Down: 5 × 500 → open.
    f.set(Mode::Http500);
    for n in &ok[..5] {
        assert_503(&push(&rp, n).await);
    }
    assert_eq!(errors(&demo, "http_5xx").await, 5.0);
    assert_eq!(breaker_state(&demo, "movistar").await, 2.0);
    assert_503(&push(&rp, &ok[5]).await);
    assert_eq!(f.bc_count(), 5);
    // After the open period, five at once: exactly one probe goes out (a slow one: it fails
    // by timeout, so the breaker opens again for twice as long).
    f.set(Mode::Forward);
    open_period().await;
    let answers = futures_util::future::join_all(slow.iter().map(|n| push(&rp, n))).await;
    assert_eq!(f.bc_count(), 6, "one probe");
    assert_eq!(answers.iter().filter(|a| a.status == 503).count(), 4, "the others refused at once");
    assert_eq!(transitions(&demo, "half_open").await, 1.0);
    assert_eq!(transitions(&demo, "open").await, 2.0, "failed probe reopens");
    // Doubled: still open after one period.
    open_period().await;
    assert_503(&push(&rp, &ok[6]).await);
    assert_eq!(f.bc_count(), 6);
    // Recovered: the next probe succeeds and closes the breaker.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let ack = push(&rp, &ok[7]).await;
    assert_eq!(ack.status, 200, "{:?}", ack.body);
    assert_eq!(breaker_state(&demo, "movistar").await, 0.0);
    assert_eq!(transitions(&demo, "closed").await, 1.0);
    let (tokens, _) = rp.poll_until_done(&ack, Duration::from_secs(10)).await;
    assert_eq!(tokens.status, 200, "approved after recovery: {:?}", tokens.body);
    assert_eq!(push(&rp, &ok[8]).await.status, 200, "closed: calls go through");
    demo.stop().await;
}

#[tokio::test]
async fn garbage_answers_count_as_failures_open_the_breaker_and_approve_nothing() {
    let f = Faulty::start("mcgate", false).await;
    let demo = demo_with(&f, |t| t).await;
    let rp = Rp::new(&demo);
    let numbers = movistar_numbers(&demo, 1, 40);
    let mut next = numbers.iter();
    let mut opened = 0.0;
    for mode in [Mode::InvalidJson, Mode::Html200, Mode::Truncated] {
        f.set(mode);
        for _ in 0..5 {
            let a = push(&rp, next.next().unwrap()).await;
            // An unreadable acknowledgement may hide a prompt: acknowledged, never approved.
            assert_eq!(a.status, 200, "{mode:?}: {:?}", a.body);
            let t = rp.token(a.body["auth_req_id"].as_str().unwrap()).await;
            assert_ne!(t.status, 200, "{mode:?}: nothing approved");
        }
        opened += 1.0;
        assert_eq!(breaker_state(&demo, "movistar").await, 2.0, "{mode:?}");
        assert_eq!(transitions(&demo, "open").await, opened, "{mode:?}");
        // Recover for the next mode: a successful probe closes.
        f.set(Mode::Forward);
        open_period().await;
        assert_eq!(push(&rp, next.next().unwrap()).await.status, 200);
        assert_eq!(breaker_state(&demo, "movistar").await, 0.0, "{mode:?} recovered");
    }
    assert!(errors(&demo, "bad_answer").await >= 15.0);
    // Bad signature on the ID token (the simulator's "forged" numbers): failed, never approved.
    let forged = movistar_numbers(&demo, 0, 5);
    let mut acks = Vec::new();
    for n in &forged {
        let a = push(&rp, n).await;
        assert_eq!(a.status, 200, "{:?}", a.body);
        acks.push(a);
    }
    tokio::time::sleep(Duration::from_millis(400)).await; // the simulated person answers
    for a in &acks {
        let (t, _) = rp.poll_until_done(a, Duration::from_secs(10)).await;
        assert_eq!(t.error(), "transaction_failed", "{:?}", t.body);
    }
    assert_eq!(errors(&demo, "token_invalid").await, 5.0);
    assert_eq!(breaker_state(&demo, "movistar").await, 2.0, "5 invalid ID tokens in a row");
    demo.stop().await;
}

#[tokio::test]
async fn wrong_audience_id_token_is_refused() {
    // The simulator's client is `elsewhere`; the gateway is `mcgate` at it and the proxy swaps
    // the credentials, so the ID token's `aud` is not ours.
    let f = Faulty::start("elsewhere", true).await;
    let demo = demo_with(&f, |t| t).await;
    let rp = Rp::new(&demo);
    let n = &movistar_numbers(&demo, 1, 1)[0];
    let ack = push(&rp, n).await;
    assert_eq!(ack.status, 200, "{:?}", ack.body);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (t, _) = rp.poll_until_done(&ack, Duration::from_secs(10)).await;
    assert_eq!(t.error(), "transaction_failed", "{:?}", t.body);
    assert_eq!(errors(&demo, "token_invalid").await, 1.0);
    demo.stop().await;
}

#[tokio::test]
async fn under_a_third_of_5xx_retries_stay_within_budget_and_no_push_is_sent_twice() {
    let f = Faulty::start("mcgate", false).await;
    // 500s answer faster than forwarded calls, so they may finish in a row: only the retry
    // budget is under test here, not the breaker.
    let resilience = RESILIENCE.replace("breaker_consecutive_failures = 5", "breaker_consecutive_failures = 1000");
    let demo = demo_with_resilience(&f, &resilience, |t| t).await;
    let rp = Rp::new(&demo);
    f.set(Mode::ThirdFails);
    let numbers = movistar_numbers(&demo, 1, 30);
    let mut tasks = tokio::task::JoinSet::new();
    for n in numbers.clone() {
        let rp = rp.clone();
        tasks.spawn(async move {
            let ack = push(&rp, &n).await;
            if ack.status != 200 {
                assert_503(&ack); // bc-authorize 5xx: unavailable, never retried
                return (false, false);
            }
            let (t, _) = rp.poll_until_done(&ack, Duration::from_secs(30)).await;
            (true, t.status == 200)
        });
    }
    let (mut accepted, mut approved) = (0, 0);
    while let Some(r) = tasks.join_next().await {
        let (a, b) = r.unwrap();
        accepted += usize::from(a);
        approved += usize::from(b);
    }
    let downstream_polls =
        metric(&demo, "mcgate_operator_request_duration_seconds_count", &[("operator", "movistar"), ("call", "token")])
            .await;
    let upstream_polls = f.token_count() as f64;
    let retries = metric(&demo, "mcgate_operator_retries_total", &[("operator", "movistar"), ("call", "token")]).await;
    let amplification = (upstream_polls + f.bc_count() as f64) / (downstream_polls + 30.0);
    println!(
        "pushes: 30 RP requests, {} upstream, {accepted} accepted, {approved} approved; token polls: {downstream_polls} \
         downstream, {upstream_polls} upstream, {retries} retries; amplification {amplification:.3}",
        f.bc_count()
    );
    assert_eq!(f.bc_count(), 30, "one bc-authorize per RP request: never retried");
    assert_eq!(f.duplicate_pushes(), 0);
    assert!(retries > 0.0, "some polls were retried");
    assert_eq!(upstream_polls, downstream_polls + retries);
    assert!(amplification <= 1.2, "{amplification}");
    assert_eq!(approved, accepted, "every accepted push was approved despite the 5xx");
    demo.stop().await;
}

#[tokio::test]
async fn not_enrolled_is_remembered_so_the_second_authentication_does_not_call_the_operator() {
    let f = Faulty::start("mcgate", false).await;
    let demo = demo_with(&f, |t| t).await;
    let cache = |o: &'static str| {
        let demo = &demo;
        async move { metric(demo, "mcgate_push_capability_cache_total", &[("outcome", o)]).await }
    };
    let rp = Rp::new(&demo);
    let s = sms_test_msisdn(&demo.gateway, "demo-rp-sms", "movistar", 4).unwrap().digits();
    let n = &movistar_numbers(&demo, 4, 2).into_iter().find(|n| *n != s).unwrap();
    assert_eq!(push(&rp, n).await.error(), "unknown_user_id");
    assert_eq!(f.bc_count(), 1);
    assert_eq!(cache("store").await, 1.0);
    assert_eq!(push(&rp, n).await.error(), "unknown_user_id");
    assert_eq!(f.bc_count(), 1, "answered from the cache");
    assert_eq!(cache("hit").await, 1.0);
    // The SMS client: SMS at once, both times, one operator call.
    let sms = sms_rp(&demo);
    assert_eq!(push(&sms, &s).await.status, 200);
    assert_eq!(demo.smsc.messages().len(), 1, "SMS instead of the push");
    // The second: straight to the SMS decision (here the SMS limits may refuse a second text
    // within 30 s; either way acknowledged), without the operator.
    assert_eq!(push(&sms, &s).await.status, 200);
    assert_eq!(f.bc_count(), 2);
    assert_eq!((cache("store").await, cache("hit").await), (2.0, 2.0));
    // Not a breaker failure: the operator answered.
    assert_eq!(breaker_state(&demo, "movistar").await, 0.0);
    demo.stop().await;
}

#[tokio::test]
async fn over_the_per_operator_in_flight_cap_calls_are_refused_at_once() {
    let f = Faulty::start("mcgate", false).await;
    let demo = start_demo_keeping(&["movistar"], |t| {
        f.edit_config(t, RESILIENCE).replacen(
            "sim_swap_timeout_ms = 2000\n",
            "sim_swap_timeout_ms = 2000\nresilience = { max_in_flight = 2 }\n",
            1,
        )
    })
    .await;
    let rp = Rp::new(&demo);
    f.set(Mode::Hang);
    let numbers = movistar_numbers(&demo, 1, 4);
    let slow = numbers[..2].iter().map(|n| push(&rp, n));
    let hold = futures_util::future::join_all(slow);
    let late = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        futures_util::future::join_all(numbers[2..].iter().map(|n| push(&rp, n))).await
    };
    let (held, refused) = tokio::join!(hold, late);
    for a in &refused {
        assert_503(a);
    }
    assert!(held.iter().all(|a| a.status == 200), "the two in flight ended at the timeout");
    assert_eq!(metric(&demo, "mcgate_operator_shed_total", &[("operator", "movistar")]).await, 2.0);
    assert_eq!(f.bc_count(), 2);
    demo.stop().await;
}
