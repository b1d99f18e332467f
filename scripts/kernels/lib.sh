# Shared by the kernel-matrix scripts (sourced, not run). Paths and apt
# options; nothing here changes the system's apt configuration.

# Downloaded and extracted kernels live outside any checkout, so a fresh
# clone on the same machine finds them.
KCACHE=${NETMANAGER_KERNEL_CACHE:-/var/cache/netmanager-kernels}
# The private apt state: its own sources list, lists and cache under KCACHE,
# one per architecture (kapt_use): $KCACHE/apt for amd64 (this machine's),
# $KCACHE/apt-<arch> for another, where that architecture is apt's native
# one and the system's dpkg status is not consulted.
KAPT=$KCACHE/apt
# Lists older than this (seconds) are refreshed, so "sid" follows sid.
KAPT_MAX_AGE=${NETMANAGER_KERNEL_APT_MAX_AGE:-86400}
KMIRROR=${NETMANAGER_KERNEL_MIRROR:-http://deb.debian.org}
KKEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
# The "arm64" kernel of the matrix: the newest kernel of this series that
# bookworm offers for arm64.
ARM64_SERIES=${NMK_ARM64_SERIES:-6.12}

# kapt_use ARCH points KAPT and kapt_opts at ARCH's private apt state.
kapt_use() {
  KARCH=$1
  kapt_opts=()
  if [ "$1" = amd64 ]; then
    KAPT=$KCACHE/apt
  else
    KAPT=$KCACHE/apt-$1
    kapt_opts=(-o "APT::Architecture=$1" -o "APT::Architectures=$1" -o Dir::State::status=/dev/null)
  fi
  kapt_opts+=(
    -o "Dir::Etc::sourcelist=$KAPT/sources.list" -o Dir::Etc::sourceparts=-
    -o "Dir::State::Lists=$KAPT/lists" -o "Dir::Cache=$KAPT/cache"
    -o Acquire::Languages=none
    -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false
    -o Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false
    -o Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false
    -o Acquire::IndexTargets::deb::DEP-11-icons-hidpi::DefaultEnabled=false
  )
}
kapt_use amd64

kapt_get() { apt-get -q "${kapt_opts[@]}" "$@"; }
kapt_cache() { apt-cache "${kapt_opts[@]}" "$@"; }

kdie() { echo "kernels: $*" >&2; exit 1; }
klog() { echo "kernels: $*" >&2; }
