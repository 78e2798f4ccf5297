//! `devingress status`, `down`, `logs`, `pause` and `resume`: small
//! commands that talk to the running daemon over the control socket.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::cli::{LogsArgs, StatusArgs};
use crate::control::{Request, client, socket_path};

fn not_running() -> anyhow::Error {
    anyhow::anyhow!("devingress is not running; start it with `devingress up`")
}

/// Prints the daemon's status.
pub async fn status(args: StatusArgs) -> anyhow::Result<()> {
    let status = client::status(&socket_path()).await.map_err(|_| not_running())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", crate::status::text::render(&status));
    }
    Ok(())
}

/// Stops the daemon and waits until it is gone.
pub async fn down() -> anyhow::Result<()> {
    let path = socket_path();
    let reply = client::send(&path, &Request::Down).await.map_err(|_| not_running())?;
    println!("{}", reply.message);
    let started = Instant::now();
    while client::running(&path).await {
        if started.elapsed() > Duration::from_secs(60) {
            bail!("devingress is still running after 60s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("stopped");
    Ok(())
}

/// Pauses or resumes serving.
pub async fn pause(pause: bool) -> anyhow::Result<()> {
    let request = if pause { Request::Pause } else { Request::Resume };
    let reply = client::send(&socket_path(), &request).await.map_err(|_| not_running())?;
    println!("{}", reply.message);
    Ok(())
}

/// Prints the daemon's log, and follows it with `--follow`.
pub async fn logs(args: LogsArgs) -> anyhow::Result<()> {
    let path = socket_path();
    if !client::running(&path).await {
        return Err(not_running());
    }
    client::logs(&path, args.follow, args.lines, |line| println!("{line}")).await.context("reading the log")
}

/// Makes the daemon start again on another context.
pub async fn use_context(context: String) -> anyhow::Result<()> {
    let reply = client::send(&socket_path(), &Request::SwitchContext { context }).await.map_err(|_| not_running())?;
    if !reply.ok {
        bail!("{}", reply.message);
    }
    println!("{}", reply.message);
    Ok(())
}
