//! `egress-audit parse`: reads Squid log lines and shows what they become.
//!
//! Prints one JSON object (or table row) per line that parses, and for each
//! line that does not, a compiler-style report on stderr with the line and a
//! caret under the column. It is the tool for checking that a format fits a
//! log before the daemon is pointed at it. Owns no state; the format comes
//! from the flags, else from the first configured source, else `squid`.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use serde::Serialize;

use super::format_args::FormatArgs;
use crate::config::{self, Config, FormatSpec, Overrides};
use crate::enrich::Enricher;
use crate::parse::{self, LineFormat, ParseError, decode};
use crate::record::Record;

/// Nothing failed.
const EXIT_OK: u8 = 0;
/// Some lines did not parse.
const EXIT_PARTIAL: u8 = 1;
/// A usage, configuration or input error.
const EXIT_ERROR: u8 = 2;

/// Source name used for row ids when no source is configured.
const DEFAULT_SOURCE: &str = "parse";

/// Rows buffered before a table is printed, so column widths fit the rows.
const TABLE_ROWS: usize = 200;

const EXAMPLES: &str = "\
Examples:
  egress-audit parse /var/log/squid/access.log
  egress-audit parse --format combined --output table fixtures/combined.log
  egress-audit parse --logformat '%ts.%03tu %>a %rm %ru \"%{X-Bot-Name}>h\"' --explain bots.log
  tail -n 100 access.log | egress-audit parse --squid-conf /etc/squid/squid.conf -

Exit status: 0 when every line parsed, 1 when some did not, 2 on a usage or config error.";

/// How parsed lines are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// One JSON object per line.
    Json,
    /// Aligned columns for reading.
    Table,
}

/// Arguments of `egress-audit parse`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    about = "Parse Squid access-log lines and print the records they become",
    after_help = EXAMPLES
)]
pub struct ParseArgs {
    /// The format to read with.
    #[command(flatten)]
    pub formats: FormatArgs,

    /// How to show parsed lines.
    #[arg(long, value_enum, default_value_t = Output::Json)]
    pub output: Output,

    /// For a line that does not parse, also name the format field being read.
    #[arg(long)]
    pub explain: bool,

    /// Log files to read; `-` or none reads standard input.
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// Runs the command; `config_file` is the global `--config`.
pub fn run(args: &ParseArgs, config_file: Option<&Path>) -> ExitCode {
    let stdin = io::stdin();
    let mut input = stdin.lock();
    let mut out = io::stdout().lock();
    let mut err = io::stderr().lock();
    ExitCode::from(run_with(args, config_file, &mut input, &mut out, &mut err))
}

/// Runs the command on the given streams and returns the exit status.
pub fn run_with(
    args: &ParseArgs,
    config_file: Option<&Path>,
    stdin: &mut dyn BufRead,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let setup = match Setup::new(args, config_file) {
        Ok(setup) => setup,
        Err(e) => {
            let _ = writeln!(err, "error: {e:#}");
            return EXIT_ERROR;
        }
    };
    for warning in setup.format.warnings() {
        let _ = writeln!(err, "warning: format: {warning}");
    }
    let mut reading = Reading {
        setup: &setup,
        args,
        out,
        err,
        lines: 0,
        failed: 0,
        table: Vec::new(),
    };
    match reading.read_all(stdin) {
        Ok(()) => reading.finish(),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => EXIT_OK,
        Err(e) => {
            let _ = writeln!(reading.err, "error: {e}");
            EXIT_ERROR
        }
    }
}

/// The format and enricher the command uses.
struct Setup {
    format: LineFormat,
    enricher: Enricher,
    /// How the format is named in reports.
    label: String,
}

impl Setup {
    fn new(args: &ParseArgs, config_file: Option<&Path>) -> anyhow::Result<Setup> {
        let config = config::load(config_file, &Overrides::default())?;
        let first_file = args.files.first().filter(|f| f.as_os_str() != "-");
        let (spec, log_path) = format_spec(args, &config, first_file)?;
        let format = parse::load(&spec, &log_path)
            .context("cannot use the log format")?
            .with_max_line_bytes(config.limits.max_line_bytes);
        let source = config.sources.first();
        let name = source.map_or(DEFAULT_SOURCE.to_string(), |s| s.source_name());
        let group = source.and_then(|s| s.group.as_deref());
        let enricher = Enricher::new(&config, &name, group)?;
        let label = match &spec {
            FormatSpec::Builtin(name) => name.clone(),
            FormatSpec::Logformat(text) => format!("logformat {text}"),
            FormatSpec::SquidConf(conf) => format!("from {}", conf.display()),
        };
        Ok(Setup {
            format,
            enricher,
            label,
        })
    }
}

/// The format the flags name, else the first source's, else `squid`; and
/// the path to look up in a squid.conf.
fn format_spec(
    args: &ParseArgs,
    config: &Config,
    first_file: Option<&PathBuf>,
) -> anyhow::Result<(FormatSpec, PathBuf)> {
    let source = config.sources.first();
    let source_path = source.map(|s| PathBuf::from(&s.path));
    let log_path = first_file
        .cloned()
        .or(source_path)
        .unwrap_or_else(|| PathBuf::from("/var/log/squid/access.log"));
    let spec = match args.formats.spec()? {
        Some(spec) => spec,
        None => source.map_or(FormatSpec::Builtin("squid".into()), |s| s.format_spec()),
    };
    Ok((spec, log_path))
}

/// Reading state across all inputs.
struct Reading<'s> {
    setup: &'s Setup,
    args: &'s ParseArgs,
    out: &'s mut dyn Write,
    err: &'s mut dyn Write,
    lines: u64,
    failed: u64,
    table: Vec<Vec<String>>,
}

