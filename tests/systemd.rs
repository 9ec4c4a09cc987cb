//! What the daemon tells systemd, over the real notification protocol (a Unix
//! datagram socket named by `NOTIFY_SOCKET`, as systemd passes it), and how
//! its logs look in the journal and as JSON.

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use common::PgDatabase;
use common::daemon::{Site, native_lines, stop, wait_for_rows};

/// Collects notification datagrams until `until` has been seen or 20 s pass.
fn collect(socket: &UnixDatagram, until: &str) -> Vec<String> {
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let started = Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while started.elapsed() < Duration::from_secs(20) {
        if let Ok(n) = socket.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            let done = text.contains(until);
            seen.push(text);
            if done {
                break;
            }
        }
    }
    seen
}

#[tokio::test]
async fn the_daemon_notifies_ready_status_watchdog_reloading_and_stopping() {
    let db = PgDatabase::create().await;
    let site = Site::new(&db.url, "");
    site.append(&native_lines(0, 20));
    let socket_path = site.dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();

    let mut daemon = std::process::Command::new(assert_cmd::cargo::cargo_bin("egress-audit"))
        .arg("--config")
        .arg(&site.config)
        .arg("run")
        .env("DATABASE_URL", &db.url)
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "2000000")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ready = collect(&socket, "READY=1");
    assert!(ready.iter().any(|m| m.contains("READY=1")), "{ready:?}");
    wait_for_rows(&site, 20, Duration::from_secs(30)).await;

    let running = collect(&socket, "WATCHDOG=1");
    assert!(
        running.iter().any(|m| m.contains("WATCHDOG=1")),
        "{running:?}"
    );
    let status = collect(&socket, "20 rows written");
    assert!(
        status
            .iter()
            .any(|m| m.contains("STATUS=20 lines read, 20 rows written")),
        "{status:?}"
    );

    common::daemon::signal(&daemon, "HUP");
    let reload = collect(&socket, "reloaded");
    assert!(
        reload.iter().any(|m| m.contains("RELOADING=1")),
        "{reload:?}"
    );
    assert!(reload.iter().any(|m| m.contains("READY=1")), "{reload:?}");

    assert!(stop(&mut daemon).success());
    let mut buf = [0u8; 4096];
    let mut stopping = false;
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    while let Ok(n) = socket.recv(&mut buf) {
        stopping |= String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1");
    }
    assert!(stopping, "STOPPING=1 sent on the way out");
}

#[test]
fn logs_fit_the_journal_and_can_be_json() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    let run = |config_text: &str, journal: bool| {
        std::fs::write(&config, config_text).unwrap();
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("egress-audit"));
        cmd.arg("--config")
            .arg(&config)
            .args(["log", "b", "https://a.example/"]);
        cmd.current_dir(dir.path())
            .env_remove("DATABASE_URL")
            .env("RUST_LOG", "debug");
        if journal {
            cmd.env("JOURNAL_STREAM", "8:12345");
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stderr).to_string()
    };

    let plain = run("", false);
    let journal = run("", true);
    let json = run("[log]\nformat = \"json\"\n", false);
    let first = |text: &str| text.lines().next().unwrap_or_default().to_string();
    assert!(
        first(&plain).starts_with("20"),
        "a timestamp leads a plain line: {plain}"
    );
    assert!(
        !first(&journal).starts_with("20"),
        "no timestamp under the journal: {journal}"
    );
    assert!(!journal.is_empty());
    for line in json.lines() {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(value.get("level").is_some(), "{line}");
    }
    assert!(!json.is_empty());
}
