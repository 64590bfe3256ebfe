//! Metric names and label sets (issue 8), read from a running demo gateway's `/metrics` after a
//! small load: every family is `mcgate_`-prefixed, counters end in `_total`, histograms are in
//! seconds, label names come from an allow-list (never `msisdn`, `token`, `secret`, `sub`,
//! `login_hint`), no label value holds a run of 8 or more digits (an MSISDN), every family has
//! a bounded number of series, and the families are all there. Also: the
//! authentication counters move by client, operator, channel and outcome.

mod support;

use mcgate::demo::test_msisdn;
use std::collections::{BTreeMap, BTreeSet};
use support::noc::drive_load;
use support::{metric, start_demo, Rp};

/// Label names a metric may carry (closed sets only). `to` and `op` belong to metrics other
/// helpers add (breaker transitions, store operations).
const ALLOWED_LABELS: &[&str] = &[
    "endpoint", "outcome", "operator", "call", "kind", "state", "source", "mode", "reason", "client", "channel",
    "limit", "version", "revision", "le", "to", "op",
];
const FORBIDDEN_LABELS: &[&str] = &["msisdn", "token", "secret", "sub", "login_hint"];

/// Families the issue asks for that this branch defines (others arrive from parallel work).
const REQUIRED: &[&str] = &[
    "mcgate_http_requests_total",
    "mcgate_http_request_duration_seconds",
    "mcgate_authentications_started_total",
    "mcgate_authentications_completed_total",
    "mcgate_fallbacks_total",
    "mcgate_sms_fallbacks_total",
    "mcgate_operator_request_duration_seconds",
    "mcgate_operator_errors_total",
    "mcgate_sms_refusals_total",
    "mcgate_transactions",
    "mcgate_notifications_total",
    "mcgate_rate_limited_total",
    "mcgate_build_info",
];

/// One exposition sample: family name, labels, value.
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
}

/// Parses the text exposition: `# TYPE` lines and samples (label values unescaped enough for
/// these checks: no value here contains `",`).
fn parse(text: &str) -> (BTreeMap<String, String>, Vec<Sample>) {
    let mut types = BTreeMap::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            types.insert(name.to_owned(), kind.to_owned());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, _value) = line.rsplit_once(' ').expect("sample value");
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => {
                let l = l.strip_suffix('}').expect("closing brace");
                let labels = l
                    .split("\",")
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        let (k, v) = p.split_once("=\"").expect("label=\"value\"");
                        (k.to_owned(), v.trim_end_matches('"').to_owned())
                    })
                    .collect();
                (n.to_owned(), labels)
            }
            None => (series.to_owned(), Vec::new()),
        };
        samples.push(Sample { name, labels });
    }
    (types, samples)
}

/// The family a sample belongs to (histogram suffixes stripped).
fn family<'a>(types: &BTreeMap<String, String>, name: &'a str) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if types.get(base).is_some_and(|k| k == "histogram") {
                return base;
            }
        }
    }
    name
}