impl Reading<'_> {
    fn read_all(&mut self, stdin: &mut dyn BufRead) -> io::Result<()> {
        if self.args.files.is_empty() {
            return self.read("<stdin>", stdin);
        }
        for file in &self.args.files {
            if file.as_os_str() == "-" {
                self.read("<stdin>", stdin)?;
                continue;
            }
            let opened = File::open(file).map_err(|e| {
                io::Error::new(e.kind(), format!("cannot read {}: {e}", file.display()))
            })?;
            self.read(&file.display().to_string(), &mut BufReader::new(opened))?;
        }
        Ok(())
    }

    fn read(&mut self, name: &str, input: &mut dyn BufRead) -> io::Result<()> {
        let mut buf = Vec::with_capacity(4096);
        let mut offset: u64 = 0;
        let mut number: u64 = 0;
        loop {
            buf.clear();
            let read = input.read_until(b'\n', &mut buf)?;
            if read == 0 {
                return Ok(());
            }
            number += 1;
            let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
            self.line(name, number, offset, line)?;
            offset += read as u64;
        }
    }

    fn line(&mut self, name: &str, number: u64, offset: u64, line: &[u8]) -> io::Result<()> {
        self.lines += 1;
        let setup = self.setup;
        let result = setup
            .format
            .parse(line)
            .map_err(Failure::Parse)
            .and_then(|fields| {
                setup
                    .enricher
                    .record(&fields, 0, offset)
                    .map_err(|e| Failure::Other(e.to_string()))
            });
        match result {
            Ok(record) => self.show(&record, number, offset),
            Err(failure) => {
                self.failed += 1;
                self.report(name, number, line, &failure)
            }
        }
    }

    fn show(&mut self, record: &Record, number: u64, offset: u64) -> io::Result<()> {
        let row = Row::new(record, number, offset);
        match self.args.output {
            Output::Json => {
                serde_json::to_writer(&mut *self.out, &row)?;
                self.out.write_all(b"\n")
            }
            Output::Table => {
                self.table.push(row.cells());
                if self.table.len() >= TABLE_ROWS {
                    self.flush_table()?;
                }
                Ok(())
            }
        }
    }

    fn flush_table(&mut self) -> io::Result<()> {
        if self.table.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.table);
        write_table(&mut *self.out, &rows)
    }

    /// `FILE:LINE:COLUMN: expected X, found Y`, the line, a caret.
    fn report(
        &mut self,
        name: &str,
        number: u64,
        line: &[u8],
        failure: &Failure,
    ) -> io::Result<()> {
        let err = &mut *self.err;
        let error = match failure {
            Failure::Parse(error) => error,
            Failure::Other(message) => {
                // The line matched its format; a value in it did not fit
                // (the message names the column), so there is no column.
                writeln!(err, "{name}:{number}: {message}")?;
                let (text, _) = caret_line(line, 1);
                return writeln!(err, "  {text}");
            }
        };
        let column = error.column();
        let message = match error {
            ParseError::Mismatch {
                expected, found, ..
            } => format!("expected {expected}, found {found}"),
            other => other.to_string(),
        };
        writeln!(err, "{name}:{number}:{column}: {message}")?;
        let shown = match error {
            ParseError::TooLong { head, .. } => head.as_slice(),
            _ => line,
        };
        let (text, caret) = caret_line(shown, column);
        writeln!(err, "  {text}")?;
        writeln!(err, "  {caret}")?;
        if self.args.explain {
            if let Some(field) = error.field() {
                writeln!(err, "  while reading {field}")?;
            }
            writeln!(err, "  format: {}", self.setup.label)?;
        }
        Ok(())
    }

    fn finish(&mut self) -> u8 {
        if self.flush_table().is_err() || self.out.flush().is_err() {
            return EXIT_ERROR;
        }
        let _ = writeln!(
            self.err,
            "parsed {} lines, {} failed",
            self.lines, self.failed
        );
        if self.failed == 0 {
            EXIT_OK
        } else {
            EXIT_PARTIAL
        }
    }
}

