//! The `mcgate` binary: parses the command line, loads configuration, binds, and hands over to
//! the library (`server`, `demo`, `sim`). Nothing here knows a protocol.

use clap::{Parser, Subcommand};
use mcgate::config::{self, Secret, ValidateOptions};
use mcgate::server::conn::ConnOptions;
use mcgate::server::runtime::{run_blocking, RunOptions};
use mcgate::server::tls::TlsMaterial;
use mcgate::server::{bind, BoundListeners};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

mod allocator;

/// mimalloc: the request path allocates many small, short-lived buffers (headers, form fields,
/// JSON); with glibc's malloc the gateway spent ~25 % more CPU per request under load. Entered
/// through [`allocator::MiMalloc`] (plain `mi_malloc` where the alignment allows).
#[global_allocator]
static GLOBAL: allocator::MiMalloc = allocator::MiMalloc;

#[derive(Parser)]
#[command(name = "mcgate", version, about = "Mobile Connect aggregator gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check an audit file's hash chain: every record's own hash, sequence and link. Prints a
    /// summary and exits 0 when intact; names the first bad line and exits 1 otherwise.
    Verify {
        /// The audit file (JSON lines).
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum Command {
    /// Serve with a configuration file.
    Serve {
        /// Path to routing.toml.
        #[arg(long, short, default_value = "routing.toml")]
        config: PathBuf,
    },
    /// Run the gateway on its embedded defaults with four simulated operators.
    Demo {
        /// Public TLS listener.
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: SocketAddr,
        /// Plain-HTTP loopback listener ("off" to disable).
        #[arg(long, default_value = "127.0.0.1:8080")]
        plain_listen: String,
        /// Admin listener (/live, /ready, /metrics).
        #[arg(long, default_value = "127.0.0.1:9090")]
        admin_listen: SocketAddr,
        /// Milliseconds the simulated person takes to answer.
        #[arg(long, default_value_t = 3000)]
        approve_after_ms: u64,
    },
    /// Validate a configuration file and list every problem.
    CheckConfig {
        /// Path to routing.toml.
        file: PathBuf,
    },
    /// Run one simulated operator (Mobile Connect CIBA OP with scripted outcomes).
    Sim {
        /// Operator id, e.g. movistar.
        #[arg(long)]
        operator: String,
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:9401")]
        listen: SocketAddr,
        /// The gateway's client id at this operator.
        #[arg(long, default_value = "mcgate")]
        client_id: String,
        /// Environment variable holding the gateway's client secret (default MCGATE_<OPERATOR>_SECRET).
        #[arg(long)]
        client_secret_env: Option<String>,
        /// Milliseconds the simulated person takes to answer.
        #[arg(long, default_value_t = 3000)]
        approve_after_ms: u64,
        /// Poll interval announced, seconds.
        #[arg(long, default_value_t = 1)]
        interval_s: u64,
        /// Call the gateway back: "ping" or "push" to --notification-endpoint ("poll": never).
        #[arg(long, default_value = "poll")]
        notification: String,
        /// The gateway's operator callback URL, e.g. http://127.0.0.1:8080/op/orange/notify.
        #[arg(long)]
        notification_endpoint: Option<String>,
        /// Also serve Mobile Connect server-initiated (`mode = "mc_si"` in the gateway's
        /// routing.toml): the gateway's JWKS URL, against which signed requests are checked,
        /// e.g. http://127.0.0.1:8080/jwks. Results go to --notification-endpoint, else to the
        /// request's notification_uri.
        #[arg(long)]
        gateway_jwks_uri: Option<String>,
    },
    /// Run an SMSC simulator (SMPP 3.4) with a loopback HTTP view of the SMS it received.
    SimSmsc {
        /// SMPP listen address.
        #[arg(long, default_value = "127.0.0.1:2775")]
        listen: SocketAddr,
        /// HTTP view (loopback only): GET /sms, GET /sms/<msisdn>.
        #[arg(long, default_value = "127.0.0.1:9480")]
        http: SocketAddr,
        /// Accepted bind system_id.
        #[arg(long, default_value = "mcgate")]
        system_id: String,
        /// Environment variable holding the accepted bind password.
        #[arg(long, default_value = "MCGATE_SMPP_PASSWORD")]
        password_env: String,
        /// Milliseconds before a delivery receipt.
        #[arg(long, default_value_t = 1000)]
        receipt_after_ms: u64,
    },
    /// Generate dev TLS certificate, signing key and secrets (never use them in production).
    Certs {
        /// Output directory.
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
    /// Print a new client secret and the SHA-256 to put in routing.toml.
    ClientSecret,
    /// Audit trail tools.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Print a fresh private_key_jwt client assertion (new jti, valid 60 s).
    ClientAssertion {
        /// The client's private key: PKCS#8 PEM, P-256 (ES256) or RSA (RS256).
        #[arg(long)]
        key: PathBuf,
        /// The client id (iss and sub).
        #[arg(long)]
        client_id: String,
        /// The audience: the gateway's issuer (or the URL of the endpoint called).
        #[arg(long)]
        aud: String,
    },
    /// Print a signed request object (e.g. for /si-authorize): the --claim values plus iss,
    /// aud, iat, nbf, exp and a fresh jti.
    RequestObject {
        /// The client's private key: PKCS#8 PEM, P-256 (ES256) or RSA (RS256).
        #[arg(long)]
        key: PathBuf,
        /// The client id (iss).
        #[arg(long)]
        client_id: String,
        /// The audience: the gateway's issuer.
        #[arg(long)]
        aud: String,
        /// A string claim `name=value` (repeatable), e.g. --claim version=mc_si_r2_v1.0.
        #[arg(long = "claim", value_name = "NAME=VALUE")]
        claims: Vec<String>,
        /// Seconds until exp.
        #[arg(long, default_value_t = 60)]
        lifetime_s: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config } => serve(config),
        Command::Demo { listen, plain_listen, admin_listen, approve_after_ms } => {
            demo(listen, plain_listen, admin_listen, approve_after_ms)
        }
        Command::CheckConfig { file } => check_config(file),
        Command::Sim {
            operator,
            listen,
            client_id,
            client_secret_env,
            approve_after_ms,
            interval_s,
            notification,
            notification_endpoint,
            gateway_jwks_uri,
        } => sim(
            operator,
            listen,
            client_id,
            client_secret_env,
            approve_after_ms,
            interval_s,
            notification,
            notification_endpoint,
            gateway_jwks_uri,
        ),
        Command::SimSmsc { listen, http, system_id, password_env, receipt_after_ms } => {
            sim_smsc(listen, http, system_id, &password_env, receipt_after_ms)
        }
        Command::Certs { dir, force } => mcgate::server::tls::write_dev_material(&dir, force)
            .map(|written| {
                for w in &written {
                    println!("wrote {w}");
                }
                if written.is_empty() {
                    println!("nothing written: files exist in {} (use --force to replace)", dir.display());
                }
            })
            .map_err(|e| e.to_string()),
        Command::ClientAssertion { key, client_id, aud } => client_assertion(key, &client_id, &aud),
        Command::RequestObject { key, client_id, aud, claims, lifetime_s } => {
            request_object(key, &client_id, &aud, &claims, lifetime_s)
        }
        Command::Audit { command: AuditCommand::Verify { file } } => {
            mcgate::telemetry::audit::verify::verify_file(&file).map(|s| println!("{s}")).map_err(|e| e.to_string())
        }
        Command::ClientSecret => {
            let (secret, hash) = config::secret::generate_client_secret();
            println!("client_secret:        {}", secret.expose());
            println!("client_secret_sha256: {hash}");
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcgate: {e}");
            ExitCode::FAILURE
        }
    }
}

fn client_assertion(key: PathBuf, client_id: &str, aud: &str) -> Result<(), String> {
    use mcgate::clock::Clock;
    let pem = std::fs::read(&key).map_err(|e| format!("cannot read {}: {e}", key.display()))?;
    let key = mcgate::tokens::keys::SigningKey::from_pem(&pem).map_err(|e| format!("{}: {e}", key.display()))?;
    let now = mcgate::clock::SystemClock.now_s();
    let jwt = mcgate::sim::rp_client::client_assertion(&key, client_id, aud, now, 60).map_err(|e| e.to_string())?;
    println!("{jwt}");
    Ok(())
}

fn request_object(key: PathBuf, client_id: &str, aud: &str, claims: &[String], lifetime_s: u64) -> Result<(), String> {
    use mcgate::clock::Clock;
    let mut params = Vec::with_capacity(claims.len());
    for c in claims {
        let (name, value) = c.split_once('=').ok_or_else(|| format!("--claim {c:?}: expected NAME=VALUE"))?;
        if name.is_empty() {
            return Err(format!("--claim {c:?}: the claim name is empty"));
        }
        params.push((name, value));
    }
    let pem = std::fs::read(&key).map_err(|e| format!("cannot read {}: {e}", key.display()))?;
    let key = mcgate::tokens::keys::SigningKey::from_pem(&pem).map_err(|e| format!("{}: {e}", key.display()))?;
    let now = mcgate::clock::SystemClock.now_s();
    let jwt = mcgate::sim::rp_client::request_object(&key, client_id, aud, &params, now, lifetime_s)
        .map_err(|e| e.to_string())?;
    println!("{jwt}");
    Ok(())
}

fn check_config(file: PathBuf) -> Result<(), String> {
    match config::load(&file, ValidateOptions { check_environment: true }) {
        Ok(l) => {
            println!(
                "{}: ok ({} operators, {} clients)",
                file.display(),
                l.config.operators.len(),
                l.config.clients.len()
            );
            Ok(())
        }
        Err(errors) => {
            eprintln!("{}: {} problem(s)", file.display(), errors.0.len());
            for e in &errors.0 {
                eprintln!("  {}: {}", e.path, e.message);
            }
            Err("configuration is invalid".into())
        }
    }
}

fn serve(path: PathBuf) -> Result<(), String> {
    let loaded = config::load(&path, ValidateOptions { check_environment: true })
        .map_err(|e| format!("{}:\n{e}", path.display()))?;
    let cfg = &loaded.config;
    let _log = mcgate::telemetry::logging::init(&cfg.log.level, &cfg.log.format);
    let addr = |s: &str| s.parse::<SocketAddr>().map_err(|e| e.to_string());
    let public = bind(addr(&cfg.server.listen)?).map_err(|e| format!("bind {}: {e}", cfg.server.listen))?;
    let plain = cfg
        .server
        .plain_listen
        .as_deref()
        .map(|p| addr(p).and_then(|a| bind(a).map_err(|e| format!("bind {p}: {e}"))))
        .transpose()?;
    let admin = bind(addr(&cfg.server.admin_listen)?).map_err(|e| format!("bind {}: {e}", cfg.server.admin_listen))?;
    let public_tls = if cfg.server.tls {
        let (c, k) = (cfg.server.tls_cert.as_ref(), cfg.server.tls_key.as_ref());
        let (c, k) = c.zip(k).ok_or("server.tls_cert and server.tls_key are required")?;
        let material = TlsMaterial::from_files(&loaded.resolve(c), &loaded.resolve(k)).map_err(|e| e.to_string())?;
        Some(material.acceptor().map_err(|e| e.to_string())?)
    } else {
        None
    };
    let scheme = if public_tls.is_some() { "https" } else { "http" };
    let report = format!(
        "mcgate ready: public={scheme}://{} plain={} admin=http://{}",
        public.local_addr().map_err(|e| e.to_string())?,
        plain.as_ref().and_then(|p| p.local_addr().ok()).map(|a| format!("http://{a}")).unwrap_or_else(|| "-".into()),
        admin.local_addr().map_err(|e| e.to_string())?
    );
    let listeners = BoundListeners { public, public_tls, plain, admin };
    let opts = RunOptions {
        flavor: cfg.server.runtime,
        workers: cfg.server.workers,
        conn: ConnOptions {
            header_read_timeout: Duration::from_millis(cfg.server.header_read_timeout_ms),
            drain_timeout: Duration::from_millis(cfg.server.drain_timeout_ms),
            max_headers: cfg.edge.max_headers,
            max_header_bytes: cfg.edge.max_header_bytes,
            h2_max_concurrent_streams: cfg.edge.h2_max_concurrent_streams,
        },
        purge_interval: Duration::from_millis(cfg.store.purge_interval_ms),
        edge: cfg.edge,
    };
    let loaded2 = loaded.clone();
    let reload = mcgate::server::runtime::ReloadSource { path, loaded: loaded.clone() };
    run_blocking(
        listeners,
        opts,
        Some(reload),
        move || async move {
            mcgate::app::build(&loaded2, mcgate::app::BuildOptions::new()).map(Arc::new).map_err(std::io::Error::other)
        },
        move |_| println!("{report}"),
    )
    .map_err(|e| e.to_string())
}

// One argument per `mcgate sim` flag; the subcommand is the only caller.
#[allow(clippy::too_many_arguments)]
fn sim(
    operator: String,
    listen: SocketAddr,
    client_id: String,
    env: Option<String>,
    approve_after_ms: u64,
    interval_s: u64,
    notification: String,
    notification_endpoint: Option<String>,
    gateway_jwks_uri: Option<String>,
) -> Result<(), String> {
    let notification = match notification.as_str() {
        "poll" => mcgate::sim::SimNotification::Poll,
        "ping" => mcgate::sim::SimNotification::Ping,
        "push" => mcgate::sim::SimNotification::Push,
        other => return Err(format!("--notification {other:?}: use poll, ping or push")),
    };
    let var = env.unwrap_or_else(|| format!("MCGATE_{}_SECRET", operator.to_uppercase()));
    let secret = std::env::var(&var)
        .map_err(|_| format!("environment variable {var} (the gateway's client secret) is not set"))?;
    let _log = mcgate::telemetry::logging::init("info", "text");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let cfg = mcgate::sim::SimConfig {
            operator_id: operator.clone(),
            client_id,
            client_secret: Secret::new(secret),
            approve_after: Duration::from_millis(approve_after_ms),
            slow: Duration::from_secs(10),
            interval_s,
            notification,
        };
        let sim = mcgate::sim::SimOperator::start(cfg, listen, rx).await.map_err(|e| e.to_string())?;
        if let Some(url) = notification_endpoint {
            sim.set_notification_endpoint(url);
        }
        if let Some(url) = gateway_jwks_uri {
            sim.set_gateway_jwks_uri(url);
        }
        println!("mcgate sim ready: operator={operator} issuer={}", sim.issuer());
        mcgate::server::shutdown_signal().await;
        let _ = tx.send(true);
        Ok(())
    })
}

