//! Where devingress keeps its files: the local CA and minted certificates,
//! in the user's data directory.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The environment variable that moves the data directory (tests use it).
pub const DATA_DIR_ENV: &str = "DEVINGRESS_DATA_DIR";

/// devingress's own directories.
#[derive(Debug, Clone)]
pub struct Paths {
    /// The data directory (`~/.local/share/devingress` on Linux).
    pub data_dir: PathBuf,
}

/// Why the data directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PathsError {
    /// No home directory to put it in.
    #[error("cannot find a data directory (no home directory); set {DATA_DIR_ENV} or pass --data-dir")]
    NoHome,
}

impl Paths {
    /// `explicit`, else `$DEVINGRESS_DATA_DIR`, else the platform's data dir.
    pub fn resolve(explicit: Option<PathBuf>) -> Result<Self, PathsError> {
        let data_dir = match explicit.or_else(|| std::env::var_os(DATA_DIR_ENV).map(PathBuf::from)) {
            Some(d) => d,
            None => platform_data_dir().ok_or(PathsError::NoHome)?,
        };
        Ok(Paths { data_dir })
    }

    /// The local CA's directory.
    pub fn ca_dir(&self) -> PathBuf {
        self.data_dir.join("ca")
    }

    /// The CA certificate (PEM), which `devingress ca path` prints.
    pub fn ca_cert(&self) -> PathBuf {
        self.ca_dir().join("rootCA.pem")
    }

    /// The CA key (PEM, mode 0600).
    pub fn ca_key(&self) -> PathBuf {
        self.ca_dir().join("rootCA-key.pem")
    }

    /// Minted leaf certificates.
    pub fn leaves_dir(&self) -> PathBuf {
        self.data_dir.join("certs")
    }
}

/// The platform's per-user data directory for devingress:
/// `~/.local/share/devingress` (or `$XDG_DATA_HOME/devingress`) on Linux,
/// `~/Library/Application Support/dev.devingress.devingress` on macOS,
/// `%APPDATA%\devingress\devingress\data` on Windows.
fn platform_data_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("dev", "devingress", "devingress").map(|d| d.data_dir().to_path_buf())
}

/// Creates `dir` (and parents) readable by the user only.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
    }
    #[cfg(not(unix))]
    fs::create_dir_all(dir)
}

/// Writes `bytes` to `path` atomically (a temporary file renamed over it),
/// with mode 0600 when `secret`.
pub fn write_atomic(path: &Path, bytes: &[u8], secret: bool) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if secret { 0o600 } else { 0o644 });
    }
    let _ = secret;
    let mut f = opts.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_dir_wins_and_files_are_laid_out() {
        let p = Paths::resolve(Some(PathBuf::from("/x/y"))).unwrap();
        assert_eq!(p.ca_cert(), PathBuf::from("/x/y/ca/rootCA.pem"));
        assert_eq!(p.ca_key(), PathBuf::from("/x/y/ca/rootCA-key.pem"));
        assert_eq!(p.leaves_dir(), PathBuf::from("/x/y/certs"));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn linux_default_is_where_earlier_releases_kept_it() {
        // Earlier releases computed ~/.local/share/devingress by hand; the
        // CA and certificates must still be found there.
        let d = platform_data_dir().unwrap();
        let xdg = std::env::var_os("XDG_DATA_HOME").map(PathBuf::from).filter(|p| p.is_absolute());
        let home = std::env::home_dir().unwrap();
        assert_eq!(d, xdg.unwrap_or_else(|| home.join(".local/share")).join("devingress"));
    }

    #[test]
    fn atomic_writes_replace_whole_files_with_the_right_mode() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("k.pem");
        write_atomic(&f, b"one", true).unwrap();
        write_atomic(&f, b"two", true).unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"two");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&f).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left behind");
    }
}
