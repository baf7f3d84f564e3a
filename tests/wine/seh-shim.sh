#!/usr/bin/env bash
# The driver's SEH shim (driver/shim/seh_copy.c) made to fault, under Wine: links
# tests/wine/seh_shim_test.c with the shim library the driver image was linked with and runs it
# against PAGE_NOACCESS / PAGE_READONLY pages (docs/driver.md, "Caller buffers of the port (SEH
# shim)"). Fails unless every case passes, the closing line says so and the process exits 0.
#
#   tests/wine/seh-shim.sh          # the driver's library (target/x86_64-pc-windows-msvc/release/
#                                   # odx_seh.lib); runs scripts/cross-build-driver.sh first if it
#                                   # is missing or older than driver/shim
#   tests/wine/seh-shim.sh LIB      # another build of the shim (e.g. a variant without __try,
#                                   # to see the test fail)
#
# Needs clang-16, lld-16 (lld-link), llvm-16 (llvm-dlltool) and wine64 (Debian 8.0); installs
# nothing itself (.ci/steps/22-seh-shim-wine.sh does). No C runtime: the program's entry point
# is its own, its imports come from import libraries made here from .def files. Wine runs with a
# throwaway prefix under target/, no display, WINEDEBUG=-all.
set -euo pipefail

cd "$(dirname "$0")/../.."
root=$PWD
target=x86_64-pc-windows-msvc
work="$root/target/wine-seh-shim"
default_lib="$root/target/$target/release/odx_seh.lib"
lib=${1:-$default_lib}
source_file="$root/tests/wine/seh_shim_test.c"

clang=/usr/bin/clang-16
lld_link=/usr/bin/lld-link-16
dlltool=/usr/bin/llvm-dlltool-16
wine=/usr/lib/wine/wine64
wineserver=/usr/lib/wine/wineserver64

say() { printf 'seh-shim: %s\n' "$*"; }
fail() { printf 'seh-shim: FAILED: %s\n' "$*" >&2; exit 1; }

for tool in "$clang" "$lld_link" "$dlltool" "$wine" "$wineserver"; do
  [ -x "$tool" ] || fail "$tool not found (clang-16, lld-16, llvm-16, wine64)"
done

if [ "$lib" = "$default_lib" ]; then
  stale=no
  [ -f "$lib" ] || stale=yes
  [ "$stale" = yes ] || [ -z "$(find "$root/driver/shim" -newer "$lib" -print -quit)" ] || stale=yes
  if [ "$stale" = yes ]; then
    say "the driver's shim library is missing or older than driver/shim: cross-building the driver"
    bash "$root/scripts/cross-build-driver.sh"
  fi
fi
[ -f "$lib" ] || fail "$lib not found"

rm -rf "$work"
mkdir -p "$work"

# Import libraries: kernel32.dll for the program, ntdll.dll for the shim's language handler
# (the driver takes the same symbol from ntoskrnl.exe).
printf 'LIBRARY kernel32.dll\nEXPORTS\nVirtualAlloc\nVirtualProtect\nGetStdHandle\nWriteFile\nExitProcess\n' \
  >"$work/kernel32.def"
printf 'LIBRARY ntdll.dll\nEXPORTS\n__C_specific_handler\n' >"$work/ntdll.def"
for dll in kernel32 ntdll; do
  "$dlltool" -m i386:x86-64 -d "$work/$dll.def" -l "$work/$dll.lib"
done

# The program: no C library, no stack probes (its entry point runs before anything could
# provide __chkstk), freestanding.
"$clang" --target="$target" -O2 -Wall -Wextra -Werror -fms-extensions -ffreestanding -fno-builtin \
  -fno-stack-protector -mno-stack-arg-probe -I"$root/driver/shim" \
  -c "$source_file" -o "$work/seh_shim_test.obj"
"$lld_link" /nologo /entry:odx_test_main /subsystem:console /nodefaultlib \
  /out:"$work/seh-shim-test.exe" "$work/seh_shim_test.obj" "$lib" \
  "$work/kernel32.lib" "$work/ntdll.lib"
say "built ${work#"$root"/}/seh-shim-test.exe with ${lib#"$root"/}"

cases=$(sed -n 's/^#define CASES \([0-9][0-9]*\)$/\1/p' "$source_file")
[ -n "$cases" ] || fail "no '#define CASES N' in $source_file"

export WINEPREFIX="$work/prefix" WINEDEBUG=-all WINEDLLOVERRIDES='mscoree,mshtml='
unset DISPLAY WAYLAND_DISPLAY
set +e
timeout 90 "$wine" "$work/seh-shim-test.exe" >"$work/stdout" 2>"$work/stderr"
rc=$?
set -e
"$wineserver" -k 2>/dev/null || true   # this prefix's server only; it would linger for seconds
cat "$work/stdout"
if [ "$rc" -ne 0 ] || ! grep -qx "seh-shim: $cases passed, 0 failed" "$work/stdout"; then
  say "Wine's stderr:"
  sed 's/^/  /' "$work/stderr" >&2
  fail "exit code $rc; expected 'seh-shim: $cases passed, 0 failed' and exit code 0"
fi
rm -rf "$WINEPREFIX"
say "OK ($cases cases)"
