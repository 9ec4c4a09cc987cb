//! Enrichment: turns parsed fields into the audit [`Record`].
//!
//! Decides who the bot is (bot header, proxy user, `[[bots]]` address map,
//! in the configured order), its group, the destination host, and removes
//! secrets from the URL. Values longer than their column are cut and counted,
//! never a reason to drop a row. Owns the truncation counters, which metrics
//! read through [`Enricher::truncations`]. Parsing itself is [`crate::parse`].

pub mod redact;

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::{BotRule, BotSource, Config};
use crate::id::{LineOrigin, row_id};
use crate::parse::{Encoding, Fields, Number, Slot, Value, decode};
use crate::record::{MAX_METHOD_CHARS, MAX_NAME_CHARS, Record, UNKNOWN_BOT, truncate_chars};
use redact::Redactor;

/// A line whose fields cannot become a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnrichError {
    /// The line carries no usable time (the format logs none, or `-`).
    #[error("enrich: the line has no time (the format logs no %ts, %tl, %tg or %tS)")]
    NoTime,
    /// A number is too large for its column.
    #[error("enrich: {field} = {value} does not fit its column")]
    OutOfRange {
        /// The column.
        field: &'static str,
        /// The value.
        value: i64,
    },
    /// The identity settings cannot be used.
    #[error("enrich: {0}")]
    Config(String),
}

/// How many values were cut to fit their column, per column.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TruncationCounts {
    /// `bot_name` values cut to 64 characters.
    pub bot_name: u64,
    /// `group_name` values cut to 64 characters.
    pub group_name: u64,
    /// `http_method` values cut to 10 characters.
    pub http_method: u64,
}

#[derive(Debug, Default)]
struct Truncations {
    bot_name: AtomicU64,
    group_name: AtomicU64,
    http_method: AtomicU64,
}

/// Turns [`Fields`] of one source into [`Record`]s.
#[derive(Debug)]
pub struct Enricher {
    source: String,
    default_group: Option<String>,
    bot_order: Vec<BotSource>,
    bot_header: String,
    group_header: String,
    /// `[[bots]]`, most specific range first.
    bots: Vec<BotRule>,
    redactor: Redactor,
    truncations: Truncations,
}

impl Enricher {
    /// An enricher for rows of `source_name`, whose group defaults to
    /// `default_group`.
    pub fn new(
        config: &Config,
        source_name: &str,
        default_group: Option<&str>,
    ) -> Result<Enricher, EnrichError> {
        let identity = &config.identity;
        if identity.bot_header.trim().is_empty() || identity.group_header.trim().is_empty() {
            return Err(EnrichError::Config(
                "identity.bot_header and identity.group_header must name a header".into(),
            ));
        }
        let mut bots = config.bots.clone();
        bots.sort_by_key(|rule| std::cmp::Reverse(rule.cidr.prefix_len()));
        Ok(Enricher {
            source: source_name.to_string(),
            default_group: default_group.map(str::to_string),
            bot_order: identity.bot_order.clone(),
            bot_header: identity.bot_header.clone(),
            group_header: identity.group_header.clone(),
            bots,
            redactor: Redactor::new(&config.redact.all_params()),
            truncations: Truncations::default(),
        })
    }

    /// How many values have been cut so far.
    pub fn truncations(&self) -> TruncationCounts {
        let t = &self.truncations;
        TruncationCounts {
            bot_name: t.bot_name.load(Ordering::Relaxed),
            group_name: t.group_name.load(Ordering::Relaxed),
            http_method: t.http_method.load(Ordering::Relaxed),
        }
    }

    /// The record for a parsed line read at `offset` of the file with `fingerprint`.
    pub fn record(
        &self,
        fields: &Fields<'_>,
        fingerprint: u64,
        offset: u64,
    ) -> Result<Record, EnrichError> {
        let created_at = fields.created_at().ok_or(EnrichError::NoTime)?;
        let origin = LineOrigin {
            source: &self.source,
            fingerprint,
            offset,
        };
        let id = row_id(created_at, origin);

        let raw_url = url_text(fields);
        let method = first_text(fields, &[Slot::Method, Slot::MethodReceived]);
        let destination_host =
            destination_host(raw_url.as_deref().unwrap_or(""), method.as_deref());
        let url = raw_url.map_or(String::new(), |u| self.redact(u));

        let client_ip = text(fields.value(Slot::Client));
        let proxy_user = first_text(
            fields,
            &[
                Slot::User,
                Slot::UserLogin,
                Slot::UserExternal,
                Slot::UserIdent,
            ],
        );
        let rule = client_ip.as_deref().and_then(|ip| self.rule_for(ip));
        let bot_name = self.bot_name(fields, proxy_user.as_deref(), rule);
        let group_name = self.group_name(fields, rule);

        let mut record = Record::new(id, bot_name, url, created_at);
        record.group_name = group_name;
        record.destination_host = destination_host;
        record.http_method = method;
        record.status_code = status_code(fields)?;
        record.request_size_bytes = fields.number(Number::RequestBytes);
        record.response_size_bytes = fields.number(Number::ReplyBytes);
        record.latency_ms = fields.number(Number::Latency);
        record.user_agent = fields.header("User-Agent").map(|v| owned_text(&v));
        record.client_ip = client_ip;
        record.proxy_user = proxy_user;
        record.squid_status = text(fields.value(Slot::ResultCode));
        record.hierarchy = hierarchy(fields);
        record.content_type = text(fields.value(Slot::ContentType));
        record.source = Some(self.source.clone());

        self.fit_columns(&mut record, offset);
        Ok(record)
    }

    /// `url` with secrets redacted, reusing its allocation when none are.
    fn redact(&self, url: String) -> String {
        match self.redactor.redact(&url) {
            std::borrow::Cow::Borrowed(_) => url,
            std::borrow::Cow::Owned(redacted) => redacted,
        }
    }

