#!/usr/bin/env bash
# Instructions odxflt.sys itself executes per offload request, counted under
# valgrind --tool=callgrind while the PE harness drives the shipped image (deterministic).
#
#   scripts/callgrind-image.sh                 # the image of scripts/cross-build-driver.sh
#   scripts/callgrind-image.sh --image PATH    # another build (e.g. an older commit's), same harness
#
# What is counted: only code outside every ELF object (callgrind's "???" object: the PE image
# the harness maps), and only while the harness is inside Driver::fs_control_between (one
# request: pre-operation, the layer below, post-operation). The mock kernel's and the
# simulator's instructions are not counted; the image's calls into them are (the call, its
# argument set-up, everything but the callee's body). Each configuration runs one offload read
# and then N1 or N2 forwarded 4 KiB offload writes; the difference divided by N2 - N1 is one
# forwarded write's pre- plus post-operation, with load, setup and the read cancelled exactly.
#
# The image reads `mov r64, cr8` (KeGetCurrentIrql); valgrind cannot decode it and raises
# SIGILL, which the harness's IRQL emulation handles as it handles the SIGSEGV of a native run.
# Needs valgrind; the harness is built here (release). An image older than the journal ignores
# [volume] journal (all its rows are then the same configuration); the harness's verdict on the
# scenarios is printed but does not affect the count.
set -euo pipefail
cd "$(dirname "$0")/.."

image=target/x86_64-pc-windows-msvc/release/odxflt.sys
while [ $# -gt 0 ]; do
  case "$1" in
    --image) image=$2; shift 2 ;;
    *) echo "usage: $0 [--image PATH]" >&2; exit 2 ;;
  esac
done
command -v valgrind >/dev/null || { echo "callgrind-image: valgrind not found (apt-get install -y valgrind)" >&2; exit 2; }
[ -f "$image" ] || { echo "callgrind-image: $image not found (run scripts/cross-build-driver.sh)" >&2; exit 2; }

cargo build --quiet --release -p odx-pe-harness
harness=target/release/odx-pe-harness

n1=10
n2=30
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# scenario NAME N VOLUME_TOML RULE_TEXT -> a directory with one scenario
scenario() {
  local dir="$out/$1.$2"
  mkdir -p "$dir"
  {
    echo "description = \"callgrind-image: one offload read, then $2 forwarded 4 KiB offload writes ($1)\""
    [ -n "$4" ] && printf '\n[[rule]]\ntext = "%s"\n' "$4"
    [ -n "$3" ] && printf '\n[volume]\n%s\n' "$3"
    printf '\n[[file]]\nname = "src"\nsize = 1048576\n\n[[file]]\nname = "dst"\nsize = 1048576\ncontent = "zero"\n'
    printf '\n[[step]]\nop = "read"\nfile = "src"\nlength = 1048576\ntoken = "t"\nexpect = "STATUS_SUCCESS"\nexpect_length = 1048576\nexpect_flags = 0\n'
    for ((i = 0; i < $2; i++)); do
      printf '\n[[step]]\nop = "write"\nfile = "dst"\noffset = %d\nlength = 4096\ntransfer_offset = %d\ntoken = "t"\nexpect = "STATUS_SUCCESS"\nexpect_length = 4096\n' $((i * 4096)) $((i * 4096))
    done
  } > "$dir/requests.toml"
  echo "$dir"
}

# image_ir DIR -> self Ir of the image's code while a request is in flight
image_ir() {
  local cg="$out/cg.$(basename "$1")"
  valgrind --tool=callgrind --toggle-collect='*fs_control_between*' --compress-strings=no \
    --compress-pos=no --callgrind-out-file="$cg" "$harness" --image "$image" --scenarios "$1" --as-written \
    > "$cg.log" 2>&1 || true
  grep -q 'scenarios identical\|DIFFERENT' "$cg.log" || { echo "callgrind-image: the harness did not finish:" >&2; tail -5 "$cg.log" >&2; exit 1; }
  # Self-cost lines follow a position; the line after `calls=` is a call's inclusive cost.
  local ir
  ir=$(awk '/^ob=/ { ob = substr($0, 4); next }
       /^calls=/ { skip = 1; next }
       /^[0-9]/ { if (skip) { skip = 0; next } if (ob == "???") sum += $NF }
       END { print sum + 0 }' "$cg")
  # Nothing counted: the toggle never fired (the harness function renamed or inlined) or the
  # image ran nowhere; a figure of 0 would be a lie.
  [ "$ir" -gt 0 ] || { echo "callgrind-image: no image instruction counted in $1 (is Driver::fs_control_between still a function?)" >&2; exit 1; }
  echo "$ir"
}

printf '%-34s %10s  %s\n' configuration "Ir/request" "harness verdict (N2 run)"
row() { # name volume_toml rule_text
  local a b
  a=$(image_ir "$(scenario "$1" $n1 "$2" "$3")")
  b=$(image_ir "$(scenario "$1" $n2 "$2" "$3")")
  local verdict
  verdict=$(grep -o '[0-9]* scenarios identical to the simulator\(, [0-9]* DIFFERENT\)\?' "$out/cg.$1.$n2.log" | head -1)
  printf '%-34s %10s  %s\n' "$1" "$(awk -v a="$a" -v b="$b" -v n=$((n2 - n1)) 'BEGIN { printf "%.1f", (b - a) / n }')" "$verdict"
}
row "no rules, journal off" 'journal = "off"' ""
row "no rules, journal (default)" "" ""
row "no rules, journal named" 'journal = "named"' ""
row "one process rule, journal off" 'journal = "off"' "veto process=robocopy.exe"
echo "(valgrind --tool=callgrind, Ir inside $(basename "$image") per forwarded 4 KiB offload write, pre- + post-operation, ($n2 - $n1) requests)"
