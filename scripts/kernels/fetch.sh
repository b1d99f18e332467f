#!/usr/bin/env bash
# Fetches Debian kernels for the kernel matrix, without installing them.
#
#   scripts/kernels/fetch.sh LABEL...
#
# A LABEL is a series ("6.1", "6.12", "7.2": the newest amd64 kernel of that
# series Debian's bookworm, bookworm-security or sid offers), "sid" (the
# newest kernel Debian sid has) or "arm64" (the newest arm64 kernel of
# ARM64_SERIES, lib.sh, in bookworm and bookworm-security). Versions are
# chosen by asking apt, through a private sources list and state per
# architecture under $KCACHE (lib.sh); the system's apt and dpkg
# configuration is never touched. Each chosen kernel is downloaded with
# `apt-get download` and unpacked with `dpkg-deb -x` into
# $KCACHE/<package version>/root (arm64: $KCACHE/arm64-<version>/root), with
# modules.dep made by `depmod -b` when the package has none. A kernel
# already there is not fetched again. For arm64 it also assembles the
# guest's userland from Debian's arm64 packages (userland.sh).
#
# Prints one line per label on stdout: "LABEL ABI VERSION DIR [USERLAND]"
# (USERLAND: the arm64 guest's root directory). Fails, naming the label,
# when a kernel cannot be chosen or fetched.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
[ $# -gt 0 ] || kdie "usage: fetch.sh LABEL... (e.g. 6.1 6.12 sid)"
[ "$(id -u)" -eq 0 ] || kdie "fetch.sh needs root (writes $KCACHE)"
mkdir -p "$KCACHE"
exec 9>"$KCACHE/lock"
flock 9

sources() {
  local k="[signed-by=$KKEYRING]"
  echo "deb $k $KMIRROR/debian bookworm main"
  echo "deb $k $KMIRROR/debian bookworm-updates main"
  echo "deb $k $KMIRROR/debian-security bookworm-security main"
  [ "$KARCH" = amd64 ] && echo "deb $k $KMIRROR/debian sid main"
  return 0
}

# refresh updates the private lists when they are missing, stale or were made
# from another sources list. A failed refresh over existing lists is a warning.
refresh() {
  local want stamp="$KAPT/lists/.updated" age
  mkdir -p "$KAPT/lists/partial" "$KAPT/cache/archives/partial"
  want=$(sources)
  if [ -f "$stamp" ] && [ "$(cat "$KAPT/sources.list" 2>/dev/null)" = "$want" ]; then
    age=$(( $(date +%s) - $(stat -c %Y "$stamp") ))
    [ "$age" -lt "$KAPT_MAX_AGE" ] && return 0
  fi
  echo "$want" >"$KAPT/sources.list"
  klog "updating the private $KARCH apt lists ($(awk '{print $(NF-1)}' "$KAPT/sources.list" | tr '\n' ' '))"
  if kapt_get update >"$KAPT/update.log" 2>&1; then
    touch "$stamp"
  elif [ -f "$stamp" ]; then
    klog "WARNING: apt-get update failed; choosing from lists of $(date -r "$stamp"):"
    tail -3 "$KAPT/update.log" >&2
  else
    cat "$KAPT/update.log" >&2
    kdie "apt-get update of the private lists failed; no kernel can be chosen"
  fi
}

# candidates prints "PACKAGE VERSION" for every generic kernel image of
# KARCH apt knows (no cloud, rt, dbg or unsigned flavours).
candidates() {
  local names
  names=$(kapt_cache pkgnames linux-image- | grep -E "^linux-image-[0-9]+\.[0-9]+\.[0-9]+(-[0-9]+)?(\+deb[0-9]+)?-$KARCH\$" || true)
  [ -n "$names" ] || return 0
  # shellcheck disable=SC2086
  kapt_cache show --no-all-versions $names 2>/dev/null |
    awk '/^Package: /{p=$2} /^Version: /{print p, $2}'
}

# choose LABEL prints "PACKAGE VERSION" of the newest image matching LABEL.
choose() {
  local label=$1 best="" bestv="" p v
  while read -r p v; do
    case $label in
      sid) ;;
      *) [[ $v == "$label".* ]] || continue ;;
    esac
    if [ -z "$bestv" ] || dpkg --compare-versions "$v" gt "$bestv"; then
      best=$p bestv=$v
    fi
  done < <(candidates)
  [ -n "$best" ] || return 1
  echo "$best $bestv"
}

