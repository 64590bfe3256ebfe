//! Interop: a real third-party OIDC client library, openid-client v6 for Node.js, runs the CIBA
//! poll flow against the demo gateway over TLS (discovery, client_secret_basic, bc-authorize,
//! token polling, ID token validation including the signature via jwks_uri).
//!
//! The Node side is tests/node/ciba-poll.mjs; its dependencies are installed by `scripts/test`
//! (`npm install` in tests/node). A missing installation fails these tests; it never skips them.

mod support;

use mcgate::demo::{test_msisdn, Demo};
use serde_json::Value;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Bound on one run of the Node script (it bounds its own polling at 45 s).
const NODE_TIMEOUT: Duration = Duration::from_secs(60);

fn node_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("node")
}

/// Fails (never skips) when the Node dependencies are not installed.
fn require_node_modules() {
    let lib = node_dir().join("node_modules").join("openid-client").join("package.json");
    assert!(
        lib.is_file(),
        "openid-client is not installed ({} is missing): run `scripts/test`, which runs `npm install` in tests/node, \
         or run `npm install` in tests/node yourself",
        lib.display()
    );
}

/// What one run of ciba-poll.mjs produced.
struct NodeRun {
    status: std::process::ExitStatus,
    stdout: String,
    stderr: String,
}

impl NodeRun {
    /// The single JSON line printed on success; panics with everything node said otherwise.
    fn json(&self) -> Value {
        assert!(
            self.status.success(),
            "node script failed ({}):\n--- stderr ---\n{}\n--- stdout ---\n{}",
            self.status,
            self.stderr,
            self.stdout
        );
        let lines: Vec<&str> = self.stdout.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(
            lines.len(),
            1,
            "expected one line of JSON on stdout, got:\n{}\n--- stderr ---\n{}",
            self.stdout,
            self.stderr
        );
        serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", lines[0]))
    }
}

/// Runs `node tests/node/ciba-poll.mjs` against `demo` for `login_hint`, trusting the demo's
/// self-signed certificate through NODE_EXTRA_CA_CERTS. Killed after [`NODE_TIMEOUT`].
async fn run_node(demo: &Demo, login_hint: &str, expect_error: Option<&str>) -> NodeRun {
    run_node_with(demo, login_hint, expect_error, &[]).await
}

/// As [`run_node`], with extra environment for the script (e.g. another client).
async fn run_node_with(demo: &Demo, login_hint: &str, expect_error: Option<&str>, env: &[(&str, &str)]) -> NodeRun {
    run_script(demo, "ciba-poll.mjs", login_hint, expect_error, env).await
}

/// As [`run_node_with`] for another script of tests/node.
async fn run_script(
    demo: &Demo,
    script: &str,
    login_hint: &str,
    expect_error: Option<&str>,
    env: &[(&str, &str)],
) -> NodeRun {
    require_node_modules();
    let mut ca =
        tempfile::Builder::new().prefix("mcgate-demo-ca").suffix(".pem").tempfile().expect("temp file for the CA");
    ca.write_all(demo.tls_cert_pem.as_bytes()).expect("write CA");
    ca.flush().expect("flush CA");

    let mut cmd = Command::new("node");
    cmd.arg(Path::new("tests").join("node").join(script))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("ISSUER", &demo.public_url)
        .env("CLIENT_ID", &demo.client_id)
        .env("CLIENT_SECRET", demo.client_secret.expose())
        .env("LOGIN_HINT", login_hint)
        .env("NODE_EXTRA_CA_CERTS", ca.path())
        // TLS must really be verified against the demo's certificate.
        .env_remove("NODE_TLS_REJECT_UNAUTHORIZED")
        .env_remove("EXPECT_ERROR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(e) = expect_error {
        cmd.env("EXPECT_ERROR", e);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }

    let script = script.to_owned();
    let run = tokio::task::spawn_blocking(move || {
        let mut child =
            cmd.spawn().unwrap_or_else(|e| panic!("cannot start `node` ({e}); Node.js 20+ must be on PATH"));
        let mut out = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let out_t = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        });
        let err_t = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let deadline = Instant::now() + NODE_TIMEOUT;
        let (status, timed_out) = loop {
            if let Some(status) = child.try_wait().expect("wait for node") {
                break (status, false);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                break (child.wait().expect("reap node"), true);
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let run = NodeRun { status, stdout: out_t.join().unwrap(), stderr: err_t.join().unwrap() };
        assert!(
            !timed_out,
            "node {script} did not finish within {NODE_TIMEOUT:?}; killed.\n--- stderr ---\n{}\n--- stdout ---\n{}",
            run.stderr, run.stdout
        );
        run
    })
    .await;
    drop(ca);
    match run {
        Ok(r) => r,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("node runner task: {e}"),
    }
}

fn number(demo: &Demo, operator: &str, digit: u8) -> String {
    test_msisdn(&demo.gateway, operator, digit)
        .unwrap_or_else(|| panic!("no test number for {operator} ending in {digit}"))
        .digits()
}

