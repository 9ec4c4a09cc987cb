//! Against a real Squid (Debian's 5.7 at /usr/sbin/squid): runs Squid on a
//! loopback port with its own configuration in a temporary directory, logging
//! the same traffic in the built-in formats and in custom formats with bot
//! headers, sends a few hundred varied requests through it to a small origin
//! server in this test, rotates the logs once, and checks every parsed field
//! of every line against what was sent. Fails loudly when Squid is missing.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use egress_audit::config::Config;
use egress_audit::enrich::Enricher;
use egress_audit::parse::LineFormat;
use egress_audit::record::Record;

const SQUID: &str = "/usr/sbin/squid";

/// Squid runs in this zone (UTC-03:30), whose offset the built-ins misprint.
const ZONE: &str = "America/St_Johns";
const ZONE_FILE: &str = "/usr/share/zoneinfo/America/St_Johns";

/// Custom formats: quoted headers, unquoted (%-encoded) headers, and a mix of
/// strftime times, MIME-blob, shell and raw encodings.
const BOTS: &str = "%ts.%03tu %6tr %>a %Ss/%03>Hs %<st %>st %rm %>ru %[un %Sh/%<a %mt \
                    \"%{User-Agent}>h\" \"%{X-Bot-Name}>h\" \"%{X-Bot-Group}>h\"";
const BOTS_RAW: &str = "%ts.%03tu %tr %>a %>Hs %<st %>st %rm %>rs %{X-Bot-Name}>h \
                        %{X-Bot-Group}>h %<sS %>ru";
const MIXED: &str = "%{%Y-%m-%dT%H:%M:%S}tg.%03tu %tl %tg %>a:%>p %Ss %>Hs %rm %ru \
                     [%{X-Bot-Name}>h] %/{X-Bot-Group}>h %'{User-Agent}>h";
/// Squid's error page id and error detail, logged apart from `LOGS` (the
/// checks of every field do not cover these codes) to settle their form.
const ERRS: &str = "%Ss/%03>Hs %rm %ru %err_code %err_detail %ts.%03tu";

/// The log files and the format each is written in.
const LOGS: &[(&str, &str)] = &[
    ("native", "squid"),
    ("common", "common"),
    ("combined", "combined"),
    ("referrer", "referrer"),
    ("useragent", "useragent"),
    ("bots", "bots"),
    ("botsraw", "botsraw"),
    ("mixed", "mixed"),
];

/// A running Squid, stopped when dropped (also when a test panics).
struct Squid {
    child: Child,
    /// Squid's service name (`-n`), unique per run so that concurrent
    /// Squids never share names of shared resources.
    service: String,
    conf: PathBuf,
    dir: PathBuf,
    port: u16,
}

impl Drop for Squid {
    fn drop(&mut self) {
        let _ = Command::new(SQUID)
            .args(["-n", &self.service, "-k", "shutdown", "-f"])
            .arg(&self.conf)
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn squid_conf(dir: &Path, port: u16) -> String {
    let d = dir.display();
    let mut conf = format!(
        "http_port 127.0.0.1:{port}\n\
         pid_filename {d}/squid.pid\n\
         cache_log {d}/cache.log\n\
         coredump_dir {d}\n\
         cache deny all\n\
         cache_mem 8 MB\n\
         visible_hostname egress-audit-test\n\
         pinger_enable off\n\
         shutdown_lifetime 0 seconds\n\
         logfile_rotate 1\n\
         acl blocked urlpath_regex ^/denied\n\
         http_access deny blocked\n\
         http_access allow localhost\n\
         http_access deny all\n\
         logformat bots {BOTS}\n\
         logformat botsraw {BOTS_RAW}\n\
         logformat mixed {MIXED}\n\
         logformat errs {ERRS}\n\
         access_log stdio:{d}/errs.log errs\n"
    );
    for (file, format) in LOGS {
        conf.push_str(&format!("access_log stdio:{d}/{file}.log {format}\n"));
    }
    conf
}

fn start_squid() -> (Squid, tempfile::TempDir) {
    assert!(
        Path::new(SQUID).exists(),
        "{SQUID} is missing: this test needs Debian's squid package (apt-get install squid)"
    );
    let dir = tempfile::tempdir().unwrap();
    // Squid started as root writes its logs as user `proxy`.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let port = free_port();
    let conf = dir.path().join("squid.conf");
    std::fs::write(&conf, squid_conf(dir.path(), port)).unwrap();
    let service = format!("egressaudit{port}");
    assert!(
        Path::new(ZONE_FILE).exists(),
        "{ZONE_FILE} is missing: this test needs the tzdata package"
    );
    let child = Command::new(SQUID)
        // A negative half-hour zone shows how Squid writes such offsets.
        .env("TZ", ZONE)
        .args(["-n", &service, "-N", "-f"])
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {SQUID}: {e}"));
    let squid = Squid {
        child,
        service,
        conf,
        dir: dir.path().to_path_buf(),
        port,
    };
    // Waiting on cache.log, not by connecting: a probe connection would be
    // logged as a line of its own.
    let cache_log = dir.path().join("cache.log");
    wait_for(Duration::from_secs(15), "Squid to listen", || {
        std::fs::read_to_string(&cache_log)
            .is_ok_and(|log| log.contains("Accepting HTTP Socket connections"))
    });
    (squid, dir)
}

fn wait_for(limit: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(50));
    }
}

