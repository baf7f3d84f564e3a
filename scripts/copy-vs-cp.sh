#!/usr/bin/env bash
# odxctl copy (the copy engine's offload algorithm through the simulated stack, host-files store)
# against cp of the same file, in the same run, under /usr/bin/time -v.
#
#   [ROUNDS=5] scripts/copy-vs-cp.sh [SIZE_MIB]        (default 1024)
#
# ROUNDS rounds, the order alternating, each run starting after a sync. Prints the median wall
# time and the peak RSS of each, the ratio of the medians odxctl/cp (goal <= 1.05), checks both
# destinations are byte-identical with cmp, then runs odxctl copy on a 64 MiB and a SIZE_MIB file
# and prints both peak RSS figures (goal <= 64 MiB and flat). Uses the release odxctl from
# $CARGO_TARGET_DIR (default ./target), building it if needed. Temporary files are removed.
set -euo pipefail

SIZE_MIB=${1:-1024}
ROUNDS=${ROUNDS:-5}
case $SIZE_MIB in '' | *[!0-9]*)
    echo "usage: $0 [SIZE_MIB]" >&2
    exit 2
    ;;
esac

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
ODXCTL=$TARGET/release/odxctl

if [[ ! -x /usr/bin/time ]]; then
    echo "installing GNU time (apt-get install time)" >&2
    SUDO=$( ((EUID == 0)) || echo sudo)
    $SUDO apt-get install -y time >/dev/null
fi
(cd "$ROOT" && cargo build --release -p odxctl --quiet)

TMP=$(mktemp -d "${TMPDIR:-/tmp}/copy-vs-cp.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

# measure NAME CMD... : runs CMD under time -v, sets WALL_<NAME> (s) and RSS_<NAME> (KiB).
measure() {
    local name=$1
    shift
    local log=$TMP/$name.time
    /usr/bin/time -v -o "$log" "$@" >"$TMP/$name.out"
    local wall rss
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {
        n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }' "$log")
    rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$log")
    printf -v "WALL_$name" '%s' "$wall"
    printf -v "RSS_$name" '%s' "$rss"
}

mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }

echo "creating $SIZE_MIB MiB of random data in $TMP"
head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom >"$TMP/src.bin"
sync

# Alternate the order each round and start every run with no dirty pages (sync, untimed):
# whichever copy runs second otherwise pays for the first one's writeback, or profits from it.
ODX_WALLS=()
CP_WALLS=()
for ((round = 1; round <= ROUNDS; round++)); do
    order=(odx cp)
    ((round % 2 == 0)) && order=(cp odx)
    for who in "${order[@]}"; do
        rm -f "$TMP/$who.bin"
        sync
        if [[ $who == odx ]]; then
            measure odx "$ODXCTL" copy "$TMP/src.bin" "$TMP/odx.bin"
            ODX_WALLS+=("$WALL_odx")
            ODX_RSS=$RSS_odx
        else
            measure cp cp "$TMP/src.bin" "$TMP/cp.bin"
            CP_WALLS+=("$WALL_cp")
            CP_RSS=$RSS_cp
        fi
    done
    cmp "$TMP/src.bin" "$TMP/odx.bin"
    cmp "$TMP/src.bin" "$TMP/cp.bin"
    printf 'round %d (%s first): odxctl %.2f s, cp %.2f s\n' "$round" "${order[0]}" "$WALL_odx" "$WALL_cp"
done

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
ODX_MED=$(median "${ODX_WALLS[@]}")
CP_MED=$(median "${CP_WALLS[@]}")

echo
echo "== $SIZE_MIB MiB: odxctl copy vs cp (same run, median of $ROUNDS rounds) =="
printf '%-14s wall %8.2f s   peak RSS %s\n' "odxctl copy" "$ODX_MED" "$(mib "$ODX_RSS")"
printf '%-14s wall %8.2f s   peak RSS %s\n' "cp" "$CP_MED" "$(mib "$CP_RSS")"
awk -v a="$ODX_MED" -v b="$CP_MED" 'BEGIN {
    if (b <= 0) { print "wall ratio odxctl/cp: n/a (cp took < 10 ms)"; exit }
    r = a / b; printf "wall ratio odxctl/cp: %.3f (goal <= 1.05: %s)\n", r, (r <= 1.05 ? "met" : "missed") }'
echo "cmp: both destinations byte-identical to the source"
grep -E 'offloaded|data movement' "$TMP/odx.out" | sed 's/^ */  odxctl: /' || true
rm -f "$TMP/odx.bin" "$TMP/cp.bin"

echo
echo "== peak RSS of odxctl copy: 64 MiB vs $SIZE_MIB MiB =="
head -c $((64 * 1024 * 1024)) /dev/urandom >"$TMP/small.bin"
sync
measure small "$ODXCTL" copy "$TMP/small.bin" "$TMP/small.out.bin"
cmp "$TMP/small.bin" "$TMP/small.out.bin"
sync
measure big "$ODXCTL" copy "$TMP/src.bin" "$TMP/big.out.bin"
cmp "$TMP/src.bin" "$TMP/big.out.bin"
printf '64 MiB:   peak RSS %s\n' "$(mib "$RSS_small")"
printf '%s MiB: peak RSS %s\n' "$SIZE_MIB" "$(mib "$RSS_big")"
awk -v s="$RSS_small" -v b="$RSS_big" 'BEGIN {
    ok = (s <= 65536 && b <= 65536)
    printf "goal <= 64 MiB: %s; growth %+.1f MiB (%s)\n", (ok ? "met" : "missed"),
        (b - s) / 1024, ((b - s) <= 1024 ? "flat" : "not flat") }'
