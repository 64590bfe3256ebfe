//! Limits against a fake governor clock and the real in-memory store: per-MSISDN rate (S-17),
//! prefix and client budget under a pumping burst (S-18), country and premium ranges (S-16),
//! consecutive failures (S-06), refusal metrics, and that push never consults them (S-20).

use super::*;
use crate::clock::{Clock as _, ManualClock};
use crate::config::{parse_unvalidated, EMBEDDED_ROUTING_TOML};
use crate::store::MemoryStore;
use governor::clock::FakeRelativeClock;
use rand::Rng;

struct Fixture {
    limits: SmsLimits<FakeRelativeClock>,
    clock: FakeRelativeClock,
    metrics: crate::telemetry::Metrics,
}

fn fixture(edit: impl Fn(&mut crate::config::Config)) -> Fixture {
    let mut cfg = parse_unvalidated(EMBEDDED_ROUTING_TOML).unwrap();
    edit(&mut cfg);
    let wall = Arc::new(ManualClock::new(1_000_000));
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new(wall.clone()));
    let metrics = crate::telemetry::Metrics::register(prometheus::Registry::new(), &[]).unwrap();
    let clock = FakeRelativeClock::default();
    let limits =
        SmsLimits::with_clock(&cfg.sms_limits, &cfg.clients, store, move || wall.now_ms(), &metrics, clock.clone());
    Fixture { limits, clock, metrics }
}

fn m(digits: u64) -> Msisdn {
    Msisdn::from_digits(digits).unwrap()
}

fn reason(r: Result<(), LimitError>) -> Option<Refusal> {
    match r {
        Ok(()) => None,
        Err(LimitError::Refused { reason, .. }) => Some(reason),
        Err(e) => panic!("{e}"),
    }
}

fn refusals(f: &Fixture, r: Refusal) -> u64 {
    f.metrics.sms_refusals.with_label_values(&[r.as_str()]).get()
}

#[tokio::test]
async fn one_msisdn_gets_one_sms_per_30_s_5_per_hour_10_per_day() {
    let f = fixture(|_| {});
    let to = m(34_600_000_101);
    assert_eq!(reason(f.limits.admit("demo-rp", &to).await), None);
    match f.limits.admit("demo-rp", &to).await {
        Err(LimitError::Refused { reason: Refusal::RateLimited, retry_after_s: Some(s) }) => assert!(s <= 30, "{s}"),
        other => panic!("{other:?}"),
    }
    // One attempt every 30 s for 25 hours: count what passes in every rolling window.
    let mut times = vec![0u64];
    for step in 1..=(25 * 120) {
        f.clock.advance(Duration::from_secs(30));
        if f.limits.admit("demo-rp", &to).await.is_ok() {
            times.push(step * 30);
        }
    }
    let most_in =
        |window: u64| times.iter().map(|&t| times.iter().filter(|&&u| u >= t && u < t + window).count()).max().unwrap();
    assert!(most_in(3_600) <= 5, "at most 5 in any hour: {times:?}");
    assert!(most_in(86_400) <= 10, "at most 10 in any day: {times:?}");
    assert!(most_in(30) <= 1);
    assert!(times.len() >= 10, "the quota is usable: {times:?}");
    assert!(refusals(&f, Refusal::RateLimited) > 0);
}

#[tokio::test]
async fn a_burst_of_random_numbers_from_one_client_stops_at_its_limits_and_budget() {
    let f = fixture(|c| {
        for client in &mut c.clients {
            client.sms_hourly_budget = 30;
            client.sms_daily_budget = 40;
        }
    });
    let mut rng = rand::rng();
    let mut sent = 0;
    // 1000 random Spanish mobile numbers in one prefix range and elsewhere.
    for i in 0..1000u64 {
        let to = if i % 2 == 0 {
            m(34_600_000_000 + rng.random_range(0..10_000)) // one prefix (3460000)
        } else {
            m(34_600_000_000 + rng.random_range(0..100_000_000))
        };
        if f.limits.admit("demo-rp", &to).await.is_ok() {
            sent += 1;
        }
    }
    assert_eq!(sent, 15, "the hourly budget caps the burst (at most half of it at once)");
    assert!(refusals(&f, Refusal::BudgetExhausted) > 0);
    // The same prefix alone stops at 50/h (another client with a large budget).
    let g = fixture(|_| {});
    let mut in_prefix = 0;
    for i in 0..200u64 {
        if g.limits.admit("demo-rp", &m(34_611_110_000 + i)).await.is_ok() {
            in_prefix += 1;
        }
    }
    assert_eq!(in_prefix, 25, "per-prefix limit (at most half of the hour's 50 at once)");
    // Over the day the daily budget holds even when the hour refills.
    for _ in 0..24 {
        f.clock.advance(HOUR);
        for _ in 0..50 {
            if f.limits.admit("demo-rp", &m(34_600_000_000 + rng.random_range(0..100_000_000))).await.is_ok() {
                sent += 1;
            }
        }
    }
    assert!(sent <= 40, "at most the daily budget in any rolling day ({sent})");
}

