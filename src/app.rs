//! Wiring: turns a validated [`LoadedConfig`] into the shared, immutable [`Gateway`] every
//! request reads (directory, operator adapters, clients, store, keys, metrics). `serve` builds it
//! from files; `demo` and tests pass generated material through [`BuildOptions`].

use crate::clock::SharedClock;
use crate::config::{CibaConfig, ClientJwtConfig, LoadedConfig, RedirectConfig, Secret};
use crate::discovery::{Directory, OperatorIndex, PortedTable, PrefixTable};
use crate::msisdn::ParseRules;
use crate::operators::{MobileConnectCiba, MobileConnectSi, OperatorBackend};
use crate::rp::client_auth::ClientRegistry;
use crate::store::Store;
use crate::telemetry::Metrics;
use crate::tokens::{KeySet, PairwiseSubjects, SubscriberIds, TokenIssuer};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Arc;

/// Start-up failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Keys or secrets unusable.
    #[error(transparent)]
    Keys(#[from] crate::tokens::KeyError),
    /// Portability file unusable.
    #[error("discovery.ported_numbers: {0}")]
    Ported(String),
    /// An operator adapter could not be built.
    #[error(transparent)]
    Operator(#[from] crate::operators::mobile_connect::AdapterError),
    /// Operator secret missing.
    #[error("operators.{0}: client secret not available")]
    MissingSecret(String),
    /// Metrics registration failed.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The Redis store cannot be built (URL missing or unusable).
    #[error("store: {0}")]
    Store(#[from] crate::store::redis::RedisBuildError),
    /// The background driver could not be built.
    #[error("driver: {0}")]
    Driver(String),
    /// A client's keys or ID token algorithm cannot be used.
    #[error("clients.{0}: {1}")]
    Client(String, String),
    /// The SMS transport or an operator's SIM-swap client could not be built.
    #[error("sms: {0}")]
    Sms(String),
    /// An operator's `resilience` settings could not be applied.
    #[error("{0}")]
    Resilience(String),
    /// The audit file could not be opened or continued.
    #[error("audit: {0}")]
    Audit(#[from] crate::telemetry::audit::OpenError),
}

/// Operator facts the RP surface needs (Discovery API).
#[derive(Debug, Clone)]
pub struct OperatorInfo {
    /// Id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// ISO country.
    pub country: String,
    /// MCC-MNC pairs.
    pub mcc_mnc: Vec<String>,
    /// Where the redirect flow sends browsers at this operator: its authorization endpoint if
    /// pinned, else its issuer (pages that POST there must allow it in `form-action`).
    pub browser_target: String,
}

/// Material generated instead of read from files (demo, tests).
pub struct BuildOptions {
    /// Clock (tests: manual).
    pub clock: SharedClock,
    /// Metrics registry.
    pub registry: prometheus::Registry,
    /// Signing keys instead of `keys.signing_keys`.
    pub keys: Option<KeySet>,
    /// Secrets instead of the operators' `client_secret`/`client_secret_env`.
    pub operator_secrets: HashMap<String, Secret>,
    /// Portability CSV text instead of the `discovery.ported_numbers` file.
    pub ported_csv: Option<String>,
}

impl BuildOptions {
    /// Defaults: system clock, fresh registry, everything from the config.
    pub fn new() -> Self {
        Self {
            clock: Arc::new(crate::clock::SystemClock),
            registry: prometheus::Registry::new(),
            keys: None,
            operator_secrets: HashMap::new(),
            ported_csv: None,
        }
    }
}

impl Default for BuildOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// Everything a request needs, immutable after start.
pub struct Gateway {
    /// Our issuer.
    pub issuer: String,
    /// Clock.
    pub clock: SharedClock,
    /// MSISDN normalisation.
    pub rules: ParseRules,
    /// Routing.
    pub directory: Directory,
    /// Operator adapters, by [`OperatorIndex`].
    pub operators: Vec<Arc<dyn OperatorBackend>>,
    /// Operator facts, by index.
    pub operator_info: Vec<OperatorInfo>,
    /// Relying parties.
    pub clients: ClientRegistry,
    /// Transactions.
    pub store: Arc<dyn Store>,
    /// Last seen versions of polled transactions (Redis store only; empty otherwise).
    pub poll_cache: Arc<crate::flow::poll_cache::PollCache>,
    /// Polls in flight here, by (client, id): an overlapping poll gets `slow_down` at once.
    pub poll_gate: Arc<crate::flow::poll_gate::PollGate>,
    /// The "not enrolled" numbers indexed here (Redis store only): the push-capability cache
    /// asks the store only about these. One per process, kept across reloads.
    pub not_enrolled_index: Option<Arc<crate::operators::resilience::not_enrolled_index::NotEnrolledIndex>>,
    /// Token issuance.
    pub tokens: TokenIssuer,
    /// Pairwise subjects.
    pub pairwise: PairwiseSubjects,
    /// Discovery API subscriber ids.
    pub subscriber_ids: SubscriberIds,
    /// Metrics.
    pub metrics: Metrics,
    /// CIBA settings.
    pub ciba: CibaConfig,
    /// Redirect (code) flow settings.
    pub redirect: RedirectConfig,
    /// Client assertion and request object settings.
    pub client_jwt: ClientJwtConfig,
    /// Discovery answer lifetime, seconds.
    pub discovery_ttl_s: u64,
    /// Request body limit.
    pub max_body_bytes: usize,
    /// Rendered `/.well-known/openid-configuration`.
    pub metadata_json: Bytes,
    /// Background driver of ping/push transactions (schedule and delivery client); shared
    /// with the next configuration on reload.
    pub driver: Arc<crate::flow::driver::Driver>,
    /// SMS codes and confirm links: settings and HMAC key.
    pub sms_codes: crate::sms::otp::SmsCodes,
    /// SMS fallback: transport, limits, SIM-swap clients, client and operator policies.
    pub sms: crate::flow::sms_start::SmsFallback,
    /// The secrets behind pairwise subjects, subscriber ids and SMS HMACs, kept so that a
    /// reload reuses generated ones (see [`build_with`]).
    pub secrets: Arc<GatewaySecrets>,
    /// Operator protection metrics (breaker, retries, shed calls), kept across reloads.
    pub resilience_metrics: crate::telemetry::metrics::ResilienceMetrics,
    /// The hash-chained audit trail of this instance (off unless `[audit] path`).
    pub audit: crate::telemetry::audit::Audit,
    /// Usage records: pushes and SMS per client and day, shared through the store.
    pub usage: Arc<crate::telemetry::usage::Usage>,
    /// Keyed MSISDN references of log lines (`msisdn_ref`).
    pub msisdn_refs: crate::telemetry::msisdn_ref::MsisdnPseudonyms,
    /// Longest RP `X-Request-Id` kept (`log.request_id_max_len`).
    pub request_id_max_len: usize,
}

/// Raw secrets a reloaded gateway must keep when they were generated, not read from files.
pub struct GatewaySecrets {
    pairwise: Vec<u8>,
    subscriber: Vec<u8>,
    sms_hmac: Vec<u8>,
    log_pseudonym: Vec<u8>,
}

impl std::fmt::Debug for GatewaySecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GatewaySecrets(..)")
    }
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").field("issuer", &self.issuer).finish_non_exhaustive()
    }
}

