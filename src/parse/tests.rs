//! Table-driven tests of the format engine: the line shapes Squid writes
//! (hits, misses, tunnels, denials, aborts, errors, old versions), each
//! built-in, each code and modifier, each encoding, and the error reports.

use super::*;

/// The decoded text of a value of `fields`, by a short key.
fn get(fields: &Fields<'_>, key: &str) -> Option<String> {
    let text = |slot| fields.value(slot).map(|v| v.text().into_owned());
    let number = |n| fields.number(n).map(|v| v.to_string());
    if let Some(name) = key.strip_prefix("h:") {
        return fields.header(name).map(|v| decode::text(&v).into_owned());
    }
    match key {
        "client" => text(Slot::Client),
        "result" => text(Slot::ResultCode),
        "hier" => text(Slot::Hierarchy),
        "server" => text(Slot::Server),
        "method" => text(Slot::Method),
        "method_in" => text(Slot::MethodReceived),
        "url" => text(Slot::Url),
        "url_in" => text(Slot::UrlReceived),
        "user" => text(Slot::User),
        "login" => text(Slot::UserLogin),
        "ident" => text(Slot::UserIdent),
        "ext" => text(Slot::UserExternal),
        "mime" => text(Slot::ContentType),
        "headers" => text(Slot::RequestHeaders),
        "status" => number(Number::Status),
        "in" => number(Number::RequestBytes),
        "out" => number(Number::ReplyBytes),
        "ms" => number(Number::Latency),
        "time" => fields
            .created_at()
            .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()),
        other => panic!("unknown key {other}"),
    }
}

/// Parses `line` with `format` and compares the listed keys.
fn check(format: &LineFormat, name: &str, line: &[u8], expected: &[(&str, Option<&str>)]) {
    let fields = match format.parse(line) {
        Ok(fields) => fields,
        Err(e) => panic!("{name}: {e} ({:?})", e.field()),
    };
    for (key, want) in expected {
        let got = get(&fields, key);
        assert_eq!(got.as_deref(), *want, "{name}: {key}");
    }
}

fn squid() -> LineFormat {
    LineFormat::builtin("squid").unwrap()
}

fn custom(spec: &str) -> LineFormat {
    LineFormat::logformat(spec).unwrap()
}

const NATIVE_SPEC: &str = "%ts.%03tu %6tr %>a %Ss/%03>Hs %<st %rm %ru %[un %Sh/%<a %mt";

/// Native example lines: name, line, expected values.
type Case = (
    &'static str,
    &'static str,
    &'static [(&'static str, Option<&'static str>)],
);

