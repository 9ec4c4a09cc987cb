//! `egress-audit check`: a monitoring plugin in the Nagios/Icinga
//! convention, for sites without Prometheus.
//!
//! It prints one status line with performance data after `|` and exits 0
//! (OK), 1 (WARNING), 2 (CRITICAL) or 3 (UNKNOWN: bad arguments, no
//! configuration, a database that does not answer). It judges the error
//! rate over a recent window and, when asked, how old the newest stored call
//! is. The figures come from [`crate::query::health`]; this file only judges
//! them and words the line.

use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::error::ErrorKind;

use super::query_cmd::open_for_reading;
use crate::config::Config;
use crate::duration;
use crate::query::Filters;
use crate::query::health::{self, ErrorCount};
use crate::store::Store;

const EXAMPLES: &str = "Examples:
  egress-audit check                                   # error rate (5xx) over 15 minutes
  egress-audit check --bot crawler --warning 2 --critical 5 --window 1h
  egress-audit check --errors 4xx --min-calls 50
  egress-audit check --max-lag 15m                     # also: is the store being fed?

Exit status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (bad arguments, database unreachable).";

/// The line's prefix, naming the service as plugins do.
const SERVICE: &str = "EGRESS-AUDIT";

/// A plugin's verdict, ordered from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// Nothing to report.
    Ok,
    /// A threshold is crossed: look soon.
    Warning,
    /// A critical threshold is crossed: look now.
    Critical,
    /// The check itself could not be made.
    Unknown,
}

impl Status {
    /// The plugin exit status.
    pub fn code(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Warning => 1,
            Status::Critical => 2,
            Status::Unknown => 3,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warning => "WARNING",
            Status::Critical => "CRITICAL",
            Status::Unknown => "UNKNOWN",
        }
    }
}

/// Which calls count as errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ErrorClass {
    /// Status 500 and above.
    #[value(name = "5xx")]
    Server,
    /// Status 400 and above.
    #[value(name = "4xx")]
    ClientAndServer,
}

impl ErrorClass {
    fn floor(self) -> u16 {
        match self {
            ErrorClass::Server => 500,
            ErrorClass::ClientAndServer => 400,
        }
    }
}

/// Arguments of `check`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct CheckArgs {
    /// How far back the error rate looks.
    #[arg(long, default_value = "15m", value_parser = duration_arg, value_name = "DURATION")]
    pub window: Duration,
    /// Judge one bot's calls instead of all.
    #[arg(long, value_name = "NAME")]
    pub bot: Option<String>,
    /// WARNING when the error rate is above this many percent.
    #[arg(long, default_value_t = 5.0, value_parser = percent_arg, value_name = "PERCENT")]
    pub warning: f64,
    /// CRITICAL when the error rate is above this many percent.
    #[arg(long, default_value_t = 10.0, value_parser = percent_arg, value_name = "PERCENT")]
    pub critical: f64,
    /// With fewer calls in the window the rate is not judged (OK, with a note).
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub min_calls: u32,
    /// What counts as an error: 5xx (status >= 500) or 4xx (status >= 400).
    #[arg(long, value_enum, default_value_t = ErrorClass::Server, value_name = "CLASS")]
    pub errors: ErrorClass,
    /// Also check freshness: WARNING when the newest stored call is older.
    #[arg(long, value_parser = duration_arg, value_name = "DURATION")]
    pub max_lag: Option<Duration>,
    /// CRITICAL when the newest stored call is older [default: twice --max-lag].
    #[arg(long, value_parser = duration_arg, value_name = "DURATION", requires = "max_lag")]
    pub critical_lag: Option<Duration>,
}

/// One judged figure: its verdict, its words and its performance data.
#[derive(Debug)]
struct Finding {
    status: Status,
    text: String,
    perfdata: Vec<String>,
}

pub(super) async fn run(config: &Config, args: CheckArgs) -> anyhow::Result<u8> {
    check_thresholds(&args)?;
    let store = open_for_reading(config).await?;
    let now = Utc::now();
    let mut findings = vec![error_rate(&store, &args, now).await?];
    if let Some(max_lag) = args.max_lag {
        findings.push(lag(&store, &args, max_lag, now).await?);
    }
    store.close().await;

    let (status, line) = status_line(findings);
    println!("{line}");
    Ok(status.code())
}

/// Prints the UNKNOWN line for an error that stopped the check, and returns
/// its exit status.
pub(super) fn unknown(error: &anyhow::Error) -> std::process::ExitCode {
    // Monitoring systems read the first line only.
    let message = super::explain(error);
    println!("{SERVICE} UNKNOWN - {message}");
    std::process::ExitCode::from(Status::Unknown.code())
}