/// Why a line did not become a record.
enum Failure {
    Parse(ParseError),
    Other(String),
}

/// The line as printable text, and a caret line pointing at byte `column`.
fn caret_line(line: &[u8], column: usize) -> (String, String) {
    let printable = |text: &str| -> String {
        text.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect()
    };
    let before = column.saturating_sub(1).min(line.len());
    let width = decode::text(&line[..before]).chars().count();
    let text = printable(&decode::text(line));
    (text, format!("{}^", " ".repeat(width)))
}

/// One parsed line as the command prints it.
#[derive(Debug, Serialize)]
struct Row<'r> {
    line: u64,
    offset: u64,
    created_at: String,
    bot_name: &'r str,
    group_name: Option<&'r str>,
    destination_url: &'r str,
    destination_host: Option<&'r str>,
    http_method: Option<&'r str>,
    status_code: Option<i32>,
    request_size_bytes: Option<i64>,
    response_size_bytes: Option<i64>,
    latency_ms: Option<i64>,
    user_agent: Option<&'r str>,
    client_ip: Option<&'r str>,
    proxy_user: Option<&'r str>,
    squid_status: Option<&'r str>,
    hierarchy: Option<&'r str>,
    content_type: Option<&'r str>,
}

/// Column titles of the table, in [`Row::cells`] order.
const TABLE_TITLES: &[&str] = &[
    "line",
    "offset",
    "created_at",
    "bot_name",
    "group_name",
    "client_ip",
    "proxy_user",
    "http_method",
    "status_code",
    "squid_status",
    "latency_ms",
    "request_size_bytes",
    "response_size_bytes",
    "destination_host",
    "destination_url",
    "hierarchy",
    "content_type",
    "user_agent",
];

/// Widest a table cell gets before it is cut with `…`.
const TABLE_CELL_CHARS: usize = 48;

