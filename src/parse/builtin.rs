//! The built-in formats, read by hand-written parsers.
//!
//! Squid writes `squid`, `common`, `combined`, `referrer` and `useragent` with
//! fixed C `printf` calls, not through its logformat engine: the user name
//! may hold raw spaces, Referer and User-Agent are written without any
//! escaping, and common/combined print `NONE/0.0` and a quirky zone offset.
//! So these parsers anchor on what cannot vary and read the free-text fields
//! from both ends. A `log_mime_hdrs` block pair at the end of the line is
//! recognised, and its request headers are kept.

use std::sync::LazyLock;

use memchr::memmem;

use super::clock::{DEFAULT_LOCAL, Pattern};
use super::custom::{seconds_and_nanos, whole_part};
use super::decode::Encoding;
use super::{Fields, FormatInfo, Number, ParseError, Slot, Value, overflow_expected};

/// The local-time layout of the common, combined and useragent formats.
static HTTPD_TIME: LazyLock<Pattern> = LazyLock::new(|| Pattern::new(DEFAULT_LOCAL, false));

/// A built-in format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// `squid`, the native format.
    Squid,
    /// `common`, Apache's common log format.
    Common,
    /// `combined`: common plus Referer and User-Agent.
    Combined,
    /// `referrer`: time, client, Referer, URL.
    Referrer,
    /// `useragent`: client, time, User-Agent.
    UserAgent,
}

const NATIVE_FIELDS: &[&str] = &[
    "time (seconds.milliseconds)",
    "response time",
    "client address",
    "result code/status",
    "reply size",
    "method",
    "URL",
    "user",
    "hierarchy/server",
    "content type",
];

const COMMON_FIELDS: &[&str] = &[
    "client address",
    "ident user",
    "user",
    "[time]",
    "\"method URL protocol\"",
    "status",
    "reply size",
    "\"Referer\"",
    "\"User-Agent\"",
    "result code:hierarchy",
];

const REFERRER_FIELDS: &[&str] = &[
    "time (seconds.milliseconds)",
    "client address",
    "Referer",
    "URL",
];

const USERAGENT_FIELDS: &[&str] = &["client address", "[time]", "\"User-Agent\""];

impl Builtin {
    /// The built-in called `name`.
    pub fn from_name(name: &str) -> Option<Builtin> {
        match name {
            "squid" | "auto" => Some(Builtin::Squid),
            "common" => Some(Builtin::Common),
            "combined" => Some(Builtin::Combined),
            "referrer" => Some(Builtin::Referrer),
            "useragent" => Some(Builtin::UserAgent),
            _ => None,
        }
    }

