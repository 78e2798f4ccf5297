#!/bin/sh
# Starts devingress at login on macOS, with a LaunchAgent. Undo: uninstall.sh.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$(command -v devingress || true)}
[ -n "$bin" ] && [ -x "$bin" ] || { echo "devingress is not installed (brew install, or cargo install --locked --path .)" >&2; exit 1; }
agents="$HOME/Library/LaunchAgents"
plist="$agents/dev.devingress.devingress.plist"
log="$HOME/Library/Logs/devingress.log"
mkdir -p "$agents" "$(dirname "$log")"
sed -e "s|@BIN@|$bin|" -e "s|@LOG@|$log|" "$here/dev.devingress.devingress.plist" > "$plist"
echo "wrote $plist (log: $log)"
launchctl bootout "gui/$(id -u)" "$plist" 2>/dev/null || true
launchctl bootstrap "gui/$(id -u)" "$plist"
echo "devingress starts now and at every login (launchctl print gui/$(id -u)/dev.devingress.devingress)"
