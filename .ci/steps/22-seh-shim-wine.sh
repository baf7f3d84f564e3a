#!/usr/bin/env bash
# The driver's SEH shim (driver/shim/seh_copy.c), made to fault under Wine: tests/wine/seh-shim.sh
# links the shim library odxflt.sys was linked with (left by 20-cross-build-driver.sh) into a small
# Windows program and runs it against PAGE_NOACCESS / PAGE_READONLY pages; fails unless every case
# passes and the program exits 0 (docs/driver.md, "Caller buffers of the port (SEH shim)").
#   ODXFLT_NO_APT=1 .ci/steps/22-seh-shim-wine.sh   # never call apt-get
set -euo pipefail
cd "$(dirname "$0")/../.."
start=$SECONDS
say() { printf '22-seh-shim-wine: %s\n' "$*"; }
fail() { printf '22-seh-shim-wine: FAILED: %s\n' "$*" >&2; exit 1; }

packages=(wine64 clang-16 lld-16 llvm-16)
. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib/debian-packages.sh"
ensure_debian_packages 22-seh-shim-wine "${packages[@]}"
say "$(/usr/lib/wine/wine64 --version), $(/usr/bin/clang-16 --version | head -n1)"

bash tests/wine/seh-shim.sh
say "$((SECONDS - start)) s"
