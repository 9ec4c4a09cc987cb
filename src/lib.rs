//! egress-audit: an exactly-once audit trail of the outbound calls that pass
//! through a Squid egress proxy.
//!
//! # Data flow
//!
//! ```text
//! tail ──> parse ──> enrich ──> batch ──> sink ──> acknowledge ──> checkpoint
//! ```
//!
//! - [`tail`] follows each configured log file through rotation and hands on
//!   complete lines with the file's identity and the byte offset past each line.
//! - [`checkpoint`] keeps, per file, the offset up to which the store has
//!   committed, in one atomically replaced file.
//! - [`parse`] compiles a Squid `logformat` (or a built-in format) into a
//!   parser that turns a line of bytes into fields.
//! - [`enrich`] turns parsed fields into a [`record::Record`]: who the bot is,
//!   which host was called, secrets redacted, values cut to their columns.
//! - [`id`] derives each row's deterministic id from where its line came from,
//!   so that any replay is idempotent.
//! - [`store`] owns the database: migrations, batched writes that ignore rows
//!   already present, and the connection details for SQLite and PostgreSQL.
//! - [`query`] answers the operators' questions from the store.
//! - [`pipeline`] joins tail, parse, enrich and store for `run` and `import`:
//!   batches, retries, dead letters, in-order acknowledgement, shutdown.
//! - [`metrics`] counts what the pipeline does for Prometheus and systemd.
//! - [`config`] loads and validates configuration from defaults, a file, the
//!   environment and flags.
//! - [`cli`] is the command-line front end that the binary calls.

pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod duration;
pub mod enrich;
pub mod id;
pub mod metrics;
pub mod parse;
pub mod pipeline;
pub mod query;
pub mod record;
pub mod store;
pub mod tail;
