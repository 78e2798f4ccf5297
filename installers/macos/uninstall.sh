#!/bin/sh
# Removes the LaunchAgent that install.sh added (the log file stays).
set -eu
plist="$HOME/Library/LaunchAgents/dev.devingress.devingress.plist"
if [ -f "$plist" ]; then
  launchctl bootout "gui/$(id -u)" "$plist" 2>/dev/null || true
  rm -f "$plist"
  echo "removed $plist"
fi