impl Gateway {
    /// Operator index of an id.
    pub fn operator_index(&self, id: &str) -> Option<OperatorIndex> {
        self.operator_info.iter().position(|o| o.id == id).map(|i| OperatorIndex(i as u16))
    }

    /// The adapter for an operator id.
    pub fn operator(&self, id: &str) -> Option<&Arc<dyn OperatorBackend>> {
        self.operator_index(id).and_then(|i| self.operators.get(i.0 as usize))
    }
}

/// Builds the gateway.
pub fn build(loaded: &LoadedConfig, opts: BuildOptions) -> Result<Gateway, BuildError> {
    build_inner(loaded, opts, None)
}

/// Builds the gateway of a reloaded configuration. What must survive a reload is carried over
/// from `carry_from`: the store (transactions), the metrics handles (new operators get their
/// series; `opts.registry` is not used), the ping/push driver's schedule, the SMS transport and
/// anti-pumping limits, generated signing keys and generated secrets (pairwise, subscriber, SMS HMAC,
/// log pseudonym; keys and secrets named by files are read again). Operator adapters, clients, routing and policies are rebuilt.
pub fn build_with(loaded: &LoadedConfig, opts: BuildOptions, carry_from: &Gateway) -> Result<Gateway, BuildError> {
    build_inner(loaded, opts, Some(carry_from))
}

