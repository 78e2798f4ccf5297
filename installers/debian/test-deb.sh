#!/bin/sh
# Installs the .deb, checks what it put on the machine, removes it, and
# checks that the machine is as it was (CI runs this as root).
#   installers/debian/test-deb.sh target/debian/devingress_*.deb
set -eu
deb=$1
snapshot() { find /usr /etc /var/lib -xdev \( -path /var/lib/dpkg -o -path /var/lib/apt -o -path /var/cache \) -prune -o -print 2>/dev/null | sort; }
before=$(mktemp); after=$(mktemp)
snapshot > "$before"

echo "-- install"
apt-get install -y -qq "$(realpath "$deb")" >/dev/null
/usr/bin/devingress --version
getcap /usr/bin/devingress | grep -q cap_net_bind_service || { echo "postinst did not grant cap_net_bind_service"; exit 1; }
echo "postinst granted: $(getcap /usr/bin/devingress)"
for f in /usr/lib/systemd/user/devingress.service /etc/xdg/autostart/devingress.desktop /usr/share/doc/devingress/README.md; do
  [ -f "$f" ] || { echo "missing $f"; exit 1; }
done
grep -q '^ExecStart=/usr/bin/devingress up$' /usr/lib/systemd/user/devingress.service
if command -v desktop-file-validate >/dev/null; then desktop-file-validate /etc/xdg/autostart/devingress.desktop; fi
dpkg -L devingress

echo "-- remove"
apt-get purge -y -qq devingress >/dev/null
snapshot > "$after"
if ! diff "$before" "$after"; then echo "the machine differs after removal (above)"; exit 1; fi
echo "installed and removed cleanly: nothing left behind"
