//! Line parser for a compiled logformat specification.
//!
//! [`Compiled::new`] turns the tokens of [`super::spec`] into steps: literal
//! text to match exactly, and fields, each with a lexer chosen from the code's
//! value class and effective encoding. [`Compiled::parse`] walks the steps
//! over a line. Most fields have one possible extent; where a value could end
//! in several places (free text written raw, an IPv6 address before `:`), the
//! matcher backtracks, within a fixed budget of attempts per line. The first
//! value of every field is `-` for "missing" when what follows allows it.

use memchr::memchr;

use super::clock::{DEFAULT_GMT, DEFAULT_LOCAL, Pattern};
use super::codes::Class;
use super::decode::Encoding;
use super::spec::{self, Code, Element, FormatWarning};
use super::{Fields, decode};
use super::{
    FormatError, FormatInfo, MAX_HEADERS, Number, ParseError, Slot, Value, describe_found,
    overflow_expected,
};

/// Most candidate values tried for one line before the parser gives up: a
/// well-made format needs one per field, and this bounds the time a
/// pathological format/line pair can take.
pub const MAX_ATTEMPTS: u32 = 10_000;

/// A specification compiled into matching steps.
#[derive(Debug, Clone)]
pub struct Compiled {
    steps: Vec<Step>,
}

#[derive(Debug, Clone)]
enum Step {
    Literal(Box<[u8]>),
    Field(Field),
}

#[derive(Debug, Clone)]
struct Field {
    lexer: Lexer,
    target: Target,
    encoding: Encoding,
    pad: Pad,
    /// Position in [`FormatInfo::fields`].
    index: usize,
}

/// Where width padding sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pad {
    None,
    /// Right-aligned: spaces before the value.
    Before,
    /// Left-aligned to this width: spaces after the value.
    After(usize),
}

/// How the extent of a value is found.
#[derive(Debug, Clone)]
enum Lexer {
    Int,
    Decimal,
    Ip,
    Word,
    Hex,
    Version,
    Mime,
    /// Raw text without spaces.
    Token,
    /// Pass-through or URL %-encoding: no spaces, quotes or brackets.
    Escaped,
    /// Backslash-quoted text, ended by the first unescaped `"` at the latest.
    Quoted,
    /// MIME-blob text, ended by the first `[` or `]` at the latest.
    Blob,
    /// Shell encoding: a `"…"` string or a word.
    Shell,
    /// Raw free text: anything up to what follows.
    Text,
    /// A strftime time.
    Time(Pattern),
}

