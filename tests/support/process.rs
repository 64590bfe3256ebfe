//! One real `mcgate serve` process for a test: started on a configuration file (ephemeral
//! loopback ports), its public and admin URLs read off the "mcgate ready" line, killed with
//! SIGKILL on [`ServeProcess::kill9`] or Drop. Extra environment (e.g. libfaketime's) and a
//! stderr file are optional.
#![allow(dead_code)]

use mcgate::config::Secret;
use mcgate::sim::{SimConfig, SimNotification, SimOperator};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct ServeProcess {
    child: Child,
    pub public: String,
    pub admin: String,
}

impl ServeProcess {
    /// `mcgate serve --config config`, stderr discarded.
    pub fn start(config: &Path) -> Self {
        Self::start_with(config, &[], None)
    }

    /// As [`start`](Self::start), with `env` added and stderr written to `stderr_to`.
    pub fn start_with(config: &Path, env: &[(&str, &str)], stderr_to: Option<&Path>) -> Self {
        let stderr = match stderr_to {
            Some(p) => Stdio::from(std::fs::File::create(p).unwrap()),
            None => Stdio::null(),
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_mcgate"))
            .args(["serve", "--config", config.to_str().unwrap()])
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert!(line.starts_with("mcgate ready: public=http://127.0.0.1:"), "{line}");
        let field = |k: &str| line.split_whitespace().find_map(|w| w.strip_prefix(k)).unwrap().to_owned();
        Self { public: field("public="), admin: field("admin="), child }
    }

    /// Waits until the admin listener's `/ready` answers 200 (at most `within`).
    pub async fn wait_ready(&self, within: Duration) {
        let until = std::time::Instant::now() + within;
        let http = reqwest::Client::builder().timeout(within).build().unwrap();
        while http.get(format!("{}/ready", self.admin)).send().await.map(|r| r.status().as_u16()).unwrap_or(0) != 200 {
            assert!(std::time::Instant::now() < until, "{} not ready within {within:?}", self.admin);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The secret of client `rp` in [`OrangeSim::write_config`].
pub const RP_SECRET: &str = "test";
/// SHA-256 of [`RP_SECRET`].
pub const RP_SECRET_SHA256: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

/// POSTs `form` to `url` as client `rp` (HTTP Basic): the status and the JSON answer.
pub async fn rp_post(http: &reqwest::Client, url: &str, form: &[(&str, &str)]) -> (u16, serde_json::Value) {
    let r = http.post(url).basic_auth("rp", Some(RP_SECRET)).form(form).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// The simulated operator `orange` of [`OrangeSim::write_config`] (the person answers after 300 ms,
/// interval 1 s), on an ephemeral loopback port, with its own random gateway secret.
pub struct OrangeSim {
    pub sim: std::sync::Arc<SimOperator>,
    pub secret: String,
    _stop: tokio::sync::watch::Sender<bool>,
}

impl OrangeSim {
    pub async fn start(notification: SimNotification) -> Self {
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let secret = mcgate::clock::random_token(24);
        let sim = SimOperator::start(
            SimConfig {
                operator_id: "orange".into(),
                client_id: "mcgate".into(),
                client_secret: Secret::new(secret.clone()),
                approve_after: Duration::from_millis(300),
                slow: Duration::from_secs(2),
                interval_s: 1,
                notification,
            },
            "127.0.0.1:0".parse().unwrap(),
            stop_rx,
        )
        .await
        .unwrap();
        Self { sim, secret, _stop: stop }
    }

    /// Writes `routing.toml` (and generates `certs/`) in `dir` for instances sharing the Redis
    /// at `redis_url` and routing every number (prefix 34) to this simulator as `orange`:
    /// ephemeral loopback listeners, the same key files for every instance, CIBA interval 1 s,
    /// `[store] health_interval_ms = 200` plus `store_extra`, `operator_extra` added to the
    /// operator, client `rp` with secret "test". Returns the file's path.
    pub fn write_config(
        &self,
        dir: &Path,
        redis_url: &str,
        store_extra: &str,
        operator_extra: &str,
        log_level: &str,
    ) -> std::path::PathBuf {
        let certs = dir.join("certs");
        let out = Command::new(env!("CARGO_BIN_EXE_mcgate"))
            .args(["certs", "--dir", certs.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = format!(
            r#"
[server]
issuer = "http://127.0.0.1:8088"
listen = "127.0.0.1:0"
tls = false
admin_listen = "127.0.0.1:0"
runtime = "multi_thread"
workers = 2

[keys]
signing_keys = ["certs/signing-rs256.pem"]
pairwise_secret_file = "certs/pairwise.secret"
subscriber_id_secret_file = "certs/subscriber-id.secret"
sms_hmac_secret_file = "certs/sms-hmac.secret"
log_pseudonym_secret_file = "certs/log-pseudonym.secret"

[ciba]
interval_s = 1
slow_down_step_s = 1

[store]
kind = "redis"
url = "{redis_url}"
health_interval_ms = 200
{store_extra}

[log]
level = "{log_level}"

[[operators]]
id = "orange"
prefixes = ["34"]
issuer = "{issuer}"
client_id = "mcgate"
client_secret = "{secret}"
call_timeout_ms = 2000
{operator_extra}

[[clients]]
client_id = "rp"
client_secret_sha256 = ["{RP_SECRET_SHA256}"]
sector_identifier = "rp.example"
"#,
            issuer = self.sim.issuer(),
            secret = self.secret,
        );
        let path = dir.join("routing.toml");
        std::fs::write(&path, text).unwrap();
        path
    }
}
