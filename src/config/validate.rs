//! Whole-file validation of a parsed [`Config`]: every problem is collected with the TOML key
//! path that holds it (`clients[1].client_secret_sha256[0]: …`), so one run of
//! `mcgate check-config` lists them all and a bad reload can be refused with the full list.

use super::model::{ClientConfig, Config, OperatorConfig};
use super::{ConfigError, ConfigErrors};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;

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
    /// `[sms.transport]`: kind, its section, credentials, every number in range.
    fn sms_transport(&mut self, cfg: &Config, opts: ValidateOptions) {
        let Some(t) = &cfg.sms.transport else { return };
        let p = "sms.transport";
        if !(1..=10).contains(&t.max_segments) {
            self.err(format!("{p}.max_segments"), "must be 1..=10");
        }
        match t.kind.as_str() {
            "smpp" => match &t.smpp {
                None => self.err(format!("{p}.smpp"), "missing: kind = \"smpp\" needs [sms.transport.smpp]"),
                Some(c) => {
                    let p = format!("{p}.smpp");
                    if c.host.is_empty() {
                        self.err(format!("{p}.host"), "must not be empty");
                    }
                    if c.system_id.is_empty() || c.system_id.len() > 15 {
                        self.err(format!("{p}.system_id"), "must be 1..=15 characters");
                    }
                    if c.system_type.len() > 12 {
                        self.err(format!("{p}.system_type"), "at most 12 characters");
                    }
                    if c.source_addr.is_empty() || c.source_addr.len() > 20 {
                        self.err(format!("{p}.source_addr"), "must be 1..=20 characters");
                    }
                    if !matches!(c.bind.as_str(), "transceiver" | "transmitter") {
                        self.err(format!("{p}.bind"), "must be \"transceiver\" or \"transmitter\"");
                    }
                    match (&c.password, &c.password_env) {
                        (Some(_), Some(_)) => {
                            self.err(format!("{p}.password"), "give password or password_env, not both")
                        }
                        (None, None) => self.err(format!("{p}.password"), "missing: set password or password_env"),
                        (Some(pw), None) if pw.expose().len() > 8 => {
                            self.err(format!("{p}.password"), "at most 8 characters (SMPP)")
                        }
                        (None, Some(var)) if opts.check_environment && std::env::var(var).is_err() => {
                            self.err(format!("{p}.password_env"), format!("environment variable {var} is not set"))
                        }
                        _ => {}
                    }
                    for (key, v) in [
                        ("connect_timeout_ms", c.connect_timeout_ms),
                        ("enquire_link_s", c.enquire_link_s),
                        ("submit_timeout_ms", c.submit_timeout_ms),
                        ("rebind_initial_ms", c.rebind_initial_ms),
                        ("receipt_ttl_s", c.receipt_ttl_s),
                    ] {
                        if v == 0 {
                            self.err(format!("{p}.{key}"), "must be > 0");
                        }
                    }
                    if c.rebind_max_ms < c.rebind_initial_ms {
                        self.err(format!("{p}.rebind_max_ms"), "must be ≥ rebind_initial_ms");
                    }
                    if c.window == 0 {
                        self.err(format!("{p}.window"), "must be > 0");
                    }
                    if c.receipt_capacity == 0 {
                        self.err(format!("{p}.receipt_capacity"), "must be > 0");
                    }
                }
            },
            "http" => match &t.http {
                None => self.err(format!("{p}.http"), "missing: kind = \"http\" needs [sms.transport.http]"),
                Some(c) => {
                    let p = format!("{p}.http");
                    self.url(&format!("{p}.url"), &c.url);
                    if opts.check_environment && std::env::var(&c.api_key_env).is_err() {
                        self.err(
                            format!("{p}.api_key_env"),
                            format!("environment variable {} is not set", c.api_key_env),
                        );
                    }
                    if c.timeout_ms == 0 || c.connect_timeout_ms == 0 {
                        self.err(format!("{p}.timeout_ms"), "timeouts must be > 0");
                    }
                }
            },
            _ => self.err(format!("{p}.kind"), "must be \"smpp\" or \"http\""),
        }
    }

    /// `[resilience]` and every operator's override of it.
    fn resilience(&mut self, cfg: &Config) {
        for (k, m) in super::resilience::check("resilience", &cfg.resilience) {
            self.err(k, m);
        }
        for (i, op) in cfg.operators.iter().enumerate() {
            let p = format!("operators[{i}].resilience");
            match cfg.resilience.for_operator(op.resilience.as_ref()) {
                Ok(merged) if op.resilience.is_some() => {
                    for (k, m) in super::resilience::check(&p, &merged) {
                        self.err(k, m);
                    }
                }
                Ok(_) => {}
                Err(m) => self.err(p, m),
            }
        }
    }

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

    fn sms_codes(&mut self, cfg: &Config) {
        let c = &cfg.sms_codes;
        if !(6..=8).contains(&c.code_digits) {
            self.err("sms_codes.code_digits", "must be between 6 and 8 (S-01)");
        }
        if c.code_ttl_s == 0 || c.code_ttl_s > 300 {
            self.err("sms_codes.code_ttl_s", "must be between 1 and 300 (codes live at most 5 min, S-02)");
        }
        if c.max_attempts == 0 || c.max_attempts > 5 {
            self.err("sms_codes.max_attempts", "must be between 1 and 5 (S-05)");
        }
        if c.max_segments == 0 || c.max_segments > 3 {
            self.err("sms_codes.max_segments", "must be between 1 and 3");
        }
        if !["ca", "es", "en"].contains(&c.default_language.as_str()) {
            self.err("sms_codes.default_language", "must be one of ca, es, en");
        }
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

    fn operators(&mut self, cfg: &Config, base: &Path, opts: ValidateOptions) {
        if cfg.operators.is_empty() {
            self.err("operators", "at least one [[operators]] entry is required");
        }
        let mut ids: HashMap<&str, usize> = HashMap::new();
        let mut prefixes: HashMap<&str, (usize, usize)> = HashMap::new();
        for (i, op) in cfg.operators.iter().enumerate() {
            let p = format!("operators[{i}]");
            if !valid_id(&op.id) {
                self.err(format!("{p}.id"), "must be 1-64 characters of a-z, 0-9, '_' or '-'");
            }
            if let Some(first) = ids.insert(&op.id, i) {
                self.err(format!("{p}.id"), format!("duplicate operator id {:?} (also operators[{first}])", op.id));
            }
            for (j, prefix) in op.prefixes.iter().enumerate() {
                let key = format!("{p}.prefixes[{j}]");
                if prefix.is_empty() || prefix.len() > 15 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
                    self.err(key, "must be 1-15 digits of an E.164 number, without '+'");
                } else if prefix.starts_with('0') {
                    self.err(key, "E.164 prefixes never start with 0");
                } else if let Some((oi, oj)) = prefixes.insert(prefix, (i, j)) {
                    self.err(key, format!("prefix {prefix} is already listed at operators[{oi}].prefixes[{oj}]"));
                }
            }
            if op.prefixes.is_empty() {
                self.err(format!("{p}.prefixes"), "at least one prefix is required");
            }
            for (j, m) in op.mcc_mnc.iter().enumerate() {
                if !valid_mcc_mnc(m) {
                    self.err(format!("{p}.mcc_mnc[{j}]"), "must be MCC-MNC, e.g. \"214-07\"");
                }
            }
            if op.country.len() != 2 || !op.country.bytes().all(|b| b.is_ascii_uppercase()) {
                self.err(format!("{p}.country"), "must be an ISO 3166 alpha-2 code, e.g. \"ES\"");
            }
            self.operator_protocol(op, &p, base, opts);
        }
    }

    fn operator_protocol(&mut self, op: &OperatorConfig, p: &str, base: &Path, opts: ValidateOptions) {
        if !matches!(op.mode.as_str(), "ciba" | "mc_si") {
            self.err(format!("{p}.mode"), format!("unknown mode {:?}; available: \"ciba\", \"mc_si\"", op.mode));
        }
        self.operator_si(op, p);
        if !matches!(op.notification.as_str(), "poll" | "ping" | "push") {
            self.err(
                format!("{p}.notification"),
                format!("unknown mode {:?}; use \"poll\", \"ping\" or \"push\"", op.notification),
            );
        }
        self.url(&format!("{p}.issuer"), &op.issuer);
        for (k, v) in [
            ("backchannel_authentication_endpoint", &op.backchannel_authentication_endpoint),
            ("token_endpoint", &op.token_endpoint),
            ("jwks_uri", &op.jwks_uri),
            ("authorization_endpoint", &op.authorization_endpoint),
            ("si_authorization_endpoint", &op.si_authorization_endpoint),
        ] {
            if let Some(v) = v {
                self.url(&format!("{p}.{k}"), v);
            }
        }
        if op.client_id.is_empty() {
            self.err(format!("{p}.client_id"), "must not be empty");
        }
        match (&op.client_secret, &op.client_secret_env) {
            (Some(_), Some(_)) => {
                self.err(format!("{p}.client_secret"), "give client_secret or client_secret_env, not both")
            }
            (None, None) => self.err(format!("{p}.client_secret"), "missing: set client_secret or client_secret_env"),
            (Some(s), None) if s.is_empty() => self.err(format!("{p}.client_secret"), "must not be empty"),
            (None, Some(var)) if opts.check_environment && std::env::var_os(var).is_none_or(|v| v.is_empty()) => {
                self.err(format!("{p}.client_secret_env"), format!("environment variable {var} is not set"))
            }
            _ => {}
        }
        for (j, a) in op.id_token_algs.iter().enumerate() {
            if !OPERATOR_ALGS.contains(&a.as_str()) {
                self.err(format!("{p}.id_token_algs[{j}]"), format!("{a:?} not allowed; use RS256, PS256 or ES256"));
            }
        }
        if op.id_token_algs.is_empty() {
            self.err(format!("{p}.id_token_algs"), "at least one algorithm is required");
        }
        if let Some(f) = &op.tls_ca_file {
            self.file(&format!("{p}.tls_ca_file"), base, f, opts);
        }
        for (k, v) in [
            ("connect_timeout_ms", op.connect_timeout_ms),
            ("call_timeout_ms", op.call_timeout_ms),
            ("pool_idle_timeout_ms", op.pool_idle_timeout_ms),
            ("push_timeout_s", op.push_timeout_s),
            ("metadata_ttl_s", op.metadata_ttl_s),
        ] {
            if v == 0 {
                self.err(format!("{p}.{k}"), "must be > 0");
            }
        }
        if op.pool_idle_timeout_ms > 300_000 {
            self.err(format!("{p}.pool_idle_timeout_ms"), "must not exceed 300000");
        }
    }

    /// `mode = "mc_si"`: results are always pushed to us, and our request objects live briefly.
    fn operator_si(&mut self, op: &OperatorConfig, p: &str) {
        if op.mode == "mc_si" && op.notification == "ping" {
            self.err(
                format!("{p}.notification"),
                "an mc_si operator always pushes its result to /op/{operator}/notify; leave it unset or \"push\"",
            );
        }
        if !(1..=300).contains(&op.si_request_lifetime_s) {
            self.err(format!("{p}.si_request_lifetime_s"), "must be between 1 and 300 seconds");
        }
    }

    fn clients(&mut self, cfg: &Config) {
        let operator_ids: HashSet<&str> = cfg.operators.iter().map(|o| o.id.as_str()).collect();
        let mut ids: HashMap<&str, usize> = HashMap::new();
        for (i, c) in cfg.clients.iter().enumerate() {
            let p = format!("clients[{i}]");
            if c.client_id.is_empty() || c.client_id.len() > 128 || !c.client_id.bytes().all(|b| b.is_ascii_graphic()) {
                self.err(format!("{p}.client_id"), "must be 1-128 visible ASCII characters");
            }
            if let Some(first) = ids.insert(&c.client_id, i) {
                self.err(
                    format!("{p}.client_id"),
                    format!("duplicate client id {:?} (also clients[{first}])", c.client_id),
                );
            }
            self.client_auth(c, &p);
            self.client_delivery(c, &p);
            if !c.scopes.iter().any(|s| s == "openid") {
                self.err(format!("{p}.scopes"), "must include \"openid\"");
            }
            for (j, s) in c.scopes.iter().enumerate() {
                if !KNOWN_SCOPES.contains(&s.as_str()) {
                    self.err(format!("{p}.scopes[{j}]"), format!("unknown scope {s:?}"));
                }
            }
            for (j, u) in c.redirect_uris.iter().enumerate() {
                if let Some(url) = self.url(&format!("{p}.redirect_uris[{j}]"), u) {
                    if url.fragment().is_some() {
                        self.err(format!("{p}.redirect_uris[{j}]"), "must not have a fragment");
                    }
                }
            }
            if c.sector_identifier.trim().is_empty() {
                self.err(format!("{p}.sector_identifier"), "must not be empty");
            }
            if !matches!(c.min_acr.as_str(), "2" | "3") {
                self.err(format!("{p}.min_acr"), "must be \"2\" or \"3\"");
            }
            if !ID_TOKEN_ALGS.contains(&c.id_token_signed_response_alg.as_str()) {
                self.err(format!("{p}.id_token_signed_response_alg"), "must be \"RS256\" or \"ES256\"");
            }
            for (j, o) in c.allowed_operators.iter().enumerate() {
                if !operator_ids.contains(o.as_str()) {
                    self.err(format!("{p}.allowed_operators[{j}]"), format!("unknown operator {o:?}"));
                }
            }
        }
    }

    fn client_delivery(&mut self, c: &ClientConfig, p: &str) {
        let endpoint = &c.backchannel_client_notification_endpoint;
        match (c.backchannel_token_delivery_mode.as_str(), endpoint) {
            ("poll", None) => {}
            ("poll", Some(_)) => self.err(
                format!("{p}.backchannel_client_notification_endpoint"),
                "only used by ping and push clients; remove it or set backchannel_token_delivery_mode",
            ),
            ("ping" | "push", None) => {
                self.err(format!("{p}.backchannel_client_notification_endpoint"), "required for ping and push clients")
            }
            ("ping" | "push", Some(u)) => {
                if let Some(url) = self.url(&format!("{p}.backchannel_client_notification_endpoint"), u) {
                    if url.fragment().is_some() {
                        self.err(format!("{p}.backchannel_client_notification_endpoint"), "must not have a fragment");
                    }
                }
            }
            (m, _) => self.err(
                format!("{p}.backchannel_token_delivery_mode"),
                format!("unknown mode {m:?}; use \"poll\", \"ping\" or \"push\""),
            ),
        }
    }

    fn delivery(&mut self, cfg: &Config) {
        let d = &cfg.driver;
        if d.workers == 0 || d.workers > 64 {
            self.err("driver.workers", "must be between 1 and 64");
        }
        if d.capacity == 0 {
            self.err("driver.capacity", "must be > 0");
        }
        if d.retry_after_s == 0 {
            self.err("driver.retry_after_s", "must be > 0");
        }
        if d.store_retry_ms == 0 {
            self.err("driver.store_retry_ms", "must be > 0");
        }
        let n = &cfg.notifications;
        if n.attempts == 0 || n.attempts > 100 {
            self.err("notifications.attempts", "must be between 1 and 100");
        }
        for (k, v) in [
            ("initial_backoff_ms", n.initial_backoff_ms),
            ("max_backoff_ms", n.max_backoff_ms),
            ("attempt_timeout_ms", n.attempt_timeout_ms),
            ("connect_timeout_ms", n.connect_timeout_ms),
        ] {
            if v == 0 {
                self.err(format!("notifications.{k}"), "must be > 0");
            }
        }
        if n.initial_backoff_ms > n.max_backoff_ms {
            self.err("notifications.initial_backoff_ms", "must not exceed notifications.max_backoff_ms");
        }
    }

    fn client_auth(&mut self, c: &ClientConfig, p: &str) {
        if !AUTH_METHODS.contains(&c.token_endpoint_auth_method.as_str()) {
            self.err(
                format!("{p}.token_endpoint_auth_method"),
                format!(
                    "{:?} not available; use client_secret_basic, client_secret_post, private_key_jwt or none",
                    c.token_endpoint_auth_method
                ),
            );
        }
        if c.token_endpoint_auth_method == "private_key_jwt" {
            if !c.client_secret_sha256.is_empty() {
                self.err(
                    format!("{p}.client_secret_sha256"),
                    "a private_key_jwt client authenticates with its keys only: remove the secret hashes",
                );
            }
            return;
        }
        if c.token_endpoint_auth_method == "none" {
            // A public client: no secret, redirect flow only (PKCE is always required of it).
            if !c.client_secret_sha256.is_empty() {
                self.err(
                    format!("{p}.client_secret_sha256"),
                    "a public client (token_endpoint_auth_method = \"none\") has no secret",
                );
            }
            if c.redirect_uris.is_empty() {
                self.err(format!("{p}.redirect_uris"), "a public client needs at least one redirect URI");
            }
            if c.mc_legacy {
                self.err(
                    format!("{p}.mc_legacy"),
                    "public clients always use PKCE; mc_legacy is for confidential clients",
                );
            }
            return;
        }
        if c.client_secret_sha256.is_empty() {
            self.err(
                format!("{p}.client_secret_sha256"),
                "missing: add the SHA-256 of the client secret (`mcgate client-secret`)",
            );
        }
        if c.client_secret_sha256.len() > 2 {
            self.err(format!("{p}.client_secret_sha256"), "at most two hashes (current and next, for rotation)");
        }
        for (j, h) in c.client_secret_sha256.iter().enumerate() {
            if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                self.err(
                    format!("{p}.client_secret_sha256[{j}]"),
                    "must be 64 hex digits: the SHA-256 of the secret, never the secret itself",
                );
            }
        }
    }

    /// A client's public keys: at most one of `jwks`, `jwks_file`, `jwks_uri`, and exactly one
    /// for `private_key_jwt` clients (secret clients may register keys for request objects).
    fn client_keys(&mut self, cfg: &Config, base: &Path, opts: ValidateOptions) {
        for (i, c) in cfg.clients.iter().enumerate() {
            let p = format!("clients[{i}]");
            let given = [c.jwks.is_some(), c.jwks_file.is_some(), c.jwks_uri.is_some()].iter().filter(|g| **g).count();
            if given > 1 {
                self.err(format!("{p}.jwks"), "give one of jwks, jwks_file, jwks_uri");
            }
            if given == 0 && c.token_endpoint_auth_method == "private_key_jwt" {
                self.err(
                    format!("{p}.jwks"),
                    "private_key_jwt needs the client's public keys: jwks, jwks_file or jwks_uri",
                );
            }
            if let Some(text) = &c.jwks {
                if let Err(e) = super::jwks::parse_client_jwks(text) {
                    self.err(format!("{p}.jwks"), e);
                }
            }
            if let Some(f) = &c.jwks_file {
                self.file(&format!("{p}.jwks_file"), base, f, opts);
                if opts.check_environment {
                    if let Ok(text) = std::fs::read_to_string(base.join(f)) {
                        if let Err(e) = super::jwks::parse_client_jwks(&text) {
                            self.err(format!("{p}.jwks_file"), format!("{}: {e}", base.join(f).display()));
                        }
                    }
                }
            }
            if let Some(u) = &c.jwks_uri {
                self.url(&format!("{p}.jwks_uri"), u);
            }
            for (j, u) in c.notification_uris.iter().enumerate() {
                if let Some(url) = self.url(&format!("{p}.notification_uris[{j}]"), u) {
                    if url.fragment().is_some() {
                        self.err(format!("{p}.notification_uris[{j}]"), "must not have a fragment");
                    }
                }
            }
            if !c.notification_uris.is_empty() && given == 0 {
                self.err(
                    format!("{p}.notification_uris"),
                    "server-initiated requests are signed: register the client's keys (jwks, jwks_file or jwks_uri)",
                );
            }
        }
    }

    fn client_jwt(&mut self, cfg: &Config) {
        let j = &cfg.client_jwt;
        for (k, v) in [
            ("assertion_max_lifetime_s", j.assertion_max_lifetime_s),
            ("request_object_max_lifetime_s", j.request_object_max_lifetime_s),
            ("jwks_cache_ttl_s", j.jwks_cache_ttl_s),
            ("jwks_fetch_timeout_ms", j.jwks_fetch_timeout_ms),
        ] {
            if v == 0 {
                self.err(format!("client_jwt.{k}"), "must be > 0");
            }
        }
        if j.assertion_max_lifetime_s > 3_600 {
            self.err(
                "client_jwt.assertion_max_lifetime_s",
                "must be at most 3600 (RFC 7523 assertions are short-lived)",
            );
        }
        if j.request_object_max_lifetime_s > 3_600 {
            self.err("client_jwt.request_object_max_lifetime_s", "must be at most 3600 (FAPI: 60 minutes)");
        }
        if j.clock_skew_s > 300 {
            self.err("client_jwt.clock_skew_s", "must be at most 300");
        }
    }
}

