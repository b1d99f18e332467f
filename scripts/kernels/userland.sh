# Sourced by fetch.sh: the userland of a guest whose architecture is not this
# machine's (arm64). Such a guest cannot use the host's root over 9p (its
# binaries are x86), so its root is a directory of Debian's packages for its
# architecture, downloaded with the private apt state of that architecture
# (kapt_use) and unpacked with `dpkg-deb -x` — nothing is installed: the C
# library for the cgo test binaries and the daemon, bash and coreutils for
# the job, and the tools the tests and the daemon run (ip, tc, iptables,
# ip6tables, ping, sysctl, nsenter, mount, modprobe), busybox for stage 1.
# The repository and $KCACHE are mounted into it over 9p at their host paths
# (run.sh, stage1.sh).

# USERLAND_PACKAGES: what the guest runs, with the libraries those need
# (checked: every ELF file's NEEDED libraries must be in the tree).
USERLAND_PACKAGES=(
  libc6 libgcc-s1 libcrypt1 bash libtinfo6 coreutils grep sed hostname netbase
  libacl1 libattr1 libselinux1 libpcre2-8-0 libgmp10 libssl3 libcap2 libcap-ng0 libaudit1 libaudit-common
  iproute2 libatm1 libbpf1 libelf1 zlib1g libmnl0 libxtables12 libdb5.3 libbsd0 libmd0 libtirpc3 libtirpc-common
  libgssapi-krb5-2 libkrb5-3 libk5crypto3 libcom-err2 libkrb5support0 libkeyutils1
  iptables libip4tc2 libip6tc2 libnftnl11 libnetfilter-conntrack3 libnfnetlink0
  iputils-ping libidn2-0 libunistring2
  util-linux mount libblkid1 libmount1 libsmartcols1 libuuid1 libudev1 libsystemd0 libpam0g
  procps libproc2-0 libncursesw6 kmod libkmod2 liblzma5 libzstd1 liblz4-1 libgcrypt20 libgpg-error0
  busybox-static
)

# userland prints the directory of the guest root for KARCH, assembling it
# first unless one of the same package versions, made by this script, is
# there.
userland() {
  local key dir tmp d
  key=$({ kapt_cache show --no-all-versions "${USERLAND_PACKAGES[@]}" 2>/dev/null |
    awk '/^Package: /{p=$2} /^Version: /{print p, $2}' | sort; cat "$here/userland.sh"; } | sha256sum | cut -c1-16)
  dir=$KCACHE/$KARCH-userland-$key
  if [ ! -f "$dir/.ready" ]; then
    tmp=$KCACHE/.$KARCH-userland-$key.partial
    rm -rf "$tmp"
    mkdir -p "$tmp/debs" "$tmp/root"
    klog "downloading the $KARCH guest's userland (${#USERLAND_PACKAGES[@]} packages)"
    (cd "$tmp/debs" && kapt_get download "${USERLAND_PACKAGES[@]}") >"$tmp/download.log" 2>&1 || {
      cat "$tmp/download.log" >&2; rm -rf "$tmp"; return 1; }
    for d in "$tmp"/debs/*.deb; do dpkg-deb -x "$d" "$tmp/root" || { rm -rf "$tmp"; return 1; }; done
    rm -rf "$tmp/debs"
    userland_fix "$tmp/root" || { rm -rf "$tmp"; return 1; }
    touch "$tmp/root/.ready"
    rm -rf "$dir"
    mv "$tmp/root" "$dir"
    rm -rf "$tmp"
    # the userlands of older package versions or an older script
    find "$KCACHE" -mindepth 1 -maxdepth 1 -name "$KARCH-userland-*" ! -name "${dir##*/}" -exec rm -rf {} +
  fi
  echo "$dir"
}

# userland_fix ROOT does what the packages' maintainer scripts and the
# usrmerge package would have: /bin, /sbin and /lib as links into /usr (the
# job calls /usr/sbin/modprobe as on the host), /bin/sh, the iptables alternatives
# (nft), the directories the guest mounts over, a root user; then it checks
# that every ELF file finds its libraries.
userland_fix() {
  local r=$1 d n missing
  for d in bin sbin lib; do
    [ -d "$r/$d" ] && [ ! -L "$r/$d" ] || continue
    mkdir -p "$r/usr/$d"
    cp -a "$r/$d/." "$r/usr/$d/" && rm -rf "${r:?}/$d"
    ln -s "usr/$d" "$r/$d"
  done
  ln -sfn bash "$r/usr/bin/sh" # dash's place; the job's helper scripts start with #!/bin/sh
  for n in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
    [ -e "$r/usr/sbin/$n" ] || ln -s xtables-nft-multi "$r/usr/sbin/$n"
  done
  mkdir -p "$r"/{tmp,var/tmp,var/lib,var/log,root,etc/netmanager,run,proc,sys,dev,usr/local/bin}
  ln -sfn /run "$r/var/run"
  echo 'root:x:0:0:root:/root:/bin/bash' >"$r/etc/passwd"
  echo 'root:x:0:' >"$r/etc/group"
  printf '127.0.0.1 localhost\n::1 localhost\n' >"$r/etc/hosts"
  echo 'hosts: files' >"$r/etc/nsswitch.conf"
  missing=$(userland_missing "$r")
  [ -z "$missing" ] || { klog "the $KARCH userland lacks libraries: $missing"; return 1; }
}

# userland_missing ROOT prints the NEEDED libraries no directory of ROOT's
# dynamic linker holds, with the files that need them.
userland_missing() {
  local r=$1 f lib
  find "$r/usr/bin" "$r/usr/sbin" "$r/usr/lib" -path "*/gconv" -prune -o -type f \( -perm -u+x -o -name "*.so*" \) -print0 |
    while IFS= read -r -d '' f; do
      head -c4 "$f" 2>/dev/null | grep -q 'ELF' || continue
      for lib in $(readelf -d "$f" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
        compgen -G "$r/usr/lib/*-linux-gnu/$lib" >/dev/null || [ -e "$r/usr/lib/$lib" ] ||
          echo "$lib (${f#"$r"})"
      done
    done | sort -u | head -20 | tr '\n' ' '
}
