//! Finding the programs devingress runs (trust-store tools, credential
//! plugins) on `PATH`.

/// Whether `program` is on `PATH` (with `.exe` on Windows).
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .any(|p| p.is_file() || (cfg!(windows) && p.with_extension("exe").is_file()))
    })
}
