#!/bin/sh
# Removes what installers/linux/install.sh added, in either mode.
set -eu
config=${XDG_CONFIG_HOME:-$HOME/.config}
unit="$config/systemd/user/devingress.service"
if [ -f "$unit" ]; then
  systemctl --user disable --now devingress.service 2>/dev/null || true
  rm -f "$unit"
  systemctl --user daemon-reload 2>/dev/null || true
  echo "removed $unit"
fi
entry="$config/autostart/devingress.desktop"
if [ -f "$entry" ]; then
  rm -f "$entry"
  echo "removed $entry"
fi
