#!/usr/bin/env bash
# install.sh install|uninstall: puts the daemon, the CLI, the shipped modules,
# the example config and the systemd unit in place (or removes exactly those),
# under DESTDIR (a staging root, e.g. for a package) and PREFIX (default /usr).
# Modules go where an installed daemon looks for them (/usr/lib/netmanager/
# modules), whatever PREFIX. `make install` in the repository and ./install.sh
# in a release archive both run this script; where the files come from:
#   NM_BIN          directory with netmanager and netmanagerctl  (default ./bin)
#   NM_MODULES      directory with <name>/<name>.{so,o}          (default ./modules)
#   NM_MODULE_NAMES the modules to install (default: every directory of NM_MODULES)
#   NM_UNIT         the systemd unit      (default ./netmanager.service)
#   NM_CONFIG       the example config    (default ./netmanager.example.json)
# (./ is this script's directory). Uninstall leaves netmanager.json, the state
# in /var/lib/netmanager and the pins alone.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
: "${DESTDIR:=}" "${PREFIX:=/usr}"
: "${NM_BIN:=$here/bin}" "${NM_MODULES:=$here/modules}"
: "${NM_UNIT:=$here/netmanager.service}" "${NM_CONFIG:=$here/netmanager.example.json}"
if [ -z "${NM_MODULE_NAMES+x}" ]; then
  NM_MODULE_NAMES=$(cd "$NM_MODULES" && for d in */; do printf '%s ' "${d%/}"; done)
fi
bindir=$PREFIX/bin
libdir=/usr/lib/netmanager
modulesdir=$libdir/modules
confdir=/etc/netmanager
unitdir=/lib/systemd/system

# systemd learns of a changed unit; not for a staging root, nor where systemd
# is absent or not running.
reload_systemd() {
  if [ -z "$DESTDIR" ] && command -v systemctl >/dev/null; then
    systemctl daemon-reload 2>/dev/null || echo "systemctl daemon-reload failed (systemd not running?); ignored"
  fi
}

do_install() {
  set -x
  install -d "$DESTDIR$bindir"
  install -m 0755 "$NM_BIN/netmanager" "$NM_BIN/netmanagerctl" "$DESTDIR$bindir/"
  for m in $NM_MODULE_NAMES; do
    install -d -m 0755 "$DESTDIR$modulesdir/$m"
    install -m 0644 "$NM_MODULES/$m/$m.so" "$NM_MODULES/$m/$m.o" "$DESTDIR$modulesdir/$m/"
  done
  install -d -m 0755 "$DESTDIR$confdir"
  install -m 0644 "$NM_CONFIG" "$DESTDIR$confdir/netmanager.example.json"
  install -d "$DESTDIR$unitdir"
  sed "s|/usr/bin/netmanager|$bindir/netmanager|g" "$NM_UNIT" >"$DESTDIR$unitdir/netmanager.service"
  chmod 0644 "$DESTDIR$unitdir/netmanager.service"
  { set +x; } 2>/dev/null
  reload_systemd
}

do_uninstall() {
  if [ -z "$DESTDIR" ] && command -v systemctl >/dev/null && systemctl is-active --quiet netmanager 2>/dev/null; then
    echo "uninstall: netmanager.service is still running (systemctl disable --now netmanager)"
  fi
  set -x
  rm -f "$DESTDIR$bindir/netmanager" "$DESTDIR$bindir/netmanagerctl"
  for m in $NM_MODULE_NAMES; do
    rm -f "$DESTDIR$modulesdir/$m/$m.so" "$DESTDIR$modulesdir/$m/$m.o"
    [ ! -d "$DESTDIR$modulesdir/$m" ] || rmdir --ignore-fail-on-non-empty "$DESTDIR$modulesdir/$m"
  done
  rm -f "$DESTDIR$confdir/netmanager.example.json" "$DESTDIR$unitdir/netmanager.service"
  for d in "$DESTDIR$modulesdir" "$DESTDIR$libdir" "$DESTDIR$confdir"; do
    [ ! -d "$d" ] || rmdir --ignore-fail-on-non-empty "$d"
  done
  { set +x; } 2>/dev/null
  reload_systemd
}

case "${1:-}" in
install) do_install ;;
uninstall) do_uninstall ;;
*)
  echo "usage: $0 install|uninstall (DESTDIR=staging-root PREFIX=/usr)" >&2
  exit 2
  ;;
esac
