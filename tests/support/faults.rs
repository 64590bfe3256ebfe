//! Staged operator faults (issue 7): a simulated operator this test owns, reached through an
//! HTTP proxy on 127.0.0.1:0 that the test switches between forwarding and a fault — HTTP 500,
//! 5xx on a share of requests, invalid JSON, HTML with 200, a truncated body, silence past the
//! gateway's timeout — and that counts the requests it gets per path (`/bc-authorize`,
//! `/token`) and the `login_hint`s pushed. The gateway (the demo) reaches the operator's
//! `bc-authorize` and `token` endpoints through the proxy (pinned in `routing.toml`); metadata,
//! JWKS and SIM swap go straight to the simulator.
#![allow(dead_code)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use mcgate::config::Secret;
use mcgate::demo::Demo;
use mcgate::sim::operator::{SimConfig, SimNotification, SimOperator};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the proxy does with the next requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// Forward to the simulator.
    Forward = 0,
    /// Answer 500 with an OAuth `server_error` body.
    Http500 = 1,
    /// 200 with `{"auth_req_id":` (not JSON).
    InvalidJson = 2,
    /// 200 with an HTML page.
    Html200 = 3,
    /// 200 announcing more bytes than sent, then the connection closes.
    Truncated = 4,
    /// Never answer (the gateway's call timeout ends it).
    Hang = 5,
    /// Every third request (1st, 4th, 7th, … per path) 500, the others forwarded: ≈ 33 %.
    ThirdFails = 6,
}

/// Requests seen, per path.
#[derive(Default)]
pub struct Counts {
    pub bc_authorize: AtomicU64,
    pub token: AtomicU64,
    /// `bc-authorize` requests per `login_hint`.
    pub pushes: Mutex<HashMap<String, u32>>,
}

/// The simulator and the proxy in front of it.
pub struct Faulty {
    pub sim: Arc<SimOperator>,
    pub proxy_url: String,
    pub secret: Secret,
    mode: Arc<AtomicU8>,
    pub counts: Arc<Counts>,
    _shutdown: tokio::sync::watch::Sender<bool>,
}

impl Faulty {
    /// Sim (client id `sim_client_id`, the gateway's secret) and proxy; `swap_credentials`: the
    /// proxy authenticates as `sim_client_id` instead of the gateway's `mcgate` (so the sim
    /// answers, and signs ID tokens for, another client).
    pub async fn start(sim_client_id: &str, swap_credentials: bool) -> Self {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let secret = Secret::new(mcgate::clock::random_token(32));
        let auth_override = swap_credentials.then(|| basic(sim_client_id, secret.expose()));
        let cfg = SimConfig {
            operator_id: "movistar".into(),
            client_id: sim_client_id.into(),
            client_secret: secret.clone(),
            approve_after: Duration::from_millis(300),
            slow: Duration::from_secs(2),
            interval_s: 1,
            notification: SimNotification::Poll,
        };
        let sim = SimOperator::start(cfg, ([127, 0, 0, 1], 0).into(), rx).await.expect("sim starts");
        let mode = Arc::new(AtomicU8::new(Mode::Forward as u8));
        let counts = Arc::new(Counts::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy_url = format!("http://{}", listener.local_addr().unwrap());
        let upstream = sim.issuer().to_owned();
        let (m, c) = (mode.clone(), counts.clone());
        let http = reqwest::Client::new();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (m, c, upstream, http, auth) =
                    (m.clone(), c.clone(), upstream.clone(), http.clone(), auth_override.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let (m, c, upstream, http, auth) =
                            (m.clone(), c.clone(), upstream.clone(), http.clone(), auth.clone());
                        async move { Ok::<_, std::convert::Infallible>(handle(req, &m, &c, &upstream, &http, auth).await) }
                    });
                    let _ =
                        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                });
            }
        });
        Self { sim, proxy_url, secret, mode, counts, _shutdown: tx }
    }

    pub fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }

    pub fn bc_count(&self) -> u64 {
        self.counts.bc_authorize.load(Ordering::SeqCst)
    }

    pub fn token_count(&self) -> u64 {
        self.counts.token.load(Ordering::SeqCst)
    }

    /// Login hints pushed more than once.
    pub fn duplicate_pushes(&self) -> usize {
        self.counts.pushes.lock().unwrap().values().filter(|n| **n > 1).count()
    }

    /// The demo configuration's movistar entry pointed at this sim (metadata, JWKS) and proxy
    /// (`bc-authorize`, `token`), with `resilience` (TOML lines) as the `[resilience]` section.
    pub fn edit_config(&self, text: String, resilience: &str) -> String {
        let old = "issuer = \"http://127.0.0.1:9401\"\nclient_id = \"mcgate\"\nclient_secret_env = \"MCGATE_MOVISTAR_SECRET\"\n";
        assert!(text.contains(old), "movistar entry as expected");
        let new = format!(
            "issuer = \"{}\"\nbackchannel_authentication_endpoint = \"{p}/bc-authorize\"\ntoken_endpoint = \"{p}/token\"\n\
             client_id = \"mcgate\"\nclient_secret = \"{}\"\n",
            self.sim.issuer(),
            self.secret.expose(),
            p = self.proxy_url,
        );
        format!("{}\n[resilience]\n{resilience}\n", text.replacen(old, &new, 1))
    }
}