impl Lexer {
    /// What the lexer expects, for error messages.
    fn expected(&self) -> &'static str {
        match self {
            Lexer::Int => "a number or `-`",
            Lexer::Decimal => "a decimal number or `-`",
            Lexer::Ip => "an IP address or `-`",
            Lexer::Word => "a code word like TCP_MISS or `-`",
            Lexer::Hex => "a hex number like 0x1a or `-`",
            Lexer::Version => "a version like 1.1 or `-`",
            Lexer::Mime => "a media type or `-`",
            Lexer::Token | Lexer::Escaped | Lexer::Shell => "a value without spaces or `-`",
            Lexer::Quoted => "a backslash-escaped value or `-`",
            Lexer::Blob => "a %-escaped value or `-`",
            Lexer::Text => "a value or `-`",
            Lexer::Time(_) => "a time in the format's strftime layout",
        }
    }

    /// Length of the longest value at the start of `text` (greedy lexers).
    fn span(&self, text: &[u8]) -> usize {
        let count = |accept: fn(u8) -> bool| text.iter().take_while(|b| accept(**b)).count();
        match self {
            Lexer::Int => {
                let sign = usize::from(text.first() == Some(&b'-'));
                let digits = text[sign..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                if digits == 0 { 0 } else { sign + digits }
            }
            Lexer::Decimal => decimal_len(text),
            Lexer::Ip => count(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.'),
            Lexer::Word => count(|b| b.is_ascii_alphanumeric() || b == b'_'),
            Lexer::Hex => count(|b| b.is_ascii_hexdigit() || b == b'x' || b == b'X'),
            Lexer::Version => count(|b| b.is_ascii_digit() || b == b'.'),
            Lexer::Mime => count(|b| b > b' ' && b != b';' && b != 0x7f),
            Lexer::Escaped => count(is_escaped_output),
            _ => count(|b| b > b' ' && b != 0x7f),
        }
    }
}

/// `-?digits(.digits)?`
fn decimal_len(text: &[u8]) -> usize {
    let sign = usize::from(text.first() == Some(&b'-'));
    let whole = text[sign..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    if whole == 0 {
        return 0;
    }
    let end = sign + whole;
    if text.get(end) != Some(&b'.') {
        return end;
    }
    let fraction = text[end + 1..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    if fraction == 0 {
        end
    } else {
        end + 1 + fraction
    }
}

/// Bytes that Squid's %-encodings leave as they are (plus `%` itself).
fn is_escaped_output(byte: u8) -> bool {
    (0x21..0x7f).contains(&byte) && !b"<>\"#{}|\\^~[]`'".contains(&byte)
}

/// Where a value goes in [`Fields`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Ignore,
    Value(Slot),
    Number(Number),
    Header(usize),
    Epoch,
    SubSecond(u32),
    Start,
    Clock,
}

impl Compiled {
    /// Compiles `spec`; returns the parser, what it logs, and warnings.
    pub fn new(spec: &str) -> Result<(Compiled, FormatInfo, Vec<FormatWarning>), FormatError> {
        let (elements, mut warnings) = spec::tokenize(spec);
        let mut info = FormatInfo {
            name: "logformat".into(),
            spec: Some(spec.to_string()),
            ..FormatInfo::default()
        };
        let mut steps = Vec::with_capacity(elements.len());
        for element in elements {
            match element {
                Element::Literal(text) => steps.push(Step::Literal(text.into_boxed_slice())),
                Element::Code(code) => steps.push(Step::Field(field(&code, &mut info))),
            }
        }
        if info.fields.is_empty() {
            return Err(FormatError::NoCodes(spec.to_string()));
        }
        if !has_time(&steps) {
            warnings.push(FormatWarning::NoTime);
        }
        Ok((Compiled { steps }, info, warnings))
    }

    /// Parses `line` into fields.
    pub fn parse<'a>(
        &'a self,
        line: &'a [u8],
        info: &'a FormatInfo,
    ) -> Result<Fields<'a>, ParseError> {
        let mut run = Run {
            line,
            fields: Fields::new(info),
            failure: Failure::default(),
            failed: false,
            budget: MAX_ATTEMPTS,
        };
        if run.step(self, 0, 0) {
            Ok(run.fields)
        } else {
            Err(self.error(line, info, &run))
        }
    }

    /// Whether the step at `index` can start at `pos` (a cheap pre-check).
    fn fits(&self, index: usize, line: &[u8], pos: usize) -> bool {
        match self.steps.get(index) {
            None => pos == line.len(),
            Some(Step::Literal(text)) => line.get(pos..).is_some_and(|r| r.starts_with(text)),
            Some(Step::Field(_)) => pos <= line.len(),
        }
    }

    fn error(&self, line: &[u8], info: &FormatInfo, run: &Run<'_>) -> ParseError {
        let failure = run.failure;
        let expected = match failure.expect {
            Expect::End => "end of line".to_string(),
            Expect::Literal => match self.steps.get(failure.step) {
                Some(Step::Literal(text)) => format!("{:?}", decode::text(text)),
                _ => "literal text".to_string(),
            },
            Expect::Value => match self.steps.get(failure.step) {
                Some(Step::Field(field)) => field.lexer.expected().to_string(),
                _ => "a value".to_string(),
            },
            Expect::Overflow => overflow_expected(self.field_name(failure.step, info).as_deref()),
            Expect::Padding => "padding spaces".to_string(),
        };
        let expected = if run.budget == 0 {
            format!("{expected} (gave up after {MAX_ATTEMPTS} ways to split the line)")
        } else {
            expected
        };
        let field = self.field_name(failure.step, info);
        ParseError::Mismatch {
            column: failure.column + 1,
            expected,
            found: describe_found(line, failure.column),
            field,
        }
    }

    /// Names the format field of step `index` for messages.
    fn field_name(&self, index: usize, info: &FormatInfo) -> Option<String> {
        match self.steps.get(index) {
            Some(Step::Field(field)) => info.fields.get(field.index).cloned(),
            Some(Step::Literal(_)) | None => {
                let previous = self.steps[..index.min(self.steps.len())]
                    .iter()
                    .rev()
                    .find_map(|s| match s {
                        Step::Field(f) => info.fields.get(f.index),
                        Step::Literal(_) => None,
                    });
                let place = if index >= self.steps.len() {
                    "end of line"
                } else {
                    "literal text"
                };
                Some(match previous {
                    Some(name) => format!("{place} after {name}"),
                    None => format!("{place} at the start of the format"),
                })
            }
        }
    }
}

