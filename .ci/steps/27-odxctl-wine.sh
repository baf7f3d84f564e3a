#!/usr/bin/env bash
# odxctl.exe run under Wine 8.0 (`cargo make odxctl-wine` → tests/wine/odxctl-wine.sh): explain,
# copy with its fallback (byte-identical, the Windows data path in the summary), and stats /
# policy / diagnose through the test-only fltlib.dll of tests/wine/fltlib (odx-core's serve over a
# scenario; diagnose must name the filter at SupportedFeatures 0x1, 4441). Installs wine64 and
# gcc-mingw-w64-x86-64 if missing; ODXFLT_NO_APT=1 never calls apt-get.
set -euo pipefail
cd "$(dirname "$0")/../.."
start=$SECONDS
say() { printf '27-odxctl-wine: %s\n' "$*"; }
packages=(wine64 gcc-mingw-w64-x86-64 binutils-mingw-w64-x86-64)
. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib/debian-packages.sh"
ensure_debian_packages 27-odxctl-wine "${packages[@]}"
bash scripts/cargo-make.sh odxctl-wine
say "$((SECONDS - start)) s"
