use clap::Parser;
use tracing_subscriber::EnvFilter;

use devingress::cli::{CaCommand, Cli, Command};
use devingress::commands;

#[tokio::main]
async fn main() -> std::process::ExitCode {
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
    let result = match cli.command {
        Command::Up(args) => match commands::up::run(args, data_dir, shutdown_signal()).await {
            Ok(commands::up::Exit::SwitchContext(context)) => commands::up::restart_with_context(&context),
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        },
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
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("devingress: {e:#}");
            std::process::ExitCode::FAILURE
        }
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
