//! Log hygiene and request logs (issue 8 "Logs"; shared/security.md S-34, S-35, C-27): every
//! kind of authentication (CIBA poll approved and denied, SMS fallback by confirm link, SMS
//! fallback by one-time code in the redirect flow, the redirect flow itself) runs against the
//! demo with the process's logs captured in memory (JSON, the production formatter); then every
//! captured line is scanned: never a test MSISDN (digits, national digits; `+…`, `tel:+…` and
//! `MSISDN:…` contain them), an OTP, a confirm-link token, a client secret, an auth_req_id, an
//! authorization code, a JWT (`eyJ…`) or a bearer. Each request we sent (tagged with our own
//! `X-Request-Id`) has exactly one request line with the expected fields, and the operator
//! simulator received our `traceparent`'s trace id. The log filter is changed at runtime through
//! the admin listener and debug lines appear only while it says so.

mod support;

use mcgate::demo::{sms_test_msisdn, test_msisdn, Demo};
use mcgate::telemetry::logging::LogGuard;
use mcgate::telemetry::trace::TraceParent;
use parking_lot::Mutex;
use serde_json::Value;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use support::{answer, Answer, Rp};

/// The captured log output of this test process.
struct Capture {
    buf: Arc<Mutex<Vec<u8>>>,
    guard: LogGuard,
}

struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for SharedBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

static CAPTURE: OnceLock<Capture> = OnceLock::new();

/// Installs the capture (once per process, before any demo: the demo's own `init` is then a no-op).
fn capture() -> &'static Capture {
    CAPTURE.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let guard = mcgate::telemetry::logging::init_to("info", "json", Box::new(SharedBuf(buf.clone())));
        Capture { buf, guard }
    })
}

/// Every line captured so far, parsed (each must be one JSON object).
fn lines() -> Vec<(String, Value)> {
    let c = capture();
    c.guard.flush();
    let text = String::from_utf8(c.buf.lock().clone()).expect("logs are UTF-8");
    text.lines()
        .map(|l| {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {l}"));
            assert!(v.is_object(), "{l}");
            (l.to_owned(), v)
        })
        .collect()
}

/// A `traceparent` of the RP's own (a fresh trace per call site).
fn rp_traceparent() -> (String, String) {
    let trace = hex::encode(rand::random::<[u8; 16]>());
    (format!("00-{trace}-{}-01", hex::encode(rand::random::<[u8; 8]>())), trace)
}

/// One request we sent and what its log line must say.
struct Sent {
    request_id: String,
    endpoint: &'static str,
    status: u16,
    client: Option<String>,
    operator: Option<&'static str>,
    trace_id: Option<String>,
    with_msisdn: bool,
}

/// What the scan looks for and what it checks.
#[derive(Default)]
struct Ledger {
    sent: Vec<Sent>,
    secrets: Vec<String>,
    msisdns: Vec<String>,
    n: u32,
}

impl Ledger {
    fn secret(&mut self, s: impl Into<String>) {
        let s = s.into();
        assert!(s.len() >= 6, "a secret worth scanning for: {s:?}");
        self.secrets.push(s);
    }

    /// POSTs a form as `rp` with our request id (and `traceparent`, if given); records it.
    #[allow(clippy::too_many_arguments)]
    async fn post(
        &mut self,
        rp: &Rp,
        path: &str,
        endpoint: &'static str,
        form: &[(&str, &str)],
        operator: Option<&'static str>,
        traceparent: Option<&(String, String)>,
        with_msisdn: bool,
    ) -> Answer {
        self.n += 1;
        let request_id = format!("hygiene-{}-{}", endpoint.replace('_', "-"), self.n);
        let mut r = rp
            .http
            .post(format!("{}{path}", rp.base))
            .basic_auth(&rp.client_id, Some(&rp.secret))
            .header("x-request-id", &request_id)
            .form(form);
        if let Some((tp, _)) = traceparent {
            r = r.header("traceparent", tp);
        }
        let a = answer(r.send().await.expect("request")).await;
        assert_eq!(a.headers["x-request-id"], request_id.as_str(), "our well-formed id is echoed");
        self.sent.push(Sent {
            request_id,
            endpoint,
            status: a.status,
            client: Some(rp.client_id.clone()),
            operator,
            trace_id: traceparent.map(|(_, t)| t.clone()),
            with_msisdn,
        });
        a
    }

