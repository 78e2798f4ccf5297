//! The login-service installers: the Linux scripts against a temporary
//! $HOME (with a stand-in systemctl that records its calls), the packaged
//! copies kept in step with their templates, and the macOS and Windows
//! files parsed.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::devingress::{BIN, require};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() { out.extend(files_under(&p)) } else { out.push(p) }
        }
    }
    out.sort();
    out
}

/// Runs an installer script with `home` as $HOME and a recording systemctl.
fn script(name: &str, home: &Path, args: &[&str]) -> String {
    let bin = home.join("fake-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = home.join("systemctl-calls");
    let systemctl = bin.join("systemctl");
    std::fs::write(&systemctl, format!("#!/bin/sh\necho \"systemctl $*\" >> '{}'\n", log.display())).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&systemctl, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let out = Command::new("sh")
        .arg(Path::new(ROOT).join("installers/linux").join(name))
        .args(args)
        .env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .env("PATH", path)
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{name}: {text}");
    text
}

#[test]
fn linux_install_and_uninstall_leave_home_as_it_was() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let out = script("install.sh", h, &["--systemd", "--bin", BIN]);
    let unit = h.join(".config/systemd/user/devingress.service");
    assert!(out.contains(&format!("wrote {}", unit.display())), "{out}");
    let text = std::fs::read_to_string(&unit).unwrap();
    assert!(text.contains(&format!("\nExecStart={BIN} up\n")), "{text}");
    let calls = std::fs::read_to_string(h.join("systemctl-calls")).unwrap();
    assert_eq!(calls, "systemctl --user daemon-reload\nsystemctl --user enable --now devingress.service\n");

    let out = script("install.sh", h, &["--autostart", "--bin", BIN]);
    let entry = h.join(".config/autostart/devingress.desktop");
    assert!(out.contains("devingress starts with your next desktop session"), "{out}");
    assert!(std::fs::read_to_string(&entry).unwrap().contains(&format!("\nExec={BIN} up\n")));
    require("desktop-file-validate", "desktop-file-utils", "it validates the autostart entry");
    let v = Command::new("desktop-file-validate").arg(&entry).output().unwrap();
    assert!(v.status.success() && v.stdout.is_empty(), "{}", String::from_utf8_lossy(&v.stdout));

    let out = script("uninstall.sh", h, &[]);
    assert!(out.contains("removed") && !unit.exists() && !entry.exists(), "{out}");
    let calls = std::fs::read_to_string(h.join("systemctl-calls")).unwrap();
    assert!(
        calls.ends_with("systemctl --user disable --now devingress.service\nsystemctl --user daemon-reload\n"),
        "{calls}"
    );
    let left: Vec<PathBuf> = files_under(h)
        .into_iter()
        .filter(|p| !p.starts_with(h.join("fake-bin")) && !p.ends_with("systemctl-calls"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn the_package_ships_the_templates_with_its_binary_path() {
    for (template, packaged) in [
        ("installers/linux/devingress.service", "installers/debian/devingress.service"),
        ("installers/linux/devingress.desktop", "installers/debian/devingress.desktop"),
    ] {
        let t = std::fs::read_to_string(Path::new(ROOT).join(template)).unwrap();
        let p = std::fs::read_to_string(Path::new(ROOT).join(packaged)).unwrap();
        assert_eq!(p, t.replace("@BIN@", "/usr/bin/devingress"), "{packaged} is {template} for /usr/bin");
    }
}

#[test]
fn macos_launch_agent_and_windows_manifest_parse() {
    let plist = Path::new(ROOT).join("installers/macos/dev.devingress.devingress.plist");
    let check = "import plistlib,sys; p=plistlib.load(open(sys.argv[1],'rb')); \
                 assert p['Label']=='dev.devingress.devingress', p; assert p['ProgramArguments'][1:]==['up'], p; \
                 assert p['RunAtLoad'] is True and p['KeepAlive']=={'SuccessfulExit': False}, p; print('ok')";
    require("python3", "python3", "it parses the plist with plistlib");
    let out = Command::new("python3").args(["-c", check]).arg(&plist).output().expect("python3");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok", "{}", String::from_utf8_lossy(&out.stderr));
    let scoop: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(ROOT).join("installers/windows/devingress.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(scoop["bin"], "devingress.exe");
    assert_eq!(scoop["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(scoop["license"], "Apache-2.0");
}
