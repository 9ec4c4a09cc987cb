//! Undoing Squid's value encodings, and turning bytes into text.
//!
//! Squid writes each value in one of six encodings (raw, pass-through URL,
//! URL, backslash-quoted, MIME blob, shell). This module owns the reverse
//! transformations. Each returns the input slice unchanged when it holds no
//! escape, so decoding costs an allocation only for values that need it.
//! Which encoding applies to a field is decided by the format compiler.

use std::borrow::Cow;

/// How Squid escaped a value before writing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// Bytes as they came; nothing to undo.
    Raw,
    /// `%XX` for unsafe bytes but `%` itself left alone (Squid's default for
    /// headers and a few other codes); undone on a best-effort basis.
    PassThrough,
    /// `%XX` for unsafe bytes and `%` (the `%#` modifier).
    Url,
    /// `\"`, `\\`, `\r`, `\n`, `\t` (the `%"` modifier or inside literal quotes).
    Quoted,
    /// `\r`, `\n`, `\\` and lowercase `%xx` (the `%[` modifier or inside
    /// literal brackets; also the native format's user field).
    MimeBlob,
    /// Wrapped in `"…"` with backslash escapes when the value holds a space
    /// (the `%/` modifier).
    Shell,
}

impl Encoding {
    /// The modifier character that selects this encoding in a format, if any.
    pub fn modifier(self) -> Option<char> {
        match self {
            Encoding::Raw => Some('\''),
            Encoding::PassThrough => None,
            Encoding::Url => Some('#'),
            Encoding::Quoted => Some('"'),
            Encoding::MimeBlob => Some('['),
            Encoding::Shell => Some('/'),
        }
    }
}

/// Undoes `encoding` on `raw`.
pub fn decode(raw: &[u8], encoding: Encoding) -> Cow<'_, [u8]> {
    match encoding {
        Encoding::Raw => Cow::Borrowed(raw),
        Encoding::PassThrough | Encoding::Url => percent(raw),
        Encoding::Quoted => backslash(raw),
        Encoding::MimeBlob => mime_blob(raw),
        Encoding::Shell => shell(raw),
    }
}

/// Value of an ASCII hex digit.
fn hex(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// The byte `%XX` at the start of `bytes` stands for, if it is one.
fn percent_at(bytes: &[u8]) -> Option<u8> {
    match bytes {
        [b'%', high, low, ..] => Some(hex(*high)? << 4 | hex(*low)?),
        _ => None,
    }
}

/// Decodes `%XX` (either case); a `%` not followed by two hex digits stays.
pub fn percent(raw: &[u8]) -> Cow<'_, [u8]> {
    if !raw.contains(&b'%') {
        return Cow::Borrowed(raw);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match percent_at(&raw[i..]) {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(raw[i]);
                i += 1;
            }
        }
    }
    Cow::Owned(out)
}

/// Decodes `\"`, `\\`, `\r`, `\n`, `\t`; any other backslash stays as written.
pub fn backslash(raw: &[u8]) -> Cow<'_, [u8]> {
    if !raw.contains(&b'\\') {
        return Cow::Borrowed(raw);
    }
    Cow::Owned(unbackslash(raw, |b| match b {
        b'"' | b'\\' => Some(b),
        b'r' => Some(b'\r'),
        b'n' => Some(b'\n'),
        b't' => Some(b'\t'),
        _ => None,
    }))
}

/// Undoes the two-byte escapes `\x` for which `escaped(x)` names a byte;
/// any other backslash stays as written.
fn unbackslash(raw: &[u8], escaped: impl Fn(u8) -> Option<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match (raw[i], raw.get(i + 1).and_then(|next| escaped(*next))) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 2;
            }
            (other, _) => {
                out.push(other);
                i += 1;
            }
        }
    }
    out
}

/// Decodes the MIME-blob escapes: `\r`, `\n`, `\\` and `%xx`.
pub fn mime_blob(raw: &[u8]) -> Cow<'_, [u8]> {
    if !raw.iter().any(|b| *b == b'\\' || *b == b'%') {
        return Cow::Borrowed(raw);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let (byte, used) = match (raw[i], raw.get(i + 1)) {
            (b'\\', Some(b'r')) => (b'\r', 2),
            (b'\\', Some(b'n')) => (b'\n', 2),
            (b'\\', Some(b'\\')) => (b'\\', 2),
            (b'%', _) => match percent_at(&raw[i..]) {
                Some(byte) => (byte, 3),
                None => (b'%', 1),
            },
            (other, _) => (other, 1),
        };
        out.push(byte);
        i += used;
    }
    Cow::Owned(out)
}

