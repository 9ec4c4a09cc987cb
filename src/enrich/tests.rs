//! Tests of enrichment: identity order, groups, hosts, redaction, limits.

use super::*;
use crate::config::{BotRule, BotSource, Config};
use crate::parse::LineFormat;

const BOT_SPEC: &str = "%ts.%03tu %6tr %>a %Ss/%03>Hs %<st %rm %>ru %[un %Sh/%<a %mt \
                        \"%{User-Agent}>h\" \"%{x-bot-name}>h\" \"%{X-Bot-Group}>h\" %>st";

fn config() -> Config {
    Config {
        bots: vec![
            rule("10.0.0.0/8", "wide", Some("corp")),
            rule("10.0.3.0/24", "crawler", Some("research")),
            rule("10.0.3.7/32", "pinned", None),
            rule("2001:db8::/32", "v6bot", Some("v6")),
        ],
        ..Config::default()
    }
}

fn rule(cidr: &str, name: &str, group: Option<&str>) -> BotRule {
    BotRule {
        cidr: cidr.parse().unwrap(),
        name: name.into(),
        group: group.map(str::to_string),
    }
}

fn line(client: &str, user: &str, bot: &str, group: &str, url: &str) -> String {
    format!(
        "1709647387.123    157 {client} TCP_MISS/200 5123 GET {url} {user} \
         HIER_DIRECT/93.184.216.34 text/html \"curl/8.5\" \"{bot}\" \"{group}\" 321"
    )
}

fn record_with(config: &Config, text: &str) -> Record {
    let format = LineFormat::logformat(BOT_SPEC).unwrap();
    let fields = format.parse(text.as_bytes()).unwrap();
    let enricher = Enricher::new(config, "gw1", Some("default-group")).unwrap();
    enricher.record(&fields, 7, 100).unwrap()
}

fn record(text: &str) -> Record {
    record_with(&config(), text)
}

#[test]
fn all_columns_are_filled_from_a_full_line() {
    let r = record(&line(
        "10.0.3.9",
        "alice",
        "Crawler 1",
        "team-a",
        "http://Ex.com:8080/a?x=1",
    ));
    assert_eq!(r.bot_name, "Crawler 1");
    assert_eq!(r.group_name.as_deref(), Some("team-a"));
    assert_eq!(r.destination_url, "http://Ex.com:8080/a?x=1");
    assert_eq!(r.destination_host.as_deref(), Some("ex.com"));
    assert_eq!(r.http_method.as_deref(), Some("GET"));
    assert_eq!(r.status_code, Some(200));
    assert_eq!(r.request_size_bytes, Some(321));
    assert_eq!(r.response_size_bytes, Some(5123));
    assert_eq!(r.latency_ms, Some(157));
    assert_eq!(r.user_agent.as_deref(), Some("curl/8.5"));
    assert_eq!(r.created_at.to_rfc3339(), "2024-03-05T14:03:07.123+00:00");
    assert_eq!(r.client_ip.as_deref(), Some("10.0.3.9"));
    assert_eq!(r.proxy_user.as_deref(), Some("alice"));
    assert_eq!(r.squid_status.as_deref(), Some("TCP_MISS"));
    assert_eq!(r.hierarchy.as_deref(), Some("HIER_DIRECT/93.184.216.34"));
    assert_eq!(r.content_type.as_deref(), Some("text/html"));
    assert_eq!(r.source.as_deref(), Some("gw1"));
    let origin = LineOrigin {
        source: "gw1",
        fingerprint: 7,
        offset: 100,
    };
    assert_eq!(r.id, row_id(r.created_at, origin));
}

#[test]
fn bot_name_falls_back_header_user_address_unknown() {
    let cases = [
        (
            line("10.0.3.9", "alice", "hdr", "-", "http://a/"),
            "hdr",
            "research",
        ),
        (
            line("10.0.3.9", "alice", "-", "-", "http://a/"),
            "alice",
            "research",
        ),
        (
            line("10.0.3.9", "-", "-", "-", "http://a/"),
            "crawler",
            "research",
        ),
        (
            line("10.0.3.7", "-", "-", "-", "http://a/"),
            "pinned",
            "default-group",
        ),
        (line("10.9.9.9", "-", "-", "-", "http://a/"), "wide", "corp"),
        (
            line("2001:db8::5", "-", "-", "-", "http://a/"),
            "v6bot",
            "v6",
        ),
        (
            line("192.0.2.1", "-", "-", "-", "http://a/"),
            "unknown",
            "default-group",
        ),
    ];
    for (text, bot, group) in cases {
        let r = record(&text);
        assert_eq!(
            (r.bot_name.as_str(), r.group_name.as_deref()),
            (bot, Some(group)),
            "{text}"
        );
    }
}