/// Reports a command line clap refused: help and version as clap does, any
/// other error as UNKNOWN (clap's own status 2 would read as CRITICAL).
pub(super) fn usage_error(error: &clap::Error) -> std::process::ExitCode {
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    ) {
        error.exit();
    }
    let rendered = error.render().to_string();
    let first_paragraph: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .take_while(|line| !line.is_empty())
        .collect();
    println!(
        "{SERVICE} UNKNOWN - bad arguments: {}",
        first_paragraph.join(" ").trim_start_matches("error: ")
    );
    let _ = error.print();
    std::process::ExitCode::from(Status::Unknown.code())
}

fn check_thresholds(args: &CheckArgs) -> anyhow::Result<()> {
    if args.warning > args.critical {
        anyhow::bail!(
            "bad arguments: --warning {} is above --critical {}; the warning threshold must \
             not exceed the critical one",
            args.warning,
            args.critical
        );
    }
    if let (Some(max), Some(critical)) = (args.max_lag, args.critical_lag)
        && critical < max
    {
        anyhow::bail!(
            "bad arguments: --critical-lag {} is below --max-lag {}",
            duration::render(critical),
            duration::render(max)
        );
    }
    Ok(())
}

async fn error_rate(
    store: &Store,
    args: &CheckArgs,
    now: DateTime<Utc>,
) -> anyhow::Result<Finding> {
    let window = chrono::Duration::from_std(args.window).unwrap_or(chrono::Duration::MAX);
    let filters = Filters {
        since: now.checked_sub_signed(window),
        bot: args.bot.clone(),
        ..Filters::default()
    };
    let count = health::error_count(store, &filters, args.errors.floor()).await?;
    Ok(judge_error_rate(args, count))
}

/// The verdict on an error count: above a threshold means strictly above,
/// as plugin thresholds are read.
fn judge_error_rate(args: &CheckArgs, count: ErrorCount) -> Finding {
    let ErrorCount { calls, errors } = count;
    let rate = (calls > 0).then(|| errors as f64 * 100.0 / calls as f64);
    let shown = rate.map_or("U".to_string(), |_| format!("{}%", tenths(errors, calls)));
    let perfdata = vec![
        format!("error_rate={shown};{};{}", args.warning, args.critical),
        format!("calls={calls}"),
        format!("errors={errors}"),
    ];
    let whose = args
        .bot
        .as_ref()
        .map_or(String::new(), |bot| format!(" of bot {bot}"));
    let counted = match args.errors {
        ErrorClass::Server => "",
        ErrorClass::ClientAndServer => ", 4xx counted",
    };
    let window = duration::render(args.window);
    let figures = format!("{errors} of {calls} calls, {window}{counted}");

    let (status, text) = match rate {
        Some(rate) if calls >= i64::from(args.min_calls) => {
            let status = if rate > args.critical {
                Status::Critical
            } else if rate > args.warning {
                Status::Warning
            } else {
                Status::Ok
            };
            (status, format!("error rate{whose} {shown} ({figures})"))
        }
        _ => (
            Status::Ok,
            format!(
                "error rate{whose} not judged: {calls} calls in {window}, fewer than \
                 --min-calls {}",
                args.min_calls
            ),
        ),
    };
    Finding {
        status,
        text,
        perfdata,
    }
}

/// `part / whole` in percent with one decimal, rounded half up.
fn tenths(part: i64, whole: i64) -> String {
    let tenths = (i128::from(part) * 1000 + i128::from(whole) / 2) / i128::from(whole);
    format!("{}.{}", tenths / 10, tenths % 10)
}

async fn lag(
    store: &Store,
    args: &CheckArgs,
    max_lag: Duration,
    now: DateTime<Utc>,
) -> anyhow::Result<Finding> {
    let filters = Filters {
        bot: args.bot.clone(),
        ..Filters::default()
    };
    let freshness = health::freshness(store, &filters).await?;
    let critical = args.critical_lag.unwrap_or(max_lag * 2);
    let age = |time: DateTime<Utc>| (now - time).to_std().unwrap_or_default().as_secs();

    let Some(newest) = freshness.newest_call else {
        let whose = args
            .bot
            .as_ref()
            .map_or(String::new(), |bot| format!(" from bot {bot}"));
        return Ok(Finding {
            status: Status::Critical,
            text: format!("no calls{whose} stored: nothing is being loaded"),
            perfdata: vec![format!(
                "lag=U;{};{}",
                max_lag.as_secs(),
                critical.as_secs()
            )],
        });
    };
    let lag = age(newest);
    let status = if lag > critical.as_secs() {
        Status::Critical
    } else if lag > max_lag.as_secs() {
        Status::Warning
    } else {
        Status::Ok
    };
    let mut perfdata = vec![format!(
        "lag={lag}s;{};{}",
        max_lag.as_secs(),
        critical.as_secs()
    )];
    if let Some(ingested) = freshness.newest_ingest {
        perfdata.push(format!("ingest_age={}s", age(ingested)));
    }
    let text = format!(
        "newest call {} ago (max-lag {})",
        duration::render(Duration::from_secs(lag)),
        duration::render(max_lag)
    );
    Ok(Finding {
        status,
        text,
        perfdata,
    })
}

