//! Round trip: random values written the way Squid writes them, for random
//! format strings, parse back to the same values.
//!
//! The writer below follows Squid's rendering rules (the dash rule, the six
//! encodings, width padding); the effective encoding of each code comes from
//! the crate's tokenizer, whose literal-quote state machine has its own
//! tests. Values are drawn only from what keeps a line unambiguous for its
//! position (a raw value cannot hold the text that follows it), since Squid
//! itself writes ambiguous lines otherwise.

use egress_audit::parse::spec::{Element, tokenize};
use egress_audit::parse::{Encoding, Fields, LineFormat, Number, Slot};
use proptest::prelude::*;

/// What a generated field logs.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Header,
    User,
    Client,
    Result,
    Status,
    Reply,
    Request,
    Latency,
    Method,
    Url,
}

const KINDS: &[Kind] = &[
    Kind::Header,
    Kind::User,
    Kind::Client,
    Kind::Result,
    Kind::Status,
    Kind::Reply,
    Kind::Request,
    Kind::Latency,
    Kind::Method,
    Kind::Url,
];

/// Literal text around a field.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Form {
    Plain,
    Quoted,
    Bracketed,
}

/// Explicit encoding modifiers a text field may carry (`None`: the state's).
const MODIFIERS: &[Option<char>] = &[None, Some('"'), Some('['), Some('#'), Some('/'), Some('\'')];

#[derive(Debug, Clone)]
struct Item {
    kind: Kind,
    form: Form,
    modifier: Option<char>,
    width: Option<(usize, bool)>,
    /// Raw material for the value; mapped onto an alphabet that suits the spot.
    seed: Vec<u16>,
    missing: bool,
}

fn item() -> impl Strategy<Value = Item> {
    (
        0..KINDS.len(),
        0..3usize,
        0..MODIFIERS.len(),
        proptest::option::of((1..12usize, any::<bool>())),
        proptest::collection::vec(any::<u16>(), 1..12),
        proptest::bool::weighted(0.15),
    )
        .prop_map(|(kind, form, modifier, width, seed, missing)| Item {
            kind: KINDS[kind],
            form: [Form::Plain, Form::Quoted, Form::Bracketed][form],
            modifier: MODIFIERS[modifier],
            width,
            seed,
            missing,
        })
}

fn is_text(kind: Kind) -> bool {
    matches!(kind, Kind::Header | Kind::User)
}

/// The format text of one item; `index` names its header.
fn spec_of(item: &Item, index: usize) -> String {
    let name = match item.kind {
        Kind::Header => format!("{{H{index}}}>h"),
        Kind::User => "un".into(),
        Kind::Client => ">a".into(),
        Kind::Result => "Ss".into(),
        Kind::Status => ">Hs".into(),
        Kind::Reply => "<st".into(),
        Kind::Request => ">st".into(),
        Kind::Latency => "tr".into(),
        Kind::Method => "rm".into(),
        Kind::Url => "ru".into(),
    };
    let modifier = if is_text(item.kind) {
        item.modifier.map(String::from).unwrap_or_default()
    } else {
        String::new()
    };
    let width = match item.width {
        Some((w, left)) if !is_text(item.kind) => format!("{}{w}", if left { "-" } else { "" }),
        _ => String::new(),
    };
    let code = format!("%{modifier}{width}{name}");
    match item.form {
        Form::Plain => code,
        Form::Quoted => format!("\"{code}\""),
        Form::Bracketed => format!("[{code}]"),
    }
}