/// A tiny origin: `/status/N/…` answers status N, `/size/N/…` sends N bytes.
fn start_origin() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || serve(stream));
        }
    });
    port
}

fn serve(stream: TcpStream) {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
            break;
        }
        if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or("");
    let path = parts.next().unwrap_or("/");
    let status = number_after(path, "/status/").unwrap_or(200);
    let size = number_after(path, "/size/").unwrap_or(12);
    let body = if status == 204 || status == 304 {
        0
    } else {
        size
    };
    let head = format!(
        "HTTP/1.1 {status} Test\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {body}\r\nConnection: close\r\n\r\n"
    );
    let mut stream = stream;
    let _ = stream.write_all(head.as_bytes());
    if method != "HEAD" {
        let _ = stream.write_all(&vec![b'x'; body]);
    }
}

fn number_after(path: &str, prefix: &str) -> Option<usize> {
    let rest = &path[path.find(prefix)? + prefix.len()..];
    rest.split('/').next()?.parse().ok()
}

/// One request sent through Squid and what its log lines must say.
#[derive(Debug, Clone)]
struct Sent {
    id: usize,
    method: &'static str,
    url: String,
    status: i32,
    bot: Option<Vec<u8>>,
    group: Option<Vec<u8>>,
    agent: Option<Vec<u8>>,
    body: usize,
    connect: bool,
    denied: bool,
}

const METHODS: &[&str] = &["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS"];
const STATUSES: &[i32] = &[200, 201, 204, 301, 404, 500, 503];

fn bot_name(i: usize) -> Option<Vec<u8>> {
    let name: &[u8] = match i % 9 {
        0 => return None,
        1 => b"crawler-1",
        2 => b"My Bot 1.0",
        3 => b"Evil \"quoted\" bot",
        4 => "Bücherwurm/2".as_bytes(),
        5 => b"dom\\bot",
        6 => b"100%Bot",
        7 => b"bad\xffbyte",
        _ => b"[sq]bot{x}|^~",
    };
    Some(name.to_vec())
}

fn group_name(i: usize) -> Option<Vec<u8>> {
    match i % 4 {
        0 => None,
        1 => Some(b"research".to_vec()),
        2 => Some(b"ops team".to_vec()),
        _ => Some("équipe \"α\"".as_bytes().to_vec()),
    }
}

fn agent(i: usize) -> Option<Vec<u8>> {
    match i % 5 {
        0 => None,
        1 => Some(format!("agent/{i}").into_bytes()),
        2 => Some(b"Mozilla/5.0 (X11; Linux) \"QuotedUA\"".to_vec()),
        3 => Some("Bücher\tUA".as_bytes().to_vec()),
        _ => Some(b"curl/8.5.0".to_vec()),
    }
}

