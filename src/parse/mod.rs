//! Squid log format engine: compiles a format into a parser for log lines.
//!
//! A [`LineFormat`] is built once per source, from a built-in name
//! ([`LineFormat::builtin`]), a logformat specification
//! ([`LineFormat::logformat`]) or a squid.conf ([`load`]). Its
//! [`LineFormat::parse`] turns one line (bytes, without its newline) into
//! [`Fields`] that borrow from the line; escapes are undone only when a value
//! is read. What the fields mean for the audit table is decided in
//! [`crate::enrich`].
//!
//! Parts: [`spec`] tokenizes specifications, [`codes`] is Squid's code table,
//! [`custom`] matches lines against a compiled specification, [`builtin`]
//! holds the hand-written built-in formats, [`clock`] reads times,
//! [`decode`] undoes escaping and [`squid_conf`] finds a format in squid.conf.

pub mod builtin;
pub mod clock;
pub mod codes;
pub mod custom;
pub mod decode;
pub mod spec;
pub mod squid_conf;

#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::config::FormatSpec;
pub use decode::Encoding;
pub use spec::FormatWarning;

/// Longest line parsed unless [`LineFormat::with_max_line_bytes`] says
/// otherwise: 64 KiB, far above Squid 5's 8 KiB records, yet small enough
/// that a runaway line cannot eat memory.
pub const DEFAULT_MAX_LINE_BYTES: usize = 64 * 1024;

/// Bytes of an over-long line kept for the error report.
pub const TOO_LONG_HEAD_BYTES: usize = 256;

/// Most distinct `%{Name}>h` request-header codes one format keeps values of.
pub const MAX_HEADERS: usize = 16;

/// Text values a format can carry that the audit record uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Slot {
    /// `%>a`: the client address.
    Client,
    /// `%Ss`: Squid's result code.
    ResultCode,
    /// `%Sh`: Squid's hierarchy code.
    Hierarchy,
    /// `%<a`: the server or peer address.
    Server,
    /// `%rm`: the logged method.
    Method,
    /// `%>rm`: the method received from the client.
    MethodReceived,
    /// `%ru`: the logged URL.
    Url,
    /// `%>ru`: the URL received from the client.
    UrlReceived,
    /// `%un`: the user name (first of login, external, certificate, ident).
    User,
    /// `%ul`: the authenticated login.
    UserLogin,
    /// `%ue`: the external ACL user.
    UserExternal,
    /// `%ui`: the ident user.
    UserIdent,
    /// `%mt`: the reply's media type.
    ContentType,
    /// `%>h` without a name, or the native format's `log_mime_hdrs` block:
    /// every request header.
    RequestHeaders,
}

/// Number of [`Slot`] variants.
pub const SLOTS: usize = 14;

/// Numbers a format can carry that the audit record uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Number {
    /// `%>Hs`: status sent to the client (0 when none was sent).
    Status,
    /// `%>st`: bytes received from the client.
    RequestBytes,
    /// `%<st`: bytes sent to the client.
    ReplyBytes,
    /// `%tr`: response time in whole milliseconds.
    Latency,
}

/// Number of [`Number`] variants.
pub const NUMBERS: usize = 4;

/// One value as it appears in the line, with the encoding it was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Value<'a> {
    raw: &'a [u8],
    encoding: Encoding,
}

impl<'a> Value<'a> {
    /// A value written with `encoding`.
    pub fn new(raw: &'a [u8], encoding: Encoding) -> Value<'a> {
        Value { raw, encoding }
    }

    /// The bytes exactly as they are in the line.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// The encoding Squid wrote the value in.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// The value with Squid's escaping undone.
    pub fn bytes(&self) -> Cow<'a, [u8]> {
        decode::decode(self.raw, self.encoding)
    }

    /// The decoded value as text (see [`decode::text`] for invalid UTF-8).
    pub fn text(&self) -> Cow<'a, str> {
        match self.bytes() {
            Cow::Borrowed(bytes) => decode::text(bytes),
            Cow::Owned(bytes) => Cow::Owned(decode::text(&bytes).into_owned()),
        }
    }
}

