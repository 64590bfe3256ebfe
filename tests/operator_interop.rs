//! Interop on the operator side: the `ciba` operator adapter against a third-party OP,
//! `oidc-provider` v9 (Node, by panva) with CIBA in poll mode (tests/node/oidc-provider-op.mjs),
//! standing in for movistar's Mobile Connect backend. The demo gateway keeps movistar pointed at
//! it (its other operators stay simulated) and an RP drives everything through the gateway:
//! approval (a gateway ID token with a pairwise `sub`, the operator's `acr` and `amr`), PIN
//! approval at acr 3, denial, an unknown subscriber, an operator failure, expiry, and that the
//! RP's `binding_message`, `requested_expiry` and acr reach the operator.
//!
//! The Node dependencies are installed by `scripts/test` (`npm install` in tests/node). A missing
//! `node` or `oidc-provider` fails these tests; they never skip.

mod support;

use mcgate::demo::{test_msisdn, Demo};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use support::{claims, Rp};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

/// Bound on the OP's start-up (generating keys, loading oidc-provider).
/// One start attempt of the Node OP; it normally prints its LISTENING line within a second or two.
const OP_START_TIMEOUT: Duration = Duration::from_secs(40);
/// Start attempts: a Node process that stays silent (seen once in a full CI=true run, 1 start in
/// several hundred) is killed and started again; the second silence fails the test with its stderr.
const OP_START_ATTEMPTS: usize = 2;
/// Bound on waiting for one event from the OP.
const EVENT_TIMEOUT: Duration = Duration::from_secs(15);
/// Bound on an RP's polling until a final answer (the operator announces no `interval`, so the
/// gateway polls it every 5 s, CIBA's default).
const POLL_DEADLINE: Duration = Duration::from_secs(40);
/// The gateway's client id at the operator (routing.toml's movistar `client_id`).
const OP_CLIENT_ID: &str = "mcgate";

fn node_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("node")
}

/// Fails (never skips) when the Node dependency is not installed.
fn require_oidc_provider() {
    let lib = node_dir().join("node_modules").join("oidc-provider").join("package.json");
    assert!(
        lib.is_file(),
        "oidc-provider is not installed ({} is missing): run `scripts/test`, which runs `npm install` in tests/node, \
         or run `npm install` in tests/node yourself",
        lib.display()
    );
}