fn plan(count: usize, origin: u16) -> Vec<Sent> {
    (0..count)
        .map(|id| {
            let connect = id % 17 == 5;
            let denied = !connect && id % 13 == 3;
            let method = if connect {
                "CONNECT"
            } else {
                METHODS[id % METHODS.len()]
            };
            let status = STATUSES[id % STATUSES.len()];
            let body = [0, 17, 1000, 65536][id % 4];
            let filler = if id % 23 == 7 {
                "p".repeat(3000)
            } else {
                "x".into()
            };
            let prefix = if denied { "/denied" } else { "" };
            let url = if connect {
                format!("127.0.0.1:{origin}")
            } else {
                format!(
                    "http://127.0.0.1:{origin}{prefix}/r{id}/status/{status}/size/{body}/{filler}\
                     ?q={id}&token=secret{id}"
                )
            };
            Sent {
                id,
                method,
                url,
                status: if connect {
                    200
                } else if denied {
                    403
                } else {
                    status
                },
                bot: bot_name(id),
                group: group_name(id),
                agent: agent(id),
                body,
                connect,
                denied,
            }
        })
        .collect()
}

fn send(proxy: u16, sent: &Sent) {
    let mut stream = TcpStream::connect(("127.0.0.1", proxy)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: 127.0.0.1\r\n",
        sent.method, sent.url
    )
    .into_bytes();
    let mut header = |name: &str, value: &Option<Vec<u8>>| {
        if let Some(value) = value {
            head.extend_from_slice(name.as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(value);
            head.extend_from_slice(b"\r\n");
        }
    };
    header("X-Bot-Name", &sent.bot);
    header("X-Bot-Group", &sent.group);
    header("User-Agent", &sent.agent);
    header(
        "Referer",
        &Some(format!("http://ref.example/{}", sent.id).into_bytes()),
    );
    let upload = if sent.method == "POST" || sent.method == "PUT" {
        sent.id * 7 % 5000
    } else {
        0
    };
    if upload > 0 {
        head.extend_from_slice(format!("Content-Length: {upload}\r\n").as_bytes());
    }
    head.extend_from_slice(b"Connection: close\r\n\r\n");
    head.extend(std::iter::repeat_n(b'u', upload));
    stream.write_all(&head).unwrap();
    if sent.connect {
        tunnel(&mut stream);
        return;
    }
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    let expected = format!("HTTP/1.1 {}", sent.status);
    assert!(
        reply.starts_with(expected.as_bytes()),
        "request {} got {:?}",
        sent.id,
        String::from_utf8_lossy(&reply[..reply.len().min(80)])
    );
}

/// After `200 Connection established`, one request through the tunnel.
fn tunnel(stream: &mut TcpStream) {
    let mut established = [0u8; 39];
    stream.read_exact(&mut established).unwrap();
    assert!(established.starts_with(b"HTTP/1.1 200"), "{established:?}");
    stream
        .write_all(b"GET /size/5/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
}

/// Waits until every log holds `expected` lines, showing the counts if not.
fn wait_for_lines(dir: &Path, expected: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let counts: Vec<(&str, usize)> = LOGS
            .iter()
            .map(|(file, _)| (*file, count_lines(dir, file)))
            .collect();
        if counts.iter().all(|(_, n)| *n == expected) {
            return;
        }
        if Instant::now() > deadline {
            let cache = std::fs::read_to_string(dir.join("cache.log")).unwrap_or_default();
            let tail: String = cache.lines().rev().take(10).collect::<Vec<_>>().join("\n");
            panic!("expected {expected} lines in each log, found {counts:?}\ncache.log: {tail}");
        }
        thread::sleep(Duration::from_millis(50));
    }
}

fn count_lines(dir: &Path, file: &str) -> usize {
    [format!("{file}.log.0"), format!("{file}.log")]
        .iter()
        .filter_map(|name| std::fs::read(dir.join(name)).ok())
        .map(|bytes| bytes.iter().filter(|b| **b == b'\n').count())
        .sum()
}

fn format_for(name: &str) -> LineFormat {
    match name {
        "bots" => LineFormat::logformat(BOTS).unwrap(),
        "botsraw" => LineFormat::logformat(BOTS_RAW).unwrap(),
        "mixed" => LineFormat::logformat(MIXED).unwrap(),
        builtin => LineFormat::builtin(builtin).unwrap(),
    }
}

/// Every line of one log (rotated part first) as records, with the raw line.
fn records(dir: &Path, file: &str, format: &str) -> Vec<(Record, Vec<u8>)> {
    let format = format_for(format);
    let enricher = Enricher::new(&Config::default(), "squid-real", Some("default")).unwrap();
    let mut out = Vec::new();
    for name in [format!("{file}.log.0"), format!("{file}.log")] {
        let bytes = std::fs::read(dir.join(&name)).unwrap_or_default();
        let mut offset = 0u64;
        for line in bytes.split_inclusive(|b| *b == b'\n') {
            let text = line.strip_suffix(b"\n").unwrap_or(line);
            let fields = format.parse(text).unwrap_or_else(|e| {
                panic!(
                    "{name}: {e} ({:?})\n{}",
                    e.field(),
                    String::from_utf8_lossy(text)
                )
            });
            let record = enricher.record(&fields, 1, offset).unwrap();
            out.push((record, text.to_vec()));
            offset += line.len() as u64;
        }
    }
    out
}

/// Text as the record holds it: invalid UTF-8 bytes shown as `\xNN`.
fn shown(bytes: &[u8]) -> String {
    egress_audit::parse::decode::text(bytes).into_owned()
}

/// The request id in a logged URL (`…/r17/…`).
fn id_of(url: &str) -> Option<usize> {
    let at = url.find("/r")? + 2;
    url[at..].split('/').next()?.parse().ok()
}

/// What a format logs, for the checks.
struct Shape {
    headers: bool,
    full_url: bool,
    request_size: bool,
    latency: bool,
    hierarchy_server: bool,
    mime: bool,
    reply_size: bool,
}

fn shape(format: &str) -> Shape {
    let custom = matches!(format, "bots" | "botsraw" | "mixed");
    Shape {
        headers: custom,
        full_url: matches!(format, "bots" | "botsraw"),
        request_size: matches!(format, "bots" | "botsraw"),
        latency: matches!(format, "squid" | "bots" | "botsraw"),
        hierarchy_server: matches!(format, "squid" | "bots"),
        mime: matches!(format, "squid" | "bots"),
        reply_size: !matches!(format, "referrer" | "mixed"),
    }
}

fn check_record(
    format: &str,
    record: &Record,
    sent: &Sent,
    window: (DateTime<Utc>, DateTime<Utc>),
) {
    let shape = shape(format);
    let what = format!("{format} request {}", sent.id);
    assert!(
        record.created_at >= window.0 && record.created_at <= window.1,
        "{what}: time"
    );
    assert_eq!(record.client_ip.as_deref(), Some("127.0.0.1"), "{what}");
    assert_eq!(
        record.destination_host.as_deref(),
        Some("127.0.0.1"),
        "{what}"
    );
    if format != "referrer" {
        assert_eq!(record.http_method.as_deref(), Some(sent.method), "{what}");
        assert_eq!(record.status_code, Some(sent.status), "{what}");
        let result = if sent.denied {
            "TCP_DENIED"
        } else {
            "TCP_MISS"
        };
        let result = if sent.connect { "TCP_TUNNEL" } else { result };
        let result = (format != "botsraw").then_some(result);
        assert_eq!(record.squid_status.as_deref(), result, "{what}");
    }
    let redacted = sent
        .url
        .replace(&format!("token=secret{}", sent.id), "token=REDACTED");
    let expected_url = if shape.full_url || sent.connect {
        redacted
    } else {
        format!("{}?", &sent.url[..sent.url.find('?').unwrap()])
    };
    assert_eq!(record.destination_url, expected_url, "{what}");
    if shape.headers {
        let bot = sent.bot.as_deref().map_or("unknown".to_string(), shown);
        assert_eq!(record.bot_name, bot, "{what}");
        let group = sent.group.as_deref().map_or("default".to_string(), shown);
        assert_eq!(record.group_name.as_deref(), Some(group.as_str()), "{what}");
    } else {
        assert_eq!(record.bot_name, "unknown", "{what}");
    }
    if matches!(format, "bots" | "mixed" | "combined") {
        assert_eq!(
            record.user_agent,
            sent.agent.as_deref().map(shown),
            "{what}"
        );
    }
    assert_eq!(
        record.response_size_bytes.is_some(),
        shape.reply_size,
        "{what}"
    );
    if shape.reply_size {
        let minimum = if sent.method == "HEAD" || sent.denied || sent.connect || sent.status == 204
        {
            0
        } else {
            sent.body
        };
        let size = record.response_size_bytes.unwrap();
        assert!(size as usize >= minimum, "{what}: {size} < {minimum}");
    }
    assert_eq!(
        record.request_size_bytes.is_some(),
        shape.request_size,
        "{what}"
    );
    if shape.request_size {
        assert!(record.request_size_bytes.unwrap() > 0, "{what}");
    }
    assert_eq!(record.latency_ms.is_some(), shape.latency, "{what}");
    if shape.hierarchy_server {
        let hierarchy = if sent.denied {
            "HIER_NONE/-"
        } else {
            "HIER_DIRECT/127.0.0.1"
        };
        assert_eq!(record.hierarchy.as_deref(), Some(hierarchy), "{what}");
    }
    if shape.mime {
        let mime = match () {
            _ if sent.connect => None,
            _ if sent.denied => Some("text/html"),
            _ => Some("text/plain"),
        };
        assert_eq!(record.content_type.as_deref(), mime, "{what}");
    }
}

#[test]
fn real_squid_lines_parse_back_to_what_was_sent() {
    let started = Utc::now() - chrono::Duration::seconds(1);
    let (squid, _dir) = start_squid();
    let origin = start_origin();
    let requests = plan(300, origin);
    let (first, second) = requests.split_at(requests.len() / 2);
    for sent in first {
        send(squid.port, sent);
    }
    wait_for_lines(&squid.dir, first.len());
    let rotated = Command::new(SQUID)
        .args(["-n", &squid.service, "-k", "rotate", "-f"])
        .arg(&squid.conf)
        .status()
        .unwrap();
    assert!(rotated.success(), "squid -k rotate failed");
    wait_for(Duration::from_secs(10), "the logs to rotate", || {
        squid.dir.join("native.log.0").exists() && squid.dir.join("mixed.log.0").exists()
    });
    for sent in second {
        send(squid.port, sent);
    }
    wait_for_lines(&squid.dir, requests.len());
    let window = (started, Utc::now() + chrono::Duration::seconds(1));

    for (file, format) in LOGS {
        let rotated = std::fs::read(squid.dir.join(format!("{file}.log.0"))).unwrap();
        assert_eq!(
            rotated.iter().filter(|b| **b == b'\n').count(),
            first.len(),
            "{file}"
        );
        let parsed = records(&squid.dir, file, format);
        assert_eq!(parsed.len(), requests.len(), "{file}");
        if *format == "useragent" {
            check_user_agents(&parsed, &requests);
            continue;
        }
        check_all(format, &parsed, &requests, window);
    }
    check_settled_points(&squid.dir);
    check_error_details(&squid.dir, &requests);
    check_rejected_requests(&squid, requests.len());
    check_failed_connections(&squid);
    check_raw_bytes_in_urls(&squid, origin);
    check_status_000(&squid);
}

/// The end of a request line and headers that ask Squid to close afterwards.
const CLOSE: &str = "HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

/// Sends `request` to Squid as it is and reads the answer until Squid closes.
fn exchange(squid: &Squid, request: &[u8]) {
    let mut stream = TcpStream::connect(("127.0.0.1", squid.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request).unwrap();
    let _ = stream.read_to_end(&mut Vec::new());
}

/// Requests Squid refuses before forwarding, sent last because an over-long
/// one breaks the built-in logs (Squid 5 cuts the record and its newline).
fn check_rejected_requests(squid: &Squid, logged: usize) {
    // Junk on the proxy port: the first word is logged as the method.
    exchange(squid, b"FOO BAR\r\n\r\n");
    wait_for_lines(&squid.dir, logged + 1);
    let native = records(&squid.dir, "native", "squid");
    let junk = &native.last().unwrap().0;
    assert_eq!(junk.destination_url, "error:invalid-request");
    assert_eq!(junk.http_method.as_deref(), Some("FOO"));
    assert_eq!(junk.status_code, Some(400));
    assert_eq!(junk.squid_status.as_deref(), Some("NONE_NONE"));

    // A URL over 8 KiB is refused with 400; the custom format's record is cut
    // at 8191 bytes and keeps its newline.
    let long = format!("http://127.0.0.1:9/{}", "a".repeat(9000));
    exchange(squid, format!("GET {long} {CLOSE}").as_bytes());
    let log = squid.dir.join("botsraw.log");
    wait_for(Duration::from_secs(10), "the long URL to be logged", || {
        std::fs::read(&log)
            .is_ok_and(|b| b.iter().filter(|c| **c == b'\n').count() > logged / 2 + 1)
    });
    let bytes = std::fs::read(&log).unwrap();
    let last = bytes
        .strip_suffix(b"\n")
        .unwrap()
        .rsplit(|b| *b == b'\n')
        .next()
        .unwrap();
    assert_eq!(last.len(), 8191, "Squid 5 cuts records at 8191 bytes");
    let format = format_for("botsraw");
    let fields = format.parse(last).unwrap();
    let enricher = Enricher::new(&Config::default(), "squid-real", None).unwrap();
    let record = enricher.record(&fields, 0, 0).unwrap();
    assert_eq!(record.status_code, Some(400));
    assert!(
        long.starts_with(&record.destination_url),
        "the URL is cut, not changed"
    );
}

/// The `errs` log's lines (rotated part first), from the `skip`th on, each
/// split into its words after the engine has read it back without a warning.
fn error_lines(dir: &Path, skip: usize) -> Vec<Vec<String>> {
    let format = LineFormat::logformat(ERRS).unwrap();
    assert!(format.warnings().is_empty(), "{:?}", format.warnings());
    let enricher = Enricher::new(&Config::default(), "squid-real", None).unwrap();
    let bytes: Vec<u8> = ["errs.log.0", "errs.log"]
        .iter()
        .flat_map(|name| std::fs::read(dir.join(name)).unwrap_or_default())
        .collect();
    let mut out = Vec::new();
    for line in bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .skip(skip)
    {
        let text = String::from_utf8_lossy(line).into_owned();
        let fields = format.parse(line).unwrap_or_else(|e| panic!("{e}: {text}"));
        let record = enricher.record(&fields, 1, 0).unwrap();
        let words: Vec<String> = text.split(' ').map(String::from).collect();
        let logged_status = words[0].rsplit('/').next().unwrap();
        assert_eq!(
            record.status_code,
            logged_status.parse::<i32>().ok().filter(|s| *s != 0),
            "{text}"
        );
        out.push(words);
    }
    out
}

/// `%err_code` is the error page's id and `%err_detail` a detail of the
/// failure, both `-` when Squid sent no error page.
fn check_error_details(dir: &Path, requests: &[Sent]) {
    let lines = error_lines(dir, 0);
    assert_eq!(lines.len(), requests.len());
    let denied = requests.iter().filter(|s| s.denied).count();
    let mut seen_denied = 0;
    for words in &lines {
        let (status, code, detail) = (&words[0], &words[3], &words[4]);
        if status.starts_with("TCP_DENIED/") {
            seen_denied += 1;
            assert_eq!((code.as_str(), detail.as_str()), ("ERR_ACCESS_DENIED", "-"));
        } else {
            // Errors the origin answers with (404, 500, 503) are not Squid's.
            assert_eq!((code.as_str(), detail.as_str()), ("-", "-"), "{words:?}");
        }
    }
    assert_eq!(seen_denied, denied);
}

/// A refused connection: over HTTP the detail is `WITH_SERVER`, through
/// CONNECT it is the system error, `errno=111` (ECONNREFUSED).
fn check_failed_connections(squid: &Squid) {
    // Lines before these include the over-long request's, cut by Squid.
    let before = count_lines(&squid.dir, "errs");
    for (method, url) in [
        ("GET", "http://127.0.0.1:1/refused"),
        ("CONNECT", "127.0.0.1:1"),
    ] {
        exchange(squid, format!("{method} {url} {CLOSE}").as_bytes());
    }
    wait_for(Duration::from_secs(10), "the refused connections", || {
        count_lines(&squid.dir, "errs") >= before + 2
    });
    let lines = error_lines(&squid.dir, before);
    let last: Vec<Vec<&str>> = lines
        .iter()
        .map(|w| w[..5].iter().map(String::as_str).collect())
        .collect();
    assert_eq!(
        last,
        [
            [
                "TCP_MISS/503",
                "GET",
                "http://127.0.0.1:1/refused",
                "ERR_CONNECT_FAIL",
                "WITH_SERVER"
            ],
            [
                "NONE_NONE/503",
                "CONNECT",
                "127.0.0.1:1",
                "ERR_CONNECT_FAIL",
                "errno=111"
            ],
        ]
    );
}

/// The last `count` lines of one log, parsed and enriched.
fn last_records(dir: &Path, file: &str, format: &str, count: usize) -> Vec<Record> {
    let bytes = std::fs::read(dir.join(format!("{file}.log"))).unwrap();
    let lines: Vec<&[u8]> = bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let format = format_for(format);
    let enricher = Enricher::new(&Config::default(), "squid-real", None).unwrap();
    lines[lines.len() - count..]
        .iter()
        .map(|line| {
            let fields = format
                .parse(line)
                .unwrap_or_else(|e| panic!("{file}: {e}: {}", String::from_utf8_lossy(line)));
            enricher.record(&fields, 1, 0).unwrap()
        })
        .collect()
}

/// Raw UTF-8, `"` and `\` in a URL: the native format writes them as they
/// came (Squid 5.7 does not %-encode raw UTF-8 there), a quoted `"%>ru"`
/// escapes `"` and `\` with a backslash, and both read back to the URL sent.
fn check_raw_bytes_in_urls(squid: &Squid, origin: u16) {
    let paths: [&[u8]; 2] = [
        b"/caf\xc3\xa9/r-utf8/x?q=\xe2\x82\xac",
        b"/a\"b\\c/r-quote/d?x=1",
    ];
    let before = count_lines(&squid.dir, "native");
    for path in paths {
        let mut request = format!("GET http://127.0.0.1:{origin}").into_bytes();
        request.extend_from_slice(path);
        request.extend_from_slice(format!(" {CLOSE}").as_bytes());
        exchange(squid, &request);
    }
    wait_for(Duration::from_secs(10), "the raw URLs to be logged", || {
        count_lines(&squid.dir, "native") >= before + 2
            && count_lines(&squid.dir, "mixed") >= before + 2
    });
    let base = format!("http://127.0.0.1:{origin}");
    let native: Vec<String> = last_records(&squid.dir, "native", "squid", 2)
        .into_iter()
        .map(|r| r.destination_url)
        .collect();
    // The native format's URL is `%ru`: the query is stripped, `?` kept.
    assert_eq!(
        native,
        [
            format!("{base}/caf\u{e9}/r-utf8/x?"),
            format!("{base}/a\"b\\c/r-quote/d?"),
        ]
    );
    let raw = std::fs::read(squid.dir.join("native.log")).unwrap();
    assert!(
        raw.windows(6).any(|w| w == b"caf\xc3\xa9/"),
        "raw UTF-8 is written as it came"
    );
}

/// Status `000`, no reply sent, is stored as null with the result code kept:
/// a client that leaves before its request's headers end, and one that
/// leaves while the origin has not answered yet.
fn check_status_000(squid: &Squid) {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let before = count_lines(&squid.dir, "native");

    let mut stream = TcpStream::connect(("127.0.0.1", squid.port)).unwrap();
    stream
        .write_all(b"GET http://127.0.0.1:9/x HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    thread::sleep(Duration::from_millis(300));
    drop(stream);
    wait_for(Duration::from_secs(10), "the unfinished request", || {
        count_lines(&squid.dir, "native") > before
    });

    let mut stream = TcpStream::connect(("127.0.0.1", squid.port)).unwrap();
    let request = format!("GET http://127.0.0.1:{silent_port}/slow HTTP/1.1\r\nHost: x\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    // Squid has forwarded the request once the origin sees a connection.
    let (_origin_side, _) = silent.accept().unwrap();
    drop(stream);
    wait_for(Duration::from_secs(10), "the aborted request", || {
        count_lines(&squid.dir, "native") > before + 1
    });

    let records = last_records(&squid.dir, "native", "squid", 2);
    let seen: Vec<_> = records
        .iter()
        .map(|r| {
            (
                r.status_code,
                r.squid_status.as_deref(),
                r.http_method.as_deref(),
                r.destination_url.as_str(),
            )
        })
        .collect();
    let slow = format!("http://127.0.0.1:{silent_port}/slow");
    assert_eq!(
        seen,
        [
            (
                None,
                Some("NONE_NONE"),
                None,
                "error:transaction-end-before-headers"
            ),
            (None, Some("TCP_MISS_ABORTED"), Some("GET"), slow.as_str()),
        ]
    );
}

/// Each request matched to its line by the id in its URL (CONNECTs by order).
fn check_all(
    format: &str,
    parsed: &[(Record, Vec<u8>)],
    requests: &[Sent],
    window: (DateTime<Utc>, DateTime<Utc>),
) {
    let by_id: HashMap<usize, &Sent> = requests.iter().map(|s| (s.id, s)).collect();
    let mut seen = vec![false; requests.len()];
    let mut connects = requests.iter().filter(|s| s.connect);
    for (record, line) in parsed {
        let sent = match id_of(&record.destination_url) {
            Some(id) => by_id[&id],
            None => connects.next().unwrap_or_else(|| {
                panic!("{format}: unmatched line {}", String::from_utf8_lossy(line))
            }),
        };
        assert!(!seen[sent.id], "{format}: request {} logged twice", sent.id);
        seen[sent.id] = true;
        check_record(format, record, sent, window);
    }
    assert!(
        seen.iter().all(|s| *s),
        "{format}: some requests were not logged"
    );
}

fn check_user_agents(parsed: &[(Record, Vec<u8>)], requests: &[Sent]) {
    let mut logged: Vec<Option<String>> =
        parsed.iter().map(|(r, _)| r.user_agent.clone()).collect();
    let mut sent: Vec<Option<String>> = requests
        .iter()
        .map(|s| s.agent.as_deref().map(shown))
        .collect();
    logged.sort();
    sent.sort();
    assert_eq!(logged, sent);
}

/// Details Squid's documentation leaves open, as this Squid writes them.
fn check_settled_points(dir: &Path) {
    // The built-in common format writes UTC-03:30 as `-03-30`, `%tl` as
    // `-0330`, and `%tg` carries no zone at all.
    let common = std::fs::read_to_string(dir.join("common.log")).unwrap();
    assert!(
        common.lines().all(|l| l.contains(" -03-30] ")),
        "{common:.200}"
    );
    let mixed = std::fs::read(dir.join("mixed.log")).unwrap();
    for line in mixed.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let words: Vec<&[u8]> = line.splitn(5, |b| *b == b' ').collect();
        let offset = words[2];
        assert!(
            offset == b"-0330" || offset == b"-0230",
            "{}",
            String::from_utf8_lossy(line)
        );
        assert_eq!(words[3].len(), "05/Mar/2024:14:03:07".len());
    }
    let text = std::fs::read(dir.join("botsraw.log")).unwrap();
    let old = std::fs::read(dir.join("botsraw.log.0")).unwrap();
    for line in old
        .split(|b| *b == b'\n')
        .chain(text.split(|b| *b == b'\n'))
    {
        if line.is_empty() {
            continue;
        }
        let words: Vec<&[u8]> = line.split(|b| *b == b' ').collect();
        let (method, scheme, object_size) = (words[6], words[7], words[10]);
        // `%>rs` of a CONNECT is `-`: the authority-form URL has no scheme.
        let want: &[u8] = if method == b"CONNECT" { b"-" } else { b"http" };
        assert_eq!(scheme, want, "{}", String::from_utf8_lossy(line));
        // `%<sS` is never negative here (0 for tunnels).
        assert!(
            object_size.iter().all(u8::is_ascii_digit),
            "{}",
            String::from_utf8_lossy(line)
        );
    }
}
