#!/usr/bin/env bash
# odxctl.exe, the Windows 8 build (scripts/windows-odxctl.sh), run under Wine 8.0 — the binary a
# Windows user runs, with every part that needs no kernel exercised (docs/odxctl.md, "odxctl on
# Windows"; CI: .ci/steps/27-odxctl-wine.sh; `cargo make odxctl-wine`):
#   - explain (text and --json, byte-identical to the Linux build), an unknown code;
#   - copy of a 64 MiB file on a Wine drive: FSCTL_OFFLOAD_READ is refused (Wine has no ODX), the
#     copy falls back, is byte-identical (odxctl's --verify and cmp), and the summary says every
#     byte went through odxctl's buffer (ReadFile/WriteFile);
#   - stats / policy / diagnose through a test-only fltlib.dll (tests/wine/fltlib, loaded with
#     WINEDLLOVERRIDES="fltlib=n" from odxctl.exe's folder, never shipped) that lists a scenario's
#     filter instances and answers \OdxfltPort with odx-core's serve over the scenario's stack:
#     stats and policy must print exactly what `odxctl stats|policy --scenario` prints on Linux,
#     and diagnose must name the scenario's filter at SupportedFeatures 0x1 as the culprit (4441);
#   - stats with Wine's own fltlib.dll, and with the test one but no scenario: a clear error.
# Ends with "odxctl-wine: N passed, M failed" and exits non-zero unless M is 0.
#
# Needs wine64 (Debian 8.0), gcc-mingw-w64-x86-64 and the toolchain of scripts/windows-odxctl.sh;
# installs nothing itself (.ci/steps/27-odxctl-wine.sh does). Wine runs with a throwaway prefix
# under target/, no display, WINEDEBUG=-all, as tests/wine/seh-shim.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
target=x86_64-win7-windows-gnu
cross_dir="$root/target/cross-windows"
work="$root/target/wine-odxctl"
wine=/usr/lib/wine/wine64
wineserver=/usr/lib/wine/wineserver64
say() { printf 'odxctl-wine: %s\n' "$*"; }
fail() { printf 'odxctl-wine: FAILED: %s\n' "$*" >&2; exit 1; }
for tool in "$wine" "$wineserver" x86_64-w64-mingw32-gcc x86_64-w64-mingw32-objdump; do
  command -v "$tool" >/dev/null || fail "$tool not found (wine64, gcc-mingw-w64-x86-64)"
done

# --- build: odxctl.exe, the test fltlib.dll, the host odxctl to compare with ----------------
exe=$(bash scripts/windows-odxctl.sh | tail -n1)
[ -f "$exe" ] || fail "scripts/windows-odxctl.sh did not leave odxctl.exe"
env -u RUSTUP_TOOLCHAIN -u RUSTC_WRAPPER -u CARGO -u CARGO_TARGET_DIR -u RUSTFLAGS \
  RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc CARGO_TARGET_DIR="$cross_dir" \
  CARGO_TARGET_X86_64_WIN7_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc \
  CARGO_TARGET_X86_64_WIN7_WINDOWS_GNU_RUSTFLAGS="-D warnings" \
  /usr/bin/cargo build --quiet --locked --manifest-path tests/wine/fltlib/Cargo.toml --release \
  --target "$target" -Z build-std=std,panic_abort ||
  fail "building tests/wine/fltlib (its own Cargo.lock; after a dependency change in odx-core/odx-sim: cp Cargo.lock tests/wine/fltlib/ && cargo metadata --manifest-path tests/wine/fltlib/Cargo.toml >/dev/null)"
dll="$cross_dir/$target/release/fltlib.dll"
[ -f "$dll" ] || fail "$dll was not produced"
# The record layout of the test DLL against mingw-w64's fltuserstructures.h, and its host tests.
layout_defs=$(sed -n 's/^ *pub const \([A-Z_]*\): \(usize\|u32\) = \([0-9]*\);$/-DODX_\1=\3/p' tests/wine/fltlib/src/lib.rs)
[ "$(wc -w <<<"$layout_defs")" -ge 13 ] || fail "could not read the layout constants of tests/wine/fltlib/src/lib.rs"
# shellcheck disable=SC2086 # one -D per word
x86_64-w64-mingw32-gcc -fsyntax-only -Wall -Werror $layout_defs tests/wine/fltlib/layout.c ||
  fail "the test fltlib.dll's record layout differs from mingw-w64's INSTANCE_AGGREGATE_STANDARD_INFORMATION"
cargo test --quiet --locked --manifest-path tests/wine/fltlib/Cargo.toml --target-dir "$root/target" >/dev/null ||
  fail "host tests of tests/wine/fltlib"