const NATIVE_CASES: &[Case] = &[
    (
        "plain miss",
        "1709647387.123    157 192.0.2.10 TCP_MISS/200 5123 GET http://example.com/index.html \
         - HIER_DIRECT/93.184.216.34 text/html",
        &[
            ("time", Some("2024-03-05T14:03:07.123Z")),
            ("ms", Some("157")),
            ("client", Some("192.0.2.10")),
            ("result", Some("TCP_MISS")),
            ("status", Some("200")),
            ("out", Some("5123")),
            ("method", Some("GET")),
            ("url", Some("http://example.com/index.html")),
            ("user", None),
            ("hier", Some("HIER_DIRECT")),
            ("server", Some("93.184.216.34")),
            ("mime", Some("text/html")),
        ],
    ),
    (
        "memory hit, IPv6 client",
        "1709647387.456      0 2001:db8::10 TCP_MEM_HIT/200 1520 GET http://example.com/logo.png \
         - HIER_NONE/- image/png",
        &[
            ("client", Some("2001:db8::10")),
            ("ms", Some("0")),
            ("server", None),
            ("hier", Some("HIER_NONE")),
        ],
    ),
    (
        "IPv6 origin",
        "1709647387.789     42 192.0.2.11 TCP_MISS/200 734 GET http://[2001:db8:feed::80]/status \
         - HIER_DIRECT/2001:db8:feed::80 application/json",
        &[
            ("url", Some("http://[2001:db8:feed::80]/status")),
            ("server", Some("2001:db8:feed::80")),
        ],
    ),
    (
        "CONNECT tunnel",
        "1709647390.002  60213 192.0.2.10 TCP_TUNNEL/200 48213 CONNECT www.example.org:443 - \
         HIER_DIRECT/2606:2800:21f:cb07:6820:80da:af6b:8b2c -",
        &[
            ("method", Some("CONNECT")),
            ("url", Some("www.example.org:443")),
            ("ms", Some("60213")),
            ("mime", None),
        ],
    ),
    (
        "long tunnel wider than the column",
        "1709650000.000 3600125 192.0.2.11 TCP_TUNNEL_ABORTED/200 9912345 CONNECT \
         chat.example.net:443 - HIER_DIRECT/198.51.100.7 -",
        &[
            ("ms", Some("3600125")),
            ("result", Some("TCP_TUNNEL_ABORTED")),
            ("out", Some("9912345")),
        ],
    ),
    (
        "denied GET",
        "1709647391.777      1 192.0.2.12 TCP_DENIED/403 3912 GET http://blocked.example/ - \
         HIER_NONE/- text/html",
        &[("result", Some("TCP_DENIED")), ("status", Some("403"))],
    ),
    (
        "denied CONNECT",
        "1709647391.778      0 192.0.2.12 TCP_DENIED/403 3845 CONNECT blocked.example:443 - \
         HIER_NONE/- text/html",
        &[
            ("url", Some("blocked.example:443")),
            ("status", Some("403")),
        ],
    ),
    (
        "proxy auth required",
        "1709647392.010      2 192.0.2.13 TCP_DENIED/407 4120 GET http://example.com/ - \
         HIER_NONE/- text/html",
        &[("status", Some("407")), ("user", None)],
    ),
    (
        "connection closed before a request",
        "1709647393.000      0 192.0.2.14 NONE_NONE/000 0 - error:transaction-end-before-headers \
         - HIER_NONE/- -",
        &[
            ("status", Some("0")),
            ("method", None),
            ("url", Some("error:transaction-end-before-headers")),
            ("mime", None),
        ],
    ),
    (
        "unparseable request",
        "1709647393.500      0 192.0.2.15 NONE_NONE/400 3721 - error:invalid-request - \
         HIER_NONE/- text/html",
        &[
            ("status", Some("400")),
            ("url", Some("error:invalid-request")),
        ],
    ),
    (
        "client aborted before any reply",
        "1709647394.005  30012 192.0.2.16 TCP_MISS_ABORTED/000 0 GET http://slow.example/report - \
         HIER_DIRECT/198.51.100.21 -",
        &[("status", Some("0")), ("server", Some("198.51.100.21"))],
    ),
    (
        "aborted mid-download",
        "1709647394.006    812 192.0.2.16 TCP_MISS_ABORTED/200 1048576 GET \
         http://video.example/big.mp4 - HIER_DIRECT/198.51.100.20 video/mp4",
        &[("out", Some("1048576")), ("mime", Some("video/mp4"))],
    ),
    (
        "DNS failure",
        "1709647394.100      3 192.0.2.17 TCP_MISS/503 4012 GET http://nonexistent.invalid/ - \
         HIER_NONE/- text/html",
        &[("status", Some("503")), ("server", None)],
    ),
    (
        "NTLM user with doubled backslash",
        "1709647394.200     95 10.0.0.23 TCP_MISS/200 2211 GET http://intranet.example/ \
         EXAMPLE\\\\bob HIER_DIRECT/10.0.0.5 text/html",
        &[("user", Some("EXAMPLE\\bob"))],
    ),
    (
        "user with a raw space",
        "1709647394.300     88 10.0.0.24 TCP_MISS/200 2211 GET http://intranet.example/ john \
         smith HIER_DIRECT/10.0.0.5 text/html",
        &[("user", Some("john smith")), ("hier", Some("HIER_DIRECT"))],
    ),
    (
        "user with non-ASCII, brackets, percent",
        "1709647394.400     91 10.0.0.25 TCP_MISS/200 2211 GET http://intranet.example/ \
         ren%c3%a9%5bops%5d%25 HIER_DIRECT/10.0.0.5 text/html",
        &[("user", Some("rené[ops]%"))],
    ),
    (
        "stripped query keeps the ?",
        "1709647394.500    120 192.0.2.18 TCP_MISS/200 20480 GET http://shop.example/search? - \
         HIER_DIRECT/203.0.113.5 text/html",
        &[("url", Some("http://shop.example/search?"))],
    ),
    (
        "encoded space kept raw",
        "1709647394.600     77 192.0.2.18 TCP_MISS/404 512 GET http://example.com/a%20b/cd - \
         HIER_DIRECT/93.184.216.34 text/html",
        &[("url", Some("http://example.com/a%20b/cd"))],
    ),
    (
        "raw UTF-8 URL",
        "1709647394.700     64 192.0.2.19 TCP_MISS/200 900 GET http://example.com/café - \
         HIER_DIRECT/93.184.216.34 text/html",
        &[("url", Some("http://example.com/café"))],
    ),
    (
        "escaped URL",
        "1709647394.800     61 192.0.2.19 TCP_MISS/200 900 GET \
         http://example.com/%E2%82%AC/%7Euser/? - HIER_DIRECT/93.184.216.34 text/html",
        &[("url", Some("http://example.com/%E2%82%AC/%7Euser/?"))],
    ),
    (
        "parent after ICP timeout",
        "1709647395.001   2101 192.0.2.20 TCP_MISS/200 15320 GET http://news.example/ - \
         TIMEOUT_FIRSTUP_PARENT/10.1.1.1 text/html",
        &[
            ("hier", Some("TIMEOUT_FIRSTUP_PARENT")),
            ("server", Some("10.1.1.1")),
        ],
    ),
    (
        "refresh unmodified",
        "1709647395.002     33 192.0.2.20 TCP_REFRESH_UNMODIFIED/304 298 GET \
         http://static.example/app.css - HIER_DIRECT/203.0.113.9 text/css",
        &[
            ("result", Some("TCP_REFRESH_UNMODIFIED")),
            ("status", Some("304")),
        ],
    ),
    (
        "IMS hit",
        "1709647395.003      0 192.0.2.20 TCP_IMS_HIT/304 251 GET http://static.example/app.js - \
         HIER_NONE/- application/javascript",
        &[("mime", Some("application/javascript"))],
    ),
    (
        "negative hit",
        "1709647395.004      0 192.0.2.21 TCP_NEGATIVE_HIT/404 602 GET \
         http://example.com/missing - HIER_NONE/- text/html",
        &[("result", Some("TCP_NEGATIVE_HIT"))],
    ),
    (
        "redirect",
        "1709647395.005      4 192.0.2.21 TCP_REDIRECT/302 380 GET http://ads.example/banner - \
         HIER_NONE/- -",
        &[("status", Some("302")), ("mime", None)],
    ),
    (
        "collapsed forwarding",
        "1709647395.006    210 192.0.2.22 TCP_CF_HIT/200 88211 GET http://cdn.example/big.iso - \
         HIER_NONE/- application/octet-stream",
        &[("result", Some("TCP_CF_HIT"))],
    ),
    (
        "SslBump CONNECT to an address",
        "1709647395.007      0 192.0.2.23 NONE_NONE/200 0 CONNECT 93.184.216.34:443 - \
         HIER_NONE/- -",
        &[
            ("url", Some("93.184.216.34:443")),
            ("result", Some("NONE_NONE")),
        ],
    ),
    (
        "ICP query",
        "1709647396.100      0 192.0.2.50 UDP_MISS/000 78 ICP_QUERY http://example.com/x.js - \
         HIER_NONE/- -",
        &[
            ("method", Some("ICP_QUERY")),
            ("status", Some("0")),
            ("out", Some("78")),
        ],
    ),
    (
        "Squid 4 NONE/000",
        "1709647393.000      0 192.0.2.14 NONE/000 0 - error:transaction-end-before-headers - \
         HIER_NONE/- -",
        &[("result", Some("NONE"))],
    ),
    (
        "Squid 2 hierarchy without HIER_",
        "1066037222.352  19475 192.0.2.1 TCP_MISS/200 12387 GET http://example.com/page.html - \
         DIRECT/example.com text/html",
        &[("hier", Some("DIRECT")), ("server", Some("example.com"))],
    ),
    (
        "missing client address",
        "1709647387.123      5 - NONE_NONE/000 0 - error:accept-client-connection - HIER_NONE/- -",
        &[("client", None)],
    ),
];

