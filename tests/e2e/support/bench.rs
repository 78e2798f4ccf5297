//! What the benchmarks share: how long each row runs, and the CPU time a
//! process used.

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

/// CPU seconds (user + system) the process `pid` has used so far (Linux).
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime is the 12th, stime the 13th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest.split_whitespace().skip(11).take(2).filter_map(|v| v.parse().ok()).collect();
    // SAFETY: sysconf only reads a constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    f.iter().sum::<u64>() as f64 / ticks
}

/// CPU seconds used so far by `pid` and every process below it (Linux):
/// a dispatcher such as `/usr/bin/kubectl` may run the real program as its
/// child, whose time reaches the parent's figures only when it exits.
pub fn cpu_seconds_tree(pid: u32) -> f64 {
    let mut total = cpu_seconds(pid);
    let Ok(dir) = std::fs::read_dir("/proc") else { return total };
    for entry in dir.flatten() {
        let Some(child) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
        // The parent pid is the second field after the command name.
        let parent = stat.rsplit_once(')').and_then(|(_, r)| r.split_whitespace().nth(1)?.parse::<u32>().ok());
        if parent == Some(pid) {
            total += cpu_seconds_tree(child);
        }
    }
    total
}

/// The environment a benchmarked daemon runs with: logging as users have it
/// (`info`), not the tests' `debug`, whose line per request would be
/// measured too.
pub fn as_users() -> [(&'static str, &'static std::ffi::OsStr); 1] {
    [("RUST_LOG", std::ffi::OsStr::new("info"))]
}
