#!/usr/bin/env bash
# Builds a matrix guest's initramfs: a static busybox, stage1.sh as /init and
# the modules the guest needs to mount the host's root over 9p (virtio-pci,
# 9pnet_virtio, 9p and what they depend on, in load order, decompressed for
# busybox's insmod).
#
#   scripts/kernels/initrd.sh KERNEL_ROOT ABI OUT.cpio.gz [BUSYBOX]
#
# BUSYBOX: a static busybox of the guest's architecture (default: this
# machine's, busybox-static).
set -euo pipefail
[ $# -eq 3 ] || [ $# -eq 4 ] || { echo "usage: initrd.sh KERNEL_ROOT ABI OUT.cpio.gz [BUSYBOX]" >&2; exit 2; }
root=$1 abi=$2 out=$3
here=$(cd "$(dirname "$0")" && pwd)
if [ $# -eq 4 ]; then
  bb=$4
  [ -f "$bb" ] || { echo "initrd: $bb missing" >&2; exit 1; }
else
  bb=$(command -v busybox) || { echo "initrd: busybox missing (busybox-static)" >&2; exit 1; }
  { ldd "$bb" 2>&1 || true; } | grep -q 'not a dynamic' || { echo "initrd: $bb is not static (install busybox-static)" >&2; exit 1; }
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin" "$tmp/modules" "$tmp/proc" "$tmp/sys" "$tmp/dev" "$tmp/newroot"
cp "$bb" "$tmp/bin/busybox"
cp "$here/stage1.sh" "$tmp/init"
chmod 0755 "$tmp/init"
: >"$tmp/modules/order"
for m in virtio_pci 9pnet_virtio 9p; do
  while read -r verb path _; do
    [ "$verb" = insmod ] || continue
    name=$(basename "$path")
    name=${name%.xz}
    name=${name%.zst}
    grep -qx "$name" "$tmp/modules/order" && continue
    case $path in
      *.xz) xz -dc "$path" >"$tmp/modules/$name" ;;
      *.zst) zstd -qdc "$path" >"$tmp/modules/$name" ;;
      *) cp "$path" "$tmp/modules/$name" ;;
    esac
    echo "$name" >>"$tmp/modules/order"
  done < <(modprobe -d "$root" -S "$abi" --show-depends "$m")
done
(cd "$tmp" && find . | cpio -o -H newc --quiet) | gzip -1 >"$out"