#[test]
fn native_example_lines_parse_with_the_builtin() {
    let format = squid();
    for (name, line, expected) in NATIVE_CASES {
        check(&format, name, line.as_bytes(), expected);
    }
}

#[test]
fn native_example_lines_parse_with_the_documented_logformat() {
    let format = custom(NATIVE_SPEC);
    for (name, line, expected) in NATIVE_CASES {
        if name.contains("Squid 2") {
            continue; // `%<a` is an address; Squid 2 wrote a host name there.
        }
        check(&format, name, line.as_bytes(), expected);
    }
}

#[test]
fn native_log_mime_hdrs_blocks_are_stripped_and_kept() {
    let line = "1709647395.010     64 192.0.2.40 TCP_MISS/200 845 GET http://example.com/api - \
                HIER_DIRECT/93.184.216.34 application/json [Host: example.com\\r\\nUser-Agent: \
                curl/8.5.0\\r\\nX-Bot-Name: My Bot %5bbeta%5d 100%25\\r\\n] [HTTP/1.1 200 \
                OK\\r\\nContent-Type: application/json\\r\\n\\r\\n]";
    check(
        &squid(),
        "log_mime_hdrs blocks",
        line.as_bytes(),
        &[
            ("mime", Some("application/json")),
            ("server", Some("93.184.216.34")),
            ("h:x-bot-name", Some("My Bot [beta] 100%")),
            ("h:User-Agent", Some("curl/8.5.0")),
        ],
    );
}

#[test]
fn native_keeps_non_utf8_bytes_visible() {
    let line = b"1709647394.700     64 192.0.2.19 TCP_MISS/200 900 GET http://example.com/\xff - \
                 HIER_DIRECT/93.184.216.34 text/html";
    check(
        &squid(),
        "raw 0xff",
        line,
        &[("url", Some("http://example.com/\\xff"))],
    );
}

