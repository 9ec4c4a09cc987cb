//! Configuration: what the file, the environment and the flags say, checked once.
//!
//! Layers, lowest first: built-in defaults, the config file (`--config FILE`,
//! else `/etc/egress-audit/config.toml` when it exists), environment variables
//! (`EGRESS_AUDIT_` prefix with `__` between levels, and `DATABASE_URL` for the
//! database), then command-line flags (applied by the caller through
//! [`Overrides`]). Unknown keys and bad values are errors that name the key,
//! the value and what is allowed. Nothing outside this module touches figment.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Config file read when `--config` is not given, if it exists.
pub const SYSTEM_CONFIG: &str = "/etc/egress-audit/config.toml";

/// Where checkpoints and other local state live unless configured.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/egress-audit";

/// The embedded store used when no database is configured: a file in the
/// working directory, so that a first run needs no server.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://egress-audit.db";

/// Rows per batch: large enough that COPY's per-statement cost vanishes,
/// small enough that a batch is a few megabytes.
pub const DEFAULT_BATCH_ROWS: usize = 5000;

/// The names `format =` accepts.
pub const BUILTIN_FORMATS: &[&str] = &["squid", "common", "combined", "referrer", "useragent"];

/// Query parameters whose values are replaced by `REDACTED` by default.
pub const DEFAULT_REDACTED_PARAMS: &[&str] = &[
    "api_key",
    "apikey",
    "key",
    "token",
    "access_token",
    "password",
    "secret",
    "signature",
    "sig",
];

/// The whole configuration, as the file spells it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Directory for checkpoints and other local state.
    pub state_dir: PathBuf,
    /// The store and how rows are batched into it.
    pub database: DatabaseConfig,
    /// The log files to follow.
    #[serde(rename = "source")]
    pub sources: Vec<SourceConfig>,
    /// Client addresses or ranges mapped to bot names.
    pub bots: Vec<BotRule>,
    /// Where bot and group names are taken from.
    pub identity: IdentityConfig,
    /// Secrets removed from URLs.
    pub redact: RedactConfig,
    /// Size limits on lines.
    pub limits: LimitsConfig,
    /// How files are followed.
    pub tail: TailConfig,
    /// The Prometheus endpoint.
    pub metrics: MetricsConfig,
    /// Diagnostics.
    pub log: LogConfig,
    /// The daemon.
    pub run: RunConfig,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            database: DatabaseConfig::default(),
            sources: Vec::new(),
            bots: Vec::new(),
            identity: IdentityConfig::default(),
            redact: RedactConfig::default(),
            limits: LimitsConfig::default(),
            tail: TailConfig::default(),
            metrics: MetricsConfig::default(),
            log: LogConfig::default(),
            run: RunConfig::default(),
        }
    }
}

/// `[database]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://PATH`, `postgres://…` or `postgresql://…`.
    pub url: String,
    /// Most rows in one batch.
    pub batch_rows: usize,
    /// Longest a read line waits before its batch is flushed.
    #[serde(with = "humantime_serde")]
    pub flush_interval: Duration,
    /// Longest wait for a connection to open (Neon waking up takes a few hundred ms).
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Longest a single statement may run before it is cancelled and retried.
    #[serde(with = "humantime_serde")]
    pub statement_timeout: Duration,
    /// Cap on the delay between retries of a failed write.
    #[serde(with = "humantime_serde")]
    pub retry_max_delay: Duration,
}

impl Default for DatabaseConfig {
    fn default() -> DatabaseConfig {
        DatabaseConfig {
            url: DEFAULT_DATABASE_URL.to_string(),
            batch_rows: DEFAULT_BATCH_ROWS,
            flush_interval: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(10),
            statement_timeout: Duration::from_secs(60),
            retry_max_delay: Duration::from_secs(30),
        }
    }
}

/// Where a source with no checkpoint starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartAt {
    /// At the current end of the file: only new lines.
    #[default]
    End,
    /// At byte 0: everything the file holds.
    Beginning,
}