    /// Polls `/token` (bounded) until the answer is not pending; records every poll.
    async fn poll(&mut self, rp: &Rp, ack: &Answer, operator: &'static str) -> Answer {
        let id = ack.body["auth_req_id"].as_str().expect("auth_req_id").to_owned();
        let mut interval = Duration::from_secs(ack.body["interval"].as_u64().expect("interval"));
        for _ in 0..40 {
            tokio::time::sleep(interval + Duration::from_millis(50)).await;
            let form = [("grant_type", "urn:openid:params:grant-type:ciba"), ("auth_req_id", id.as_str())];
            let a = self.post(rp, "/token", "token", &form, Some(operator), None, false).await;
            match a.error() {
                "authorization_pending" => {}
                "slow_down" => interval += Duration::from_secs(1),
                _ => return a,
            }
        }
        panic!("still pending after 40 polls");
    }

    fn tokens(&mut self, a: &Answer) {
        assert_eq!(a.status, 200, "{:?}", a.body);
        for k in ["access_token", "id_token"] {
            let t = a.body[k].as_str().expect(k);
            assert!(t.starts_with("eyJ"));
            self.secret(t);
        }
    }

    fn msisdn(&mut self, m: mcgate::msisdn::Msisdn) -> String {
        let digits = m.digits();
        self.msisdns.push(digits.clone());
        self.msisdns.push(digits[2..].to_owned()); // national form (34 + 9 digits)
        digits
    }
}

fn sms_rp(demo: &Demo) -> Rp {
    Rp { client_id: demo.sms_client_id.clone(), ..Rp::new(demo) }
}

/// The last SMS the SMSC simulator holds for `msisdn`.
async fn sms_text(demo: &Demo, msisdn: &str) -> Option<String> {
    let r = reqwest::get(format!("{}/sms/{msisdn}", demo.smsc.http_url())).await.ok()?;
    if r.status() != 200 {
        return None;
    }
    r.json::<Value>().await.ok()?["text"].as_str().map(str::to_owned)
}

fn hidden(html: &str, name: &str) -> String {
    let needle = format!("name=\"{name}\" value=\"");
    let at = html.find(&needle).unwrap_or_else(|| panic!("{name} field")) + needle.len();
    html[at..].chars().take_while(|c| *c != '"').collect()
}

