//! The tray icon (cargo feature `tray`), shown in a real system tray:
//! Xvfb, trayer as the tray, a screenshot, and the icon's colour counted in
//! it. CI runs it with `--features tray`.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::cluster::TestCluster;
use crate::support::devingress::{Devingress, eventually, on_path};

/// A process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How many pixels of the screenshot have exactly this colour.
fn pixels_of(png: &std::path::Path, colour: &str) -> u64 {
    let out = Command::new("convert")
        .arg(png)
        .args(["-fill", "black", "+opaque", colour, "-fill", "white", "-opaque", colour])
        .args(["-format", "%[fx:round(mean*w*h)]", "info:"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0)
}

#[tokio::test]
async fn the_icon_shows_the_state_in_a_system_tray() {
    for tool in ["Xvfb", "trayer", "import", "convert", "xdotool"] {
        assert!(on_path(tool), "{tool} missing: apt-get install xvfb trayer imagemagick xdotool");
    }
    // A display of its own: Xvfb picks a free number and says which.
    let mut xvfb = Command::new("Xvfb")
        .args(["-displayfd", "1", "-screen", "0", "480x360x24", "-nolisten", "tcp"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(xvfb.stdout.take().unwrap()), &mut line).unwrap();
    let _xvfb = Killed(xvfb);
    let display = format!(":{}", line.trim());
    let _tray = Killed(
        Command::new("trayer")
            .args(["--edge", "top", "--align", "left", "--widthtype", "pixel", "--width", "480"])
            .args(["--heighttype", "pixel", "--height", "48", "--transparent", "false", "--tint", "0xffffff"])
            .args(["--SetDockType", "false", "--expand", "false"])
            .env("DISPLAY", &display)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut c = TestCluster::start().await;
    c.examples().await;
    let system = c.kubeconfig.with_file_name("system");
    let env: [(&str, &std::ffi::OsStr); 2] =
        [("DISPLAY", display.as_ref()), ("DEVINGRESS_SYSTEM_ROOT", system.as_os_str())];
    let d = Devingress::up_with_env(&c.kubeconfig, &[], &env).await;
    assert!(d.wait_log("showing the tray icon", Duration::from_secs(15)).await, "{}", d.log());

    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let shot = dir.join("tray.png");
    let take = || {
        let _ = std::fs::remove_file(&shot);
        Command::new("import").args(["-display", &display, "-window", "root"]).arg(&shot).status().unwrap()
    };
    // Connected: the green icon (assets/tray-connected.png) is in the tray.
    let green = eventually(Duration::from_secs(15), || async {
        take();
        pixels_of(&shot, "#1f9d55") > 50
    })
    .await;
    assert!(green, "no green icon in {} ({} pixels); log:\n{}", shot.display(), pixels_of(&shot, "#1f9d55"), d.log());
    let _ = std::fs::copy(&shot, dir.join("tray-connected.png"));
    eprintln!("tray screenshots: {}", dir.display());

    // Paused: the icon turns amber.
    let out = tokio::process::Command::new(crate::support::devingress::BIN)
        .arg("pause")
        .env("DEVINGRESS_RUNTIME_DIR", d.runtime_dir())
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    let amber = eventually(Duration::from_secs(15), || async {
        take();
        pixels_of(&shot, "#d97706") > 50
    })
    .await;
    assert!(amber, "the icon did not turn amber when paused; log:\n{}", d.log());
    let _ = std::fs::copy(&shot, dir.join("tray-paused.png"));

    // The menu works: click the icon, open the menu, choose its last item
    // (Quit devingress) from the keyboard; the daemon stops.
    let xdotool = |args: &[&str]| {
        let ok = Command::new("xdotool").args(args).env("DISPLAY", &display).status().unwrap().success();
        assert!(ok, "xdotool {args:?}");
    };
    xdotool(&["mousemove", "24", "24", "click", "3"]);
    tokio::time::sleep(Duration::from_millis(700)).await;
    take();
    let _ = std::fs::copy(&shot, dir.join("tray-menu.png"));
    xdotool(&["key", "Up", "Return"]);
    let stopped = d.exited_within(Duration::from_secs(20)).await;
    assert!(stopped.0, "Quit in the tray menu did not stop devingress; log:\n{}", stopped.1);
    assert!(stopped.1.contains("tray: stopping devingress"), "{}", stopped.1);
}
