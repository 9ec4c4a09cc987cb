//! The sample logs in `fixtures/` parse completely with their formats, and
//! the native sample shows what the README quick start promises.

use std::collections::BTreeSet;
use std::path::Path;

use egress_audit::cli::parse_cmd::{ParseArgs, run_with};
use egress_audit::config::{BotRule, Config};
use egress_audit::enrich::Enricher;
use egress_audit::parse::{self, LineFormat};
use egress_audit::record::Record;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(Path::new("fixtures").join(name)).unwrap()
}

fn spec(name: &str) -> String {
    String::from_utf8(fixture(name))
        .unwrap()
        .trim_end()
        .to_string()
}

fn config() -> Config {
    Config {
        bots: vec![BotRule {
            cidr: "10.0.3.0/24".parse().unwrap(),
            name: "research-crawler".into(),
            group: Some("research".into()),
        }],
        ..Config::default()
    }
}

fn records(file: &str, format: &LineFormat) -> Vec<Record> {
    let enricher = Enricher::new(&config(), "fixtures", Some("production")).unwrap();
    let bytes = fixture(file);
    let mut offset = 0;
    let mut out = Vec::new();
    for (number, line) in bytes.split_inclusive(|b| *b == b'\n').enumerate() {
        let text = line.strip_suffix(b"\n").unwrap_or(line);
        let fields = format
            .parse(text)
            .unwrap_or_else(|e| panic!("{file}:{}: {e}", number + 1));
        out.push(enricher.record(&fields, 0, offset).unwrap());
        offset += line.len() as u64;
    }
    out
}

#[test]
fn every_fixture_parses_with_its_format() {
    let cases = [
        ("sample-access.log", LineFormat::builtin("squid").unwrap()),
        ("common.log", LineFormat::builtin("common").unwrap()),
        ("combined.log", LineFormat::builtin("combined").unwrap()),
        ("referrer.log", LineFormat::builtin("referrer").unwrap()),
        ("useragent.log", LineFormat::builtin("useragent").unwrap()),
        (
            "bots-quoted.log",
            LineFormat::logformat(&spec("bots-quoted.logformat")).unwrap(),
        ),
        (
            "bots-unquoted.log",
            LineFormat::logformat(&spec("bots-unquoted.logformat")).unwrap(),
        ),
    ];
    for (file, format) in &cases {
        let parsed = records(file, format);
        assert!(
            (20..=260).contains(&parsed.len()),
            "{file}: {}",
            parsed.len()
        );
    }
}

#[test]
fn native_sample_has_bots_errors_tunnels_and_a_day_of_traffic() {
    let parsed = records("sample-access.log", &LineFormat::builtin("squid").unwrap());
    let bots: BTreeSet<&str> = parsed.iter().map(|r| r.bot_name.as_str()).collect();
    for bot in [
        "research-crawler",
        "pricebot",
        "feed-reader",
        "ops backup",
        "crawler-7",
        "unknown",
    ] {
        assert!(bots.contains(bot), "{bot} missing from {bots:?}");
    }
    let has = |f: &dyn Fn(&Record) -> bool| parsed.iter().any(f);
    assert!(has(&|r| r.http_method.as_deref() == Some("CONNECT")));
    assert!(has(&|r| r.squid_status.as_deref() == Some("TCP_DENIED")));
    assert!(has(&|r| r
        .status_code
        .is_some_and(|s| (400..500).contains(&s))));
    assert!(has(&|r| r.status_code.is_some_and(|s| s >= 500)));
    assert!(has(&|r| r.status_code.is_none()));
    let first = parsed.iter().map(|r| r.created_at).min().unwrap();
    let last = parsed.iter().map(|r| r.created_at).max().unwrap();
    assert!((last - first).num_hours() >= 8, "{first} .. {last}");
}

#[test]
fn quoted_and_unquoted_bot_logs_agree() {
    let quoted = records(
        "bots-quoted.log",
        &LineFormat::logformat(&spec("bots-quoted.logformat")).unwrap(),
    );
    let unquoted = records(
        "bots-unquoted.log",
        &LineFormat::logformat(&spec("bots-unquoted.logformat")).unwrap(),
    );
    for (a, b) in quoted.iter().zip(&unquoted) {
        assert_eq!(a.bot_name, b.bot_name);
        assert_eq!(a.group_name, b.group_name);
        assert_eq!(a.destination_url, b.destination_url);
        assert!(
            !a.destination_url.contains("api_key=k-"),
            "{}",
            a.destination_url
        );
    }
    let bots: BTreeSet<&str> = quoted.iter().map(|r| r.bot_name.as_str()).collect();
    assert!(
        bots.contains("Example \"Crawler\" v2") && bots.contains("Bücherwurm"),
        "{bots:?}"
    );
}

#[test]
fn fixture_squid_conf_names_the_formats() {
    let conf = Path::new("fixtures/squid.conf");
    let format = parse::squid_conf::format_for(conf, Path::new("/var/log/squid/bots.log")).unwrap();
    assert_eq!(
        format.info().spec.as_deref(),
        Some(spec("bots-quoted.logformat").as_str())
    );
    let format =
        parse::squid_conf::format_for(conf, Path::new("/var/log/squid/combined.log")).unwrap();
    assert_eq!(format.info().name, "combined");
}

/// The worked example of the README: a combined log read as common.
#[test]
fn format_mismatch_is_explained() {
    use clap::Parser;
    #[derive(Parser)]
    struct Harness {
        #[command(flatten)]
        args: ParseArgs,
    }
    let args = Harness::parse_from([
        "parse",
        "--format",
        "common",
        "--explain",
        "fixtures/combined.log",
    ])
    .args;
    let config = tempfile::NamedTempFile::new().unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run_with(
        &args,
        Some(config.path()),
        &mut &b""[..],
        &mut out,
        &mut err,
    );
    let err = String::from_utf8(err).unwrap();
    assert_eq!(code, 1);
    assert!(err.contains("fixtures/combined.log:1:"), "{err}");
    assert!(
        err.contains("expected result code:hierarchy like TCP_MISS:HIER_DIRECT"),
        "{err}"
    );
    assert!(
        err.contains("while reading field 10 result code:hierarchy"),
        "{err}"
    );
    assert!(err.ends_with("parsed 40 lines, 40 failed\n"), "{err}");
}

/// The README's second example: the quoted log read with the unquoted format.
#[test]
fn custom_format_mismatch_names_the_code() {
    let format = LineFormat::logformat(&spec("bots-unquoted.logformat")).unwrap();
    let log = fixture("bots-quoted.log");
    let first = log.split(|b| *b == b'\n').next().unwrap();
    let err = format.parse(first).unwrap_err();
    let field = err.field().unwrap_or_default().to_string();
    assert_eq!(err.column(), 16, "{err}");
    assert!(field.starts_with("field 3 `%tr`"), "{err} / {field}");
}
