//! Fuzz target: any bytes as a log line, against every built-in format and
//! two custom formats, then through enrichment. Must never panic.

#![no_main]

use std::sync::LazyLock;

use egress_audit::config::Config;
use egress_audit::enrich::Enricher;
use egress_audit::parse::LineFormat;
use libfuzzer_sys::fuzz_target;

static FORMATS: LazyLock<Vec<LineFormat>> = LazyLock::new(|| {
    let mut formats: Vec<LineFormat> = ["squid", "common", "combined", "referrer", "useragent"]
        .iter()
        .map(|name| LineFormat::builtin(name).expect("built-in format"))
        .collect();
    for spec in [
        "%ts.%03tu %6tr %>a %Ss/%03>Hs %<st %rm %ru %[un %Sh/%<a %mt \"%{X-Bot-Name}>h\"",
        "%{%Y-%m-%dT%H:%M:%S}tg.%03tu %>a:%>p %un %{X-Bot-Name}>h [%{X-Bot-Group}>h] %/ul",
    ] {
        formats.push(LineFormat::logformat(spec).expect("valid specification"));
    }
    formats
});

static ENRICHER: LazyLock<Enricher> =
    LazyLock::new(|| Enricher::new(&Config::default(), "fuzz", None).expect("default config"));

fuzz_target!(|line: &[u8]| {
    for format in FORMATS.iter() {
        if let Ok(fields) = format.parse(line) {
            let _ = ENRICHER.record(&fields, 0, 0);
        }
    }
});