/// What a format knows about itself, shared by every line it parses.
#[derive(Debug, Clone, Default)]
pub struct FormatInfo {
    /// `squid`, `common`, … or `logformat` for a specification.
    pub name: String,
    /// The specification, for custom formats.
    pub spec: Option<String>,
    /// Names of the request headers it logs, in [`Fields::header`] order.
    pub headers: Vec<String>,
    /// Bit `1 << slot` for each [`Slot`] the format logs.
    pub slots: u32,
    /// Bit `1 << number` for each [`Number`] the format logs.
    pub numbers: u32,
    /// Descriptions of the format's fields, for `--explain`.
    pub fields: Vec<String>,
}

impl FormatInfo {
    /// Whether the format logs `slot`.
    pub fn has(&self, slot: Slot) -> bool {
        self.slots & (1 << slot as usize) != 0
    }

    /// Whether the format logs `number`.
    pub fn has_number(&self, number: Number) -> bool {
        self.numbers & (1 << number as usize) != 0
    }
}

/// The time parts a line carried.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeParts {
    /// `%ts`
    pub epoch: Option<i64>,
    /// `%tu`, in nanoseconds.
    pub sub_nanos: Option<u32>,
    /// `%tl` or `%tg`.
    pub clock: Option<DateTime<Utc>>,
    /// Whether `clock` came with whole seconds only (so `%tu` adds to it).
    pub clock_whole_seconds: bool,
    /// `%tS`: transaction start, seconds and nanoseconds.
    pub start: Option<(i64, u32)>,
}

/// The values of one parsed line. Borrowed from the line and the format.
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    info: &'a FormatInfo,
    values: [Option<Value<'a>>; SLOTS],
    numbers: [Option<i64>; NUMBERS],
    headers: [Option<Value<'a>>; MAX_HEADERS],
    time: TimeParts,
}

impl<'a> Fields<'a> {
    /// Empty fields for a line of the format described by `info`.
    pub fn new(info: &'a FormatInfo) -> Fields<'a> {
        Fields {
            info,
            values: [None; SLOTS],
            numbers: [None; NUMBERS],
            headers: [None; MAX_HEADERS],
            time: TimeParts::default(),
        }
    }

    /// The format the line was parsed with.
    pub fn info(&self) -> &'a FormatInfo {
        self.info
    }

    /// A text value; `None` when Squid wrote `-` or the format lacks it.
    pub fn value(&self, slot: Slot) -> Option<Value<'a>> {
        self.values[slot as usize]
    }

    /// Sets a text value.
    pub fn set_value(&mut self, slot: Slot, value: Option<Value<'a>>) {
        self.values[slot as usize] = value;
    }

    /// A number; `None` when Squid wrote `-` or the format lacks it.
    pub fn number(&self, number: Number) -> Option<i64> {
        self.numbers[number as usize]
    }

    /// Sets a number.
    pub fn set_number(&mut self, number: Number, value: Option<i64>) {
        self.numbers[number as usize] = value;
    }

    /// The `index`-th request header value of [`FormatInfo::headers`].
    pub fn header_at(&self, index: usize) -> Option<Value<'a>> {
        self.headers.get(index).copied().flatten()
    }

    /// Sets the `index`-th request header value.
    pub fn set_header(&mut self, index: usize, value: Option<Value<'a>>) {
        if let Some(place) = self.headers.get_mut(index) {
            *place = value;
        }
    }

    /// The time parts of the line.
    pub fn time(&self) -> &TimeParts {
        &self.time
    }

    /// The time parts, for parsers to fill.
    pub fn time_mut(&mut self) -> &mut TimeParts {
        &mut self.time
    }

    /// The decoded value of request header `name` (case-insensitive): from a
    /// `%{name}>h` code, else from a logged block of all request headers.
    /// `None` when absent, empty or `-`.
    pub fn header(&self, name: &str) -> Option<Cow<'a, [u8]>> {
        let position = self
            .info
            .headers
            .iter()
            .position(|h| h.eq_ignore_ascii_case(name));
        if let Some(index) = position {
            return self.header_at(index).map(|v| v.bytes());
        }
        let block = self.value(Slot::RequestHeaders)?;
        header_in_block(&block.bytes(), name).map(|v| Cow::Owned(v.to_vec()))
    }

    /// When Squid logged the line, in UTC, cut to milliseconds: `%ts.%tu`,
    /// else `%tl`/`%tg` (plus `%tu`), else `%tS` plus `%tr`.
    pub fn created_at(&self) -> Option<DateTime<Utc>> {
        let time = &self.time;
        let sub = i64::from(time.sub_nanos.unwrap_or(0));
        let nanos = if let Some(epoch) = time.epoch {
            epoch.checked_mul(1_000_000_000)?.checked_add(sub)?
        } else if let Some(clock) = time.clock {
            let extra = if time.clock_whole_seconds { sub } else { 0 };
            clock.timestamp_nanos_opt()?.checked_add(extra)?
        } else {
            let (seconds, start_nanos) = time.start?;
            let latency = self.number(Number::Latency).unwrap_or(0);
            seconds
                .checked_mul(1_000_000_000)?
                .checked_add(i64::from(start_nanos))?
                .checked_add(latency.checked_mul(1_000_000)?)?
        };
        let millis = nanos.div_euclid(1_000_000);
        DateTime::from_timestamp_millis(millis)
    }
}

