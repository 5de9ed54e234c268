#!/usr/bin/env bash
# Install or upgrade printer-gateway on a Raspberry Pi (Debian/Raspberry Pi OS, systemd).
#
#   sudo deploy/install-pi.sh                  # the gateway, reporting to an API you have
#   sudo deploy/install-pi.sh --with-web-app   # the gateway and the web app on this Pi
#   deploy/install-pi.sh --root DIR --no-systemd [--with-web-app]   # all under DIR (tests)
#
# Lays out: code in /opt/printer-gateway/src (an editable install, so the bundled
# supervisord.conf travels with it), the virtualenv in /opt/printer-gateway/venv, the config
# in /etc/printer-gateway, data and the durable queue in /var/lib/printer-gateway, logs in
# /var/log/printer-gateway (rotated by supervisord), `printer-gateway` on PATH
# (/usr/local/bin), and systemd units running as the user printer-gateway.
#
# The installer never writes a config of placeholders and never starts the gateway on one:
# `printer-gateway setup` (run here when this is a terminal) finds the printer, asks for the
# API and its token at a hidden prompt, writes the config and the token file, checks both,
# and only then starts the service. With --with-web-app the web app gets a token of its own,
# generated into /etc/printer-gateway/web-app-token by Python (never on a command line or in
# an environment), and its own unit, bound to the LAN.
# An upgrade replaces code, virtualenv, wrapper and units only: config, tokens and the queue
# are kept, and a gateway whose config passes check-config is restarted.
set -euo pipefail

usage="usage: $0 [--with-web-app] [--web-app-listen HOST:PORT] [--no-setup] [--root DIR] [--no-systemd]"
root=""
systemd=1
web_app=0
listen="0.0.0.0:8080"
run_setup=1
while [ $# -gt 0 ]; do
  case "$1" in
    --root) root="${2:?--root needs a directory}"; shift 2 ;;
    --no-systemd) systemd=0; shift ;;
    --with-web-app) web_app=1; shift ;;
    --web-app-listen) listen="${2:?--web-app-listen needs HOST:PORT}"; shift 2 ;;
    --no-setup) run_setup=0; shift ;;
    -h|--help) echo "$usage"; exit 0 ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
done
case "$listen" in
  *:*[!0-9]*|:*|*:) echo "install-pi: --web-app-listen $listen: want HOST:PORT" >&2; exit 2 ;;
  *:*) ;;
  *) echo "install-pi: --web-app-listen $listen: want HOST:PORT" >&2; exit 2 ;;
esac
listen_host="${listen%:*}"
listen_port="${listen##*:}"
if [ "$listen_port" -lt 1024 ] || [ "$listen_port" -gt 65535 ]; then
  echo "install-pi: --web-app-listen $listen: the port must be 1024..65535 (the web app does not run as root; for 80/443 put a proxy in front: docs/remote-access.md)" >&2
  exit 2
fi
# How the gateway on this machine reaches the web app, and where people open it.
api_host="$listen_host"
[ "$listen_host" = 0.0.0.0 ] && api_host=127.0.0.1

if [ -n "$root" ]; then
  root="$(mkdir -p "$root" && cd "$root" && pwd)"
  user="$(id -un)"  # a test root: everything belongs to whoever runs this
else
  user="printer-gateway"
fi
src_dir="$(cd "$(dirname "$0")/.." && pwd)"
prefix="$root/opt/printer-gateway"
etc="$root/etc/printer-gateway"
data="$root/var/lib/printer-gateway"
logs="$root/var/log/printer-gateway"
runtime="$root/run/printer-gateway"
bin_dir="$root/usr/local/bin"
unit_dir="$root/etc/systemd/system"
cli="$prefix/venv/bin/printer-gateway"
# The system's Python by default: the service's user must be able to run it (a Python
# under a private home, pyenv's in /root say, would install fine and then not start).
python="${PYTHON:-python3}"
[ -z "${PYTHON:-}" ] && [ -z "$root" ] && [ -x /usr/bin/python3 ] && python=/usr/bin/python3

say() { printf 'install-pi: %s\n' "$*"; }
# Root becoming the service's user: setpriv (util-linux) execs the command itself, so it
# gets signals directly and no parent waits behind it (runuser and su keep one).
as_service="setpriv --reuid=$user --regid=$user --init-groups --"
# Anything done inside the service's own folders (data, logs) is done as that user, never
# as root: a link planted there by the service could otherwise point root's write at any
# file. In a test root everything already belongs to whoever runs this.
if [ -n "$root" ]; then in_service_dirs=""; else in_service_dirs="$as_service"; fi

if [ -z "$root" ] && [ "$(id -u)" != 0 ]; then
  echo "install-pi: run it with sudo (it installs into /opt, /etc and /var)" >&2
  exit 2