#[test]
fn bot_order_is_configurable() {
    let mut config = config();
    config.identity.bot_order = vec![BotSource::Address, BotSource::Header];
    let r = record_with(&config, &line("10.0.3.9", "alice", "hdr", "-", "http://a/"));
    assert_eq!(r.bot_name, "crawler");
    let r = record_with(
        &config,
        &line("192.0.2.1", "alice", "hdr", "-", "http://a/"),
    );
    assert_eq!(r.bot_name, "hdr");
}

#[test]
fn renamed_bot_header_is_matched_case_insensitively() {
    let mut config = config();
    config.identity.bot_header = "X-BOT-NAME".into();
    config.identity.group_header = "x-bot-group".into();
    let r = record_with(&config, &line("192.0.2.1", "-", "b", "g", "http://a/"));
    assert_eq!(
        (r.bot_name.as_str(), r.group_name.as_deref()),
        ("b", Some("g"))
    );
}

#[test]
fn ipv4_mapped_client_matches_ipv4_ranges() {
    let r = record(&line("::ffff:10.0.3.9", "-", "-", "-", "http://a/"));
    assert_eq!(r.bot_name, "crawler");
}

#[test]
fn secrets_in_the_query_are_redacted() {
    let r = record(&line(
        "192.0.2.1",
        "-",
        "-",
        "-",
        "http://a/p?api_key=abc&q=1&Token=t",
    ));
    assert_eq!(
        r.destination_url,
        "http://a/p?api_key=REDACTED&q=1&Token=REDACTED"
    );
    let mut config = config();
    config.redact.query_params = vec![];
    let r = record_with(
        &config,
        &line("192.0.2.1", "-", "-", "-", "http://a/p?token=t"),
    );
    assert_eq!(r.destination_url, "http://a/p?token=t");
}

#[test]
fn extra_parameters_are_redacted_beside_the_built_in_ones() {
    let mut config = config();
    config.redact.extra_query_params = vec!["session".into()];
    let r = record_with(
        &config,
        &line(
            "192.0.2.1",
            "-",
            "-",
            "-",
            "http://a/p?session=s&token=t&q=1",
        ),
    );
    assert_eq!(
        r.destination_url,
        "http://a/p?session=REDACTED&token=REDACTED&q=1"
    );
    config.redact.query_params = vec![];
    let r = record_with(
        &config,
        &line("192.0.2.1", "-", "-", "-", "http://a/p?session=s&token=t"),
    );
    assert_eq!(r.destination_url, "http://a/p?session=REDACTED&token=t");
}

/// A pass-through `%>ru` keeps `%` as the client sent it: decoding would
/// turn `%2F` into `/` and let a `%26` inside a secret end its value early.
#[test]
fn received_urls_keep_their_percent_escapes_and_secrets_stay_whole() {
    let r = record(&line(
        "192.0.2.1",
        "-",
        "-",
        "-",
        "http://a/x%2Fy?q=a%20b&api_key=abc%26def&x=1",
    ));
    assert_eq!(
        r.destination_url,
        "http://a/x%2Fy?q=a%20b&api_key=REDACTED&x=1"
    );
    assert!(!r.destination_url.contains("def"), "{}", r.destination_url);
}

#[test]
fn long_names_and_methods_are_cut_and_counted() {
    let format = LineFormat::logformat(BOT_SPEC).unwrap();
    let long = "b".repeat(70);
    let text = line("192.0.2.1", "-", &long, &"g".repeat(65), "http://a/")
        .replace(" GET ", " VERYLONGMETHOD ");
    let fields = format.parse(text.as_bytes()).unwrap();
    let enricher = Enricher::new(&config(), "gw1", None).unwrap();
    let r = enricher.record(&fields, 0, 0).unwrap();
    assert_eq!(r.bot_name.len(), 64);
    assert_eq!(r.group_name.unwrap().len(), 64);
    assert_eq!(r.http_method.as_deref(), Some("VERYLONGME"));
    let counts = enricher.truncations();
    assert_eq!(
        (counts.bot_name, counts.group_name, counts.http_method),
        (1, 1, 1)
    );
}

