//! Parsing speed over a generated 1,000,000-line log, next to `wc -l`.
//!
//! Generates the native log and a custom log with quoted bot headers in
//! memory (and in files under the target directory, for `wc -l`), then
//! measures `LineFormat::parse` over all lines on one thread, and the same
//! with enrichment into records. Run: `cargo bench --bench parse`.

use std::hint::black_box;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use egress_audit::config::Config;
use egress_audit::enrich::Enricher;
use egress_audit::parse::LineFormat;

const LINES: usize = 1_000_000;

const QUOTED: &str = "%ts.%03tu %6tr %>a %Ss/%03>Hs %<st %>st %rm %>ru %[un %Sh/%<a %mt \
                      \"%{User-Agent}>h\" \"%{X-Bot-Name}>h\" \"%{X-Bot-Group}>h\"";

/// A small deterministic generator (xorshift), so every run sees the same log.
struct Noise(u64);

impl Noise {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

const HOSTS: &[&str] = &[
    "api.example.com",
    "en.wikipedia.org",
    "registry.npmjs.org",
    "files.pythonhosted.org",
    "news.example.net",
];
const RESULTS: &[&str] = &[
    "TCP_MISS/200",
    "TCP_MISS/404",
    "TCP_DENIED/403",
    "TCP_MISS/503",
];
const BOTS: &[&str] = &[
    "crawler-7",
    "pricebot",
    "My Bot 1.0",
    "Example \\\"Crawler\\\" v2",
    "-",
];

fn generate(quoted: bool) -> Vec<u8> {
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
    let mut out = Vec::with_capacity(LINES * 200);
    for i in 0..LINES {
        let host = HOSTS[noise.next(HOSTS.len() as u64) as usize];
        let result = RESULTS[noise.next(RESULTS.len() as u64) as usize];
        let time = 1_763_600_000 + i as u64 / 20;
        let line = if quoted {
            let bot = BOTS[noise.next(BOTS.len() as u64) as usize];
            format!(
                "{time}.{:03} {:6} 10.0.{}.{} {result} {} {} GET \
                 http://{host}/v1/items/{i}?page={} - HIER_DIRECT/203.0.113.{} application/json \
                 \"python-requests/2.32.3\" \"{bot}\" \"research\"\n",
                noise.next(1000),
                noise.next(5000),
                noise.next(8),
                noise.next(250),
                noise.next(90_000),
                noise.next(2000),
                noise.next(50),
                noise.next(250)
            )
        } else {
            format!(
                "{time}.{:03} {:6} 10.0.{}.{} {result} {} GET http://{host}/v1/items/{i}? {} \
                 HIER_DIRECT/203.0.113.{} application/json\n",
                noise.next(1000),
                noise.next(5000),
                noise.next(8),
                noise.next(250),
                noise.next(90_000),
                if i % 3 == 0 { "pricebot" } else { "-" },
                noise.next(250)
            )
        };
        out.extend_from_slice(line.as_bytes());
    }
    out
}

fn lines(log: &[u8]) -> impl Iterator<Item = &[u8]> {
    log.split(|b| *b == b'\n').filter(|l| !l.is_empty())
}

/// Writes the log under the target directory and times `wc -l` on it.
fn time_wc(name: &str, log: &[u8]) {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, log).unwrap();
    let _ = Command::new("wc").arg("-l").arg(&path).output();
    let start = Instant::now();
    let output = Command::new("wc").arg("-l").arg(&path).output().unwrap();
    let elapsed = start.elapsed();
    let count = String::from_utf8_lossy(&output.stdout);
    let rate = LINES as f64 / elapsed.as_secs_f64();
    println!(
        "wc -l {}: {} lines in {:.1} ms ({:.1} M lines/s)",
        path.display(),
        count.split_whitespace().next().unwrap_or("?"),
        elapsed.as_secs_f64() * 1000.0,
        rate / 1e6
    );
}

fn bench(c: &mut Criterion) {
    let native = generate(false);
    let quoted = generate(true);
    time_wc("bench-native.log", &native);
    time_wc("bench-quoted.log", &quoted);
    let squid = LineFormat::builtin("squid").unwrap();
    let custom = LineFormat::logformat(QUOTED).unwrap();
    let enricher = Enricher::new(&Config::default(), "bench", None).unwrap();

    let mut group = c.benchmark_group("parse 1M lines");
    group.sample_size(10);
    group.throughput(Throughput::Elements(LINES as u64));
    group.bench_function("native (squid)", |b| {
        b.iter(|| {
            for line in lines(&native) {
                black_box(squid.parse(line).unwrap());
            }
        })
    });
    group.bench_function("custom, quoted headers", |b| {
        b.iter(|| {
            for line in lines(&quoted) {
                black_box(custom.parse(line).unwrap());
            }
        })
    });
    group.bench_function("native, parse and enrich", |b| {
        b.iter(|| {
            for line in lines(&native) {
                let fields = squid.parse(line).unwrap();
                black_box(enricher.record(&fields, 0, 0).unwrap());
            }
        })
    });
    group.bench_function("custom, parse and enrich", |b| {
        b.iter(|| {
            for line in lines(&quoted) {
                let fields = custom.parse(line).unwrap();
                black_box(enricher.record(&fields, 0, 0).unwrap());
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