/// One `[[source]]`: a log file (or glob) and how to read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Path of the log file; may be a glob such as `/var/log/squid/*.log`.
    pub path: String,
    /// Name stored in the `source` column (which gateway); part of every row's
    /// id, so keep it stable. Defaults to the machine's host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A built-in format name (`squid`, `common`, `combined`, `referrer`, `useragent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// A Squid logformat specification (the text after `logformat NAME`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logformat: Option<String>,
    /// A squid.conf whose `access_log` line for this path names the format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub squid_conf: Option<PathBuf>,
    /// Default `group_name` for rows from this source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Where reading starts when there is no checkpoint.
    #[serde(default)]
    pub start_at: StartAt,
}

/// How a source's format is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatSpec {
    /// A built-in format by name.
    Builtin(String),
    /// A logformat specification.
    Logformat(String),
    /// Read from a squid.conf (the format of the `access_log` for the path).
    SquidConf(PathBuf),
}

impl SourceConfig {
    /// The format this source names, `squid` when it names none.
    pub fn format_spec(&self) -> FormatSpec {
        if let Some(spec) = &self.logformat {
            FormatSpec::Logformat(spec.clone())
        } else if let Some(conf) = &self.squid_conf {
            FormatSpec::SquidConf(conf.clone())
        } else {
            FormatSpec::Builtin(self.format.clone().unwrap_or_else(|| "squid".into()))
        }
    }

    /// The name written to the `source` column and hashed into row ids.
    pub fn source_name(&self) -> String {
        self.name.clone().unwrap_or_else(local_host_name)
    }
}

/// One `[[bots]]` entry: a client address or range that identifies a bot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BotRule {
    /// A CIDR range (`10.0.3.0/24`) or a single address (`10.0.3.7`).
    #[serde(with = "cidr")]
    pub cidr: IpNet,
    /// The bot name for calls from these addresses.
    pub name: String,
    /// The group for calls from these addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// A place a bot name can be taken from, in the order `identity.bot_order` gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BotSource {
    /// The bot header the format logs (default `X-Bot-Name`).
    Header,
    /// The proxy user name (`%un`, `%ul`, `%ue`).
    User,
    /// The `[[bots]]` address map.
    Address,
}

/// `[identity]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityConfig {
    /// Where the bot name is looked for, first match wins; then `unknown`.
    pub bot_order: Vec<BotSource>,
    /// Request header that carries the bot name.
    pub bot_header: String,
    /// Request header that carries the group name.
    pub group_header: String,
}

impl Default for IdentityConfig {
    fn default() -> IdentityConfig {
        IdentityConfig {
            bot_order: vec![BotSource::Header, BotSource::User, BotSource::Address],
            bot_header: "X-Bot-Name".into(),
            group_header: "X-Bot-Group".into(),
        }
    }
}

/// `[redact]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedactConfig {
    /// Query parameters (case-insensitive) whose values become `REDACTED`;
    /// setting it replaces the built-in list, and an empty list turns the
    /// built-in list off.
    pub query_params: Vec<String>,
    /// More parameters to redact, on top of `query_params`: a site's own
    /// names without having to repeat (and keep up with) the built-in ones.
    pub extra_query_params: Vec<String>,
}

impl RedactConfig {
    /// Every parameter name redacted: `query_params` then `extra_query_params`.
    pub fn all_params(&self) -> Vec<String> {
        self.query_params
            .iter()
            .chain(&self.extra_query_params)
            .cloned()
            .collect()
    }
}

impl Default for RedactConfig {
    fn default() -> RedactConfig {
        RedactConfig {
            query_params: DEFAULT_REDACTED_PARAMS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            extra_query_params: Vec::new(),
        }
    }
}

/// `[limits]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Longest line accepted; a longer one is set aside with its first bytes.
    pub max_line_bytes: usize,
}

impl Default for LimitsConfig {
    fn default() -> LimitsConfig {
        LimitsConfig {
            max_line_bytes: 64 * 1024,
        }
    }
}

