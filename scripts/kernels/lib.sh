# Shared by the kernel-matrix scripts (sourced, not run). Paths and apt
# options; nothing here changes the system's apt configuration.

# Downloaded and extracted kernels live outside any checkout, so a fresh
# clone on the same machine finds them.
KCACHE=${NETMANAGER_KERNEL_CACHE:-/var/cache/netmanager-kernels}
# The private apt state: its own sources list, lists and cache under KCACHE.
KAPT=$KCACHE/apt
# Lists older than this (seconds) are refreshed, so "sid" follows sid.
KAPT_MAX_AGE=${NETMANAGER_KERNEL_APT_MAX_AGE:-86400}
KMIRROR=${NETMANAGER_KERNEL_MIRROR:-http://deb.debian.org}
KKEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

kapt_opts=(
  -o "Dir::Etc::sourcelist=$KAPT/sources.list" -o Dir::Etc::sourceparts=-
  -o "Dir::State::Lists=$KAPT/lists" -o "Dir::Cache=$KAPT/cache"
  -o Acquire::Languages=none
  -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false
  -o Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false
  -o Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false
  -o Acquire::IndexTargets::deb::DEP-11-icons-hidpi::DefaultEnabled=false
)

kapt_get() { apt-get -q "${kapt_opts[@]}" "$@"; }
kapt_cache() { apt-cache "${kapt_opts[@]}" "$@"; }

kdie() { echo "kernels: $*" >&2; exit 1; }
klog() { echo "kernels: $*" >&2; }
