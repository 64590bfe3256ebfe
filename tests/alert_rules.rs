//! The NOC's alert rules (`dashboards/alerts.rules.yml`, issue 8) checked by the real `promtool`
//! (Debian package `prometheus`, installed by scripts/test): `promtool check rules` accepts the
//! file, `promtool test rules dashboards/alerts.test.yml` passes, and every alert has at least
//! one unit test that expects it to fire.

use std::path::{Path, PathBuf};
use std::process::Command;

fn dashboards() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards")
}

/// Runs `promtool args…` in `dashboards/`; its combined output, or a loud failure when promtool
/// is missing (scripts/test installs it).
fn promtool(args: &[&str]) -> (bool, String) {
    let out = Command::new("promtool").args(args).current_dir(dashboards()).output().unwrap_or_else(|e| {
        panic!("promtool not runnable ({e}): install the Debian package `prometheus` (scripts/test does)")
    });
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// Values of `key: value` lines (`- alert: X`, `alertname: X`) in a YAML text.
fn values_of(text: &str, key: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.trim().trim_start_matches("- ").strip_prefix(key))
        .map(|v| v.trim().trim_matches('"').to_owned())
        .collect()
}

#[test]
fn promtool_accepts_the_rule_file() {
    let (ok, out) = promtool(&["check", "rules", "alerts.rules.yml"]);
    assert!(ok, "promtool check rules failed:\n{out}");
    let rules = std::fs::read_to_string(dashboards().join("alerts.rules.yml")).unwrap();
    let n = values_of(&rules, "alert:").len();
    assert!(out.contains(&format!("SUCCESS: {n} rules found")), "{n} alerts expected:\n{out}");
}

#[test]
fn promtool_rule_unit_tests_pass_and_cover_every_alert() {
    let (ok, out) = promtool(&["test", "rules", "alerts.test.yml"]);
    assert!(ok, "promtool test rules failed:\n{out}");
    assert!(out.contains("SUCCESS"), "{out}");

    let rules = std::fs::read_to_string(dashboards().join("alerts.rules.yml")).unwrap();
    let tests = std::fs::read_to_string(dashboards().join("alerts.test.yml")).unwrap();
    let alerts = values_of(&rules, "alert:");
    assert!(alerts.len() >= 7, "the issue's seven alerts at least: {alerts:?}");
    // An alert is covered when a test case names it and expects at least one firing alert.
    let mut covered = Vec::new();
    let mut current = None;
    for line in tests.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("alertname:") {
            current = Some(name.trim().to_owned());
        } else if line.starts_with("- exp_labels:") {
            covered.extend(current.clone());
        }
    }
    let missing: Vec<_> = alerts.iter().filter(|a| !covered.contains(a)).collect();
    assert!(missing.is_empty(), "alerts without a firing unit test: {missing:?}");
}

#[test]
fn promtool_test_rules_catches_a_wrong_expectation() {
    // The harness is real: the same tests with one expectation changed must fail.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(dashboards().join("alerts.rules.yml"), dir.path().join("alerts.rules.yml")).unwrap();
    let tests = std::fs::read_to_string(dashboards().join("alerts.test.yml")).unwrap();
    let broken = tests.replacen(
        "exp_labels: {severity: page, operator: vodafone}",
        "exp_labels: {severity: page, operator: orange}",
        1,
    );
    assert_ne!(broken, tests, "the breaker test case names vodafone");
    std::fs::write(dir.path().join("alerts.test.yml"), broken).unwrap();
    let out = Command::new("promtool")
        .args(["test", "rules", "alerts.test.yml"])
        .current_dir(dir.path())
        .output()
        .expect("promtool runs");
    assert!(!out.status.success(), "a wrong expectation must fail");
}

#[test]
fn promtool_accepts_the_example_scrape_configuration() {
    let (ok, out) = promtool(&["check", "config", "prometheus.example.yml"]);
    assert!(ok, "promtool check config failed:\n{out}");
    assert!(out.contains("SUCCESS: 1 rule files found"), "{out}");
}
