//! The audit trail end to end (issue 8): a push approval, a denial and an SMS fallback through
//! the in-process demo gateway land as hash-chained records that `mcgate audit verify` accepts;
//! an edited, a removed and a swapped record are each caught (by the library and by the real
//! binary), a restarted gateway continues the same chain, and no record carries a full MSISDN,
//! an `auth_req_id`, a token, a client secret or the SMS link.

mod support;

use mcgate::demo::{sms_test_msisdn, test_msisdn, Demo};
use mcgate::telemetry::audit::verify::{verify_file, VerifyError};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::{start_demo_with, Answer, Rp};

async fn demo_auditing(path: &Path) -> Demo {
    let quoted = serde_json::to_string(&path.to_string_lossy()).unwrap();
    start_demo_with(|t| format!("{t}\n[audit]\npath = {quoted}\ninstance = \"test-1\"\nfsync = \"always\"\n")).await
}

async fn sms_text(demo: &Demo, msisdn: &str) -> Option<String> {
    let r = reqwest::get(format!("{}/sms/{msisdn}", demo.smsc.http_url())).await.ok()?;
    let body: Value = r.json().await.ok()?;
    body["text"].as_str().map(str::to_owned)
}

/// Approves the SMS confirm link of `text` (on the plain listener) with its CSRF token.
async fn approve_link(demo: &Demo, text: &str) -> String {
    let start = text.find("/sms/confirm/").expect("confirm link");
    let path: String = text[start..].chars().take_while(|c| !c.is_whitespace()).collect();
    let link = format!("{}{path}", demo.plain_url.as_deref().unwrap());
    let http = reqwest::Client::new();
    let html = http.get(&link).send().await.unwrap().text().await.unwrap();
    let at = html.find("name=\"csrf\" value=\"").expect("csrf field") + "name=\"csrf\" value=\"".len();
    let csrf: String = html[at..].chars().take_while(|c| *c != '"').collect();
    let done = http.post(&link).form(&[("csrf", csrf.as_str()), ("decision", "approve")]).send().await.unwrap();
    assert_eq!(done.status(), 200);
    path.trim_start_matches("/sms/confirm/").to_owned()
}

fn records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn write_lines(path: &Path, lines: &[&str]) -> PathBuf {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(path, text).unwrap();
    path.to_path_buf()
}

fn broken_line(path: &Path) -> u64 {
    match verify_file(path) {
        Err(VerifyError::Broken { line, .. }) => line,
        other => panic!("tampering not caught: {other:?}"),
    }
}

fn cli_verify(path: &Path) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mcgate"))
        .args(["audit", "verify"])
        .arg(path)
        .output()
        .expect("run mcgate");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[tokio::test]
