//! The tray icon: a front end like `devingress status`, reading the status
//! model over the control socket and sending requests back. [`model`] says
//! what to show (tested without a display); with the `tray` cargo feature,
//! `icon` draws it with tray-icon on the platform event loop, on the main
//! thread, with the tokio runtime beside it.

#[cfg(feature = "tray")]
pub mod icon;
pub mod model;

/// Whether this build and session can show a tray icon.
pub fn available() -> Result<(), String> {
    if !cfg!(feature = "tray") {
        return Err("this build has no tray support (build with `--features tray`)".into());
    }
    if cfg!(target_os = "linux") {
        let display = ["DISPLAY", "WAYLAND_DISPLAY"].iter().any(|v| std::env::var_os(v).is_some_and(|d| !d.is_empty()));
        if !display {
            return Err("no display (DISPLAY and WAYLAND_DISPLAY are unset)".into());
        }
    }
    Ok(())
}

/// Opens `url` in the user's browser.
pub fn open_url(url: &str) -> std::io::Result<()> {
    let mut cmd = if cfg!(target_os = "macos") {
        std::process::Command::new("open")
    } else if cfg!(windows) {
        let mut c = std::process::Command::new("cmd");
        c.args(["/C", "start", ""]);
        c
    } else {
        std::process::Command::new("xdg-open")
    };
    cmd.arg(url).spawn().map(|_| ())
}
