//! Test support: starts the real demo gateway (three simulated operators, in-memory store) on
//! ephemeral loopback ports with fast timings, and a small RP client for its endpoints.
#![allow(dead_code)]

pub mod browser;
pub mod faults;
pub mod noc;
pub mod noc_plot;
pub mod process;
pub mod redis;
pub mod slow_proxy;
pub mod sms;

use mcgate::demo::{Demo, DemoOptions};
use serde_json::Value;
use std::time::Duration;

/// The demo with test timings: 1 s poll interval, the simulated person answers after 300 ms,
/// the "slow" operator takes 2 s and the gateway gives operators 1 s.
pub async fn start_demo() -> Demo {
    start_demo_with(|t| t).await
}

/// As [`start_demo`], with an extra edit of the configuration text.
pub async fn start_demo_with(edit: impl FnOnce(String) -> String) -> Demo {
    start_demo_keeping(&[], edit).await
}

/// As [`start_demo_with`], leaving the operators in `keep` as the edited configuration has them
/// (no simulator replaces their issuer): for tests against an external operator OP.
pub async fn start_demo_keeping(keep: &[&str], edit: impl FnOnce(String) -> String) -> Demo {
    start_demo_tuned(keep, edit, |_| {}).await
}

/// As [`start_demo_keeping`], with a last edit of the demo options (e.g. the simulated person's
/// `approve_after`).
pub async fn start_demo_tuned(
    keep: &[&str],
    edit: impl FnOnce(String) -> String,
    tune: impl FnOnce(&mut DemoOptions),
) -> Demo {
    let text = mcgate::config::EMBEDDED_ROUTING_TOML
        .replace("interval_s = 5", "interval_s = 1")
        .replace("slow_down_step_s = 5", "slow_down_step_s = 1")
        .replace("call_timeout_ms = 3000", "call_timeout_ms = 1000")
        .replace("level = \"info\"", "level = \"warn\"");
    let mut opts = DemoOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        plain_listen: Some("127.0.0.1:0".parse().unwrap()),
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        config_text: edit(text),
        approve_after: Duration::from_millis(300),
        slow: Duration::from_secs(2),
        sim_interval_s: 1,
        keep_operators: keep.iter().map(|k| k.to_string()).collect(),
    };
    tune(&mut opts);
    mcgate::demo::start(opts).await.expect("demo starts")
}

/// A minimal RP over the plain loopback listener.
#[derive(Clone)]
pub struct Rp {
    pub base: String,
    pub client_id: String,
    pub secret: String,
    pub http: reqwest::Client,
}

/// An answer: status and JSON body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Answer {
    pub fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }
}

impl Rp {
    pub fn new(demo: &Demo) -> Self {
        Self {
            base: demo.plain_url.clone().expect("plain listener"),
            client_id: demo.client_id.clone(),
            secret: demo.client_secret.expose().to_owned(),
            http: reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap(),
        }
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Answer {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .basic_auth(&self.client_id, Some(&self.secret))
            .form(form)
            .send()
            .await
            .expect("request");
        answer(r).await
    }

    pub async fn bc_authorize(&self, login_hint: &str) -> Answer {
        self.post("/bc-authorize", &[("scope", "openid mc_authn"), ("login_hint", login_hint)]).await
    }

    pub async fn token(&self, auth_req_id: &str) -> Answer {
        self.post("/token", &[("grant_type", "urn:openid:params:grant-type:ciba"), ("auth_req_id", auth_req_id)]).await
    }

    /// Polls every `interval` (from the ack) until the answer is not `authorization_pending`;
    /// bounded by `deadline`. Returns the final answer and how many pending answers came first.
    pub async fn poll_until_done(&self, ack: &Answer, deadline: Duration) -> (Answer, u32) {
        let id = ack.body["auth_req_id"].as_str().expect("auth_req_id");
        let interval = Duration::from_secs(ack.body["interval"].as_u64().expect("interval"));
        let end = tokio::time::Instant::now() + deadline;
        let mut pending = 0;
        loop {
            let a = self.token(id).await;
            if a.error() != "authorization_pending" {
                return (a, pending);
            }
            pending += 1;
            assert!(tokio::time::Instant::now() < end, "still pending after {deadline:?}");
            tokio::time::sleep(interval + Duration::from_millis(50)).await;
        }
    }
}

pub async fn answer(r: reqwest::Response) -> Answer {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer { status, body, headers }
}

/// Decodes a JWT's claims without verifying (tests verify separately).
pub fn claims(jwt: &str) -> Value {
    use base64::Engine;
    let part = jwt.split('.').nth(1).expect("JWT payload");
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// A metric's value from the admin listener (sum over series matching every `labels` pair).
pub async fn metric(demo: &Demo, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = reqwest::get(format!("{}/metrics", demo.admin_url)).await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|l| {
            l.starts_with(name)
                && (l.as_bytes().get(name.len()) == Some(&b'{') || l.as_bytes().get(name.len()) == Some(&b' '))
        })
        .filter(|l| labels.iter().all(|(k, v)| l.contains(&format!("{k}=\"{v}\""))))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