fn build_inner(loaded: &LoadedConfig, opts: BuildOptions, carry: Option<&Gateway>) -> Result<Gateway, BuildError> {
    let cfg = &loaded.config;
    let ids: Vec<String> = cfg.operators.iter().map(|o| o.id.clone()).collect();
    let client_ids: Vec<String> = cfg.clients.iter().map(|c| c.client_id.clone()).collect();
    let metrics = match carry {
        Some(old) => {
            old.metrics.cover_operators(&ids);
            let mut m = old.metrics.clone();
            m.auth = Arc::new(old.metrics.auth.covering(&client_ids, &ids));
            m
        }
        None => Metrics::register_with_clients(opts.registry, &ids, &client_ids)?,
    };
    // The store, and the clock every part reads "now" from (a Redis store may keep it on Redis's
    // clock): both outlive a reload.
    let (store, clock): (Arc<dyn Store>, SharedClock) = match carry {
        Some(old) => (old.store.clone(), old.clock.clone()),
        None => crate::store::select::build(&cfg.store, opts.clock.clone(), metrics.store.clone())?,
    };
    let index_of = |id: &str| ids.iter().position(|o| o == id).map(|i| OperatorIndex(i as u16));
    let rules = ParseRules {
        default_country_code: cfg.discovery.default_country_code,
        national_len: cfg.discovery.national_len,
    };

    let mut prefixes = PrefixTable::new();
    for (i, op) in cfg.operators.iter().enumerate() {
        for p in &op.prefixes {
            // Duplicates were refused by validation.
            let _ = prefixes.insert(p, OperatorIndex(i as u16));
        }
    }
    let ported = match (&opts.ported_csv, &cfg.discovery.ported_numbers) {
        (Some(text), _) => {
            PortedTable::from_csv(text.as_bytes(), &rules, index_of).map_err(|e| BuildError::Ported(e.to_string()))?
        }
        (None, Some(path)) => {
            let f = std::fs::File::open(loaded.resolve(path)).map_err(|e| BuildError::Ported(e.to_string()))?;
            PortedTable::from_csv(std::io::BufReader::new(f), &rules, index_of)
                .map_err(|e| BuildError::Ported(e.to_string()))?
        }
        (None, None) => PortedTable::empty(),
    };
    let directory = Directory::new(prefixes, ported);

    // Before the operators: an `mc_si` adapter signs its request objects with our RS256 key.
    let keys = match (opts.keys, carry) {
        (Some(k), _) => Arc::new(k),
        // Generated keys live as long as the process: a reload keeps them.
        (None, Some(old)) if cfg.keys.signing_keys.is_empty() => old.tokens.keys.clone(),
        (None, _) if cfg.keys.signing_keys.is_empty() => Arc::new(KeySet::generate()?),
        (None, _) => {
            Arc::new(KeySet::load(&cfg.keys.signing_keys.iter().map(|p| loaded.resolve(p)).collect::<Vec<_>>())?)
        }
    };
    let mut operators: Vec<Arc<dyn OperatorBackend>> = Vec::with_capacity(cfg.operators.len());
    let mut sms_operators = Vec::with_capacity(cfg.operators.len());
    let mut operator_info = Vec::with_capacity(cfg.operators.len());
    for op in &cfg.operators {
        let secret = match opts.operator_secrets.get(&op.id) {
            Some(s) => s.clone(),
            None => match (&op.client_secret, &op.client_secret_env) {
                (Some(s), _) => s.clone(),
                (None, Some(var)) => {
                    Secret::new(std::env::var(var).map_err(|_| BuildError::MissingSecret(op.id.clone()))?)
                }
                (None, None) => return Err(BuildError::MissingSecret(op.id.clone())),
            },
        };
        let (op_clock, dir) = (clock.clone(), &loaded.base_dir);
        if op.mode == "mc_si" {
            let si = MobileConnectSi::new(op, &secret, dir, op_clock, &metrics, keys.clone(), &cfg.server.issuer)?;
            operators.push(Arc::new(si));
        } else {
            operators.push(Arc::new(MobileConnectCiba::new(op, &secret, dir, op_clock, &metrics)?));
        }
        sms_operators.push(sms_operator(op, &secret, &loaded.base_dir));
        operator_info.push(OperatorInfo {
            browser_target: op.authorization_endpoint.clone().unwrap_or_else(|| op.issuer.clone()),
            id: op.id.clone(),
            name: op.display_name.clone().unwrap_or_else(|| op.id.clone()),
            country: op.country.clone(),
            mcc_mnc: op.mcc_mnc.clone(),
        });
    }

    let (clients, id_token_algs) = crate::rp::client_auth::build_registry(loaded, &keys, clock.clone(), index_of)?;
    // A generated secret (no file) is reused on reload; a named file is read again.
    let secret = |file: &Option<std::path::PathBuf>, old: Option<&Vec<u8>>| match (file, old) {
        (None, Some(old)) => Ok(old.clone()),
        _ => crate::tokens::load_or_generate_secret(file.as_ref().map(|p| loaded.resolve(p)).as_deref()),
    };
    let old_secrets = carry.map(|g| g.secrets.clone());
    let pairwise_secret = secret(&cfg.keys.pairwise_secret_file, old_secrets.as_ref().map(|s| &s.pairwise))?;
    let subscriber_secret = secret(&cfg.keys.subscriber_id_secret_file, old_secrets.as_ref().map(|s| &s.subscriber))?;
    let sms_hmac_secret = secret(&cfg.keys.sms_hmac_secret_file, old_secrets.as_ref().map(|s| &s.sms_hmac))?;
    // Kept across a reload when generated, so one MSISDN keeps one `msisdn_ref` in the logs.
    let log_pseudonym_secret =
        secret(&cfg.keys.log_pseudonym_secret_file, old_secrets.as_ref().map(|s| &s.log_pseudonym))?;
    // The memory store's look-up is as cheap as the index: no index there.
    let not_enrolled_index = match carry {
        Some(old) => old.not_enrolled_index.clone(),
        None if cfg.store.kind == "redis" && cfg.store.not_enrolled_index_max > 0 => {
            Some(crate::operators::resilience::not_enrolled_index::NotEnrolledIndex::start(
                store.clone(),
                clock.clone(),
                cfg.store.not_enrolled_index_max,
                std::time::Duration::from_millis(cfg.store.not_enrolled_sync_ms),
            ))
        }
        None => None,
    };
    // Breaker, in-flight cap, retry budget and push-capability cache around every adapter.
    let resilience_metrics = match carry {
        Some(old) => {
            old.resilience_metrics.cover_operators(&ids);
            old.resilience_metrics.clone()
        }
        None => crate::telemetry::metrics::ResilienceMetrics::register(metrics.registry(), &ids)?,
    };
    let operators = crate::operators::resilience::wrap_all(
        operators,
        &cfg.resilience,
        &cfg.operators,
        Some(crate::operators::resilience::push_cache::CacheParts {
            store: store.clone(),
            clock: clock.clone(),
            key: crate::keyed_hash::KeyedHasher::new(&sms_hmac_secret),
            index: not_enrolled_index.clone(),
        }),
        &resilience_metrics,
    )
    .map_err(BuildError::Resilience)?;
    let sms = sms_fallback(cfg, sms_operators, store.clone(), clock.clone(), &metrics, carry.map(|g| &g.sms))?;
    // The audit writer and the usage counters are the instance's own: a reload keeps them
    // (changes to [audit] and [usage] need a restart).
    let (audit, usage) = match carry {
        Some(old) => (old.audit.clone(), old.usage.clone()),
        None => {
            let (a, u) = records(loaded, &pairwise_secret, store.clone(), clock.clone(), &metrics)?;
            (a, Arc::new(u))
        }
    };
    let issuer = cfg.server.issuer.clone();
    let metadata_json = crate::rp::metadata::render(&issuer, &keys.algorithms());
    Ok(Gateway {
        tokens: TokenIssuer {
            issuer: issuer.as_str().into(),
            keys,
            id_token_ttl_s: cfg.tokens.id_token_ttl_s,
            access_token_ttl_s: cfg.tokens.access_token_ttl_s,
            id_token_algs: Arc::new(id_token_algs),
        },
        issuer,
        clock,
        rules,
        directory,
        operators,
        operator_info,
        clients,
        poll_cache: match carry {
            Some(old) => old.poll_cache.clone(),
            // The memory store's read is as cheap as the cache: no cache there.
            None => Arc::new(crate::flow::poll_cache::PollCache::new(match cfg.store.kind.as_str() {
                "redis" => cfg.store.poll_cache_slots,
                _ => 0,
            })),
        },
        // Kept across a reload (polls in flight stay known) unless its size changed.
        not_enrolled_index,
        poll_gate: match carry {
            Some(old) if old.ciba.poll_gate_slots == cfg.ciba.poll_gate_slots => old.poll_gate.clone(),
            _ => Arc::new(crate::flow::poll_gate::PollGate::new(cfg.ciba.poll_gate_slots)),
        },
        store,
        pairwise: PairwiseSubjects::new(&pairwise_secret),
        subscriber_ids: SubscriberIds::new(&subscriber_secret),
        secrets: Arc::new(GatewaySecrets {
            pairwise: pairwise_secret,
            subscriber: subscriber_secret,
            sms_hmac: sms_hmac_secret.clone(),
            log_pseudonym: log_pseudonym_secret.clone(),
        }),
        metrics,
        ciba: cfg.ciba.clone(),
        redirect: cfg.redirect.clone(),
        client_jwt: cfg.client_jwt.clone(),
        discovery_ttl_s: cfg.discovery.discovery_ttl_s,
        max_body_bytes: cfg.server.max_body_bytes,
        metadata_json,
        driver: match carry {
            Some(old) => old.driver.clone(),
            None => {
                Arc::new(crate::flow::driver::Driver::new(&cfg.driver, &cfg.notifications).map_err(BuildError::Driver)?)
            }
        },
        sms_codes: crate::sms::otp::SmsCodes::new(&cfg.sms_codes, sms_hmac_secret),
        sms,
        resilience_metrics,
        audit,
        usage,
        msisdn_refs: crate::telemetry::msisdn_ref::MsisdnPseudonyms::new(&log_pseudonym_secret),
        request_id_max_len: cfg.log.request_id_max_len,
    })
}