    /// Its name in squid.conf.
    pub fn name(self) -> &'static str {
        match self {
            Builtin::Squid => "squid",
            Builtin::Common => "common",
            Builtin::Combined => "combined",
            Builtin::Referrer => "referrer",
            Builtin::UserAgent => "useragent",
        }
    }

    /// What the format logs.
    pub fn info(self) -> FormatInfo {
        let (slots, numbers, headers, fields): (&[Slot], &[Number], &[&str], &[&str]) = match self {
            Builtin::Squid => (
                &[
                    Slot::Client,
                    Slot::ResultCode,
                    Slot::Hierarchy,
                    Slot::Server,
                    Slot::Method,
                    Slot::Url,
                    Slot::User,
                    Slot::ContentType,
                ],
                &[Number::Status, Number::ReplyBytes, Number::Latency],
                &[],
                NATIVE_FIELDS,
            ),
            Builtin::Common | Builtin::Combined => (
                &[
                    Slot::Client,
                    Slot::UserIdent,
                    Slot::UserLogin,
                    Slot::Method,
                    Slot::Url,
                    Slot::ResultCode,
                    Slot::Hierarchy,
                ],
                &[Number::Status, Number::ReplyBytes],
                if self == Builtin::Combined {
                    &["Referer", "User-Agent"]
                } else {
                    &[]
                },
                COMMON_FIELDS,
            ),
            Builtin::Referrer => (
                &[Slot::Client, Slot::Url],
                &[],
                &["Referer"],
                REFERRER_FIELDS,
            ),
            Builtin::UserAgent => (&[Slot::Client], &[], &["User-Agent"], USERAGENT_FIELDS),
        };
        FormatInfo {
            name: self.name().to_string(),
            spec: None,
            headers: headers.iter().map(|h| h.to_string()).collect(),
            slots: slots.iter().fold(0, |bits, s| bits | 1 << *s as usize),
            numbers: numbers.iter().fold(0, |bits, n| bits | 1 << *n as usize),
            fields: fields
                .iter()
                .enumerate()
                .map(|(i, f)| format!("field {} {f}", i + 1))
                .collect(),
        }
    }

    /// Parses one line.
    pub fn parse<'a>(self, line: &'a [u8], info: &'a FormatInfo) -> Result<Fields<'a>, ParseError> {
        let mut cursor = Cursor {
            line,
            pos: 0,
            info,
            fields: Fields::new(info),
        };
        match self {
            Builtin::Squid => cursor.native()?,
            Builtin::Common => cursor.common(false)?,
            Builtin::Combined => cursor.common(true)?,
            Builtin::Referrer => cursor.referrer()?,
            Builtin::UserAgent => cursor.useragent()?,
        }
        Ok(cursor.fields)
    }
}

/// `None` for Squid's `-`, else the value.
fn present(raw: &[u8], encoding: Encoding) -> Option<Value<'_>> {
    (raw != b"-" && !raw.is_empty()).then(|| Value::new(raw, encoding))
}

/// Reading position in a line of a built-in format.
struct Cursor<'a> {
    line: &'a [u8],
    pos: usize,
    info: &'a FormatInfo,
    fields: Fields<'a>,
}

impl<'a> Cursor<'a> {
    fn error(&self, pos: usize, expected: &str, field: usize) -> ParseError {
        ParseError::mismatch(
            self.line,
            pos,
            expected,
            self.info.fields.get(field).cloned(),
        )
    }

