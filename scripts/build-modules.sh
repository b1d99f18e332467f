#!/usr/bin/env bash
# Builds every module under SRC into OUT/<name>/: <name>.o from <name>.bpf.c
# (clang, -target bpf, shared headers from bpf/) and <name>.so from the Go
# files (a plugin, built with the daemon's flags: GOBUILDFLAGS), writable by
# their owner only. A cross build (make ARCH=arm64 build) sets GOARCH and CC
# (Debian's cross gcc) in the environment, as for the daemon; the .o is the
# same for every architecture (BPF bytecode).
set -euo pipefail
shopt -s nullglob
src=$1 out=$2
: "${GO:=go}" "${CLANG:=clang}" "${GOBUILDFLAGS:=-trimpath}"
root=$(cd "$(dirname "$0")/.." && pwd)
for dir in "$src"/*/; do
  name=$(basename "$dir")
  mkdir -p "$out/$name"
  if [ -f "$dir/$name.bpf.c" ]; then
    "$CLANG" -O2 -g -Wall -Werror -target bpf -I"$root/bpf" -I/usr/include/x86_64-linux-gnu \
      -c "$dir/$name.bpf.c" -o "$out/$name/$name.o"
  fi
  if compgen -G "$dir/*.go" >/dev/null; then
    # shellcheck disable=SC2086
    "$GO" build $GOBUILDFLAGS -buildmode=plugin -o "$out/$name/$name.so" "./$dir"
  fi
  # The daemon refuses module files others could write (whatever the umask).
  chmod go-w "$out/$name" "$out/$name"/*
done
