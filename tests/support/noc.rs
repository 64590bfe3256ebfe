//! NOC test support (issue 8): a real Prometheus (`/usr/bin/prometheus`, Debian package
//! `prometheus`) started on an ephemeral loopback port with its own temporary storage, scraping
//! a demo gateway's admin listener every second; its HTTP query API; and a bounded synthetic
//! load (approvals, denials, operator errors, SMS fallbacks approved on the confirm page,
//! ping/push clients) that moves every family of the dashboards.

use super::{claims, Rp};
use mcgate::demo::{sms_test_msisdn, test_msisdn, Demo};
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running Prometheus; killed (by its own pid) when dropped.
pub struct Prometheus {
    child: Child,
    pub url: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port (bound then released; Prometheus binds it right after).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Prometheus {
    /// Starts Prometheus scraping `demo`'s admin listener every second (job `mcgate`), with the
    /// alert rules of `rules` loaded; waits (bounded) until it is ready and has scraped once.
    pub async fn start(demo: &Demo, rules: &Path) -> Self {
        if std::process::Command::new("prometheus").arg("--version").output().is_err() {
            panic!("prometheus is not installed: install the Debian package `prometheus` (scripts/test does)");
        }
        let dir = tempfile::tempdir().unwrap();
        let target = demo.admin_url.trim_start_matches("http://").trim_end_matches('/').to_owned();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\n\
             scrape_configs:\n  - job_name: mcgate\n    scrape_interval: 1s\n    static_configs:\n      - targets: [\"{target}\"]\n",
            rules.display()
        );
        std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        for _attempt in 0..3 {
            let port = free_port();
            let child = Command::new("prometheus")
                .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
                .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--log.level=warn")
                .stdout(Stdio::null())
                .stderr(log.try_clone().unwrap())
                .spawn()
                .expect("prometheus starts");
            let p = Prometheus {
                child,
                url: format!("http://127.0.0.1:{port}"),
                http: reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap(),
                _dir: tempfile::tempdir().unwrap(),
            };
            let mut p = p;
            if p.wait_ready().await {
                p._dir = dir;
                p.wait_for("up{job=\"mcgate\"} == 1", |v| !v.is_empty()).await;
                return p;
            }
            // The port was taken meanwhile, or Prometheus died: try another.
        }
        let log = std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();
        panic!("prometheus did not become ready:\n{log}");
    }

    async fn wait_ready(&mut self) -> bool {
        for _ in 0..150 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok(r) = self.http.get(format!("{}/-/ready", self.url)).send().await {
                if r.status() == 200 {
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// `GET path` on the HTTP API; the JSON answer.
    pub async fn api(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let r = self.http.get(format!("{}{path}", self.url)).query(params).send().await.expect("prometheus answers");
        r.json().await.expect("prometheus JSON")
    }

    /// An instant query: `Ok(result array)` or `Err(error text)`.
    pub async fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let v = self.api("/api/v1/query", &[("query", expr)]).await;
        if v["status"] != "success" {
            return Err(format!("{}: {}", v["errorType"], v["error"]));
        }
        match &v["data"]["result"] {
            Value::Array(a) => Ok(a.clone()),
            // A scalar or string result: one value.
            other => Ok(vec![serde_json::json!({"metric": {}, "value": other})]),
        }
    }

    /// Waits (bounded, 30 s) until `expr`'s result satisfies `ok`; returns it.
    pub async fn wait_for(&self, expr: &str, ok: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        for _ in 0..300 {
            if let Ok(r) = self.query(expr).await {
                if ok(&r) {
                    return r;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("prometheus: `{expr}` never satisfied the condition");
    }
}

/// The numeric value of one instant-query sample (`NaN` when unparsable).
pub fn sample_value(s: &Value) -> f64 {
    s["value"][1].as_str().and_then(|v| v.parse().ok()).unwrap_or(f64::NAN)
}

/// The sum of an instant query's sample values.
pub fn sum(result: &[Value]) -> f64 {
    result.iter().map(sample_value).sum()
}

fn hint(demo: &Demo, operator: &str, digit: u8) -> String {
    format!("MSISDN:{}", test_msisdn(&demo.gateway, operator, digit).expect("test number").digits())
}

async fn bc(rp: &Rp, login_hint: &str, extra: &[(&str, &str)]) -> super::Answer {
    let mut form = vec![("scope", "openid mc_authn"), ("login_hint", login_hint)];
    form.extend_from_slice(extra);
    rp.post("/bc-authorize", &form).await
}

/// Opens an SMS confirm link (rewritten to the plain listener) and presses Approve.
async fn approve_sms_link(demo: &Demo, text: &str) {
    let start = text.find(&format!("{}/sms/confirm/", demo.public_url)).expect("confirm link in the SMS");
    let link: String = text[start..].chars().take_while(|c| !c.is_whitespace()).collect();
    let link = link.replace(&demo.public_url, demo.plain_url.as_deref().unwrap());
    let http = reqwest::Client::new();
    let html = http.get(&link).send().await.unwrap().text().await.unwrap();
    let at = html.find("name=\"csrf\" value=\"").expect("csrf field") + "name=\"csrf\" value=\"".len();
    let csrf: String = html[at..].chars().take_while(|c| *c != '"').collect();
    let done = http.post(&link).form(&[("csrf", csrf.as_str()), ("decision", "approve")]).send().await.unwrap();
    assert_eq!(done.status(), 200, "SMS approval accepted");
}

/// What one round of [`drive_load`] completed, for the caller's checks.
#[derive(Debug, Default, Clone, Copy)]
pub struct Driven {
    /// Authentications approved through the push.
    pub push_approved: u32,
    /// Authentications denied.
    pub denied: u32,
    /// Authentications approved through the SMS link.
    pub sms_approved: u32,
}

/// One bounded round of synthetic load against `demo` (about 5 s of wall time): for each
/// simulated CIBA operator an approval and a denial by `demo-rp`, an approval by `demo-rp-sms`
/// through the push, an unknown subscriber and an operator 500 (errors; for `demo-rp-sms` an
/// SMS fallback approved on the confirm page), a ping and a push client approval, and a
/// metadata/JWKS fetch.
pub async fn drive_load(demo: &Demo) -> Driven {
    let mut driven = drive_push_load(demo).await;
    let sms = Rp { client_id: demo.sms_client_id.clone(), ..Rp::new(demo) };
    // SMS fallback: not enrolled at movistar → SMS link, approved on the confirm page.
    for last in [4u8, 5] {
        let msisdn = sms_test_msisdn(&demo.gateway, &demo.sms_client_id, "movistar", last).unwrap().digits();
        let ack = bc(&sms, &format!("MSISDN:{msisdn}"), &[]).await;
        assert_eq!(ack.status, 200, "SMS fallback …{last}: {:?}", ack.body);
        let text = demo
            .smsc
            .messages()
            .iter()
            .rev()
            .find(|m| m.to.contains(&msisdn))
            .map(|m| m.text.clone())
            .expect("an SMS to the number");
        approve_sms_link(demo, &text).await;
        let (done, _) = sms.poll_until_done(&ack, Duration::from_secs(20)).await;
        assert_eq!(done.status, 200, "{:?}", done.body);
        driven.sms_approved += 1;
    }
    driven
}

/// The push-only part of [`drive_load`] (repeatable: no SMS limit is consumed).
pub async fn drive_push_load(demo: &Demo) -> Driven {
    let rp = Rp::new(demo);
    let sms = Rp { client_id: demo.sms_client_id.clone(), ..Rp::new(demo) };
    let mut driven = Driven::default();
    let ping = Rp { client_id: "demo-rp-ping".into(), ..Rp::new(demo) };
    let push = Rp { client_id: "demo-rp-push".into(), ..Rp::new(demo) };
    let http = reqwest::Client::new();
    let plain = demo.plain_url.clone().unwrap();
    for path in ["/.well-known/openid-configuration", "/jwks"] {
        let _ = http.get(format!("{plain}{path}")).send().await;
    }
    for op in ["movistar", "vodafone", "orange"] {
        let approve = bc(&rp, &hint(demo, op, 1), &[]).await;
        let deny = bc(&rp, &hint(demo, op, 2), &[]).await;
        let sms_push = bc(&sms, &hint(demo, op, 1), &[]).await;
        for (a, who) in [(&approve, &rp), (&deny, &rp), (&sms_push, &sms)] {
            assert_eq!(a.status, 200, "{op}: {:?}", a.body);
            let (done, _) = who.poll_until_done(a, Duration::from_secs(20)).await;
            if done.status == 200 {
                assert!(claims(done.body["id_token"].as_str().unwrap())["acr"].is_string());
                driven.push_approved += 1;
            } else {
                assert_eq!(done.error(), "access_denied", "{op}: {:?}", done.body);
                driven.denied += 1;
            }
        }
        // Errors: unknown subscriber (400 unknown_user_id), operator 500 (503 or failed).
        let _ = bc(&rp, &hint(demo, op, 4), &[]).await;
        let _ = bc(&rp, &hint(demo, op, 5), &[]).await;
    }
    // Ping and push clients: the RP sink receives one notification each (bounded wait).
    let before = demo.rp_sink.received().len();
    for client in [&ping, &push] {
        let a = bc(client, &hint(demo, "movistar", 1), &[("client_notification_token", "noc-test-notify-token-0123")])
            .await;
        assert_eq!(a.status, 200, "{}: {:?}", client.client_id, a.body);
    }
    for _ in 0..100 {
        if demo.rp_sink.received().len() >= before + 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(demo.rp_sink.received().len() >= before + 2, "ping and push notifications delivered");
    driven.push_approved += 2;
    driven
}
