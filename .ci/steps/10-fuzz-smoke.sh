#!/usr/bin/env bash
# Fuzz smoke: every odx-core fuzz target for a few seconds (FUZZ_SECONDS, default 3) from the
# committed seed corpus. Installs cargo-fuzz if missing; skips with a message only when no
# nightly toolchain is installed. Long runs: `cargo make fuzz` (docs/performance.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
FUZZ_SMOKE=1 FUZZ_SECONDS="${FUZZ_SECONDS:-3}" bash fuzz/run.sh
