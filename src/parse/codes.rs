//! The table of Squid's `%` codes: names, value classes and default encodings.
//!
//! The tables follow Squid 5.7 and 6.x, in the order Squid scans them (the
//! first name that is a prefix of the text wins, so order matters). This
//! module only describes codes; the tokenizer in [`super::spec`] looks them
//! up and the compiler in [`super::custom`] decides how to read each value.

/// What kind of text a code writes, which decides how its value is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// A decimal integer, possibly negative.
    Int,
    /// Milliseconds: an integer, or `ms.frac` when a precision is given.
    Millis,
    /// Epoch seconds (`%ts`).
    EpochSeconds,
    /// The sub-second part of the log time (`%tu`), in units set by the precision.
    SubSecond,
    /// Transaction start as `seconds.fraction` (`%tS`).
    StartTime,
    /// Local time through strftime (`%tl`).
    LocalTime,
    /// UTC time through strftime (`%tg`).
    GmtTime,
    /// An IP address (IPv6 without brackets).
    Ip,
    /// An upper-case code word such as `TCP_MISS` or `HIER_DIRECT`.
    Word,
    /// A hexadecimal number such as `0x1a`.
    Hex,
    /// A protocol version such as `1.1`.
    Version,
    /// A media type without parameters.
    Mime,
    /// A value that never holds a space.
    Token,
    /// Free text that may hold spaces when written raw.
    Text,
}

/// One known code.
#[derive(Debug, PartialEq, Eq)]
pub struct CodeInfo {
    /// The name as written after `%` (with its namespace, if any).
    pub name: &'static str,
    /// What kind of value it writes.
    pub class: Class,
    /// Whether an unquoted use gets Squid's pass-through %-encoding.
    pub pass_through: bool,
    /// A short description for error messages.
    pub meaning: &'static str,
    /// The code this one is a deprecated spelling of.
    pub alias_of: Option<&'static str>,
}

const fn c(name: &'static str, class: Class, meaning: &'static str) -> CodeInfo {
    CodeInfo {
        name,
        class,
        pass_through: false,
        meaning,
        alias_of: None,
    }
}

/// A code written with pass-through %-encoding by default.
const fn p(name: &'static str, class: Class, meaning: &'static str) -> CodeInfo {
    CodeInfo {
        pass_through: true,
        ..c(name, class, meaning)
    }
}

/// A deprecated spelling that Squid rewrites, with a warning.
const fn alias(name: &'static str, of: &'static str, class: Class, pass: bool) -> CodeInfo {
    CodeInfo {
        name,
        class,
        pass_through: pass,
        meaning: "deprecated spelling",
        alias_of: Some(of),
    }
}

use Class::*;

/// Long names, scanned first.
pub static MISC: &[CodeInfo] = &[
    c(">eui", Token, "client MAC address"),
    c(">qos", Hex, "client connection TOS/DSCP"),
    c("<qos", Hex, "server connection TOS/DSCP"),
    c(">nfmark", Hex, "client connection netfilter mark"),
    c("<nfmark", Hex, "server connection netfilter mark"),
    c(">handshake", Token, "client handshake (base64)"),
    c("err_code", Token, "error page id"),
    c("err_detail", Text, "error detail"),
    c("request_attempts", Int, "forwarding attempts"),
    p("note", Text, "annotation"),
    c("credentials", Text, "client credentials"),
    c("master_xaction", Int, "master transaction id"),
    c("ACL", Token, "last ACL name"),
    c("DATA", Text, "last ACL data"),
    c("DST", Token, "URL host"),
    c("EXT_LOG", Token, "external ACL log string"),
    c("EXT_TAG", Token, "external ACL tag"),
    c("EXT_USER", Text, "external ACL user"),
    c("IDENT", Text, "ident user"),
    c("LOGIN", Text, "authenticated user"),
    c("METHOD", Token, "request method"),
    c("MYADDR", Ip, "local address"),
    c("MYPORT", Int, "local port"),
    c("PATH", Token, "URL path"),
    c("PORT", Int, "URL port"),
    c("PROTO", Token, "URL scheme"),
    c("SRCEUI48", Token, "client EUI-48"),
    c("SRCEUI64", Token, "client EUI-64"),
    c("SRCPORT", Int, "client port"),
    c("SRC", Ip, "client address"),
    c("TAG", Token, "external ACL tag"),
    c("URI", Token, "request URL"),
    c("USER_CERTCHAIN", Text, "client certificate chain"),
    c("USER_CERT", Text, "client certificate"),
];

