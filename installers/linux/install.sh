#!/bin/sh
# Starts devingress at login for the current user, either as a systemd user
# service (default; headless) or as a desktop autostart entry (--autostart;
# with the tray icon in desktop builds). Undo: installers/linux/uninstall.sh.
#   install.sh [--systemd | --autostart] [--bin PATH]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
mode=systemd
bin=$(command -v devingress || true)
while [ $# -gt 0 ]; do
  case "$1" in
    --systemd) mode=systemd ;;
    --autostart) mode=autostart ;;
    --bin) bin=$2; shift ;;
    *) echo "usage: install.sh [--systemd | --autostart] [--bin PATH]" >&2; exit 2 ;;
  esac
  shift
done
[ -n "$bin" ] && [ -x "$bin" ] || { echo "devingress is not installed (cargo install --locked --path .), or pass --bin PATH" >&2; exit 1; }
config=${XDG_CONFIG_HOME:-$HOME/.config}
case "$mode" in
  systemd)
    dest="$config/systemd/user/devingress.service"
    mkdir -p "$(dirname "$dest")"
    sed "s|@BIN@|$bin|" "$here/devingress.service" > "$dest"
    echo "wrote $dest"
    if systemctl --user daemon-reload 2>/dev/null && systemctl --user enable --now devingress.service; then
      echo "enabled and started devingress.service (systemctl --user status devingress)"
    else
      echo "no systemd user manager here: start it with \`systemctl --user enable --now devingress\` in your session"
    fi
    ;;
  autostart)
    dest="$config/autostart/devingress.desktop"
    mkdir -p "$(dirname "$dest")"
    sed "s|@BIN@|$bin|" "$here/devingress.desktop" > "$dest"
    echo "wrote $dest: devingress starts with your next desktop session"
    ;;
esac
