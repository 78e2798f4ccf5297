//! What the benchmarks share: how long each row runs.

/// Whether the benchmark runs in full (`cargo bench` passes `--bench`), as
/// opposed to its short mode under `cargo test --all-targets`, which only
/// checks that it still runs.
pub fn full() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// Seconds per row: `BENCH_SECONDS`, else 5 in full and 1 in short mode.
pub fn seconds() -> u32 {
    std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(if full() { 5 } else { 1 })
}