const COMMON_CASES: &[Case] = &[
    (
        "common",
        "192.0.2.10 - - [05/Mar/2024:15:03:07 +0100] \"GET http://example.com/index.html \
         HTTP/1.1\" 200 5123 TCP_MISS:HIER_DIRECT",
        &[
            ("client", Some("192.0.2.10")),
            ("ident", None),
            ("login", None),
            ("time", Some("2024-03-05T14:03:07.000Z")),
            ("method", Some("GET")),
            ("url", Some("http://example.com/index.html")),
            ("status", Some("200")),
            ("out", Some("5123")),
            ("result", Some("TCP_MISS")),
            ("hier", Some("HIER_DIRECT")),
        ],
    ),
    (
        "IPv6, user, CONNECT",
        "2001:db8::10 - alice [05/Mar/2024:15:03:10 +0100] \"CONNECT www.example.org:443 \
         HTTP/1.1\" 200 48213 TCP_TUNNEL:HIER_DIRECT",
        &[("client", Some("2001:db8::10")), ("login", Some("alice"))],
    ),
    (
        "error line NONE/0.0",
        "192.0.2.14 - - [05/Mar/2024:15:03:13 +0100] \"- error:transaction-end-before-headers \
         NONE/0.0\" 0 0 NONE_NONE:HIER_NONE",
        &[
            ("method", None),
            ("url", Some("error:transaction-end-before-headers")),
            ("status", Some("0")),
        ],
    ),
    (
        "negative half-hour zone",
        "192.0.2.10 - - [05/Mar/2024:10:33:07 -03-30] \"GET http://example.com/ HTTP/1.1\" 200 \
         612 TCP_MISS:HIER_DIRECT",
        &[("time", Some("2024-03-05T14:03:07.000Z"))],
    ),
    (
        "no TIMEOUT_ prefix",
        "192.0.2.20 - - [05/Mar/2024:15:03:15 +0100] \"GET http://news.example/ HTTP/1.1\" 200 \
         15320 TCP_MISS:FIRSTUP_PARENT",
        &[("hier", Some("FIRSTUP_PARENT"))],
    ),
    (
        "user with a space",
        "192.0.2.20 - carol smith [05/Mar/2024:15:03:15 +0100] \"GET http://x.example/ \
         HTTP/1.1\" 200 15 TCP_MISS:HIER_DIRECT",
        &[("login", Some("carol smith"))],
    ),
];

#[test]
fn common_example_lines_parse() {
    let format = LineFormat::builtin("common").unwrap();
    for (name, line, expected) in COMMON_CASES {
        check(&format, name, line.as_bytes(), expected);
    }
}

#[test]
fn combined_keeps_raw_quotes_in_the_user_agent() {
    let format = LineFormat::builtin("combined").unwrap();
    let line = "192.0.2.20 - - [05/Mar/2024:15:03:08 +0100] \"GET http://example.com/ HTTP/1.1\" \
                200 612 \"http://ref.example/start\" \"Mozilla/5.0 \"QuotedBot\" 1.0\" \
                TCP_MISS:HIER_DIRECT";
    check(
        &format,
        "raw quotes in the user agent",
        line.as_bytes(),
        &[
            ("h:Referer", Some("http://ref.example/start")),
            ("h:user-agent", Some("Mozilla/5.0 \"QuotedBot\" 1.0")),
            ("result", Some("TCP_MISS")),
        ],
    );
    let line = "192.0.2.21 - - [05/Mar/2024:15:03:09 +0100] \"GET http://example.com/robots.txt \
                HTTP/1.0\" 404 512 \"-\" \"-\" TCP_MISS:HIER_DIRECT";
    check(
        &format,
        "no referer, no user agent",
        line.as_bytes(),
        &[
            ("h:Referer", None),
            ("h:User-Agent", None),
            ("status", Some("404")),
        ],
    );
}

#[test]
fn user_defined_combined_unescapes_quotes() {
    let format = custom(
        "%>a %[ui %[un [%tl] \"%rm %ru HTTP/%rv\" %>Hs %<st \"%{Referer}>h\" \
         \"%{User-Agent}>h\" %Ss:%Sh",
    );
    let line = "192.0.2.20 - - [05/Mar/2024:15:03:08 +0100] \"GET http://example.com/ HTTP/1.1\" \
                200 612 \"http://ref.example/start\" \"Mozilla/5.0 \\\"QuotedBot\\\" 1.0\" \
                TCP_MISS:HIER_DIRECT";
    check(
        &format,
        "user-defined combined",
        line.as_bytes(),
        &[
            ("h:User-Agent", Some("Mozilla/5.0 \"QuotedBot\" 1.0")),
            ("time", Some("2024-03-05T14:03:08.000Z")),
            ("hier", Some("HIER_DIRECT")),
        ],
    );
}

#[test]
fn referrer_and_useragent_builtins() {
    let referrer = LineFormat::builtin("referrer").unwrap();
    check(
        &referrer,
        "referrer",
        b"1709647387.123 192.0.2.10 http://ref.example/start http://example.com/index.html",
        &[
            ("h:Referer", Some("http://ref.example/start")),
            ("url", Some("http://example.com/index.html")),
            ("time", Some("2024-03-05T14:03:07.123Z")),
        ],
    );
    check(
        &referrer,
        "referrer missing",
        b"1709647387.124 192.0.2.10 - http://example.com/next",
        &[("h:Referer", None)],
    );
    let agent = LineFormat::builtin("useragent").unwrap();
    check(
        &agent,
        "useragent",
        b"192.0.2.10 [05/Mar/2024:15:03:07 +0100] \"Mozilla/5.0 (X11; Linux x86_64; rv:123.0) \
          Gecko/20100101 Firefox/123.0\"",
        &[(
            "h:User-Agent",
            Some("Mozilla/5.0 (X11; Linux x86_64; rv:123.0) Gecko/20100101 Firefox/123.0"),
        )],
    );
    check(
        &agent,
        "useragent missing",
        b"192.0.2.10 [05/Mar/2024:15:03:07 +0100] \"-\"",
        &[("h:User-Agent", None), ("client", Some("192.0.2.10"))],
    );
}