/// Bytes a value may hold at its spot without making the line ambiguous.
fn alphabet(kind: Kind, encoding: Encoding, form: Form) -> Vec<Vec<u8>> {
    let symbols: &[&str] = match kind {
        Kind::Client => return vec![],
        Kind::Result => &["TCP_", "MISS", "HIT", "_", "NONE", "DENIED"],
        Kind::Method => &["G", "E", "T", "P", "O", "S", "-", "X"],
        Kind::Url => &[
            "h", "t", "p", ":", "/", "x", ".", "?", "=", "&", "%2", "é", "\"", "~",
        ],
        _ => &[
            "a", "B", "z", "0", "7", " ", "\"", "\\", "%", "[", "]", "|", "\t", "ü", "€", "-", "_",
            ":", "/", "'", "{", "}",
        ],
    };
    let allowed = |s: &str| -> bool {
        let has = |c: char| s.contains(c);
        match (kind, encoding, form) {
            (Kind::Result | Kind::Method | Kind::Url, _, _) => !(form != Form::Plain && has('"')),
            (_, Encoding::PassThrough, _) => !has('%'),
            (_, Encoding::Url, _) => true,
            (_, Encoding::Quoted, Form::Quoted) => true,
            (_, Encoding::Quoted, _) => !has(' ') && !has(']'),
            (_, Encoding::MimeBlob, Form::Bracketed) => true,
            (_, Encoding::MimeBlob, Form::Quoted) => !has(' ') && !has('"'),
            (_, Encoding::MimeBlob, Form::Plain) => !has(' '),
            (_, Encoding::Shell, _) => !has('\t'),
            (_, Encoding::Raw, _) => s.bytes().all(|b| b > b' ' && !b"\"[]|".contains(&b)),
        }
    };
    symbols
        .iter()
        .filter(|s| allowed(s))
        .map(|s| s.as_bytes().to_vec())
        .collect()
}

/// The value an item logs, or `None` for a missing one.
fn value_of(item: &Item, encoding: Encoding) -> Option<Vec<u8>> {
    if item.missing && !matches!(item.kind, Kind::Client | Kind::Result) {
        return None;
    }
    let seed = &item.seed;
    let number = u64::from(seed[0]) * 7919 + u64::from(*seed.last().unwrap());
    let text = match item.kind {
        Kind::Client if seed[0].is_multiple_of(2) => {
            format!("192.0.{}.{}", seed[0] % 256, seed[1 % seed.len()] % 256)
        }
        Kind::Client => format!("2001:db8::{:x}", seed[0]),
        Kind::Status => (number % 1000).to_string(),
        Kind::Reply | Kind::Request | Kind::Latency => number.to_string(),
        _ => {
            let symbols = alphabet(item.kind, encoding, item.form);
            let mut out: Vec<u8> = seed
                .iter()
                .flat_map(|i| symbols[usize::from(*i) % symbols.len()].clone())
                .collect();
            if item.kind == Kind::Header || item.kind == Kind::User {
                let trimmed = out.trim_ascii().to_vec();
                out = trimmed;
            }
            if out.is_empty() || out == b"-" {
                out = b"v".to_vec();
            }
            return Some(out);
        }
    };
    Some(text.into_bytes())
}

/// Writes `value` as Squid does for `encoding`.
fn encode(value: &[u8], encoding: Encoding) -> Vec<u8> {
    let unsafe_url = |b: u8| b <= 0x20 || b >= 0x7f || b"<>\"#{}|\\^~[]`'".contains(&b);
    let mut out = Vec::new();
    match encoding {
        Encoding::Raw => out.extend_from_slice(value),
        Encoding::PassThrough | Encoding::Url => {
            for &b in value {
                if unsafe_url(b) || (encoding == Encoding::Url && b == b'%') {
                    out.extend_from_slice(format!("%{b:02X}").as_bytes());
                } else {
                    out.push(b);
                }
            }
        }
        Encoding::Quoted => {
            for &b in value {
                match b {
                    b'"' => out.extend_from_slice(b"\\\""),
                    b'\\' => out.extend_from_slice(b"\\\\"),
                    b'\r' => out.extend_from_slice(b"\\r"),
                    b'\n' => out.extend_from_slice(b"\\n"),
                    b'\t' => out.extend_from_slice(b"\\t"),
                    _ => out.push(b),
                }
            }
        }
        Encoding::MimeBlob => {
            for &b in value {
                match b {
                    b'\r' => out.extend_from_slice(b"\\r"),
                    b'\n' => out.extend_from_slice(b"\\n"),
                    b'\\' => out.extend_from_slice(b"\\\\"),
                    b if b <= 0x1f || b >= 0x7f || b == b'%' || b == b'[' || b == b']' => {
                        out.extend_from_slice(format!("%{b:02x}").as_bytes())
                    }
                    _ => out.push(b),
                }
            }
        }
        Encoding::Shell => {
            // Squid's strwordquote: quotes only around a value with a space,
            // escapes whether quoted or not.
            let quoted = value.contains(&b' ');
            if quoted {
                out.push(b'"');
            }
            for &b in value {
                match b {
                    b'"' => out.extend_from_slice(b"\\\""),
                    b'\\' => out.extend_from_slice(b"\\\\"),
                    b'\n' => out.extend_from_slice(b"\\n"),
                    b'\r' => out.extend_from_slice(b"\\r"),
                    _ => out.push(b),
                }
            }
            if quoted {
                out.push(b'"');
            }
        }
    }
    out
}