/// `[tail]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TailConfig {
    /// How often files are checked with `stat` when no filesystem event came.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// How long Squid gets to finish the last line of a rotated file.
    #[serde(with = "humantime_serde")]
    pub rotate_grace: Duration,
    /// Bytes at the start of a file that identify it.
    pub fingerprint_bytes: usize,
    /// Size of each read from a log file.
    pub read_buffer_bytes: usize,
}

impl Default for TailConfig {
    fn default() -> TailConfig {
        TailConfig {
            poll_interval: Duration::from_millis(250),
            rotate_grace: Duration::from_secs(1),
            fingerprint_bytes: 256,
            read_buffer_bytes: 64 * 1024,
        }
    }
}

/// `[metrics]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address for `/metrics` and `/healthz`; off when absent.
    #[serde(skip_serializing_if = "Option::is_none", with = "listen_addr")]
    pub listen: Option<SocketAddr>,
    /// Most distinct bot labels; the rest are counted as `other`.
    pub max_bots: usize,
}

impl Default for MetricsConfig {
    fn default() -> MetricsConfig {
        MetricsConfig {
            listen: None,
            max_bots: 50,
        }
    }
}

/// Diagnostic output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[log]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A tracing filter: `info`, `debug`, `egress_audit=debug,sqlx=warn`.
    pub level: String,
    /// `text` or `json`.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// `[run]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// Longest a stop (SIGTERM, SIGINT) may take to commit what was read.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// Batches written to PostgreSQL at once (SQLite always uses one).
    pub writers: usize,
}

impl Default for RunConfig {
    fn default() -> RunConfig {
        RunConfig {
            shutdown_timeout: Duration::from_secs(10),
            writers: 2,
        }
    }
}

/// Values given on the command line, which override every other layer.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--database-url`
    pub database_url: Option<String>,
    /// `--state-dir`
    pub state_dir: Option<PathBuf>,
}

/// A configuration that could not be loaded, worded for an operator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file named with `--config` does not exist or cannot be read.
    #[error("config file {path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        reason: String,
    },
    /// A key has a value that is not allowed, or is not a known key.
    #[error("config: {0}")]
    Invalid(String),
}

/// Loads the configuration. `file` is `--config`; when absent the system file
/// is read if present.
pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
    load_layers(file, overrides, true)
}

