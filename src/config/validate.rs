//! Whole-file validation of a parsed [`Config`]: every problem is collected with the TOML key
//! path that holds it (`clients[1].client_secret_sha256[0]: …`), so one run of
//! `mcgate check-config` lists them all and a bad reload can be refused with the full list.

use super::model::{ClientConfig, Config, OperatorConfig};
use super::{ConfigError, ConfigErrors};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;

mod clients;
mod operators;
mod sms;

/// What validation may look at beyond the file itself.
#[derive(Debug, Clone, Copy)]
pub struct ValidateOptions {
    /// Check that referenced files exist and environment variables are set (`serve`,
    /// `check-config`); `demo` replaces those with generated material and skips it.
    pub check_environment: bool,
}

const KNOWN_SCOPES: &[&str] = &["openid", "mc_authn", "mc_authz", "phone", "profile"];
const AUTH_METHODS: &[&str] = &["client_secret_basic", "client_secret_post", "private_key_jwt", "none"];
const ID_TOKEN_ALGS: &[&str] = &["RS256", "ES256"];
const OPERATOR_ALGS: &[&str] = &["RS256", "PS256", "ES256"];

/// Validates `cfg`; `base_dir` resolves relative paths.
pub fn validate(cfg: &Config, base_dir: &Path, opts: ValidateOptions) -> Result<(), ConfigErrors> {
    let mut v = Validator { errors: Vec::new() };
    v.server(cfg, base_dir, opts);
    v.ciba(cfg);
    v.store(cfg);
    v.discovery(cfg, base_dir, opts);
    v.operators(cfg, base_dir, opts);
    v.clients(cfg);
    v.delivery(cfg);
    v.client_keys(cfg, base_dir, opts);
    v.client_jwt(cfg);
    v.sms(cfg);
    v.sms_transport(cfg, opts);
    v.resilience(cfg);
    v.errors.extend(super::edge::validate(&cfg.edge));
    let operator_ids: Vec<&str> = cfg.operators.iter().map(|o| o.id.as_str()).collect();
    v.errors.extend(
        super::records::check(&cfg.audit, &cfg.usage, &operator_ids)
            .into_iter()
            .map(|(path, message)| ConfigError { path, message }),
    );
    if tracing_subscriber::EnvFilter::try_new(&cfg.log.level).is_err() {
        v.err("log.level", "not a valid tracing filter (e.g. \"info\", \"mcgate=debug\")");
    }
    if !matches!(cfg.log.format.as_str(), "json" | "text") {
        v.err("log.format", "must be \"json\" or \"text\"");
    }
    if !(16..=256).contains(&cfg.log.request_id_max_len) {
        v.err("log.request_id_max_len", "must be between 16 and 256");
    }
    if v.errors.is_empty() {
        Ok(())
    } else {
        Err(ConfigErrors(v.errors))
    }
}

