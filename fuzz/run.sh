#!/usr/bin/env bash
# Runs the odx-core fuzz targets one after another (one libFuzzer process at a time).
#
#   fuzz/run.sh [target ...]          all targets when none is named
#   FUZZ_SECONDS=60  time per target (default 10)
#   FUZZ_RUNS=10000000  stop after this many executions instead (overrides FUZZ_SECONDS)
#   FUZZ_SMOKE=1     CI mode: skip with a message (exit 0) when no nightly toolchain exists
#
# New corpus entries go to $CARGO_TARGET_DIR/fuzz-corpus/<target> (not the committed seeds in
# fuzz/corpus/<target>); crashes land in fuzz/artifacts/<target>/ and fail the run. Built without
# a sanitizer: odx-core forbids unsafe code, so ASan would only slow the run; overflow checks and
# debug assertions stay on (cargo-fuzz's default), so an arithmetic overflow is a crash.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  msg="fuzz: no nightly toolchain (rustup toolchain list); cargo-fuzz needs nightly"
  if [ "${FUZZ_SMOKE:-0}" = 1 ]; then
    echo "$msg -- SKIPPING the fuzz smoke"
    exit 0
  fi
  echo "$msg" >&2
  exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz from crates.io"
  cargo install --locked cargo-fuzz
fi

all_targets=(wire decide_read decide_write complete token_engine port filter_callbacks rules)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")

target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
cargo +nightly fuzz build -s none

if [ -n "${FUZZ_RUNS:-}" ]; then
  limit=(-runs="$FUZZ_RUNS")
else
  limit=(-max_total_time="${FUZZ_SECONDS:-10}")
fi

status=0
for t in "${targets[@]}"; do
  work="$target_dir/fuzz-corpus/$t"
  mkdir -p "$work" "fuzz/artifacts/$t" "fuzz/corpus/$t"
  log="$target_dir/fuzz-$t.log"
  start=$SECONDS
  if cargo +nightly fuzz run -s none "$t" "$work" "fuzz/corpus/$t" -- \
      "${limit[@]}" -max_len=4096 -print_final_stats=1 >"$log" 2>&1; then
    result=ok
  else
    result=FAILED
    status=1
  fi
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  printf 'fuzz %-13s %-6s %12s executions in %4ss  (log: %s)\n' \
    "$t" "$result" "$execs" "$((SECONDS - start))" "$log"
  if [ "$result" = FAILED ]; then
    grep -E 'panicked|SUMMARY|Test unit written|ERROR' "$log" | head -20 || true
  fi
done
exit $status
