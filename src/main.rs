use clap::Parser;
use tracing_subscriber::EnvFilter;

use devingress::cli::{CaCommand, Cli, Command};
use devingress::commands;

/// mimalloc: per-request buffers and header maps cost less to allocate and
/// free than with the system allocator (README, "How it forwards").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    devingress::install_crypto_provider();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("warn,devingress=info,hickory_server=error,hickory_net=error,hickory_proto=error")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(devingress::logs::Tee)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let data_dir = cli.data_dir;
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(worker_threads()).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("devingress: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Up(args) => {
            let tray = if args.no_tray { Err("--no-tray".to_string()) } else { devingress::tray::available() };
            let exit = match tray {
                Ok(()) => up_with_tray(&rt, args, data_dir),
                Err(why) => {
                    if cfg!(feature = "tray") {
                        tracing::info!("running without a tray icon: {why}");
                    }
                    rt.block_on(commands::up::run(args, data_dir, shutdown_signal()))
                }
            };
            match exit {
                Ok(commands::up::Exit::SwitchContext(context)) => commands::up::restart_with_context(&context),
                Ok(_) => Ok(()),
                Err(e) => Err(e),
            }
        }
        other => rt.block_on(run(other, data_dir)),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("devingress: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The runtime's worker threads: one, unless `TOKIO_WORKER_THREADS` says
/// otherwise. One thread spends less CPU per request than several (no
/// task moves between threads, no waking a parked one for each request:
/// 22-30% less CPU per request through the proxy, and more requests/s up
/// to 32 connections, in the proxy benchmark on 2 cores), and a desktop
/// daemon should leave the other cores to the cluster.
fn worker_threads() -> usize {
    std::env::var("TOKIO_WORKER_THREADS").ok().and_then(|n| n.parse().ok()).filter(|n| *n > 0).unwrap_or(1)
}

/// `up` on the tokio runtime, with the tray's event loop on this (the main) thread.
#[cfg(feature = "tray")]
fn up_with_tray(
    rt: &tokio::runtime::Runtime,
    args: devingress::cli::UpArgs,
    data_dir: Option<std::path::PathBuf>,
) -> anyhow::Result<commands::up::Exit> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let done = Arc::new(AtomicBool::new(false));
    let daemon = {
        let done = done.clone();
        rt.spawn(async move {
            let exit = commands::up::run(args, data_dir, shutdown_signal()).await;
            done.store(true, Ordering::Relaxed);
            exit
        })
    };
    if let Err(e) = devingress::tray::icon::run(devingress::control::socket_path(), done, rt.handle().clone()) {
        tracing::warn!("running without a tray icon: {e:#}");
    }
    rt.block_on(daemon)?
}

/// Without the tray feature there is no tray to run.
#[cfg(not(feature = "tray"))]
fn up_with_tray(
    rt: &tokio::runtime::Runtime,
    args: devingress::cli::UpArgs,
    data_dir: Option<std::path::PathBuf>,
) -> anyhow::Result<commands::up::Exit> {
    rt.block_on(commands::up::run(args, data_dir, shutdown_signal()))
}

/// Every command but `up`.
async fn run(command: Command, data_dir: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    match command {
        Command::Up(_) => unreachable!("up runs on its own"),
        Command::Routes(args) => commands::routes::run(args).await,
        Command::Ca(CaCommand::Path) => commands::ca::path(data_dir),
        Command::Ca(CaCommand::Show) => commands::ca::show(data_dir),
        Command::Trust => commands::ca::trust(data_dir, true),
        Command::Untrust => commands::ca::trust(data_dir, false),
        Command::Doctor(args) => commands::doctor::run(args, data_dir).await,
        Command::Setup(args) => commands::setup::run(args),
        Command::Status(args) => commands::control::status(args).await,
        Command::Down => commands::control::down().await,
        Command::Logs(args) => commands::control::logs(args).await,
        Command::Pause => commands::control::pause(true).await,
        Command::Resume => commands::control::pause(false).await,
        Command::UseContext { context } => commands::control::use_context(context).await,
    }
}

/// Ctrl-C, or SIGTERM on Unix (as sent by systemd and launchd).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
