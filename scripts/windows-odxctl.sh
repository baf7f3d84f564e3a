#!/usr/bin/env bash
# odxctl.exe for Windows 8 and later, built on Linux (`cargo make windows-odxctl`; CI:
# .ci/steps/25-windows-odxctl.sh): Debian's rustc-web with -Z build-std (std from rust-web-src)
# for Rust's x86_64-win7-windows-gnu target, linked by mingw-w64. That target's std imports only
# what Windows 7 exports and loads newer functions at run time; the x86_64-pc-windows-gnu std
# imports bcryptprimitives.dll!ProcessPrng and needs Windows 10.
#
# Fails unless the result is a PE32+ x86-64 console image whose every import is listed in
# tests/wine/windows8-exports.txt (Windows 8 exports, each with its source) at NT 6.2 or older.
#   ODXFLT_NO_APT=1 scripts/windows-odxctl.sh   # never call apt-get
# Prints the path of the image last.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
target=x86_64-win7-windows-gnu
cross_dir="$root/target/cross-windows"
exe="$cross_dir/$target/release/odxctl.exe"
allowed="$root/tests/wine/windows8-exports.txt"
say() { printf 'windows-odxctl: %s\n' "$*"; }
fail() { printf 'windows-odxctl: FAILED: %s\n' "$*" >&2; exit 1; }

packages=(rustc-web cargo-web rust-web-src gcc-mingw-w64-x86-64 binutils-mingw-w64-x86-64)
. "$(dirname "${BASH_SOURCE[0]}")/lib/debian-packages.sh"
ensure_debian_packages windows-odxctl "${packages[@]}"
/usr/bin/rustc --print target-list | grep -qx "$target" || fail "/usr/bin/rustc has no $target target"
say "$(/usr/bin/rustc --version), $(x86_64-w64-mingw32-gcc --version | head -n1)"

start=$(date +%s)
env -u RUSTUP_TOOLCHAIN -u RUSTC_WRAPPER -u CARGO -u CARGO_TARGET_DIR -u RUSTFLAGS \
  RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc CARGO_TARGET_DIR="$cross_dir" \
  CARGO_TARGET_X86_64_WIN7_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc \
  CARGO_TARGET_X86_64_WIN7_WINDOWS_GNU_RUSTFLAGS="-D warnings" \
  /usr/bin/cargo build --locked -p odxctl --release --target "$target" \
  -Z build-std=std,panic_abort
[ -f "$exe" ] || fail "$exe was not produced"
file "$exe" | grep -q 'PE32+ executable (console) x86-64' || fail "$exe is not a PE32+ x86-64 console image"

# The import table: "dll!Function" per line.
imports=$(x86_64-w64-mingw32-objdump -p "$exe" | sed -n '/The Import Tables/,/^The \|^PE File Base/p' |
  awk '/DLL Name:/ { dll = tolower($3); next }
       dll != "" && NF == 3 && $1 ~ /^[0-9a-f]+$/ && $2 ~ /^[0-9]+$/ { print dll "!" $3 }' | sort -u)
[ -n "$imports" ] || fail "no imports read from $exe"
known=$(awk '!/^#/ && NF >= 4 { print tolower($1) "!" $2 }' "$allowed" | sort -u)
newer=$(awk '!/^#/ && NF >= 4 && $3 != "-" { split($3, v, "."); if (v[1] > 6 || (v[1] == 6 && v[2] > 2)) print $1 "!" $2 " (" $3 ")" }' "$allowed")
[ -z "$newer" ] || fail "tests/wine/windows8-exports.txt lists exports newer than Windows 8: $newer"
unlisted=$(comm -23 <(printf '%s\n' "$imports") <(printf '%s\n' "$known"))
if [ -n "$unlisted" ]; then
  printf '%s\n' "$unlisted" | sed 's/^/  /' >&2
  fail "$exe imports the above, which tests/wine/windows8-exports.txt does not list as Windows 8 exports (add each with a source, or avoid it)"
fi
count=$(printf '%s\n' "$imports" | wc -l)
dlls=$(printf '%s\n' "$imports" | cut -d'!' -f1 | uniq -c | awk '{ printf "%s %s, ", $2, $1 }')
grep -q '^fltlib.dll!' <<<"$imports" || fail "$exe does not import fltlib.dll"
say "built $exe ($(stat -c %s "$exe") bytes) in $(( $(date +%s) - start )) s"
say "$count imports, every one a Windows 8 export (${dlls%, })"
echo "$exe"