struct Validator {
    errors: Vec<ConfigError>,
}
impl Validator {
    fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError { path: path.into(), message: message.into() });
    }

    fn url(&mut self, path: &str, value: &str) -> Option<url::Url> {
        match url::Url::parse(value) {
            Ok(u) if u.scheme() == "https" => Some(u),
            Ok(u) if u.scheme() == "http" && is_loopback_url(&u) => Some(u),
            Ok(u) if u.scheme() == "http" => {
                self.err(path, "must be https (plain http only for loopback hosts)");
                None
            }
            Ok(_) => {
                self.err(path, "must be an https URL");
                None
            }
            Err(e) => {
                self.err(path, format!("not a valid URL: {e}"));
                None
            }
        }
    }

    fn socket(&mut self, path: &str, value: &str) -> Option<SocketAddr> {
        match value.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.err(path, "must be an IP:port socket address, e.g. 127.0.0.1:8443");
                None
            }
        }
    }

    fn file(&mut self, path: &str, base: &Path, file: &Path, opts: ValidateOptions) {
        if opts.check_environment && !base.join(file).is_file() {
            self.err(path, format!("file {} does not exist", base.join(file).display()));
        }
    }

    fn server(&mut self, cfg: &Config, base: &Path, opts: ValidateOptions) {
        let s = &cfg.server;
        if let Some(u) = self.url("server.issuer", &s.issuer) {
            if u.query().is_some() || u.fragment().is_some() {
                self.err("server.issuer", "must not have a query or fragment");
            }
            if s.issuer.ends_with('/') {
                self.err("server.issuer", "must not end with '/'");
            }
        }
        self.socket("server.listen", &s.listen);
        self.socket("server.admin_listen", &s.admin_listen);
        if let Some(p) = &s.plain_listen {
            if let Some(a) = self.socket("server.plain_listen", p) {
                if !a.ip().is_loopback() {
                    self.err("server.plain_listen", "plain HTTP is only allowed on loopback addresses");
                }
            }
        }
        if s.tls {
            for (key, val) in [("server.tls_cert", &s.tls_cert), ("server.tls_key", &s.tls_key)] {
                match val {
                    None => self.err(key, "required when server.tls = true (make one with `mcgate certs`)"),
                    Some(f) => self.file(key, base, f, opts),
                }
            }
        } else if let Ok(a) = s.listen.parse::<SocketAddr>() {
            if !a.ip().is_loopback() {
                self.err("server.tls", "TLS may only be off on loopback listeners");
            }
        }
        if s.max_body_bytes < 1024 {
            self.err("server.max_body_bytes", "must be at least 1024");
        }
        if s.header_read_timeout_ms == 0 {
            self.err("server.header_read_timeout_ms", "must be > 0");
        }
        for (i, k) in cfg.keys.signing_keys.iter().enumerate() {
            self.file(&format!("keys.signing_keys[{i}]"), base, k, opts);
        }
        if let Some(f) = &cfg.keys.pairwise_secret_file {
            self.file("keys.pairwise_secret_file", base, f, opts);
        }
        if let Some(f) = &cfg.keys.subscriber_id_secret_file {
            self.file("keys.subscriber_id_secret_file", base, f, opts);
        }
        if let Some(f) = &cfg.keys.sms_hmac_secret_file {
            self.file("keys.sms_hmac_secret_file", base, f, opts);
        }
        if let Some(f) = &cfg.keys.log_pseudonym_secret_file {
            self.file("keys.log_pseudonym_secret_file", base, f, opts);
        }
        self.sms_codes(cfg);
    }

    fn ciba(&mut self, cfg: &Config) {
        let c = &cfg.ciba;
        if c.interval_s == 0 {
            self.err("ciba.interval_s", "must be at least 1");
        }
        if c.default_expiry_s == 0 {
            self.err("ciba.default_expiry_s", "must be at least 1");
        }
        if c.default_expiry_s > c.max_expiry_s {
            self.err("ciba.default_expiry_s", "must not exceed ciba.max_expiry_s");
        }
        for (i, op) in cfg.operators.iter().enumerate() {
            if c.operator_fetch_lease_ms < op.call_timeout_ms.saturating_mul(3) {
                self.err(
                    "ciba.operator_fetch_lease_ms",
                    format!(
                        "must be at least 3 x operators[{i}].call_timeout_ms ({} ms): one fetch makes up to three operator calls",
                        op.call_timeout_ms.saturating_mul(3)
                    ),
                );
                break;
            }
        }
        if c.operator_fetch_lease_ms > 600_000 {
            self.err("ciba.operator_fetch_lease_ms", "must not exceed 600000");
        }
        if c.poll_gate_slots > 1 << 20 {
            self.err("ciba.poll_gate_slots", "must not exceed 1048576 (8 bytes each)");
        }
        if c.binding_message_max_chars == 0 || c.binding_message_max_chars > 1024 {
            self.err("ciba.binding_message_max_chars", "must be between 1 and 1024");
        }
        if cfg.redirect.code_ttl_s == 0 || cfg.redirect.code_ttl_s > 600 {
            self.err("redirect.code_ttl_s", "must be between 1 and 600 (authorization codes live at most 10 min)");
        }
        if cfg.redirect.pending_ttl_s == 0 || cfg.redirect.pending_ttl_s > 3600 {
            self.err("redirect.pending_ttl_s", "must be between 1 and 3600");
        }
        if cfg.tokens.id_token_ttl_s == 0 {
            self.err("tokens.id_token_ttl_s", "must be at least 1");
        }
        if cfg.tokens.access_token_ttl_s == 0 || cfg.tokens.access_token_ttl_s > 600 {
            self.err("tokens.access_token_ttl_s", "must be between 1 and 600 (access tokens live at most 10 min)");
        }
    }

    fn store(&mut self, cfg: &Config) {
        if cfg.store.kind != "memory" && cfg.store.kind != "redis" {
            self.err("store.kind", format!("unknown store {:?}; available: \"memory\", \"redis\"", cfg.store.kind));
        }
        if cfg.store.purge_interval_ms == 0 {
            self.err("store.purge_interval_ms", "must be > 0");
        }
        for (key, problem) in crate::store::redis::config_problems(&cfg.store) {
            self.err(key, problem);
        }
    }

    fn discovery(&mut self, cfg: &Config, base: &Path, opts: ValidateOptions) {
        let d = &cfg.discovery;
        if d.default_country_code == 0 || d.default_country_code > 999 {
            self.err("discovery.default_country_code", "must be a country calling code, 1-999");
        }
        if !(4..=14).contains(&d.national_len) {
            self.err("discovery.national_len", "must be between 4 and 14 digits");
        }
        if let Some(f) = &d.ported_numbers {
            self.file("discovery.ported_numbers", base, f, opts);
        }
    }
}

/// 1-`max` ASCII digits, not starting with 0.
fn valid_digits(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit()) && !s.starts_with('0')
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn valid_mcc_mnc(s: &str) -> bool {
    match s.split_once('-') {
        Some((mcc, mnc)) => {
            mcc.len() == 3 && (2..=3).contains(&mnc.len()) && mcc.bytes().chain(mnc.bytes()).all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

/// Whether a URL's host is a loopback address (`localhost`, 127.0.0.0/8, ::1).
pub fn is_loopback_url(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}
