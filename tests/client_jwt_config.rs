//! `routing.toml` for client keys and ID token algorithms: every mistake is named by its key at
//! load (missing or doubled key sources, private keys in a JWKS, plain-http `jwks_uri` off
//! loopback, secrets on a `private_key_jwt` client, unknown algorithms, `[client_jwt]` bounds),
//! and a client asking for ES256 ID tokens without a P-256 signing key stops the start.

use mcgate::app::{build, BuildError, BuildOptions};
use mcgate::config::{parse, Secret, ValidateOptions, EMBEDDED_ROUTING_TOML};
use mcgate::tokens::keys::{generate_p256_pkcs8_pem, generate_rsa_pkcs8_pem, SigningKey};
use mcgate::tokens::KeySet;
use std::path::Path;

const OPTS: ValidateOptions = ValidateOptions { check_environment: false };

fn errors_of(extra: &str) -> String {
    errors_in(&format!("{EMBEDDED_ROUTING_TOML}\n{extra}"))
}

fn errors_in(text: &str) -> String {
    match parse(text, Path::new("."), OPTS) {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    }
}

fn ec_jwks() -> String {
    let k = SigningKey::from_pem(generate_p256_pkcs8_pem().unwrap().as_bytes()).unwrap();
    mcgate::sim::rp_client::public_jwks(&k)
}

#[test]
fn client_key_mistakes_are_listed_by_key() {
    let jwks = ec_jwks();
    let mut private: serde_json::Value = serde_json::from_str(&jwks).unwrap();
    private["keys"][0]["d"] = "AAAA".into();
    let extra = format!(
        r#"
[[clients]]
client_id = "no-keys"
token_endpoint_auth_method = "private_key_jwt"
sector_identifier = "x"

[[clients]]
client_id = "two-sources"
token_endpoint_auth_method = "private_key_jwt"
jwks = '{jwks}'
jwks_uri = "https://rp.example/jwks"
sector_identifier = "x"

[[clients]]
client_id = "private-jwks"
token_endpoint_auth_method = "private_key_jwt"
jwks = '{private}'
sector_identifier = "x"

[[clients]]
client_id = "plain-uri"
token_endpoint_auth_method = "private_key_jwt"
jwks_uri = "http://rp.example/jwks"
sector_identifier = "x"

[[clients]]
client_id = "secret-too"
token_endpoint_auth_method = "private_key_jwt"
client_secret_sha256 = ["bc63bdd97c987c430aa5b804471834171627688e22498d944a36d90c7f9ef844"]
jwks = '{jwks}'
sector_identifier = "x"
id_token_signed_response_alg = "HS256"
"#
    );
    let text = format!("{EMBEDDED_ROUTING_TOML}\n{extra}")
        .replace("assertion_max_lifetime_s = 300 ", "assertion_max_lifetime_s = 0 ")
        .replace("jwks_fetch_timeout_ms = 5000 ", "jwks_fetch_timeout_ms = 0 ");
    let err = errors_in(&text);
    // The extra clients follow the embedded file's own.
    let n = mcgate::config::parse_unvalidated(EMBEDDED_ROUTING_TOML).expect("embedded config").clients.len();
    for expected in [
        format!("clients[{}].jwks: private_key_jwt needs the client's public keys", n),
        format!("clients[{}].jwks: give one of jwks, jwks_file, jwks_uri", n + 1),
        format!("clients[{}].jwks: keys[0] has the private member \"d\"", n + 2),
        format!("clients[{}].jwks_uri: must be https", n + 3),
        format!("clients[{}].client_secret_sha256: a private_key_jwt client authenticates with its keys only", n + 4),
        format!("clients[{}].id_token_signed_response_alg: must be \"RS256\" or \"ES256\"", n + 4),
        "client_jwt.assertion_max_lifetime_s: must be > 0".to_owned(),
        "client_jwt.jwks_fetch_timeout_ms: must be > 0".to_owned(),
    ] {
        assert!(err.contains(expected.as_str()), "missing {expected:?} in:\n{err}");
    }
    assert_eq!(err.lines().count(), 8, "{err}");
}

#[test]
fn a_secret_client_may_register_keys_for_request_objects_and_loopback_http_is_allowed() {
    let extra = format!(
        "[[clients]]\nclient_id = \"sig\"\nclient_secret_sha256 = [\"{}\"]\njwks = '{}'\nsector_identifier = \"x\"\n\n\
         [[clients]]\nclient_id = \"local\"\ntoken_endpoint_auth_method = \"private_key_jwt\"\n\
         jwks_uri = \"http://127.0.0.1:9999/jwks\"\nsector_identifier = \"x\"\n",
        "a".repeat(64),
        ec_jwks()
    );
    assert_eq!(errors_of(&extra), "");
}

#[test]
fn an_es256_client_without_a_p256_signing_key_stops_the_start() {
    // The shipped demo-rp-jwt client asks for ES256; give the gateway an RSA key only.
    let text = EMBEDDED_ROUTING_TOML
        .replace("jwks_file = \"certs/demo-rp-jwt.jwks.json\"", &format!("jwks = '{}'", ec_jwks()));
    let loaded = parse(&text, Path::new("."), OPTS).unwrap();
    let rsa = SigningKey::from_pem(generate_rsa_pkcs8_pem().unwrap().as_bytes()).unwrap();
    let mut opts = BuildOptions::new();
    opts.keys = Some(KeySet::new(vec![rsa]).unwrap());
    opts.ported_csv = Some(String::new());
    for op in &loaded.config.operators {
        opts.operator_secrets.insert(op.id.clone(), Secret::new("s"));
    }
    match build(&loaded, opts) {
        Err(BuildError::Client(id, msg)) => {
            assert_eq!(id, "demo-rp-jwt");
            assert!(msg.contains("ES256"), "{msg}");
        }
        other => panic!("expected a client error, got {:?}", other.map(|_| ())),
    }
}