fi
if [ -z "$root" ] && ! id "$user" >/dev/null 2>&1; then
  useradd --system --home-dir /var/lib/printer-gateway --shell /usr/sbin/nologin "$user"
  say "created system user $user"
fi

install -d -m 0755 "$prefix" "$bin_dir" "$unit_dir"
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
if [ -z "$root" ] && ! $as_service "$prefix/venv/bin/python" -c '' 2>/dev/null; then
  rm -rf "$prefix/venv"  # made from a Python the service's user cannot run: make it anew
  "$python" -m venv "$prefix/venv"
  if ! $as_service "$prefix/venv/bin/python" -c '' 2>/dev/null; then
    echo "install-pi: the user $user cannot run $python; install Debian's python3 and python3-venv, or name another with PYTHON=..." >&2
    exit 1
  fi
fi
# pip's and setuptools' chatter goes to a log, shown only when the install fails.
pip_log="$prefix/install.log"  # root's folder: never one the service can write
pip_install() {
  if ! "$prefix/venv/bin/python" -m pip install --quiet "$@" >"$pip_log" 2>&1; then
    cat "$pip_log" >&2
    echo "install-pi: pip install $* failed (above, and in $pip_log)" >&2
    exit 1
  fi
}
pip_install --upgrade pip
target="$prefix/src"
[ "$web_app" = 1 ] && target="$prefix/src[api]"
pip_install -e "$target"
say "installed $("$cli" --version) in $prefix"

# The web app's token: generated inside Python and written by it (umask 077, O_EXCL), so it
# is never an argument or an environment variable of any process. Kept by an upgrade.
if [ "$web_app" = 1 ] && [ ! -s "$etc/web-app-token" ]; then
  rm -f "$etc/web-app-token"
  "$prefix/venv/bin/python" - "$etc/web-app-token" <<'PY'
import os, secrets, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
os.write(fd, (secrets.token_urlsafe(32) + "\n").encode())
os.fsync(fd)
os.close(fd)
PY
  say "generated the web app's token in $etc/web-app-token (mode 600)"
fi

# systemd only where it runs (/run/systemd/system exists only then: sd_booted(3)). In a
# container without it, the web app is started here in the background, and setup says to
# run `printer-gateway up`. A test root is an image: setup there uses whatever `systemctl`
# is on PATH (the tests' stand-in).
use_systemd=0
if [ "$systemd" = 1 ] && [ -z "$root" ] && [ -d /run/systemd/system ]; then use_systemd=1; fi

web_app_address() {
  local address
  address="$(hostname -I 2>/dev/null | tr ' ' '\n' | grep -m1 '\.' || true)"
  [ "$listen_host" = 0.0.0.0 ] || address="$listen_host"
  printf 'http://%s:%s/' "${address:-$(hostname).local}" "$listen_port"
}

# setup's arguments: where this install keeps things (the wrapper passes them).
if [ "$web_app" = 1 ]; then
  setup_args="--web-app http://$api_host:$listen_port --web-app-page $(web_app_address)"
  setup_args="$setup_args --token-file $etc/web-app-token"
else
  setup_args="--token-file $etc/token"
fi
setup_args="$setup_args --user $user"
if [ -n "$root" ]; then
  setup_args="$setup_args --units $unit_dir --data-dir $data --runtime-dir $runtime"
elif [ "$use_systemd" = 1 ]; then
  setup_args="$setup_args --units $unit_dir"
else
  setup_args="$setup_args --no-start"
fi

# `printer-gateway` on PATH: this install's config by default, run as the service's user so
# that what it creates stays the service's; `setup` runs as root (it writes /etc).
cat > "$bin_dir/printer-gateway.new" <<WRAPPER
#!/bin/sh
# printer-gateway as installed by deploy/install-pi.sh (rewritten by each upgrade).
: "\${PRINTER_GATEWAY_CONFIG:=$etc/gateway.toml}"
: "\${PRINTER_GATEWAY_LOG_DIR:=$logs}"
export PRINTER_GATEWAY_CONFIG PRINTER_GATEWAY_LOG_DIR
cli="$cli"
case "\${1:-}" in
  setup)
    shift
    if [ "\$(id -u)" != 0 ] && [ -z "$root" ]; then
      exec sudo "\$0" setup "\$@"  # it writes the config and the token in $etc
    fi
    exec "\$cli" setup $setup_args "\$@" ;;
  discover|sim|api|-h|--help|--version|"") exec "\$cli" "\$@" ;;
esac
if [ "\$(id -un)" = "$user" ]; then exec "\$cli" "\$@"; fi
if [ "\$(id -u)" = 0 ]; then as_user="$as_service"; else as_user="sudo -u $user"; fi
exec \$as_user env PRINTER_GATEWAY_CONFIG="\$PRINTER_GATEWAY_CONFIG" \\
  PRINTER_GATEWAY_LOG_DIR="\$PRINTER_GATEWAY_LOG_DIR" "\$cli" "\$@"
