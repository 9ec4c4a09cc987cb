//! Tokenizer for Squid logformat specifications.
//!
//! Splits the text after `logformat NAME` into literal runs and `%` codes the
//! way Squid 5 and 6 do, and works out each code's effective encoding with
//! Squid's literal-quote state machine (a literal `"` or `[` changes how later
//! codes are escaped). It knows nothing about log lines; [`super::custom`]
//! turns the tokens into a line parser.

use nom::bytes::complete::{tag, take_till};
use nom::character::complete::{digit0, digit1, one_of};
use nom::combinator::opt;
use nom::sequence::{delimited, preceded};
use nom::{IResult, Parser};

use super::codes::{self, CodeInfo};
use super::decode::Encoding;

/// One `%` code of a specification.
#[derive(Debug, Clone, PartialEq)]
pub struct Code {
    /// The code as written (without an absorbed trailing space), e.g. `%6tr`.
    pub text: String,
    /// 1-based byte column of the `%` in the specification.
    pub column: usize,
    /// The table entry; `None` for a code Squid 5/6 do not document.
    pub info: Option<&'static CodeInfo>,
    /// Canonical name (deprecated spellings resolved), e.g. `>Hs`.
    pub name: String,
    /// The `{…}` argument, e.g. `X-Bot-Name` or a strftime pattern.
    pub arg: Option<String>,
    /// The encoding the value is written in.
    pub encoding: Encoding,
    /// `-`: padding goes after the value.
    pub left_align: bool,
    /// `0`: numbers are zero-padded.
    pub zero: bool,
    /// Minimum width (padding).
    pub width_min: Option<usize>,
    /// Maximum width for strings, precision for times.
    pub width_max: Option<usize>,
}

impl Code {
    /// A short description for messages: `%6tr (response time)`.
    pub fn describe(&self) -> String {
        match self.info {
            Some(info) => format!("`{}` ({})", self.text, info.meaning),
            None => format!("`{}` (unknown code)", self.text),
        }
    }
}

/// A piece of a specification.
#[derive(Debug, Clone, PartialEq)]
pub enum Element {
    /// Text Squid writes as it is.
    Literal(Vec<u8>),
    /// A value.
    Code(Code),
}

/// Something about a specification worth telling the operator; never fatal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatWarning {
    /// A code that Squid 5/6 do not document; read as one opaque field.
    #[error("column {column}: unknown code `{code}`, read as one opaque field")]
    UnknownCode {
        /// The code as written.
        code: String,
        /// 1-based column in the specification.
        column: usize,
    },
    /// A deprecated spelling that Squid rewrites.
    #[error("column {column}: `{code}` is deprecated; Squid reads it as `%{replacement}`")]
    Deprecated {
        /// The code as written.
        code: String,
        /// The current spelling.
        replacement: String,
        /// 1-based column in the specification.
        column: usize,
    },
    /// A `%` that starts no code; taken as a literal `%`.
    #[error("column {column}: `%` starts no code; taken as a literal `%`")]
    StrayPercent {
        /// 1-based column in the specification.
        column: usize,
    },
    /// The format logs no usable time (`%ts`, `%tl`, `%tg` or `%tS`), so its
    /// lines cannot become records.
    #[error("the format logs no time (%ts, %tl, %tg or %tS); its lines cannot be stored")]
    NoTime,
    /// A header code without an argument, which makes Squid append request
    /// and reply headers to every built-in format's line.
    #[error(
        "column {column}: `{code}` without a header name turns on Squid's log_mime_hdrs \
         for all built-in formats"
    )]
    EnablesMimeHeaders {
        /// The code as written.
        code: String,
        /// 1-based column in the specification.
        column: usize,
    },
}

/// Which encoding literal text has switched on: a literal `"` toggles
/// backslash quoting, a literal `[` starts MIME-blob escaping until `]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QuoteState {
    None,
    Quotes,
    MimeBlob,
}

impl QuoteState {
    fn after(self, byte: u8) -> QuoteState {
        match (self, byte) {
            (QuoteState::None, b'"') => QuoteState::Quotes,
            (QuoteState::Quotes, b'"') => QuoteState::None,
            (QuoteState::None, b'[') => QuoteState::MimeBlob,
            (QuoteState::MimeBlob, b']') => QuoteState::None,
            (state, _) => state,
        }
    }
}

