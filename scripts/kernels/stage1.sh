#!/bin/busybox sh
# /init of a matrix guest (stage 1, busybox): loads the 9p modules, mounts
# the host's root read-only (9p tag "hostroot") as the new root with tmpfs
# on /run and the run's results directory (9p tag "results", writable) on
# /run/results, then hands over to the job run.sh wrote there for this
# guest (nmk.job= on the kernel's command line). A guest whose root is not
# the host's (arm64: "hostroot" is a directory of arm64 packages) also mounts
# each nmk.share=TAG:PATH of the command line read-only at PATH (the
# repository, the kernel cache).
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
die() {
  echo "nmk-stage1: FAILED: $*"
  sync
  poweroff -f
  echo o >/proc/sysrq-trigger
  sleep 60
}
for m in $(cat /modules/order); do
  insmod "/modules/$m" || die "insmod $m"
done
opts=trans=virtio,version=9p2000.L,msize=262144
mount -t 9p -o "$opts,ro,cache=loose" hostroot /newroot || die "mount the host's root over 9p"
mount -t tmpfs -o mode=0755 tmpfs /newroot/run || die "tmpfs on /run"
mkdir -p /newroot/run/results
mount -t 9p -o "$opts" results /newroot/run/results || die "mount the results share"
job=job.1.sh
for a in $(cat /proc/cmdline); do
  case $a in
    nmk.job=*) job=${a#nmk.job=} ;;
    nmk.share=*)
      s=${a#nmk.share=}
      mount -t 9p -o "$opts,ro,cache=loose" "${s%%:*}" "/newroot${s#*:}" || die "mount the share ${s%%:*} on ${s#*:}"
      ;;
  esac
done
[ -f "/newroot/run/results/$job" ] || die "no $job in the results share"
read -r up _ </proc/uptime
for d in proc sys dev; do mount --move "/$d" "/newroot/$d" || die "move /$d"; done
echo "nmk-stage1: [$up] host root mounted, starting the job"
exec switch_root /newroot /bin/bash "/run/results/$job"
