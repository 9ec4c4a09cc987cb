//! `import` and `rejects` from the command line: large files read once with
//! reused buffers, and dead letters listed, then retried with the right format
//! and removed once stored.

mod common;

use assert_cmd::Command;
use common::daemon::native_lines;

fn cli(dir: &std::path::Path) -> Command {
    let mut cmd = Command::cargo_bin("egress-audit").unwrap();
    cmd.current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("RUST_LOG");
    cmd
}

#[test]
fn a_line_in_another_format_is_listed_then_retried_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = native_lines(0, 3);
    let combined = "192.0.2.20 - - [05/Mar/2024:15:03:08 +0100] \"GET http://example.com/ HTTP/1.1\" \
                    200 612 \"-\" \"curl/8.5\" TCP_MISS:HIER_DIRECT";
    lines.push(combined.to_string());
    std::fs::write(dir.path().join("mixed.log"), lines.join("\n") + "\n").unwrap();

    let out = cli(dir.path())
        .args(["import", "mixed.log"])
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(
        summary.contains("4 lines read, 3 rows written, 0 rows already present, 1 lines set aside"),
        "{summary}"
    );

    let out = cli(dir.path())
        .args(["rejects", "list", "--format", "json"])
        .output()
        .unwrap();
    let listed: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["stage"], "parse");
    assert_eq!(listed[0]["raw_line"], combined);

    let out = cli(dir.path())
        .args(["rejects", "retry", "--format", "combined"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("1 retried, 1 rows written, 1 removed, 0 still failing"),
        "{said}"
    );

    let out = cli(dir.path())
        .args(["rejects", "list", "--format", "json"])
        .output()
        .unwrap();
    assert!(out.stdout.is_empty());
    let out = cli(dir.path())
        .args(["query", "recent", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 4);
}

#[test]
fn a_large_import_reads_every_line_once_while_buffers_are_reused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("big.log"),
        native_lines(0, 20_000).join("\n") + "\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("c.toml"),
        "[tail]\nread_buffer_bytes = 4096\n",
    )
    .unwrap();
    let out = cli(dir.path())
        .args(["--config", "c.toml", "import", "big.log"])
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(
        summary.contains(
            "20000 lines read, 20000 rows written, 0 rows already present, 0 lines set aside"
        ),
        "{summary}"
    );
}
