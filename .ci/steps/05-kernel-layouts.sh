#!/usr/bin/env bash
# Kernel layouts pinned against header sets independent of windows-sys: regenerates
# driver/layouts/kernel-layouts.json and kernel-constants.json from Wine's DDK headers
# (libwine-dev, downloaded and unpacked, not installed) and mingw-w64's headers, and fails
# with a diff when the committed files differ or the two header sets disagree
# (scripts/kernel-layouts.sh). Installs gcc-mingw-w64-x86-64 if missing; ODXFLT_NO_APT=1
# never calls apt-get.
set -euo pipefail
cd "$(dirname "$0")/../.."
start=$SECONDS
bash scripts/kernel-layouts.sh --check
echo "kernel-layouts: $((SECONDS - start)) s"
