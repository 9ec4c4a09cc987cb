//! What the database benchmarks share: the `--bench` guard, their numeric
//! arguments, and the PostgreSQL server they talk to.

pub mod rows;

/// The numbers given after `cargo bench --bench NAME --`, or `None` when the
/// binary was not started by `cargo bench` (`cargo test --all-targets` runs
/// it without `--bench`, and a benchmark is no test).
pub fn bench_numbers() -> Option<Vec<u64>> {
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!(
            "benchmark: run it with `cargo bench --bench {}`",
            env!("CARGO_CRATE_NAME")
        );
        return None;
    }
    Some(
        std::env::args()
            .skip(1)
            .filter_map(|a| a.parse().ok())
            .collect(),
    )
}

/// `DATABASE_URL`, else the local server's `postgres` database.
pub fn admin_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}
