#!/usr/bin/env bash
# Cross-builds odxflt.sys for x86_64-pc-windows-msvc on Debian 12 and checks the image.
#
#   scripts/cross-build-driver.sh            # install what is missing, build, check
#   ODXFLT_NO_APT=1 scripts/cross-build-driver.sh   # never call apt-get (tools must be there)
#
# Toolchain: Debian's rustc-web/cargo-web (with rust-web-src for -Z build-std), lld-link-16,
# llvm-16's llvm-readobj and llvm-ar, and clang-16 for the C SEH shim (driver/shim, compiled by
# the cc crate in driver/build.rs). They are called by full path; rustup's toolchain stays the
# default for everything else. The result is target/x86_64-pc-windows-msvc/release/odxflt.sys
# (and, next to it, odx_seh.lib: the shim library linked into it, for tests/wine/seh-shim.sh);
# the build fails unless the image imports only from ntoskrnl.exe, fltmgr.sys and hal.dll, imports
# no C-runtime or compiler helper except ntoskrnl.exe!__C_specific_handler (which the shim's SEH
# needs, so it must be there), exports DriverEntry, and is a native-subsystem image with the
# driver flags wdk-build sets.
# See docs/driver.md ("Building on Linux").
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD
target=x86_64-pc-windows-msvc
cross_dir="$root/target/cross"          # the Debian toolchain's own cargo target dir
out_dir="$root/target/$target/release"
image="$out_dir/odxflt.sys"

packages=(rustc-web cargo-web rust-web-src lld-16 llvm-16 clang-16)
rustc_bin=/usr/bin/rustc
cargo_bin=/usr/bin/cargo
lld_link=/usr/bin/lld-link-16
readobj=/usr/bin/llvm-readobj-16
clang=/usr/bin/clang-16
llvm_ar=/usr/bin/llvm-ar-16

say() { printf 'cross-build-driver: %s\n' "$*"; }
fail() { printf 'cross-build-driver: FAILED: %s\n' "$*" >&2; exit 1; }

. "$(dirname "${BASH_SOURCE[0]}")/lib/debian-packages.sh"
ensure_debian_packages cross-build-driver "${packages[@]}"
for tool in "$rustc_bin" "$cargo_bin" "$lld_link" "$readobj" "$clang" "$llvm_ar"; do
  [ -x "$tool" ] || fail "$tool not found"
done
say "$("$rustc_bin" --version), $("$cargo_bin" --version), $("$lld_link" --version | head -n1)"

# The Debian toolchain, isolated from rustup's: its own target dir, no rustup overrides.
# The cc crate (driver/build.rs, the SEH shim) compiles with clang-16 for the MSVC target and
# archives with llvm-ar-16; build.rs adds the kernel-mode flags (no stack probes, no /GS
# cookie, freestanding). Host C settings are not used for the target.
build_env=(
  env -u RUSTUP_TOOLCHAIN -u RUSTC_WRAPPER -u CARGO -u CARGO_TARGET_DIR -u RUSTFLAGS
  -u CFLAGS -u TARGET_CFLAGS -u CC -u TARGET_CC -u AR -u TARGET_AR -u CRATE_CC_NO_DEFAULTS
  RUSTC_BOOTSTRAP=1
  RUSTC="$rustc_bin"
  CARGO_TARGET_DIR="$cross_dir"
  CARGO_TARGET_X86_64_PC_WINDOWS_MSVC_LINKER="$lld_link"
  CARGO_TARGET_X86_64_PC_WINDOWS_MSVC_RUSTFLAGS="-C target-feature=+crt-static -C linker-flavor=lld-link"
  CC_x86_64_pc_windows_msvc="$clang"
  AR_x86_64_pc_windows_msvc="$llvm_ar"
  CFLAGS_x86_64_pc_windows_msvc="--target=$target"
)
messages="$cross_dir/odxflt-build-messages.json"
mkdir -p "$cross_dir"
"${build_env[@]}" "$cargo_bin" build --locked -p odxflt --release --target "$target" \
  -Z build-std=core,compiler_builtins -Z build-std-features=compiler-builtins-mem \
  --message-format=json-render-diagnostics >"$messages"

