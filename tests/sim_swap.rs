//! The CAMARA SIM Swap v2 client against the simulated operator over loopback: every scripted
//! answer (swapped, not swapped, 500, slow beyond the timeout, junk, out-of-range maxAge, wrong
//! credentials) and the client policy on unknown answers (shared/security.md S-14, S-15, F-07).

use mcgate::config::{parse_unvalidated, Secret, EMBEDDED_ROUTING_TOML};
use mcgate::flow::fallback::SimSwapGate;
use mcgate::msisdn::Msisdn;
use mcgate::operators::sim_swap::{gate, SimSwapClient, SimSwapStatus, UnknownPolicy};
use mcgate::sim::{SimConfig, SimNotification, SimOperator};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn sim() -> (Arc<SimOperator>, tokio::sync::watch::Sender<bool>) {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let cfg = SimConfig {
        operator_id: "movistar".into(),
        client_id: "mcgate".into(),
        client_secret: Secret::new("op-secret"),
        approve_after: Duration::from_millis(10),
        slow: Duration::from_millis(10),
        interval_s: 1,
        notification: SimNotification::Poll,
    };
    (SimOperator::start(cfg, "127.0.0.1:0".parse().unwrap(), rx).await.unwrap(), tx)
}

fn client(issuer: &str, secret: &str, timeout_ms: u64) -> SimSwapClient {
    let mut cfg = parse_unvalidated(EMBEDDED_ROUTING_TOML).unwrap().operators.remove(0);
    cfg.issuer = issuer.to_owned();
    cfg.sim_swap_timeout_ms = timeout_ms;
    SimSwapClient::new(&cfg, &Secret::new(secret), std::path::Path::new(".")).unwrap()
}

fn m(digits: u64) -> Msisdn {
    Msisdn::from_digits(digits).unwrap()
}

#[tokio::test]
async fn scripted_answers_map_to_swapped_not_swapped_or_unknown() {
    let (sim, _stop) = sim().await;
    let c = client(sim.issuer(), "op-secret", 500);
    for (digits, want) in [
        (34_600_000_191, SimSwapStatus::Swapped),
        (34_600_000_101, SimSwapStatus::NotSwapped),
        (34_600_000_181, SimSwapStatus::Unknown), // 500
        (34_600_000_161, SimSwapStatus::Unknown), // junk 200
    ] {
        assert_eq!(c.check(&m(digits), 240).await, want, "{digits}");
    }
    // maxAge is validated by the operator: out of range → unknown
    assert_eq!(c.check(&m(34_600_000_101), 2401).await, SimSwapStatus::Unknown);
    assert_eq!(c.check(&m(34_600_000_101), 0).await, SimSwapStatus::Unknown);
    assert_eq!(c.check(&m(34_600_000_101), 2400).await, SimSwapStatus::NotSwapped);
    assert!(sim.stats.sim_swap.load(Ordering::Relaxed) >= 7);
}

#[tokio::test]
async fn a_slow_operator_is_cut_off_at_the_timeout_and_unknown_is_denied_by_default() {
    let (sim, _stop) = sim().await;
    let c = client(sim.issuer(), "op-secret", 300);
    let started = Instant::now();
    let status = c.check(&m(34_600_000_171), 240).await;
    assert_eq!(status, SimSwapStatus::Unknown);
    assert!(started.elapsed() < mcgate::sim::operator::sim_swap::SLOW, "bounded by the timeout");
    assert_eq!(gate(status, UnknownPolicy::from_config("deny")), SimSwapGate::UnknownDenied);
    assert_eq!(gate(status, UnknownPolicy::from_config("allow")), SimSwapGate::Passed);
}

#[tokio::test]
async fn wrong_credentials_or_no_operator_are_unknown() {
    let (sim, _stop) = sim().await;
    assert_eq!(client(sim.issuer(), "wrong", 500).check(&m(34_600_000_101), 240).await, SimSwapStatus::Unknown);
    // Nothing listens on this port any more.
    let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let gone = client(&format!("http://{addr}"), "op-secret", 500);
    assert_eq!(gone.check(&m(34_600_000_101), 240).await, SimSwapStatus::Unknown);
}