fn browser(demo: &Demo) -> reqwest::Client {
    let cert = reqwest::Certificate::from_pem(demo.tls_cert_pem.as_bytes()).unwrap();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .tls_certs_only([cert])
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn authorize_url(demo: &Demo, client_id: &str, redirect_uri: &str, msisdn: &str) -> String {
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", "openid mc_authn")
        .append_pair("state", "st-hygiene")
        .append_pair("nonce", "n-hygiene")
        .append_pair("login_hint", &format!("tel:+{msisdn}"))
        .append_pair("code_challenge", CHALLENGE)
        .append_pair("code_challenge_method", "S256");
    format!("{}/authorize?{}", demo.public_url, q.finish())
}

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

/// The trace id an operator simulator last received at `path`, checked against ours.
fn assert_operator_saw(demo: &Demo, operator: &str, path: &str, ours: &(String, String)) {
    let sim = demo.sims.iter().find(|s| s.operator_id() == operator).expect("sim");
    let got = sim.last_traceparent(path).unwrap_or_else(|| panic!("no traceparent at {operator}{path}"));
    let got = TraceParent::parse(got.as_bytes()).expect("a valid traceparent");
    let sent = TraceParent::parse(ours.0.as_bytes()).unwrap();
    assert_eq!(hex::encode(got.trace_id), ours.1, "{operator}{path}: the RP's trace id");
    assert_ne!(got.parent_id, sent.parent_id, "{operator}{path}: a span id of ours");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_authentication_logs_one_clean_line_per_request() {
    capture();
    let demo = support::start_demo().await;
    let mut l = Ledger::default();
    l.secret(demo.client_secret.expose());
    let rp = Rp::new(&demo);
    let sms = sms_rp(&demo);

    // 1. CIBA poll, approved: our trace reaches the operator's bc-authorize.
    let msisdn = l.msisdn(test_msisdn(&demo.gateway, "movistar", 1).unwrap());
    let tp = rp_traceparent();
    let hint = format!("MSISDN:{msisdn}");
    let form = [("scope", "openid mc_authn"), ("login_hint", hint.as_str())];
    let ack = l.post(&rp, "/bc-authorize", "bc_authorize", &form, Some("movistar"), Some(&tp), true).await;
    assert_eq!(ack.status, 200, "{:?}", ack.body);
    assert_operator_saw(&demo, "movistar", "/bc-authorize", &tp);
    l.secret(ack.body["auth_req_id"].as_str().unwrap());
    let done = l.poll(&rp, &ack, "movistar").await;
    l.tokens(&done);
    let at = done.body["access_token"].as_str().unwrap().to_owned();
    let u = rp.http.get(format!("{}/userinfo", rp.base)).bearer_auth(&at).send().await.unwrap();
    assert_eq!(u.status(), 200);

    // 2. CIBA poll, denied (a `+` number).
    let msisdn = l.msisdn(test_msisdn(&demo.gateway, "vodafone", 2).unwrap());
    let hint = format!("+{msisdn}");
    let form = [("scope", "openid mc_authn"), ("login_hint", hint.as_str())];
    let ack = l.post(&rp, "/bc-authorize", "bc_authorize", &form, Some("vodafone"), None, true).await;
    assert_eq!(ack.status, 200, "{:?}", ack.body);
    l.secret(ack.body["auth_req_id"].as_str().unwrap());
    assert_eq!(l.poll(&rp, &ack, "vodafone").await.error(), "access_denied");

    // 3. SMS fallback by confirm link (not enrolled → SMS at once).
    let msisdn = l.msisdn(sms_test_msisdn(&demo.gateway, "demo-rp-sms", "movistar", 4).unwrap());
    let hint = format!("MSISDN:{msisdn}");
    let form = [("scope", "openid mc_authn"), ("login_hint", hint.as_str())];
    let ack = l.post(&sms, "/bc-authorize", "bc_authorize", &form, Some("movistar"), None, true).await;
    assert_eq!(ack.status, 200, "{:?}", ack.body);
    l.secret(ack.body["auth_req_id"].as_str().unwrap());
    let text = sms_text(&demo, &msisdn).await.expect("an SMS");
    let start = text.find("/sms/confirm/").expect("confirm link") + "/sms/confirm/".len();
    let token: String = text[start..].chars().take_while(|c| !c.is_whitespace()).collect();
    l.secret(token.clone());
    let link = format!("{}/sms/confirm/{token}", sms.base);
    let page = sms.http.get(&link).send().await.unwrap().text().await.unwrap();
    let decided = [("csrf", hidden(&page, "csrf")), ("decision", "approve".into())];
    assert_eq!(sms.http.post(&link).form(&decided).send().await.unwrap().status(), 200);
    let done = l.poll(&sms, &ack, "movistar").await;
    l.tokens(&done);

    // 4. Redirect flow, operator 500 → SMS one-time code.
    const SMS_CB: &str = "http://127.0.0.1/demo-rp-sms/callback";
    let msisdn = l.msisdn(sms_test_msisdn(&demo.gateway, "demo-rp-sms", "movistar", 5).unwrap());
    let b = browser(&demo);
    let mut next = authorize_url(&demo, &demo.sms_client_id, SMS_CB, &msisdn);
    let mut otp_page = None;
    for _ in 0..4 {
        let r = b.get(&next).send().await.unwrap();
        assert_eq!(r.status(), 302, "{next}");
        let loc = r.headers()["location"].to_str().unwrap().to_owned();
        if loc.starts_with("/sms/otp?") {
            otp_page = Some(format!("{}{loc}", demo.public_url));
            break;
        }
        next = loc;
    }
    let html = b.get(otp_page.expect("the OTP page")).send().await.unwrap().text().await.unwrap();
    let text = sms_text(&demo, &msisdn).await.expect("SMS with the code");
    let (_, code) = mcgate::sms::message::parse_origin_bound(&text).expect("origin-bound code");
    l.secret(code.clone());
    let form = [("s", hidden(&html, "s")), ("csrf", hidden(&html, "csrf")), ("code", code)];
    let r = b.post(format!("{}/sms/otp", demo.public_url)).form(&form).send().await.unwrap();
    let back = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    let our_code = back.query_pairs().find(|(k, _)| k == "code").expect("code").1.into_owned();
    l.secret(our_code.clone());
    let form = [
        ("grant_type", "authorization_code"),
        ("code", &our_code),
        ("redirect_uri", SMS_CB),
        ("code_verifier", VERIFIER),
    ];
    let t = l.post(&sms, "/token", "token", &form, None, None, false).await;
    l.tokens(&t);

    // 5. Redirect flow, approved: the browser's trace reaches the operator's token endpoint.
    const RP_CB: &str = "http://127.0.0.1/demo-rp/callback";
    let msisdn = l.msisdn(test_msisdn(&demo.gateway, "orange", 1).unwrap());
    let tp = rp_traceparent();
    let mut next = authorize_url(&demo, &demo.client_id, RP_CB, &msisdn);
    let mut back = None;
    for _ in 0..4 {
        let r = b.get(&next).header("traceparent", &tp.0).send().await.unwrap();
        assert_eq!(r.status(), 302, "{next}");
        let loc = r.headers()["location"].to_str().unwrap().to_owned();
        if loc.starts_with(RP_CB) {
            back = Some(url::Url::parse(&loc).unwrap());
            break;
        }
        next = loc;
    }
    assert_operator_saw(&demo, "orange", "/token", &tp);
    let back = back.expect("back at the RP");
    let code = back.query_pairs().find(|(k, _)| k == "code").expect("code").1.into_owned();
    l.secret(code.clone());
    let form =
        [("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", RP_CB), ("code_verifier", VERIFIER)];
    let t = l.post(&rp, "/token", "token", &form, None, None, false).await;
    l.tokens(&t);

    // 6. Ill-formed request id and traceparent: replaced by ours, still one line each.
    for (bad_id, bad_tp) in
        [("has space", "00-zz"), ("x\"y", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")]
    {
        let r = rp
            .http
            .post(format!("{}/bc-authorize", rp.base))
            .basic_auth(&rp.client_id, Some(&rp.secret))
            .header("x-request-id", bad_id)
            .header("traceparent", bad_tp)
            .form(&[("scope", "openid mc_authn")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let ours = r.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_ne!(ours, bad_id);
        let mine: Vec<Value> =
            lines().into_iter().map(|(_, v)| v).filter(|v| v["request_id"] == ours.as_str()).collect();
        assert_eq!(mine.len(), 1, "one line for {ours}");
        assert_ne!(mine[0]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736", "version ff is not continued");
    }
    demo.stop().await;

    // The scan.
    let all = lines();
    assert!(all.len() >= l.sent.len(), "{} lines for {} requests", all.len(), l.sent.len());
    for (line, _) in &all {
        for m in &l.msisdns {
            assert!(!line.contains(m.as_str()), "an MSISDN ({m}) in: {line}");
        }
        for s in &l.secrets {
            assert!(!line.contains(s.as_str()), "a secret in: {line}");
        }
        assert!(!line.contains("eyJ"), "a JWT in: {line}");
        assert!(!line.to_ascii_lowercase().contains("bearer "), "a bearer in: {line}");
    }
    let mut with_ref = 0;
    for s in &l.sent {
        let mine: Vec<&Value> =
            all.iter().map(|(_, v)| v).filter(|v| v["request_id"] == s.request_id.as_str()).collect();
        assert_eq!(mine.len(), 1, "exactly one line for {}: {mine:?}", s.request_id);
        let v = mine[0];
        assert_eq!(v["message"], "request");
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["endpoint"], s.endpoint, "{v}");
        assert_eq!(v["status"], s.status, "{v}");
        assert!(v["outcome"].as_str().is_some_and(|o| !o.is_empty()), "{v}");
        assert!(v["latency_us"].is_u64(), "{v}");
        if let Some(c) = &s.client {
            assert_eq!(v["client"], c.as_str(), "{v}");
        }
        if let Some(op) = s.operator {
            assert_eq!(v["operator"], op, "{v}");
        }
        let trace = v["trace_id"].as_str().expect("trace_id");
        assert!(trace.len() == 32 && trace.bytes().all(|c| c.is_ascii_hexdigit()), "{v}");
        if let Some(t) = &s.trace_id {
            assert_eq!(trace, t, "the RP's trace id is logged");
        }
        if s.with_msisdn {
            let r = v["msisdn_ref"].as_str().expect("msisdn_ref");
            assert_eq!(r.len(), 16, "{v}");
            assert!(v["msisdn"].as_str().is_some_and(|m| m.contains('*')), "masked: {v}");
            with_ref += 1;
        }
    }
    let ids: Vec<&str> = l.sent.iter().map(|s| s.request_id.as_str()).collect();
    println!("scanned {} lines; {} requests of ours, one line each; {with_ref} with msisdn_ref", all.len(), ids.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_filter_changes_at_runtime_through_the_admin_listener() {
    capture();
    let demo = support::start_demo().await;
    let http = reqwest::Client::new();
    let url = format!("{}/log-level", demo.admin_url);
    let get = answer(http.get(&url).send().await.unwrap()).await;
    assert_eq!(get.status, 200, "{:?}", get.body);
    let before = get.body["level"].as_str().expect("level").to_owned();
    for bad in ["mcgate=verbose", "", "info\nerror"] {
        let a = answer(http.put(&url).body(bad).send().await.unwrap()).await;
        assert_eq!((a.status, a.error()), (400, "invalid_request"), "{bad:?}: {:?}", a.body);
    }
    assert_eq!(answer(http.get(&url).send().await.unwrap()).await.body["level"], before.as_str(), "unchanged");
    let a = answer(http.post(&url).body("debug").send().await.unwrap()).await;
    assert_eq!(a.status, 405);
    assert_eq!(a.headers["allow"], "GET, PUT");

    // A CIBA request under `trace`: operator calls of its trace at debug level.
    let bc = |tp: String| {
        let rp = Rp::new(&demo);
        let hint = format!("MSISDN:{}", test_msisdn(&demo.gateway, "movistar", 1).unwrap().digits());
        async move {
            let r = rp
                .http
                .post(format!("{}/bc-authorize", rp.base))
                .basic_auth(&rp.client_id, Some(&rp.secret))
                .header("traceparent", tp)
                .form(&[("scope", "openid mc_authn"), ("login_hint", hint.as_str())])
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
    };
    let debug_lines_of =
        |trace: &str| lines().into_iter().filter(|(_, v)| v["trace_id"] == trace && v["level"] == "DEBUG").count();
    let request_lines_of =
        |trace: &str| lines().into_iter().filter(|(_, v)| v["trace_id"] == trace && v["message"] == "request").count();

    let set = answer(http.put(&url).body("debug").send().await.unwrap()).await;
    assert_eq!((set.status, set.body["level"].as_str()), (200, Some("debug")), "{:?}", set.body);
    let (tp, trace) = rp_traceparent();
    bc(tp).await;
    assert!(debug_lines_of(&trace) >= 1, "debug lines of the request after PUT debug");

    let set = answer(http.put(&url).body(before.clone()).send().await.unwrap()).await;
    assert_eq!(set.status, 200, "{:?}", set.body);
    let (tp, trace) = rp_traceparent();
    bc(tp).await;
    assert_eq!(request_lines_of(&trace), 1);
    assert_eq!(debug_lines_of(&trace), 0, "no debug lines once the filter is back to {before}");
    demo.stop().await;
}