/// Finds `name: value` in a block of `Name: value` lines (CRLF or LF).
fn header_in_block<'b>(block: &'b [u8], name: &str) -> Option<&'b [u8]> {
    block.split(|b| *b == b'\n').find_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let colon = line.iter().position(|b| *b == b':')?;
        let (key, rest) = line.split_at(colon);
        if !key.eq_ignore_ascii_case(name.as_bytes()) {
            return None;
        }
        let value = rest[1..].trim_ascii();
        (!value.is_empty() && value != b"-").then_some(value)
    })
}

/// A line that does not match its format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The text at `column` is not what the format expects there.
    #[error("column {column}: expected {expected}, found {found}")]
    Mismatch {
        /// 1-based byte column.
        column: usize,
        /// What the format expects, e.g. "a number".
        expected: String,
        /// What is there, quoted, or "end of line".
        found: String,
        /// The format field being read, e.g. "field 4 `%Ss` (Squid result code)".
        field: Option<String>,
    },
    /// The line is longer than the configured limit.
    #[error("line is {len} bytes, over the limit of {limit} (limits.max_line_bytes)")]
    TooLong {
        /// The line's length in bytes.
        len: usize,
        /// The limit.
        limit: usize,
        /// The first bytes of the line, for the report.
        head: Vec<u8>,
    },
}

impl ParseError {
    /// A mismatch at byte `pos` (0-based) of `line`.
    pub fn mismatch(
        line: &[u8],
        pos: usize,
        expected: impl Into<String>,
        field: Option<String>,
    ) -> ParseError {
        ParseError::Mismatch {
            column: pos + 1,
            expected: expected.into(),
            found: describe_found(line, pos),
            field,
        }
    }

    /// 1-based byte column of the problem (1 for an over-long line).
    pub fn column(&self) -> usize {
        match self {
            ParseError::Mismatch { column, .. } => *column,
            ParseError::TooLong { .. } => 1,
        }
    }

    /// The format field that was being read, when known.
    pub fn field(&self) -> Option<&str> {
        match self {
            ParseError::Mismatch { field, .. } => field.as_deref(),
            ParseError::TooLong { .. } => None,
        }
    }
}

/// What an overflowing number should have been, naming the format field
/// (`field 5 `%<st` (reply size)`) so that the plain message says which one.
pub(crate) fn overflow_expected(field: Option<&str>) -> String {
    match field {
        Some(field) => format!("a number that fits in 64 bits in {field}"),
        None => "a number that fits in 64 bits".to_string(),
    }
}

/// Most characters of the offending text quoted in an error.
const FOUND_CHARS: usize = 16;

/// Quotes what is at `pos`: up to [`FOUND_CHARS`] characters, or "end of line".
pub fn describe_found(line: &[u8], pos: usize) -> String {
    let Some(rest) = line.get(pos..).filter(|r| !r.is_empty()) else {
        return "end of line".into();
    };
    let text = decode::text(&rest[..rest.len().min(FOUND_CHARS * 4)]);
    let mut shown: String = text.chars().take(FOUND_CHARS).collect();
    if shown.len() < text.len() || rest.len() > FOUND_CHARS * 4 {
        shown.push('…');
    }
    format!("{shown:?}")
}

