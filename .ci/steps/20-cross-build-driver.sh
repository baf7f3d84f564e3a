#!/usr/bin/env bash
# The Windows driver image, built and checked on Linux: Debian's rustc-web + build-std + lld-link
# produce target/x86_64-pc-windows-msvc/release/odxflt.sys; the script fails unless it imports
# only from ntoskrnl.exe / fltmgr.sys / hal.dll and exports DriverEntry (docs/driver.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
start=$SECONDS
bash scripts/cross-build-driver.sh
echo "cross-build-driver: $((SECONDS - start)) s"