/// Two-character names, scanned second.
pub static TWO: &[CodeInfo] = &[
    c(">la", Ip, "local address of the client connection"),
    c("la", Ip, "listening address"),
    c(">lp", Int, "local port of the client connection"),
    c("lp", Int, "listening port"),
    c("<la", Ip, "local address of the server connection"),
    alias("oa", "<la", Ip, false),
    c("<lp", Int, "local port of the server connection"),
    c("ts", EpochSeconds, "log time, epoch seconds"),
    c("tu", SubSecond, "log time, sub-second part"),
    c("tl", LocalTime, "log time, local"),
    c("tg", GmtTime, "log time, UTC"),
    c("tS", StartTime, "transaction start"),
    c("tr", Millis, "response time"),
    c("<pt", Millis, "peer response time"),
    c("<tt", Millis, "total server-side time"),
    c("dt", Millis, "DNS wait time"),
    c("busy_time", Int, "busy time"),
    p(">ha", Text, "adapted request header"),
    c("un", Text, "user name"),
    c("ul", Text, "authenticated user"),
    c("ui", Text, "ident user"),
    c("ue", Text, "external ACL user"),
    alias("Hs", ">Hs", Int, false),
    c(">Hs", Int, "status sent to the client"),
    c("<Hs", Int, "status received from the next hop"),
    c("<bs", Int, "body bytes received from the next hop"),
    c("Ss", Word, "Squid result code"),
    c("Sh", Word, "Squid hierarchy code"),
    c("mt", Mime, "reply content type"),
    p(">rm", Token, "method received"),
    p(">ru", Token, "URL received"),
    p(">rs", Token, "URL scheme received"),
    p(">rd", Token, "URL host received"),
    c(">rP", Int, "URL port received"),
    p(">rp", Token, "URL path received"),
    c(">rv", Version, "request protocol version"),
    p("rm", Token, "request method"),
    c("ru", Token, "request URL"),
    alias("rp", ">rp", Token, true),
    c("rv", Version, "protocol version"),
    alias("rG", "note", Text, true),
    p("<rm", Token, "method sent"),
    p("<ru", Token, "URL sent"),
    p("<rs", Token, "URL scheme sent"),
    p("<rd", Token, "URL host sent"),
    c("<rP", Int, "URL port sent"),
    p("<rp", Token, "URL path sent"),
    c("<rv", Token, "reply protocol version"),
    c(">st", Int, "request size"),
    c(">sh", Int, "request header size"),
    c("<st", Int, "reply size"),
    c("<sH", Int, "reply high offset"),
    c("<sS", Int, "upstream object size"),
    c("<sh", Int, "reply header size"),
    c("st", Int, "request and reply size"),
    p("et", Text, "external ACL tag"),
    p("ea", Text, "external ACL log string"),
    c("sn", Int, "record sequence number"),
];

/// One-character names (after `>` or `<`), scanned last.
pub static ONE: &[CodeInfo] = &[
    c(">a", Ip, "client address"),
    c(">p", Int, "client port"),
    c(">A", Token, "client host name"),
    c("<a", Ip, "server address"),
    c("<p", Int, "server port"),
    c("<A", Token, "server host name"),
    p(">h", Text, "request header"),
    p("<h", Text, "reply header"),
    alias(">v", "rv", Version, false),
];

/// Codes in the `icap::` namespace.
pub static ICAP: &[CodeInfo] = &[
    c("icap::tt", Millis, "ICAP blocking time"),
    c("icap::<A", Ip, "ICAP server address"),
    c("icap::<service_name", Text, "ICAP service name"),
    c("icap::ru", Token, "ICAP request URI"),
    c("icap::rm", Token, "ICAP method"),
    c("icap::>st", Int, "bytes sent to the ICAP server"),
    c("icap::<st", Int, "bytes read from the ICAP server"),
    c("icap::<bs", Int, "ICAP body bytes read"),
    c("icap::tr", Millis, "ICAP response time"),
    c("icap::tio", Millis, "ICAP I/O time"),
    c("icap::to", Word, "ICAP outcome"),
    c("icap::Hs", Int, "ICAP status"),
    p("icap::>h", Text, "ICAP request header"),
    p("icap::<h", Text, "ICAP response header"),
    alias("icap::<last_h", "adapt::<last_h", Text, true),
];

/// Codes in the `adapt::` namespace.
pub static ADAPT: &[CodeInfo] = &[
    p("adapt::<last_h", Text, "last adaptation header"),
    c("adapt::sum_trs", Token, "adaptation times summed"),
    c("adapt::all_trs", Token, "adaptation times"),
];

/// Codes in the `ssl::` namespace (`tls::` is the same table).
pub static SSL: &[CodeInfo] = &[
    c("ssl::bump_mode", Token, "SslBump mode"),
    c("ssl::>sni", Token, "client SNI"),
    c("ssl::>cert_subject", Text, "client certificate subject"),
    c("ssl::>cert_issuer", Text, "client certificate issuer"),
    c("ssl::<cert_subject", Text, "server certificate subject"),
    c("ssl::<cert_issuer", Text, "server certificate issuer"),
    c("ssl::<cert_errors", Token, "server certificate errors"),
    p("ssl::<cert", Text, "server certificate"),
    c("ssl::>negotiated_version", Token, "client TLS version"),
    c("ssl::<negotiated_version", Token, "server TLS version"),
    c(
        "ssl::>received_hello_version",
        Token,
        "client hello version",
    ),
    c(
        "ssl::<received_hello_version",
        Token,
        "server hello version",
    ),
    c(
        "ssl::>received_supported_version",
        Token,
        "client supported version",
    ),
    c(
        "ssl::<received_supported_version",
        Token,
        "server supported version",
    ),
    c("ssl::>negotiated_cipher", Token, "client cipher"),
    c("ssl::<negotiated_cipher", Token, "server cipher"),
];

