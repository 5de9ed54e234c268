#!/usr/bin/env bash
# Install or upgrade printer-gateway on a Raspberry Pi (Debian/Raspberry Pi OS, systemd).
#
#   sudo deploy/install-pi.sh                 # from a checkout: install, or upgrade in place
#   deploy/install-pi.sh --root DIR --no-systemd   # everything under DIR (tests, images)
#
# Lays out: code in /opt/printer-gateway/src (an editable install, so the bundled
# supervisord.conf travels with it), the virtualenv in /opt/printer-gateway/venv, the config
# in /etc/printer-gateway (gateway.toml 0640, token 0600), data and the durable queue in
# /var/lib/printer-gateway, logs in /var/log/printer-gateway (rotated by supervisord), and a
# systemd unit running `printer-gateway up` as the user printer-gateway.
# An upgrade replaces code and virtualenv only: config, token and the queue are kept.
set -euo pipefail

root=""
systemd=1
while [ $# -gt 0 ]; do
  case "$1" in
    --root) root="${2:?--root needs a directory}"; shift 2 ;;
    --no-systemd) systemd=0; shift ;;
    *) echo "usage: $0 [--root DIR] [--no-systemd]" >&2; exit 2 ;;
  esac
done

src_dir="$(cd "$(dirname "$0")/.." && pwd)"
prefix="$root/opt/printer-gateway"
etc="$root/etc/printer-gateway"
data="$root/var/lib/printer-gateway"
logs="$root/var/log/printer-gateway"
runtime="${root:+$root}/run/printer-gateway"
user="printer-gateway"
python="${PYTHON:-python3}"

say() { printf 'install-pi: %s\n' "$*"; }

if [ -z "$root" ] && [ "$(id -u)" = 0 ] && ! id "$user" >/dev/null 2>&1; then
  useradd --system --home-dir /var/lib/printer-gateway --shell /usr/sbin/nologin "$user"
  say "created system user $user"
fi

install -d -m 0755 "$prefix"
install -d -m 0750 "$etc"
install -d -m 0700 "$data" "$logs"

# Code: copy the checkout (without its virtualenv, caches or git data), then swap it in.
rm -rf "$prefix/src.new"
mkdir -p "$prefix/src.new"
tar -C "$src_dir" --exclude=./.venv --exclude=./.git --exclude='*/__pycache__' \
    --exclude=./.mypy_cache --exclude=./.pytest_cache --exclude=./.ruff_cache --exclude=./.hypothesis \
    -cf - . | tar -C "$prefix/src.new" -xf -
rm -rf "$prefix/src.old"
[ -d "$prefix/src" ] && mv "$prefix/src" "$prefix/src.old"
mv "$prefix/src.new" "$prefix/src"
rm -rf "$prefix/src.old"

[ -x "$prefix/venv/bin/python" ] || "$python" -m venv "$prefix/venv"
"$prefix/venv/bin/python" -m pip install --quiet --upgrade pip
"$prefix/venv/bin/python" -m pip install --quiet -e "$prefix/src"
say "installed $("$prefix/venv/bin/printer-gateway" --version) in $prefix"

# Config and token: created once, never overwritten by an upgrade.
if [ ! -f "$etc/gateway.toml" ]; then
  sed -e "s#^data_dir = .*#data_dir = \"$data\"#" \
      -e "s#^runtime_dir = .*#runtime_dir = \"$runtime\"#" \
      -e "s#^token_file = .*#token_file = \"$etc/token\"#" \
      "$src_dir/gateway.example.toml" > "$etc/gateway.toml"
  chmod 0640 "$etc/gateway.toml"
  say "wrote $etc/gateway.toml: set api.url and your printers"
fi
if [ ! -f "$etc/token" ]; then
  (umask 077; printf '%s\n' "${PRINTER_GATEWAY_TOKEN:-}" > "$etc/token")
  say "wrote $etc/token (mode 0600): put the API token in it"
fi
chmod 0600 "$etc/token"

unit_dir="$root/etc/systemd/system"
install -d -m 0755 "$unit_dir"
cat > "$unit_dir/printer-gateway.service" <<UNIT
[Unit]
Description=printer-gateway: watch and control 3D printers, report to an HTTP API
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User=$user
Group=$user
Environment=PRINTER_GATEWAY_CONFIG=/etc/printer-gateway/gateway.toml
Environment=PRINTER_GATEWAY_LOG_DIR=/var/log/printer-gateway
RuntimeDirectory=printer-gateway
RuntimeDirectoryMode=0700
UMask=0077
ExecStart=/opt/printer-gateway/venv/bin/printer-gateway up
KillSignal=SIGTERM
TimeoutStopSec=60
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
UNIT

if [ -z "$root" ] && id "$user" >/dev/null 2>&1; then
  chown -R "$user:$user" "$data" "$logs"
  chown "root:$user" "$etc" "$etc/gateway.toml"
  chown "$user:$user" "$etc/token"
fi

if [ "$systemd" = 1 ] && [ -z "$root" ] && command -v systemctl >/dev/null 2>&1; then
  systemctl daemon-reload
  systemctl enable printer-gateway.service >/dev/null
  systemctl restart printer-gateway.service
  say "printer-gateway.service enabled and (re)started"
else
  say "systemd not touched; the unit is at $unit_dir/printer-gateway.service"
fi
