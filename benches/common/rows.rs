//! Generated rows for the ingest benchmarks: a native Squid log of known
//! shape, and the same rows parsed by the library into CSV for `psql \copy`.

#![allow(dead_code)]

use std::io::Write;
use std::path::Path;

use egress_audit::config::Config;
use egress_audit::pipeline::source::SourceParser;

/// A native-format line; bots are proxy users, 50 of them.
pub fn line(n: u64, at_ms: i64) -> String {
    let status = [200, 200, 200, 404, 200, 503, 200, 301][(n % 8) as usize];
    format!(
        "{}.{:03} {:>6} 10.0.{}.{} TCP_MISS/{status} {} GET https://host-{}.example/v1/items/{} bot-{} \
         HIER_DIRECT/203.0.113.{} application/json",
        at_ms / 1000,
        at_ms % 1000,
        (n * 37) % 3000,
        (n / 250) % 250,
        n % 250,
        (n * 131) % 200_000,
        n % 5000,
        n % 100_000,
        n % 50,
        n % 250
    )
}

pub fn write_log(path: &Path, lines: u64) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let start = 1_772_100_000_000i64;
    for n in 0..lines {
        writeln!(out, "{}", line(n, start + n as i64 * 3)).unwrap();
    }
    out.flush().unwrap();
}

/// The same rows as CSV, parsed by the library, for the `\copy` reference.
pub fn write_csv(log: &Path, csv_path: &Path) {
    let config = Config::default();
    let parser = SourceParser::new(
        &config,
        &egress_audit::config::FormatSpec::Builtin("squid".into()),
        log,
        "bench",
        None,
    )
    .unwrap();
    let data = std::fs::read(log).unwrap();
    let mut writer = csv::Writer::from_path(csv_path).unwrap();
    let mut offset = 0u64;
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let num = |v: Option<i64>| v.map(|n| n.to_string()).unwrap_or_default();
    for raw in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let fields = parser.format.parse(raw).unwrap();
        let r = parser.enricher.record(&fields, 1, offset).unwrap();
        offset += raw.len() as u64 + 1;
        writer
            .write_record([
                r.id.to_string(),
                r.bot_name.clone(),
                text(&r.group_name),
                r.destination_url.clone(),
                text(&r.destination_host),
                text(&r.http_method),
                r.status_code.map(|s| s.to_string()).unwrap_or_default(),
                num(r.request_size_bytes),
                num(r.response_size_bytes),
                num(r.latency_ms),
                text(&r.user_agent),
                r.created_at.to_rfc3339(),
                text(&r.client_ip),
                text(&r.proxy_user),
                text(&r.squid_status),
                text(&r.hierarchy),
                text(&r.content_type),
                text(&r.source),
            ])
            .unwrap();
    }
    writer.flush().unwrap();
}

pub const COLUMNS: &str = "id, bot_name, group_name, destination_url, destination_host, http_method, \
     status_code, request_size_bytes, response_size_bytes, latency_ms, user_agent, created_at, \
     client_ip, proxy_user, squid_status, hierarchy, content_type, source";
