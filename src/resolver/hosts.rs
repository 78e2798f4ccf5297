//! A managed block in the hosts file: delimited by markers, written
//! atomically with the previous file kept beside it, replaced as routes
//! change, removed on exit, and repaired on the next start after a crash.
//! Nothing outside the block is ever changed: removing the block gives back
//! the original bytes.

use std::io;
use std::path::{Path, PathBuf};

/// The first line of the block.
pub const BEGIN: &str = "# BEGIN devingress: managed by devingress, removed when it stops; do not edit";
/// The variant of [`BEGIN`] used when the file did not end with a newline
/// and one was added before the block.
pub const BEGIN_NEWLINE_ADDED: &str =
    "# BEGIN devingress: managed by devingress, removed when it stops; do not edit (newline added)";
/// The last line of the block.
pub const END: &str = "# END devingress";

/// Removes the managed block, giving back the bytes as they were before it
/// was added. Text without a block is returned unchanged.
pub fn strip(text: &str) -> String {
    let mut out = text.to_string();
    while let Some(begin) = find_line(&out, |l| l == BEGIN || l == BEGIN_NEWLINE_ADDED) {
        let newline_added = out[begin..].starts_with(BEGIN_NEWLINE_ADDED);
        let end = match find_line(&out[begin..], |l| l == END) {
            Some(e) => {
                let end_line = begin + e;
                out[end_line..].find('\n').map_or(out.len(), |n| end_line + n + 1)
            }
            // A block cut short (a crash mid-write cannot do this, an editor
            // can): drop it to the end.
            None => out.len(),
        };
        let start = if newline_added && begin > 0 && out.as_bytes()[begin - 1] == b'\n' { begin - 1 } else { begin };
        out.replace_range(start..end, "");
    }
    out
}

/// The start of the first line for which `pred` holds (line without its end).
fn find_line(text: &str, pred: impl Fn(&str) -> bool) -> Option<usize> {
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        if pred(line.trim_end_matches(['\n', '\r'])) {
            return Some(at);
        }
        at += line.len();
    }
    None
}

/// The file as it should be: the original (any old block removed) with a
/// block for `hosts` appended. Wildcard hosts cannot be listed and are left out.
pub fn render(text: &str, hosts: &[String]) -> String {
    let mut out = strip(text);
    let hosts: Vec<&String> = hosts.iter().filter(|h| !h.contains('*')).collect();
    if hosts.is_empty() {
        return out;
    }
    let begin = if out.is_empty() || out.ends_with('\n') {
        BEGIN
    } else {
        out.push('\n');
        BEGIN_NEWLINE_ADDED
    };
    out.push_str(begin);
    out.push('\n');
    for h in hosts {
        out.push_str(&format!("127.0.0.1\t{h}\n::1\t{h}\n"));
    }
    out.push_str(END);
    out.push('\n');
    out
}

/// The hosts file that devingress manages.
#[derive(Debug, Clone)]
pub struct HostsFile {
    path: PathBuf,
}

/// The system's hosts file.
pub fn system_path() -> PathBuf {
    if cfg!(windows) {
        let root = std::env::var_os("SystemRoot").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(r"C:\Windows"));
        root.join(r"System32\drivers\etc\hosts")
    } else {
        PathBuf::from("/etc/hosts")
    }
}

impl HostsFile {
    /// Manages the file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        HostsFile { path: path.into() }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the file as it was before devingress's last change is kept.
    pub fn backup_path(&self) -> PathBuf {
        let mut name = self.path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        name.push(".devingress-backup");
        self.path.with_file_name(name)
    }

    fn write(&self, old: &str, new: &str) -> io::Result<()> {
        let mode = file_mode(&self.path);
        crate::paths::write_atomic(&self.backup_path(), old.as_bytes(), false)?;
        write_with_mode(&self.path, new.as_bytes(), mode)
    }

    /// Lists exactly `hosts` in the block. Returns whether the file changed.
    pub fn apply(&self, hosts: &[String]) -> io::Result<bool> {
        let old = std::fs::read_to_string(&self.path)?;
        let new = render(&old, hosts);
        if new == old {
            return Ok(false);
        }
        self.write(&old, &new)?;
        Ok(true)
    }

