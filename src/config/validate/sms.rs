//! Validation of `[sms]`, `[sms_codes]` and the operators' SMS error maps (part of [`super`]).

use super::*;

impl Validator {
    /// `[sms.transport]`: kind, its section, credentials, every number in range.
    pub(super) fn sms_transport(&mut self, cfg: &Config, opts: ValidateOptions) {
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

    pub(super) fn sms_codes(&mut self, cfg: &Config) {
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
}

/// SMS fallback settings (shared/protocol.md §4, §5; shared/security.md S-14…S-18).
impl Validator {
    pub(super) fn sms(&mut self, cfg: &Config) {
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
