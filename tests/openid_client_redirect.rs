//! Interop: openid-client v6 (Node.js) runs the authorization code flow with PKCE against the
//! demo gateway over TLS — `buildAuthorizationUrl`, the browser hops followed by hand with
//! `fetch(redirect: 'manual')`, `authorizationCodeGrant` with its strict checks (iss, state,
//! nonce, max_age, signature via jwks_uri) and `fetchUserInfo` — for a confidential and a public
//! client. The Node side is tests/node/redirect.mjs; `scripts/test` installs its dependencies.
//! A missing installation fails these tests; it never skips them.

mod support;

use mcgate::demo::{test_msisdn, Demo};
use serde_json::Value;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Bound on one run of the Node script.
const NODE_TIMEOUT: Duration = Duration::from_secs(60);

fn require_node_modules() {
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node/node_modules/openid-client/package.json");
    assert!(
        lib.is_file(),
        "openid-client is not installed ({} is missing): run `scripts/test` or `npm install` in tests/node",
        lib.display()
    );
}

/// Runs tests/node/redirect.mjs and returns its one JSON line (panics with its output otherwise).
async fn run_node(
    demo: &Demo,
    client_id: &str,
    secret: Option<String>,
    redirect_uri: &str,
    login_hint: String,
) -> Value {
    require_node_modules();
    let mut ca = tempfile::Builder::new().prefix("mcgate-demo-ca").suffix(".pem").tempfile().expect("temp CA file");
    ca.write_all(demo.tls_cert_pem.as_bytes()).expect("write CA");
    ca.flush().expect("flush CA");
    let mut cmd = Command::new("node");
    cmd.arg(Path::new("tests").join("node").join("redirect.mjs"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("ISSUER", &demo.public_url)
        .env("CLIENT_ID", client_id)
        .env("REDIRECT_URI", redirect_uri)
        .env("LOGIN_HINT", login_hint)
        .env("NODE_EXTRA_CA_CERTS", ca.path())
        .env_remove("NODE_TLS_REJECT_UNAUTHORIZED")
        .env_remove("CLIENT_SECRET")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(s) = secret {
        cmd.env("CLIENT_SECRET", s);
    }
    let out = tokio::task::spawn_blocking(move || {
        let mut child =
            cmd.spawn().unwrap_or_else(|e| panic!("cannot start `node` ({e}); Node.js 20+ must be on PATH"));
        let (mut so, mut se) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let so_t = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = so.read_to_string(&mut s);
            s
        });
        let se_t = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = se.read_to_string(&mut s);
            s
        });
        let deadline = Instant::now() + NODE_TIMEOUT;
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait for node") {
                break Some(s);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        (status, so_t.join().unwrap(), se_t.join().unwrap())
    })
    .await
    .expect("node runner");
    drop(ca);
    let (status, stdout, stderr) = out;
    let status = status.unwrap_or_else(|| panic!("redirect.mjs killed after {NODE_TIMEOUT:?}\n{stderr}\n{stdout}"));
    assert!(status.success(), "redirect.mjs failed ({status}):\n--- stderr ---\n{stderr}\n--- stdout ---\n{stdout}");
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one JSON line expected:\n{stdout}\n{stderr}");
    serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("not JSON ({e}): {}", lines[0]))
}

fn hint(demo: &Demo, operator: &str) -> String {
    format!("MSISDN:{}", test_msisdn(&demo.gateway, operator, 1).expect("test number").digits())
}

fn assert_flow(demo: &Demo, out: &Value, client_id: &str) {
    let c = &out["claims"];
    assert_eq!(c["iss"], Value::String(demo.public_url.clone()), "{out}");
    assert_eq!(c["aud"], client_id, "{out}");
    assert_eq!(c["nonce"], out["expected_nonce"], "the RP's nonce; {out}");
    assert_eq!(c["acr"], "2", "{out}");
    assert!(c["at_hash"].is_string() && c["auth_time"].is_u64(), "{out}");
    assert_eq!(out["userinfo"]["sub"], c["sub"], "{out}");
    assert_eq!(out["iss_in_response"], Value::String(demo.public_url.clone()), "{out}");
    let paths: Vec<&str> = out["hops"].as_array().unwrap().iter().map(|h| h["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["/authorize", "/authorize", "/callback"], "gateway, operator, gateway; {out}");
    assert_eq!(out["replay"], "invalid_grant", "a code works once; {out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_client_runs_the_code_flow_as_a_confidential_client() {
    require_node_modules();
    let demo = support::start_demo().await;
    let secret = Some(demo.client_secret.expose().to_owned());
    let out = run_node(&demo, "demo-rp", secret, "http://127.0.0.1/demo-rp/callback", hint(&demo, "movistar")).await;
    assert_flow(&demo, &out, "demo-rp");
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_client_runs_the_code_flow_as_a_public_client() {
    require_node_modules();
    let demo = support::start_demo().await;
    let out = run_node(&demo, "demo-spa", None, "http://127.0.0.1/demo-spa/callback", hint(&demo, "orange")).await;
    assert_flow(&demo, &out, "demo-spa");
    demo.stop().await;
}
