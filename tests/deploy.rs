//! The files under `deploy/` checked by the tools that will read them: the
//! systemd unit by `systemd-analyze` (verify, and a security rating of at
//! most 2.0), the Squid snippet by Squid itself and by this crate's format
//! compiler, the logrotate file by logrotate's dry run. A missing tool fails
//! the test with the Debian package to install; nothing is skipped.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use egress_audit::config::Config;
use egress_audit::enrich::Enricher;
use egress_audit::parse::{self, LineFormat};

/// The highest `systemd-analyze security` exposure the unit may have.
const MAX_EXPOSURE: f64 = 2.0;

/// A line the snippet's format writes for a bot that sends both headers.
const SAMPLE_LINE: &str = "1764000000.123    250 10.0.3.15 TCP_MISS/200 1234 GET \
    http://api.example.com/v1/items?q=1 - HIER_DIRECT/203.0.113.5 application/json 321 \
    \"crawler-7\" \"research\" \"Mozilla/5.0 (compatible; crawler)\"";

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path)
}

/// The path of `name`, or a panic that says which Debian package has it.
fn tool(name: &str, package: &str) -> PathBuf {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .chain(["/usr/sbin".into(), "/usr/bin".into(), "/sbin".into()])
        .map(|dir| dir.join(name))
        .find(|path| path.is_file());
    found.unwrap_or_else(|| {
        panic!(
            "{name} is needed for this test and is not installed: \
             apt-get install {package} (scripts/test.sh does this)"
        )
    })
}

fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The unit, copied into `dir` with ExecStart pointing at the binary this
/// build made: `verify` insists that the program exists.
fn unit_with_built_binary(dir: &Path) -> PathBuf {
    let unit = std::fs::read_to_string(deploy("egress-audit.service")).unwrap();
    let exec = "ExecStart=/usr/bin/egress-audit ";
    assert!(unit.contains(exec), "the unit should start {exec}");
    let built = format!("ExecStart={} ", env!("CARGO_BIN_EXE_egress-audit"));
    let path = dir.join("egress-audit.service");
    std::fs::write(&path, unit.replace(exec, &built)).unwrap();
    path
}

#[test]
fn unit_passes_systemd_analyze_verify() {
    let analyze = tool("systemd-analyze", "systemd");
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_with_built_binary(dir.path());

    let out = run(Command::new(analyze).arg("verify").arg(&unit));

    let stderr = text(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify should accept the unit silently; status {}, output:\n{}{}",
        out.status,
        text(&out.stdout),
        stderr
    );
}