impl<'r> Row<'r> {
    fn new(record: &'r Record, line: u64, offset: u64) -> Row<'r> {
        Row {
            line,
            offset,
            created_at: record
                .created_at
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string(),
            bot_name: &record.bot_name,
            group_name: record.group_name.as_deref(),
            destination_url: &record.destination_url,
            destination_host: record.destination_host.as_deref(),
            http_method: record.http_method.as_deref(),
            status_code: record.status_code,
            request_size_bytes: record.request_size_bytes,
            response_size_bytes: record.response_size_bytes,
            latency_ms: record.latency_ms,
            user_agent: record.user_agent.as_deref(),
            client_ip: record.client_ip.as_deref(),
            proxy_user: record.proxy_user.as_deref(),
            squid_status: record.squid_status.as_deref(),
            hierarchy: record.hierarchy.as_deref(),
            content_type: record.content_type.as_deref(),
        }
    }

    fn cells(&self) -> Vec<String> {
        let text = |v: Option<&str>| v.unwrap_or("-").to_string();
        let number = |v: Option<i64>| v.map_or("-".to_string(), |n| n.to_string());
        vec![
            self.line.to_string(),
            self.offset.to_string(),
            self.created_at.clone(),
            self.bot_name.to_string(),
            text(self.group_name),
            text(self.client_ip),
            text(self.proxy_user),
            text(self.http_method),
            number(self.status_code.map(i64::from)),
            text(self.squid_status),
            number(self.latency_ms),
            number(self.request_size_bytes),
            number(self.response_size_bytes),
            text(self.destination_host),
            self.destination_url.to_string(),
            text(self.hierarchy),
            text(self.content_type),
            text(self.user_agent),
        ]
    }
}

fn write_table(out: &mut dyn Write, rows: &[Vec<String>]) -> io::Result<()> {
    let cut = |cell: &str| -> String {
        let printable: String = cell
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        if printable.chars().count() <= TABLE_CELL_CHARS {
            return printable;
        }
        let kept: String = printable.chars().take(TABLE_CELL_CHARS - 1).collect();
        format!("{kept}…")
    };
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|c| cut(c)).collect())
        .collect();
    let mut widths: Vec<usize> = TABLE_TITLES.iter().map(|t| t.chars().count()).collect();
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let titles: Vec<String> = TABLE_TITLES.iter().map(|t| t.to_string()).collect();
    write_row(out, &titles, &widths)?;
    for row in &cells {
        write_row(out, row, &widths)?;
    }
    Ok(())
}

fn write_row(out: &mut dyn Write, row: &[String], widths: &[usize]) -> io::Result<()> {
    let mut line = String::new();
    for (index, (cell, width)) in row.iter().zip(widths).enumerate() {
        if index > 0 {
            line.push_str("  ");
        }
        line.push_str(cell);
        let pad = width.saturating_sub(cell.chars().count());
        if index + 1 < row.len() {
            line.push_str(&" ".repeat(pad));
        }
    }
    writeln!(out, "{line}")
}

#[cfg(test)]
mod tests {

    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Harness {
        #[command(flatten)]
        args: ParseArgs,
    }

    fn args(list: &[&str]) -> ParseArgs {
        let mut all = vec!["parse"];
        all.extend_from_slice(list);
        Harness::try_parse_from(all).unwrap().args
    }

    /// Runs with an empty config file and `input` on stdin.
    fn run_on(list: &[&str], input: &str) -> (u8, String, String) {
        let config = tempfile::NamedTempFile::new().unwrap();
        let mut stdin = input.as_bytes();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run_with(
            &args(list),
            Some(config.path()),
            &mut stdin,
            &mut out,
            &mut err,
        );
        let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
        (code, text(out), text(err))
    }

    const GOOD: &str = "1709647387.123    157 192.0.2.10 TCP_MISS/200 5123 GET \
                        http://example.com/index.html?token=x - HIER_DIRECT/93.184.216.34 \
                        text/html\n";
    const BAD: &str = "1709647387.123    157 192.0.2.10 TCP_MISS/2x0 5123 GET http://e/ - \
                       HIER_NONE/- -\n";

    #[test]
    fn a_value_too_large_for_its_column_is_reported_with_the_line() {
        let line = "1709647387.123 157 192.0.2.10 TCP_MISS/99999999999 5 GET http://e/ - \
                    HIER_NONE/- -\n";
        let (code, _, err) = run_on(&[], line);
        assert_eq!(code, EXIT_PARTIAL, "{err}");
        assert!(err.contains("<stdin>:1: "), "{err}");
        assert!(err.contains("status_code"), "{err}");
        assert!(
            err.contains("  1709647387.123 157"),
            "the line is shown: {err}"
        );
    }