fn has_time(steps: &[Step]) -> bool {
    steps.iter().any(|s| {
        matches!(s, Step::Field(f) if matches!(f.target, Target::Epoch | Target::Clock
            | Target::Start))
    })
}

/// Builds the field for `code`, registering what it logs in `info`.
fn field(code: &Code, info: &mut FormatInfo) -> Field {
    let index = info.fields.len();
    info.fields
        .push(format!("field {} {}", index + 1, code.describe()));
    let lexer = lexer(code);
    let target = target(code, &lexer, info);
    match target {
        Target::Value(slot) => info.slots |= 1 << slot as usize,
        Target::Number(number) => info.numbers |= 1 << number as usize,
        _ => {}
    }
    let pad = match code.width_min {
        Some(width) if width > 0 && code.left_align => Pad::After(width),
        Some(width) if width > 0 => Pad::Before,
        _ => Pad::None,
    };
    Field {
        lexer,
        target,
        encoding: code.encoding,
        pad,
        index,
    }
}

fn lexer(code: &Code) -> Lexer {
    let class = code.info.map_or(Class::Token, |i| i.class);
    match class {
        Class::Int | Class::EpochSeconds | Class::SubSecond => Lexer::Int,
        Class::Millis if code.width_max.is_some() => Lexer::Decimal,
        Class::Millis => Lexer::Int,
        Class::StartTime => Lexer::Decimal,
        Class::LocalTime => Lexer::Time(Pattern::new(
            code.arg.as_deref().unwrap_or(DEFAULT_LOCAL),
            false,
        )),
        Class::GmtTime => Lexer::Time(Pattern::new(
            code.arg.as_deref().unwrap_or(DEFAULT_GMT),
            true,
        )),
        Class::Ip => Lexer::Ip,
        Class::Word => Lexer::Word,
        Class::Hex => Lexer::Hex,
        Class::Version => Lexer::Version,
        Class::Mime => Lexer::Mime,
        Class::Token | Class::Text => match code.encoding {
            Encoding::Raw if class == Class::Text => Lexer::Text,
            Encoding::Raw => Lexer::Token,
            Encoding::PassThrough | Encoding::Url => Lexer::Escaped,
            Encoding::Quoted => Lexer::Quoted,
            Encoding::MimeBlob => Lexer::Blob,
            Encoding::Shell => Lexer::Shell,
        },
    }
}

fn target(code: &Code, lexer: &Lexer, info: &mut FormatInfo) -> Target {
    let value = Target::Value;
    match code.name.as_str() {
        ">a" | "SRC" => value(Slot::Client),
        "Ss" => value(Slot::ResultCode),
        "Sh" => value(Slot::Hierarchy),
        "<a" => value(Slot::Server),
        "rm" => value(Slot::Method),
        ">rm" | "METHOD" => value(Slot::MethodReceived),
        "ru" => value(Slot::Url),
        ">ru" | "URI" => value(Slot::UrlReceived),
        "un" => value(Slot::User),
        "ul" | "LOGIN" => value(Slot::UserLogin),
        "ue" | "EXT_USER" => value(Slot::UserExternal),
        "ui" | "IDENT" => value(Slot::UserIdent),
        "mt" => value(Slot::ContentType),
        ">h" => header_target(code, info),
        ">Hs" => Target::Number(Number::Status),
        ">st" => Target::Number(Number::RequestBytes),
        "<st" => Target::Number(Number::ReplyBytes),
        "tr" => Target::Number(Number::Latency),
        "ts" => Target::Epoch,
        "tu" => Target::SubSecond(code.width_max.map_or(3, |p| p.min(9) as u32)),
        "tS" => Target::Start,
        "tl" | "tg" => match lexer {
            Lexer::Time(pattern) if pattern.is_complete() => Target::Clock,
            _ => Target::Ignore,
        },
        _ => Target::Ignore,
    }
}