fn load_layers(
    file: Option<&Path>,
    overrides: &Overrides,
    environment: bool,
) -> Result<Config, ConfigError> {
    let mut figment = Figment::from(Serialized::defaults(Config::default()));
    match file {
        Some(path) => {
            std::fs::metadata(path).map_err(|e| ConfigError::File {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
            figment = figment.merge(Toml::file_exact(path));
        }
        None if Path::new(SYSTEM_CONFIG).exists() => {
            figment = figment.merge(Toml::file_exact(SYSTEM_CONFIG));
        }
        None => {}
    }
    if environment {
        figment = figment
            .merge(Env::prefixed("EGRESS_AUDIT_").split("__"))
            .merge(
                Env::raw()
                    .only(&["DATABASE_URL"])
                    .map(|_| "database.url".into()),
            );
    }
    if let Some(url) = &overrides.database_url {
        figment = figment.merge(Serialized::default("database.url", url));
    }
    if let Some(dir) = &overrides.state_dir {
        figment = figment.merge(Serialized::default("state_dir", dir));
    }

    let config: Config = figment.extract().map_err(describe)?;
    config.check()?;
    Ok(config)
}

/// Turns figment's error into one line per problem naming key, value and rule.
fn describe(error: figment::Error) -> ConfigError {
    let lines: Vec<String> = error
        .into_iter()
        .map(|e| {
            let key = key_path(&e.path);
            let origin = match e.metadata.as_ref() {
                Some(m) => match &m.source {
                    Some(source) => format!(" (from {source})"),
                    // The environment has no file: name the provider.
                    None if m.name.contains("environment") => format!(" (from {})", m.name),
                    None => String::new(),
                },
                None => String::new(),
            };
            let what = explain_kind(&e.kind.to_string());
            if key.is_empty() {
                format!("{what}{origin}")
            } else {
                format!("key `{key}`: {what}{origin}")
            }
        })
        .collect();
    ConfigError::Invalid(lines.join("; "))
}

/// Rewords serde's message where it leaves out what is allowed, and unnests
/// the quoting of its lists of keys.
fn explain_kind(what: &str) -> String {
    let mut what = what.to_string();
    if what.ends_with("expected a duration") {
        what.push_str(" like \"1s\", \"500ms\", \"2m\", \"1h 30m\" or \"1day\"");
    }
    if let Some(at) = what.find("expected `one of ") {
        let rest = &what[at + "expected `one of ".len()..];
        let list = rest.strip_suffix('`').unwrap_or(rest).to_string();
        what = format!("{}expected one of {list}", &what[..at]);
    }
    what
}

/// Writes figment's key path the way the other messages do: `source[0].format`.
fn key_path(path: &[String]) -> String {
    let mut key = String::new();
    for part in path {
        if part.parse::<usize>().is_ok() {
            key.push_str(&format!("[{part}]"));
        } else {
            if !key.is_empty() {
                key.push('.');
            }
            key.push_str(part);
        }
    }
    key
}

impl Config {
    /// Checks the rules serde cannot express. Called by [`load`].
    pub fn check(&self) -> Result<(), ConfigError> {
        check_database_url(&self.database.url)?;
        if self.database.batch_rows == 0 {
            return invalid("key `database.batch_rows` = 0: must be at least 1 (default 5000)");
        }
        if self.database.flush_interval.is_zero() {
            return invalid("key `database.flush_interval` = 0s: must be positive, like \"1s\"");
        }
        if self.limits.max_line_bytes < 256 {
            return invalid("key `limits.max_line_bytes`: must be at least 256 (default 65536)");
        }
        if self.tail.fingerprint_bytes == 0 || self.tail.read_buffer_bytes < 4096 {
            return invalid(
                "keys `tail.fingerprint_bytes` (>= 1) and `tail.read_buffer_bytes` \
                 (>= 4096) are out of range",
            );
        }
        if self.run.writers == 0 || self.run.writers > 16 {
            return invalid("key `run.writers`: must be between 1 and 16 (default 2)");
        }
        if self.identity.bot_order.is_empty() {
            return invalid(
                "key `identity.bot_order` is empty: list one or more of \
                 \"header\", \"user\", \"address\"",
            );
        }
        check_log_level(&self.log.level)?;
        for (index, source) in self.sources.iter().enumerate() {
            source.check(index)?;
        }
        Ok(())
    }
}

/// The levels a `log.level` directive may name.
const LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];

/// Checks `log.level`: comma-separated directives, each a level or
/// `target=level`. A bare word that is not a level would be taken by the
/// tracing filter as a target name, silently logging everything for it.
fn check_log_level(level: &str) -> Result<(), ConfigError> {
    let bad = level.split(',').map(str::trim).find(|directive| {
        let level = match directive.rsplit_once('=') {
            Some((target, level)) if !target.is_empty() => level,
            _ => directive,
        };
        !LEVELS.contains(&level.to_ascii_lowercase().as_str())
    });
    match bad {
        None if !level.trim().is_empty() => Ok(()),
        _ => invalid(format!(
            "key `log.level` = {level:?}: use a level ({}) or directives like \
             \"egress_audit=debug,sqlx=warn\"",
            LEVELS.join(", ")
        )),
    }
}

impl SourceConfig {
    fn check(&self, index: usize) -> Result<(), ConfigError> {
        let given = [
            self.format.is_some(),
            self.logformat.is_some(),
            self.squid_conf.is_some(),
        ];
        if given.iter().filter(|g| **g).count() > 1 {
            return invalid(format!(
                "source[{index}] ({}): give only one of `format`, `logformat`, `squid_conf`",
                self.path
            ));
        }
        if let Some(name) = &self.format
            && !BUILTIN_FORMATS.contains(&name.as_str())
        {
            return invalid(format!(
                "key `source[{index}].format` = {name:?}: not a built-in format; use one of {} \
                 or give the specification with `logformat = \"…\"`",
                BUILTIN_FORMATS.join(", ")
            ));
        }
        if self.path.trim().is_empty() {
            return invalid(format!("key `source[{index}].path` is empty"));
        }
        Ok(())
    }
}

/// Checks that a database URL names a store this build supports.
pub fn check_database_url(url: &str) -> Result<(), ConfigError> {
    let ok = ["sqlite:", "postgres://", "postgresql://"]
        .iter()
        .any(|p| url.starts_with(p));
    if ok {
        Ok(())
    } else {
        let scheme = url.split(':').next().unwrap_or(url);
        invalid(format!(
            "key `database.url` has scheme {scheme:?}: use sqlite://PATH, postgres://… \
             or postgresql://…"
        ))
    }
}

fn invalid<T>(message: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError::Invalid(message.into()))
}