/// One running oidc-provider OP; killed (and reaped) on drop.
struct OidcProviderOp {
    child: Child,
    issuer: String,
    secret: String,
    events: UnboundedReceiver<Value>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl OidcProviderOp {
    /// Starts `node tests/node/oidc-provider-op.mjs` and waits for its `LISTENING <issuer>` line
    /// (at most [`OP_START_ATTEMPTS`] processes, each given [`OP_START_TIMEOUT`]).
    /// `stock_binding_message`: keep oidc-provider's own (narrow) binding_message rule.
    fn start(stock_binding_message: bool) -> Self {
        let mut silent = Vec::new();
        for _ in 0..OP_START_ATTEMPTS {
            match Self::try_start(stock_binding_message) {
                Ok(op) => return op,
                Err(stderr) => {
                    eprintln!(
                        "oidc-provider-op.mjs silent for {OP_START_TIMEOUT:?}; killed, starting it again: {stderr}"
                    );
                    silent.push(stderr)
                }
            }
        }
        panic!(
            "oidc-provider-op.mjs printed no LISTENING line within {OP_START_TIMEOUT:?}, {OP_START_ATTEMPTS} times\n--- stderr ---\n{}",
            silent.join("\n--- next attempt ---\n")
        );
    }

    /// One start; `Err(stderr)` when no LISTENING line came in time (the process is reaped).
    fn try_start(stock_binding_message: bool) -> Result<Self, String> {
        require_oidc_provider();
        // A secret (VSCHAR only, RFC 6749 A.2) with characters client_secret_basic must form-urlencode.
        let secret = format!("{}:+/ %~", mcgate::clock::random_token(24));
        let mut cmd = Command::new("node");
        cmd.arg(Path::new("tests").join("node").join("oidc-provider-op.mjs"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("CLIENT_ID", OP_CLIENT_ID)
            .env("CLIENT_SECRET", &secret)
            .env("APPROVE_AFTER_MS", "300")
            .env_remove("STOCK_BINDING_MESSAGE");
        if stock_binding_message {
            cmd.env("STOCK_BINDING_MESSAGE", "1");
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `node` ({e}); Node.js 20+ must be on PATH"));
        let stdout = child.stdout.take().expect("node stdout");
        let mut stderr = child.stderr.take().expect("node stderr");
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        let (listening_tx, listening_rx) = mpsc::channel::<String>();
        let (events_tx, events) = unbounded_channel::<Value>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("LISTENING ") {
                    let _ = listening_tx.send(url.trim().to_owned());
                } else if let Some(json) = line.strip_prefix("EVENT ") {
                    let event = serde_json::from_str(json).unwrap_or_else(|e| panic!("bad EVENT line ({e}): {json}"));
                    if events_tx.send(event).is_err() {
                        break;
                    }
                }
                // Anything else is oidc-provider's own notices.
            }
        });
        let mut op = Self { child, issuer: String::new(), secret, events, stderr: Some(stderr) };
        match listening_rx.recv_timeout(OP_START_TIMEOUT) {
            Ok(issuer) => op.issuer = issuer,
            Err(_) => {
                // Where the silent process sits, for whoever chases this (Linux /proc).
                let pid = op.child.id();
                let proc = |f: &str| std::fs::read_to_string(format!("/proc/{pid}/{f}")).unwrap_or_default();
                let state = proc("status").lines().find(|l| l.starts_with("State:")).unwrap_or("").to_owned();
                let where_ = format!("[{state}; wchan {}]", proc("wchan"));
                let _ = op.child.kill();
                let _ = op.child.wait();
                let stderr = op.stderr.take().and_then(|t| t.join().ok()).unwrap_or_default();
                return Err(format!("{where_}\n{stderr}"));
            }
        }
        assert!(op.issuer.starts_with("http://127.0.0.1:"), "OP issuer {} is not loopback", op.issuer);
        Ok(op)
    }

    /// The next event of kind `kind` (others are skipped); bounded by [`EVENT_TIMEOUT`].
    async fn event(&mut self, kind: &str) -> Value {
        let wait = async {
            while let Some(e) = self.events.recv().await {
                if e["event"] == kind {
                    return Some(e);
                }
            }
            None
        };
        match tokio::time::timeout(EVENT_TIMEOUT, wait).await {
            Ok(Some(e)) => e,
            Ok(None) => panic!("the OP exited before a {kind:?} event"),
            Err(_) => panic!("no {kind:?} event from the OP within {EVENT_TIMEOUT:?}"),
        }
    }

    /// The gateway, with movistar pointed at this OP.
    async fn gateway(&self) -> Demo {
        let issuer = self.issuer.clone();
        let secret = self.secret.clone();
        support::start_demo_keeping(&["movistar"], move |text| {
            let movistar = "issuer = \"http://127.0.0.1:9401\"\nclient_id = \"mcgate\"\nclient_secret_env = \"MCGATE_MOVISTAR_SECRET\"";
            assert!(text.contains(movistar), "routing.toml's movistar block changed; update this test");
            // The OP's first answers come from a cold Node process on a busy machine: give it
            // more than the 1 s the other tests' simulators get.
            let with_op = format!("issuer = \"{issuer}\"\nclient_id = \"{OP_CLIENT_ID}\"\nclient_secret = \"{secret}\"");
            text.replacen(movistar, &with_op, 1)
                .replacen("call_timeout_ms = 1000", "call_timeout_ms = 5000", 1)
                .replace("operator_fetch_lease_ms = 10000", "operator_fetch_lease_ms = 15000")
        })
        .await
    }
}

impl Drop for OidcProviderOp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn number(demo: &Demo, digit: u8) -> String {
    test_msisdn(&demo.gateway, "movistar", digit)
        .unwrap_or_else(|| panic!("no movistar test number ending in {digit}"))
        .digits()
}

async fn setup() -> (OidcProviderOp, Demo, Rp) {
    setup_with(false).await
}

async fn setup_with(stock_binding_message: bool) -> (OidcProviderOp, Demo, Rp) {
    let op = tokio::task::spawn_blocking(move || OidcProviderOp::start(stock_binding_message)).await.expect("OP start");
    let demo = op.gateway().await;
    let rp = Rp::new(&demo);
    (op, demo, rp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_through_oidc_provider_yields_a_gateway_id_token() {
    let (mut op, demo, rp) = setup().await;
    let digits = number(&demo, 1);
    let binding = "Pago 12,50 € a Demo";
    let ack = rp
        .post(
            "/bc-authorize",
            &[("scope", "openid mc_authn"), ("login_hint", &format!("tel:+{digits}")), ("binding_message", binding)],
        )
        .await;
    assert_eq!(ack.status, 200, "{ack:?}");

    // What the operator received: our own request, the RP's binding message verbatim.
    let sent = op.event("bc-authorize").await;
    assert_eq!(sent["login_hint"], format!("MSISDN:{digits}"), "{sent}");
    assert_eq!(sent["scope"], "openid mc_authn", "{sent}");
    assert_eq!(sent["acr_values"], "2", "{sent}");
    assert_eq!(sent["binding_message"], binding, "{sent}");
    assert_eq!(sent["requested_expiry"], "300", "{sent}");
    let ours = ack.body["auth_req_id"].as_str().expect("auth_req_id");
    assert!(!ours.is_empty(), "{ack:?}");

    let (done, _) = rp.poll_until_done(&ack, POLL_DEADLINE).await;
    assert_eq!(done.status, 200, "{done:?}");
    let id_token = done.body["id_token"].as_str().expect("id_token");
    let c = claims(id_token);
    assert_eq!(c["iss"], demo.public_url.as_str(), "the gateway issues, not the operator: {c}");
    assert_eq!(c["aud"], "demo-rp", "{c}");
    assert_eq!(c["azp"], "demo-rp", "{c}");
    assert_eq!(c["acr"], "2", "{c}");
    assert_eq!(c["amr"], serde_json::json!(["SIM_OK"]), "{c}");
    let sub = c["sub"].as_str().expect("sub");
    // oidc-provider's sub for the person is the MSISDN itself: it must not pass through.
    assert!(!sub.contains(&digits) && !sub.contains(&digits[2..]), "sub {sub} reveals the MSISDN");
    for t in ["iat", "exp", "auth_time"] {
        assert!(c[t].is_u64(), "{t}: {c}");
    }
    let header = jsonwebtoken::decode_header(id_token).expect("JWS header");
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);

    // The same person again: the same pairwise subject (stable per sector).
    let again = rp.bc_authorize(&format!("MSISDN:{digits}")).await;
    assert_eq!(again.status, 200, "{again:?}");
    let (done2, _) = rp.poll_until_done(&again, POLL_DEADLINE).await;
    assert_eq!(done2.status, 200, "{done2:?}");
    assert_eq!(claims(done2.body["id_token"].as_str().expect("id_token"))["sub"], sub);
    // Every call to the operator (metadata, JWKS, bc-authorize, polls) went through cleanly.
    let errors = support::metric(&demo, "mcgate_operator_errors_total", &[("operator", "movistar")]).await;
    assert_eq!(errors, 0.0, "operator call errors against oidc-provider");
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pin_approval_at_acr_3_carries_the_operator_acr_and_amr() {
    let (mut op, demo, rp) = setup().await;
    let digits = number(&demo, 7);
    let ack = rp
        .post(
            "/bc-authorize",
            &[("scope", "openid mc_authn"), ("login_hint", &format!("MSISDN:{digits}")), ("acr_values", "3")],
        )
        .await;
    assert_eq!(ack.status, 200, "{ack:?}");
    let sent = op.event("bc-authorize").await;
    assert_eq!(sent["acr_values"], "3", "{sent}");
    assert!(sent.get("binding_message").is_none(), "no binding message was given: {sent}");
    let (done, _) = rp.poll_until_done(&ack, POLL_DEADLINE).await;
    assert_eq!(done.status, 200, "{done:?}");
    let c = claims(done.body["id_token"].as_str().expect("id_token"));
    assert_eq!(c["acr"], "3", "{c}");
    assert_eq!(c["amr"], serde_json::json!(["SIM_PIN"]), "{c}");

    // oidc-provider does not hold itself to acr_values: asked for "3", a click-OK approval still
    // comes back at acr "2". The gateway must not hand that to an RP that asked for 3.
    let weak = rp
        .post(
            "/bc-authorize",
            &[
                ("scope", "openid mc_authn"),
                ("login_hint", &format!("MSISDN:{}", number(&demo, 1))),
                ("acr_values", "3"),
            ],
        )
        .await;
    assert_eq!(weak.status, 200, "{weak:?}");
    assert_eq!(op.event("bc-authorize").await["acr_values"], "3");
    let result = op.event("result").await;
    assert_eq!((&result["outcome"], &result["acr"]), (&"approved".into(), &"2".into()), "{result}");
    let (done, _) = rp.poll_until_done(&weak, POLL_DEADLINE).await;
    assert_eq!((done.status, done.error()), (400, "transaction_failed"), "{done:?}");
    assert!(done.body.get("id_token").is_none(), "{done:?}");
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denial_and_failure_at_oidc_provider_reach_the_rp() {
    let (mut op, demo, rp) = setup().await;
    let denied = rp.bc_authorize(&format!("MSISDN:{}", number(&demo, 2))).await;
    assert_eq!(denied.status, 200, "{denied:?}");
    assert_eq!(op.event("result").await["outcome"], "denied");
    // The operator's token endpoint answers 400 transaction_failed: its side broke (§5 class
    // `unavailable`), not our configuration.
    let failed = rp.bc_authorize(&format!("MSISDN:{}", number(&demo, 6))).await;
    assert_eq!(failed.status, 200, "{failed:?}");
    assert_eq!(op.event("result").await["outcome"], "failed");

    let ((d, _), (f, _)) =
        tokio::join!(rp.poll_until_done(&denied, POLL_DEADLINE), rp.poll_until_done(&failed, POLL_DEADLINE));
    assert_eq!((d.status, d.error()), (400, "access_denied"), "{d:?}");
    assert_eq!((f.status, f.error()), (400, "transaction_failed"), "{f:?}");
    assert_eq!(f.body["error_description"], "operator_unavailable", "{f:?}");
    // Terminal: asking again gives the same answer.
    let again = rp.token(denied.body["auth_req_id"].as_str().unwrap()).await;
    assert_eq!(again.error(), "access_denied", "{again:?}");
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binding_message_refused_by_the_operator_is_invalid_binding_message() {
    // oidc-provider's stock rule: 1-20 characters of [a-zA-Z0-9-._+/!?#]. Nothing reaches the
    // person, so the RP is told at once and may retry with a simpler message.
    let (mut op, demo, rp) = setup_with(true).await;
    let digits = number(&demo, 1);
    let refused = rp
        .post(
            "/bc-authorize",
            &[
                ("scope", "openid mc_authn"),
                ("login_hint", &format!("MSISDN:{digits}")),
                ("binding_message", "Pago 12,50 € a Demo"),
            ],
        )
        .await;
    assert_eq!((refused.status, refused.error()), (400, "invalid_binding_message"), "{refused:?}");
    let plain = rp
        .post(
            "/bc-authorize",
            &[
                ("scope", "openid mc_authn"),
                ("login_hint", &format!("MSISDN:{digits}")),
                ("binding_message", "Pago-12.50-Demo"),
            ],
        )
        .await;
    assert_eq!(plain.status, 200, "{plain:?}");
    assert_eq!(op.event("bc-authorize").await["binding_message"], "Pago-12.50-Demo");
    let (done, _) = rp.poll_until_done(&plain, POLL_DEADLINE).await;
    assert_eq!(done.status, 200, "{done:?}");
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_refusals_at_oidc_provider_reach_the_rp_at_bc_authorize() {
    let (_op, demo, rp) = setup().await;
    let unknown = rp.bc_authorize(&format!("MSISDN:{}", number(&demo, 4))).await;
    assert_eq!((unknown.status, unknown.error()), (400, "unknown_user_id"), "{unknown:?}");
    let broken = rp.bc_authorize(&format!("MSISDN:{}", number(&demo, 5))).await;
    assert_eq!((broken.status, broken.error()), (503, "temporarily_unavailable"), "{broken:?}");
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_request_expires_with_expired_token() {
    let (mut op, demo, rp) = setup().await;
    let ack = rp
        .post(
            "/bc-authorize",
            &[
                ("scope", "openid mc_authn"),
                ("login_hint", &format!("MSISDN:{}", number(&demo, 3))),
                ("requested_expiry", "2"),
            ],
        )
        .await;
    assert_eq!(ack.status, 200, "{ack:?}");
    assert_eq!(ack.body["expires_in"], 2, "{ack:?}");
    let sent = op.event("bc-authorize").await;
    assert_eq!(sent["requested_expiry"], "2", "the RP's expiry bounds the operator's: {sent}");
    assert_eq!(sent["expires_in"], 2, "{sent}");
    let (done, pending) = rp.poll_until_done(&ack, POLL_DEADLINE).await;
    assert_eq!((done.status, done.error()), (400, "expired_token"), "{done:?}");
    assert!(pending >= 1, "pending before expiry");
    demo.stop().await;
}