fn header_target(code: &Code, info: &mut FormatInfo) -> Target {
    let Some(name) = &code.arg else {
        return Target::Value(Slot::RequestHeaders);
    };
    if info.headers.len() >= MAX_HEADERS {
        return Target::Ignore;
    }
    info.headers.push(name.clone());
    Target::Header(info.headers.len() - 1)
}

/// What the furthest failed attempt expected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Expect {
    #[default]
    End,
    Literal,
    Value,
    Overflow,
    Padding,
}

/// The furthest point a line got to, for the error report.
#[derive(Debug, Clone, Copy, Default)]
struct Failure {
    /// How far the attempt got (ranks failures).
    reach: usize,
    /// Where to point the caret.
    column: usize,
    step: usize,
    expect: Expect,
}

/// The state of matching one line.
struct Run<'a> {
    line: &'a [u8],
    fields: Fields<'a>,
    failure: Failure,
    failed: bool,
    budget: u32,
}

impl<'a> Run<'a> {
    fn fail(&mut self, column: usize, reach: usize, step: usize, expect: Expect) {
        if reach > self.failure.reach || !self.failed {
            self.failed = true;
            self.failure = Failure {
                reach,
                column,
                step,
                expect,
            };
        }
    }

    fn step(&mut self, compiled: &'a Compiled, index: usize, pos: usize) -> bool {
        match compiled.steps.get(index) {
            None if pos == self.line.len() => true,
            None => {
                self.fail(pos, pos, index, Expect::End);
                false
            }
            Some(Step::Literal(text)) => {
                if self.line[pos..].starts_with(text) {
                    self.step(compiled, index + 1, pos + text.len())
                } else {
                    self.fail(pos, pos, index, Expect::Literal);
                    false
                }
            }
            Some(Step::Field(field)) => self.field(compiled, index, field, pos),
        }
    }

    fn field(
        &mut self,
        compiled: &'a Compiled,
        index: usize,
        field: &'a Field,
        pos: usize,
    ) -> bool {
        let line = self.line;
        let start = match field.pad {
            Pad::Before => pos + line[pos..].iter().take_while(|b| **b == b' ').count(),
            _ => pos,
        };
        if line.get(start) == Some(&b'-') && compiled.fits(index + 1, line, start + 1) {
            self.clear(field.target);
            if self.step(compiled, index + 1, start + 1) {
                return true;
            }
        }
        match &field.lexer {
            Lexer::Time(pattern) => match pattern.read(&line[start..]) {
                Some((time, used)) => {
                    let parts = self.fields.time_mut();
                    parts.clock = Some(time);
                    parts.clock_whole_seconds = true;
                    self.accept(compiled, index, field, start, start + used)
                }
                None => {
                    self.fail(start, start, index, Expect::Value);
                    false
                }
            },
            Lexer::Quoted | Lexer::Blob | Lexer::Text => self.lazy(compiled, index, field, start),
            Lexer::Shell if line.get(start) == Some(&b'"') => {
                match closing_quote(&line[start + 1..]) {
                    Some(len) => self.accept(compiled, index, field, start, start + len + 2),
                    None => {
                        self.fail(start, start, index, Expect::Value);
                        false
                    }
                }
            }
            _ => self.greedy(compiled, index, field, start),
        }
    }

