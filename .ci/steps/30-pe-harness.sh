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
# request path): GS-based processor-control-region access, control-register access, __chkstk
# stack probes. One exception: reading CR8 (`mov %cr8,%reg`), which is how the WDK's
# KeGetCurrentIrql compiles on x64; the harness emulates exactly that instruction
# (docs/pe-harness.md, "IRQL"). Writing CR8 (raising or lowering IRQL) stays forbidden.
objdump=$(command -v llvm-objdump-16 || command -v llvm-objdump || true)
if [ -n "$objdump" ]; then
  disassembly=$("$objdump" -d "$image")
  if grep -E '%gs:|%cr[0-9]+' <<<"$disassembly" | grep -vE '\bmov[q]?[[:space:]]+%cr8,[[:space:]]*%r[a-z0-9]+$' |
     grep -E '.' ||
     grep -E '__chkstk|swapgs|rdmsr|wrmsr|\bcli\b|\bsti\b' <<<"$disassembly"; then
    echo "pe-harness: FAILED: the image contains kernel-only instructions (above)" >&2
    exit 1
  fi
  reads=$(grep -cE '\bmov[q]?[[:space:]]+%cr8,[[:space:]]*%r' <<<"$disassembly" || true)
  echo "pe-harness: no GS/PCR access, control-register writes or stack probes in the image; $reads CR8 read(s) (KeGetCurrentIrql)"
else
  echo "pe-harness: llvm-objdump not found; instruction scan skipped"
fi

# The runs in release: the fault runs execute every scenario a few hundred times (twice for a
# scenario that configures nothing: as written and with the journal off), about 20 s in
# release against many minutes in a debug build; the tests below stay debug builds.
cargo build --quiet --release -p odx-pe-harness
cargo run --quiet --release -p odx-pe-harness -- "$@"
cargo test --quiet -p odx-pe-harness --test differential --test kernel_review --test storage_review
# Every failable kernel call failing once at each position, raised IRQLs, kernel-mode requests,
# foreign FsContext headers, journal records left pending (docs/pe-harness.md, "Faults"); every
# scenario, and again with the journal off.
cargo run --quiet --release -p odx-pe-harness -- --faults
echo "pe-harness: $((SECONDS - start)) s"