#[tokio::test]
async fn foreign_and_premium_numbers_are_refused_and_counted() {
    let f = fixture(|c| {
        let rp = c.clients.iter_mut().find(|c| c.client_id == "demo-rp-post").unwrap();
        rp.sms_countries = vec!["34".into(), "351".into()];
    });
    for (client, digits, want) in [
        ("demo-rp", 447_700_900_123, Refusal::CountryNotAllowed),
        ("demo-rp", 882_000_000_001, Refusal::CountryNotAllowed),
        ("demo-rp", 34_905_123_456, Refusal::PremiumRange),
        ("demo-rp", 34_800_123_456, Refusal::PremiumRange),
        ("demo-rp", 34_912_345_678, Refusal::PremiumRange), // fixed (Madrid)
        ("demo-rp", 34_702_123_456, Refusal::PremiumRange), // personal numbers
        ("unknown-client", 34_600_000_101, Refusal::CountryNotAllowed),
    ] {
        assert_eq!(reason(f.limits.admit(client, &m(digits)).await), Some(want), "{digits}");
        assert_eq!(want.gate(), LimitGate::NumberRefused);
    }
    assert_eq!(reason(f.limits.admit("demo-rp-post", &m(351_912_345_678)).await), None, "allowed country");
    assert_eq!(refusals(&f, Refusal::PremiumRange), 4);
    assert_eq!(refusals(&f, Refusal::CountryNotAllowed), 3);
}

#[tokio::test]
async fn a_zero_budget_client_never_gets_an_sms() {
    let f = fixture(|c| c.clients.iter_mut().for_each(|c| c.sms_daily_budget = 0));
    assert_eq!(reason(f.limits.admit("demo-rp", &m(34_600_000_101)).await), Some(Refusal::BudgetExhausted));
    assert_eq!(Refusal::BudgetExhausted.gate(), LimitGate::Exhausted);
}

#[tokio::test]
async fn consecutive_failures_refuse_sms_until_a_success() {
    let f = fixture(|c| c.sms_limits.max_consecutive_failures = 12);
    let to = m(34_600_000_201);
    for i in 1..=12 {
        assert_eq!(f.limits.record_failure(&to).await.unwrap(), i);
    }
    assert_eq!(reason(f.limits.admit("demo-rp", &to).await), Some(Refusal::TooManyFailures));
    assert_eq!(reason(f.limits.admit("demo-rp", &m(34_600_000_202)).await), None, "other numbers unaffected");
    f.limits.record_success(&to).await.unwrap();
    assert_eq!(reason(f.limits.admit("demo-rp", &to).await), None);
    assert_eq!(refusals(&f, Refusal::TooManyFailures), 1);
}

/// S-20 at the API level: the push path cannot consult the limits. `OperatorBackend::start_push`
/// takes no limiter, and with every limit exhausted the fallback decision still says push when
/// the operator is up.
#[tokio::test]
async fn limits_have_no_say_in_push() {
    use crate::flow::fallback::*;
    let f = fixture(|c| {
        c.sms_limits.max_consecutive_failures = 1;
        c.clients.iter_mut().for_each(|c| c.sms_daily_budget = 0);
    });
    let to = m(34_600_000_301);
    f.limits.record_failure(&to).await.unwrap();
    let refused = reason(f.limits.admit("demo-rp", &to).await).unwrap();
    let input = FallbackInput {
        route_found: true,
        push_capable: true,
        health: OperatorHealth::Healthy,
        operator_sms: true,
        signal: None,
        policy: RpPolicy { sms_fallback: true, min_acr: 2, requested_floor: 2 },
        timing: Timing::BeforePushDeadline,
        phase: Phase::BeforeAck,
        sms: SmsPreconditions { mobile_range: true, sim_swap: None, limits: Some(refused.gate()) },
    };
    assert_eq!(decide(&input), Decision::Push);
    // A push the operator is handling stays push whatever the limits say.
    let waiting = FallbackInput { signal: Some(SignalClass::PushTimeout), ..input };
    assert_eq!(decide(&waiting), Decision::Push);
}
