#!/usr/bin/env bash
# The test-signed driver package a tester copies to a VM, through cargo-make (`cargo make
# package`: cross-build-driver → windows-odxctl → scripts/package.sh): target/package/odxflt with
# the stamped INF, odxflt.sys and odxflt.cat signed by osslsigncode with a test certificate made
# here, install.ps1, uninstall.ps1, the VM test and README.txt. Fails unless osslsigncode verifies
# both signatures and finds the image in the catalog, and the catalog parses back to exactly the
# files' hashes (docs/driver.md, "Building, signing and deploying on Windows"). Installs
# osslsigncode and openssl if missing; ODXFLT_NO_APT=1 never calls apt-get.
set -euo pipefail
cd "$(dirname "$0")/../.."
start=$SECONDS
bash scripts/cargo-make.sh package
echo "40-package: $((SECONDS - start)) s"
