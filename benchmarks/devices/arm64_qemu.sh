#!/usr/bin/env bash
# An emulated 64-bit ARM device for `edgecv bench --on local:PYTHON`, on a Debian x86-64 machine.
#
#   bash benchmarks/devices/arm64_qemu.sh DIR [--cpu cortex-a76|cortex-a72]
#
# Builds (or reuses) in DIR an aarch64 Python with edgecv's device side and prints, as its last
# line on stdout, the path of that Python (a wrapper script): give it to
# `edgecv bench EXPORT --on local --on local:PATH`. Everything else goes to stderr.
#
# What it is made of:
# - Debian's qemu-user-static and binfmt-support (apt-get, installed when missing), with
#   binfmt_misc mounted and the qemu-aarch64 handler enabled, so the kernel runs aarch64
#   programs (and their subprocesses) through QEMU;
# - Debian's own arm64 python3.X and the libraries it needs, from this machine's Debian release
#   (`apt-get download` with a private apt state for arm64, then `dpkg -x` into DIR/sysroot:
#   nothing of the host's package configuration changes and no maintainer script runs);
# - the aarch64 wheels of edgecv's base dependencies (pyproject.toml; opencv-python-headless
#   for opencv-python: no GUI libraries on a device) fetched with pip's --platform into
#   DIR/site, and edgecv itself as a wheel built from this source tree into DIR/edgecv;
# - DIR/sysroot/proc/cpuinfo: an ARM text for the emulated CPU. QEMU's -L prefix redirects the
#   read of /proc/cpuinfo there; without it LiteRT and ONNX Runtime read the host's x86 text
#   through QEMU and crash (SIGSEGV in the cpuinfo library);
# - DIR/python: sets QEMU_LD_PREFIX and QEMU_CPU and execs the arm64 Python. QEMU_CPU is a real
#   core (cortex-a76, a Raspberry Pi 5's, by default; cortex-a72, a Pi 4's): with QEMU's default
#   `max` CPU, LiteRT's int8 outputs were wrong (89 of 200 values, by up to 255 steps).
#
# Idempotent: each part is built in a temporary folder, moved into place, then stamped with
# what it was built from; a run finds a part stamped with the same recipe and reuses it, and
# rebuilds a part whose stamp is missing or differs (a killed run, a changed source tree).
# edgecv is rebuilt whenever its source files change. Downloads are kept in
# $EDGECV_ARM64_CACHE (default ~/.cache/edgecv/arm64-qemu: apt lists and .debs) and pip's cache.
# Needs root (or sudo without a password) for apt-get, mount and update-binfmts, and the
# network for Debian's and PyPI's packages on a first build.
set -Eeuo pipefail
trap 'echo "arm64_qemu.sh: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

usage="usage: arm64_qemu.sh DIR [--cpu cortex-a76|cortex-a72]"
die() { echo "arm64_qemu.sh: $*" >&2; exit 1; }
say() { echo "arm64_qemu.sh: $*" >&2; }

dir="" cpu="cortex-a76"
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu) [ $# -ge 2 ] || { echo "$usage" >&2; exit 2; }; cpu="$2"; shift 2 ;;
    --cpu=*) cpu="${1#--cpu=}"; shift ;;
    -h|--help) echo "$usage"; exit 0 ;;
    -*) echo "arm64_qemu.sh: unknown option '$1'; $usage" >&2; exit 2 ;;
    *) [ -z "$dir" ] || { echo "arm64_qemu.sh: one DIR only; $usage" >&2; exit 2; }
       dir="$1"; shift ;;
  esac
done
[ -n "$dir" ] || { echo "$usage" >&2; exit 2; }

# /proc/cpuinfo of the emulated core: what a Raspberry Pi's kernel prints (MIDR fields, and the
# Features QEMU's model of that core reports through the auxiliary vector).
case "$cpu" in
  cortex-a76) cpu_variant=0x4 cpu_part=0xd0b cpu_revision=1
              cpu_features="fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp" ;;
  cortex-a72) cpu_variant=0x0 cpu_part=0xd08 cpu_revision=3
              cpu_features="fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid" ;;
  *) echo "arm64_qemu.sh: --cpu must be cortex-a76 (Raspberry Pi 5) or cortex-a72 (Raspberry Pi" \
          "4); received '$cpu' (QEMU's default 'max' gives wrong int8 outputs)" >&2; exit 2 ;;
esac

source_tree="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
[ -f "$source_tree/pyproject.toml" ] && [ -d "$source_tree/edgecv" ] \
  || die "no edgecv source tree at $source_tree (the script must stay in benchmarks/devices/)"
