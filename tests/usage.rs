//! Usage records end to end (issue 8): pushes accepted by operators and SMS accepted by the
//! SMSC are counted per client, operator and UTC day in the store; `GET /usage.csv` on the admin
//! listener exports them with their configured costs, refuses bad queries with a 400 and an
//! OAuth-style JSON error, and the usage metrics agree with the CSV.

mod support;

use mcgate::demo::{sms_test_msisdn, test_msisdn, Demo};
use mcgate::telemetry::usage::day_of;
use std::collections::BTreeMap;
use std::time::Duration;
use support::{metric, start_demo, Rp};

async fn sms_text(demo: &Demo, msisdn: &str) -> Option<String> {
    let r = reqwest::get(format!("{}/sms/{msisdn}", demo.smsc.http_url())).await.ok()?;
    let body: serde_json::Value = r.json().await.ok()?;
    body["text"].as_str().map(str::to_owned)
}

async fn get(demo: &Demo, query: &str) -> (u16, String, String) {
    let r = reqwest::get(format!("{}/usage.csv{query}", demo.admin_url)).await.unwrap();
    let status = r.status().as_u16();
    let ctype = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (status, ctype, r.text().await.unwrap())
}

/// `(client, operator) → (pushes, sms, cost)` summed over the CSV's days.
fn totals(csv: &str) -> BTreeMap<(String, String), (u64, u64, String)> {
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("date,client_id,operator,pushes,sms,currency,push_unit_cost,sms_unit_cost,cost"),
        "header"
    );
    let mut out = BTreeMap::new();
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        assert_eq!(f.len(), 9, "{l}");
        assert_eq!(f[5], "EUR");
        let e = out.entry((f[1].to_owned(), f[2].to_owned())).or_insert((0, 0, String::new()));
        e.0 += f[3].parse::<u64>().unwrap();
        e.1 += f[4].parse::<u64>().unwrap();
        e.2 = f[8].to_owned();
    }
    out
}

#[tokio::test]
async fn pushes_and_sms_are_counted_per_client_exported_as_csv_and_match_the_metrics() {
    let demo = start_demo().await;
    let rp = Rp::new(&demo);
    let sms_rp = Rp { client_id: demo.sms_client_id.clone(), ..Rp::new(&demo) };
    let n = |op: &str, d: u8| format!("MSISDN:{}", test_msisdn(&demo.gateway, op, d).unwrap().digits());
    // demo-rp: two pushes at movistar (approved, denied), one at orange; an unknown subscriber
    // (the operator refused: nothing sent) is not a push.
    for hint in [n("movistar", 1), n("movistar", 2), n("orange", 1)] {
        let ack = rp.bc_authorize(&hint).await;
        assert_eq!(ack.status, 200, "{:?}", ack.body);
        rp.poll_until_done(&ack, Duration::from_secs(20)).await;
    }
    assert_eq!(rp.bc_authorize(&n("movistar", 4)).await.error(), "unknown_user_id");
    // demo-rp-sms: not enrolled → one SMS, no push.
    let fallback = sms_test_msisdn(&demo.gateway, "demo-rp-sms", "movistar", 4).unwrap().digits();
    let ack = sms_rp.bc_authorize(&format!("MSISDN:{fallback}")).await;
    assert_eq!(ack.status, 200, "{:?}", ack.body);
    assert!(sms_text(&demo, &fallback).await.is_some(), "SMS sent");

    let today = day_of(demo.gateway.clock.now_ms());
    let (from, to) = (today.previous_day().unwrap(), today.next_day().unwrap());
    let (status, ctype, csv) = get(&demo, &format!("?from={from}&to={to}")).await;
    assert_eq!((status, ctype.as_str()), (200, "text/csv; charset=utf-8"), "{csv}");
    let t = totals(&csv);
    let key = |c: &str, o: &str| (c.to_owned(), o.to_owned());
    assert_eq!(t.len(), 3, "{csv}");
    // movistar at the default 0.002 per push, orange at its own 0.003, SMS at 0.05.
    assert_eq!(t[&key("demo-rp", "movistar")], (2, 0, "0.004000".into()), "{csv}");
    assert_eq!(t[&key("demo-rp", "orange")], (1, 0, "0.003000".into()), "{csv}");
    assert_eq!(t[&key("demo-rp-sms", "movistar")], (0, 1, "0.050000".into()), "{csv}");

    // One client only.
    let (status, _, only) = get(&demo, &format!("?from={today}&to={today}&client=demo-rp-sms")).await;
    assert_eq!(status, 200);
    assert_eq!(totals(&only).keys().collect::<Vec<_>>(), vec![&key("demo-rp-sms", "movistar")], "{only}");

    // The metrics say the same.
    assert_eq!(metric(&demo, "mcgate_usage_pushes_total", &[("client", "demo-rp")]).await, 3.0);
    assert_eq!(metric(&demo, "mcgate_usage_pushes_total", &[("client", "demo-rp-sms")]).await, 0.0);
    assert_eq!(metric(&demo, "mcgate_sms_sent_total", &[("client", "demo-rp-sms")]).await, 1.0);
    assert_eq!(metric(&demo, "mcgate_sms_sent_total", &[("client", "demo-rp")]).await, 0.0);
    assert!((metric(&demo, "mcgate_sms_spend_total", &[("client", "demo-rp-sms")]).await - 0.05).abs() < 1e-9);
    assert_eq!(metric(&demo, "mcgate_sms_daily_budget", &[("client", "demo-rp-sms")]).await, 1000.0);
    assert_eq!(metric(&demo, "mcgate_sms_daily_budget", &[("client", "demo-rp")]).await, 0.0, "no SMS fallback");

    // Another instance sharing the store adds to the same figures.
    let other = mcgate::telemetry::usage::Usage::new(
        &mcgate::config::UsageConfig::default(),
        vec!["demo-rp".into()],
        vec!["movistar".into()],
        demo.gateway.store.clone(),
        demo.gateway.clock.clone(),
        mcgate::telemetry::metrics::UsageMetrics::register(&prometheus::Registry::new(), &[]).unwrap(),
    );
    other.push_accepted("demo-rp", "movistar").await;
    let (_, _, csv) = get(&demo, &format!("?from={from}&to={to}")).await;
    assert_eq!(totals(&csv)[&key("demo-rp", "movistar")].0, 3, "{csv}");

    // Bad queries: 400 with an OAuth-style JSON error naming the problem.
    let far = today.checked_add(time::Duration::days(92)).unwrap();
    for (q, says) in [
        (String::new(), "required"),
        (format!("?from={today}"), "required"),
        (format!("?from=2026-13-01&to={today}"), "YYYY-MM-DD"),
        (format!("?from={today}&to=tomorrow"), "YYYY-MM-DD"),
        (format!("?from={to}&to={from}"), "before"),
        (format!("?from={today}&to={far}"), "92 days"),
        (format!("?from={today}&to={today}&client=nobody"), "client"),
        (format!("?from={today}&to={today}&format=xml"), "unknown parameter"),
    ] {
        let (status, ctype, body) = get(&demo, &q).await;
        assert_eq!((status, ctype.as_str()), (400, "application/json"), "{q}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"], "invalid_request", "{q}");
        assert!(v["error_description"].as_str().unwrap().contains(says), "{q}: {body}");
    }
    demo.stop().await;
}