WRAPPER
chmod 0755 "$bin_dir/printer-gateway.new"
mv "$bin_dir/printer-gateway.new" "$bin_dir/printer-gateway"

# Both units run in a sandbox: the system read-only but for the folders named in each unit's
# ReadWritePaths (the runtime directory is systemd's), no home directories, a private /tmp,
# no privilege gained.
sandbox="NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes"

cat > "$unit_dir/printer-gateway.service" <<UNIT
[Unit]
Description=printer-gateway: watch and control 3D printers, report to an HTTP API
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User=$user
Group=$user
Environment=PRINTER_GATEWAY_CONFIG=$etc/gateway.toml
Environment=PRINTER_GATEWAY_LOG_DIR=$logs
RuntimeDirectory=printer-gateway
RuntimeDirectoryMode=0700
UMask=0077
ExecStart=$cli up
$sandbox
ReadWritePaths=$data $logs
KillSignal=SIGTERM
TimeoutStopSec=60
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
UNIT

if [ "$web_app" = 1 ]; then
  cat > "$unit_dir/printer-gateway-api.service" <<UNIT
[Unit]
Description=printer-gateway web app: the reference API and its pages, on the LAN
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User=$user
Group=$user
UMask=0077
ExecStart=$cli api --host $listen_host --port $listen_port --db $data/web-app/api.db --token-file $etc/web-app-token
$sandbox
ReadWritePaths=$data/web-app
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
UNIT
fi

if [ -z "$root" ]; then
  install -d -m 0700 -o "$user" -g "$user" "$runtime"  # systemd makes it anew at each start
  chown -R "$user:$user" "$data" "$logs"
  chown "root:$user" "$etc"
  [ -f "$etc/gateway.toml" ] && chown "root:$user" "$etc/gateway.toml"
  for token in "$etc/token" "$etc/web-app-token"; do
    [ -f "$token" ] && chown "$user:$user" "$token" && chmod 0600 "$token"
  done
fi

[ "$web_app" = 1 ] && $in_service_dirs mkdir -p -m 0700 "$data/web-app"

if [ "$use_systemd" = 1 ]; then
  systemctl daemon-reload
  if [ "$web_app" = 1 ]; then
    systemctl enable printer-gateway-api.service >/dev/null
    systemctl restart printer-gateway-api.service
    say "printer-gateway-api.service (the web app) enabled and running on $listen"
  fi
fi

if [ "$web_app" = 1 ] && [ "$use_systemd" = 0 ] && [ -z "$root" ]; then
  pkill -u "$user" -f "$cli api " 2>/dev/null && sleep 1 || true  # an upgrade's old one
  # the log is opened by the service's user, in its own folder (see in_service_dirs)
  setsid $as_service sh -c 'umask 077; exec "$@" >>"$0" 2>&1' "$logs/web-app.log" \
    $(sed -n 's/^ExecStart=//p' "$unit_dir/printer-gateway-api.service") </dev/null &
  say "systemd is not running here: the web app was started in the background (log: $logs/web-app.log); it will not start again by itself after a reboot"
fi


if [ -f "$etc/gateway.toml" ] && PRINTER_GATEWAY_CONFIG="$etc/gateway.toml" "$cli" check-config >/dev/null 2>&1; then
  if [ "$use_systemd" = 1 ]; then
    systemctl enable printer-gateway.service >/dev/null
    systemctl restart printer-gateway.service
    say "printer-gateway.service restarted on the kept config $etc/gateway.toml"
  else
    if command -v flock >/dev/null 2>&1 && [ -f "$data/gateway.lock" ] \
        && ! $in_service_dirs flock -n "$data/gateway.lock" true 2>/dev/null; then
      say "kept $etc/gateway.toml; the gateway is running on the old code: stop \`printer-gateway up\` (Ctrl-C) and start it again"
    else
      say "kept $etc/gateway.toml; start it with: printer-gateway up"
    fi
  fi
elif [ "$run_setup" = 1 ] && [ -t 0 ] && [ -t 1 ]; then
  say "now the set-up: which printer, and where it reports"
  "$bin_dir/printer-gateway" setup || say "set-up not finished: run \`sudo printer-gateway setup\` again"
else
  say "next: sudo printer-gateway setup   (finds the printer, writes the config, checks, starts)"
fi
if [ "$web_app" = 0 ] && [ -f "$unit_dir/printer-gateway-api.service" ]; then
  say "note: the web app of an earlier --with-web-app install is still there ($unit_dir/printer-gateway-api.service); docs/install-pi.md says how to remove it"
fi
if [ "$web_app" = 1 ]; then
  say "the web app: $(web_app_address) (its token: sudo cat $etc/web-app-token)"
fi
[ "$use_systemd" = 1 ] || say "systemd not used; the units are in $unit_dir"
