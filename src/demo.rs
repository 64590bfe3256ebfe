//! `mcgate demo`: the gateway on its embedded defaults. Starts four simulated operators
//! (movistar, vodafone, orange, mc_si_demo) on ephemeral loopback ports, patches the embedded `routing.toml`
//! to point at them, generates TLS, signing keys (two RSA, so rotation shows in `/jwks`, and one
//! P-256), secrets, a fresh demo client secret and the `private_key_jwt` demo client's key pair
//! in memory, and serves. Tests start the very same thing through [`start`].

use crate::app::{self, BuildOptions, Gateway};
use crate::config::{self, Secret, ValidateOptions};
use crate::server::admin::AdminService;
use crate::server::conn::ConnOptions;
use crate::server::tls::TlsMaterial;
use crate::server::{bind, BoundListeners};
use crate::sim::rp_sink::RpSink;
use crate::sim::{SimConfig, SimNotification, SimOperator};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The portability file shipped with the repository, embedded for the demo.
pub const EMBEDDED_PORTED_CSV: &str = include_str!("../ported-numbers.csv");

/// Demo settings.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Public TLS listener.
    pub listen: SocketAddr,
    /// Plain-HTTP loopback listener.
    pub plain_listen: Option<SocketAddr>,
    /// Admin listener.
    pub admin_listen: SocketAddr,
    /// Configuration text (default: the embedded `routing.toml`).
    pub config_text: String,
    /// How long the simulated person takes to answer.
    pub approve_after: Duration,
    /// Delay of the simulators' "slow" outcome.
    pub slow: Duration,
    /// Simulators' poll interval, seconds.
    pub sim_interval_s: u64,
    /// Operators (by id) left as configured (issuer, endpoints, secret) with no simulator started
    /// for them: an external OP, e.g. the oidc-provider of tests/operator_interop.rs.
    pub keep_operators: Vec<String>,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            listen: ([127, 0, 0, 1], 8443).into(),
            plain_listen: Some(([127, 0, 0, 1], 8080).into()),
            admin_listen: ([127, 0, 0, 1], 9090).into(),
            config_text: config::EMBEDDED_ROUTING_TOML.to_owned(),
            approve_after: Duration::from_secs(3),
            slow: Duration::from_secs(10),
            sim_interval_s: 1,
            keep_operators: Vec::new(),
        }
    }
}