host_python="${EDGECV_HOST_PYTHON:-python3}"
command -v "$host_python" >/dev/null || die "no $host_python here to run pip; install Python 3"
cache="${EDGECV_ARM64_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edgecv/arm64-qemu}"
# a recipe change (this file's packages, tags or steps) rebuilds the base; bump it with them
recipe="arm64-qemu-3"

as_root=()
[ "$(id -u)" -eq 0 ] || as_root=(sudo -n)
# apt-get as .ci/run runs it: non-interactive, no terminal, bounded waits, killed after 5 min.
apt_quiet() {
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive timeout -k 10 300 apt-get -qq -y \
    -o Dpkg::Lock::Timeout=120 -o Acquire::Retries=2 -o Acquire::http::Timeout=30 \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@" </dev/null
}

# --- the host: QEMU, and the kernel handing aarch64 programs to it ------------------------------
host_setup() {
  if [ "$(uname -m)" != "x86_64" ]; then
    die "this machine is $(uname -m); the emulated device is for x86-64 Debian machines"
  fi
  if ! [ -x /usr/bin/qemu-aarch64-static ] || ! command -v update-binfmts >/dev/null; then
    say "installing qemu-user-static and binfmt-support (apt-get)"
    apt_quiet install --no-install-recommends qemu-user-static binfmt-support >&2 \
      || { apt_quiet update >&2 && apt_quiet install --no-install-recommends qemu-user-static \
             binfmt-support >&2; } \
      || die "could not install qemu-user-static binfmt-support with apt-get (root and Debian's" \
             "package servers are needed)"
  fi
  if ! [ -e /proc/sys/fs/binfmt_misc/status ]; then
    say "mounting binfmt_misc"
    "${as_root[@]}" mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc \
      || die "cannot mount binfmt_misc at /proc/sys/fs/binfmt_misc (needs root)"
  fi
  if ! grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null; then
    say "enabling the qemu-aarch64 binfmt handler"
    "${as_root[@]}" update-binfmts --enable qemu-aarch64 >&2 \
      || die "update-binfmts --enable qemu-aarch64 failed (needs root)"
  fi
}

