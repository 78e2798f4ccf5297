//! The daemon's log, kept for `devingress logs`: every line tracing writes
//! goes to stderr as before and into a ring of recent lines, from which
//! followers get new lines as they come.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Mutex, OnceLock};

use tokio::sync::broadcast;
use tracing_subscriber::fmt::MakeWriter;

/// How many lines are kept for `devingress logs`.
const KEPT: usize = 2000;

/// Recent log lines and their followers.
pub struct LogHub {
    lines: Mutex<VecDeque<String>>,
    tx: broadcast::Sender<String>,
}

/// The process's log hub.
pub fn hub() -> &'static LogHub {
    static HUB: OnceLock<LogHub> = OnceLock::new();
    HUB.get_or_init(|| LogHub { lines: Mutex::new(VecDeque::new()), tx: broadcast::channel(1024).0 })
}

/// Removes terminal colour codes (`ESC [ … m`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl LogHub {
    /// Adds the lines of `text`.
    pub fn push(&self, text: &str) {
        let text = strip_ansi(text);
        let mut lines = self.lines.lock().expect("log lock");
        for line in text.lines().filter(|l| !l.is_empty()) {
            if lines.len() == KEPT {
                lines.pop_front();
            }
            lines.push_back(line.to_string());
            let _ = self.tx.send(line.to_string());
        }
    }

    /// The last `n` lines, and a receiver for the lines after them.
    pub fn tail(&self, n: usize) -> (Vec<String>, broadcast::Receiver<String>) {
        let lines = self.lines.lock().expect("log lock");
        let rx = self.tx.subscribe();
        (lines.iter().skip(lines.len().saturating_sub(n)).cloned().collect(), rx)
    }
}

/// A tracing writer that writes to stderr and to the hub.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tee;

/// One event's text, written to stderr as it comes and to the hub when done.
pub struct TeeWriter {
    buf: Vec<u8>,
}

impl Write for TeeWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        std::io::stderr().write_all(bytes)?;
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl Drop for TeeWriter {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            hub().push(&String::from_utf8_lossy(&self.buf));
        }
    }
}

impl<'a> MakeWriter<'a> for Tee {
    type Writer = TeeWriter;

    fn make_writer(&'a self) -> TeeWriter {
        TeeWriter { buf: Vec::new() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_kept_without_colours_and_followers_get_new_ones() {
        let hub = LogHub { lines: Mutex::new(VecDeque::new()), tx: broadcast::channel(16).0 };
        hub.push("\u{1b}[32m INFO\u{1b}[0m first\nsecond\n");
        let (tail, mut rx) = hub.tail(1);
        assert_eq!(tail, ["second"]);
        hub.push("third\n");
        assert_eq!(rx.try_recv().unwrap(), "third");
        assert_eq!(hub.tail(10).0, [" INFO first", "second", "third"]);
    }
}