/// The modifiers between `%` and the code name.
#[derive(Debug, Default)]
struct Modifiers {
    encoding: Option<Encoding>,
    left_align: bool,
    zero: bool,
    width_min: Option<usize>,
    width_max: Option<usize>,
    arg: Option<Vec<u8>>,
}

fn encoding_char(c: char) -> Encoding {
    match c {
        '"' => Encoding::Quoted,
        '\'' => Encoding::Raw,
        '[' => Encoding::MimeBlob,
        '#' => Encoding::Url,
        _ => Encoding::Shell,
    }
}

fn number(digits: &[u8]) -> usize {
    digits.iter().fold(0usize, |n, d| {
        n.saturating_mul(10).saturating_add(usize::from(d - b'0'))
    })
}

/// `[enc] ['-'] ['0'] [min] ['.' [max]] ['{' arg '}']`
fn modifiers(input: &[u8]) -> IResult<&[u8], Modifiers> {
    let (input, encoding) = opt(one_of("\"'[#/")).parse(input)?;
    let (input, left) = opt(tag("-")).parse(input)?;
    let (input, zero) = opt(tag("0")).parse(input)?;
    let (input, min) = opt(digit1).parse(input)?;
    let (input, max) = opt(preceded(tag("."), digit0)).parse(input)?;
    let (input, arg) = opt(argument).parse(input)?;
    let modifiers = Modifiers {
        encoding: encoding.map(encoding_char),
        left_align: left.is_some(),
        zero: zero.is_some(),
        width_min: min.map(number),
        width_max: max.filter(|d: &&[u8]| !d.is_empty()).map(number),
        arg: arg.map(<[u8]>::to_vec),
    };
    Ok((input, modifiers))
}

fn argument(input: &[u8]) -> IResult<&[u8], &[u8]> {
    delimited(tag("{"), take_till(|b| b == b'}'), tag("}")).parse(input)
}

/// Length of a name Squid does not know: `[<>]*word(::[<>]*word)*`.
fn unknown_name_len(text: &[u8]) -> usize {
    let mut i = 0;
    loop {
        while matches!(text.get(i), Some(b'<' | b'>')) {
            i += 1;
        }
        let start = i;
        while text
            .get(i)
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
        {
            i += 1;
        }
        if i == start || !text[i..].starts_with(b"::") {
            return i;
        }
        i += 2;
    }
}

/// Splits `spec` into elements, with the warnings it deserves.
pub fn tokenize(spec: &str) -> (Vec<Element>, Vec<FormatWarning>) {
    let mut tokenizer = Tokenizer {
        spec: spec.as_bytes(),
        pos: 0,
        state: QuoteState::None,
        elements: Vec::new(),
        literal: Vec::new(),
        warnings: Vec::new(),
    };
    tokenizer.run();
    (tokenizer.elements, tokenizer.warnings)
}

struct Tokenizer<'s> {
    spec: &'s [u8],
    pos: usize,
    state: QuoteState,
    elements: Vec<Element>,
    literal: Vec<u8>,
    warnings: Vec<FormatWarning>,
}