mkdir -p "$out_dir"
cp "$cross_dir/$target/release/odxflt.dll" "$image"
[ -f "$cross_dir/$target/release/odxflt.pdb" ] && cp "$cross_dir/$target/release/odxflt.pdb" "$out_dir/odxflt.pdb"
# The shim library this image was linked with (the out dir of odxflt's build-script run).
shim_out=$(grep '"reason":"build-script-executed"' "$messages" | grep '#odxflt@' \
  | sed -n 's/.*"out_dir":"\([^"]*\)".*/\1/p' | tail -n1)
[ -n "$shim_out" ] && [ -f "$shim_out/libodx_seh.a" ] || fail "the SEH shim library was not built (out dir: ${shim_out:-none})"
cp "$shim_out/libodx_seh.a" "$out_dir/odx_seh.lib"

# --- checks -------------------------------------------------------------------------------
headers=$("$readobj" --file-headers "$image")
imports=$("$readobj" --coff-imports "$image")
exports=$("$readobj" --coff-exports "$image")

grep -q 'Machine: IMAGE_FILE_MACHINE_AMD64' <<<"$headers" || fail "not an x86-64 image"
grep -q 'Subsystem: IMAGE_SUBSYSTEM_NATIVE' <<<"$headers" || fail "subsystem is not NATIVE"
for flag in IMAGE_DLL_CHARACTERISTICS_FORCE_INTEGRITY IMAGE_DLL_CHARACTERISTICS_NX_COMPAT \
            IMAGE_DLL_CHARACTERISTICS_DYNAMIC_BASE; do
  grep -q "$flag" <<<"$headers" || fail "missing $flag (wdk-build's /INTEGRITYCHECK /NXCOMPAT /DYNAMICBASE)"
done

libraries=$(awk '/^Import \{/ {imp=1} imp && $1 == "Name:" {print $2; imp=0}' <<<"$imports" | sort -u)
[ -n "$libraries" ] || fail "no imports found (readobj output changed?)"
while read -r lib; do
  case "${lib,,}" in
    ntoskrnl.exe | fltmgr.sys | hal.dll) ;;
    *) fail "imports from $lib (allowed: ntoskrnl.exe, fltmgr.sys, hal.dll)" ;;
  esac
done <<<"$libraries"
# Symbols: kernel routines are allowed from those libraries (they change as the driver grows),
# C-runtime and compiler helpers are not (`_`-prefixed names such as __chkstk,
# __security_check_cookie, __GSHandlerCheck; mem*/str*/wcs* routines), with exactly one
# exception: the SEH shim's language handler, ntoskrnl.exe!__C_specific_handler, which must be
# present (its absence means the shim's scope table is not in the image).
symbols=$(awk '/^Import \{/ {imp=1} imp && $1 == "Name:" {lib=$2; imp=0} $1 == "Symbol:" {print tolower(lib) "!" $2}' <<<"$imports")
seh_handler=no
while read -r import; do
  name=${import#*!}
  if [ "$import" = 'ntoskrnl.exe!__C_specific_handler' ]; then
    seh_handler=yes
  elif [[ $name == _* || $name =~ ^(mem|str|wcs|sprintf|swprintf|vsprintf|vswprintf|atoi|qsort) ]]; then
    fail "imports the runtime helper $import (allowed: only ntoskrnl.exe!__C_specific_handler)"
  fi
done <<<"$symbols"
[ "$seh_handler" = yes ] || fail "does not import ntoskrnl.exe!__C_specific_handler: the SEH shim (driver/shim) is not in the image"
grep -qE '^\s*Name: DriverEntry$' <<<"$exports" || fail "DriverEntry is not exported"

say "image: ${image#"$root"/} ($(stat -c %s "$image") bytes); SEH shim: ${out_dir#"$root"/}/odx_seh.lib"
say "imports:"
awk '/^Import \{/ {imp=1} imp && $1 == "Name:" {lib=$2; imp=0} $1 == "Symbol:" {print "  " lib "!" $2}' <<<"$imports"
say "exports: $(awk '$1 == "Name:" {printf "%s ", $2}' <<<"$exports")"
say "OK"