/// The audit trail (its MSISDN pseudonyms keyed from the pairwise secret) and the usage records.
fn records(
    loaded: &LoadedConfig,
    pseudonym_secret: &[u8],
    store: Arc<dyn Store>,
    clock: SharedClock,
    metrics: &Metrics,
) -> Result<(crate::telemetry::audit::Audit, crate::telemetry::usage::Usage), BuildError> {
    use crate::telemetry::metrics::{AuditMetrics, UsageMetrics};
    let cfg = &loaded.config;
    let audit_metrics = AuditMetrics::register(metrics.registry())?;
    let audit = crate::telemetry::audit::Audit::start(
        &cfg.audit,
        &loaded.base_dir,
        pseudonym_secret,
        clock.clone(),
        audit_metrics,
    )?;
    let budgets: Vec<(String, u32)> = cfg
        .clients
        .iter()
        .map(|c| (c.client_id.clone(), if c.sms_fallback { c.sms_daily_budget } else { 0 }))
        .collect();
    let usage_metrics = UsageMetrics::register(metrics.registry(), &budgets)?;
    let clients = cfg.clients.iter().map(|c| c.client_id.clone()).collect();
    let operators = cfg.operators.iter().map(|o| o.id.clone()).collect();
    let usage = crate::telemetry::usage::Usage::new(&cfg.usage, clients, operators, store, clock, usage_metrics);
    Ok((audit, usage))
}

