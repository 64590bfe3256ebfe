//! Validation of `[[operators]]`: ids, prefixes, URLs, protocol and MC-SI settings, per-operator
//! resilience overrides (part of [`super`]).

use super::*;

impl Validator {
    /// `[resilience]` and every operator's override of it.
    pub(super) fn resilience(&mut self, cfg: &Config) {
        for (k, m) in crate::config::resilience::check("resilience", &cfg.resilience) {
            self.err(k, m);
        }
        for (i, op) in cfg.operators.iter().enumerate() {
            let p = format!("operators[{i}].resilience");
            match cfg.resilience.for_operator(op.resilience.as_ref()) {
                Ok(merged) if op.resilience.is_some() => {
                    for (k, m) in crate::config::resilience::check(&p, &merged) {
                        self.err(k, m);
                    }
                }
                Ok(_) => {}
                Err(m) => self.err(p, m),
            }
        }
    }

    pub(super) fn operators(&mut self, cfg: &Config, base: &Path, opts: ValidateOptions) {
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

    pub(super) fn operator_protocol(&mut self, op: &OperatorConfig, p: &str, base: &Path, opts: ValidateOptions) {
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
    pub(super) fn operator_si(&mut self, op: &OperatorConfig, p: &str) {
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
