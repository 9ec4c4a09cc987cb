//! The audit record: one outbound call, with the columns of `tq_egress_audit`.
//!
//! A record is what the enrichment step produces and what every sink writes.
//! It owns nothing else; parsing lives in [`crate::parse`] and identity in
//! [`crate::id`].

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

/// Longest `bot_name` and `group_name` the table keeps; longer values are cut.
pub const MAX_NAME_CHARS: usize = 64;

/// Longest `http_method` the table keeps; longer values are cut.
pub const MAX_METHOD_CHARS: usize = 10;

/// Bot name used when nothing identifies the caller.
pub const UNKNOWN_BOT: &str = "unknown";

/// One outbound call as stored in `tq_egress_audit`.
///
/// Field names are the column names, in configuration and in output alike.
/// `None` is SQL `NULL` (Squid's `-`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    /// Deterministic UUIDv7 (see [`crate::id`]).
    pub id: Uuid,
    /// Which bot made the call; never empty (`unknown` when nothing says).
    pub bot_name: String,
    /// The bot's group or team.
    pub group_name: Option<String>,
    /// The URL as Squid logged it (query secrets redacted).
    pub destination_url: String,
    /// Host part of the URL, or of `host:port` for CONNECT.
    pub destination_host: Option<String>,
    /// HTTP method, for example `GET` or `CONNECT`.
    pub http_method: Option<String>,
    /// HTTP status sent to the client; `None` when none was sent (Squid's `000`).
    pub status_code: Option<i32>,
    /// Bytes received from the client (headers and body).
    pub request_size_bytes: Option<i64>,
    /// Bytes sent to the client (headers and body).
    pub response_size_bytes: Option<i64>,
    /// Time Squid spent on the transaction, in milliseconds.
    pub latency_ms: Option<i64>,
    /// The client's `User-Agent` header.
    pub user_agent: Option<String>,
    /// When Squid logged the call (the end of the transaction), UTC.
    pub created_at: DateTime<Utc>,
    /// The client's address.
    pub client_ip: Option<String>,
    /// The proxy user name Squid logged, if any.
    pub proxy_user: Option<String>,
    /// Squid's result code, for example `TCP_MISS` or `TCP_DENIED`.
    pub squid_status: Option<String>,
    /// Squid's hierarchy code and peer, for example `HIER_DIRECT/203.0.113.5`.
    pub hierarchy: Option<String>,
    /// The reply's media type without parameters.
    pub content_type: Option<String>,
    /// Which gateway or source the line came from.
    pub source: Option<String>,
}

impl Record {
    /// A record with only the required columns set; the rest are `NULL`.
    pub fn new(
        id: Uuid,
        bot_name: impl Into<String>,
        destination_url: impl Into<String>,
        created_at: DateTime<Utc>,
    ) -> Record {
        Record {
            id,
            bot_name: bot_name.into(),
            group_name: None,
            destination_url: destination_url.into(),
            destination_host: None,
            http_method: None,
            status_code: None,
            request_size_bytes: None,
            response_size_bytes: None,
            latency_ms: None,
            user_agent: None,
            created_at,
            client_ip: None,
            proxy_user: None,
            squid_status: None,
            hierarchy: None,
            content_type: None,
            source: None,
        }
    }
}

/// Cuts `value` to at most `max` characters, on a character boundary.
///
/// Returns true when something was cut, so that callers can count it.
pub fn truncate_chars(value: &mut String, max: usize) -> bool {
    match value.char_indices().nth(max) {
        Some((end, _)) => {
            value.truncate(end);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_keeps_short_values() {
        let mut value = String::from("crawler");
        assert!(!truncate_chars(&mut value, 64));
        assert_eq!(value, "crawler");
    }

    #[test]
    fn truncate_cuts_on_a_character_boundary() {
        let mut value = "ü".repeat(70);
        assert!(truncate_chars(&mut value, 64));
        assert_eq!(value.chars().count(), 64);
    }
}
