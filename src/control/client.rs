//! The front-end side of the control socket.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::{ControlError, Reply, Request};
use crate::status::Status;

#[cfg(unix)]
type Stream = tokio::net::UnixStream;
#[cfg(windows)]
type Stream = tokio::net::windows::named_pipe::NamedPipeClient;

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

async fn connect(path: &Path) -> Result<Stream, ControlError> {
    let not_running = || ControlError::NotRunning(path.display().to_string());
    #[cfg(unix)]
    let connecting = tokio::net::UnixStream::connect(path);
    #[cfg(windows)]
    let connecting = async { tokio::net::windows::named_pipe::ClientOptions::new().open(path) };
    match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(Ok(s)) => Ok(s),
        _ => Err(not_running()),
    }
}

/// Sends `request` and returns the reader of the answer.
async fn ask(path: &Path, request: &Request) -> Result<BufReader<Stream>, ControlError> {
    let mut stream = connect(path).await?;
    let io = |source| ControlError::Io { path: path.display().to_string(), source };
    let mut line = serde_json::to_string(request).expect("requests serialize");
    line.push('\n');
    stream.write_all(line.as_bytes()).await.map_err(io)?;
    Ok(BufReader::new(stream))
}

async fn one_line(path: &Path, request: &Request) -> Result<String, ControlError> {
    let mut reader = ask(path, request).await?;
    let mut line = String::new();
    let read = tokio::time::timeout(Duration::from_secs(10), reader.read_line(&mut line)).await;
    match read {
        Ok(Ok(n)) if n > 0 => Ok(line),
        Ok(Ok(_)) => Err(ControlError::Protocol("the daemon closed the connection".into())),
        Ok(Err(source)) => Err(ControlError::Io { path: path.display().to_string(), source }),
        Err(_) => Err(ControlError::Protocol("no answer within 10s".into())),
    }
}

/// The running daemon's status.
pub async fn status(path: &Path) -> Result<Status, ControlError> {
    let line = one_line(path, &Request::Status).await?;
    serde_json::from_str(&line).map_err(|e| ControlError::Protocol(format!("{e}: {}", line.trim())))
}

/// Sends a request that is answered with a [`Reply`].
pub async fn send(path: &Path, request: &Request) -> Result<Reply, ControlError> {
    let line = one_line(path, request).await?;
    serde_json::from_str(&line).map_err(|e| ControlError::Protocol(format!("{e}: {}", line.trim())))
}

/// [`ControlError::AlreadyRunning`] when a daemon answers on `path`.
pub async fn already_running(path: &Path) -> Option<ControlError> {
    let s = status(path).await.ok()?;
    Some(ControlError::AlreadyRunning { pid: s.pid, context: s.cluster.context, hosts: s.hosts.len() })
}

/// Whether a daemon answers on `path`.
pub async fn running(path: &Path) -> bool {
    status(path).await.is_ok()
}

/// Prints the daemon's log through `out`: the last `lines`, then new ones
/// while `follow`, until the daemon stops.
pub async fn logs(path: &Path, follow: bool, lines: usize, mut out: impl FnMut(&str)) -> Result<(), ControlError> {
    let mut reader = ask(path, &Request::Logs { follow, lines }).await?;
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line).await {
            Ok(0) => return Ok(()),
            Ok(_) => out(line.trim_end_matches('\n')),
            Err(source) => return Err(ControlError::Io { path: path.display().to_string(), source }),
        }
    }
}
