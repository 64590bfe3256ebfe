//! Shared by `overload.rs` and `drain_reload.rs`: in-process simulated operators, a temporary
//! `routing.toml`, and the real `mcgate serve` process started on loopback port 0 (its stdout
//! read for the ready line, then stdout and stderr collected on threads: the log lines).

#![allow(dead_code)]

use mcgate::config::Secret;
use mcgate::sim::{SimConfig, SimNotification, SimOperator};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// sha256("test"): the RP's secret is "test".
pub const RP_SECRET_SHA256: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
/// The gateway's secret at every simulated operator.
pub const OP_SECRET: &str = "sim-secret";

/// Simulated operators, stopped on drop.
pub struct Sims {
    pub ops: Vec<Arc<SimOperator>>,
    _stop: tokio::sync::watch::Sender<bool>,
}

/// Starts one simulated CIBA operator per id (poll mode).
pub async fn start_sims(ids: &[&str], approve_after: Duration, slow: Duration) -> Sims {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let mut ops = Vec::new();
    for id in ids {
        let cfg = SimConfig {
            operator_id: (*id).to_owned(),
            client_id: "mcgate".into(),
            client_secret: Secret::new(OP_SECRET.to_owned()),
            approve_after,
            slow,
            interval_s: 1,
            notification: SimNotification::Poll,
        };
        ops.push(SimOperator::start(cfg, "127.0.0.1:0".parse().unwrap(), rx.clone()).await.expect("sim"));
    }
    Sims { ops, _stop: tx }
}

/// One `[[operators]]` entry routing `prefix` to `sim`.
pub fn operator_toml(sim: &SimOperator, prefix: &str) -> String {
    format!(
        "[[operators]]\nid = \"{}\"\nprefixes = [\"{prefix}\"]\nissuer = \"{}\"\nclient_id = \"mcgate\"\nclient_secret = \"{OP_SECRET}\"\ncall_timeout_ms = 3300\n\n",
        sim.operator_id(),
        sim.issuer()
    )
}

/// One `[[clients]]` entry (client_secret_basic, secret "test", poll mode).
pub fn client_toml(client_id: &str) -> String {
    format!(
        "[[clients]]\nclient_id = \"{client_id}\"\nclient_secret_sha256 = [\"{RP_SECRET_SHA256}\"]\nsector_identifier = \"{client_id}.example\"\n\n"
    )
}

/// `[server]`, `[edge]` and `[log]` with the given extra lines.
pub fn head_toml(server_extra: &str, edge: &str) -> String {
    format!(
        "[server]\nissuer = \"http://127.0.0.1:8088\"\nlisten = \"127.0.0.1:0\"\ntls = false\nadmin_listen = \"127.0.0.1:0\"\nruntime = \"multi_thread\"\nworkers = 2\n{server_extra}\n\n[edge]\n{edge}\n\n[log]\nlevel = \"warn\"\nformat = \"json\"\n\n"
    )
}

/// A running `mcgate serve`; killed on drop.
pub struct Gateway {
    pub child: Child,
    pub public: String,
    pub admin: String,
    /// Every stdout/stderr line after the ready line (JSON logs are on stderr).
    pub lines: Arc<Mutex<Vec<String>>>,
}

impl Gateway {
    /// Starts `mcgate serve --config path` and waits for its ready line.
    pub fn start(path: &std::path::Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mcgate"))
            .args(["serve", "--config", path.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn mcgate");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert!(line.starts_with("mcgate ready: public=http://127.0.0.1:"), "{line}");
        let field = |k: &str| line.split_whitespace().find_map(|w| w.strip_prefix(k)).unwrap().to_owned();
        let (public, admin) = (field("public="), field("admin="));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for l in out.lines() {
                let Ok(l) = l else { return };
                sink.lock().unwrap().push(l);
            }
        });
        let (sink, err) = (lines.clone(), BufReader::new(child.stderr.take().unwrap()));
        std::thread::spawn(move || {
            for l in err.lines() {
                let Ok(l) = l else { return };
                sink.lock().unwrap().push(l);
            }
        });
        Self { child, public, admin, lines }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (`HUP`, `TERM`).
    pub fn signal(&self, sig: &str) {
        assert!(Command::new("kill").args([&format!("-{sig}"), &self.pid().to_string()]).status().unwrap().success());
    }

    /// Resident memory, kB, from /proc.
    pub fn rss_kb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    /// Waits (bounded) for the process to exit; returns whether it exited successfully.
    pub fn wait_exit(&mut self, within: Duration) -> bool {
        let end = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            assert!(std::time::Instant::now() < end, "mcgate did not exit within {within:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of one series in Prometheus text (`name{labels}` exactly as rendered), 0 if absent.
pub async fn metric(http: &reqwest::Client, admin: &str, series: &str) -> f64 {
    let text = http.get(format!("{admin}/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}