/// Squid's width step: spaces to `width`, on the right when left-aligned.
fn pad(mut text: Vec<u8>, width: Option<(usize, bool)>) -> Vec<u8> {
    let Some((width, left)) = width else {
        return text;
    };
    let missing = width.saturating_sub(text.len());
    if left {
        text.extend(std::iter::repeat_n(b' ', missing));
        text
    } else {
        let mut out = vec![b' '; missing];
        out.extend(text);
        out
    }
}

/// The format, the line, and each item's logged value.
fn build(items: &[Item], epoch: u32, millis: u16) -> (String, Vec<u8>, Vec<Option<Vec<u8>>>) {
    let body: Vec<String> = items
        .iter()
        .enumerate()
        .map(|(i, it)| spec_of(it, i))
        .collect();
    let spec = format!("%ts.%03tu {}", body.join(" "));
    let (elements, _) = tokenize(&spec);
    let codes: Vec<Encoding> = elements
        .iter()
        .filter_map(|e| match e {
            Element::Code(code) => Some(code.encoding),
            Element::Literal(_) => None,
        })
        .skip(2)
        .collect();
    let mut line = format!("{epoch}.{:03}", millis % 1000).into_bytes();
    let mut values = Vec::new();
    for (item, encoding) in items.iter().zip(codes) {
        let value = value_of(item, encoding);
        let shown = match &value {
            None => b"-".to_vec(),
            Some(v) if is_text(item.kind) => encode(v, encoding),
            Some(v) => pad(v.clone(), item.width),
        };
        line.push(b' ');
        match item.form {
            Form::Plain => line.extend(shown),
            Form::Quoted => line.extend([b"\"".as_slice(), &shown, b"\""].concat()),
            Form::Bracketed => line.extend([b"[".as_slice(), &shown, b"]"].concat()),
        }
        values.push(value);
    }
    (spec, line, values)
}

/// What the parser read for item `index`.
fn read_back(fields: &Fields<'_>, item: &Item, index: usize) -> Option<Vec<u8>> {
    let slot = |s| fields.value(s).map(|v| v.bytes().into_owned());
    let number = |n| fields.number(n).map(|v| v.to_string().into_bytes());
    match item.kind {
        Kind::Header => fields.header(&format!("H{index}")).map(|v| v.into_owned()),
        Kind::User => slot(Slot::User),
        Kind::Client => slot(Slot::Client),
        Kind::Result => slot(Slot::ResultCode),
        Kind::Method => slot(Slot::Method),
        Kind::Url => slot(Slot::Url),
        Kind::Status => number(Number::Status),
        Kind::Reply => number(Number::ReplyBytes),
        Kind::Request => number(Number::RequestBytes),
        Kind::Latency => number(Number::Latency),
    }
}

/// Whether a later item of the same kind overwrites item `index`'s slot.
fn is_shadowed(items: &[Item], index: usize) -> bool {
    let kind = items[index].kind;
    kind != Kind::Header && items[index + 1..].iter().any(|i| i.kind == kind)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    #[test]
    fn squid_written_lines_parse_back(
        items in proptest::collection::vec(item(), 1..8),
        epoch in 1_000_000_000u32..2_000_000_000,
        millis in 0u16..1000,
    ) {
        let (spec, line, values) = build(&items, epoch, millis);
        let format = LineFormat::logformat(&spec).unwrap();
        let fields = format.parse(&line).map_err(|e| {
            TestCaseError::fail(format!("{spec}\n{}\n{e}", String::from_utf8_lossy(&line)))
        })?;
        let time = fields.created_at().unwrap();
        prop_assert_eq!(time.timestamp_millis(), i64::from(epoch) * 1000 + i64::from(millis));
        for (index, (item, want)) in items.iter().zip(&values).enumerate() {
            if is_shadowed(&items, index) {
                continue;
            }
            let got = read_back(&fields, item, index);
            prop_assert_eq!(
                &got, want,
                "item {} of {}\nline {}", index, spec, String::from_utf8_lossy(&line)
            );
        }
    }
}