    fn rest(&self) -> &'a [u8] {
        &self.line[self.pos..]
    }

    /// One or more spaces.
    fn spaces(&mut self, field: usize) -> Result<(), ParseError> {
        let count = self.rest().iter().take_while(|b| **b == b' ').count();
        if count == 0 {
            return Err(self.error(self.pos, "a space", field));
        }
        self.pos += count;
        Ok(())
    }

    /// Exactly `text`.
    fn literal(&mut self, text: &str, field: usize) -> Result<(), ParseError> {
        if !self.rest().starts_with(text.as_bytes()) {
            return Err(self.error(self.pos, &format!("{text:?}"), field));
        }
        self.pos += text.len();
        Ok(())
    }

    /// A non-empty run of bytes other than space.
    fn token(&mut self, field: usize, what: &str) -> Result<&'a [u8], ParseError> {
        let rest = self.rest();
        let len = memchr::memchr(b' ', rest).unwrap_or(rest.len());
        if len == 0 {
            return Err(self.error(self.pos, what, field));
        }
        self.pos += len;
        Ok(&rest[..len])
    }

    /// A decimal integer that fits in 64 bits.
    fn int(&mut self, field: usize) -> Result<i64, ParseError> {
        let start = self.pos;
        let token = self.token(field, "a number")?;
        number(token).ok_or_else(|| self.number_error(start, token, field))
    }

    fn number_error(&self, pos: usize, token: &[u8], field: usize) -> ParseError {
        let all_digits = token.iter().all(u8::is_ascii_digit);
        if all_digits && !token.is_empty() {
            let name = self.info.fields.get(field).cloned();
            let expected = overflow_expected(name.as_deref());
            return ParseError::mismatch(self.line, pos, expected, name);
        }
        self.error(pos, "a number", field)
    }

    /// `seconds.fraction` as the log time.
    fn epoch_time(&mut self, field: usize) -> Result<(), ParseError> {
        let start = self.pos;
        let token = self.token(field, "a time like 1709647387.123")?;
        let valid = token.iter().all(|b| b.is_ascii_digit() || *b == b'.')
            && token.first().is_some_and(u8::is_ascii_digit);
        let parts = valid.then(|| seconds_and_nanos(token)).flatten();
        let Some((seconds, nanos)) = parts else {
            return Err(self.error(start, "a time like 1709647387.123", field));
        };
        let time = self.fields.time_mut();
        time.epoch = Some(seconds);
        time.sub_nanos = Some(nanos);
        Ok(())
    }

    /// `[dd/Mon/yyyy:HH:MM:SS +zzzz]`
    fn bracketed_time(&mut self, field: usize) -> Result<(), ParseError> {
        const WHAT: &str = "a time like [05/Mar/2024:15:03:07 +0100]";
        if self.rest().first() != Some(&b'[') {
            return Err(self.error(self.pos, WHAT, field));
        }
        let Some((time, used)) = HTTPD_TIME.read(&self.rest()[1..]) else {
            return Err(self.error(self.pos + 1, WHAT, field));
        };
        self.pos += 1 + used;
        self.literal("]", field)?;
        let parts = self.fields.time_mut();
        parts.clock = Some(time);
        parts.clock_whole_seconds = true;
        Ok(())
    }

    /// `squid`: time elapsed client code/status bytes method URL user hier/server mime
    fn native(&mut self) -> Result<(), ParseError> {
        self.pos = self.rest().iter().take_while(|b| **b == b' ').count();
        self.epoch_time(0)?;
        self.spaces(1)?;
        let latency = self.int(1)?;
        self.fields.set_number(Number::Latency, Some(latency));
        self.spaces(2)?;
        let client = self.token(2, "a client address")?;
        self.fields
            .set_value(Slot::Client, present(client, Encoding::Raw));
        self.spaces(3)?;
        self.result_and_status(3)?;
        self.spaces(4)?;
        let bytes = self.int(4)?;
        self.fields.set_number(Number::ReplyBytes, Some(bytes));
        self.spaces(5)?;
        let method = self.token(5, "a method")?;
        self.fields
            .set_value(Slot::Method, present(method, Encoding::Raw));
        self.spaces(6)?;
        let url = self.token(6, "a URL")?;
        self.fields
            .set_value(Slot::Url, present(url, Encoding::Raw));
        self.spaces(7)?;
        self.native_tail()
    }

    /// `TCP_MISS/200`
    fn result_and_status(&mut self, field: usize) -> Result<(), ParseError> {
        let start = self.pos;
        let token = self.token(field, "a result code/status like TCP_MISS/200")?;
        let slash = token.iter().position(|b| *b == b'/').filter(|at| *at > 0);
        let Some(slash) = slash else {
            return Err(self.error(start, "a result code/status like TCP_MISS/200", field));
        };
        let status = number(&token[slash + 1..])
            .ok_or_else(|| self.number_error(start + slash + 1, &token[slash + 1..], field))?;
        let code = &token[..slash];
        self.fields
            .set_value(Slot::ResultCode, present(code, Encoding::Raw));
        self.fields.set_number(Number::Status, Some(status));
        Ok(())
    }

    /// `user hier/server mime`, read from the right; the user may hold spaces.
    fn native_tail(&mut self) -> Result<(), ParseError> {
        let base = self.pos;
        let rest = self.take_mime_headers(self.rest());
        let Some(last) = memchr::memrchr(b' ', rest) else {
            return Err(self.error(base + rest.len(), "a space and a content type", 9));
        };
        let mime = &rest[last + 1..];
        let head = &rest[..last];
        let Some(middle) = memchr::memrchr(b' ', head) else {
            return Err(self.error(base, "a user, a hierarchy/server and a content type", 8));
        };
        let user = &head[..middle];
        let hier = &head[middle + 1..];
        if user.is_empty() || mime.is_empty() {
            return Err(self.error(base, "a user, a hierarchy/server and a content type", 7));
        }
        let Some(slash) = hier.iter().position(|b| *b == b'/').filter(|at| *at > 0) else {
            let what = "a hierarchy/server like HIER_DIRECT/203.0.113.5";
            return Err(self.error(base + middle + 1, what, 8));
        };
        let fields = &mut self.fields;
        fields.set_value(Slot::User, present(user, Encoding::MimeBlob));
        fields.set_value(Slot::Hierarchy, present(&hier[..slash], Encoding::Raw));
        fields.set_value(Slot::Server, present(&hier[slash + 1..], Encoding::Raw));
        fields.set_value(Slot::ContentType, present(mime, Encoding::Raw));
        Ok(())
    }

    /// Strips a trailing ` [request headers] [reply headers]` (Squid's
    /// `log_mime_hdrs on`) from `rest`, keeping the request headers.
    fn take_mime_headers(&mut self, rest: &'a [u8]) -> &'a [u8] {
        let Some(body) = rest.strip_suffix(b"]") else {
            return rest;
        };
        let Some(reply_open) = memchr::memrchr(b'[', body) else {
            return rest;
        };
        let Some(before_reply) = body[..reply_open].strip_suffix(b"] ") else {
            return rest;
        };
        let Some(request_open) = memchr::memrchr(b'[', before_reply) else {
            return rest;
        };
        let Some(line_part) = before_reply[..request_open].strip_suffix(b" ") else {
            return rest;
        };
        let request = &before_reply[request_open + 1..];
        if request.contains(&b']') {
            return rest;
        }
        let value = (!request.is_empty()).then(|| Value::new(request, Encoding::MimeBlob));
        self.fields.set_value(Slot::RequestHeaders, value);
        line_part
    }

    /// `common` and `combined`.
    fn common(&mut self, combined: bool) -> Result<(), ParseError> {
        let client = self.token(0, "a client address")?;
        self.fields
            .set_value(Slot::Client, present(client, Encoding::Raw));
        self.literal(" ", 1)?;
        let ident = self.token(1, "an ident user or `-`")?;
        self.fields
            .set_value(Slot::UserIdent, present(ident, Encoding::MimeBlob));
        self.literal(" ", 2)?;
        let Some(end) = memmem::find(self.rest(), b" [") else {
            return Err(self.error(self.pos, "a user followed by \" [time]\"", 2));
        };
        let user = &self.rest()[..end];
        self.fields
            .set_value(Slot::UserLogin, present(user, Encoding::MimeBlob));
        self.pos += end + 1;
        self.bracketed_time(3)?;
        self.literal(" \"", 4)?;
        self.request_line()?;
        self.literal("\" ", 4)?;
        let status = self.int(5)?;
        self.fields.set_number(Number::Status, Some(status));
        self.literal(" ", 6)?;
        let bytes = self.int(6)?;
        self.fields.set_number(Number::ReplyBytes, Some(bytes));
        self.literal(" ", 7)?;
        self.common_tail(combined)
    }

    /// `METHOD URL PROTO/x.y` inside the quotes, all written raw.
    fn request_line(&mut self) -> Result<(), ParseError> {
        let method = self.token(4, "a method")?;
        self.fields
            .set_value(Slot::Method, present(method, Encoding::Raw));
        self.literal(" ", 4)?;
        let url = self.token(4, "a URL")?;
        self.fields
            .set_value(Slot::Url, present(url, Encoding::Raw));
        self.literal(" ", 4)?;
        let rest = self.rest();
        let len = rest
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'/' || **b == b'.')
            .count();
        if len == 0 {
            return Err(self.error(self.pos, "a protocol like HTTP/1.1", 4));
        }
        self.pos += len;
        Ok(())
    }

    /// `["Referer" "User-Agent" ]Ss:Sh`, read from the right.
    fn common_tail(&mut self, combined: bool) -> Result<(), ParseError> {
        let base = self.pos;
        let rest = self.take_mime_headers(self.rest());
        let last = memchr::memrchr(b' ', rest);
        let (head, codes) = match last {
            Some(at) if combined => (&rest[..at], &rest[at + 1..]),
            _ if combined => {
                return Err(self.error(base, "\"Referer\" \"User-Agent\" result:hierarchy", 7));
            }
            _ => (&rest[..0], rest),
        };
        if !combined && codes.contains(&b' ') {
            return Err(self.error(base, "result code:hierarchy like TCP_MISS:HIER_DIRECT", 9));
        }
        let Some(colon) = codes.iter().position(|b| *b == b':').filter(|at| *at > 0) else {
            let at = base + rest.len() - codes.len();
            return Err(self.error(at, "result code:hierarchy like TCP_MISS:HIER_DIRECT", 9));
        };
        self.fields
            .set_value(Slot::ResultCode, present(&codes[..colon], Encoding::Raw));
        self.fields
            .set_value(Slot::Hierarchy, present(&codes[colon + 1..], Encoding::Raw));
        if combined {
            self.referer_and_agent(base, head)?;
        }
        Ok(())
    }

    /// `"Referer" "User-Agent"`, both raw: split at the first `" "`.
    fn referer_and_agent(&mut self, base: usize, head: &'a [u8]) -> Result<(), ParseError> {
        let inner = head.strip_prefix(b"\"").and_then(|h| h.strip_suffix(b"\""));
        let split = inner.and_then(|i| memmem::find(i, b"\" \"").map(|at| (i, at)));
        let Some((inner, at)) = split else {
            return Err(self.error(base, "\"Referer\" \"User-Agent\"", 7));
        };
        self.fields
            .set_header(0, present(&inner[..at], Encoding::Raw));
        self.fields
            .set_header(1, present(&inner[at + 3..], Encoding::Raw));
        Ok(())
    }

    /// `referrer`: time client Referer URL (Referer raw, URL last).
    fn referrer(&mut self) -> Result<(), ParseError> {
        self.epoch_time(0)?;
        self.literal(" ", 1)?;
        let client = self.token(1, "a client address")?;
        self.fields
            .set_value(Slot::Client, present(client, Encoding::Raw));
        self.literal(" ", 2)?;
        let rest = self.rest();
        let Some(last) = memchr::memrchr(b' ', rest) else {
            return Err(self.error(self.pos + rest.len(), "a Referer and a URL", 3));
        };
        self.fields
            .set_header(0, present(&rest[..last], Encoding::Raw));
        let url = &rest[last + 1..];
        self.fields
            .set_value(Slot::Url, present(url, Encoding::Raw));
        Ok(())
    }

    /// `useragent`: client [time] "User-Agent" (raw up to the final quote).
    fn useragent(&mut self) -> Result<(), ParseError> {
        let client = self.token(0, "a client address")?;
        self.fields
            .set_value(Slot::Client, present(client, Encoding::Raw));
        self.literal(" ", 1)?;
        self.bracketed_time(1)?;
        self.literal(" \"", 2)?;
        let rest = self.rest();
        let Some(agent) = rest.strip_suffix(b"\"") else {
            return Err(self.error(self.line.len(), "a closing `\"` at the end of the line", 2));
        };
        self.fields.set_header(0, present(agent, Encoding::Raw));
        Ok(())
    }
}

/// A decimal integer (optionally negative) that fits in i64.
fn number(token: &[u8]) -> Option<i64> {
    let digits = token.strip_prefix(b"-").unwrap_or(token);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    whole_part(token)
}