/// Codes in the `proxy_protocol::` namespace.
pub static PROXY_PROTOCOL: &[CodeInfo] = &[p("proxy_protocol::>h", Text, "PROXY protocol header")];

/// Codes in the `transport::` namespace (Squid 6).
pub static TRANSPORT: &[CodeInfo] = &[c("transport::>connection_id", Int, "client connection id")];

/// The namespaces, each with the prefix that selects it and its table.
pub static NAMESPACES: &[(&str, &[CodeInfo])] = &[
    ("adapt::", ADAPT),
    ("icap::", ICAP),
    ("ssl::", SSL),
    ("tls::", SSL),
    ("proxy_protocol::", PROXY_PROTOCOL),
    ("transport::", TRANSPORT),
];

/// Finds the code at the start of `text` the way Squid does: namespaces
/// first, then the long, two-character and one-character tables, the first
/// name that is a prefix winning. Returns the entry and how many bytes of
/// `text` it used.
pub fn lookup(text: &[u8]) -> Option<(&'static CodeInfo, usize)> {
    for (prefix, table) in NAMESPACES {
        if let Some(rest) = text.strip_prefix(prefix.as_bytes()) {
            let canonical = table_prefix(table);
            return scan(table, rest, canonical).map(|(info, used)| (info, used + prefix.len()));
        }
    }
    let rest = match text.strip_prefix(b"http::") {
        Some(rest) if rest.first() != Some(&b'%') => rest,
        _ => text,
    };
    let skipped = text.len() - rest.len();
    [MISC, TWO, ONE]
        .iter()
        .find_map(|table| scan(table, rest, ""))
        .map(|(info, used)| (info, used + skipped))
}

/// The namespace prefix the names in `table` carry (`ssl::` for the `tls::` alias).
fn table_prefix(table: &[CodeInfo]) -> &'static str {
    table
        .first()
        .and_then(|info| info.name.find("::").map(|at| &info.name[..at + 2]))
        .unwrap_or("")
}

fn scan(
    table: &'static [CodeInfo],
    text: &[u8],
    prefix: &str,
) -> Option<(&'static CodeInfo, usize)> {
    table.iter().find_map(|info| {
        let bare = &info.name.as_bytes()[prefix.len()..];
        text.starts_with(bare).then_some((info, bare.len()))
    })
}

/// The entry for a canonical name, used to follow deprecated aliases.
pub fn by_name(name: &str) -> Option<&'static CodeInfo> {
    let tables: [&[CodeInfo]; 7] = [MISC, TWO, ONE, ICAP, ADAPT, SSL, PROXY_PROTOCOL];
    tables
        .iter()
        .flat_map(|table| table.iter())
        .find(|info| info.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> Option<(&'static str, usize)> {
        lookup(text.as_bytes()).map(|(info, used)| (info.name, used))
    }

    #[test]
    fn longer_tables_win_over_shorter_ones() {
        assert_eq!(name(">ha"), Some((">ha", 3)));
        assert_eq!(name(">hx"), Some((">h", 2)));
        assert_eq!(name("tsX"), Some(("ts", 2)));
        assert_eq!(name(">eui"), Some((">eui", 4)));
    }

    #[test]
    fn namespaces_are_scanned_first() {
        assert_eq!(name("icap::tr"), Some(("icap::tr", 8)));
        assert_eq!(name("tls::>sni"), Some(("ssl::>sni", 9)));
        assert_eq!(name("ssl::<cert_subject"), Some(("ssl::<cert_subject", 18)));
        assert_eq!(name("ssl::<certX"), Some(("ssl::<cert", 10)));
        assert_eq!(name("icap::nope"), None);
    }

    #[test]
    fn http_namespace_is_skipped() {
        assert_eq!(name("http::>h"), Some((">h", 8)));
    }

    #[test]
    fn unknown_names_are_not_found() {
        assert_eq!(name("byte"), None);
        assert_eq!(name("zz"), None);
    }

    #[test]
    fn every_alias_points_at_a_known_code() {
        let tables: [&[CodeInfo]; 4] = [MISC, TWO, ONE, ICAP];
        for info in tables.iter().flat_map(|t| t.iter()) {
            if let Some(target) = info.alias_of {
                assert!(by_name(target).is_some(), "{} -> {target}", info.name);
            }
        }
    }
}