cargo build --quiet -p odxctl
host=$root/target/debug/odxctl
# The test DLL must export every fltlib function odxctl.exe imports.
exports_of() { x86_64-w64-mingw32-objdump -p "$1" | sed -n '/\[Ordinal\/Name Pointer\] Table/,/^$/p' | sed -n 's/^\s*\[ *[0-9]*\] //p' | sort -u; }
fltlib_imports=$(x86_64-w64-mingw32-objdump -p "$exe" | sed -n '/DLL Name: fltlib.dll/,/^$/p' | awk 'NF == 3 && $2 ~ /^[0-9]+$/ { print $3 }' | sort -u)
[ -n "$fltlib_imports" ] || fail "odxctl.exe imports nothing from fltlib.dll"
missing=$(comm -23 <(printf '%s\n' "$fltlib_imports") <(exports_of "$dll"))
[ -z "$missing" ] || fail "the test fltlib.dll does not export: $missing"
say "odxctl.exe imports from fltlib.dll: $(tr '\n' ' ' <<<"$fltlib_imports")— all exported by the test DLL"

# --- Wine: a throwaway prefix, drive D: on a directory under target/ ------------------------
rm -rf "$work"
mkdir -p "$work/bin" "$work/d"
cp "$exe" "$dll" "$work/bin/"
export WINEPREFIX="$work/prefix" WINEDEBUG=-all
unset DISPLAY WAYLAND_DISPLAY
base_overrides='mscoree,mshtml='
trap '"$wineserver" -k 2>/dev/null || true' EXIT
WINEDLLOVERRIDES="$base_overrides" timeout 120 "$wine" wineboot -i >/dev/null 2>&1 || fail "wineboot failed"
ln -sfn "$work/d" "$WINEPREFIX/dosdevices/d:"
say "$("$wine" --version), prefix ${WINEPREFIX#"$root"/}, D: = ${work#"$root"/}/d"

passed=0 failed=0
check() { # NAME CONDITION...
  local name=$1; shift
  if "$@"; then passed=$((passed + 1)); printf '  ok    %s\n' "$name"
  else failed=$((failed + 1)); printf '  FAIL  %s\n' "$name"; fi
}
# Runs odxctl.exe; leaves $out, $err (files) and $rc. FLTLIB: n (the test DLL) or b (Wine's).
# SCENARIO: a repository path for the test DLL, or empty.
run() {
  local fltlib=$1 scenario=$2; shift 2
  out="$work/last.out" err="$work/last.err"
  set +e
  if [ -n "$scenario" ]; then
    ODX_TEST_FLTLIB_SCENARIO="Z:${root//\//\\}\\${scenario//\//\\}" WINEDLLOVERRIDES="$base_overrides;fltlib=$fltlib" \
      timeout 120 "$wine" "$work/bin/odxctl.exe" "$@" >"$out" 2>"$err"
  else
    env -u ODX_TEST_FLTLIB_SCENARIO WINEDLLOVERRIDES="$base_overrides;fltlib=$fltlib" \
      timeout 120 "$wine" "$work/bin/odxctl.exe" "$@" >"$out" 2>"$err"
  fi
  rc=$?
  set -e
}
same_as_host() { "$host" "$@" >"$work/host.out" 2>/dev/null || true; cmp -s "$work/host.out" "$out"; }
has() { grep -qF -- "$1" "$out"; }
lacks() { ! grep -qF -- "$1" "$out"; }
err_has() { grep -qF -- "$1" "$err"; }
rc_is() { [ "$rc" -eq "$1" ]; }

say "explain"
run n "" explain 4440
check "explain 4440: exit 0, same text as the Linux build" eval 'rc_is 0 && has "STATUS_OFFLOAD_READ_FLT_NOT_SUPPORTED" && same_as_host explain 4440'
run n "" explain STATUS_OFFLOAD_WRITE_FILE_NOT_SUPPORTED --json
check "explain --json: win32 4443, same JSON as the Linux build" eval 'rc_is 0 && has "\"win32\":4443" && same_as_host explain STATUS_OFFLOAD_WRITE_FILE_NOT_SUPPORTED --json'
run n "" explain 99999
check "explain 99999: exit 2, one line on stderr" eval 'rc_is 2 && [ "$(wc -l <"$err")" -eq 1 ] && err_has "odxctl: "'

say "copy (Wine has no ODX: the copy engine falls back)"
head -c 67108864 /dev/urandom >"$work/d/src.bin"
run n "" copy 'D:\src.bin' 'D:\dst.bin' --verify
sed 's/^/    /' "$out"
check "copy: exit 0, FSCTL_OFFLOAD_READ refused with STATUS_NOT_SUPPORTED (Win32 50)" eval 'rc_is 0 && has "FSCTL_OFFLOAD_READ failed with STATUS_NOT_SUPPORTED" && has "Win32 50"'
check "copy: the summary says all 64 MiB went through odxctl's buffer (ReadFile/WriteFile)" eval \
  'has "classic copy   67108864 bytes from offset 0" && has "offload writes 0 B moved below the file system" && has "classic copy 64.0 MiB read into odxctl'"'"'s buffer and written from it (ReadFile/WriteFile)" && lacks copy_file_range'
