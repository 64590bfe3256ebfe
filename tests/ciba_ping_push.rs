//! CIBA ping and push end to end: the demo gateway and its simulated operators, and an RP
//! notification endpoint served by this test on 127.0.0.1:0 (hyper) that records every POST and
//! can be scripted to fail. Also the operator side: callbacks to `/op/{operator}/notify`
//! (bearer, transaction match, duplicates) and the driver's bound (503 + `Retry-After`).

mod support;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use mcgate::demo::{test_msisdn, Demo};
use parking_lot::Mutex;
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::{claims, metric, start_demo_with, Rp};

const WAIT: Duration = Duration::from_secs(10);
const NOTIFY_TOKEN: &str = "rp-notify-token-0123456789";

/// One POST the RP endpoint received.
#[derive(Debug, Clone)]
struct Received {
    authorization: Option<String>,
    body: Value,
}

/// The RP's notification endpoint: answers 500 to the first `fail_first` POSTs, then 204.
struct Sink {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Sink {
    async fn start(fail_first: usize) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/ciba", listener.local_addr().unwrap());
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let seen = Arc::new(AtomicUsize::new(0));
        let got2 = got.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (got, seen) = (got2.clone(), seen.clone());
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let (got, seen) = (got.clone(), seen.clone());
                    async move {
                        let authorization =
                            req.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
                        let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                        let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        got.lock().push(Received { authorization, body });
                        let n = seen.fetch_add(1, Ordering::SeqCst);
                        let status = if n < fail_first { 500 } else { 204 };
                        Ok::<_, std::convert::Infallible>(
                            hyper::Response::builder().status(status).body(Full::new(Bytes::new())).unwrap(),
                        )
                    }
                });
                tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc));
            }
        });
        Self { url, got }
    }

    fn received(&self) -> Vec<Received> {
        self.got.lock().clone()
    }

    /// Waits (bounded) until at least `n` POSTs arrived.
    async fn wait_for(&self, n: usize) -> Vec<Received> {
        let end = tokio::time::Instant::now() + WAIT;
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(tokio::time::Instant::now() < end, "only {} of {n} notifications after {WAIT:?}", got.len());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The demo with two extra clients, `demo-rp-tping` and `demo-rp-tpush`, notified at `sink`,
/// fast retries, and `extra` edits.
async fn demo_for(sink: &Sink, extra: impl FnOnce(String) -> String) -> Demo {
    let url = sink.url.clone();
    start_demo_with(move |text| {
        let mut t = text
            .replace("initial_backoff_ms = 1000", "initial_backoff_ms = 100")
            .replace("max_backoff_ms = 30000", "max_backoff_ms = 400");
        for mode in ["ping", "push"] {
            t.push_str(&format!(
                "\n[[clients]]\nclient_id = \"demo-rp-t{mode}\"\nclient_secret_sha256 = [\"{}\"]\n\
                 backchannel_token_delivery_mode = \"{mode}\"\nbackchannel_client_notification_endpoint = \"{url}\"\n\
                 sector_identifier = \"rp.example.org\"\n",
                "0".repeat(64)
            ));
        }
        extra(t)
    })
    .await
}

fn rp(demo: &Demo, client_id: &str) -> Rp {
    let mut rp = Rp::new(demo);
    rp.client_id = client_id.into();
    rp
}

fn rp_for(demo: &Demo, client_id: &str) -> Rp {
    rp(demo, client_id)
}

fn hint(demo: &Demo, operator: &str, digit: u8) -> String {
    format!("MSISDN:{}", test_msisdn(&demo.gateway, operator, digit).expect("test number").digits())
}

async fn start(rp: &Rp, login_hint: &str) -> String {
    let ack = rp
        .post(
            "/bc-authorize",
            &[("scope", "openid mc_authn"), ("login_hint", login_hint), ("client_notification_token", NOTIFY_TOKEN)],
        )
        .await;
    assert_eq!(ack.status, 200, "{:?}", ack.body);
    ack.body["auth_req_id"].as_str().unwrap().to_owned()
}

async fn stored(demo: &Demo, id: &str) -> mcgate::flow::Transaction {
    demo.gateway.store.get(id).await.unwrap().expect("transaction").value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_client_is_pinged_once_then_collects_tokens_at_the_token_endpoint() {
    let sink = Sink::start(0).await;
    let demo = demo_for(&sink, |t| t).await;
    let rp = rp(&demo, "demo-rp-tping");
    let id = start(&rp, &hint(&demo, "movistar", 1)).await;
    let got = sink.wait_for(1).await;
    assert_eq!(got[0].authorization.as_deref(), Some(format!("Bearer {NOTIFY_TOKEN}").as_str()));
    assert_eq!(got[0].body, serde_json::json!({ "auth_req_id": id }));
    let tokens = rp.token(&id).await;
    assert_eq!(tokens.status, 200, "{:?}", tokens.body);
    assert_eq!(claims(tokens.body["id_token"].as_str().unwrap())["acr"], "2");
    assert_eq!(sink.received().len(), 1, "exactly one ping");
    let n = stored(&demo, &id).await.notification.expect("delivery recorded");
    assert!(n.delivered && n.attempts == 1, "{n:?}");
    assert_eq!(metric(&demo, "mcgate_notifications_total", &[("mode", "ping"), ("outcome", "delivered")]).await, 1.0);
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_client_receives_tokens_and_may_not_poll() {
    let sink = Sink::start(0).await;
    let demo = demo_for(&sink, |t| t).await;
    let rp = rp(&demo, "demo-rp-tpush");
    let id = start(&rp, &hint(&demo, "movistar", 1)).await;
    let got = sink.wait_for(1).await;
    assert_eq!(got[0].authorization.as_deref(), Some(format!("Bearer {NOTIFY_TOKEN}").as_str()));
    let body = &got[0].body;
    assert_eq!(body["auth_req_id"], id.as_str());
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].as_u64().unwrap() > 0);
    let c = claims(body["id_token"].as_str().expect("id_token"));
    assert_eq!(c["urn:openid:params:jwt:claim:auth_req_id"], id.as_str());
    assert_eq!(c["at_hash"], mcgate::tokens::id_token::half_hash(body["access_token"].as_str().unwrap()).as_str());
    assert_eq!(c["aud"], "demo-rp-tpush");
    assert_eq!(stored(&demo, &id).await.state, mcgate::flow::TxState::Consumed, "a 2xx consumes the transaction");
    let poll = rp.token(&id).await;
    assert_eq!((poll.status, poll.error()), (400, "unauthorized_client"), "CIBA §11: push clients do not poll");
    assert_eq!(sink.received().len(), 1);
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denial_is_pinged_then_access_denied_and_pushed_as_an_error_body() {
    let sink = Sink::start(0).await;
    let demo = demo_for(&sink, |t| t).await;
    let ping = rp(&demo, "demo-rp-tping");
    let id = start(&ping, &hint(&demo, "movistar", 2)).await;
    let got = sink.wait_for(1).await;
    assert_eq!(got[0].body, serde_json::json!({ "auth_req_id": id }));
    let t = ping.token(&id).await;
    assert_eq!((t.status, t.error()), (400, "access_denied"));

    let push = rp(&demo, "demo-rp-tpush");
    let id = start(&push, &hint(&demo, "vodafone", 2)).await;
    let got = sink.wait_for(2).await;
    assert_eq!(got[1].body["auth_req_id"], id.as_str());
    assert_eq!(got[1].body["error"], "access_denied");
    assert!(got[1].body["error_description"].is_string());
    assert!(got[1].body.get("access_token").is_none());
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_retries_with_backoff_until_the_endpoint_recovers() {
    let sink = Sink::start(2).await;
    let demo = demo_for(&sink, |t| t).await;
    let rp = rp(&demo, "demo-rp-tpush");
    let id = start(&rp, &hint(&demo, "movistar", 1)).await;
    let got = sink.wait_for(3).await;
    assert_eq!(got.len(), 3, "two failures, then success, then nothing");
    assert!(got.iter().all(|r| r.body["auth_req_id"] == id.as_str()));
    let end = tokio::time::Instant::now() + WAIT;
    let n = loop {
        let tx = stored(&demo, &id).await;
        if tx.state == mcgate::flow::TxState::Consumed {
            break tx.notification.expect("recorded");
        }
        assert!(tokio::time::Instant::now() < end, "never consumed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!((n.attempts, n.delivered, n.gave_up), (3, true, false));
    let mut counts = Vec::new();
    for o in ["http_status", "delivered", "gave_up"] {
        counts.push(metric(&demo, "mcgate_notifications_total", &[("mode", "push"), ("outcome", o)]).await);
    }
    assert_eq!(counts, [2.0, 1.0, 0.0]);
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_always_fails_gets_bounded_attempts_ping_still_polls_push_fails_delivery() {
    let sink = Sink::start(usize::MAX).await;
    let demo = demo_for(&sink, |t| t.replace("attempts = 5", "attempts = 3")).await;
    let rp = rp(&demo, "demo-rp-tping");
    let id = start(&rp, &hint(&demo, "movistar", 1)).await;
    sink.wait_for(3).await;
    let end = tokio::time::Instant::now() + WAIT;
    while metric(&demo, "mcgate_notifications_total", &[("mode", "ping"), ("outcome", "gave_up")]).await < 1.0 {
        assert!(tokio::time::Instant::now() < end, "the driver never gave up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let n = stored(&demo, &id).await.notification.expect("recorded");
    assert_eq!((n.attempts, n.delivered, n.gave_up), (3, false, true));
    assert_eq!(n.last_failure, Some(mcgate::flow::DeliveryFailure::HttpStatus));
    assert_eq!(metric(&demo, "mcgate_notifications_total", &[("mode", "ping"), ("outcome", "http_status")]).await, 3.0);
    let tokens = rp.token(&id).await;
    assert_eq!(tokens.status, 200, "a failed ping never blocks polling: {:?}", tokens.body);
    assert_eq!(sink.received().len(), 3, "no attempt past the bound");

    // Push: the tokens never arrived and a push client may not poll, so the approval can never
    // be consumed: approved → failed{delivery_failed}.
    let push = rp_for(&demo, "demo-rp-tpush");
    let id = start(&push, &hint(&demo, "movistar", 1)).await;
    sink.wait_for(6).await;
    let end = tokio::time::Instant::now() + WAIT;
    let tx = loop {
        let tx = stored(&demo, &id).await;
        if tx.state != mcgate::flow::TxState::Approved && !tx.state.is_pending() {
            break tx;
        }
        assert!(tokio::time::Instant::now() < end, "push delivery never gave up: {:?}", tx.state);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(tx.state, mcgate::flow::TxState::Failed(mcgate::flow::FailReason::DeliveryFailed));
    let n = tx.notification.expect("recorded");
    assert_eq!((n.attempts, n.delivered, n.gave_up), (3, false, true));
    assert_eq!(metric(&demo, "mcgate_transaction_failures_total", &[("reason", "delivery_failed")]).await, 1.0);
    assert_eq!(metric(&demo, "mcgate_notifications_total", &[("mode", "push"), ("outcome", "gave_up")]).await, 1.0);
    assert_eq!(sink.received().len(), 6, "three push attempts, no more");
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_and_push_clients_must_send_a_valid_client_notification_token() {
    let sink = Sink::start(0).await;
    let demo = demo_for(&sink, |t| t).await;
    let h = hint(&demo, "movistar", 1);
    let before = demo.sims[0].stats.bc_authorize.load(Ordering::SeqCst);
    for client in ["demo-rp-tping", "demo-rp-tpush"] {
        let rp = rp(&demo, client);
        let missing = rp.bc_authorize(&h).await;
        assert_eq!((missing.status, missing.error()), (400, "invalid_request"), "{client}: {:?}", missing.body);
        let long = "a".repeat(1025);
        for bad in [long.as_str(), "has space", "tab\there"] {
            let a = rp
                .post(
                    "/bc-authorize",
                    &[("scope", "openid mc_authn"), ("login_hint", &h), ("client_notification_token", bad)],
                )
                .await;
            assert_eq!((a.status, a.error()), (400, "invalid_request"), "{client}");
        }
    }
    assert_eq!(demo.sims[0].stats.bc_authorize.load(Ordering::SeqCst), before, "no push was started");
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_driver_sheds_ping_and_push_requests_with_retry_after() {
    let sink = Sink::start(0).await;
    let demo = demo_for(&sink, |t| t.replace("capacity = 10000", "capacity = 1")).await;
    let ping = rp(&demo, "demo-rp-tping");
    start(&ping, &hint(&demo, "movistar", 3)).await; // never answered: holds the only place
    let shed = ping
        .post(
            "/bc-authorize",
            &[
                ("scope", "openid mc_authn"),
                ("login_hint", &hint(&demo, "movistar", 1)),
                ("client_notification_token", NOTIFY_TOKEN),
            ],
        )
        .await;
    assert_eq!((shed.status, shed.error()), (503, "temporarily_unavailable"));
    assert_eq!(shed.headers["retry-after"], "1");
    let poll = Rp::new(&demo).bc_authorize(&hint(&demo, "movistar", 1)).await;
    assert_eq!(poll.status, 200, "poll clients do not need the driver");
    assert_eq!(demo.gateway.driver.live(), 1);
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_push_callbacks_are_authenticated_matched_and_applied_once() {
    let sink = Sink::start(0).await;
    let demo = demo_for(&sink, |t| t.replace("id = \"movistar\"", "id = \"movistar\"\nnotification = \"push\"")).await;
    let rp = rp(&demo, "demo-rp-tping");
    let id = start(&rp, &hint(&demo, "movistar", 1)).await;
    let got = sink.wait_for(1).await;
    assert_eq!(got[0].body["auth_req_id"], id.as_str());
    let sent = demo.sims[0].sent();
    assert_eq!(sent.len(), 1, "the operator pushed once");
    assert_eq!(sent[0].status, 204);
    assert!(sent[0].body.contains("id_token"));
    assert_eq!(demo.sims[0].stats.token.load(Ordering::SeqCst), 0, "a pushing operator is never polled");

    let url = format!("{}/op/movistar/notify", demo.plain_url.as_deref().unwrap());
    let http = reqwest::Client::new();
    let post = |auth: Option<String>, body: String| {
        let mut r = http.post(&url).header("content-type", "application/json").body(body);
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        async move { r.send().await.unwrap().status().as_u16() }
    };
    let good = sent[0].authorization.clone();
    assert_eq!(post(Some(good.clone()), sent[0].body.clone()).await, 204, "duplicate");
    assert_eq!(post(None, sent[0].body.clone()).await, 401);
    assert_eq!(post(Some(format!("{good}x")), sent[0].body.clone()).await, 401, "wrong bearer");
    assert_eq!(post(Some("Bearer nope.nope".into()), sent[0].body.clone()).await, 401, "unknown transaction");
    let other = serde_json::json!({"auth_req_id": "not-the-operators-id", "error": "access_denied"}).to_string();
    assert_eq!(post(Some(good.clone()), other).await, 404, "operator auth_req_id does not match");
    let foreign = format!("{}/op/orange/notify", demo.plain_url.as_deref().unwrap());
    let status = http.post(&foreign).header("authorization", &good).body(sent[0].body.clone()).send().await.unwrap();
    assert_eq!(status.status().as_u16(), 401, "another operator's token is refused");

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.received().len(), 1, "exactly one RP notification");
    let tokens = rp.token(&id).await;
    assert_eq!(tokens.status, 200, "{:?}", tokens.body);
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_ping_callback_fetches_the_result() {
    let sink = Sink::start(0).await;
    let demo = demo_for(&sink, |t| t).await; // orange pings us in the embedded config
    let rp = rp(&demo, "demo-rp-tpush");
    let id = start(&rp, &hint(&demo, "orange", 1)).await;
    let got = sink.wait_for(1).await;
    assert_eq!(got[0].body["auth_req_id"], id.as_str());
    assert!(got[0].body["id_token"].is_string(), "{:?}", got[0].body);
    let sent = demo.sims[2].sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        serde_json::from_str::<Value>(&sent[0].body).unwrap(),
        serde_json::json!({"auth_req_id": sent_id(&sent[0].body)})
    );
    assert_eq!(sent[0].status, 204);
    demo.stop().await;
}

fn sent_id(body: &str) -> String {
    serde_json::from_str::<Value>(body).unwrap()["auth_req_id"].as_str().unwrap().to_owned()
}