/// Checks the claims openid-client validated and printed for an approving number.
fn assert_approved(demo: &Demo, out: &Value, digits: &str) {
    let c = &out["claims"];
    assert_eq!(c["iss"], Value::String(demo.public_url.clone()), "iss; output: {out}");
    assert_eq!(c["aud"], "demo-rp", "aud; output: {out}");
    assert_eq!(c["azp"], "demo-rp", "azp; output: {out}");
    assert_eq!(c["acr"], "2", "acr; output: {out}");
    assert_eq!(c["amr"], serde_json::json!(["SIM_OK"]), "amr; output: {out}");
    assert!(c.get("nonce").is_none(), "no nonce in CIBA; output: {out}");
    let sub = c["sub"].as_str().unwrap_or_else(|| panic!("sub missing; output: {out}"));
    assert!(!sub.is_empty(), "sub empty; output: {out}");
    let national = &digits[digits.len() - 9..];
    assert!(!sub.contains(digits) && !sub.contains(national), "sub {sub} reveals the MSISDN {digits}");
    for t in ["iat", "exp", "auth_time"] {
        assert!(c[t].is_u64(), "{t} must be a NumericDate; output: {out}");
    }
    assert!(c["exp"].as_u64() > c["iat"].as_u64(), "exp after iat; output: {out}");
    assert_eq!(out["token_type"], "bearer", "token_type (openid-client lower-cases it); output: {out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_client_completes_ciba_poll_for_movistar() {
    require_node_modules();
    let demo = support::start_demo().await;
    let digits = number(&demo, "movistar", 1);
    let out = run_node(&demo, &format!("MSISDN:{digits}"), None).await.json();
    assert_approved(&demo, &out, &digits);
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_client_completes_ciba_poll_for_vodafone_and_orange() {
    require_node_modules();
    let demo = support::start_demo().await;
    let mut subs = Vec::new();
    for operator in ["vodafone", "orange"] {
        let digits = number(&demo, operator, 1);
        let out = run_node(&demo, &format!("MSISDN:{digits}"), None).await.json();
        assert_approved(&demo, &out, &digits);
        subs.push(out["claims"]["sub"].as_str().unwrap().to_owned());
    }
    assert_ne!(subs[0], subs[1], "different people get different subjects");
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_client_sees_access_denied_for_a_denying_number() {
    require_node_modules();
    let demo = support::start_demo().await;
    let digits = number(&demo, "movistar", 2);
    let out = run_node(&demo, &format!("MSISDN:{digits}"), Some("access_denied")).await.json();
    assert_eq!(out["error"], "access_denied", "output: {out}");
    assert_eq!(out["status"], 400, "output: {out}");
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_client_completes_ciba_poll_with_private_key_jwt_and_an_es256_id_token() {
    require_node_modules();
    let demo = support::start_demo().await;
    let mut key = tempfile::Builder::new().prefix("mcgate-rp-key").suffix(".pem").tempfile().expect("temp key file");
    key.write_all(demo.jwt_client_key_pem.expose().as_bytes()).expect("write key");
    key.flush().expect("flush key");
    let digits = number(&demo, "movistar", 1);
    let key_path = key.path().to_str().expect("utf-8 path").to_owned();
    let env = [
        ("CLIENT_ID", demo.jwt_client_id.as_str()),
        ("CLIENT_KEY_FILE", key_path.as_str()),
        ("CLIENT_KEY_KID", demo.jwt_client_key.kid.as_str()),
        ("ID_TOKEN_ALG", "ES256"),
    ];
    let out = run_node_with(&demo, &format!("MSISDN:{digits}"), None, &env).await.json();
    let c = &out["claims"];
    assert_eq!(c["aud"], "demo-rp-jwt", "output: {out}");
    assert_eq!(c["azp"], "demo-rp-jwt", "output: {out}");
    assert_eq!(c["acr"], "2", "output: {out}");
    demo.stop().await;
}

/// CIBA ping: the demo notifies `demo-rp-node-ping` at a loopback port this test reserves (bound
/// on port 0, then released for Node to listen on); openid-client's side waits for the ping
/// (Bearer checked), then collects and verifies the tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_client_completes_ciba_ping_after_the_notification() {
    require_node_modules();
    let reserved = std::net::TcpListener::bind("127.0.0.1:0").expect("reserve a loopback port");
    let port = reserved.local_addr().unwrap().port();
    let demo = support::start_demo_with(|t| {
        // The demo gives every `demo-rp*` secret client its printed secret.
        format!(
            "{t}\n[[clients]]\nclient_id = \"demo-rp-node-ping\"\nclient_secret_sha256 = [\"{}\"]\n\
             backchannel_token_delivery_mode = \"ping\"\n\
             backchannel_client_notification_endpoint = \"http://127.0.0.1:{port}/ping\"\n\
             scopes = [\"openid\", \"mc_authn\"]\nsector_identifier = \"rp.example.org\"\n",
            "0".repeat(64)
        )
    })
    .await;
    let digits = number(&demo, "movistar", 1);
    let port_s = port.to_string();
    drop(reserved); // Node listens on it before it starts the authentication
    let env = [("CLIENT_ID", "demo-rp-node-ping"), ("NOTIFY_PORT", port_s.as_str())];
    let out = run_script(&demo, "ciba-ping.mjs", &format!("MSISDN:{digits}"), None, &env).await.json();
    assert_eq!(out["pings"], 1, "exactly one ping; output: {out}");
    assert_eq!(out["rejected"], 0, "the gateway sent the right bearer to the right path; output: {out}");
    let c = &out["claims"];
    assert_eq!(c["iss"], Value::String(demo.public_url.clone()), "output: {out}");
    assert_eq!(c["aud"], "demo-rp-node-ping", "output: {out}");
    assert_eq!(c["acr"], "2", "output: {out}");
    assert!(c.get("urn:openid:params:jwt:claim:auth_req_id").is_none(), "only push tokens carry it; output: {out}");
    demo.stop().await;
}
