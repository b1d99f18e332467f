#!/usr/bin/env bash
# release-kit.sh KIT: the arch-independent part of a release's module-kit/
# (dist/module-kit/README.md): sdk/ (the SDK's packages' source with the
# repository's go.mod and go.sum, so an out-of-tree module compiles exactly the
# daemon's SDK), bpf/ (the shared headers), goproxy/ (a GOPROXY directory with
# every module of the dependency graph's go.mod and the source of each module the
# daemon and the shipped modules use: builds need no network) and build.sh.
set -euo pipefail
kit=$1
root=$(cd "$(dirname "$0")/.." && pwd)
: "${GO:=go}"
cd "$root"
mkdir -p "$kit/sdk" "$kit/bpf" "$kit/goproxy"
install -m 0644 go.mod go.sum "$kit/sdk/"
for dir in $("$GO" list -deps -f '{{if and .Module .Module.Main}}{{.Dir}}{{end}}' ./ebpfManager/module); do
  rel=${dir#"$root"/}
  mkdir -p "$kit/sdk/$rel"
  find "$dir" -maxdepth 1 -type f ! -name '*_test.go' -exec install -m 0644 {} "$kit/sdk/$rel/" \;
done
install -m 0644 bpf/*.h "$kit/bpf/"
install -m 0755 dist/module-kit/build.sh "$kit/build.sh"
install -m 0644 dist/module-kit/README.md "$kit/README.md"

# The module cache's download directory is a GOPROXY layout as it stands.
cache=$("$GO" env GOMODCACHE)/cache/download
escape() { sed 's/[A-Z]/!\L&/g' <<<"$1"; }
copy() { # module version ext...: those the cache holds (go reads only some)
  local p=$(escape "$1") v=$2
  shift 2
  for ext in "$@"; do
    if [ -f "$cache/$p/@v/$v.$ext" ]; then
      mkdir -p "$kit/goproxy/$p/@v"
      install -m 0644 "$cache/$p/@v/$v.$ext" "$kit/goproxy/$p/@v/"
    fi
  done
}
"$GO" mod download
for mv in $("$GO" mod graph | tr ' ' '\n' | grep @ | grep -Ev '^(go|toolchain)@' | sort -u); do
  copy "${mv%@*}" "${mv#*@}" info mod
done
"$GO" list -deps -f '{{with .Module}}{{if .Version}}{{.Path}} {{.Version}}{{end}}{{end}}' \
  ./node-net-manager/cmd/... ./modules/... ./ebpfManager/module | sort -u | while read -r p v; do
  [ -f "$cache/$(escape "$p")/@v/$v.zip" ] || { echo "release-kit: $p $v: not in the module cache" >&2; exit 1; }
  copy "$p" "$v" zip
done
