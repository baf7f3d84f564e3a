#!/usr/bin/env bash
# odxctl.exe for Windows 8 and later, through cargo-make (`cargo make windows-odxctl` →
# scripts/windows-odxctl.sh): Debian's rustc-web with -Z build-std for x86_64-win7-windows-gnu,
# linked by mingw-w64; fails unless every import of the image is a Windows 8 export listed in
# tests/wine/windows8-exports.txt. Installs rustc-web cargo-web rust-web-src gcc-mingw-w64-x86-64
# binutils-mingw-w64-x86-64 if missing. Run under Wine by 27-odxctl-wine.sh.
#   ODXFLT_NO_APT=1 .ci/steps/25-windows-odxctl.sh   # never call apt-get
set -euo pipefail
cd "$(dirname "$0")/../.."
start=$SECONDS
bash scripts/cargo-make.sh windows-odxctl
echo "25-windows-odxctl: $((SECONDS - start)) s"