impl Tokenizer<'_> {
    fn run(&mut self) {
        while self.pos < self.spec.len() {
            let byte = self.spec[self.pos];
            if byte == b'%' {
                self.code();
            } else {
                self.literal.push(byte);
                self.state = self.state.after(byte);
                self.pos += 1;
            }
        }
        self.flush_literal();
    }

    fn flush_literal(&mut self) {
        if !self.literal.is_empty() {
            let text = std::mem::take(&mut self.literal);
            self.elements.push(Element::Literal(text));
        }
    }

    /// Reads the code at `self.pos` (a `%`).
    fn code(&mut self) {
        let start = self.pos;
        let after_percent = &self.spec[start + 1..];
        if after_percent.first() == Some(&b'%') {
            self.literal.push(b'%');
            self.pos += 2;
            return;
        }
        let Ok((rest, mut modifiers)) = modifiers(after_percent) else {
            self.stray_percent(start);
            return;
        };
        let Some((info, name, used)) = self.name(rest) else {
            self.stray_percent(start);
            return;
        };
        let mut rest = &rest[used..];
        if modifiers.arg.is_none()
            && let Ok((after, arg)) = argument(rest)
        {
            modifiers.arg = Some(arg.to_vec());
            rest = after;
        }
        let end = self.spec.len() - rest.len();
        let text = String::from_utf8_lossy(&self.spec[start..end]).into_owned();
        let deprecated = info.is_some() && name != info.map_or("", |i| i.name);
        let code = self.build(text, start + 1, info, name, modifiers);
        self.note_warnings(&code, deprecated);
        self.flush_literal();
        self.elements.push(Element::Code(code));
        self.pos = end;
        if rest.first() == Some(&b' ') {
            self.literal.push(b' ');
            self.pos += 1;
        }
    }

    fn stray_percent(&mut self, start: usize) {
        self.warnings
            .push(FormatWarning::StrayPercent { column: start + 1 });
        self.literal.push(b'%');
        self.pos = start + 1;
    }

    /// The code name at the start of `rest`: a table entry or an unknown name.
    fn name(&self, rest: &[u8]) -> Option<(Option<&'static CodeInfo>, String, usize)> {
        if let Some((info, used)) = codes::lookup(rest) {
            let canonical = info.alias_of.unwrap_or(info.name);
            let resolved = codes::by_name(canonical).unwrap_or(info);
            return Some((Some(resolved), info.name.to_string(), used));
        }
        let len = unknown_name_len(rest);
        (len > 0).then(|| {
            (
                None,
                String::from_utf8_lossy(&rest[..len]).into_owned(),
                len,
            )
        })
    }

    fn build(
        &self,
        text: String,
        column: usize,
        info: Option<&'static CodeInfo>,
        written: String,
        modifiers: Modifiers,
    ) -> Code {
        let pass_through = info.is_some_and(|i| i.pass_through);
        let encoding = modifiers.encoding.unwrap_or(match self.state {
            QuoteState::Quotes => Encoding::Quoted,
            QuoteState::MimeBlob => Encoding::MimeBlob,
            QuoteState::None if pass_through => Encoding::PassThrough,
            QuoteState::None => Encoding::Raw,
        });
        let mut arg = modifiers
            .arg
            .map(|a| String::from_utf8_lossy(&a).into_owned());
        if written == "rG" {
            arg = Some("urlgroup".into());
        }
        Code {
            text,
            column,
            info,
            name: info.map_or(written, |i| i.name.to_string()),
            arg,
            encoding,
            left_align: modifiers.left_align,
            zero: modifiers.zero,
            width_min: modifiers.width_min,
            width_max: modifiers.width_max,
        }
    }

    fn note_warnings(&mut self, code: &Code, deprecated: bool) {
        let column = code.column;
        let Some(info) = code.info else {
            let code = code.text.clone();
            self.warnings
                .push(FormatWarning::UnknownCode { code, column });
            return;
        };
        if deprecated {
            self.warnings.push(FormatWarning::Deprecated {
                code: code.text.clone(),
                replacement: info.name.to_string(),
                column,
            });
        }
        if code.arg.is_none() && is_header_list(info.name) {
            self.warnings.push(FormatWarning::EnablesMimeHeaders {
                code: code.text.clone(),
                column,
            });
        }
    }
}