/// The worst verdict and the line: findings that alert first, then the rest.
fn status_line(mut findings: Vec<Finding>) -> (Status, String) {
    findings.sort_by_key(|finding| std::cmp::Reverse(finding.status));
    let status = findings
        .first()
        .map_or(Status::Ok, |finding| finding.status);
    let texts: Vec<&str> = findings.iter().map(|f| f.text.as_str()).collect();
    let perfdata: Vec<&str> = findings
        .iter()
        .flat_map(|f| f.perfdata.iter().map(String::as_str))
        .collect();
    let line = format!(
        "{SERVICE} {} - {} | {}",
        status.label(),
        texts.join("; "),
        perfdata.join(" ")
    );
    (status, line)
}

fn duration_arg(text: &str) -> Result<Duration, String> {
    duration::parse_positive(text).map_err(|e| e.to_string())
}

fn percent_arg(text: &str) -> Result<f64, String> {
    match text.trim().trim_end_matches('%').parse::<f64>() {
        Ok(value) if (0.0..=100.0).contains(&value) => Ok(value),
        _ => Err(format!("{text:?} is not a percentage from 0 to 100")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(warning: f64, critical: f64, min_calls: u32) -> CheckArgs {
        CheckArgs {
            window: Duration::from_secs(900),
            bot: None,
            warning,
            critical,
            min_calls,
            errors: ErrorClass::Server,
            max_lag: None,
            critical_lag: None,
        }
    }

    fn judge(errors: i64, calls: i64) -> Finding {
        judge_error_rate(&args(5.0, 10.0, 10), ErrorCount { calls, errors })
    }

    #[test]
    fn thresholds_alert_only_when_strictly_exceeded() {
        assert_eq!(judge(5, 100).status, Status::Ok);
        assert_eq!(judge(6, 100).status, Status::Warning);
        assert_eq!(judge(10, 100).status, Status::Warning);
        assert_eq!(judge(11, 100).status, Status::Critical);
    }

    #[test]
    fn too_few_calls_are_ok_with_a_note() {
        let finding = judge(3, 3);
        assert_eq!(finding.status, Status::Ok);
        assert!(finding.text.contains("not judged"), "{}", finding.text);
    }

    #[test]
    fn no_calls_give_an_undetermined_rate() {
        assert_eq!(judge(0, 0).perfdata[0], "error_rate=U;5;10");
    }

    #[test]
    fn line_matches_the_plugin_convention() {
        let (status, line) = status_line(vec![judge(12, 1000)]);
        assert_eq!(status, Status::Ok);
        assert_eq!(
            line,
            "EGRESS-AUDIT OK - error rate 1.2% (12 of 1000 calls, 15m) \
             | error_rate=1.2%;5;10 calls=1000 errors=12"
        );
    }

    #[test]
    fn a_window_of_days_is_spelt_out() {
        let mut two_days = args(5.0, 10.0, 10);
        two_days.window = Duration::from_secs(2 * 86_400);
        let finding = judge_error_rate(
            &two_days,
            ErrorCount {
                calls: 100,
                errors: 1,
            },
        );
        assert!(
            finding.text.contains("100 calls, 2 days)"),
            "{}",
            finding.text
        );
        two_days.min_calls = 1000;
        let finding = judge_error_rate(
            &two_days,
            ErrorCount {
                calls: 100,
                errors: 1,
            },
        );
        assert!(finding.text.contains("in 2 days,"), "{}", finding.text);
    }

    #[test]
    fn percentages_round_half_up_to_one_decimal() {
        assert_eq!(tenths(1, 3), "33.3");
        assert_eq!(tenths(2, 3), "66.7");
        assert_eq!(tenths(1, 200), "0.5");
        assert_eq!(tenths(100, 100), "100.0");
    }

    #[test]
    fn percent_argument_takes_an_optional_sign_and_refuses_out_of_range() {
        assert_eq!(percent_arg("2.5"), Ok(2.5));
        assert_eq!(percent_arg("5%"), Ok(5.0));
        assert!(percent_arg("150").is_err());
        assert!(percent_arg("abc").is_err());
    }
}