#[test]
fn icap_squid_documented_string_reads_its_lines() {
    let format = custom(
        "%ts.%03tu %6icap::tr %>A %icap::to/%03icap::Hs %icap::<st %icap::rm %icap::ru %un \
         -/%icap::<A -",
    );
    check(
        &format,
        "icap RESPMOD",
        b"1709647387.200     12 192.0.2.10 ICAP_MOD/200 1432 RESPMOD \
          icap://127.0.0.1:1344/respmod - -/127.0.0.1 -",
        &[("time", Some("2024-03-05T14:03:07.200Z")), ("user", None)],
    );
    check(
        &format,
        "icap OPTIONS without client",
        b"1709647300.001      3 - ICAP_OPT/200 245 OPTIONS icap://127.0.0.1:1344/respmod - \
          -/127.0.0.1 -",
        &[("time", Some("2024-03-05T14:01:40.001Z"))],
    );
}

#[test]
fn quoted_bot_headers_are_unescaped() {
    let format = custom(&format!(
        "{NATIVE_SPEC} \"%{{User-Agent}}>h\" \"%{{X-Bot-Name}}>h\""
    ));
    check(
        &format,
        "quoted bot header",
        b"1709647394.321     85 192.0.2.30 TCP_MISS/200 20480 GET http://shop.example/products? \
          - HIER_DIRECT/203.0.113.5 text/html \"Mozilla/5.0 (compatible; ExampleBot/2.1; \
          +http://bot.example/)\" \"Example \\\"Crawler\\\" v2\\\\beta\"",
        &[
            (
                "h:User-Agent",
                Some("Mozilla/5.0 (compatible; ExampleBot/2.1; +http://bot.example/)"),
            ),
            ("h:X-Bot-Name", Some("Example \"Crawler\" v2\\beta")),
        ],
    );
    check(
        &format,
        "IPv6, UTF-8 and tab",
        "1709647394.322     12 2001:db8::31 TCP_MISS/200 312 HEAD http://example.com/ - \
         HIER_DIRECT/93.184.216.34 text/html \"Bücherwurm/1.0\\t(test)\" \"-\""
            .as_bytes(),
        &[
            ("h:User-Agent", Some("Bücherwurm/1.0\t(test)")),
            ("h:X-Bot-Name", None),
            ("client", Some("2001:db8::31")),
        ],
    );
}

#[test]
fn unquoted_header_is_percent_decoded() {
    let format = custom("%ts %>a %{X-Bot-Name}>h %ru");
    let cases: &[(&str, Option<&str>)] = &[
        (
            "1 192.0.2.30 Example%20%22Crawler%22%20v2%5Cbeta http://shop.example/products?",
            Some("Example \"Crawler\" v2\\beta"),
        ),
        (
            "1 192.0.2.31 B%C3%BCcherwurm-Bot http://example.com/",
            Some("Bücherwurm-Bot"),
        ),
        ("1 192.0.2.32 100%Bot http://example.com/", Some("100%Bot")),
        ("1 192.0.2.33 - http://example.com/", None),
    ];
    for (line, bot) in cases {
        check(
            &format,
            "unquoted bot header",
            line.as_bytes(),
            &[("h:x-bot-name", *bot)],
        );
    }
}

#[test]
fn every_encoding_side_by_side_decodes_alike() {
    let spec = "%ts %/{A}>h|%#{B}>h|%[{C}>h|%'{D}>h|%{E}>h|%\"{F}>h";
    let line = b"1 \"A \\\"b\\\" 50%\\\\c\"|A%20%22b%22%2050%25%5Cc|A \"b\" 50%25\\\\c|\
                 A \"b\" 50%\\c|A%20%22b%22%2050%%5Cc|A \\\"b\\\" 50%\\\\c";
    let want = Some("A \"b\" 50%\\c");
    let keys = ["h:A", "h:B", "h:C", "h:D", "h:E", "h:F"];
    let expected: Vec<(&str, Option<&str>)> = keys.iter().map(|k| (*k, want)).collect();
    check(&custom(spec), "every encoding", line, &expected);
}

#[test]
fn iso_time_ports_and_timings() {
    let format = custom(
        "%{%Y-%m-%dT%H:%M:%S}tg.%03tu %>a %>p %>la %>lp %Ss %>Hs %<Hs %<st %>st %tr %<pt %<tt \
         %dt %rm %>ru %>rd %>rP %mt %un",
    );
    check(
        &format,
        "iso time, miss",
        b"2024-03-05T14:03:07.123 192.0.2.10 53211 192.0.2.1 3128 TCP_MISS 200 200 5123 412 157 \
          120 150 12 GET http://example.com/index.html?q=a%20b example.com 80 text/html -",
        &[
            ("time", Some("2024-03-05T14:03:07.123Z")),
            ("in", Some("412")),
            ("out", Some("5123")),
            ("ms", Some("157")),
            ("url_in", Some("http://example.com/index.html?q=a b")),
            ("user", None),
        ],
    );
    check(
        &format,
        "iso time, memory hit",
        b"2024-03-05T14:03:07.456 2001:db8::10 41000 2001:db8::1 3128 TCP_MEM_HIT 200 - 1520 389 \
          0 - - - GET http://example.com/logo.png?v=3 example.com 80 image/png -",
        &[
            ("client", Some("2001:db8::10")),
            ("ms", Some("0")),
            ("mime", Some("image/png")),
        ],
    );
}

