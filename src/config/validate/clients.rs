//! Validation of `[[clients]]` and `[client_jwt]`: authentication methods, secrets and keys,
//! delivery modes and notification endpoints (part of [`super`]).

use super::*;

impl Validator {
    pub(super) fn clients(&mut self, cfg: &Config) {
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

    pub(super) fn client_delivery(&mut self, c: &ClientConfig, p: &str) {
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

    pub(super) fn delivery(&mut self, cfg: &Config) {
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

    pub(super) fn client_auth(&mut self, c: &ClientConfig, p: &str) {
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
    pub(super) fn client_keys(&mut self, cfg: &Config, base: &Path, opts: ValidateOptions) {
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
                if let Err(e) = crate::config::jwks::parse_client_jwks(text) {
                    self.err(format!("{p}.jwks"), e);
                }
            }
            if let Some(f) = &c.jwks_file {
                self.file(&format!("{p}.jwks_file"), base, f, opts);
                if opts.check_environment {
                    if let Ok(text) = std::fs::read_to_string(base.join(f)) {
                        if let Err(e) = crate::config::jwks::parse_client_jwks(&text) {
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

    pub(super) fn client_jwt(&mut self, cfg: &Config) {
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
