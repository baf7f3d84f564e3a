#!/usr/bin/env bash
# cargo-make, the project's entry point (Makefile.toml), at the version CI pins: installs it from
# crates.io (`cargo install --locked`, a source build: 4–8 minutes on 2 cores) into a per-user
# tool cache ($ODXFLT_TOOLS_DIR, default ~/.cache/odxflt/tools/cargo-make-VERSION) unless that
# exact version is already there, then runs `makers ARGS...` from the repository root. The cache
# is keyed by version, so a fresh machine (or a bumped pin) installs again and a machine that has
# it (a developer's, CI on the same machine) does not pay the build twice.
#   scripts/cargo-make.sh package          # = cargo make package
#   scripts/cargo-make.sh --list-all-steps
set -euo pipefail
cd "$(dirname "$0")/.."
version=0.37.24
tools=${ODXFLT_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/odxflt/tools}
prefix="$tools/cargo-make-$version"
makers="$prefix/bin/makers"
if ! "$makers" --version 2>/dev/null | grep -qx "cargo-make $version"; then
  start=$SECONDS
  echo "cargo-make: installing cargo-make $version into $prefix (cargo install --locked)"
  cargo install --quiet --locked --version "$version" --root "$prefix" \
    --target-dir "$tools/build" cargo-make
  "$makers" --version | grep -qx "cargo-make $version" || { echo "cargo-make: FAILED: $makers is not $version" >&2; exit 1; }
  echo "cargo-make: installed in $((SECONDS - start)) s"
fi
exec "$makers" --no-color --disable-check-for-updates "$@"