/// A format that cannot be used, worded for an operator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// `format = NAME` names no built-in format.
    #[error(
        "format {0:?} is not a built-in format; use one of squid, common, combined, \
         referrer, useragent, or give the specification with `logformat`"
    )]
    UnknownBuiltin(String),
    /// The specification has no codes at all.
    #[error("logformat {0:?} holds no % codes, so it cannot describe a log line")]
    NoCodes(String),
    /// A squid.conf (or a file it includes) cannot be read.
    #[error("squid.conf {path}: {reason}")]
    ConfRead {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A squid.conf line that cannot be understood.
    #[error("{path}:{line}: {reason}")]
    ConfSyntax {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// No `access_log` line of the squid.conf writes to the source's path.
    #[error("{conf}: no access_log line writes to {path}; its access_log files are: {candidates}")]
    NoAccessLog {
        /// The squid.conf.
        conf: PathBuf,
        /// The source's path.
        path: PathBuf,
        /// The paths the squid.conf does log to.
        candidates: String,
    },
    /// The `access_log` line names a format the squid.conf does not define.
    #[error("{conf}: access_log for {path} uses logformat {name:?}, which is not defined")]
    UndefinedFormat {
        /// The squid.conf.
        conf: PathBuf,
        /// The source's path.
        path: PathBuf,
        /// The missing name.
        name: String,
    },
}

/// Which parser a format uses.
#[derive(Debug, Clone)]
enum Kind {
    Builtin(builtin::Builtin),
    Custom(custom::Compiled),
}

/// A compiled log format: turns lines into [`Fields`].
#[derive(Debug, Clone)]
pub struct LineFormat {
    kind: Kind,
    info: FormatInfo,
    warnings: Vec<FormatWarning>,
    max_line_bytes: usize,
}

impl LineFormat {
    /// A built-in format: `squid`, `common`, `combined`, `referrer` or `useragent`.
    pub fn builtin(name: &str) -> Result<LineFormat, FormatError> {
        let builtin = builtin::Builtin::from_name(name)
            .ok_or_else(|| FormatError::UnknownBuiltin(name.to_string()))?;
        Ok(LineFormat {
            info: builtin.info(),
            kind: Kind::Builtin(builtin),
            warnings: Vec::new(),
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
        })
    }

    /// A format from a logformat specification (the text after
    /// `logformat NAME`). Unknown codes become opaque fields and warnings.
    pub fn logformat(spec: &str) -> Result<LineFormat, FormatError> {
        let (compiled, info, warnings) = custom::Compiled::new(spec)?;
        Ok(LineFormat {
            kind: Kind::Custom(compiled),
            info,
            warnings,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
        })
    }

    /// The same format with a different line-length limit.
    pub fn with_max_line_bytes(mut self, limit: usize) -> LineFormat {
        self.max_line_bytes = limit;
        self
    }

    /// What the format knows about itself.
    pub fn info(&self) -> &FormatInfo {
        &self.info
    }

    /// What the compiler noticed about the specification.
    pub fn warnings(&self) -> &[FormatWarning] {
        &self.warnings
    }

    /// Parses one line, given without its newline.
    pub fn parse<'a>(&'a self, line: &'a [u8]) -> Result<Fields<'a>, ParseError> {
        if line.len() > self.max_line_bytes {
            return Err(ParseError::TooLong {
                len: line.len(),
                limit: self.max_line_bytes,
                head: line[..TOO_LONG_HEAD_BYTES.min(line.len())].to_vec(),
            });
        }
        match &self.kind {
            Kind::Builtin(builtin) => builtin.parse(line, &self.info),
            Kind::Custom(compiled) => compiled.parse(line, &self.info),
        }
    }
}

/// The format of a source: a built-in, a specification, or the `access_log`
/// line of a squid.conf that writes to `log_path`. Warnings are logged.
pub fn load(spec: &FormatSpec, log_path: &Path) -> Result<LineFormat, FormatError> {
    let format = match spec {
        FormatSpec::Builtin(name) => LineFormat::builtin(name)?,
        FormatSpec::Logformat(text) => LineFormat::logformat(text)?,
        FormatSpec::SquidConf(conf) => squid_conf::format_for(conf, log_path)?,
    };
    for warning in format.warnings() {
        tracing::warn!(path = %log_path.display(), %warning, "log format");
    }
    Ok(format)
}