#[test]
fn status_zero_is_null_but_squid_status_stays() {
    let format = LineFormat::builtin("squid").unwrap();
    let text = "1709647394.005  30012 192.0.2.16 TCP_MISS_ABORTED/000 0 GET \
                http://slow.example/report - HIER_DIRECT/198.51.100.21 -";
    let fields = format.parse(text.as_bytes()).unwrap();
    let r = Enricher::new(&config(), "gw1", None)
        .unwrap()
        .record(&fields, 0, 0)
        .unwrap();
    assert_eq!(r.status_code, None);
    assert_eq!(r.squid_status.as_deref(), Some("TCP_MISS_ABORTED"));
    assert_eq!(r.request_size_bytes, None);
    assert_eq!(r.response_size_bytes, Some(0));
    assert_eq!(r.hierarchy.as_deref(), Some("HIER_DIRECT/198.51.100.21"));
    assert_eq!(r.content_type, None);
}

#[test]
fn native_connect_gets_host_and_hierarchy_dash() {
    let format = LineFormat::builtin("squid").unwrap();
    let text = "1709647391.778      0 192.0.2.12 TCP_DENIED/403 3845 CONNECT blocked.example:443 \
                bot-7 HIER_NONE/- text/html";
    let fields = format.parse(text.as_bytes()).unwrap();
    let r = Enricher::new(&config(), "gw1", None)
        .unwrap()
        .record(&fields, 0, 0)
        .unwrap();
    assert_eq!(r.destination_host.as_deref(), Some("blocked.example"));
    assert_eq!(r.hierarchy.as_deref(), Some("HIER_NONE/-"));
    assert_eq!(r.bot_name, "bot-7");
}

#[test]
fn common_format_hierarchy_has_no_server() {
    let format = LineFormat::builtin("common").unwrap();
    let text = "192.0.2.10 - - [05/Mar/2024:15:03:07 +0100] \"GET http://example.com/ HTTP/1.1\" \
                200 5123 TCP_MISS:HIER_DIRECT";
    let fields = format.parse(text.as_bytes()).unwrap();
    let r = Enricher::new(&config(), "gw1", None)
        .unwrap()
        .record(&fields, 0, 0)
        .unwrap();
    assert_eq!(r.hierarchy.as_deref(), Some("HIER_DIRECT"));
    assert_eq!(r.latency_ms, None);
}

#[test]
fn line_without_time_is_an_error() {
    let format = LineFormat::logformat("%>a %ru").unwrap();
    let fields = format.parse(b"192.0.2.1 http://a/").unwrap();
    let err = Enricher::new(&config(), "gw1", None)
        .unwrap()
        .record(&fields, 0, 0)
        .unwrap_err();
    assert_eq!(err, EnrichError::NoTime);
}

#[test]
fn status_out_of_range_names_the_column() {
    let format = LineFormat::logformat("%ts %>Hs %ru").unwrap();
    let fields = format.parse(b"1 99999999999 http://a/").unwrap();
    let err = Enricher::new(&config(), "gw1", None)
        .unwrap()
        .record(&fields, 0, 0)
        .unwrap_err();
    assert!(err.to_string().contains("status_code"), "{err}");
}

#[test]
fn destination_hosts() {
    let cases = [
        ("http://Example.COM/a", None, Some("example.com")),
        (
            "https://user:pw@host.example:8443/x?y",
            None,
            Some("host.example"),
        ),
        ("http://[2001:DB8::1]:8080/", None, Some("2001:db8::1")),
        (
            "www.example.org:443",
            Some("CONNECT"),
            Some("www.example.org"),
        ),
        ("[2001:db8::1]:443", Some("CONNECT"), Some("2001:db8::1")),
        ("93.184.216.34:443", None, Some("93.184.216.34")),
        ("error:invalid-request", None, None),
        ("/path/only", Some("GET"), None),
        ("", None, None),
    ];
    for (url, method, want) in cases {
        assert_eq!(destination_host(url, method).as_deref(), want, "{url}");
    }
}

#[test]
fn empty_identity_header_is_a_config_error() {
    let mut config = config();
    config.identity.bot_header = " ".into();
    assert!(Enricher::new(&config, "gw1", None).is_err());
}

#[test]
fn enricher_can_be_shared_between_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Enricher>();
}