fn sim_smsc(
    listen: SocketAddr,
    http: SocketAddr,
    system_id: String,
    password_env: &str,
    receipt_after_ms: u64,
) -> Result<(), String> {
    let password = std::env::var(password_env)
        .map_err(|_| format!("environment variable {password_env} (the accepted bind password) is not set"))?;
    let _log = mcgate::telemetry::logging::init("info", "text");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let cfg = mcgate::sim::smsc::SmscConfig {
            system_id,
            password,
            receipt_after: Duration::from_millis(receipt_after_ms),
        };
        let sim = mcgate::sim::smsc::SimSmsc::start(cfg, listen, http, rx).await.map_err(|e| e.to_string())?;
        println!("mcgate sim-smsc ready: smpp={} sms={}/sms", sim.smpp_addr(), sim.http_url());
        mcgate::server::shutdown_signal().await;
        let _ = tx.send(true);
        Ok(())
    })
}

fn demo(
    listen: SocketAddr,
    plain_listen: String,
    admin_listen: SocketAddr,
    approve_after_ms: u64,
) -> Result<(), String> {
    let plain = if plain_listen == "off" {
        None
    } else {
        Some(plain_listen.parse::<SocketAddr>().map_err(|e| format!("--plain-listen: {e}"))?)
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let opts = mcgate::demo::DemoOptions {
            listen,
            plain_listen: plain,
            admin_listen,
            approve_after: Duration::from_millis(approve_after_ms),
            ..Default::default()
        };
        let audit = std::env::temp_dir().join(format!("mcgate-demo-audit-{}.jsonl", std::process::id()));
        let opts = mcgate::demo::DemoOptions {
            config_text: mcgate::telemetry::audit::with_default_path(&opts.config_text, &audit),
            ..opts
        };
        let demo = mcgate::demo::start(opts).await.map_err(|e| e.to_string())?;
        let ca = std::env::temp_dir().join(format!("mcgate-demo-{}.pem", std::process::id()));
        std::fs::write(&ca, &demo.tls_cert_pem).map_err(|e| e.to_string())?;
        let key = std::env::temp_dir().join(format!("mcgate-demo-rp-jwt-{}.pem", std::process::id()));
        write_private(&key, demo.jwt_client_key_pem.expose()).map_err(|e| format!("{}: {e}", key.display()))?;
        print!("{}", mcgate::demo::instructions(&demo, &ca, &key));
        if let Some(p) = demo.gateway.audit.path() {
            println!("\nAudit trail: {}   (check it: mcgate audit verify {})", p.display(), p.display());
        }
        mcgate::server::shutdown_signal().await;
        let _ = std::fs::remove_file(&ca);
        let _ = std::fs::remove_file(&key);
        demo.stop().await;
        Ok(())
    })
}

/// Writes a private key readable by its owner only.
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    std::io::Write::write_all(&mut opts.open(path)?, text.as_bytes())
}