/// Replaces the password in a connection URL with `***`, for logs and output:
/// the one in the user part and any `password` parameter of the query.
pub fn mask_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return url.to_string();
    };
    let in_user = parsed.password().is_some();
    let in_query = parsed.query_pairs().any(|(k, _)| k == "password");
    if !in_user && !in_query {
        return url.to_string();
    }
    if in_user {
        let _ = parsed.set_password(Some("***"));
    }
    if in_query {
        mask_query_password(&mut parsed);
    }
    parsed.to_string()
}

fn mask_query_password(parsed: &mut url::Url) {
    let pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "password" {
                "***".to_string()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    parsed.query_pairs_mut().clear().extend_pairs(pairs);
}

/// The configuration as TOML, with secrets masked, for `egress-audit config`.
pub fn render_masked(config: &Config) -> String {
    let mut shown = config.clone();
    shown.database.url = mask_url(&shown.database.url);
    toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
}

/// The machine's host name, the default source name.
pub fn local_host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Serde glue for CIDR ranges that also accepts a single address.
mod cidr {
    use ipnet::IpNet;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(net: &IpNet, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(net)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<IpNet, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).map_err(serde::de::Error::custom)
    }

    /// Parses `10.0.0.0/8`, `2001:db8::/32` or a single address.
    pub fn parse(text: &str) -> Result<IpNet, String> {
        if let Ok(net) = text.parse::<IpNet>() {
            return Ok(net);
        }
        text.parse::<std::net::IpAddr>()
            .map(IpNet::from)
            .map_err(|_| {
                format!("{text:?} is not an address or CIDR range (like 10.0.3.0/24 or 10.0.3.7)")
            })
    }
}

