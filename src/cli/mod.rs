//! The command line: argument definitions, logging set-up and one function
//! per command. This is the binary's edge, so errors here are `anyhow`
//! errors, printed as one line on stderr, and outcomes become exit codes.

mod check_cmd;
mod config_cmd;
mod format_args;
mod import_cmd;
mod log_cmd;
pub mod parse_cmd;
mod query_cmd;
mod rejects_cmd;
mod run_cmd;
mod when;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{self, Config, LogFormat, Overrides};
use crate::query::QueryError;
use crate::store::{self, StoreError};

pub use when::parse_time;

/// Exit status for success.
pub const EXIT_OK: u8 = 0;
/// Exit status when some input was bad but the command finished (`parse`).
pub const EXIT_PARTIAL: u8 = 1;
/// Exit status for a usage, configuration or database error.
pub const EXIT_ERROR: u8 = 2;

const ABOUT: &str = "Keeps an exactly-once audit trail of the outbound calls that pass through a \
                     Squid egress proxy, in PostgreSQL/Neon or an embedded SQLite file.";

const EXAMPLES: &str = "Examples:
  egress-audit import fixtures/sample-access.log && egress-audit query stats
  egress-audit --config /etc/egress-audit/config.toml run
  egress-audit log crawler https://api.example.com/v1/items GET 200 123
  egress-audit query stats
  egress-audit query recent crawler 20
  DATABASE_URL=postgres://app@db.example/audit?sslmode=verify-full egress-audit migrate";

/// egress-audit
#[derive(Debug, Parser)]
#[command(name = "egress-audit", version, about = ABOUT, after_help = EXAMPLES)]
pub struct Cli {
    /// Config file (default: /etc/egress-audit/config.toml when it exists).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Database URL: sqlite://PATH or postgres://… (overrides DATABASE_URL and the file).
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,

    /// Directory for checkpoints and other state (overrides `state_dir`).
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Follow the configured logs and load every line into the store (the daemon).
    Run(run_cmd::RunArgs),
    /// Load historic log files, plain or gzip, then exit.
    Import(import_cmd::ImportArgs),
    /// Record one call by hand and print its id.
    Log(log_cmd::LogArgs),
    /// Ask the store a question.
    #[command(subcommand)]
    Query(query_cmd::QueryCommand),
    /// List or retry the lines set aside (dead letters).
    #[command(subcommand)]
    Rejects(rejects_cmd::RejectsCommand),
    /// Parse log lines and print them as records, explaining lines that do not match.
    Parse(parse_cmd::ParseArgs),
    /// Judge the error rate and freshness as a Nagios/Icinga plugin (exit 0-3).
    Check(check_cmd::CheckArgs),
    /// Print the effective configuration, secrets masked.
    #[command(
        after_help = "Example:\n  egress-audit --config /etc/egress-audit/config.toml config"
    )]
    Config,
    /// Create or update the database schema.
    #[command(
        after_help = "Example:\n  DATABASE_URL=postgres://app@127.0.0.1/audit egress-audit migrate"
    )]
    Migrate,
}

/// Parses the command line, runs the command and returns its exit status.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if invoked_command().as_deref() == Some("check") => {
            return check_cmd::usage_error(&e);
        }
        Err(e) => e.exit(),
    };
    // A monitoring plugin reports every failure as UNKNOWN on stdout.
    let fail = if matches!(cli.command, Command::Check(_)) {
        check_cmd::unknown
    } else {
        fail
    };
    let overrides = Overrides {
        database_url: cli.database_url.clone(),
        state_dir: cli.state_dir.clone(),
    };
    let config = match config::load(cli.config.as_deref(), &overrides) {
        Ok(config) => config,
        Err(e) => return fail(&anyhow::Error::new(e)),
    };
    init_tracing(&config);
    if let Command::Parse(args) = &cli.command {
        return parse_cmd::run(args, cli.config.as_deref());
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(&anyhow::anyhow!("cannot start the async runtime: {e}")),
    };
    match runtime.block_on(dispatch(cli, config)) {
        Ok(code) => ExitCode::from(code),
        Err(e) if is_broken_pipe(&e) => ExitCode::from(EXIT_OK),
        Err(e) => fail(&e),
    }
}