async fn decisions_are_chained_verifiable_tamper_evident_and_free_of_personal_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let demo = demo_auditing(&path).await;
    let rp = Rp::new(&demo);
    let sms_rp = Rp { client_id: demo.sms_client_id.clone(), ..Rp::new(&demo) };
    let approve = test_msisdn(&demo.gateway, "movistar", 1).unwrap().digits();
    let deny = test_msisdn(&demo.gateway, "vodafone", 2).unwrap().digits();
    let fallback = sms_test_msisdn(&demo.gateway, "demo-rp-sms", "movistar", 4).unwrap().digits();

    let mut secrets: Vec<String> = vec![demo.client_secret.expose().to_owned()];
    let mut keep = |a: &Answer| {
        for k in ["auth_req_id", "access_token", "id_token"] {
            if let Some(v) = a.body[k].as_str() {
                secrets.push(v.to_owned());
            }
        }
    };
    let ack = rp.bc_authorize(&format!("MSISDN:{approve}")).await;
    keep(&ack);
    let (tokens, _) = rp.poll_until_done(&ack, Duration::from_secs(20)).await;
    assert_eq!(tokens.status, 200, "{:?}", tokens.body);
    keep(&tokens);
    let ack = rp.bc_authorize(&format!("MSISDN:{deny}")).await;
    keep(&ack);
    assert_eq!(rp.poll_until_done(&ack, Duration::from_secs(20)).await.0.error(), "access_denied");
    let ack = sms_rp.bc_authorize(&format!("MSISDN:{fallback}")).await;
    assert_eq!(ack.status, 200, "{:?}", ack.body);
    keep(&ack);
    let text = sms_text(&demo, &fallback).await.expect("SMS sent");
    let link_secret = approve_link(&demo, &text).await;
    let (tokens, _) = sms_rp.poll_until_done(&ack, Duration::from_secs(20)).await;
    assert_eq!(tokens.status, 200, "{:?}", tokens.body);
    keep(&tokens);
    secrets.push(link_secret);
    demo.gateway.audit.flush().await;
    assert_eq!(support::metric(&demo, "mcgate_audit_dropped_total", &[]).await, 0.0);

    // The chain is intact, and says what happened.
    let summary = verify_file(&path).expect("intact chain");
    let recs = records(&path);
    assert_eq!(summary.records, recs.len() as u64);
    assert_eq!(summary.instances, vec!["test-1".to_string()]);
    let find = |pred: &dyn Fn(&Value) -> bool| recs.iter().filter(|r| pred(r)).count();
    assert_eq!(find(&|r| r["event"] == "started"), 3, "{recs:#?}");
    assert_eq!(find(&|r| r["event"] == "started" && r["route_source"] == "prefix" && r["operator"] == "movistar"), 2);
    assert_eq!(
        find(&|r| r["event"] == "transition" && r["state"] == "approved" && r["acr"] == "2" && r["amr"][0] == "SIM_OK"),
        1,
        "{recs:#?}"
    );
    assert_eq!(find(&|r| r["event"] == "transition" && r["state"] == "denied" && r["operator"] == "vodafone"), 1);
    assert_eq!(
        find(&|r| r["event"] == "fallback" && r["fallback"] == "sent" && r["signal"] == "not_enrolled"),
        1,
        "{recs:#?}"
    );
    assert_eq!(find(&|r| r["event"] == "transition" && r["state"] == "approved" && r["amr"][0] == "sms"), 1);
    assert_eq!(find(&|r| r["event"] == "tokens_issued" && r["delivery"] == "token"), 2);
    assert_eq!(find(&|r| r["event"] == "transition" && r["state"] == "consumed"), 2);
    // One person, one pseudonym; never the number.
    let pseudonyms: Vec<&str> = recs.iter().filter_map(|r| r["msisdn"].as_str()).collect();
    assert!(pseudonyms.iter().all(|p| p.starts_with("p1:") && p.len() == 27), "{pseudonyms:?}");
    let raw = std::fs::read_to_string(&path).unwrap();
    for number in [&approve, &deny, &fallback] {
        assert!(!raw.contains(number.as_str()), "full MSISDN in the audit trail");
        assert!(!raw.contains(&number[number.len() - 9..]), "national number in the audit trail");
    }
    assert!(secrets.len() >= 9);
    for s in &secrets {
        assert!(!raw.contains(s.as_str()), "a token, secret, id or link in the audit trail");
    }
    let (ok, out) = cli_verify(&path);
    assert!(ok && out.contains(&format!("OK: {} records", recs.len())), "{out}");

    // Tampering: edit, remove, swap.
    let lines: Vec<&str> = raw.lines().collect();
    assert!(lines.len() >= 10);
    let denied_at = lines.iter().position(|l| l.contains("\"state\":\"denied\"")).unwrap();
    let mut edited = lines.clone();
    let forged = lines[denied_at].replace("\"state\":\"denied\"", "\"state\":\"approved\"");
    edited[denied_at] = &forged;
    let f = write_lines(&dir.path().join("edited.jsonl"), &edited);
    assert_eq!(broken_line(&f), denied_at as u64 + 1);
    let (ok, out) = cli_verify(&f);
    assert!(!ok && out.contains(&format!("line {}", denied_at + 1)), "{out}");

    let mut removed = lines.clone();
    removed.remove(3);
    let f = write_lines(&dir.path().join("removed.jsonl"), &removed);
    assert_eq!(broken_line(&f), 4);
    let (ok, out) = cli_verify(&f);
    assert!(!ok && out.contains("line 4"), "{out}");

    let mut swapped = lines.clone();
    swapped.swap(5, 6);
    let f = write_lines(&dir.path().join("swapped.jsonl"), &swapped);
    assert_eq!(broken_line(&f), 6);
    let (ok, out) = cli_verify(&f);
    assert!(!ok && out.contains("line 6"), "{out}");
    demo.stop().await;

    // A restarted gateway continues the chain in the same file.
    let before = summary.records;
    let demo = demo_auditing(&path).await;
    let ack = rp_for(&demo).bc_authorize(&format!("MSISDN:{approve}")).await;
    assert_eq!(ack.status, 200);
    demo.gateway.audit.flush().await;
    let after = verify_file(&path).expect("chain continued across the restart");
    assert!(after.records > before, "{} records before, {} after", before, after.records);
    demo.stop().await;
}

fn rp_for(demo: &Demo) -> Rp {
    Rp::new(demo)
}
