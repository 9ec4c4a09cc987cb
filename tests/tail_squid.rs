//! The tailer against a real Squid rotating its own log (`squid -k rotate`
//! with `logfile_rotate 3`, which renames `access.log` to `access.log.0`).
//! Fails (never skips) when Squid is not installed.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Env, texts, until};
use egress_audit::config::StartAt;
use egress_audit::tail::StartFrom;

const SQUID: &str = "/usr/sbin/squid";

/// A Squid on a loopback port, stopped when dropped.
struct Squid {
    child: Child,
    conf: PathBuf,
    port: u16,
}

impl Squid {
    fn start(env: &Env) -> Squid {
        assert!(
            Path::new(SQUID).exists(),
            "{SQUID} is missing: install it with `apt-get install squid`"
        );
        // Squid started as root drops to `proxy`, which must reach the logs.
        fs::set_permissions(env.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(env.logs(), fs::Permissions::from_mode(0o777)).unwrap();
        let port = free_port();
        let logs = env.logs().display();
        let conf = env.dir.path().join("squid.conf");
        let text = format!(
            "http_port 127.0.0.1:{port}\n\
             pid_filename {logs}/squid.pid\n\
             access_log stdio:{logs}/access.log squid\n\
             cache_log {logs}/cache.log\n\
             cache_store_log none\n\
             logfile_rotate 3\n\
             cache deny all\n\
             http_access allow all\n\
             coredump_dir {logs}\n\
             cache_effective_user proxy\n\
             shutdown_lifetime 0 seconds\n"
        );
        fs::write(&conf, text).unwrap();
        let child = Command::new(SQUID)
            .arg("-N")
            .arg("-f")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let squid = Squid { child, conf, port };
        squid.wait_ready();
        squid
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "squid did not listen on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends one request through the proxy to a closed loopback port, so
    /// that Squid logs it (as a failed connect) without any network.
    fn request(&self, name: &str) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let request = format!(
            "GET http://127.0.0.1:1/{name} HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\
             Connection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        assert!(
            response.starts_with(b"HTTP/1.1 "),
            "no HTTP response from squid"
        );
    }

    fn rotate(&self) {
        let status = Command::new(SQUID)
            .arg("-f")
            .arg(&self.conf)
            .args(["-k", "rotate"])
            .status()
            .unwrap();
        assert!(status.success(), "squid -k rotate failed");
    }
}

impl Drop for Squid {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The names of this test's requests found in `lines`, in order. Other
/// lines (Squid also logs the readiness probe, a connection without a
/// request) are left out.
fn requests(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|line| {
            let url = line.split_whitespace().nth(6)?;
            let name = url.strip_prefix("http://127.0.0.1:1/")?;
            Some(name.to_string())
        })
        .collect()
}

/// Receives lines until the one for request `last` has arrived.
async fn lines_through(running: &mut common::Running, last: &str) -> Vec<String> {
    let mut lines = Vec::new();
    while !requests(&lines).iter().any(|name| name == last) {
        lines.extend(texts(&running.lines(1).await));
    }
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn squid_rotate_hands_on_every_request_once() {
    let env = Env::new();
    let mut running = env.start(&env.config(StartAt::Beginning), StartFrom::Checkpoints, 16);
    let squid = Squid::start(&env);

    for n in 0..3 {
        squid.request(&format!("before-{n}"));
    }
    let before = lines_through(&mut running, "before-2").await;

    squid.rotate();
    let rotated = env.sibling(".0");
    until("squid to rename access.log to .0", || rotated.exists()).await;
    for n in 0..3 {
        squid.request(&format!("after-{n}"));
    }
    let after = lines_through(&mut running, "after-2").await;
    let first_after = running
        .unacked
        .iter()
        .find(|seen| seen.text.contains("after-0"));
    let first_after = first_after.unwrap().clone();
    let first_before = running.unacked[0].clone();
    running.expect_no_lines(Duration::from_millis(500)).await;
    drop(squid);
    running.stop().await;

    let mut all = before;
    all.extend(after);
    assert_eq!(
        requests(&all),
        [
            "before-0", "before-1", "before-2", "after-0", "after-1", "after-2"
        ]
    );
    assert_ne!(
        first_before.file, first_after.file,
        "lines after the rotation come from the new file"
    );
    assert_eq!(first_after.start, 0);
    let old: Vec<String> = fs::read_to_string(&rotated)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(requests(&old), ["before-0", "before-1", "before-2"]);
}
