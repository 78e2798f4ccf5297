//! The daemon's side of the control socket.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use super::{Action, ControlError, Reply, Request};
use crate::status::StatusHub;

/// The longest request line accepted.
const MAX_REQUEST: u64 = 64 * 1024;

/// A bound control socket, removed when dropped.
pub struct ControlServer {
    path: PathBuf,
    #[cfg(unix)]
    listener: tokio::net::UnixListener,
    /// Held while the daemon runs (the OS lets go of it when the process
    /// ends, however it ends): two `up` started at once cannot both pass
    /// the check for a running daemon and both take the socket.
    #[cfg(unix)]
    _lock: std::fs::File,
}

/// What requests may act on.
pub struct Handles {
    /// The status model.
    pub hub: Arc<StatusHub>,
    /// Where `down` and `switch-context` go.
    pub actions: mpsc::UnboundedSender<Action>,
    /// The kubeconfig contexts one may switch to.
    pub contexts: Vec<String>,
}

impl ControlServer {
    /// Binds the socket at `path`, unless a daemon answers there already. A
    /// socket file that nothing answers on is left from a crash and replaced.
    pub async fn bind(path: &Path) -> Result<Self, ControlError> {
        if let Some(running) = super::client::already_running(path).await {
            return Err(running);
        }
        let io = |source| ControlError::Io { path: path.display().to_string(), source };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if let Some(dir) = path.parent() {
                crate::paths::private_dir(dir).map_err(io)?;
            }
            let lock_path = path.with_extension("lock");
            let Some(lock) = take_lock(&lock_path).map_err(io)? else {
                // Another `up` holds it: it answers once it has started.
                for _ in 0..50 {
                    if let Some(running) = super::client::already_running(path).await {
                        return Err(running);
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                return Err(ControlError::Starting { lock: lock_path.display().to_string() });
            };
            match std::fs::remove_file(path) {
                Ok(()) => tracing::debug!("removed a control socket left by a crash: {}", path.display()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(e)),
            }
            let listener = tokio::net::UnixListener::bind(path).map_err(io)?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
            Ok(ControlServer { path: path.to_path_buf(), listener, _lock: lock })
        }
        #[cfg(windows)]
        {
            // Claim the name now, so that a second daemon fails here.
            tokio::net::windows::named_pipe::ServerOptions::new()
                .first_pipe_instance(true)
                .create(path)
                .map_err(io)
                .map(|first| {
                    drop(first);
                    ControlServer { path: path.to_path_buf() }
                })
        }
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Answers requests until the task is dropped.
    pub async fn serve(self, handles: Handles) {
        let handles = Arc::new(handles);
        loop {
            #[cfg(unix)]
            let stream = match self.listener.accept().await {
                Ok((s, _)) if same_user(&s) => s,
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!("control socket: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            #[cfg(windows)]
            let stream = {
                let server = match tokio::net::windows::named_pipe::ServerOptions::new().create(&self.path) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!("control pipe: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                };
                if server.connect().await.is_err() {
                    continue;
                }
                server
            };
            tokio::spawn(answer(stream, handles.clone()));
        }
    }
}

/// Takes the daemon's lock file, unless another process holds it.
#[cfg(unix)]
fn take_lock(path: &Path) -> std::io::Result<Option<std::fs::File>> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::io::AsRawFd;
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).mode(0o600).open(path)?;
    // SAFETY: flock on a descriptor this function owns; it touches no memory.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(Some(file));
    }
    match std::io::Error::last_os_error() {
        e if e.kind() == std::io::ErrorKind::WouldBlock => Ok(None),
        e => Err(e),
    }
}

/// Whether the peer of a control connection runs as this daemon's user.
/// The socket is 0600 in a 0700 directory, so another user should not get
/// this far; this holds even where permissions on sockets are not enforced.
#[cfg(unix)]
fn same_user(stream: &tokio::net::UnixStream) -> bool {
    // SAFETY: geteuid cannot fail and touches no memory.
    let own = unsafe { libc::geteuid() };
    match stream.peer_cred() {
        Ok(peer) if peer.uid() == own => true,
        Ok(peer) => {
            tracing::warn!(
                "control socket: refused a connection from uid {} (only uid {own}, who started devingress, may control it)",
                peer.uid()
            );
            false
        }
        Err(e) => {
            tracing::warn!("control socket: refused a connection whose user cannot be told: {e}");
            false
        }
    }
}

/// How long a client may take to send its request line.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl Drop for ControlServer {
    fn drop(&mut self) {
        #[cfg(unix)]
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn write_json<W: AsyncWrite + Unpin, T: serde::Serialize>(w: &mut W, value: &T) -> std::io::Result<()> {
    let mut line = serde_json::to_string(value).expect("answers serialize");
    line.push('\n');
    w.write_all(line.as_bytes()).await
}

/// Answers one request.
async fn answer<S: AsyncRead + AsyncWrite + Unpin>(stream: S, h: Arc<Handles>) -> std::io::Result<()> {
    let (read, mut write) = tokio::io::split(stream);
    let mut line = String::new();
    let mut reader = BufReader::new(read.take(MAX_REQUEST));
    let read_line = reader.read_line(&mut line);
    match tokio::time::timeout(REQUEST_TIMEOUT, read_line).await {
        Ok(read) => {
            read?;
        }
        Err(_) => {
            let message = format!("bad request: no request line within {REQUEST_TIMEOUT:?}");
            return write_json(&mut write, &Reply { ok: false, message }).await;
        }
    }
    if !line.ends_with('\n') && line.len() as u64 >= MAX_REQUEST {
        let message = format!("bad request: the request line is longer than {MAX_REQUEST} bytes");
        return write_json(&mut write, &Reply { ok: false, message }).await;
    }
    let request: Request = match serde_json::from_str(&line) {
        Ok(r) => r,
        Err(e) => return write_json(&mut write, &Reply { ok: false, message: format!("bad request: {e}") }).await,
    };
    let reply = |message: String| Reply { ok: true, message };
    match request {
        Request::Status => write_json(&mut write, &h.hub.snapshot()).await,
        Request::Down => {
            write_json(&mut write, &reply(format!("stopping devingress (pid {})", std::process::id()))).await?;
            let _ = h.actions.send(Action::Down);
            Ok(())
        }
        Request::Pause => {
            h.hub.set_paused(true);
            write_json(&mut write, &reply("paused: requests get 503 until resumed".into())).await
        }
        Request::Resume => {
            h.hub.set_paused(false);
            write_json(&mut write, &reply("serving again".into())).await
        }
        Request::SwitchContext { context } => {
            if !h.contexts.contains(&context) {
                let message = format!("no context {context:?} in the kubeconfig (it has: {})", h.contexts.join(", "));
                return write_json(&mut write, &Reply { ok: false, message }).await;
            }
            write_json(&mut write, &reply(format!("switching to context {context}"))).await?;
            let _ = h.actions.send(Action::SwitchContext(context));
            Ok(())
        }
        Request::Logs { follow, lines } => {
            let (past, mut rx) = crate::logs::hub().tail(lines);
            for l in past {
                write.write_all(format!("{l}\n").as_bytes()).await?;
            }
            if follow {
                loop {
                    match rx.recv().await {
                        Ok(l) => write.write_all(format!("{l}\n").as_bytes()).await?,
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                            write.write_all(format!("… {n} line(s) skipped\n").as_bytes()).await?
                        }
                        Err(_) => break,
                    }
                }
            }
            write.shutdown().await
        }
    }
}