/// Demo start-up failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// Config problems.
    #[error("configuration:\n{0}")]
    Config(#[from] config::ConfigErrors),
    /// Build problems.
    #[error(transparent)]
    Build(#[from] app::BuildError),
    /// Socket or TLS problems.
    #[error("{0}")]
    Io(String),
}

/// A running demo.
pub struct Demo {
    /// The gateway.
    pub gateway: Arc<Gateway>,
    /// The simulators (movistar, vodafone, orange, mc_si_demo), in routing.toml order.
    pub sims: Vec<Arc<SimOperator>>,
    /// `https://…` public URL (= issuer).
    pub public_url: String,
    /// `http://…` plain loopback URL, if any.
    pub plain_url: Option<String>,
    /// `http://…` admin URL.
    pub admin_url: String,
    /// The TLS certificate (PEM) the public listener presents.
    pub tls_cert_pem: String,
    /// Demo client id (client_secret_basic).
    pub client_id: String,
    /// Demo client id registered for client_secret_post.
    pub post_client_id: String,
    /// Their (shared) secret.
    pub client_secret: Secret,
    /// The RP notification sink `demo-rp-ping` and `demo-rp-push` are registered with.
    pub rp_sink: Arc<RpSink>,
    /// Demo client id registered for private_key_jwt (ES256 ID tokens).
    pub jwt_client_id: String,
    /// Demo client id for Mobile Connect server-initiated requests (client_secret_basic with
    /// the same secret; signs with `jwt_client_key`; async results go to `rp_sink`).
    pub si_client_id: String,
    /// Its private key (in memory; `mcgate demo` writes the PEM to a temp file).
    pub jwt_client_key: Arc<crate::tokens::keys::SigningKey>,
    /// The same key as PKCS#8 PEM.
    pub jwt_client_key_pem: Secret,
    /// Demo client id with SMS fallback (client_secret_basic, the same secret).
    pub sms_client_id: String,
    /// The SMSC simulator `[sms.transport]` points at (`GET <http_url>/sms/<msisdn>`).
    pub smsc: Arc<crate::sim::smsc::SimSmsc>,
    shutdown: watch::Sender<bool>,
    admin: Arc<AdminService>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _log_guard: crate::telemetry::logging::LogGuard,
}

impl Demo {
    /// Stops accepting, drains and waits.
    pub async fn stop(self) {
        self.admin.set_ready(false);
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

/// Starts the demo on the current runtime.
pub async fn start(opts: DemoOptions) -> Result<Demo, DemoError> {
    let io = |e: std::io::Error| DemoError::Io(e.to_string());
    let (shutdown, rx) = watch::channel(false);
    let mut cfg = config::parse_unvalidated(&opts.config_text)?;

    let mut sims = Vec::new();
    let mut operator_secrets = std::collections::HashMap::new();
    for op in cfg.operators.iter_mut().filter(|op| !opts.keep_operators.contains(&op.id)) {
        let secret = Secret::new(crate::clock::random_token(32));
        let sim_cfg = SimConfig {
            operator_id: op.id.clone(),
            client_id: op.client_id.clone(),
            client_secret: secret.clone(),
            approve_after: opts.approve_after,
            slow: opts.slow,
            interval_s: opts.sim_interval_s,
            notification: match op.notification.as_str() {
                "ping" => SimNotification::Ping,
                "push" => SimNotification::Push,
                _ => SimNotification::Poll,
            },
        };
        let sim = SimOperator::start(sim_cfg, ([127, 0, 0, 1], 0).into(), rx.clone()).await.map_err(io)?;
        op.issuer = sim.issuer().to_owned();
        op.backchannel_authentication_endpoint = None;
        op.token_endpoint = None;
        op.jwks_uri = None;
        op.si_authorization_endpoint = None;
        op.client_secret = Some(secret.clone());
        op.client_secret_env = None;
        operator_secrets.insert(op.id.clone(), secret);
        sims.push(sim);
    }

    let public = bind(opts.listen).map_err(io)?;
    let public_addr = public.local_addr().map_err(io)?;
    let plain = opts.plain_listen.map(bind).transpose().map_err(io)?;
    let plain_addr = plain.as_ref().map(|p| p.local_addr()).transpose().map_err(io)?;
    let admin_l = bind(opts.admin_listen).map_err(io)?;
    let admin_addr = admin_l.local_addr().map_err(io)?;
    let public_url = format!("https://{public_addr}");
    cfg.server.issuer = public_url.clone();
    cfg.server.listen = public_addr.to_string();
    cfg.server.plain_listen = plain_addr.map(|a| a.to_string());
    cfg.server.admin_listen = admin_addr.to_string();
    cfg.keys = Default::default();
    cfg.discovery.ported_numbers = None;

    // Operators that call us back do so on the plain loopback listener (the sims trust no CA).
    if let Some(plain) = plain_addr {
        for sim in &sims {
            sim.set_notification_endpoint(format!("http://{plain}/op/{}/notify", sim.operator_id()));
            // MC server-initiated: the sims check our signed request objects against our JWKS.
            sim.set_gateway_jwks_uri(format!("http://{plain}/jwks"));
        }
    }
    // SMS fallback: an SMSC simulator on loopback, and the SMPP transport pointed at it.
    let smsc_password = crate::clock::random_token(6);
    let smsc_cfg = crate::sim::smsc::SmscConfig { password: smsc_password.clone(), ..Default::default() };
    let loopback: SocketAddr = ([127, 0, 0, 1], 0).into();
    let smsc = crate::sim::smsc::SimSmsc::start(smsc_cfg, loopback, loopback, rx.clone()).await.map_err(io)?;
    if cfg.sms.transport.is_none() {
        let port = smsc.smpp_addr().port();
        let text = format!(
            "[transport]\nkind = \"smpp\"\n[transport.smpp]\nhost = \"127.0.0.1\"\nport = {port}\n\
             system_id = \"mcgate\"\npassword = \"{smsc_password}\"\nsource_addr = \"MCGATE\"\n"
        );
        cfg.sms = toml::from_str(&text).map_err(|e| DemoError::Io(format!("demo SMS transport: {e}")))?;
    }
    let rp_sink = RpSink::start(([127, 0, 0, 1], 0).into(), rx.clone()).await.map_err(io)?;
    for c in cfg.clients.iter_mut().filter(|c| matches!(c.client_id.as_str(), "demo-rp-ping" | "demo-rp-push")) {
        c.backchannel_client_notification_endpoint = Some(format!("{}/{}", rp_sink.url(), c.client_id));
    }

    let (client_secret, hash) = config::secret::generate_client_secret();
    let key_err = |e: crate::tokens::KeyError| DemoError::Build(e.into());
    let jwt_key_pem = crate::tokens::keys::generate_p256_pkcs8_pem().map_err(key_err)?;
    let jwt_key = Arc::new(crate::tokens::keys::SigningKey::from_pem(jwt_key_pem.as_bytes()).map_err(key_err)?);
    for c in cfg.clients.iter_mut().filter(|c| c.client_id.starts_with("demo-rp")) {
        if c.token_endpoint_auth_method == "private_key_jwt" {
            c.jwks = Some(crate::sim::rp_client::public_jwks(&jwt_key));
            (c.jwks_file, c.jwks_uri) = (None, None);
        } else {
            c.client_secret_sha256 = vec![hash.clone()];
        }
    }
    // The server-initiated client signs with the same demo key; its async results go to the sink.
    for c in cfg.clients.iter_mut().filter(|c| c.client_id == "demo-rp-si") {
        c.jwks = Some(crate::sim::rp_client::public_jwks(&jwt_key));
        (c.jwks_file, c.jwks_uri) = (None, None);
        c.notification_uris = vec![format!("{}/{}", rp_sink.url(), c.client_id)];
    }
    config::validate(&cfg, Path::new("."), ValidateOptions { check_environment: false })?;
    let log = &cfg.log;
    let log_guard = crate::telemetry::logging::init(&log.level, &log.format);
    let loaded = config::LoadedConfig { config: cfg, base_dir: ".".into() };

    let tls = TlsMaterial::generate_self_signed().map_err(|e| DemoError::Io(e.to_string()))?;
    let keys = crate::tokens::KeySet::generate_with(2).map_err(key_err)?;
    let options = BuildOptions {
        operator_secrets,
        ported_csv: Some(EMBEDDED_PORTED_CSV.to_owned()),
        keys: Some(keys),
        ..BuildOptions::new()
    };
    let gateway = Arc::new(app::build(&loaded, options)?);
    let listeners = BoundListeners {
        public,
        public_tls: Some(tls.acceptor().map_err(|e| DemoError::Io(e.to_string()))?),
        plain,
        admin: admin_l,
    };
    // The same edge limits (in-flight and connection caps, drain flag) as `serve`.
    let edge_metrics = crate::telemetry::metrics::EdgeMetrics::register(gateway.metrics.registry())
        .map_err(|e| DemoError::Io(e.to_string()))?;
    let edge = Arc::new(crate::server::edge::Edge::new(&loaded.config.edge, edge_metrics));
    let admin = Arc::new(AdminService::new(gateway.clone()).with_control(None, Some(edge.clone())));
    let instance =
        crate::server::Instance { live: crate::server::reload::Live::new(gateway.clone()), edge: Some(edge) };
    let conn = ConnOptions {
        header_read_timeout: Duration::from_millis(loaded.config.server.header_read_timeout_ms),
        drain_timeout: Duration::from_millis(loaded.config.server.drain_timeout_ms),
        ..ConnOptions::default()
    };
    let purge = Duration::from_millis(loaded.config.store.purge_interval_ms);
    let task = tokio::spawn(crate::server::serve_all_live(instance, listeners, admin.clone(), rx, conn, purge));
    Ok(Demo {
        gateway,
        sims,
        public_url,
        plain_url: plain_addr.map(|a| format!("http://{a}")),
        admin_url: format!("http://{admin_addr}"),
        tls_cert_pem: tls.cert_pem,
        client_id: "demo-rp".into(),
        post_client_id: "demo-rp-post".into(),
        client_secret,
        rp_sink,
        jwt_client_id: "demo-rp-jwt".into(),
        si_client_id: "demo-rp-si".into(),
        jwt_client_key: jwt_key,
        jwt_client_key_pem: Secret::new(jwt_key_pem),
        sms_client_id: "demo-rp-sms".into(),
        smsc,
        shutdown,
        admin,
        task,
        _log_guard: log_guard,
    })
}

/// A number routed (by prefix) to `operator` whose last digit scripts `digit`'s outcome.
pub fn test_msisdn(gw: &Gateway, operator: &str, digit: u8) -> Option<crate::msisdn::Msisdn> {
    use crate::discovery::RouteSource;
    let cfg_prefixes = gw.operator_index(operator)?;
    for base in 1..=200u64 {
        for p in prefixes_of(gw, cfg_prefixes.0) {
            let pad = 11usize.checked_sub(p.len())?;
            let tail = base * 10 + digit as u64;
            let s = format!("{p}{tail:0pad$}");
            if s.len() != 11 {
                continue;
            }
            let m = crate::msisdn::Msisdn::from_digits(s.parse().ok()?).ok()?;
            if let Some(r) = gw.directory.route(&m) {
                if r.operator == cfg_prefixes && r.source == RouteSource::Prefix {
                    return Some(m);
                }
            }
        }
    }
    None
}

/// As [`test_msisdn`], but a number the SMS limits accept for `client_id` (not in a refused
/// range such as 3470…, the personal-number range the first movistar prefix starts).
pub fn sms_test_msisdn(gw: &Gateway, client_id: &str, operator: &str, digit: u8) -> Option<crate::msisdn::Msisdn> {
    let op = gw.operator_index(operator)?;
    for p in prefixes_of(gw, op.0) {
        let pad = 11usize.checked_sub(p.len() + 2)?;
        let s = format!("{p}{:0pad$}1{digit}", 0);
        let Some(m) = s.parse().ok().and_then(|v| crate::msisdn::Msisdn::from_digits(v).ok()) else { continue };
        let routed = gw.directory.route(&m).is_some_and(|r| r.operator == op);
        if routed && gw.sms.limits.number_allowed(client_id, &m).is_ok() {
            return Some(m);
        }
    }
    None
}

fn prefixes_of(gw: &Gateway, op: u16) -> Vec<String> {
    let cfg = config::parse_unvalidated(config::EMBEDDED_ROUTING_TOML).ok();
    let id = gw.operator_info.get(op as usize).map(|o| o.id.clone()).unwrap_or_default();
    cfg.and_then(|c| c.operators.into_iter().find(|o| o.id == id)).map(|o| o.prefixes).unwrap_or_default()
}

/// The text `mcgate demo` prints: endpoints, credentials, test numbers and a curl session;
/// `jwt_key` is where the private_key_jwt client's PEM was written.
pub fn instructions(demo: &Demo, ca: &Path, jwt_key: &Path) -> String {
    use std::fmt::Write;
    let gw = &demo.gateway;
    let mut s = String::new();
    let url = &demo.public_url;
    let _ = writeln!(s, "mcgate demo is running (ctrl-c to stop)\n");
    let _ = writeln!(s, "  RP endpoint (issuer)  {url}   TLS certificate: {}", ca.display());
    if let Some(p) = &demo.plain_url {
        let _ = writeln!(s, "  plain HTTP (loopback) {p}");
    }
    let _ = writeln!(s, "  admin                 {}/live  /ready  /metrics", demo.admin_url);
    for sim in &demo.sims {
        let _ = writeln!(s, "  simulated operator    {}", sim.issuer());
    }
    let _ = writeln!(
        s,
        "\n  client_id     {}   (client_secret_basic; {} uses client_secret_post)",
        demo.client_id, demo.post_client_id
    );
    let _ = writeln!(s, "  client_secret {}   (fresh for this run)\n", demo.client_secret.expose());
    let outcomes: [(u8, &str); 7] = [
        (1, "approves"),
        (2, "denies"),
        (3, "never answers"),
        (4, "unknown subscriber"),
        (5, "operator HTTP 500"),
        (6, "operator slow"),
        (7, "approves with PIN (ask acr_values=3)"),
    ];
    let _ = writeln!(s, "  Test MSISDNs (the last digit scripts the simulated person):");
    let _ = write!(s, "  {:<44}", "outcome");
    for o in &gw.operator_info {
        let _ = write!(s, "{:<14}", o.id);
    }
    let _ = writeln!(s);
    for (d, what) in outcomes {
        let _ = write!(s, "  {:<44}", format!("…{d} {what}"));
        for o in &gw.operator_info {
            let m = test_msisdn(gw, &o.id, d).map(|m| m.digits()).unwrap_or_else(|| "-".into());
            let _ = write!(s, "{m:<14}");
        }
        let _ = writeln!(s);
    }
    let _ =
        writeln!(s, "  ported numbers (embedded ported-numbers.csv): 34609000101 → orange, 34615000201 → vodafone\n");
    if let Some(si) = test_msisdn(gw, "mc_si_demo", 1) {
        let _ = writeln!(
            s,
            "  mc_si_demo numbers ({}…) go over Mobile Connect server-initiated: the same /bc-authorize and /token\n  \
             below; the gateway signs an RS256 request to the operator, which pushes to /op/mc_si_demo/notify.\n",
            &si.digits()[..5]
        );
    }
    let first = test_msisdn(gw, "movistar", 1).map(|m| m.digits()).unwrap_or_else(|| "34609000011".into());
    let auth = format!("-u {}:{}", demo.client_id, demo.client_secret.expose());
    let _ = writeln!(s, "  Try it (copy-paste):\n");
    let _ = writeln!(s, "  CA={}", ca.display());
    let _ = writeln!(
        s,
        "  AUTH_REQ_ID=$(curl -s --cacert $CA {auth} -d 'scope=openid mc_authn' -d login_hint=MSISDN:{first} \\\n      -d 'binding_message=Sign in to Demo' {url}/bc-authorize | tee /dev/stderr | sed -n 's/.*\"auth_req_id\":\"\\([^\"]*\\)\".*/\\1/p')"
    );
    let _ = writeln!(
        s,
        "  curl -s --cacert $CA {auth} -d grant_type=urn:openid:params:grant-type:ciba -d auth_req_id=$AUTH_REQ_ID {url}/token; echo"
    );
    let _ = writeln!(s, "  #   → authorization_pending while the simulated person has not answered;");
    let _ = writeln!(s, "  sleep {}", gw.ciba.interval_s);
    let _ = writeln!(
        s,
        "  curl -s --cacert $CA {auth} -d grant_type=urn:openid:params:grant-type:ciba -d auth_req_id=$AUTH_REQ_ID {url}/token; echo"
    );
    let _ = writeln!(s, "  #   → {{\"access_token\":…,\"id_token\":…}}: an RS256 ID token; keys at {url}/jwks\n");
    redirect_instructions(&mut s, url, &auth, &first);
    let sink = demo.rp_sink.url();
    let ping_auth = format!("-u demo-rp-ping:{}", demo.client_secret.expose());
    let push_auth = format!("-u demo-rp-push:{}", demo.client_secret.expose());
    let _ = writeln!(s, "  CIBA ping and push: demo-rp-ping and demo-rp-push (same secret) are notified at the");
    let _ = writeln!(s, "  RP notification sink {sink}/<client_id>; GET {sink} lists what it received.\n");
    let _ = writeln!(
        s,
        "  AUTH_REQ_ID=$(curl -s --cacert $CA {ping_auth} -d 'scope=openid mc_authn' -d login_hint=MSISDN:{first} \\\n      -d client_notification_token=my-ping-token {url}/bc-authorize | sed -n 's/.*\"auth_req_id\":\"\\([^\"]*\\)\".*/\\1/p')"
    );
    let _ = writeln!(s, "  sleep {}; curl -s {sink}; echo", gw.ciba.interval_s);
    let _ = writeln!(s, "  #   → [{{\"path\":\"/demo-rp-ping\",\"authorization\":\"Bearer my-ping-token\",\"body\":{{\"auth_req_id\":…}}}}]");
    let _ = writeln!(
        s,
        "  curl -s --cacert $CA {ping_auth} -d grant_type=urn:openid:params:grant-type:ciba -d auth_req_id=$AUTH_REQ_ID {url}/token; echo"
    );
    let _ = writeln!(
        s,
        "  curl -s --cacert $CA {push_auth} -d 'scope=openid mc_authn' -d login_hint=MSISDN:{first} -d client_notification_token=my-push-token {url}/bc-authorize; echo"
    );
    let _ = writeln!(s, "  sleep {}; curl -s {sink}; echo", gw.ciba.interval_s);
    let _ = writeln!(
        s,
        "  #   → the push: {{\"auth_req_id\",\"access_token\",\"token_type\",\"expires_in\",\"id_token\"}}"
    );
    let _ =
        writeln!(s, "  #   (orange numbers: the simulated operator pings the gateway at /op/orange/notify first)\n");
    let jwt = &demo.jwt_client_id;
    // The running binary, so the line works without `mcgate` on the PATH.
    let mcgate = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "mcgate".into());
    let _ = writeln!(s, "  private_key_jwt: client_id {jwt} (ES256 ID tokens), private key {}", jwt_key.display());
    let assertion = format!(
        "-d client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer \\\n      -d client_assertion=$({mcgate} client-assertion --key {} --client-id {jwt} --aud {url})",
        jwt_key.display()
    );
    let _ = writeln!(
        s,
        "  AUTH_REQ_ID=$(curl -s --cacert $CA -d 'scope=openid mc_authn' -d login_hint=MSISDN:{first} {assertion} \\\n      {url}/bc-authorize | tee /dev/stderr | sed -n 's/.*\"auth_req_id\":\"\\([^\"]*\\)\".*/\\1/p')"
    );
    let _ = writeln!(s, "  sleep {}", gw.ciba.interval_s);
    let _ = writeln!(
        s,
        "  curl -s --cacert $CA -d grant_type=urn:openid:params:grant-type:ciba -d auth_req_id=$AUTH_REQ_ID {assertion} \\\n      {url}/token; echo"
    );
    let _ = writeln!(s, "  #   each assertion is single use (fresh jti, 60 s); the ID token is ES256\n");
    si_instructions(&mut s, demo, jwt_key, &first);
    sms_instructions(&mut s, demo);
    s
}

/// The SMS fallback part of the instructions: which numbers fall back for `demo-rp-sms`, where
/// the SMS shows, and the confirm link by hand.
fn sms_instructions(s: &mut String, demo: &Demo) {
    use std::fmt::Write;
    let gw = &demo.gateway;
    let (url, smsc) = (&demo.public_url, demo.smsc.http_url());
    let sms = &demo.sms_client_id;
    let auth = format!("-u {sms}:{}", demo.client_secret.expose());
    let n = |d: u8| sms_test_msisdn(gw, sms, "movistar", d).map(|m| m.digits()).unwrap_or_else(|| "-".into());
    let _ =
        writeln!(s, "  SMS fallback: client_id {sms} (same secret) opted in; the other demo clients never get SMS.");
    let _ = writeln!(
        s,
        "  For {sms}: …4 (not enrolled, e.g. {}) and …5 (operator HTTP 500, e.g. {}) get an SMS confirm link",
        n(4),
        n(5)
    );
    let _ = writeln!(
        s,
        "  at once; …6 (slow operator) after the push deadline; …2 (denied) and acr_values=3 never do. The SMSC"
    );
    let _ = writeln!(s, "  simulator shows the last SMS per number: curl -s {smsc}/sms/<msisdn>\n");
    let _ = writeln!(
        s,
        "  AUTH_REQ_ID=$(curl -s --cacert $CA {auth} -d 'scope=openid mc_authn' -d login_hint=MSISDN:{} \\\n      -d 'binding_message=Sign in to Demo' {url}/bc-authorize | tee /dev/stderr | sed -n 's/.*\"auth_req_id\":\"\\([^\"]*\\)\".*/\\1/p')",
        n(4)
    );
    let _ = writeln!(
        s,
        "  LINK=$(curl -s {smsc}/sms/{} | grep -o 'https://[^\" ]*/sms/confirm/[A-Za-z0-9_-]*'); echo $LINK",
        n(4)
    );
    let _ = writeln!(
        s,
        "  CSRF=$(curl -s --cacert $CA \"$LINK\" | sed -n 's/.*name=\"csrf\" value=\"\\([^\"]*\\)\".*/\\1/p')   # the confirm page"
    );
    let _ = writeln!(
        s,
        "  curl -s --cacert $CA -d csrf=$CSRF -d decision=approve \"$LINK\" >/dev/null   # the Approve button"
    );
    let _ = writeln!(
        s,
        "  curl -s --cacert $CA {auth} -d grant_type=urn:openid:params:grant-type:ciba -d auth_req_id=$AUTH_REQ_ID {url}/token; echo"
    );
    let _ = writeln!(s, "  #   → tokens whose ID token says acr \"2\", amr [\"sms\"]\n");
}

/// The Mobile Connect server-initiated part of the instructions: a signed request object made
/// with `mcgate request-object`, the async result at the sink, then the polling variant.
fn si_instructions(s: &mut String, demo: &Demo, jwt_key: &Path, msisdn: &str) {
    use std::fmt::Write;
    let (url, si, sink) = (&demo.public_url, &demo.si_client_id, demo.rp_sink.url());
    let mcgate = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "mcgate".into());
    let _ = writeln!(s, "  Mobile Connect server-initiated: client_id {si} signs its request with the key above;");
    let _ = writeln!(s, "  mc_si_async_code results go to {sink}/{si} (Bearer = its client_notification_token):\n");
    let claims = |rt: &str| {
        format!(
            "{mcgate} request-object --key {} --client-id {si} --aud {url} --claim client_id={si} \\\n      --claim response_type={rt} --claim 'scope=openid mc_authn' --claim version=mc_si_r2_v1.0 \\\n      --claim nonce=n-$RANDOM --claim login_hint=MSISDN:{msisdn} --claim acr_values=2",
            jwt_key.display()
        )
    };
    let _ = writeln!(
        s,
        "  REQ=$({} \\\n      --claim client_notification_token=my-si-token --claim notification_uri={sink}/{si})",
        claims("mc_si_async_code")
    );
    let _ = writeln!(
        s,
        "  curl -s --cacert $CA {url}/si-authorize -d client_id={si} -d response_type=mc_si_async_code \\\n      -d 'scope=openid mc_authn' -d request=$REQ; echo   # → {{\"auth_req_id\":…,\"expires_in\":…}}"
    );
    let wait = demo.gateway.ciba.interval_s;
    let _ = writeln!(s, "  sleep {wait}; curl -s {sink}; echo");
    let _ = writeln!(
        s,
        "  #   → {{\"path\":\"/{si}\",\"authorization\":\"Bearer my-si-token\",\"body\":{{\"auth_req_id\",\"access_token\",…,\"id_token\"}}}}"
    );
    let auth = format!("-u {si}:{}", demo.client_secret.expose());
    let _ = writeln!(s, "  REQ=$({})", claims("mc_si_polling"));
    let _ = writeln!(
        s,
        "  AUTH_REQ_ID=$(curl -s --cacert $CA {url}/si-authorize -H 'Content-Type: application/json' \\\n      -d '{{\"client_id\":\"{si}\",\"response_type\":\"mc_si_polling\",\"scope\":\"openid mc_authn\",\"request\":\"'$REQ'\"}}' \\\n      | tee /dev/stderr | sed -n 's/.*\"auth_req_id\":\"\\([^\"]*\\)\".*/\\1/p')"
    );
    let _ = writeln!(
        s,
        "  sleep {wait}; curl -s --cacert $CA {auth} -d grant_type=urn:openid:params:grant-type:ciba -d auth_req_id=$AUTH_REQ_ID {url}/token; echo"
    );
    let _ = writeln!(s, "  #   → tokens; the ID token's nonce is the request's\n");
}

/// The redirect (code) flow part of the instructions: each browser hop by hand with curl.
fn redirect_instructions(s: &mut String, url: &str, auth: &str, msisdn: &str) {
    use std::fmt::Write;
    let cb = "http://127.0.0.1/demo-rp/callback";
    let _ =
        writeln!(s, "  Redirect (code) flow with PKCE, each browser hop by hand (or open the first URL in a browser");
    let _ = writeln!(s, "  without login_hint: it asks for the number, and the code shows in the address bar):\n");
    let _ = writeln!(s, "  V=dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk; C=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM  # RFC 7636 example pair");
    let _ = writeln!(
        s,
        "  OP=$(curl -s --cacert $CA -o /dev/null -w '%{{redirect_url}}' \"{url}/authorize?response_type=code&client_id=demo-rp&redirect_uri={cb}&scope=openid%20mc_authn&state=st1&nonce=n1&login_hint=MSISDN:{msisdn}&code_challenge=$C&code_challenge_method=S256\")"
    );
    let _ = writeln!(
        s,
        "  CB=$(curl -s -o /dev/null -w '%{{redirect_url}}' \"$OP\")        # the operator approves at once"
    );
    let _ = writeln!(s, "  RP=$(curl -s --cacert $CA -o /dev/null -w '%{{redirect_url}}' \"$CB\"); echo \"$RP\"   # {cb}?code=…&state=st1&iss=…");
    let _ = writeln!(s, "  CODE=$(echo \"$RP\" | sed -n 's/.*[?&]code=\\([^&]*\\).*/\\1/p')");
    let _ = writeln!(
        s,
        "  AT=$(curl -s --cacert $CA {auth} -d grant_type=authorization_code -d code=$CODE -d redirect_uri={cb} -d code_verifier=$V {url}/token | tee /dev/stderr | sed -n 's/.*\"access_token\":\"\\([^\"]*\\)\".*/\\1/p')"
    );
    let _ = writeln!(
        s,
        "  curl -s --cacert $CA -H \"Authorization: Bearer $AT\" {url}/userinfo; echo   # → {{\"sub\":…}}\n"
    );
}