#[test]
fn unit_is_rated_at_most_2_by_systemd_analyze_security() {
    let analyze = tool("systemd-analyze", "systemd");
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_with_built_binary(dir.path());

    let out = run(Command::new(analyze)
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&unit));

    let stdout = text(&out.stdout);
    let exposure = stdout
        .lines()
        .find_map(|line| line.split("Overall exposure level for").nth(1))
        .and_then(|rest| rest.split(':').nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|figure| figure.parse::<f64>().ok())
        .unwrap_or_else(|| {
            panic!(
                "no exposure level in systemd-analyze security's output:\n{stdout}{}",
                text(&out.stderr)
            )
        });
    assert!(
        exposure <= MAX_EXPOSURE,
        "exposure {exposure} is above {MAX_EXPOSURE}; the options that count:\n{}",
        stdout
            .lines()
            .filter(|line| line.starts_with('✗'))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The specification of the snippet's `logformat egress_audit` line.
fn snippet_logformat() -> String {
    let snippet = std::fs::read_to_string(deploy("squid/egress-audit.conf")).unwrap();
    snippet
        .lines()
        .find_map(|line| line.strip_prefix("logformat egress_audit "))
        .expect("the snippet defines logformat egress_audit")
        .to_string()
}

/// Parses [`SAMPLE_LINE`] with `format` and checks every column the
/// snippet adds to the native format.
fn assert_sample_parses(format: &LineFormat) {
    let fields = format
        .parse(SAMPLE_LINE.as_bytes())
        .unwrap_or_else(|e| panic!("the sample line should parse: {e}"));
    let enricher = Enricher::new(&Config::default(), "deploy", Some("default")).unwrap();
    let record = enricher.record(&fields, 1, 0).unwrap();

    assert_eq!(record.bot_name, "crawler-7", "bot from X-Bot-Name");
    assert_eq!(
        record.group_name.as_deref(),
        Some("research"),
        "X-Bot-Group"
    );
    assert_eq!(record.request_size_bytes, Some(321), "%>st");
    assert_eq!(record.response_size_bytes, Some(1234), "%<st");
    assert_eq!(record.status_code, Some(200));
    assert_eq!(record.latency_ms, Some(250));
    assert_eq!(
        record.user_agent.as_deref(),
        Some("Mozilla/5.0 (compatible; crawler)")
    );
    assert_eq!(record.destination_host.as_deref(), Some("api.example.com"));
}

#[test]
fn squid_snippet_logformat_compiles_without_warnings_and_reads_bot_headers() {
    let format = LineFormat::logformat(&snippet_logformat()).unwrap();

    assert!(
        format.warnings().is_empty(),
        "warnings: {:?}",
        format.warnings()
    );
    assert_sample_parses(&format);
}

#[test]
fn squid_snippet_included_from_squid_conf_is_found_for_access_log() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("squid.conf");
    let include = format!(
        "http_port 3128\ninclude {}\n",
        deploy("squid/egress-audit.conf").display()
    );
    std::fs::write(&conf, include).unwrap();

    let format =
        parse::squid_conf::format_for(&conf, Path::new("/var/log/squid/access.log")).unwrap();

    assert!(format.warnings().is_empty());
    assert_sample_parses(&format);
}

#[test]
fn squid_accepts_the_snippet() {
    let squid = tool("squid", "squid");
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("squid.conf");
    let include = format!(
        "http_port 127.0.0.1:3999\ninclude {}\n",
        deploy("squid/egress-audit.conf").display()
    );
    std::fs::write(&conf, include).unwrap();

    let out = run(Command::new(squid).args(["-k", "parse", "-f"]).arg(&conf));

    let stderr = text(&out.stderr);
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("ERROR") || line.contains("WARNING"))
        .collect();
    assert!(
        out.status.success() && complaints.is_empty(),
        "squid -k parse should accept the snippet; status {}:\n{stderr}",
        out.status
    );
}

#[test]
fn logrotate_dry_run_accepts_the_snippet_and_renames_then_creates() {
    let logrotate = tool("logrotate", "logrotate");
    let dir = tempfile::tempdir().unwrap();
    let snippet = std::fs::read_to_string(deploy("logrotate/egress-audit-squid")).unwrap();
    let pattern = "/var/log/squid/*.log";
    assert!(snippet.contains(pattern), "the snippet rotates {pattern}");
    let conf = dir.path().join("logrotate.conf");
    let logs = format!("{}/*.log", dir.path().display());
    std::fs::write(&conf, snippet.replace(pattern, &logs)).unwrap();
    std::fs::write(dir.path().join("access.log"), "a line\n").unwrap();

    let out = run(Command::new(logrotate)
        .args(["-d", "-f", "-s"])
        .arg(dir.path().join("state"))
        .arg(&conf));

    let output = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "logrotate -d failed:\n{output}");
    assert!(
        !output.contains("error:"),
        "logrotate -d complained:\n{output}"
    );
    for step in [
        "access.log to ",
        "creating new ",
        "mode = 0640",
        "running postrotate script",
        "squid -k rotate",
    ] {
        assert!(output.contains(step), "no {step:?} in:\n{output}");
    }
    assert!(!snippet.lines().any(|line| line.trim() == "copytruncate"));
}
