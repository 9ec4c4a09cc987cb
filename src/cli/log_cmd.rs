//! `egress-audit log`: record one call by hand (or from a script) and print its id.

use anyhow::Context;
use chrono::Utc;

use super::{EXIT_OK, parse_time};
use crate::config::Config;
use crate::store::{NewCall, Store, log_call};

const EXAMPLES: &str = "Examples:
  egress-audit log crawler https://api.example.com/v1/items
  egress-audit log crawler https://api.example.com/v1/items POST 201 340 \\
      --group research --request-bytes 512 --response-bytes 2048 --at 2026-02-26T10:00:00Z";

/// Arguments of `log`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct LogArgs {
    /// Which bot made the call.
    pub bot_name: String,
    /// The URL called.
    pub url: String,
    /// HTTP method, e.g. GET.
    pub method: Option<String>,
    /// HTTP status, e.g. 200.
    pub status: Option<i32>,
    /// Time taken, in milliseconds.
    pub latency_ms: Option<i64>,
    /// The bot's group.
    #[arg(long)]
    pub group: Option<String>,
    /// Bytes sent with the request.
    #[arg(long, value_name = "BYTES")]
    pub request_bytes: Option<i64>,
    /// Bytes received in the response.
    #[arg(long, value_name = "BYTES")]
    pub response_bytes: Option<i64>,
    /// The caller's User-Agent.
    #[arg(long)]
    pub user_agent: Option<String>,
    /// When the call happened (RFC 3339, "2026-02-26 10:00" UTC, or 2h for two hours ago);
    /// default now.
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// Value of the `source` column.
    #[arg(long)]
    pub source: Option<String>,
}

pub(super) async fn run(config: &Config, args: LogArgs) -> anyhow::Result<u8> {
    let at = args
        .at
        .as_deref()
        .map(|t| parse_time(t, Utc::now()))
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let call = NewCall {
        bot_name: args.bot_name,
        destination_url: args.url,
        http_method: args.method.map(|m| m.to_ascii_uppercase()),
        status_code: args.status,
        latency_ms: args.latency_ms,
        group_name: args.group,
        request_size_bytes: args.request_bytes,
        response_size_bytes: args.response_bytes,
        user_agent: args.user_agent,
        at,
        source: args.source,
    };
    let store = Store::open(&config.database).await?;
    let id = log_call(&store, call).await.context("log")?;
    store.close().await;
    println!("{id}");
    Ok(EXIT_OK)
}