fn longest_digit_run(s: &str) -> usize {
    s.split(|c: char| !c.is_ascii_digit()).map(str::len).max().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metric_names_and_labels_follow_the_conventions() {
    let demo = start_demo().await;
    drive_load(&demo).await;
    let text = reqwest::get(format!("{}/metrics", demo.admin_url)).await.unwrap().text().await.unwrap();
    let (types, samples) = parse(&text);
    assert!(samples.len() > 100, "a realistic exposition: {} samples", samples.len());

    let mut problems = Vec::new();
    for (name, kind) in &types {
        if !name.starts_with("mcgate_") {
            problems.push(format!("{name}: not mcgate_-prefixed"));
        }
        match kind.as_str() {
            "counter" if !name.ends_with("_total") => problems.push(format!("{name}: counter without _total")),
            "gauge" if name.ends_with("_total") => problems.push(format!("{name}: gauge named like a counter")),
            "histogram" if !name.ends_with("_seconds") => problems.push(format!("{name}: histogram not in seconds")),
            "counter" | "gauge" | "histogram" => {}
            other => problems.push(format!("{name}: unexpected type {other}")),
        }
    }
    let mut series_per_family: BTreeMap<&str, usize> = BTreeMap::new();
    let mut label_names = BTreeSet::new();
    for s in &samples {
        let fam = family(&types, &s.name);
        if !types.contains_key(fam) {
            problems.push(format!("{}: sample without a # TYPE", s.name));
        }
        *series_per_family.entry(fam).or_default() += 1;
        for (k, v) in &s.labels {
            label_names.insert(k.clone());
            if FORBIDDEN_LABELS.iter().any(|f| k.contains(f)) {
                problems.push(format!("{}: forbidden label {k}", s.name));
            } else if !ALLOWED_LABELS.contains(&k.as_str()) {
                problems.push(format!("{}: label {k} not in the allow-list", s.name));
            }
            if longest_digit_run(v) >= 8 {
                problems.push(format!("{}: label {k}=\"{v}\" looks like a number (MSISDN?)", s.name));
            }
        }
    }
    for (fam, n) in &series_per_family {
        // Closed label sets: a few thousand at most with the demo's 9 clients and 4 operators.
        if *n > 3000 {
            problems.push(format!("{fam}: {n} series (unbounded labels?)"));
        }
    }
    for r in REQUIRED {
        if !types.contains_key(*r) {
            problems.push(format!("{r}: missing"));
        }
    }
    assert!(problems.is_empty(), "metric convention problems:\n{}", problems.join("\n"));
    // The test numbers used above never appear anywhere in the exposition.
    let number = test_msisdn(&demo.gateway, "movistar", 1).unwrap().digits();
    assert!(!text.contains(&number), "an MSISDN leaked into /metrics");
    assert!(label_names.contains("client") && label_names.contains("channel"), "{label_names:?}");
    demo.stop().await;
}

#[tokio::test]
async fn authentications_are_counted_by_client_operator_channel_and_outcome() {
    let demo = start_demo().await;
    let started = |client: &str, channel: &str| {
        let (c, ch) = (client.to_owned(), channel.to_owned());
        let demo = &demo;
        async move {
            metric(
                demo,
                "mcgate_authentications_started_total",
                &[("client", &c), ("operator", "movistar"), ("channel", &ch)],
            )
            .await
        }
    };
    // Every combination exists before any traffic (dashboards show 0, not "no data").
    let text = reqwest::get(format!("{}/metrics", demo.admin_url)).await.unwrap().text().await.unwrap();
    for needle in [
        "mcgate_authentications_started_total{channel=\"sms\",client=\"demo-rp-sms\",operator=\"orange\"} 0",
        "mcgate_authentications_completed_total{channel=\"push\",client=\"demo-rp\",operator=\"vodafone\",outcome=\"expired\"} 0",
        "mcgate_fallbacks_total{operator=\"movistar\",reason=\"not_enrolled\"} 0",
        "mcgate_rate_limited_total{limit=\"client_day\"} 0",
    ] {
        assert!(text.contains(needle), "missing at start: {needle}");
    }
    assert_eq!(started("demo-rp", "push").await, 0.0);

    let rp = Rp::new(&demo);
    let hint = |d: u8| format!("MSISDN:{}", test_msisdn(&demo.gateway, "movistar", d).unwrap().digits());
    for d in [1u8, 2] {
        let ack = rp.bc_authorize(&hint(d)).await;
        assert_eq!(ack.status, 200, "{:?}", ack.body);
        rp.poll_until_done(&ack, std::time::Duration::from_secs(20)).await;
    }
    assert_eq!(started("demo-rp", "push").await, 2.0);
    let completed = |outcome: &'static str, client: &'static str, channel: &'static str| {
        let demo = &demo;
        async move {
            metric(
                demo,
                "mcgate_authentications_completed_total",
                &[("client", client), ("operator", "movistar"), ("channel", channel), ("outcome", outcome)],
            )
            .await
        }
    };
    assert_eq!(completed("approved", "demo-rp", "push").await, 1.0);
    assert_eq!(completed("denied", "demo-rp", "push").await, 1.0);

    // The SMS fallback (not enrolled → SMS link approved): started on push, completed on SMS,
    // one fallback for the not_enrolled reason.
    let before_sms = completed("approved", "demo-rp-sms", "sms").await;
    let driven = drive_load(&demo).await;
    assert_eq!(driven.sms_approved, 2);
    assert_eq!(completed("approved", "demo-rp-sms", "sms").await - before_sms, 2.0);
    assert!(
        metric(&demo, "mcgate_fallbacks_total", &[("operator", "movistar"), ("reason", "not_enrolled")]).await >= 1.0
    );
    demo.stop().await;
}