/// SMS fallback settings (shared/protocol.md §4, §5; shared/security.md S-14…S-18).
impl Validator {
    fn sms(&mut self, cfg: &Config) {
        for (i, op) in cfg.operators.iter().enumerate() {
            let p = format!("operators[{i}]");
            if let Err(errors) = crate::flow::fallback::ErrorMap::parse(&op.error_map) {
                for (key, e) in errors {
                    self.err(format!("{p}.error_map.{key:?}"), e.to_string());
                }
            }
            if let Some(u) = &op.sim_swap_url {
                self.url(&format!("{p}.sim_swap_url"), u);
            }
            if op.sim_swap_timeout_ms == 0 || op.sim_swap_timeout_ms > 30_000 {
                self.err(format!("{p}.sim_swap_timeout_ms"), "must be between 1 and 30000");
            }
        }
        for (i, c) in cfg.clients.iter().enumerate() {
            let p = format!("clients[{i}]");
            if !(1..=2400).contains(&c.sim_swap_max_age_h) {
                self.err(format!("{p}.sim_swap_max_age_h"), "must be between 1 and 2400 hours (CAMARA maxAge)");
            }
            if !matches!(c.sim_swap_unknown.as_str(), "deny" | "allow") {
                self.err(format!("{p}.sim_swap_unknown"), "must be \"deny\" or \"allow\"");
            }
            for (j, cc) in c.sms_countries.iter().enumerate() {
                if !valid_digits(cc, 3) {
                    self.err(
                        format!("{p}.sms_countries[{j}]"),
                        "must be a country calling code: 1-3 digits, no '+', not 0",
                    );
                }
            }
            if c.sms_fallback && c.sms_countries.is_empty() {
                self.err(format!("{p}.sms_countries"), "sms_fallback needs at least one country");
            }
            if c.sms_hourly_budget > c.sms_daily_budget {
                self.err(format!("{p}.sms_hourly_budget"), "must not exceed sms_daily_budget");
            }
            if c.race && !c.sms_fallback {
                self.err(format!("{p}.race"), "race mode sends an SMS link: it needs sms_fallback = true");
            }
            if c.race && c.min_acr != "2" {
                self.err(format!("{p}.race"), "race mode is for acr 2 only: min_acr must be \"2\"");
            }
        }
        let l = &cfg.sms_limits;
        for (k, v) in [
            ("msisdn_min_interval_s", l.msisdn_min_interval_s),
            ("msisdn_per_hour", l.msisdn_per_hour),
            ("msisdn_per_day", l.msisdn_per_day),
            ("prefix_per_hour", l.prefix_per_hour),
            ("max_consecutive_failures", l.max_consecutive_failures),
        ] {
            if v == 0 {
                self.err(format!("sms_limits.{k}"), "must be > 0");
            }
        }
        if l.msisdn_per_hour > l.msisdn_per_day {
            self.err("sms_limits.msisdn_per_hour", "must not exceed sms_limits.msisdn_per_day");
        }
        if l.msisdn_min_interval_s > 3_600 {
            self.err("sms_limits.msisdn_min_interval_s", "must not exceed 3600");
        }
        if !(1..=8).contains(&l.prefix_strip_digits) {
            self.err("sms_limits.prefix_strip_digits", "must be between 1 and 8");
        }
        if l.failure_counter_ttl_s < 86_400 {
            self.err("sms_limits.failure_counter_ttl_s", "must be at least 86400 (a day)");
        }
        for (j, pre) in l.refused_prefixes.iter().enumerate() {
            if !valid_digits(pre, 15) {
                self.err(
                    format!("sms_limits.refused_prefixes[{j}]"),
                    "must be 1-15 digits of an E.164 prefix, no '+', not 0",
                );
            }
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

#[cfg(test)]
mod delivery_tests {
    use crate::config::{parse, ValidateOptions, EMBEDDED_ROUTING_TOML};
    use std::path::Path;

    fn problems(edit: impl Fn(&str) -> String) -> String {
        let text = edit(EMBEDDED_ROUTING_TOML);
        match parse(&text, Path::new("."), ValidateOptions { check_environment: false }) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn delivery_modes_and_notification_endpoints_are_checked_by_key() {
        let err = problems(|t| {
            t.replace("backchannel_token_delivery_mode = \"ping\"", "backchannel_token_delivery_mode = \"pong\"")
                .replacen(
                    "backchannel_client_notification_endpoint = \"https://rp.example.org/ciba/notify\"",
                    "backchannel_client_notification_endpoint = \"http://rp.example.org/ciba/notify\"",
                    2,
                )
                .replace("notification = \"ping\"", "notification = \"sms\"")
                .replace("capacity = 10000", "capacity = 0")
                .replace("attempts = 5", "attempts = 0")
                .replace("initial_backoff_ms = 1000", "initial_backoff_ms = 60000")
        });
        for expected in [
            "clients[3].backchannel_token_delivery_mode: unknown mode \"pong\"",
            "clients[4].backchannel_client_notification_endpoint: must be https (plain http only for loopback hosts)",
            "operators[2].notification: unknown mode \"sms\"",
            "driver.capacity: must be > 0",
            "notifications.attempts: must be between 1 and 100",
            "notifications.initial_backoff_ms: must not exceed notifications.max_backoff_ms",
        ] {
            assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
        }
    }

    #[test]
    fn ping_and_push_need_an_endpoint_poll_must_not_have_one_loopback_http_is_allowed() {
        let err = problems(|t| {
            t.replace("backchannel_client_notification_endpoint = \"https://rp.example.org/ciba/notify\"\n", "")
        });
        assert!(
            err.contains("clients[3].backchannel_client_notification_endpoint: required for ping and push clients"),
            "{err}"
        );
        let err = problems(|t| {
            t.replace(
                "backchannel_token_delivery_mode = \"poll\"",
                "backchannel_token_delivery_mode = \"poll\"\nbackchannel_client_notification_endpoint = \"https://a.example\"",
            )
        });
        assert!(
            err.contains("clients[0].backchannel_client_notification_endpoint: only used by ping and push"),
            "{err}"
        );
        let ok = problems(|t| t.replace("https://rp.example.org/ciba/notify", "http://127.0.0.1:9999/notify"));
        assert_eq!(ok, "", "plain http is fine on loopback");
    }

    #[test]
    fn si_notification_uris_are_urls_of_clients_with_keys() {
        let registered = "notification_uris = [\"https://rp.example.org/mc/si/notify\"]";
        let ok = problems(|t| t.replace(registered, "notification_uris = [\"http://127.0.0.1:9999/si\"]"));
        assert_eq!(ok, "", "plain http is fine on loopback");
        let err = problems(|t| {
            t.replace(registered, "notification_uris = [\"http://rp.example.org/si\", \"https://rp.example.org/si#x\"]")
                .replacen(
                    "sector_identifier = \"rp.example.org\"\nmin_acr",
                    "notification_uris = [\"https://rp.example.org/si\"]\nsector_identifier = \"rp.example.org\"\nmin_acr",
                    1,
                )
        });
        for expected in [
            "clients[5].notification_uris[0]: must be https (plain http only for loopback hosts)",
            "clients[5].notification_uris[1]: must not have a fragment",
            "clients[0].notification_uris: server-initiated requests are signed: register the client's keys",
        ] {
            assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
        }
    }
}

#[cfg(test)]
mod si_tests {
    use crate::config::{parse, ValidateOptions, EMBEDDED_ROUTING_TOML};
    use std::path::Path;

    fn problems(text: &str) -> String {
        match parse(text, Path::new("."), ValidateOptions { check_environment: false }) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn mc_si_operators_are_checked_by_key() {
        let orange = EMBEDDED_ROUTING_TOML.find("id = \"orange\"").unwrap();
        let (head, tail) = EMBEDDED_ROUTING_TOML.split_at(orange);
        let bad = format!(
            "{head}{}",
            tail.replacen(
                "mode = \"ciba\"",
                "mode = \"mc_si\"\nsi_request_lifetime_s = 0\nsi_authorization_endpoint = \"nope\"",
                1
            )
        );
        let err = problems(&bad);
        for expected in [
            "operators[2].notification: an mc_si operator always pushes",
            "operators[2].si_request_lifetime_s: must be between 1 and 300 seconds",
            "operators[2].si_authorization_endpoint",
        ] {
            assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
        }
        assert!(problems(&EMBEDDED_ROUTING_TOML.replacen("mode = \"ciba\"", "mode = \"si\"", 1))
            .contains("operators[0].mode: unknown mode \"si\"; available: \"ciba\", \"mc_si\""));
    }
}

#[cfg(test)]
mod operator_fetch_tests {
    use crate::config::{parse, ValidateOptions, EMBEDDED_ROUTING_TOML};
    use std::path::Path;

    fn problems(text: &str) -> String {
        match parse(text, Path::new("."), ValidateOptions { check_environment: false }) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn the_fetch_lease_must_cover_three_operator_calls() {
        let short = EMBEDDED_ROUTING_TOML.replace("operator_fetch_lease_ms = 10000", "operator_fetch_lease_ms = 8999");
        let err = problems(&short);
        assert!(
            err.contains("ciba.operator_fetch_lease_ms: must be at least 3 x operators[0].call_timeout_ms (9000 ms)"),
            "{err}"
        );
        let long = EMBEDDED_ROUTING_TOML.replace("operator_fetch_lease_ms = 10000", "operator_fetch_lease_ms = 600001");
        assert!(problems(&long).contains("ciba.operator_fetch_lease_ms: must not exceed 600000"));
        let exact = EMBEDDED_ROUTING_TOML.replace("operator_fetch_lease_ms = 10000", "operator_fetch_lease_ms = 9000");
        assert_eq!(problems(&exact), "");
    }

    #[test]
    fn pool_idle_timeout_is_bounded_and_defaults_below_node_keep_alive() {
        let zero = EMBEDDED_ROUTING_TOML.replace("pool_idle_timeout_ms = 4000", "pool_idle_timeout_ms = 0");
        assert!(problems(&zero).contains("operators[0].pool_idle_timeout_ms: must be > 0"));
        let long = EMBEDDED_ROUTING_TOML.replace("pool_idle_timeout_ms = 4000", "pool_idle_timeout_ms = 300001");
        assert!(problems(&long).contains("operators[0].pool_idle_timeout_ms: must not exceed 300000"));
        let cfg = crate::config::parse_unvalidated(EMBEDDED_ROUTING_TOML).unwrap();
        assert!(cfg.operators.iter().all(|o| o.pool_idle_timeout_ms == 4000), "default for operators without the key");
    }
}

#[cfg(test)]
mod sms_tests {
    use crate::config::{parse, ValidateOptions, EMBEDDED_ROUTING_TOML};
    use std::path::Path;

    fn problems(text: &str) -> String {
        match parse(text, Path::new("."), ValidateOptions { check_environment: false }) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn sms_defaults_are_the_documented_ones() {
        let cfg = crate::config::parse_unvalidated(EMBEDDED_ROUTING_TOML).unwrap();
        let rp = cfg.clients.iter().find(|c| c.client_id == "demo-rp-post").unwrap();
        assert!(!rp.sms_fallback, "opt-in");
        assert_eq!((rp.sim_swap_max_age_h, rp.sim_swap_unknown.as_str()), (240, "deny"));
        assert_eq!(rp.sms_countries, vec!["34".to_string()]);
        assert!(!rp.race);
        let op = cfg.operators.iter().find(|o| o.id == "vodafone").unwrap();
        assert!(op.sms_fallback);
        assert_eq!(op.sim_swap_timeout_ms, 2000);
        let l = &cfg.sms_limits;
        assert_eq!((l.msisdn_min_interval_s, l.msisdn_per_hour, l.msisdn_per_day), (30, 5, 10));
        assert_eq!((l.prefix_per_hour, l.prefix_strip_digits, l.max_consecutive_failures), (50, 4, 100));
    }

    #[test]
    fn sms_settings_are_checked_by_key() {
        let text = EMBEDDED_ROUTING_TOML
            .replacen(
                "client_id = \"demo-rp-post\"",
                "client_id = \"demo-rp-post\"\nsim_swap_max_age_h = 0\nsim_swap_unknown = \"maybe\"\nsms_countries = [\"+44\", \"0\"]\nrace = true\nmin_acr = \"3\"\nsms_hourly_budget = 5000",
                1,
            )
            .replacen(
                "client_secret_env = \"MCGATE_VODAFONE_SECRET\"",
                "client_secret_env = \"MCGATE_VODAFONE_SECRET\"\nsim_swap_url = \"http://sim.example.org/check\"\nsim_swap_timeout_ms = 0",
                1,
            )
            .replacen(
                "\n[[operators]]\nid = \"orange\"",
                "[operators.error_map]\n\"access_denied:timeout\" = \"push_timeout\"\n\"x\" = \"forged\"\n\n[[operators]]\nid = \"orange\"",
                1,
            )
            .replacen("msisdn_per_hour = 5\n", "msisdn_per_hour = 20\n", 1)
            .replacen("prefix_strip_digits = 4", "prefix_strip_digits = 0", 1)
            .replacen("refused_prefixes = [\"348\"", "refused_prefixes = [\"9a\", \"348\"", 1);
        let err = problems(&text);
        for expected in [
            "clients[1].sim_swap_max_age_h: must be between 1 and 2400",
            "clients[1].sim_swap_unknown: must be \"deny\" or \"allow\"",
            "clients[1].sms_countries[0]: must be a country calling code",
            "clients[1].sms_countries[1]: must be a country calling code",
            "clients[1].race: race mode sends an SMS link",
            "clients[1].race: race mode is for acr 2 only",
            "clients[1].sms_hourly_budget: must not exceed sms_daily_budget",
            "operators[1].sim_swap_url: must be https",
            "operators[1].sim_swap_timeout_ms: must be between 1 and 30000",
            "operators[1].error_map.\"x\": class \"forged\" unknown",
            "sms_limits.msisdn_per_hour: must not exceed sms_limits.msisdn_per_day",
            "sms_limits.prefix_strip_digits: must be between 1 and 8",
            "sms_limits.refused_prefixes[0]: must be 1-15 digits",
        ] {
            assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
        }
        assert!(!err.contains("access_denied:timeout"), "a valid entry is accepted:\n{err}");
    }
}

#[cfg(test)]
mod sms_transport_tests {
    use crate::config::{parse, ValidateOptions, EMBEDDED_ROUTING_TOML};
    use std::path::Path;

    fn problems(extra: &str) -> String {
        let text = format!("{EMBEDDED_ROUTING_TOML}\n{extra}");
        match parse(&text, Path::new("."), ValidateOptions { check_environment: false }) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn smpp_and_http_sections_are_checked_by_key() {
        let ok = "[sms.transport]\nkind = \"smpp\"\n[sms.transport.smpp]\nhost = \"127.0.0.1\"\nsystem_id = \"mcgate\"\npassword_env = \"SMPP_PW\"\nsource_addr = \"MCGATE\"\n";
        assert_eq!(problems(ok), "");
        let bad = "[sms.transport]\nkind = \"smpp\"\nmax_segments = 0\n[sms.transport.smpp]\nhost = \"\"\nsystem_id = \"a-much-too-long-system-id\"\npassword = \"123456789\"\nsource_addr = \"MCGATE\"\nbind = \"receiver\"\nsubmit_timeout_ms = 0\nrebind_initial_ms = 2000\nrebind_max_ms = 1000\nwindow = 0\n";
        let err = problems(bad);
        for expected in [
            "sms.transport.max_segments: must be 1..=10",
            "sms.transport.smpp.host: must not be empty",
            "sms.transport.smpp.system_id: must be 1..=15 characters",
            "sms.transport.smpp.password: at most 8 characters",
            "sms.transport.smpp.bind: must be \"transceiver\" or \"transmitter\"",
            "sms.transport.smpp.submit_timeout_ms: must be > 0",
            "sms.transport.smpp.rebind_max_ms: must be ≥ rebind_initial_ms",
            "sms.transport.smpp.window: must be > 0",
        ] {
            assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
        }
        assert!(problems("[sms.transport]\nkind = \"smpp\"\n").contains("sms.transport.smpp: missing"));
        assert!(problems("[sms.transport]\nkind = \"carrier-pigeon\"\n").contains("sms.transport.kind: must be"));
        let http = "[sms.transport]\nkind = \"http\"\n[sms.transport.http]\nurl = \"http://sms.example.com/send\"\napi_key_env = \"K\"\n";
        assert!(problems(http).contains("sms.transport.http.url: must be https"));
        assert!(problems("[sms.transport]\nkind = \"smpp\"\ntypo = 1\n").contains("typo"), "unknown keys refused");
    }
}