#[test]
fn widths_alignment_and_precision() {
    let format = custom("%-15>a|%10<st|%010>st|%.5rm|%08.3tr|%.3tr|%.6tS|%ts.%06.6tu|%.1tr");
    check(
        &format,
        "widths",
        b"192.0.2.10     |      4521|0000004521|CONNE|0045.678|45.678|1709647387.077201|\
          1709647387.122879|45.0",
        &[
            ("client", Some("192.0.2.10")),
            ("out", Some("4521")),
            ("in", Some("4521")),
            ("method", Some("CONNE")),
            ("ms", Some("45")),
            ("time", Some("2024-03-05T14:03:07.122Z")),
        ],
    );
}

#[test]
fn ipv6_before_a_colon_splits_at_the_last_colon() {
    let format = custom("%ts %>a:%>p %Ss");
    check(
        &format,
        "v4",
        b"1 192.0.2.10:53211 TCP_MISS",
        &[("client", Some("192.0.2.10"))],
    );
    check(
        &format,
        "v6",
        b"1 2001:db8::10:41000 TCP_MISS",
        &[("client", Some("2001:db8::10"))],
    );
}

#[test]
fn member_and_list_headers_and_notes() {
    let format = custom("%ts %>a %{Forwarded:;for}>h %{X-Forwarded-For}>h %{Cookie:;sid}>h");
    check(
        &format,
        "member headers",
        b"1 192.0.2.40 192.0.2.60 198.51.100.1,%20192.0.2.60 abc123",
        &[("h:X-Forwarded-For", Some("198.51.100.1, 192.0.2.60"))],
    );
    let format = custom("%ts %>a %note %{user_group}note");
    check(
        &format,
        "notes",
        b"1 10.0.0.23 user_group:%20staff%0D%0Auser_group:%20vpn%0D%0A staff,vpn",
        &[("client", Some("10.0.0.23"))],
    );
}

#[test]
fn time_variants_and_the_unpadded_tu() {
    let format = custom("%tl|%tg|%{%s}tl|%ts.%tu|%ts.%03tu");
    let line = b"05/Mar/2024:15:03:07 +0100|05/Mar/2024:14:03:07|1709647387|1709647387.5|\
                 1709647387.005";
    check(
        &format,
        "time variants",
        line,
        &[("time", Some("2024-03-05T14:03:07.005Z"))],
    );
    check(
        &custom("%ts.%tu %>a"),
        "unpadded tu is milliseconds",
        b"1709647387.5 192.0.2.1",
        &[("time", Some("2024-03-05T14:03:07.005Z"))],
    );
    check(
        &custom("%tl %>a"),
        "tl alone",
        b"05/Mar/2024:15:03:07 +0100 192.0.2.1",
        &[("time", Some("2024-03-05T14:03:07.000Z"))],
    );
    check(
        &custom("%tS %tr %>a"),
        "start plus response time",
        b"1709647387.000 123 192.0.2.1",
        &[("time", Some("2024-03-05T14:03:07.123Z"))],
    );
}

#[test]
fn url_with_quotes_inside_literal_quotes() {
    let format = custom("%ts %>a \"%ru\"");
    check(
        &format,
        "url with quotes",
        b"1 192.0.2.10 \"http://example.com/say\\\"hi\\\"\\\\x\"",
        &[("url", Some("http://example.com/say\"hi\"\\x"))],
    );
}

#[test]
fn raw_user_with_spaces_before_more_fields() {
    let format = custom("%ts %un %Ss %>a");
    check(
        &format,
        "raw text backtracks",
        b"1 john q smith TCP_MISS 192.0.2.1",
        &[("user", Some("john q smith")), ("result", Some("TCP_MISS"))],
    );
}

#[test]
fn raw_header_as_last_field_takes_the_rest() {
    let format = custom("%ts %>a %'{User-Agent}>h");
    check(
        &format,
        "raw last",
        b"1 192.0.2.1 Mozilla/5.0 (X11) \"odd\"",
        &[("h:User-Agent", Some("Mozilla/5.0 (X11) \"odd\""))],
    );
}

#[test]
fn shell_encoding_wraps_only_values_with_spaces() {
    let format = custom("%ts %/{A}>h %/{B}>h");
    check(
        &format,
        "shell",
        b"1 \"my bot\" plain",
        &[("h:A", Some("my bot")), ("h:B", Some("plain"))],
    );
}

#[test]
fn mime_blob_region_reads_to_the_bracket() {
    let format = custom("%ts [%{X-Bot-Name}>h] %>a");
    check(
        &format,
        "blob",
        b"1 [My Bot %5bbeta%5d \"x\"] 192.0.2.1",
        &[("h:X-Bot-Name", Some("My Bot [beta] \"x\""))],
    );
}

