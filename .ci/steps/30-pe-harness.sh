#!/usr/bin/env bash
# The shipped image, executed: odx-pe-harness loads target/x86_64-pc-windows-msvc/release/odxflt.sys
# (left by 20-cross-build-driver.sh) into this Linux process with a mock Filter Manager, runs every
# tests/scenarios/*.toml through it and through the simulator, and fails on any difference not
# documented in docs/pe-harness.md, on a leak, or on misuse of the mock kernel.
# Skips (with a message) only when the image was not built.
set -euo pipefail
cd "$(dirname "$0")/../.."
start=$SECONDS
image=target/x86_64-pc-windows-msvc/release/odxflt.sys
if [ ! -f "$image" ]; then
  echo "pe-harness: SKIPPED: $image was not built (scripts/cross-build-driver.sh)"
  exit 0
fi

# Instructions that cannot run in a user-mode process (and that odxflt must not need on its
# request path): GS-based processor-control-region access, control-register reads (CR8 = IRQL),
# __chkstk stack probes. docs/pe-harness.md ("What must not be in the image").
objdump=$(command -v llvm-objdump-16 || command -v llvm-objdump || true)
if [ -n "$objdump" ]; then
  if "$objdump" -d "$image" | grep -E '%gs:|%cr[0-9]|__chkstk|swapgs|rdmsr|wrmsr|\bcli\b|\bsti\b'; then
    echo "pe-harness: FAILED: the image contains kernel-only instructions (above)" >&2
    exit 1
  fi
  echo "pe-harness: no GS/PCR access, control-register access or stack probes in the image"
else
  echo "pe-harness: llvm-objdump not found; instruction scan skipped"
fi

cargo build --quiet -p odx-pe-harness
cargo run --quiet -p odx-pe-harness -- "$@"
cargo test --quiet -p odx-pe-harness --test differential
echo "pe-harness: $((SECONDS - start)) s"