    /// Tries the longest value first, then shorter ones where the next step fits.
    fn greedy(
        &mut self,
        compiled: &'a Compiled,
        index: usize,
        field: &'a Field,
        start: usize,
    ) -> bool {
        let longest = start + field.lexer.span(&self.line[start..]);
        if longest == start {
            self.fail(start, start, index, Expect::Value);
            return false;
        }
        let mut end = longest;
        while end > start {
            if self.accept(compiled, index, field, start, end) {
                return true;
            }
            if self.budget == 0 {
                return false;
            }
            end -= 1;
            while end > start && !self.next_fits(compiled, index, field, start, end) {
                end -= 1;
            }
        }
        false
    }

    /// Tries the shortest value first, up to where the encoding must end it.
    fn lazy(
        &mut self,
        compiled: &'a Compiled,
        index: usize,
        field: &'a Field,
        start: usize,
    ) -> bool {
        let line = self.line;
        let bound = start + lazy_bound(&field.lexer, &line[start..]);
        let next_byte = match compiled.steps.get(index + 1) {
            Some(Step::Literal(text)) if field.pad == Pad::None => Some(text[0]),
            _ => None,
        };
        // A quoted value cannot hold a bare `"`: when a quote follows, the
        // first unescaped one ends the value and no other end is possible.
        if field.lexer_is_quoted() && next_byte == Some(b'"') {
            if bound > start && self.accept(compiled, index, field, start, bound) {
                return true;
            }
            if bound == start {
                self.fail(start, start, index, Expect::Value);
            }
            return false;
        }
        let mut end = start;
        loop {
            end = match next_byte {
                Some(byte) => match memchr(byte, &line[(end + 1).min(bound)..bound]) {
                    Some(offset) => (end + 1).min(bound) + offset,
                    None => bound,
                },
                None => end + 1,
            };
            if end > bound || end == start {
                break;
            }
            let inside_escape = field.lexer_is_quoted() && odd_backslashes(&line[start..end]);
            if !inside_escape && self.accept(compiled, index, field, start, end) {
                return true;
            }
            if self.budget == 0 || end >= bound {
                break;
            }
        }
        if end <= start || bound == start {
            self.fail(start, start, index, Expect::Value);
        }
        false
    }

    /// Whether, after a value ending at `end`, the next step can start.
    fn next_fits(
        &self,
        compiled: &Compiled,
        index: usize,
        field: &Field,
        start: usize,
        end: usize,
    ) -> bool {
        match self.after_padding(field, start, end) {
            Some(next) => compiled.fits(index + 1, self.line, next),
            None => false,
        }
    }

    /// Where the next step starts after a value at `start..end` and its padding.
    fn after_padding(&self, field: &Field, start: usize, end: usize) -> Option<usize> {
        let Pad::After(width) = field.pad else {
            return Some(end);
        };
        let stop = end.checked_add(width.saturating_sub(end - start))?;
        let spaces = self.line.get(end..stop)?;
        spaces.iter().all(|b| *b == b' ').then_some(stop)
    }

    /// Takes `start..end` as the field's value and goes on with the next step.
    fn accept(
        &mut self,
        compiled: &'a Compiled,
        index: usize,
        field: &'a Field,
        start: usize,
        end: usize,
    ) -> bool {
        if self.budget == 0 {
            return false;
        }
        self.budget -= 1;
        let Some(next) = self.after_padding(field, start, end) else {
            self.fail(end, end, index, Expect::Padding);
            return false;
        };
        if !compiled.fits(index + 1, self.line, next) {
            let expect = match compiled.steps.get(index + 1) {
                None => Expect::End,
                _ => Expect::Literal,
            };
            self.fail(next, next, index + 1, expect);
            return false;
        }
        if !self.store(field, index, start, end) {
            return false;
        }
        self.step(compiled, index + 1, next)
    }

    /// Records a `-`: the value is missing.
    fn clear(&mut self, target: Target) {
        let fields = &mut self.fields;
        match target {
            Target::Ignore => {}
            Target::Value(slot) => fields.set_value(slot, None),
            Target::Number(number) => fields.set_number(number, None),
            Target::Header(at) => fields.set_header(at, None),
            Target::Epoch => fields.time_mut().epoch = None,
            Target::SubSecond(_) => fields.time_mut().sub_nanos = None,
            Target::Start => fields.time_mut().start = None,
            Target::Clock => fields.time_mut().clock = None,
        }
    }