#[test]
fn every_token_code_compiles_without_warnings() {
    let tables: [&[codes::CodeInfo]; 7] = [
        codes::MISC,
        codes::TWO,
        codes::ONE,
        codes::ICAP,
        codes::ADAPT,
        codes::SSL,
        codes::PROXY_PROTOCOL,
    ];
    for info in tables.iter().flat_map(|t| t.iter()) {
        let spec = format!("%ts %{{Arg}}{} %>a", info.name);
        let format = custom(&spec);
        let unknown = format
            .warnings()
            .iter()
            .any(|w| matches!(w, FormatWarning::UnknownCode { .. }));
        assert!(!unknown, "{spec}: {:?}", format.warnings());
    }
}

/// One value per code class, written the way Squid writes it, read back.
#[test]
fn each_code_class_reads_its_values() {
    let cases: &[(&str, &[u8], &str, Option<&str>)] = &[
        ("%ts %>Hs", b"1 200", "status", Some("200")),
        ("%ts %>Hs", b"1 -", "status", None),
        ("%ts %<st", b"1 -1", "out", Some("-1")),
        (
            "%ts %>st",
            b"1 9223372036854775807",
            "in",
            Some("9223372036854775807"),
        ),
        ("%ts %tr", b"1 7", "ms", Some("7")),
        ("%ts %6tr", b"1      7", "ms", Some("7")),
        ("%ts %-6tr|", b"1 7     |", "ms", Some("7")),
        ("%ts %06tr", b"1 000007", "ms", Some("7")),
        ("%ts %.3tr", b"1 7.250", "ms", Some("7")),
        (
            "%ts %>a",
            b"1 ::ffff:10.0.0.1",
            "client",
            Some("::ffff:10.0.0.1"),
        ),
        (
            "%ts %Ss",
            b"1 TCP_DENIED_REPLY",
            "result",
            Some("TCP_DENIED_REPLY"),
        ),
        ("%ts %mt", b"1 text/html", "mime", Some("text/html")),
        ("%ts %rm", b"1 PROPFIND", "method", Some("PROPFIND")),
        ("%ts %>rm", b"1 GET", "method_in", Some("GET")),
        ("%ts %ul", b"1 alice", "login", Some("alice")),
        ("%ts %ue", b"1 ext user", "ext", Some("ext user")),
        ("%ts %ui", b"1 ident", "ident", Some("ident")),
        ("%ts %[un", b"1 a%20b c", "user", Some("a b c")),
        ("%ts %#un", b"1 a%2520", "user", Some("a%20")),
        ("%ts %'un", b"1 a b", "user", Some("a b")),
        ("%ts %\"un", b"1 a\\tb", "user", Some("a\tb")),
        ("%ts %http::>h{X}", b"1 y", "h:X", Some("y")),
        ("%ts %>h", b"1 X:%20y%0D%0A", "h:X", Some("y")),
        (
            "%ts %{%H}tl %>a",
            b"1 07 192.0.2.1",
            "client",
            Some("192.0.2.1"),
        ),
        ("%ts %<sS", b"1 -5", "client", None),
        ("%ts %>qos %<nfmark", b"1 0x1a 0x0", "client", None),
        ("%ts %rv %>rv", b"1 1.1 0.0", "client", None),
        ("%ts %>handshake", b"1 R0VUIC8=", "client", None),
        (
            "%ts %zz %>a",
            b"1 opaque 192.0.2.9",
            "client",
            Some("192.0.2.9"),
        ),
        (
            "%ts %byte{65}|%>a",
            b"1 A|192.0.2.9",
            "client",
            Some("192.0.2.9"),
        ),
    ];
    for (spec, line, key, want) in cases {
        check(&custom(spec), spec, line, &[(key, *want)]);
    }
}

#[test]
fn mismatch_reports_column_expectation_and_field() {
    let err = squid()
        .parse(b"1709647387.123    157 192.0.2.10 TCP_MISS/2x0 5123 GET http://e/ - HIER_NONE/- -")
        .unwrap_err();
    assert_eq!(err.column(), 43, "{err}");
    assert!(err.to_string().contains("expected a number"), "{err}");
    assert_eq!(err.field(), Some("field 4 result code/status"));

    let format = custom(NATIVE_SPEC);
    let err = format
        .parse(b"1709647387.123    157 192.0.2.10 TCP_MISS:200 5123 GET http://e/ - HIER_NONE/- -")
        .unwrap_err();
    assert_eq!(err.column(), 42, "{err}");
    assert!(err.to_string().contains("expected \"/\""), "{err}");
    assert!(err.field().unwrap().contains("%Ss"), "{err:?}");
}

#[test]
fn overflowing_numbers_name_the_field() {
    let err = custom("%ts %<st %>a")
        .parse(b"1 99999999999999999999 192.0.2.1")
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("fits in 64 bits in field 2 `%<st`"),
        "{err}"
    );
    assert!(err.field().unwrap().contains("%<st"), "{err:?}");
    let err = squid()
        .parse(b"1.000 1 - NONE/000 99999999999999999999 - x - HIER_NONE/- -")
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("fits in 64 bits in field 5 reply size"),
        "{err}"
    );
    assert_eq!(err.field(), Some("field 5 reply size"));
}

