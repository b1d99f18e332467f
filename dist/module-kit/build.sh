#!/usr/bin/env bash
# module-kit/build.sh [--arch amd64|arm64] DIR [OUT]: builds the eBPF module in
# DIR (a directory named after the module, with its own go.mod, <name>.bpf.c
# and/or its Go files) into OUT/<name>/<name>.{o,so} (OUT defaults to
# DIR/build/<arch>), for this release's daemon: the Go version, flags and
# dependency versions the daemon was built with (toolchain.env, deps.txt), the
# SDK from sdk/ (a workspace module, so its packages compile exactly as in the
# daemon), the dependencies from goproxy/ (offline). Refuses, before building,
# another Go version or a dependency at another version than the daemon's.
set -euo pipefail
kit=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=/dev/null
. "$kit/toolchain.env"
die() {
  echo "module-kit: $*" >&2
  exit 2
}
arch=$NM_ARCH
if [ "${1:-}" = "--arch" ]; then
  arch=${2:?--arch needs amd64 or arm64}
  shift 2
fi
[ $# -ge 1 ] && [ $# -le 2 ] || die "usage: build.sh [--arch amd64|arm64] DIR [OUT]"
dir=$(cd "$1" && pwd)
name=$(basename "$dir")
out=${2:-$dir/build/$arch}
[[ $name =~ ^[a-z0-9][a-z0-9_-]*$ ]] || die "$dir: a module's directory is its name, [a-z0-9][a-z0-9_-]*"
[ -f "$dir/go.mod" ] || die "$dir has no go.mod (see module-kit/README.md)"
: "${GO:=go}" "${CLANG:=clang}"

export GOTOOLCHAIN=local # never a downloaded Go: the check below is the rule
have=$("$GO" env GOVERSION) || die "$GO: not found"
if [ "$have" != "$NM_GO_VERSION" ]; then
  die "$GO is $have, but this release's daemon (netmanager $NM_VERSION) was built with $NM_GO_VERSION: a plugin loads only into a daemon built by the same Go version; build with $NM_GO_VERSION (GO=/path/to/$NM_GO_VERSION/bin/go)"
fi
case $arch in
amd64 | arm64) ;;
*) die "--arch $arch: amd64 or arm64" ;;
esac
export CGO_ENABLED=1 GOOS=linux GOARCH=$arch GOFLAGS=-mod=readonly
if [ "$arch" != "$("$GO" env GOHOSTARCH)" ] && [ -z "${CC:-}" ]; then
  case $arch in
  arm64) export CC=aarch64-linux-gnu-gcc ;; # Debian: gcc-aarch64-linux-gnu libc6-dev-arm64-cross
  amd64) export CC=x86_64-linux-gnu-gcc ;;
  esac
fi

# A workspace of the module and the SDK; the kit's modules first, then what
# go env says for modules of the author's own (GOPROXY=off: the kit only).
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf 'go %s\n\nuse (\n\t%s\n\t%s\n)\n' "${NM_GO_VERSION#go}" "$dir" "$kit/sdk" >"$work/go.work"
export GOWORK=$work/go.work
export GOPROXY="file://$kit/goproxy,$("$GO" env GOPROXY)"

# Every package the module builds from: the SDK from the kit, and each module
# the daemon links at the daemon's version.
sdk=$NM_SDK_MODULE/ebpfManager/module
got=$(cd "$dir" && "$GO" list -deps -f '{{with .Module}}{{.Path}}|{{.Version}}|{{.Dir}}{{end}}' . | sort -u) ||
  die "$dir: go list failed (above)"
while IFS='|' read -r path version mdir; do
  if [ "$path" = "$NM_SDK_MODULE" ] && [ "$mdir" != "$kit/sdk" ]; then
    die "$dir: $NM_SDK_MODULE comes from $mdir, not from the kit's sdk/ (drop a replace of it from go.mod)"
  fi
  want=$(awk -v p="$path" '$1 == p { print $2 }' "$kit/deps.txt")
  if [ -n "$want" ] && [ "$version" != "$want" ]; then
    die "$dir uses $path $version, but the daemon was built with $path $want: a plugin must use the daemon's version of every module both have (require $path $want in go.mod)"
  fi
done <<<"$got"
grep -q "^$NM_SDK_MODULE|" <<<"$got" || die "$dir does not import $sdk"

mkdir -p "$out/$name"
if [ -f "$dir/$name.bpf.c" ]; then
  "$CLANG" -O2 -g -Wall -Werror -target bpf -I"$kit/bpf" -I"/usr/include/$(uname -m)-linux-gnu" \
    -c "$dir/$name.bpf.c" -o "$out/$name/$name.o"
fi
# shellcheck disable=SC2086
(cd "$dir" && "$GO" build $NM_GOFLAGS -buildmode=plugin -o "$out/$name/$name.so" .)
# The daemon refuses module files others could write.
chmod go-w "$out/$name" "$out/$name"/*
echo "module-kit: built $out/$name ($arch, $NM_GO_VERSION, for netmanager $NM_VERSION)"
