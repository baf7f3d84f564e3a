#!/usr/bin/env bash
# odxctl for Windows (x86_64-pc-windows-gnu), built and linked on Linux: Debian's rustc-web with
# -Z build-std (std from rust-web-src) and the mingw-w64 linker. Compiled and linked only, never
# run here. Reuses the toolchain scripts/cross-build-driver.sh installs; adds gcc-mingw-w64-x86-64.
#   ODXFLT_NO_APT=1 .ci/steps/25-windows-odxctl.sh   # never call apt-get
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
target=x86_64-pc-windows-gnu
cross_dir="$root/target/cross-windows"
say() { printf '25-windows-odxctl: %s\n' "$*"; }
fail() { printf '25-windows-odxctl: FAILED: %s\n' "$*" >&2; exit 1; }

packages=(rustc-web cargo-web rust-web-src gcc-mingw-w64-x86-64)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  [ -z "${ODXFLT_NO_APT:-}" ] || fail "missing Debian packages: ${missing[*]}"
  say "installing ${missing[*]}"
  sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
say "$(/usr/bin/rustc --version), $(x86_64-w64-mingw32-gcc --version | head -n1)"

start=$(date +%s)
env -u RUSTUP_TOOLCHAIN -u RUSTC_WRAPPER -u CARGO -u CARGO_TARGET_DIR -u RUSTFLAGS \
  RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc CARGO_TARGET_DIR="$cross_dir" \
  CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc \
  CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUSTFLAGS="-D warnings" \
  /usr/bin/cargo build --locked -p odxctl --release --target "$target" \
  -Z build-std=std,panic_abort
exe="$cross_dir/$target/release/odxctl.exe"
[ -f "$exe" ] || fail "$exe was not produced"
file "$exe" | grep -q 'PE32+ executable (console) x86-64' || fail "$exe is not a PE32+ x86-64 console image"
imports=$(x86_64-w64-mingw32-objdump -p "$exe" | sed -n 's/^\s*DLL Name: //p' | sort -u | tr '\n' ' ')
for dll in fltlib.dll; do
  grep -qi "$dll" <<<"$imports" || fail "$exe does not import $dll (imports: $imports)"
done
say "built $exe ($(stat -c %s "$exe") bytes) in $(( $(date +%s) - start )) s"
say "imports: $imports"
say "OK (compiled and linked only; not run)"
