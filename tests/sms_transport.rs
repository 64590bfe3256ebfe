//! SMS transports against real peers on loopback: the SMPP client against the SMSC simulator
//! (submit, receipt, rejections, SMSC down or silent, dropped session and rebind) and the HTTP
//! provider transport against a tiny provider on port 0 (2xx / 4xx / 5xx / timeout).

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use mcgate::config::Secret;
use mcgate::msisdn::Msisdn;
use mcgate::server::conn::{serve, ConnOptions, Handler};
use mcgate::sim::smsc::{Fault, SimSmsc, SmscConfig};
use mcgate::sms::transport::http::{HttpSettings, HttpTransport};
use mcgate::sms::transport::smpp::{BindMode, SmppSettings, SmppTransport};
use mcgate::sms::{DeliveryState, OutgoingSms, SmsError, SmsTransport};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

const LOOPBACK: &str = "127.0.0.1:0";
/// Guard against hangs only (never a performance assertion).
const GUARD: Duration = Duration::from_secs(20);

fn settings(addr: SocketAddr) -> SmppSettings {
    SmppSettings {
        addr: addr.to_string(),
        system_id: "mcgate".into(),
        password: Secret::new("secret"),
        system_type: String::new(),
        bind: BindMode::Transceiver,
        source_addr: "MCGATE".into(),
        source_addr_ton: 5,
        source_addr_npi: 0,
        connect_timeout: Duration::from_millis(500),
        enquire_link: Duration::from_secs(1),
        submit_timeout: Duration::from_millis(800),
        rebind_initial: Duration::from_millis(100),
        rebind_max: Duration::from_millis(800),
        window: 4,
        max_segments: 2,
        receipt_capacity: 100,
        receipt_ttl: Duration::from_secs(60),
    }
}

async fn smsc(receipt_after: Duration) -> (Arc<SimSmsc>, watch::Sender<bool>) {
    let (tx, rx) = watch::channel(false);
    let cfg = SmscConfig { receipt_after, ..SmscConfig::default() };
    let sim = SimSmsc::start(cfg, LOOPBACK.parse().unwrap(), LOOPBACK.parse().unwrap(), rx).await.unwrap();
    (sim, tx)
}

async fn bound(sim: &SimSmsc) -> SmppTransport {
    let t = SmppTransport::start(settings(sim.smpp_addr()));
    assert!(t.wait_bound(GUARD).await, "bound to the simulator");
    t
}

fn number(digits: u64) -> Msisdn {
    Msisdn::from_digits(digits).unwrap()
}

async fn send(t: &dyn SmsTransport, to: u64, text: &str) -> Result<String, SmsError> {
    let to = number(to);
    let sms = OutgoingSms { to: &to, text, reference: "tx-1" };
    tokio::time::timeout(GUARD, t.submit(&sms)).await.expect("submit returns").map(|r| r.message_id)
}

