#!/usr/bin/env bash
# Panic-freedom check for odx-core's request path in a release build.
#
# Builds scripts/panic-probe (a no_std cdylib whose extern "C" entry points run the control-code
# test, pre-operation (policy, validation, verdict, buffer rewrite, statistics), post-operation
# (completion mapping), decide_read/decide_write, complete_read/complete_write, every wire parser
# and the port message parser on inputs behind raw pointers) with panic = "abort", LTO, one
# codegen unit, opt-level 3 and overflow checks on. After LTO the object holds only code those
# paths reach, so any panic entry point in it (core::panicking::*, bounds/slice-index failures,
# unwrap/expect failures, the panic handler) is a reachable panic site. Fails listing each symbol
# and every instruction that calls or jumps to one, with the function it sits in.
set -euo pipefail
cd "$(dirname "$0")/.."

probe=scripts/panic-probe
target_dir="${CARGO_TARGET_DIR:-$PWD/target}/panic-probe"
CARGO_TARGET_DIR="$target_dir" cargo build --quiet --release --manifest-path "$probe/Cargo.toml"
so="$target_dir/release/libodx_panic_probe.so"

for tool in nm objdump; do
  command -v "$tool" >/dev/null || { echo "panic-check: $tool not found (apt-get install binutils)" >&2; exit 2; }
done

entries=$(nm --defined-only "$so" | grep -c ' T odx_probe_' || true)
if [ "$entries" -lt 6 ]; then
  echo "panic-check: expected 6 odx_probe_* entry points in $so, found $entries" >&2
  exit 2
fi

pattern='core::panicking|panic_bounds_check|panic_fmt|panic_nounwind|slice_(start_|end_)?index_.*fail|slice_index_fail|slice_error_fail|str_index_overflow_fail|unwrap_failed|expect_failed|assert_failed|rust_begin_unwind|panic_const|odx_panic_probe::on_panic|core::option::unwrap|core::result::unwrap|copy_from_slice::len_mismatch|index_out_of_bounds'

symbols=$(nm -C "$so" | grep -E "$pattern" || true)
calls=$(objdump -d --no-show-raw-insn -C "$so" | awk -v pat="$pattern" '
  /^[0-9a-f]+ <.*>:$/ { fn = $0; sub(/^[0-9a-f]+ </, "", fn); sub(/>:$/, "", fn); next }
  /(call|jmp)/ && $0 ~ pat { line = $0; sub(/^ +/, "", line); print "  in " fn ":\n    " line }')

if [ -n "$symbols" ] || [ -n "$calls" ]; then
  echo "panic-check: FAILED: odx-core's request path can panic (release, LTO, panic=abort)"
  echo "panic symbols in the probe object:"
  echo "${symbols:-  (none by name)}" | sed 's/^/  /'
  echo "call sites:"
  echo "${calls:-  (none found by objdump)}"
  exit 1
fi

fns=$(nm -C --defined-only "$so" | grep -c ' [tT] odx_' || true)
echo "panic-check: ok: $entries entry points, $fns functions of the request path after LTO, no panic call sites ($so)"