/// Codes that, without an argument, log every header (and turn on log_mime_hdrs).
fn is_header_list(name: &str) -> bool {
    matches!(
        name,
        ">h" | "<h" | ">ha" | "icap::>h" | "icap::<h" | "adapt::<last_h" | "proxy_protocol::>h"
    ) || name == "note"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes_of(spec: &str) -> Vec<Code> {
        tokenize(spec)
            .0
            .into_iter()
            .filter_map(|e| match e {
                Element::Code(code) => Some(code),
                Element::Literal(_) => None,
            })
            .collect()
    }

    fn encodings(spec: &str) -> Vec<(String, Encoding)> {
        codes_of(spec)
            .into_iter()
            .map(|c| (c.name, c.encoding))
            .collect()
    }

    #[test]
    fn documented_combined_follows_the_quote_state_machine() {
        use Encoding::*;
        let spec = "%>a %[ui %[un [%tl] \"%rm %ru HTTP/%rv\" %>Hs %<st \"%{Referer}>h\" \
                    \"%{User-Agent}>h\" %Ss:%Sh";
        let expected = [
            (">a", Raw),
            ("ui", MimeBlob),
            ("un", MimeBlob),
            ("tl", MimeBlob),
            ("rm", Quoted),
            ("ru", Quoted),
            ("rv", Quoted),
            (">Hs", Raw),
            ("<st", Raw),
            (">h", Quoted),
            (">h", Quoted),
            ("Ss", Raw),
            ("Sh", Raw),
        ];
        let got = encodings(spec);
        let want: Vec<(String, Encoding)> =
            expected.iter().map(|(n, e)| (n.to_string(), *e)).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn unquoted_header_gets_pass_through_encoding() {
        assert_eq!(
            encodings("%{X-Bot-Name}>h")[0],
            (">h".into(), Encoding::PassThrough)
        );
    }

    #[test]
    fn explicit_encoding_overrides_and_keeps_the_state() {
        let got = encodings("\"%'un %rm\" %/ul %#ul");
        assert_eq!(got[0].1, Encoding::Raw);
        assert_eq!(got[1].1, Encoding::Quoted);
        assert_eq!(got[2].1, Encoding::Shell);
        assert_eq!(got[3].1, Encoding::Url);
    }

    #[test]
    fn quote_inside_brackets_does_not_change_state() {
        let got = encodings("[\"%un] %un");
        assert_eq!(got[0].1, Encoding::MimeBlob);
        assert_eq!(got[1].1, Encoding::Raw);
    }

    #[test]
    fn width_precision_and_alignment_are_read() {
        let code = &codes_of("%-015.3tr")[0];
        assert!(code.left_align && code.zero);
        assert_eq!((code.width_min, code.width_max), (Some(15), Some(3)));
        let code = &codes_of("%03tu")[0];
        assert!(code.zero);
        assert_eq!(code.width_min, Some(3));
        let code = &codes_of("%6.tr")[0];
        assert_eq!((code.width_min, code.width_max), (Some(6), None));
    }

    #[test]
    fn argument_before_or_after_the_name() {
        assert_eq!(
            codes_of("%{X-Bot-Name}>h")[0].arg.as_deref(),
            Some("X-Bot-Name")
        );
        assert_eq!(
            codes_of("%>h{User-Agent}")[0].arg.as_deref(),
            Some("User-Agent")
        );
        assert_eq!(
            codes_of("%{%Y-%m-%d %H}tg")[0].arg.as_deref(),
            Some("%Y-%m-%d %H")
        );
    }

    #[test]
    fn double_percent_is_literal_and_keeps_the_state() {
        let (elements, warnings) = tokenize("a%%b \"%%\" %un");
        assert!(warnings.is_empty());
        assert_eq!(elements[0], Element::Literal(b"a%b \"%\" ".to_vec()));
        assert_eq!(encodings("%%\"%un\"")[0].1, Encoding::Quoted);
    }

    #[test]
    fn one_trailing_space_is_absorbed_as_literal() {
        let (elements, _) = tokenize("%ts  %tr");
        assert_eq!(elements[1], Element::Literal(b"  ".to_vec()));
    }

    #[test]
    fn unknown_code_is_a_field_with_a_warning() {
        let (elements, warnings) = tokenize("%byte{65} %zz");
        let names: Vec<String> = elements
            .iter()
            .filter_map(|e| match e {
                Element::Code(c) => Some(c.name.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(names, ["byte", "zz"]);
        assert_eq!(warnings.len(), 2);
        assert!(warnings[0].to_string().contains("byte"), "{}", warnings[0]);
    }

    #[test]
    fn lone_percent_is_literal_with_a_warning() {
        let (elements, warnings) = tokenize("100% ");
        assert_eq!(elements, vec![Element::Literal(b"100% ".to_vec())]);
        assert_eq!(warnings, vec![FormatWarning::StrayPercent { column: 4 }]);
    }

    #[test]
    fn deprecated_spellings_resolve_with_a_warning() {
        let (elements, warnings) = tokenize("%Hs %oa %rG");
        let names: Vec<(String, Option<String>)> = elements
            .iter()
            .filter_map(|e| match e {
                Element::Code(c) => Some((c.name.clone(), c.arg.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(names[0].0, ">Hs");
        assert_eq!(names[1].0, "<la");
        assert_eq!(names[2], ("note".into(), Some("urlgroup".into())));
        assert_eq!(warnings.len(), 3, "{warnings:?}");
    }

    #[test]
    fn header_list_without_name_warns_about_mime_headers() {
        let (_, warnings) = tokenize("%>h %{Host}>h");
        assert_eq!(warnings.len(), 1);
        assert!(matches!(
            warnings[0],
            FormatWarning::EnablesMimeHeaders { .. }
        ));
    }

    #[test]
    fn columns_point_at_the_percent() {
        let codes = codes_of("ab %ts");
        assert_eq!(codes[0].column, 4);
        assert_eq!(codes[0].text, "%ts");
    }
}