/// One operator's SMS settings; a SIM-swap client that cannot be built makes every check
/// `unknown` (logged), it does not stop the gateway.
fn sms_operator(
    op: &crate::config::model::OperatorConfig,
    secret: &Secret,
    base_dir: &std::path::Path,
) -> crate::flow::sms_start::OperatorSms {
    let sim_swap = match crate::operators::sim_swap::SimSwapClient::new(op, secret, base_dir) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(error = %e, "SIM-swap client unavailable: SMS fallback will treat checks as unknown");
            None
        }
    };
    crate::flow::sms_start::OperatorSms {
        sms_fallback: op.sms_fallback,
        // Validated at load.
        error_map: crate::flow::fallback::ErrorMap::parse(&op.error_map).unwrap_or_default(),
        sim_swap,
    }
}

/// The SMS fallback material. The transport is built here, once, on the runtime that builds
/// the gateway (its SMPP session task lives there).
fn sms_fallback(
    cfg: &crate::config::model::Config,
    operators: Vec<crate::flow::sms_start::OperatorSms>,
    store: Arc<dyn Store>,
    clock: SharedClock,
    metrics: &Metrics,
    carry: Option<&crate::flow::sms_start::SmsFallback>,
) -> Result<crate::flow::sms_start::SmsFallback, BuildError> {
    use crate::flow::sms_start::{ClientSmsPolicy, SmsFallback};
    // On reload the transport (its SMPP session) and the limits' counters are kept.
    let transport = match carry {
        Some(old) => old.transport.clone(),
        None => crate::sms::transport::build(&cfg.sms).map_err(BuildError::Sms)?,
    };
    let clients = cfg
        .clients
        .iter()
        .map(|c| {
            let policy = ClientSmsPolicy {
                sms_fallback: c.sms_fallback,
                sim_swap_max_age_h: c.sim_swap_max_age_h,
                sim_swap_unknown: crate::operators::sim_swap::UnknownPolicy::from_config(&c.sim_swap_unknown),
                race: c.race,
            };
            (c.client_id.clone(), policy)
        })
        .collect();
    let limits = match carry {
        Some(old) => old.limits.clone(),
        None => Arc::new(crate::sms::limits::SmsLimits::new(&cfg.sms_limits, &cfg.clients, store, clock, metrics)),
    };
    Ok(SmsFallback { transport, limits, operators, clients })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse_unvalidated, EMBEDDED_ROUTING_TOML};

    fn options(cfg: &crate::config::Config) -> BuildOptions {
        BuildOptions {
            operator_secrets: cfg.operators.iter().map(|o| (o.id.clone(), Secret::new(String::from("s")))).collect(),
            ported_csv: Some(String::new()),
            ..BuildOptions::new()
        }
    }

    #[tokio::test]
    async fn a_reload_keeps_generated_secrets_so_log_references_stay_stable() {
        let mut cfg = parse_unvalidated(EMBEDDED_ROUTING_TOML).unwrap();
        // Clients whose keys live in files the unit test does not have.
        cfg.clients.retain(|c| c.jwks_file.is_none() && c.jwks_uri.is_none() && c.jwks.is_none());
        // Generated signing keys and secrets: nothing named by a file.
        cfg.keys = Default::default();
        let loaded = LoadedConfig { config: cfg, base_dir: ".".into() };
        let first = build(&loaded, options(&loaded.config)).expect("first build");
        let reloaded = build_with(&loaded, options(&loaded.config), &first).expect("reload");
        let fresh = build(&loaded, options(&loaded.config)).expect("another instance");
        let n = crate::msisdn::Msisdn::parse("+34600123456", &first.rules).unwrap();
        let r = |g: &Gateway| g.msisdn_refs.reference(n).as_str().to_owned();
        assert_eq!(r(&first), r(&reloaded), "a reload must not change an MSISDN's log reference");
        assert_ne!(r(&first), r(&fresh), "a generated key is per process (no file configured)");
        assert_eq!(first.secrets.pairwise, reloaded.secrets.pairwise);
        assert_eq!(first.secrets.sms_hmac, reloaded.secrets.sms_hmac);
    }
}