# kdir VERSION prints where the kernel of KARCH and VERSION is unpacked.
kdir() {
  if [ "$KARCH" = amd64 ]; then echo "$KCACHE/$1"; else echo "$KCACHE/$KARCH-$1"; fi
}

# fetch PACKAGE VERSION unpacks the image package and the packages of the
# same ABI it depends on (sid splits the image into linux-binary-<abi> and
# linux-modules-<abi>) into kdir VERSION, atomically.
fetch() {
  local pkg=$1 version=$2 abi=${1#linux-image-} dir tmp deps d mods
  dir=$(kdir "$version")
  [ -f "$dir/ready" ] && return 0
  tmp=$(dirname "$dir")/.$(basename "$dir").partial
  rm -rf "$tmp"
  mkdir -p "$tmp/debs" "$tmp/root"
  deps=$(kapt_cache show --no-all-versions "$pkg" | awk -F': ' '/^Depends: /{print $2}' |
    tr ',' '\n' | awk -v s="-$abi" '{ if (substr($1, length($1) - length(s) + 1) == s) print $1 }')
  klog "downloading $pkg $version ${deps//$'\n'/ }"
  # shellcheck disable=SC2086
  (cd "$tmp/debs" && kapt_get download "$pkg=$version" $deps) >"$tmp/download.log" 2>&1 || {
    cat "$tmp/download.log" >&2; return 1; }
  for d in "$tmp"/debs/*.deb; do dpkg-deb -x "$d" "$tmp/root"; done
  rm -rf "$tmp/debs"
  if [ ! -e "$tmp/root/lib" ] && [ -d "$tmp/root/usr/lib/modules" ]; then
    ln -s usr/lib "$tmp/root/lib" # so `modprobe -d root` finds lib/modules
  fi
  mods=$tmp/root/lib/modules/$abi
  [ -d "$mods" ] || { klog "$pkg has no lib/modules/$abi"; return 1; }
  if [ -f "$tmp/root/boot/vmlinuz-$abi" ]; then
    ln -s "root/boot/vmlinuz-$abi" "$tmp/vmlinuz"
  elif [ -f "$mods/vmlinuz" ]; then
    ln -s "root/lib/modules/$abi/vmlinuz" "$tmp/vmlinuz"
  else
    klog "$pkg: no vmlinuz in the packages"; return 1
  fi
  [ -f "$mods/modules.dep" ] || depmod -b "$tmp/root" "$abi"
  echo "$abi" >"$tmp/abi"
  echo "$pkg $version" >"$tmp/ready"
  rm -rf "$dir"
  mv "$tmp" "$dir"
}

. "$here/userland.sh"

refreshed=""
for label in "$@"; do
  series=$label
  if [ "$label" = arm64 ]; then kapt_use arm64; series=$ARM64_SERIES; else kapt_use amd64; fi
  [[ " $refreshed " == *" $KARCH "* ]] || { refresh; refreshed+=" $KARCH"; }
  chosen=$(choose "$series") || kdie "kernel $label: apt offers no $KARCH linux-image for it (private lists in $KAPT)"
  read -r pkg version <<<"$chosen"
  fetch "$pkg" "$version" || kdie "kernel $label ($pkg $version): download or unpack failed"
  line="$label ${pkg#linux-image-} $version $(kdir "$version")"
  if [ "$KARCH" != amd64 ]; then
    uroot=$(userland) || kdie "kernel $label: the $KARCH guest's userland could not be assembled"
    line+=" $uroot"
  fi
  echo "$line"
done
