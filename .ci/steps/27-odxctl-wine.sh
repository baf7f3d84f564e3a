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
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  if [ -n "${ODXFLT_NO_APT:-}" ]; then
    printf '27-odxctl-wine: FAILED: missing Debian packages: %s\n' "${missing[*]}" >&2
    exit 1
  fi
  say "installing ${missing[*]}"
  sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
bash scripts/cargo-make.sh odxctl-wine
say "$((SECONDS - start)) s"
