#!/usr/bin/env bash
# clang for the matrix guests, with a cache: clang runs ~10x slower under
# qemu's software emulation than natively, and what it builds does not
# depend on the kernel. In a guest this script is first on PATH as "clang":
# when the arguments and the input files are the same as a cached build's,
# it copies the cached object; otherwise it runs the real clang and stores
# what it built in NMK_CLANG_STORE (the guest's results share, which run.sh
# moves into the cache for the next kernel and the next run). run.sh also
# fills the cache on the host with the bpf/ test programs. Hits and misses
# go to NMK_CLANG_LOG, so a test whose flags drifted shows up.
#
# Key: every argument, the value of -o left out, each argument naming a
# readable file replaced by the SHA-256 of its content (headers are not
# hashed: the cache is for one tree; run.sh empties it when bpf/ changes).
set -uo pipefail
real=${NMK_REAL_CLANG:-/usr/bin/clang}
cache=${NMK_CLANG_CACHE:-}
out="" key_args=() prev=""
for a in "$@"; do
  if [ "$prev" = "-o" ]; then
    out=$a
  elif [ "$a" != "-o" ] && [ -f "$a" ] && [ -r "$a" ]; then
    key_args+=("@$(sha256sum <"$a" | cut -d' ' -f1)")
  else
    key_args+=("$a")
  fi
  prev=$a
done
key=$(printf '%s\n' "${key_args[@]}" | sha256sum | cut -d' ' -f1)
log() {
  local what=$1
  shift
  [ -n "${NMK_CLANG_LOG:-}" ] && echo "$what $key $*" >>"$NMK_CLANG_LOG"
  return 0
}
if [ -n "$cache" ] && [ -n "$out" ] && [ -f "$cache/$key.o" ]; then
  cp "$cache/$key.o" "$out" && { log hit "$@"; exit 0; }
fi
log miss "$@"
"$real" "$@" || exit
if [ -n "${NMK_CLANG_STORE:-}" ] && [ -n "$out" ]; then
  mkdir -p "$NMK_CLANG_STORE"
  cp "$out" "$NMK_CLANG_STORE/.$key.$$" && mv "$NMK_CLANG_STORE/.$key.$$" "$NMK_CLANG_STORE/$key.o"
fi
exit 0
