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

#[test]
fn on_a_terminal_import_shows_a_progress_bar() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("big.log"),
        native_lines(0, 200_000).join("\n") + "\n",
    )
    .unwrap();
    let binary = assert_cmd::cargo::cargo_bin("egress-audit");
    // script(1) runs the command on a pseudo-terminal and keeps what it shows.
    let shown = dir.path().join("screen.txt");
    let command = format!("{} import big.log", binary.display());
    let status = std::process::Command::new("script")
        .args(["-qec", &command])
        .arg(&shown)
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .stdout(std::process::Stdio::null())
        .status()
        .expect("script(1) from util-linux is needed to give import a terminal");
    assert!(status.success());
    let screen = String::from_utf8_lossy(&std::fs::read(&shown).unwrap()).to_string();
    assert!(
        screen.contains("lines/s") && screen.contains("eta"),
        "{screen}"
    );
    // The bar moves while the file is read: some frame shows a position
    // between the start and the end (`12.50 MiB/28.61 MiB`).
    let number = |text: &str| text.trim().parse::<f64>().ok();
    let pieces: Vec<&str> = screen.split("MiB/").collect();
    let moved = pieces.windows(2).any(|pair| {
        let at = pair[0]
            .rsplit(|c: char| !(c.is_ascii_digit() || c == '.' || c == ' '))
            .next();
        let total = pair[1].split(" MiB").next();
        match (at.and_then(number), total.and_then(number)) {
            (Some(at), Some(total)) => at > 0.0 && at < total,
            _ => false,
        }
    });
    assert!(
        moved,
        "the bar never showed a position between start and end: {screen}"
    );
    assert!(
        screen.contains("200000 lines read, 200000 rows written"),
        "{screen}"
    );
}