    /// The most specific `[[bots]]` range that holds `ip`.
    fn rule_for(&self, ip: &str) -> Option<&BotRule> {
        let address: IpAddr = ip.parse().ok()?;
        let address = address.to_canonical();
        self.bots.iter().find(|rule| rule.cidr.contains(&address))
    }

    fn bot_name(&self, fields: &Fields<'_>, user: Option<&str>, rule: Option<&BotRule>) -> String {
        self.bot_order
            .iter()
            .find_map(|source| match source {
                BotSource::Header => self.header_text(fields, &self.bot_header),
                BotSource::User => user.map(str::to_string),
                BotSource::Address => rule.map(|r| r.name.clone()),
            })
            .unwrap_or_else(|| UNKNOWN_BOT.to_string())
    }

    fn group_name(&self, fields: &Fields<'_>, rule: Option<&BotRule>) -> Option<String> {
        self.header_text(fields, &self.group_header)
            .or_else(|| rule.and_then(|r| r.group.clone()))
            .or_else(|| self.default_group.clone())
    }

    /// A header's decoded text, `None` when absent or blank.
    fn header_text(&self, fields: &Fields<'_>, name: &str) -> Option<String> {
        let value = fields.header(name)?;
        let trimmed = value.trim_ascii();
        (!trimmed.is_empty()).then(|| owned_text(trimmed))
    }

    /// Cuts values to their columns, counting and warning about each cut.
    fn fit_columns(&self, record: &mut Record, offset: u64) {
        let counters = &self.truncations;
        if truncate_chars(&mut record.bot_name, MAX_NAME_CHARS) {
            counters.bot_name.fetch_add(1, Ordering::Relaxed);
            warn_cut(&self.source, offset, "bot_name");
        }
        if let Some(group) = record.group_name.as_mut()
            && truncate_chars(group, MAX_NAME_CHARS)
        {
            counters.group_name.fetch_add(1, Ordering::Relaxed);
            warn_cut(&self.source, offset, "group_name");
        }
        if let Some(method) = record.http_method.as_mut()
            && truncate_chars(method, MAX_METHOD_CHARS)
        {
            counters.http_method.fetch_add(1, Ordering::Relaxed);
            warn_cut(&self.source, offset, "http_method");
        }
    }
}

fn warn_cut(source: &str, offset: u64, column: &'static str) {
    tracing::warn!(source, offset, column, "value cut to fit its column");
}

/// A value's decoded text, `None` for a missing value.
fn text(value: Option<Value<'_>>) -> Option<String> {
    value.map(|v| v.text().into_owned())
}

fn owned_text(bytes: &[u8]) -> String {
    decode::text(bytes).into_owned()
}

/// The first of `slots` the line has a value for.
fn first_text(fields: &Fields<'_>, slots: &[Slot]) -> Option<String> {
    slots.iter().find_map(|slot| text(fields.value(*slot)))
}

/// The URL, `%>ru` else `%ru`. Pass-through escaping is not undone here:
/// it leaves `%` alone, so `%2F` in the line may be what the client sent, and
/// decoding it would change the URL (and could split a redacted value at a
/// `%26`). What Squid escaped itself (spaces, quotes, non-ASCII bytes) stays
/// in valid %-encoded form. Exact encodings (`%#`, quoted) are undone.
fn url_text(fields: &Fields<'_>) -> Option<String> {
    [Slot::UrlReceived, Slot::Url].iter().find_map(|slot| {
        let value = fields.value(*slot)?;
        Some(match value.encoding() {
            Encoding::PassThrough => owned_text(value.raw()),
            _ => value.text().into_owned(),
        })
    })
}

/// `%>Hs`, with Squid's 0 ("no status was sent") as `None`.
fn status_code(fields: &Fields<'_>) -> Result<Option<i32>, EnrichError> {
    match fields.number(Number::Status) {
        None | Some(0) => Ok(None),
        Some(value) => i32::try_from(value)
            .map(Some)
            .map_err(|_| EnrichError::OutOfRange {
                field: "status_code",
                value,
            }),
    }
}

/// `%Sh/%<a` as the native format writes it (`HIER_NONE/-`), or `%Sh` alone
/// when the format does not log the server address.
fn hierarchy(fields: &Fields<'_>) -> Option<String> {
    let code = text(fields.value(Slot::Hierarchy))?;
    if !fields.info().has(Slot::Server) {
        return Some(code);
    }
    let server = text(fields.value(Slot::Server));
    Some(format!("{code}/{}", server.as_deref().unwrap_or("-")))
}

/// The host a URL names, lower-cased, without brackets or port: from
/// `scheme://[user@]host[:port]/…`, or from `host:port` (CONNECT).
pub fn destination_host(url: &str, method: Option<&str>) -> Option<String> {
    let authority = match url.find("://") {
        Some(at) => {
            let rest = &url[at + 3..];
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            let authority = &rest[..end];
            authority
                .rsplit_once('@')
                .map_or(authority, |(_, host)| host)
        }
        None if method == Some("CONNECT") || is_host_port(url) => url,
        None => return None,
    };
    let host = match authority.strip_prefix('[') {
        Some(inner) => inner.split(']').next().unwrap_or(inner),
        None => authority
            .rsplit_once(':')
            .map_or(authority, |(host, port)| {
                if port.bytes().all(|b| b.is_ascii_digit()) {
                    host
                } else {
                    authority
                }
            }),
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// Whether `text` is `host:port` with a numeric port.
fn is_host_port(text: &str) -> bool {
    match text.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty()
                && !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && !host.contains('/')
        }
        None => false,
    }
}

#[cfg(test)]
mod tests;