    /// Stores the value at `start..end`; false (with a failure) when a number
    /// does not fit.
    fn store(&mut self, field: &Field, index: usize, start: usize, end: usize) -> bool {
        let raw = &self.line[start..end];
        let value = Value::new(raw, field.encoding);
        let fields = &mut self.fields;
        let stored = match field.target {
            Target::Ignore | Target::Clock => true,
            Target::Value(slot) => {
                fields.set_value(slot, Some(value));
                true
            }
            Target::Header(at) => {
                fields.set_header(at, Some(value));
                true
            }
            Target::Number(number) => {
                let parsed = whole_part(raw);
                fields.set_number(number, parsed);
                parsed.is_some()
            }
            Target::Epoch => {
                fields.time_mut().epoch = whole_part(raw);
                fields.time().epoch.is_some()
            }
            Target::SubSecond(precision) => {
                fields.time_mut().sub_nanos = sub_nanos(raw, precision);
                fields.time().sub_nanos.is_some()
            }
            Target::Start => {
                fields.time_mut().start = seconds_and_nanos(raw);
                fields.time().start.is_some()
            }
        };
        if !stored {
            self.fail(start, end, index, Expect::Overflow);
        }
        stored
    }
}

impl Field {
    fn lexer_is_quoted(&self) -> bool {
        matches!(self.lexer, Lexer::Quoted)
    }
}

/// Where a lazily read value must end at the latest, as a length.
fn lazy_bound(lexer: &Lexer, text: &[u8]) -> usize {
    match lexer {
        Lexer::Quoted => unescaped_quote(text).unwrap_or(text.len()),
        Lexer::Blob => text
            .iter()
            .position(|b| *b == b'[' || *b == b']')
            .unwrap_or(text.len()),
        _ => text.len(),
    }
}

/// Position of the first `"` not escaped by a backslash.
fn unescaped_quote(text: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(found) = memchr::memchr2(b'"', b'\\', &text[i.min(text.len())..]) {
        let at = i + found;
        if text[at] == b'"' {
            return Some(at);
        }
        i = at + 2;
    }
    None
}

/// Length of a shell-quoted string's inside (the text after the opening `"`).
fn closing_quote(text: &[u8]) -> Option<usize> {
    unescaped_quote(text)
}

/// Whether `text` ends inside an escape (an odd run of trailing backslashes).
fn odd_backslashes(text: &[u8]) -> bool {
    let mut i = 0;
    let mut escaped = false;
    while i < text.len() {
        if text[i] == b'\\' {
            if i + 1 == text.len() {
                escaped = true;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    escaped
}

/// The whole part of `-?digits(.digits)?`; `None` when it does not fit in i64.
pub fn whole_part(raw: &[u8]) -> Option<i64> {
    let (negative, digits) = match raw.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, raw),
    };
    let whole = digits.split(|b| *b == b'.').next().unwrap_or(digits);
    let mut value: i64 = 0;
    for digit in whole {
        if !digit.is_ascii_digit() {
            return None;
        }
        value = value
            .checked_mul(10)?
            .checked_add(i64::from(digit - b'0'))?;
    }
    Some(if negative { -value } else { value })
}

/// `%tu` in units of 10^-precision seconds, as nanoseconds.
fn sub_nanos(raw: &[u8], precision: u32) -> Option<u32> {
    let value = u64::try_from(whole_part(raw)?).ok()?;
    let nanos = value.checked_mul(10u64.pow(9 - precision))?;
    u32::try_from(nanos).ok().filter(|n| *n < 1_000_000_000)
}

/// `seconds.fraction` as whole seconds and nanoseconds.
pub fn seconds_and_nanos(raw: &[u8]) -> Option<(i64, u32)> {
    let seconds = whole_part(raw)?;
    let fraction = match raw.iter().position(|b| *b == b'.') {
        Some(dot) => &raw[dot + 1..],
        None => &[],
    };
    if !fraction.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut nanos: u32 = 0;
    for place in 0..9 {
        let digit = fraction.get(place).map_or(0, |d| u32::from(d - b'0'));
        nanos = nanos * 10 + digit;
    }
    Some((seconds, nanos))
}