    /// Removes the block (also after a crash left one behind). Returns
    /// whether the file changed.
    pub fn remove(&self) -> io::Result<bool> {
        let old = std::fs::read_to_string(&self.path)?;
        let new = strip(&old);
        if new == old {
            return Ok(false);
        }
        self.write(&old, &new)?;
        Ok(true)
    }
}

fn file_mode(path: &Path) -> u32 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).map(|m| m.permissions().mode() & 0o7777).unwrap_or(0o644)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        0o644
    }
}

/// Atomic replace that keeps the file's mode.
fn write_with_mode(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    crate::paths::write_atomic(path, bytes, false)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    Ok(())
}

impl super::OsResolver for HostsFile {
    fn describe(&self) -> String {
        format!("a managed block in {}", self.path.display())
    }

    fn handles_wildcards(&self) -> bool {
        false
    }

    fn apply(&mut self, hosts: &[String]) -> Result<bool, super::ResolverError> {
        HostsFile::apply(self, hosts).map_err(|source| super::ResolverError::File { path: self.path.clone(), source })
    }

    fn remove(&mut self) -> Result<bool, super::ResolverError> {
        HostsFile::remove(self).map_err(|source| super::ResolverError::File { path: self.path.clone(), source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGINAL: &str =
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n# a comment the user wrote\n10.0.0.5 nas.home\n";

    fn hosts(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn block_round_trips_to_the_original_bytes() {
        for original in [ORIGINAL, "", "no trailing newline", "a\r\nwindows\r\n", "\n\n"] {
            let with = render(original, &hosts(&["alpaca.example.com", "bandicoot.example.com"]));
            assert!(with.starts_with(original.trim_end_matches('\n')) || original.is_empty() || original == "\n\n");
            assert!(with.contains("127.0.0.1\talpaca.example.com\n::1\talpaca.example.com\n"));
            assert_eq!(strip(&with), original, "{original:?}");
            // Replacing the block keeps everything else.
            let again = render(&with, &hosts(&["new.example.com"]));
            assert!(!again.contains("alpaca") && again.contains("new.example.com"));
            assert_eq!(strip(&again), original);
        }
    }

    #[test]
    fn no_hosts_means_no_block_and_wildcards_are_left_out() {
        assert_eq!(render(ORIGINAL, &[]), ORIGINAL);
        assert_eq!(render(ORIGINAL, &hosts(&["*.apps.test"])), ORIGINAL);
        let with = render(ORIGINAL, &hosts(&["*.apps.test", "a.test"]));
        assert!(!with.contains('*') && with.contains("a.test"));
    }

    #[test]
    fn text_outside_the_block_is_never_touched() {
        let with = render(ORIGINAL, &hosts(&["a.test"]));
        let user_edit = with.replace("10.0.0.5 nas.home", "10.0.0.6 nas.home");
        let replaced = render(&user_edit, &hosts(&["b.test"]));
        assert!(replaced.contains("10.0.0.6 nas.home"));
        assert_eq!(strip(&replaced), ORIGINAL.replace("10.0.0.5", "10.0.0.6"));
    }

    #[test]
    fn file_apply_update_remove_and_crash_repair() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        std::fs::write(&path, ORIGINAL).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let file = HostsFile::new(&path);
        assert!(file.apply(&hosts(&["alpaca.example.com"])).unwrap());
        assert!(!file.apply(&hosts(&["alpaca.example.com"])).unwrap(), "idempotent");
        assert_eq!(std::fs::read_to_string(file.backup_path()).unwrap(), ORIGINAL, "the old file is kept");
        assert!(file.apply(&hosts(&["alpaca.example.com", "bandicoot.example.com"])).unwrap());
        assert!(std::fs::read_to_string(&path).unwrap().contains("bandicoot"));
        // A crash: the process is gone, the block stays. The next start repairs it.
        drop(file);
        let next_start = HostsFile::new(&path);
        assert!(next_start.remove().unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), ORIGINAL.as_bytes(), "byte for byte");
        assert!(!next_start.remove().unwrap(), "nothing left to remove");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o644, "mode kept");
        }
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(leftovers.len(), 2, "the file and its backup, no temporary files: {leftovers:?}");
    }

    #[test]
    fn a_block_cut_short_is_removed_to_the_end() {
        let broken = format!("{ORIGINAL}{BEGIN}\n127.0.0.1\ta.test\n");
        assert_eq!(strip(&broken), ORIGINAL);
    }
}
