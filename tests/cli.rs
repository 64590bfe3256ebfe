//! The `mcgate` binary: `check-config` lists every problem of a broken file with its key path,
//! accepts the shipped `routing.toml` once its files exist, `certs` writes the dev PKI, and
//! `serve` starts on real files, reports its addresses, answers, and exits cleanly on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn mcgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mcgate"))
}

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn check_config_lists_every_problem_with_its_key() {
    let out = mcgate().args(["check-config", &fixture("broken-routing.toml")]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    for expected in [
        "server.issuer: must be https",
        "server.admin_listen: must be an IP:port",
        "server.tls_cert: required when server.tls = true",
        "server.tls_key: required when server.tls = true",
        "ciba.default_expiry_s: must not exceed ciba.max_expiry_s",
        "operators[0].client_secret: missing",
        "operators[1].id: duplicate operator id \"movistar\"",
        "operators[1].prefixes[0]: prefix 34609 is already listed at operators[0].prefixes[0]",
        "operators[1].issuer: not a valid URL",
        "operators[1].mcc_mnc[0]: must be MCC-MNC",
        "clients[0].client_secret_sha256[0]: must be 64 hex digits",
        "clients[0].min_acr: must be \"2\" or \"3\"",
        "clients[0].allowed_operators[0]: unknown operator \"telefonica\"",
        "clients[0].redirect_uris[0]: must be https",
        "clients[0].notification_uris[0]: must be https",
        "clients[0].notification_uris: server-initiated requests are signed",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    assert!(err.contains("16 problem(s)"), "{err}");
}

#[test]
fn check_config_reports_unknown_keys_and_accepts_a_valid_file() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("typo.toml");
    std::fs::write(
        &bad,
        std::fs::read_to_string(fixture("valid-routing.toml"))
            .unwrap()
            .replace("tls = false", "tls = false\ntsl = true"),
    )
    .unwrap();
    let out = mcgate().args(["check-config", bad.to_str().unwrap()]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("server") && err.contains("tsl"), "{err}");

    let ok = mcgate().args(["check-config", &fixture("valid-routing.toml")]).output().unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
}

#[test]
fn shipped_routing_toml_validates_once_certs_and_secrets_exist() {
    let dir = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    std::fs::copy(format!("{root}/routing.toml"), dir.path().join("routing.toml")).unwrap();
    std::fs::copy(format!("{root}/ported-numbers.csv"), dir.path().join("ported-numbers.csv")).unwrap();
    let cfg = dir.path().join("routing.toml");
    let missing =
        mcgate().args(["check-config", cfg.to_str().unwrap()]).env_remove("MCGATE_MOVISTAR_SECRET").output().unwrap();
    let err = String::from_utf8(missing.stderr).unwrap();
    assert!(!missing.status.success());
    assert!(err.contains("server.tls_cert: file") && err.contains("MCGATE_MOVISTAR_SECRET is not set"), "{err}");

    let certs = mcgate().args(["certs", "--dir", dir.path().join("certs").to_str().unwrap()]).output().unwrap();
    assert!(certs.status.success());
    for f in [
        "server.pem",
        "server-key.pem",
        "signing-rs256.pem",
        "signing-es256.pem",
        "demo-rp-jwt-key.pem",
        "demo-rp-jwt.jwks.json",
        "pairwise.secret",
        "subscriber-id.secret",
        "sms-hmac.secret",
        "log-pseudonym.secret",
    ] {
        assert!(dir.path().join("certs").join(f).is_file(), "{f}");
    }
    let ok = mcgate()
        .args(["check-config", cfg.to_str().unwrap()])
        .env("MCGATE_MOVISTAR_SECRET", "a")
        .env("MCGATE_VODAFONE_SECRET", "b")
        .env("MCGATE_ORANGE_SECRET", "c")
        .env("MCGATE_MC_SI_DEMO_SECRET", "d")
        .output()
        .unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
}

#[test]
fn serve_reports_its_addresses_answers_and_exits_cleanly_on_sigterm() {
    let mut child = mcgate()
        .args(["serve", "--config", &fixture("valid-routing.toml")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert!(line.starts_with("mcgate ready: public=http://127.0.0.1:"), "{line}");
    let public = line.split_whitespace().find_map(|w| w.strip_prefix("public=")).unwrap().to_owned();
    let admin = line.split_whitespace().find_map(|w| w.strip_prefix("admin=")).unwrap().to_owned();

    let get = |url: String| -> (u16, String) {
        let out = Command::new("curl").args(["-s", "-o", "-", "-w", "\n%{http_code}", &url]).output().expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.parse().unwrap_or(0), body.to_owned())
    };
    let (code, body) = get(format!("{public}/.well-known/openid-configuration"));
    assert_eq!(code, 200);
    assert!(body.contains("\"issuer\":\"http://127.0.0.1:8088\""));
    assert_eq!(get(format!("{admin}/ready")).0, 200);

    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status:?}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn client_assertion_signs_a_fresh_single_use_jwt_with_the_key_certs_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    assert!(mcgate().args(["certs", "--dir", certs.to_str().unwrap()]).output().unwrap().status.success());
    let key = certs.join("demo-rp-jwt-key.pem");
    let run = || {
        let out = mcgate()
            .args(["client-assertion", "--key", key.to_str().unwrap(), "--client-id", "demo-rp-jwt"])
            .args(["--aud", "https://127.0.0.1:8443"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let (a, b) = (run(), run());
    let jwks: jsonwebtoken::jwk::JwkSet =
        serde_json::from_str(&std::fs::read_to_string(certs.join("demo-rp-jwt.jwks.json")).unwrap()).unwrap();
    let header = jsonwebtoken::decode_header(&a).unwrap();
    let jwk = jwks.find(header.kid.as_deref().unwrap()).expect("kid of the published JWKS");
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    v.set_audience(&["https://127.0.0.1:8443"]);
    let c = jsonwebtoken::decode::<serde_json::Value>(&a, &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(), &v)
        .unwrap()
        .claims;
    assert_eq!((c["iss"].as_str(), c["sub"].as_str()), (Some("demo-rp-jwt"), Some("demo-rp-jwt")));
    assert_eq!(c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(), 60);
    let jti = |t: &str| jsonwebtoken::dangerous::insecure_decode::<serde_json::Value>(t).unwrap().claims["jti"].clone();
    assert_ne!(jti(&a), jti(&b), "a new jti each time");
    let bad = mcgate()
        .args(["client-assertion", "--key", "/nonexistent", "--client-id", "x", "--aud", "y"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
}

#[test]
fn request_object_signs_the_given_claims_with_a_fresh_jti() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    assert!(mcgate().args(["certs", "--dir", certs.to_str().unwrap()]).output().unwrap().status.success());
    let key = certs.join("demo-rp-jwt-key.pem");
    let run = |extra: &[&str]| {
        mcgate()
            .args(["request-object", "--key", key.to_str().unwrap(), "--client-id", "demo-rp-si"])
            .args(["--aud", "https://127.0.0.1:8443", "--claim", "version=mc_si_r2_v1.0"])
            .args(["--claim", "scope=openid mc_authn", "--claim", "login_hint=MSISDN:34600000001"])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run(&[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let jwt = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let jwks: jsonwebtoken::jwk::JwkSet =
        serde_json::from_str(&std::fs::read_to_string(certs.join("demo-rp-jwt.jwks.json")).unwrap()).unwrap();
    let jwk = jwks.find(jsonwebtoken::decode_header(&jwt).unwrap().kid.as_deref().unwrap()).expect("published kid");
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    v.set_audience(&["https://127.0.0.1:8443"]);
    let c = jsonwebtoken::decode::<serde_json::Value>(&jwt, &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(), &v)
        .unwrap()
        .claims;
    assert_eq!((c["iss"].as_str(), c["version"].as_str()), (Some("demo-rp-si"), Some("mc_si_r2_v1.0")));
    assert_eq!((c["scope"].as_str(), c["login_hint"].as_str()), (Some("openid mc_authn"), Some("MSISDN:34600000001")));
    assert_eq!(c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(), 60);
    assert_eq!(c["nbf"], c["iat"]);
    assert!(c["jti"].as_str().is_some_and(|j| !j.is_empty()));
    let bad = run(&["--claim", "no-equals-sign"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("NAME=VALUE"));
}
