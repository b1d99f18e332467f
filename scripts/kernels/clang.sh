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
#
# A guest with no clang of its own (arm64: its root is not the host's) sets
# NMK_CLANG_REMOTE to a directory of the results share: a miss there becomes
# a request the host serves (run.sh's clang_serve runs this script natively
# and stores the object in the cache): DIR/<key>.<pid>.req/ holds "args" (one
# a line; @OUT for the value of -o, @IN:<n>/<name> for a copied input file),
# and comes back renamed .done/ with out.o, rc and log.
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
# remote asks the host to build it (NMK_CLANG_REMOTE) and waits up to 5 min.
remote() {
  local req=$NMK_CLANG_REMOTE/$key.$$ prev="" a n=0 rc i
  mkdir -p "$req.tmp"
  for a in "$@"; do
    if [ "$prev" = "-o" ]; then
      echo "@OUT"
    elif [ "$a" != "-o" ] && [ -f "$a" ] && [ -r "$a" ]; then
      n=$((n + 1))
      mkdir -p "$req.tmp/$n" && cp "$a" "$req.tmp/$n/" || return 1
      echo "@IN:$n/$(basename "$a")"
    else
      printf '%s\n' "$a"
    fi
    prev=$a
  done >"$req.tmp/args"
  mv "$req.tmp" "$req.req" || return 1
  for ((i = 0; i < 1500; i++)); do
    if [ -f "$req.done/rc" ]; then
      read -r rc <"$req.done/rc"
      cat "$req.done/log" >&2
      [ "$rc" = 0 ] && cp "$req.done/out.o" "$out"
      rm -rf "$req.done"
      return "$rc"
    fi
    sleep 0.2
  done
  echo "clang.sh: the host did not serve $req.req within 5 minutes" >&2
  return 1
}

log miss "$@"
if [ -n "${NMK_CLANG_REMOTE:-}" ]; then
  remote "$@"
  exit
fi
"$real" "$@" || exit
if [ -n "${NMK_CLANG_STORE:-}" ] && [ -n "$out" ]; then
  mkdir -p "$NMK_CLANG_STORE"
  cp "$out" "$NMK_CLANG_STORE/.$key.$$" && mv "$NMK_CLANG_STORE/.$key.$$" "$NMK_CLANG_STORE/$key.o"
fi
exit 0