#[test]
fn malformed_times_are_errors() {
    let err = squid()
        .parse(b"1.2.3 1 - NONE/000 0 - x - HIER_NONE/- -")
        .unwrap_err();
    assert_eq!(err.column(), 1, "{err}");
    assert!(custom("%tS %>a").parse(b"1.2.3 192.0.2.1").is_err());
    assert!(custom("%ts.%03tu %>a").parse(b"1.5000 192.0.2.1").is_err());
}

#[test]
fn absurd_widths_do_not_overflow() {
    let format = custom("%ts %-99999999999999999999999>Hs %{%99993    0}tl|%>a");
    assert!(format.parse(b"1 200 x|192.0.2.1").is_err());
    let format = custom("%ts %-99999999999999999999999>Hs|%>a");
    assert!(format.parse(b"1 200|192.0.2.1").is_err());
}

#[test]
fn over_long_line_is_an_error_keeping_its_head() {
    let format = squid().with_max_line_bytes(300);
    let line = vec![b'7'; 301];
    match format.parse(&line) {
        Err(ParseError::TooLong { len, limit, head }) => {
            assert_eq!((len, limit, head.len()), (301, 300, TOO_LONG_HEAD_BYTES));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn truncated_five_x_record_is_an_error() {
    let line = "1709647387.123    157 192.0.2.10 TCP_MISS/200 5123 GET http://example.com/aaaa";
    assert!(squid().parse(line.as_bytes()).is_err());
    assert!(custom(NATIVE_SPEC).parse(line.as_bytes()).is_err());
}

#[test]
fn unknown_builtin_and_code_free_specs_are_refused() {
    assert!(LineFormat::builtin("icap").is_err());
    assert!(LineFormat::logformat("just text").is_err());
}

#[test]
fn format_without_time_warns() {
    let format = custom("%>a %ru");
    assert!(format.warnings().contains(&FormatWarning::NoTime));
}

#[test]
fn pathological_format_gives_up_within_budget() {
    let format = custom("%ts %un %un %un %un %un %un x");
    let line = format!("1 {}", "a ".repeat(300));
    let err = format.parse(line.as_bytes()).unwrap_err();
    assert!(err.to_string().contains("expected"), "{err}");
}

#[test]
fn load_reads_each_kind_of_spec() {
    let path = Path::new("/var/log/squid/access.log");
    let format = load(&FormatSpec::Builtin("combined".into()), path).unwrap();
    assert_eq!(format.info().name, "combined");
    let format = load(&FormatSpec::Logformat(NATIVE_SPEC.into()), path).unwrap();
    assert_eq!(format.info().spec.as_deref(), Some(NATIVE_SPEC));
    assert!(load(&FormatSpec::SquidConf("/nonexistent.conf".into()), path).is_err());
}

/// A value of `class` as Squid writes it unquoted.
fn sample_value(info: &codes::CodeInfo) -> &'static str {
    use codes::Class::*;
    match info.class {
        Int | Millis | EpochSeconds | SubSecond => "42",
        StartTime => "1709647387.250",
        LocalTime => "05/Mar/2024:15:03:07 +0100",
        GmtTime => "05/Mar/2024:14:03:07",
        Ip => "2001:db8::7",
        Word => "TCP_MISS",
        Hex => "0x1a",
        Version => "1.1",
        Mime => "text/html",
        Token => "tok-en/1",
        Text if info.pass_through => "free%20text",
        Text => "free text",
    }
}

#[test]
fn every_code_reads_a_value_and_a_dash() {
    let tables: [&[codes::CodeInfo]; 8] = [
        codes::MISC,
        codes::TWO,
        codes::ONE,
        codes::ICAP,
        codes::ADAPT,
        codes::SSL,
        codes::PROXY_PROTOCOL,
        codes::TRANSPORT,
    ];
    for info in tables.iter().flat_map(|t| t.iter()) {
        let spec = format!("%ts %{}|%>a", info.name);
        let format = custom(&spec);
        for value in [sample_value(info), "-"] {
            let line = format!("1709647387 {value}|192.0.2.1");
            let fields = format
                .parse(line.as_bytes())
                .unwrap_or_else(|e| panic!("{spec} on {line:?}: {e}"));
            assert_eq!(
                get(&fields, "client").as_deref(),
                Some("192.0.2.1"),
                "{spec}"
            );
        }
    }
}

#[test]
fn every_modifier_combination_reads_a_padded_number() {
    for left in ["", "-"] {
        for zero in ["", "0"] {
            for width in ["", "8"] {
                for precision in ["", ".3"] {
                    let spec = format!("%ts %{left}{zero}{width}{precision}<st|%>a");
                    // Squid zero-pads numbers itself when `0` is given, so
                    // the alignment then has nothing left to pad.
                    let value = match (left, zero, width) {
                        (_, _, "") => "42".to_string(),
                        (_, "0", _) => format!("{:08}", 42),
                        ("-", _, _) => format!("{:<8}", 42),
                        _ => format!("{:>8}", 42),
                    };
                    let line = format!("1 {value}|192.0.2.1");
                    check(
                        &custom(&spec),
                        &spec,
                        line.as_bytes(),
                        &[("out", Some("42"))],
                    );
                }
            }
        }
    }
}

#[test]
fn formats_can_be_shared_between_threads() {
    fn shareable<T: Send + Sync + Clone>() {}
    shareable::<LineFormat>();
}
