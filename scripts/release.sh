#!/usr/bin/env bash
# release.sh OUT ARCH...: writes OUT/netmanager-$VERSION-linux-<arch>.tar.gz
# for each ARCH and OUT/SHA256SUMS. Each arch is built with `make build
# ARCH=<arch>` into OUT/build/<arch> (never build/), then staged: bin/, the
# shipped modules, the systemd unit, the example config, install.sh and a
# Makefile (make install works without Go), and module-kit/ (build modules
# outside the repository: dist/module-kit/README.md). VERSION from the env.
set -euo pipefail
out=$1
shift
root=$(cd "$(dirname "$0")/.." && pwd)
: "${GO:=go}" "${VERSION:?VERSION not set}"
mkdir -p "$out"
out=$(cd "$out" && pwd)
stage=$out/stage
rm -rf "$stage" "$out/build"
mkdir -p "$stage"
trap 'rm -rf "$stage" "$out/build"' EXIT

# The kit's arch-independent part, once: the SDK's source, the bpf/ headers,
# the dependencies' module files (an offline GOPROXY), the build script.
kit=$stage/kit
"$root/scripts/release-kit.sh" "$kit"

shipped=$(cd "$root/modules" && for d in */; do printf '%s ' "${d%/}"; done)
for arch in "$@"; do
  start=$(date +%s)
  build=$out/build/$arch
  make -C "$root" --no-print-directory build ARCH="$arch" ARCH_BUILD="$build" VERSION="$VERSION" GO="$GO" >/dev/null
  name=netmanager-$VERSION-linux-$arch
  d=$stage/$name
  install -d "$d/bin" "$d/modules"
  install -m 0755 "$build/bin/netmanager" "$build/bin/netmanagerctl" "$d/bin/"
  for m in $shipped; do
    install -d -m 0755 "$d/modules/$m"
    install -m 0644 "$build/modules/$m/$m.so" "$build/modules/$m/$m.o" "$d/modules/$m/"
  done
  install -m 0644 "$root/dist/netmanager.service" "$root/docs/netmanager.example.json" "$d/"
  install -m 0644 "$root/dist/release.mk" "$d/Makefile"
  install -m 0755 "$root/scripts/install.sh" "$d/install.sh"
  cp -a "$kit" "$d/module-kit"
  {
    echo "# The daemon of this release was built so; build.sh refuses another Go."
    echo "NM_VERSION=$VERSION"
    echo "NM_ARCH=$arch"
    echo "NM_GO_VERSION=$("$GO" env GOVERSION)"
    echo "NM_GOFLAGS='${GOBUILDFLAGS:--trimpath}'"
    echo "NM_SDK_MODULE=github.com/oakestra/netmanager"
  } >"$d/module-kit/toolchain.env"
  # Every module the daemon links, with its version: build.sh refuses a
  # module that would bring another version of one of them.
  "$GO" version -m "$build/bin/netmanager" | awk '$1 == "dep" { print $2, $3 }' >"$d/module-kit/deps.txt"
  echo "$VERSION" >"$d/VERSION"
  tar -C "$stage" --owner=0 --group=0 --numeric-owner --sort=name -czf "$out/$name.tar.gz" "$name"
  echo "release: $out/$name.tar.gz ($(du -h "$out/$name.tar.gz" | cut -f1), $(($(date +%s) - start)) s)"
done
(cd "$out" && sha256sum $(for a in "$@"; do echo "netmanager-$VERSION-linux-$a.tar.gz"; done) >SHA256SUMS)
echo "release: $out/SHA256SUMS"