/// Decodes the shell encoding (Squid's `strwordquote`): a value holding a
/// space is wrapped in `"…"`, and whether wrapped or not, `"`, `\\`, LF and
/// CR are written `\"`, `\\\\`, `\n` and `\r`. So the quotes go and the
/// escapes are undone in a bare word too.
pub fn shell(raw: &[u8]) -> Cow<'_, [u8]> {
    let inner = match raw {
        [b'"', inner @ .., b'"'] => inner,
        _ if !raw.contains(&b'\\') => return Cow::Borrowed(raw),
        _ => raw,
    };
    Cow::Owned(unbackslash(inner, |b| match b {
        b'"' | b'\\' => Some(b),
        b'n' => Some(b'\n'),
        b'r' => Some(b'\r'),
        _ => None,
    }))
}

/// Turns bytes into text: valid UTF-8 is kept as it is, and each byte that is
/// not part of valid UTF-8 becomes the four characters `\xNN` (lowercase hex).
///
/// PostgreSQL text must be UTF-8, and Squid writes whatever bytes it received.
/// This keeps every valid character and makes invalid bytes visible and
/// recoverable; the only loss is that a value which itself contained the text
/// `\xNN` cannot be told apart from an escaped byte.
pub fn text(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(valid) => Cow::Borrowed(valid),
        Err(_) => Cow::Owned(escape_invalid(bytes)),
    }
}

fn escape_invalid(mut bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 8);
    loop {
        match std::str::from_utf8(bytes) {
            Ok(valid) => {
                out.push_str(valid);
                return out;
            }
            Err(error) => {
                let (valid, rest) = bytes.split_at(error.valid_up_to());
                out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                let bad = error.error_len().unwrap_or(rest.len());
                for byte in &rest[..bad] {
                    out.push_str(&format!("\\x{byte:02x}"));
                }
                bytes = &rest[bad..];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALUE: &[u8] = b"A \"b\" 50%\\c";

    #[test]
    fn every_encoding_of_the_worked_example_decodes_to_the_value() {
        let cases: &[(&[u8], Encoding)] = &[
            (b"\"A \\\"b\\\" 50%\\\\c\"", Encoding::Shell),
            (b"A%20%22b%22%2050%25%5Cc", Encoding::Url),
            (b"A \"b\" 50%25\\\\c", Encoding::MimeBlob),
            (b"A \"b\" 50%\\c", Encoding::Raw),
            (b"A%20%22b%22%2050%%5Cc", Encoding::PassThrough),
            (b"A \\\"b\\\" 50%\\\\c", Encoding::Quoted),
        ];
        for (raw, encoding) in cases {
            assert_eq!(&*decode(raw, *encoding), VALUE, "{encoding:?}");
        }
    }

    #[test]
    fn percent_leaves_invalid_sequences_alone() {
        assert_eq!(&*percent(b"100%Bot"), b"100%Bot");
        assert_eq!(&*percent(b"50%"), b"50%");
        assert_eq!(&*percent(b"%zz%4"), b"%zz%4");
        assert_eq!(&*percent(b"B%C3%BCcher"), "Bücher".as_bytes());
    }

    #[test]
    fn mime_blob_decodes_lowercase_hex_and_backslashes() {
        assert_eq!(
            &*mime_blob(b"ren%c3%a9%5bops%5d%25"),
            "rené[ops]%".as_bytes()
        );
        assert_eq!(&*mime_blob(b"EXAMPLE\\\\bob"), b"EXAMPLE\\bob");
        assert_eq!(&*mime_blob(b"a\\r\\nb"), b"a\r\nb");
    }

    #[test]
    fn backslash_decodes_tab_and_keeps_unknown_escapes() {
        assert_eq!(&*backslash(b"a\\tb\\qc"), b"a\tb\\qc");
        assert_eq!(&*backslash(b"trailing\\"), b"trailing\\");
    }

    #[test]
    fn shell_bare_word_loses_its_escapes_too() {
        assert_eq!(&*shell(b"plain"), b"plain");
        assert!(matches!(shell(b"plain"), Cow::Borrowed(_)));
        assert_eq!(&*shell(b"\"a b\""), b"a b");
        assert_eq!(&*shell(b"dom\\\\bot"), b"dom\\bot");
        assert_eq!(&*shell(b"say\\\"hi\\\""), b"say\"hi\"");
        assert_eq!(&*shell(b"two\\nlines"), b"two\nlines");
    }

    #[test]
    fn undecoded_values_are_borrowed() {
        assert!(matches!(
            decode(b"plain", Encoding::Quoted),
            Cow::Borrowed(_)
        ));
        assert!(matches!(
            decode(b"plain", Encoding::PassThrough),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn invalid_utf8_becomes_visible_escapes() {
        assert_eq!(text(b"caf\xc3\xa9"), "café");
        assert_eq!(text(b"a\xffb\xc3"), "a\\xffb\\xc3");
    }
}