/// `metrics.listen`: a socket address, with the value named when it is not one.
mod listen_addr {
    use std::net::SocketAddr;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(addr: &Option<SocketAddr>, s: S) -> Result<S::Ok, S::Error> {
        match addr {
            Some(addr) => s.collect_str(addr),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map(Some).map_err(|_| {
            serde::de::Error::custom(format!(
                "{text:?} is not a listen address; use IP:PORT, like \"127.0.0.1:9469\" \
                 (leave the key out to turn metrics off)"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn load_text(text: &str) -> Result<Config, ConfigError> {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        // The environment is left out so that a DATABASE_URL set for other
        // tests cannot change these results; tests/cli.rs covers that layer.
        load_layers(Some(file.path()), &Overrides::default(), false)
    }

    #[test]
    fn example_config_loads() {
        let text = include_str!("../config.example.toml");
        let config = load_text(text).unwrap();
        assert_eq!(config.database.batch_rows, 5000);
    }

    #[test]
    fn unknown_key_is_named() {
        let err = load_text("[database]\nbatch_rowz = 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("batch_rowz"), "{err}");
    }

    #[test]
    fn bad_value_names_key_and_value() {
        let err = load_text("[database]\nbatch_rows = \"many\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("database.batch_rows"), "{err}");
        assert!(err.contains("many"), "{err}");
    }

    #[test]
    fn bad_format_name_lists_the_allowed_ones() {
        let err = load_text("[[source]]\npath = \"/x\"\nformat = \"squidd\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("squidd") && err.contains("combined"), "{err}");
    }

    #[test]
    fn bad_cidr_is_explained() {
        let err = load_text("[[bots]]\ncidr = \"10.0.0.0/99\"\nname = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("bots") && err.contains("10.0.0.0/99"), "{err}");
    }

    #[test]
    fn bad_listen_address_names_key_value_and_form() {
        let err = load_text("[metrics]\nlisten = \"localhost\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("key `metrics.listen`"), "{err}");
        assert!(
            err.contains("\"localhost\"") && err.contains("127.0.0.1:9469"),
            "{err}"
        );

        let config = load_text("[metrics]\nlisten = \"127.0.0.1:9469\"\n").unwrap();
        assert_eq!(
            config.metrics.listen,
            Some("127.0.0.1:9469".parse().unwrap())
        );
    }

    #[test]
    fn keys_inside_lists_are_written_with_their_index() {
        let text = "[[source]]\npath = \"/a\"\n[[source]]\npath = \"/b\"\nstart_at = \"middle\"\n";
        let err = load_text(text).unwrap_err().to_string();
        assert!(err.contains("key `source[1].start_at`"), "{err}");
        assert!(err.contains("middle") && err.contains("beginning"), "{err}");
    }

    #[test]
    fn single_address_is_a_cidr() {
        let config = load_text("[[bots]]\ncidr = \"10.0.0.7\"\nname = \"x\"\n").unwrap();
        assert_eq!(config.bots[0].cidr.to_string(), "10.0.0.7/32");
    }

    #[test]
    fn durations_are_humane() {
        let config = load_text("[database]\nflush_interval = \"250ms\"\n").unwrap();
        assert_eq!(config.database.flush_interval, Duration::from_millis(250));
    }

    #[test]
    fn missing_config_file_is_an_error() {
        let err = load(
            Some(Path::new("/nonexistent/egress.toml")),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("/nonexistent/egress.toml"), "{err}");
    }

    #[test]
    fn flags_beat_the_file() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(b"[database]\nurl = \"sqlite://a.db\"\n")
            .unwrap();
        let overrides = Overrides {
            database_url: Some("sqlite://b.db".into()),
            state_dir: None,
        };
        let config = load_layers(Some(file.path()), &overrides, false).unwrap();
        assert_eq!(config.database.url, "sqlite://b.db");
    }

    #[test]
    fn bad_scheme_is_refused() {
        let err = load_text("[database]\nurl = \"mysql://x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("mysql"), "{err}");
    }

    #[test]
    fn both_passwords_are_masked_in_one_url() {
        let shown =
            mask_url("postgres://app:s3cret@db.example/x?sslmode=verify-full&password=other");
        assert!(
            !shown.contains("s3cret") && !shown.contains("other"),
            "{shown}"
        );
        assert!(shown.contains("sslmode=verify-full"), "{shown}");
    }

    #[test]
    fn durations_and_key_lists_say_what_is_allowed() {
        let what = explain_kind("invalid value string \"1 sekond\", expected a duration");
        assert!(what.contains("\"500ms\""), "{what}");
        let what = explain_kind("unknown field: found `bogus`, expected `one of `a`, `b``");
        assert_eq!(
            what,
            "unknown field: found `bogus`, expected one of `a`, `b`"
        );
    }

    #[test]
    fn log_level_must_name_levels() {
        for good in ["info", "DEBUG", "egress_audit=debug,sqlx=warn", "off"] {
            assert!(check_log_level(good).is_ok(), "{good}");
        }
        for bad in ["loud", "", "egress_audit=loud", "info,,"] {
            let message = check_log_level(bad).unwrap_err().to_string();
            assert!(
                message.contains("log.level") && message.contains("debug"),
                "{message}"
            );
        }
    }

    #[test]
    fn passwords_are_masked() {
        let shown = mask_url("postgres://app:s3cret@db.example/neondb?sslmode=verify-full");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("***"), "{shown}");
        let shown = mask_url("postgres://db.example/x?password=s3cret");
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}