    #[test]
    fn good_lines_become_json_with_line_and_offset() {
        let (code, out, err) = run_on(&[], &format!("{GOOD}{GOOD}"));
        assert_eq!(code, EXIT_OK, "{err}");
        let lines: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["line"], 2);
        assert_eq!(lines[1]["offset"], GOOD.len());
        assert_eq!(lines[0]["created_at"], "2024-03-05T14:03:07.123Z");
        assert_eq!(
            lines[0]["destination_url"],
            "http://example.com/index.html?token=REDACTED"
        );
        assert_eq!(lines[0]["proxy_user"], serde_json::Value::Null);
        assert_eq!(lines[0]["bot_name"], "unknown");
        assert!(err.ends_with("parsed 2 lines, 0 failed\n"), "{err}");
    }

    #[test]
    fn bad_line_is_reported_with_a_caret_and_exit_one() {
        let (code, out, err) = run_on(&["--explain", "-"], &format!("{GOOD}{BAD}"));
        assert_eq!(code, EXIT_PARTIAL);
        assert_eq!(out.lines().count(), 1);
        let report: Vec<&str> = err.lines().collect();
        assert_eq!(
            report[0],
            "<stdin>:2:43: expected a number, found \"2x0 5123 GET htt…\""
        );
        assert_eq!(report[2].find('^'), Some(2 + 42), "{err}");
        assert_eq!(report[3], "  while reading field 4 result code/status");
        assert_eq!(report[4], "  format: squid");
        assert_eq!(report[5], "parsed 2 lines, 1 failed");
    }

    #[test]
    fn logformat_flag_is_used_and_warnings_are_shown() {
        let (code, out, err) = run_on(
            &["--logformat", "%ts %>a %zz %{X-Bot-Name}>h"],
            "1 192.0.2.1 q My%20Bot\n",
        );
        assert_eq!(code, EXIT_OK, "{err}");
        assert!(out.contains("\"bot_name\":\"My Bot\""), "{out}");
        assert!(err.contains("unknown code `%zz`"), "{err}");
    }

    #[test]
    fn table_output_aligns_columns() {
        let (code, out, _) = run_on(&["--output", "table"], GOOD);
        assert_eq!(code, EXIT_OK);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("line  offset  created_at"), "{out}");
        for title in [
            "group_name",
            "http_method",
            "status_code",
            "destination_url",
        ] {
            assert!(
                lines[0].contains(title),
                "the title {title} is missing: {out}"
            );
        }
        let column = lines[0].find("bot_name").unwrap();
        assert_eq!(&lines[1][column..column + 7], "unknown");
    }

    #[test]
    fn unknown_format_and_missing_file_exit_two() {
        let (code, _, err) = run_on(&["--format", "squidd"], "");
        assert_eq!(code, EXIT_ERROR);
        assert!(err.contains("squidd"), "{err}");
        let (code, _, err) = run_on(&["/nonexistent/access.log"], "");
        assert_eq!(code, EXIT_ERROR);
        assert!(err.contains("/nonexistent/access.log"), "{err}");
    }

    #[test]
    fn format_flags_exclude_each_other() {
        let all = ["parse", "--format", "squid", "--logformat", "%ts"];
        assert!(Harness::try_parse_from(all).is_err());
    }

    #[test]
    fn help_shows_an_example() {
        use clap::CommandFactory;
        let help = Harness::command().render_long_help().to_string();
        assert!(
            help.contains("egress-audit parse --format combined"),
            "{help}"
        );
        assert!(help.contains("--explain"), "{help}");
    }

    #[test]
    fn config_source_format_is_the_default() {
        let mut config = tempfile::NamedTempFile::new().unwrap();
        writeln!(
            config,
            "[[source]]\npath = \"/x.log\"\nname = \"gw\"\nformat = \"common\"\ngroup = \"ops\""
        )
        .unwrap();
        let line = "192.0.2.10 - - [05/Mar/2024:15:03:07 +0100] \"GET http://e/ HTTP/1.1\" 200 5 \
                    TCP_MISS:HIER_DIRECT\n";
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run_with(
            &args(&[]),
            Some(config.path()),
            &mut line.as_bytes(),
            &mut out,
            &mut err,
        );
        assert_eq!(code, EXIT_OK, "{}", String::from_utf8_lossy(&err));
        assert!(String::from_utf8_lossy(&out).contains("\"group_name\":\"ops\""));
    }
}
