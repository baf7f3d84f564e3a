#!/usr/bin/env bash
# Fails when odx-core's request path contains a panic call site in a release (LTO) build.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/panic-check.sh