async fn wait_state(t: &dyn SmsTransport, id: &str, want: DeliveryState) -> bool {
    for _ in 0..200 {
        if t.delivery_state(id) == want {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

#[tokio::test]
async fn submit_is_accepted_and_the_receipt_says_delivered() {
    let (sim, _stop) = smsc(Duration::from_millis(50)).await;
    let t = bound(&sim).await;
    let text = "Banc Demo: Pagament 12,50 EUR\n@mcgate.example #123456";
    let id = send(&t, 34600000001, text).await.expect("accepted");
    let got = sim.last_for("34600000001").expect("the phone got it");
    assert_eq!(got.text, text);
    assert_eq!(got.from, "MCGATE");
    assert_eq!(got.message_id, id);
    assert!(wait_state(&t, &id, DeliveryState::Delivered).await, "receipt → Delivered");
    // The phone view over HTTP.
    let body = reqwest::get(format!("{}/sms/+34600000001", sim.http_url())).await.unwrap();
    assert_eq!(body.status(), 200);
    let v: serde_json::Value = body.json().await.unwrap();
    assert_eq!(v["text"], text);
    let list: serde_json::Value = reqwest::get(format!("{}/sms", sim.http_url())).await.unwrap().json().await.unwrap();
    assert_eq!(list[0]["message_id"], id.as_str());
    let none = reqwest::get(format!("{}/sms/34699999999", sim.http_url())).await.unwrap();
    assert_eq!(none.status(), 404);
}

#[tokio::test]
async fn long_and_non_gsm_texts_arrive_whole_in_two_segments() {
    let (sim, _stop) = smsc(Duration::from_millis(20)).await;
    let t = bound(&sim).await;
    let text = format!("Confirmació de l'operació: {} #654321", "ï".repeat(60));
    let before = sim.submit_count();
    let id = send(&t, 34600000002, &text).await.expect("accepted");
    assert_eq!(sim.submit_count() - before, 2, "two segments");
    let got = sim.last_for("34600000002").unwrap();
    assert_eq!((got.text.as_str(), got.segments), (text.as_str(), 2));
    assert!(wait_state(&t, &id, DeliveryState::Delivered).await, "both segments delivered");
    let too_long = "x".repeat(400);
    let before = sim.submit_count();
    assert!(matches!(send(&t, 34600000002, &too_long).await, Err(SmsError::Rejected(_))));
    assert_eq!(sim.submit_count(), before, "nothing sent for a text over max_segments");
}

#[tokio::test]
async fn smsc_rejections_are_rejected_and_never_retried() {
    let (sim, _stop) = smsc(Duration::from_millis(20)).await;
    let t = bound(&sim).await;
    let before = sim.submit_count();
    match send(&t, 34600000091, "code 1").await {
        Err(SmsError::Rejected(why)) => assert!(why.contains("THROTTLED"), "{why}"),
        other => panic!("expected Rejected, got {other:?}"),
    }
    match send(&t, 34600000092, "code 2").await {
        Err(SmsError::Rejected(why)) => assert!(why.contains("SUBMITFAIL"), "{why}"),
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert_eq!(sim.submit_count() - before, 2, "one submit_sm each: no retry");
    sim.set_fault(Fault::Throttle);
    assert!(matches!(send(&t, 34600000003, "code 3").await, Err(SmsError::Rejected(_))));
    sim.set_fault(Fault::None);
    assert!(send(&t, 34600000003, "code 4").await.is_ok());
    assert!(sim.last_for("34600000091").is_none(), "rejected messages never reach the phone");
}

#[tokio::test]
async fn undeliverable_receipt_is_failed() {
    let (sim, _stop) = smsc(Duration::from_millis(20)).await;
    let t = bound(&sim).await;
    let id = send(&t, 34600000093, "code").await.expect("accepted");
    assert!(wait_state(&t, &id, DeliveryState::Failed).await);
}

#[tokio::test]
async fn smsc_down_is_unavailable_at_once() {
    // A port with nothing listening.
    let port = std::net::TcpListener::bind(LOOPBACK).unwrap().local_addr().unwrap();
    let t = SmppTransport::start(settings(port));
    assert!(!t.wait_bound(Duration::from_millis(300)).await);
    match send(&t, 34600000001, "code").await {
        Err(SmsError::Unavailable(why)) => assert!(why.contains("no SMPP session"), "{why}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn silent_smsc_is_unavailable_within_the_submit_timeout() {
    let (sim, _stop) = smsc(Duration::from_millis(20)).await;
    let t = bound(&sim).await;
    sim.set_fault(Fault::Silent);
    match send(&t, 34600000001, "code").await {
        Err(SmsError::Unavailable(why)) => assert!(why.contains("within 800 ms"), "{why}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert_eq!(sim.submit_count(), 1, "sent once, never retried");
}

#[tokio::test]
async fn dropped_session_rebinds_and_the_next_submit_works() {
    let (sim, _stop) = smsc(Duration::from_millis(20)).await;
    let t = bound(&sim).await;
    assert_eq!(sim.bind_count(), 1);
    sim.drop_connections();
    let mut rebound = false;
    for _ in 0..200 {
        if sim.bind_count() >= 2 && t.is_bound() {
            rebound = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(rebound, "rebound after the drop");
    assert!(send(&t, 34600000004, "code after rebind").await.is_ok());
    assert_eq!(sim.last_for("34600000004").unwrap().text, "code after rebind");
}

#[tokio::test]
async fn wrong_bind_password_never_binds() {
    let (sim, _stop) = smsc(Duration::from_millis(20)).await;
    let mut s = settings(sim.smpp_addr());
    s.password = Secret::new("wrong");
    let t = SmppTransport::start(s);
    assert!(!t.wait_bound(Duration::from_millis(500)).await);
    assert!(matches!(send(&t, 34600000001, "code").await, Err(SmsError::Unavailable(_))));
    assert_eq!(sim.bind_count(), 0);
}

/// A provider: `/ok` answers 200 `{message_id}` to the right bearer key (401 otherwise),
/// `/bad` 400, `/down` 503, `/slow` sleeps past the client's timeout.
struct Provider {
    seen: parking_lot::Mutex<Vec<serde_json::Value>>,
}

impl Handler for Provider {
    async fn handle(self: Arc<Self>, req: Request<Incoming>, _peer: SocketAddr) -> Response<Full<Bytes>> {
        let path = req.uri().path().to_owned();
        let auth_ok = req.headers().get("authorization").is_some_and(|v| v == "Bearer k3y");
        let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        self.seen.lock().push(serde_json::from_slice(&body).unwrap_or_default());
        let (status, body) = match path.as_str() {
            "/ok" if auth_ok => (StatusCode::OK, r#"{"message_id":"prov-1"}"#),
            "/ok" => (StatusCode::UNAUTHORIZED, "{}"),
            "/bad" => (StatusCode::BAD_REQUEST, r#"{"error":"invalid number"}"#),
            "/down" => (StatusCode::SERVICE_UNAVAILABLE, "{}"),
            _ => {
                tokio::time::sleep(Duration::from_secs(5)).await;
                (StatusCode::OK, r#"{"message_id":"late"}"#)
            }
        };
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        r
    }
}

#[tokio::test]
async fn http_provider_maps_2xx_4xx_5xx_and_timeout() {
    let (_stop, rx) = watch::channel(false);
    let listener = tokio::net::TcpListener::bind(LOOPBACK).await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let provider = Arc::new(Provider { seen: Default::default() });
    tokio::spawn(serve(listener, None, provider.clone(), rx, ConnOptions::default()));
    let transport = |path: &str| {
        HttpTransport::new(HttpSettings {
            url: format!("{base}{path}"),
            api_key: Secret::new("k3y"),
            connect_timeout: Duration::from_millis(500),
            timeout: Duration::from_millis(500),
        })
        .unwrap()
    };
    let ok = transport("/ok");
    assert_eq!(send(&ok, 34600000001, "hola #123456").await, Ok("prov-1".into()));
    assert_eq!(ok.delivery_state("prov-1"), DeliveryState::Pending, "no receipts over HTTP");
    let first = provider.seen.lock()[0].clone();
    assert_eq!(first, serde_json::json!({"to": "+34600000001", "text": "hola #123456", "reference": "tx-1"}));
    assert!(matches!(send(&transport("/bad"), 34600000001, "x").await, Err(SmsError::Rejected(_))));
    assert!(matches!(send(&transport("/down"), 34600000001, "x").await, Err(SmsError::Unavailable(_))));
    match send(&transport("/slow"), 34600000001, "x").await {
        Err(SmsError::Unavailable(why)) => assert!(why.contains("within 500 ms"), "{why}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert_eq!(provider.seen.lock().len(), 4, "one request each: no retry");
    // Nothing listening: unavailable.
    let closed = std::net::TcpListener::bind(LOOPBACK).unwrap().local_addr().unwrap();
    let down = HttpTransport::new(HttpSettings {
        url: format!("http://{closed}/ok"),
        api_key: Secret::new("k3y"),
        connect_timeout: Duration::from_millis(500),
        timeout: Duration::from_millis(500),
    })
    .unwrap();
    assert!(matches!(send(&down, 34600000001, "x").await, Err(SmsError::Unavailable(_))));
}