async fn dispatch(cli: Cli, config: Config) -> anyhow::Result<u8> {
    let file = cli.config.clone();
    let overrides = Overrides {
        database_url: cli.database_url.clone(),
        state_dir: cli.state_dir.clone(),
    };
    let reload = move || config::load(file.as_deref(), &overrides);
    match cli.command {
        Command::Run(args) => run_cmd::run(&config, args, &reload).await,
        Command::Import(args) => import_cmd::run(&config, args).await,
        Command::Log(args) => log_cmd::run(&config, args).await,
        Command::Query(query) => query_cmd::run(&config, query).await,
        Command::Config => config_cmd::show(&config),
        Command::Migrate => config_cmd::migrate(&config).await,
        Command::Rejects(command) => rejects_cmd::run(&config, command).await,
        Command::Check(args) => check_cmd::run(&config, args).await,
        Command::Parse(_) => unreachable!("parse runs without the async runtime"),
    }
}

/// Prints the error as one line and returns the error exit status.
fn fail(error: &anyhow::Error) -> ExitCode {
    eprintln!("egress-audit: {}", explain(error));
    ExitCode::from(EXIT_ERROR)
}

/// What the user reads for the error that stopped a command: one line, what
/// to do when the cause is a known one.
fn explain(error: &anyhow::Error) -> String {
    if missing_table(error) {
        return "the database has no egress-audit tables: run egress-audit migrate".into();
    }
    one_line(error)
}

/// True when the error comes from querying a database that was never
/// migrated.
fn missing_table(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        if let Some(e) = cause.downcast_ref::<QueryError>() {
            matches!(e, QueryError::Store(store) if store.is_missing_table())
        } else if let Some(e) = cause.downcast_ref::<StoreError>() {
            e.is_missing_table()
        } else {
            cause
                .downcast_ref::<sqlx::Error>()
                .is_some_and(store::is_missing_table)
        }
    })
}

/// The error and its causes joined with `: `, leaving out a cause whose text
/// the error before it already shows: many errors print their source as part
/// of their own message, and the chain would repeat it once per level.
fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    let mut previous = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.is_empty() {
            line.push_str(&text);
        } else if !previous.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        previous = text;
    }
    line.replace('\n', " ")
}

/// The first word of the command line that is not an option or a global
/// option's value: the command the user meant, even when clap refused the
/// line.
fn invoked_command() -> Option<String> {
    const GLOBALS_WITH_VALUE: [&str; 3] = ["--config", "--database-url", "--state-dir"];
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        let arg = arg.to_string_lossy();
        if GLOBALS_WITH_VALUE.contains(&arg.as_ref()) {
            args.next();
        } else if !arg.starts_with('-') {
            return Some(arg.into_owned());
        }
    }
    None
}

/// True when the error is a closed pipe (`egress-audit query … | head`),
/// which is not a failure.
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Sets up diagnostics on stderr: `RUST_LOG` or `log.level`, text or JSON,
/// and no timestamps when the journal adds its own.
fn init_tracing(config: &Config) {
    use tracing_subscriber::EnvFilter;

    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let under_journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let result = match (config.log.format, under_journal) {
        (LogFormat::Json, _) => builder.json().try_init(),
        (LogFormat::Text, true) => builder.without_time().try_init(),
        (LogFormat::Text, false) => builder.try_init(),
    };
    // A subscriber already set (tests calling in twice) is fine.
    drop(result);
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::{Cli, one_line};

    /// An error whose message includes its source's, as `thiserror`'s
    /// `{0}` with `#[from]` makes it.
    #[derive(Debug, thiserror::Error)]
    #[error("database error: {0}")]
    struct Wrapping(#[from] std::io::Error);

    #[test]
    fn a_cause_already_in_its_parents_message_is_not_repeated() {
        let io = std::io::Error::other("relation \"t\" does not exist");
        let error = anyhow::Error::new(Wrapping(io)).context("query");
        assert_eq!(
            one_line(&error),
            "query: database error: relation \"t\" does not exist"
        );
        let plain = anyhow::anyhow!("disk full").context("writing the checkpoint");
        assert_eq!(one_line(&plain), "writing the checkpoint: disk full");
    }

    /// Walks the whole command tree, so a command added later is covered too.
    fn commands_without_example(command: &mut clap::Command, path: &str, bad: &mut Vec<String>) {
        let help = command.render_long_help().to_string();
        if !help.contains("Example") {
            bad.push(path.to_string());
        }
        // clap's own `help` subcommands print the help of the others.
        for sub in command
            .get_subcommands_mut()
            .filter(|s| s.get_name() != "help")
        {
            let path = format!("{path} {}", sub.get_name());
            commands_without_example(sub, &path, bad);
        }
    }

    #[test]
    fn every_command_and_subcommand_shows_an_example_in_its_help() {
        let mut root = Cli::command();
        root.build();
        let mut bad = Vec::new();
        commands_without_example(&mut root, "egress-audit", &mut bad);
        assert!(bad.is_empty(), "help without an example: {bad:?}");
    }
}
