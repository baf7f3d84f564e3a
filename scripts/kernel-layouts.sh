#!/usr/bin/env bash
# The golden table of kernel layouts and constants the driver relies on, computed from header
# sets independent of the windows-sys crate it compiles against (whose FLT_PARAMETERS lost
# POINTER_ALIGNMENT): Wine's DDK headers and mingw-w64's headers, plus the documented
# definition (learn.microsoft.com) of what neither defines.
#
#   scripts/kernel-layouts.sh                   # write driver/layouts/kernel-layouts.json and
#                                               #   driver/layouts/kernel-constants.json
#   scripts/kernel-layouts.sh --check           # regenerate in a temp dir; exit 1 with a diff
#                                               #   when the committed files differ (CI)
#   ODXFLT_NO_APT=1 scripts/kernel-layouts.sh   # never call apt-get: the packages and the
#                                               #   unpacked libwine-dev cache must be there
#
# Wine's headers come from Debian's libwine-dev, fetched with `apt-get download` and unpacked
# with `dpkg -x` under target/kernel-layouts/libwine-dev_<version>/ (reused while apt offers
# the same version); Wine itself is never installed or run. mingw-w64's headers are those of
# mingw-w64-x86-64-dev, DDK included.
#
# The probes in scripts/kernel-layouts/ (wine.c, mingw.c, documented.c) are compiled with
# x86_64-w64-mingw32-gcc to assembly only (-S), never assembled or run: every size, offset and
# constant is an asm immediate that appears verbatim in the .s file (scripts/kernel-layouts/
# probe.h). The same probes preprocessed (-E -dD) tell which header defines each item.
# scripts/kernel-layouts/merge.pl then takes each item from its preferred header set (Wine for
# Filter Manager items, mingw-w64 for the rest, documentation last) and fails on any field,
# size or constant on which two sources disagree, except a documented correction: a header
# value that documented.c names (header set, header, value) as contradicted by the
# documentation. The table then takes the documented value, its source says which header
# disagrees and how, and the output lists the corrections; the script fails once the header
# no longer has the stated value (e.g. when it is fixed: remove the correction then).
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD
probes=$root/scripts/kernel-layouts
layouts=$root/driver/layouts
cache=$root/target/kernel-layouts
cc=x86_64-w64-mingw32-gcc
mingw_ddk=/usr/x86_64-w64-mingw32/include/ddk
files=(kernel-layouts.json kernel-constants.json)
start=$SECONDS

say() { printf 'kernel-layouts: %s\n' "$*"; }
fail() { printf 'kernel-layouts: FAILED: %s\n' "$*" >&2; exit 1; }

check=
case "${1:-}" in
  "") ;;
  --check) check=1 ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac
[ $# -le 1 ] || { echo "usage: $0 [--check]" >&2; exit 2; }

sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
apt_updated=
apt_update() {
  [ -z "$apt_updated" ] || return 0
  "${sudo[@]}" apt-get update -qq
  apt_updated=1
}

# --- toolchain and mingw-w64's headers ----------------------------------------------------
packages=(gcc-mingw-w64-x86-64 mingw-w64-x86-64-dev)
. "$(dirname "${BASH_SOURCE[0]}")/lib/debian-packages.sh"
ensure_debian_packages kernel-layouts "${packages[@]}"
command -v "$cc" >/dev/null || fail "$cc not found"
[ -f "$mingw_ddk/ntifs.h" ] || fail "$mingw_ddk/ntifs.h not found (mingw-w64-x86-64-dev)"
mingw_version=$(dpkg-query -W -f='${Version}' mingw-w64-x86-64-dev)

# --- Wine's headers: libwine-dev, downloaded and unpacked, not installed --------------------
wine_candidate() {
  apt-cache policy libwine-dev 2>/dev/null | awk '$1 == "Candidate:" && $2 != "(none)" { print $2 }'
}
fetch_wine() { # version -> unpacks into $cache/libwine-dev_<version>
  local version=$1 dir=$cache/libwine-dev_$1 download=$cache/download deb apt_opts=()
  [ "$(id -u)" -ne 0 ] || apt_opts=(-o APT::Sandbox::User=root)
  rm -rf "$download" "$dir" "$dir.partial"
  mkdir -p "$download"
  (cd "$download" && apt-get download -qq "${apt_opts[@]}" "libwine-dev=$version") || return 1
  deb=$(find "$download" -maxdepth 1 -name 'libwine-dev_*.deb' | head -n1)
  [ -n "$deb" ] || fail "apt-get download left no libwine-dev .deb in $download"
  [ "$(dpkg-deb -f "$deb" Version)" = "$version" ] || fail "$deb is not libwine-dev $version"
  dpkg -x "$deb" "$dir.partial" || fail "dpkg -x $deb failed"
  rm -rf "$dir.partial/usr/lib" # import libraries; only the headers are used
  touch "$dir.partial/.unpacked"
  mv "$dir.partial" "$dir"
  rm -rf "$download"
}

if [ -n "${ODXFLT_NO_APT:-}" ]; then
  wine_dir=$(find "$cache" -mindepth 2 -maxdepth 2 -path "$cache/libwine-dev_*/.unpacked" 2>/dev/null \
    | sed 's|/\.unpacked$||' | sort -V | tail -n1)
  [ -n "$wine_dir" ] || fail "ODXFLT_NO_APT is set and no unpacked libwine-dev is cached in $cache"
  wine_version=${wine_dir##*/libwine-dev_}
  say "Wine headers: libwine-dev $wine_version (cached; ODXFLT_NO_APT)"
else
  wine_version=$(wine_candidate)
  if [ -z "$wine_version" ]; then
    apt_update
    wine_version=$(wine_candidate)
  fi
  [ -n "$wine_version" ] || fail "apt offers no libwine-dev package"
  wine_dir=$cache/libwine-dev_$wine_version
  if [ -f "$wine_dir/.unpacked" ]; then
    say "Wine headers: libwine-dev $wine_version (cached in ${wine_dir#"$root"/})"
  else
    say "Wine headers: downloading libwine-dev $wine_version (unpacked into ${wine_dir#"$root"/}, not installed)"
    mkdir -p "$cache"
    if ! fetch_wine "$wine_version"; then
      [ -z "$apt_updated" ] || fail "apt-get download libwine-dev=$wine_version failed"
      apt_update # stale package lists: refresh once and retry with the current candidate
      wine_version=$(wine_candidate)
      [ -n "$wine_version" ] || fail "apt offers no libwine-dev package"
      wine_dir=$cache/libwine-dev_$wine_version
      fetch_wine "$wine_version" || fail "apt-get download libwine-dev=$wine_version failed"
    fi
  fi
fi
wine_inc=$wine_dir/usr/include/wine/wine
[ -f "$wine_inc/windows/ddk/fltkernel.h" ] || fail "$wine_inc/windows/ddk/fltkernel.h not found"
[ -f "$wine_inc/msvcrt/stddef.h" ] || fail "$wine_inc/msvcrt/stddef.h not found"
say "mingw-w64 headers: mingw-w64-x86-64-dev $mingw_version; compiler: $("$cc" --version | head -n1)"

# --- probes -------------------------------------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/kernel-layouts.XXXXXX")
trap 'rm -rf "$work"' EXIT

probe() { # set flags...
  local set=$1
  shift
  "$cc" -w -S -o "$work/$set.s" "$@" "$probes/$set.c" || fail "the $set probe does not compile"
  "$cc" -w -E -dD -o "$work/$set.i" "$@" "$probes/$set.c" || fail "the $set probe does not preprocess"
}
probe wine -nostdinc -I"$wine_inc/windows" -I"$wine_inc/msvcrt"
probe mingw -I"$mingw_ddk"
probe documented -nostdinc

mkdir -p "$work/out"
perl "$probes/merge.pl" "$work/out" \
  wine "wine-$wine_version" "$work/wine.s" "$work/wine.i" "$wine_dir" \
  mingw "mingw-w64-$mingw_version" "$work/mingw.s" "$work/mingw.i" / \
  documented documented "$work/documented.s" - -

# --- write or compare ---------------------------------------------------------------------
if [ -n "$check" ]; then
  status=0
  for f in "${files[@]}"; do
    heading=() # hunk headers name the structure a changed field belongs to
    [ "$f" != kernel-layouts.json ] || heading=(-F '^  "')
    if [ ! -f "$layouts/$f" ]; then
      say "driver/layouts/$f is not committed"
      status=1
    elif ! diff -u "${heading[@]}" --label "driver/layouts/$f (committed)" \
        --label "driver/layouts/$f (regenerated)" "$layouts/$f" "$work/out/$f"; then
      status=1
    fi
  done
  if [ "$status" -ne 0 ]; then
    fail "driver/layouts/ differs from what the headers give (run scripts/kernel-layouts.sh and review the diff) ($((SECONDS - start)) s)"
  fi
  say "OK: driver/layouts/${files[0]} and ${files[1]} match the headers ($((SECONDS - start)) s)"
else
  mkdir -p "$layouts"
  for f in "${files[@]}"; do
    cp "$work/out/$f" "$layouts/$f"
  done
  say "wrote driver/layouts/${files[0]} and ${files[1]} ($((SECONDS - start)) s)"
fi