check "copy: odxctl verified byte-identical, and cmp agrees" eval 'has "verified       byte-identical" && cmp -s "$work/d/src.bin" "$work/d/dst.bin"'
run n "" copy 'D:\src.bin' 'D:\dst2.bin' --json
check "copy --json: 67108864 bytes through odxctl's buffer, fallback Win32 50, backend windows" eval \
  'rc_is 0 && has "\"through_odxctl_buffer_bytes\":67108864" && has "\"win32\":50" && has "\"backend\":\"windows\"" && cmp -s "$work/d/src.bin" "$work/d/dst2.bin"'
rm -f "$work/d/dst.bin" "$work/d/dst2.bin"

say "stats / policy / diagnose without odxflt"
run b "" stats
check "stats with Wine's fltlib.dll: exit 1, cannot connect to \\OdxfltPort" eval 'rc_is 1 && err_has "cannot connect to \\OdxfltPort"'
run n "" stats
check "stats with the test fltlib.dll and no scenario: exit 1, HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND)" eval 'rc_is 1 && err_has "cannot connect to \\OdxfltPort" && err_has "0x80070002"'

say "stats / policy through the test fltlib.dll (odx-core serve over the scenario)"
counts=tests/observability/stats_counts.toml
for args in "stats" "stats --volume 0" "stats --json"; do
  # shellcheck disable=SC2086 # the words of $args
  run n "$counts" $args
  # shellcheck disable=SC2086
  check "$args: exit 0, same output as odxctl $args --scenario on Linux" eval "rc_is 0 && same_as_host $args --scenario $counts"
done
run n "$counts" stats --volume 0
check "stats: odxflt's counters as the scenario's steps left them (read seen 3, completed 2)" has "read   seen 3  forwarded 1  completed by odxflt 2"
veto=tests/observability/policy_veto.toml
for args in "policy" "policy monitor" "policy --volume 0 enforce --json"; do
  # shellcheck disable=SC2086
  run n "$veto" $args
  # shellcheck disable=SC2086
  check "$args: exit 0, same output as odxctl $args --scenario on Linux" eval "rc_is 0 && same_as_host $args --scenario $veto"
done
run n "$veto" policy
check "policy: the scenario's veto, read through the port" has "is veto"

say "diagnose through the test fltlib.dll (filter instances and odxflt's policy)"
head -c 8388608 /dev/urandom >"$work/d/src.bin"
: >"$work/d/dst.bin"
ro=tests/observability/diagnose_filter_read_only.toml
run n "$ro" diagnose 'D:\src.bin' 'D:\dst.bin'
sed 's/^/    /' "$out"
check "diagnose: exit 1, the instances the test DLL listed (odxflt 0x3, contosoav 0x1) and odxflt's policy" eval \
  'rc_is 1 && has "filter     odxflt       altitude 370031   SupportedFeatures 0x3" && has "filter     contosoav    altitude 328010   SupportedFeatures 0x1" && has "odxflt     policy enforce"'
check "diagnose: the culprit is contosoav at SupportedFeatures 0x1 (4441), fix names fltmc detach contosoav D:" eval \
  'tail -n1 "$out" | grep -q "^culprit: filter contosoav: .*declares SupportedFeatures 0x1: offload write is blocked (4441 STATUS_OFFLOAD_WRITE_FLT_NOT_SUPPORTED)" && has "fltmc detach contosoav D:)"'
run n "$ro" diagnose 'D:\src.bin' 'D:\dst.bin' --json
culprit=$(grep -o '"culprit":{[^}]*}' "$out" || true)
check "diagnose --json: culprit subject \"filter contosoav\", win32 4441" eval \
  'rc_is 1 && grep -qF "\"subject\":\"filter contosoav\"" <<<"$culprit" && grep -qF "\"win32\":4441" <<<"$culprit"'
run n tests/observability/diagnose_clean.toml diagnose 'D:\src.bin' 'D:\dst.bin'
check "diagnose with every filter at 0x3 and odxflt's storage view 'supported': no culprit (odxflt's kernel view outranks the user-mode query Wine cannot answer)" eval \
  'rc_is 0 && lacks "BLOCKS filter" && tail -n1 "$out" | grep -q "^culprit: none"'
run n tests/observability/diagnose_storage_not_supported.toml diagnose 'D:\src.bin' 'D:\dst.bin'
sed 's/^/    /' "$out"
check "diagnose with odxflt's storage view 'not supported': the culprit is the storage of D:, from odxflt's instance-setup query" eval \
  'rc_is 1 && lacks "BLOCKS filter" && tail -n1 "$out" | grep -q "^culprit: the storage of D:"'
run n "$veto" diagnose 'D:\src.bin' 'D:\dst.bin'
check "diagnose with odxflt's policy at veto (read through the port): the culprit is odxflt's policy (4440)" eval \
  'rc_is 1 && tail -n1 "$out" | grep -q "^culprit: odxflt policy: veto on D: .*(4440 STATUS_OFFLOAD_READ_FLT_NOT_SUPPORTED)"'

"$wineserver" -k 2>/dev/null || true
trap - EXIT
echo "odxctl-wine: $passed passed, $failed failed"
if [ "$failed" -ne 0 ]; then
  say "the last command's stderr:"
  sed 's/^/  /' "$err" >&2
  exit 1
fi
rm -rf "$WINEPREFIX"