async fn handle(
    req: hyper::Request<hyper::body::Incoming>,
    mode: &AtomicU8,
    counts: &Counts,
    upstream: &str,
    http: &reqwest::Client,
    auth: Option<String>,
) -> hyper::Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let n = match path.as_str() {
        "/bc-authorize" => {
            let hint = form_urlencoded::parse(&body).find(|(k, _)| k == "login_hint").map(|(_, v)| v.into_owned());
            *counts.pushes.lock().unwrap().entry(hint.unwrap_or_default()).or_default() += 1;
            counts.bc_authorize.fetch_add(1, Ordering::SeqCst)
        }
        "/token" => counts.token.fetch_add(1, Ordering::SeqCst),
        _ => 0,
    };
    let reply = |status: u16, ctype: &str, body: &'static str| {
        hyper::Response::builder()
            .status(status)
            .header("content-type", ctype)
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap()
    };
    let server_error = || reply(500, "application/json", r#"{"error":"server_error"}"#);
    match mode.load(Ordering::SeqCst) {
        1 => return server_error(),
        2 => return reply(200, "application/json", r#"{"auth_req_id":"#),
        3 => return reply(200, "text/html", "<html><body>Service page</body></html>"),
        4 => {
            let mut r = reply(200, "application/json", r#"{"auth_req_id":"abc","#);
            r.headers_mut().insert("content-length", hyper::header::HeaderValue::from_static("4000"));
            return r;
        }
        5 => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            return server_error();
        }
        6 if n % 3 == 0 => return server_error(),
        _ => {}
    }
    let mut fwd = http.request(parts.method.clone(), format!("{upstream}{path}")).body(body.to_vec());
    for (k, v) in parts.headers.iter() {
        if k == hyper::header::HOST || k == hyper::header::CONTENT_LENGTH {
            continue;
        }
        if k == hyper::header::AUTHORIZATION {
            if let Some(a) = &auth {
                fwd = fwd.header(k.as_str(), a.as_str());
                continue;
            }
        }
        fwd = fwd.header(k.as_str(), v.as_bytes());
    }
    match fwd.send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            let ctype = r.headers().get("content-type").cloned();
            let bytes = r.bytes().await.unwrap_or_default();
            let mut out = hyper::Response::builder().status(status);
            if let Some(c) = ctype {
                out = out.header("content-type", c);
            }
            out.body(Full::new(bytes)).unwrap()
        }
        Err(_) => reply(502, "text/plain", "bad gateway"),
    }
}

/// `Basic` credentials (tests: plain values, no reserved characters).
pub fn basic(client_id: &str, secret: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{client_id}:{secret}")))
}

/// A metric's value (see `support::metric`).
pub async fn breaker_state(demo: &Demo, operator: &str) -> f64 {
    super::metric(demo, "mcgate_operator_breaker_state", &[("operator", operator)]).await
}

/// `count` distinct movistar numbers (routed by prefix) ending in `last`.
pub fn movistar_numbers(demo: &Demo, last: u8, count: usize) -> Vec<String> {
    let first = mcgate::demo::test_msisdn(&demo.gateway, "movistar", last).expect("test number").digits();
    let base: u64 = first.parse().unwrap();
    let op = demo.gateway.operator_index("movistar").unwrap();
    let mut out = Vec::new();
    let mut k = 0u64;
    while out.len() < count && k < 100_000 {
        let n = base + k * 10;
        k += 1;
        let Ok(m) = mcgate::msisdn::Msisdn::from_digits(n) else { continue };
        if demo.gateway.directory.route(&m).is_some_and(|r| r.operator == op) {
            out.push(m.digits());
        }
    }
    assert_eq!(out.len(), count, "enough movistar numbers");
    out
}
