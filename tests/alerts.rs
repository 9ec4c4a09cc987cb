//! The Prometheus alert rules: valid, and their unit tests pass under the
//! real `promtool` (Debian's `prometheus` package, which the test script
//! installs).

use std::process::Command;

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/prometheus"))
        .output()
        .expect("promtool is needed: apt-get install prometheus (scripts/test.sh does)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn alert_rules_are_valid() {
    let said = promtool(&["check", "rules", "egress-audit.rules.yml"]);
    assert!(said.contains("8 rules found"), "{said}");
}

#[test]
fn alert_rule_unit_tests_pass() {
    let said = promtool(&["test", "rules", "egress-audit.rules.test.yml"]);
    assert!(said.contains("SUCCESS"), "{said}");
}

/// Metric names an expression text refers to.
fn referenced(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("egress_audit_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

fn exported(name: &str) -> bool {
    let base = ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))
        .unwrap_or(name);
    egress_audit::metrics::METRIC_NAMES.contains(&base)
}

#[test]
fn rules_and_dashboard_use_only_exported_metrics() {
    let root = env!("CARGO_MANIFEST_DIR");
    let rules = std::fs::read_to_string(format!("{root}/deploy/prometheus/egress-audit.rules.yml"))
        .unwrap();
    let dashboard =
        std::fs::read_to_string(format!("{root}/deploy/grafana/egress-audit.json")).unwrap();
    let source = std::fs::read_to_string(format!("{root}/src/metrics.rs")).unwrap();
    let used: Vec<String> = referenced(&rules)
        .into_iter()
        .chain(referenced(&dashboard))
        .collect();
    assert!(used.len() > 20, "{used:?}");
    for name in &used {
        assert!(exported(name), "{name} is used but not exported");
    }
    for name in egress_audit::metrics::METRIC_NAMES {
        let uses = source.matches(&format!("\"{name}\"")).count();
        assert!(uses >= 2, "{name} is listed but never recorded");
    }
    let panels: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
    let titles: Vec<&str> = panels["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["title"].as_str())
        .collect();
    for wanted in [
        "Calls per second by bot",
        "Error rate by bot (5xx and 4xx)",
        "Latency p50 and p95 by bot",
        "Top destinations (last 24 hours, from the audit table)",
        "Pipeline health",
    ] {
        assert!(titles.contains(&wanted), "{wanted} missing from {titles:?}");
    }
}
