//! The compiler and the parsers never panic, whatever the bytes: arbitrary
//! specifications, and arbitrary lines against every built-in format and
//! against compiled specifications. Stands in for fuzzing where cargo-fuzz
//! cannot run (it needs a nightly toolchain); `fuzz/` holds the same checks
//! as fuzz targets.

use egress_audit::config::Config;
use egress_audit::enrich::Enricher;
use egress_audit::parse::LineFormat;
use proptest::prelude::*;

/// Pieces that make specifications and lines interesting to the parser.
const PIECES: &[&str] = &[
    "%",
    "%%",
    "{",
    "}",
    "\"",
    "[",
    "]",
    "'",
    "#",
    "/",
    "-",
    "0",
    "9",
    ".",
    ">",
    "<",
    " ",
    "h",
    "a",
    "ts",
    "tu",
    "tl",
    "tg",
    "tS",
    "tr",
    "un",
    "Ss",
    "Sh",
    "rm",
    "ru",
    ">a",
    "<st",
    ">Hs",
    "icap::",
    "ssl::",
    "http::",
    "adapt::",
    "%{X}>h",
    "%>h",
    "%03tu",
    "%6tr",
    "%-9>a",
    "%.3tr",
    "%{%Y-%m-%d}tg",
    "%/un",
    "%#un",
    "%[un",
    "%\"un",
    "%'un",
    "\\",
    "\\\"",
    "%20",
    "%zz",
    "ü",
    "\u{0}",
    "\t",
    "05/Mar/2024:15:03:07 +0100",
    "1709647387.123",
    "TCP_MISS/200",
    "HIER_NONE/-",
    "-03-30",
    "2001:db8::1",
    "\"-\"",
    "] [",
    "\" \"",
];

fn pieces() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![
            (0..PIECES.len()).prop_map(|i| PIECES[i].as_bytes().to_vec()),
            proptest::collection::vec(any::<u8>(), 0..4),
        ],
        0..24,
    )
    .prop_map(|parts| parts.concat())
}

fn exercise(format: &LineFormat, line: &[u8], enricher: &Enricher) {
    if let Ok(fields) = format.parse(line) {
        let _ = fields.created_at();
        let _ = fields.header("X-Bot-Name");
        let _ = enricher.record(&fields, 0, 0);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn builtin_parsers_never_panic(line in prop_oneof![pieces(), any::<Vec<u8>>()]) {
        let enricher = Enricher::new(&Config::default(), "fuzz", None).unwrap();
        for name in ["squid", "common", "combined", "referrer", "useragent"] {
            exercise(&LineFormat::builtin(name).unwrap(), &line, &enricher);
        }
    }

    #[test]
    fn compiler_and_custom_parser_never_panic(
        spec in pieces(),
        lines in proptest::collection::vec(prop_oneof![pieces(), any::<Vec<u8>>()], 1..4),
    ) {
        let enricher = Enricher::new(&Config::default(), "fuzz", None).unwrap();
        let spec = String::from_utf8_lossy(&spec);
        if let Ok(format) = LineFormat::logformat(&spec) {
            for line in &lines {
                exercise(&format, line, &enricher);
            }
        }
    }
}