# --- DIR: ours, locked, no leftovers of a killed run ----------------------------------------------
case "$dir" in
  *[\'\"\\\$\`]*|*$'\n'*) die "DIR must not contain quotes, backslashes, \$ or newlines: '$dir'" ;;
esac
mkdir -p "$dir" || die "cannot create $dir"
dir="$(cd "$dir" && pwd)"
exec 9<"$dir"  # one build at a time in DIR (flock on the folder itself)
flock -w 1800 9 || die "another arm64_qemu.sh has held $dir for 30 min; is it stuck?"
marker="$dir/.edgecv-arm64-qemu"
if ! [ -e "$marker" ]; then
  [ -z "$(ls -A "$dir")" ] || die "$dir is not empty and was not made by arm64_qemu.sh; give a" \
                                  "new or empty folder"
  : >"$marker"
fi
rm -rf "$dir"/.building-*

host_setup

# A part is valid when its stamp holds exactly what it was built from.
stamped() { [ -d "$dir/$1" ] && [ "$(cat "$dir/.stamp-$1" 2>/dev/null)" = "$2" ]; }
install_part() {  # NAME STAMP BUILT_FOLDER: replace the part, then stamp it
  rm -f "$dir/.stamp-$1"
  rm -rf "$dir/$1"
  mv "$3" "$dir/$1"
  echo "$2" >"$dir/.stamp-$1"
}

# --- the arm64 Python: Debian's packages, this machine's release ----------------------------------
release="$(. /etc/os-release && [ "${ID:-}" = debian ] && echo "${VERSION_CODENAME:-}")" \
  || die "this machine is not Debian (/etc/os-release); the sysroot is made of Debian's packages"
[ -n "$release" ] || die "cannot tell this machine's Debian release (/etc/os-release)"
apt_dir="$cache/apt-$release"
apt_arm64=(-o APT::Architecture=arm64 -o APT::Architectures::=arm64
           -o Dir::State::Lists="$apt_dir/lists" -o Dir::State::status="$apt_dir/status"
           -o Dir::Cache::archives="$apt_dir/archives" -o Dir::Cache::pkgcache=
           -o Dir::Cache::srcpkgcache= -o Dir::Etc::sourcelist=/dev/null
           -o Dir::Etc::sourceparts="$apt_dir/sources" -o APT::Sandbox::User=root
           -o Acquire::Retries=2 -o Acquire::http::Timeout=30)
arm64_apt_lists() {
  mkdir -p "$apt_dir"/{lists/partial,archives/partial,sources}
  : >>"$apt_dir/status"
  cat >"$apt_dir/sources/debian.sources" <<EOF
Types: deb
URIs: http://deb.debian.org/debian
Suites: $release $release-updates
Components: main
Architectures: arm64
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: $release-security
Components: main
Architectures: arm64
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  # lists a day old are refreshed (a security update replaces a .deb the old list names)
  if [ -z "$(find "$apt_dir/lists" -maxdepth 1 -name '*_Packages*' -mtime -1 2>/dev/null)" ]; then
    say "reading Debian $release's arm64 package lists"
    timeout -k 10 300 apt-get -qq "${apt_arm64[@]}" update </dev/null >&2 \
      || die "apt-get update of Debian's arm64 package lists failed (network?)"
  fi
}

build_sysroot() {
  arm64_apt_lists
  local python packages tmp
  python="$(apt-cache "${apt_arm64[@]}" depends python3 | sed -n 's/^  Depends: \(python3\.[0-9]*\)$/\1/p')"
  [ -n "$python" ] || die "Debian $release's python3 (arm64) names no python3.X"
  # The packages Python and C++ wheels need at run time: the closure of the dependencies of
  # python3.X and libstdc++6 (libgcc too), less the tools only maintainer scripts use, which
  # dpkg -x never runs.
  packages="$(apt-cache "${apt_arm64[@]}" depends --recurse --no-recommends --no-suggests \
      --no-conflicts --no-breaks --no-replaces --no-enhances "$python" libstdc++6 \
    | grep -v '^ ' | sort -u \
    | grep -Evx 'dpkg|tar|perl|perl-base|perl-modules-.*|libperl.*|install-info|mailcap|mime-support|debconf|<.*>')"
  say "downloading $(echo "$packages" | wc -w) arm64 packages ($python)"
  (cd "$apt_dir/archives" \
    && timeout -k 10 600 apt-get -qq "${apt_arm64[@]}" download $packages </dev/null >&2) \
    || die "apt-get download of the arm64 packages failed (network?)"
  tmp="$(mktemp -d "$dir/.building-sysroot.XXXXXX")" && chmod 755 "$tmp"
  local name file
  for name in $packages; do
    file="$(find "$apt_dir/archives" -maxdepth 1 -name "${name}_*.deb" | sort -V | tail -n 1)"
    [ -n "$file" ] || die "the download of $name left no .deb in $apt_dir/archives"
    dpkg -x "$file" "$tmp"
  done
  mkdir -p "$tmp/proc"
  install_part sysroot "$recipe $release" "$tmp"
}

sysroot_python() {  # the python3.X binary of the sysroot
  local found
  found="$(ls "$dir"/sysroot/usr/bin/python3.[0-9]* 2>/dev/null | grep -E '/python3\.[0-9]+$' | head -n 1)"
  [ -n "$found" ] || die "no python3.X in $dir/sysroot"
  echo "$found"
}

# --- the aarch64 wheels of the device side ------------------------------------------------------
requirements() {  # pyproject's base dependencies, opencv-python as opencv-python-headless
  "$host_python" - "$source_tree/pyproject.toml" <<'EOF'
import re, sys, tomllib
with open(sys.argv[1], "rb") as handle:
    for requirement in tomllib.load(handle)["project"]["dependencies"]:
        print(re.sub(r"^opencv-python(?=[^-\w]|$)", "opencv-python-headless", requirement))
EOF
}

build_site() {
  local tags=() minor tmp
  # pip takes a tag only if listed: every manylinux_2_NN up to the sysroot's glibc
  tags=(--platform manylinux2014_aarch64)
  for minor in $(seq 17 "${glibc#2.}"); do tags+=(--platform "manylinux_2_${minor}_aarch64"); done
  tmp="$(mktemp -d "$dir/.building-site.XXXXXX")" && chmod 755 "$tmp"
  say "fetching the aarch64 wheels for Python $python_version, glibc $glibc:" \
      "$(requirements | tr '\n' ' ')"
  # shellcheck disable=SC2046
  "$host_python" -m pip install -q --disable-pip-version-check --root-user-action=ignore \
      --no-warn-conflicts --no-warn-script-location --target "$tmp" --only-binary=:all: \
      "${tags[@]}" --python-version "$python_version" --implementation cp \
      --abi "cp${python_version/./}" $(requirements) >&2 \
    || die "pip could not fetch the aarch64 wheels (network, or a dependency without an" \
           "aarch64 wheel)"
  install_part site "$recipe $python_version $glibc $(requirements | tr '\n' ' ')" "$tmp"
}

source_digest() {  # what edgecv's wheel is built from
  (cd "$source_tree" && find pyproject.toml README.md edgecv converters benchmarks -type f \
     \( -name '*.py' -o -name '*.toml' -o -name '*.md' \) -not -path '*/__pycache__/*' \
     -not -path 'benchmarks/results/*' -print0 | sort -z | xargs -0 sha256sum | sha256sum \
     | cut -c1-16)
}

build_edgecv() {
  local tmp work
  tmp="$(mktemp -d "$dir/.building-edgecv.XXXXXX")" && chmod 755 "$tmp"
  work="$(mktemp -d "$dir/.building-wheel.XXXXXX")"
  # a copy of the tree: setuptools writes build/ and *.egg-info into the folder it builds in
  (cd "$source_tree" && tar -cf - --exclude=__pycache__ --exclude='*.egg-info' \
      pyproject.toml README.md edgecv converters benchmarks) | tar -xf - -C "$work"
  say "building edgecv's wheel from $source_tree"
  "$host_python" -m pip wheel -q --disable-pip-version-check --no-deps -w "$work/dist" \
      "$work" >&2 || die "pip could not build edgecv's wheel from $source_tree"
  "$host_python" -m pip install -q --disable-pip-version-check --root-user-action=ignore --no-deps \
      --target "$tmp" "$work"/dist/edgecv-*.whl >&2 || die "pip could not install edgecv's wheel"
  rm -rf "$work"
  install_part edgecv "$1" "$tmp"
}

write_device() {  # the cpuinfo and the wrapper: rewritten each run (cheap; --cpu may change)
  local python="$1" processors count index
  count="$(getconf _NPROCESSORS_CONF)"
  processors=""
  for index in $(seq 0 $((count - 1))); do
    processors+="processor	: $index
BogoMIPS	: 108.00
Features	: $cpu_features
CPU implementer	: 0x41
CPU architecture: 8
CPU variant	: $cpu_variant
CPU part	: $cpu_part
CPU revision	: $cpu_revision

"
  done
  printf '%s' "$processors" >"$dir/sysroot/proc/cpuinfo.tmp"
  mv "$dir/sysroot/proc/cpuinfo.tmp" "$dir/sysroot/proc/cpuinfo"
  cat >"$dir/python.tmp" <<EOF
#!/bin/sh
# edgecv's emulated aarch64 device (benchmarks/devices/arm64_qemu.sh): Debian's arm64 Python,
# run by qemu-user-static through binfmt_misc, as a $cpu.
unset PYTHONHOME
export QEMU_LD_PREFIX='$dir/sysroot' QEMU_CPU='$cpu'
export PYTHONPATH='$dir/edgecv:$dir/site'
exec '$python' "\$@"
EOF
  chmod 755 "$dir/python.tmp"
  mv "$dir/python.tmp" "$dir/python"
}

# --- build what is missing or stale, then check that the device side runs --------------------------
start=$SECONDS
if ! stamped sysroot "$recipe $release" || ! sysroot_python >/dev/null 2>&1; then
  build_sysroot
fi
arm64_python="$(sysroot_python)"
read -r python_version glibc < <(QEMU_LD_PREFIX="$dir/sysroot" QEMU_CPU="$cpu" "$arm64_python" -S -c \
    'import platform, sys; print("%d.%d" % sys.version_info[:2], platform.libc_ver()[1])') \
  || die "the arm64 Python of $dir/sysroot does not start under QEMU"
stamped site "$recipe $python_version $glibc $(requirements | tr '\n' ' ')" || build_site
digest="$(source_digest)"
stamped edgecv "$digest" || build_edgecv "$digest"
write_device "$arm64_python"

# The device side must import and run here, or the device is not built.
check="$(cd / && "$dir/python" - <<'EOF' 2>&1
import platform
import numpy, cv2, onnxruntime
from ai_edge_litert.interpreter import Interpreter
import edgecv, edgecv.benchmarks.remote.agent, edgecv.benchmarks.suite
print(platform.machine(), platform.python_version(), "edgecv", edgecv.__version__)
EOF
)" || die "the aarch64 Python does not run edgecv's device side: $(echo "$check" | tail -n 1)"
say "ready in $((SECONDS - start)) s: $(echo "$check" | tail -n 1), QEMU_CPU=$cpu"
echo "$dir/python"
