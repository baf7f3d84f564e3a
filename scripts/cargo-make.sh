#!/usr/bin/env bash
# cargo-make, the project's entry point (Makefile.toml), at the version CI pins: installs it from
# crates.io (`cargo install --locked`, a source build: about 4 minutes on 2 cores) into
# target/tools/cargo-make unless that exact version is already there, then runs
# `makers ARGS...` from the repository root. Nothing is cached outside target/.
#   scripts/cargo-make.sh package          # = cargo make package
#   scripts/cargo-make.sh --list-all-steps
set -euo pipefail
cd "$(dirname "$0")/.."
version=0.37.24
prefix=target/tools/cargo-make
makers="$prefix/bin/makers"
if ! "$makers" --version 2>/dev/null | grep -qx "cargo-make $version"; then
  start=$SECONDS
  echo "cargo-make: installing cargo-make $version into $prefix (cargo install --locked)"
  cargo install --quiet --locked --version "$version" --root "$prefix" \
    --target-dir target/tools/build cargo-make
  "$makers" --version | grep -qx "cargo-make $version" || { echo "cargo-make: FAILED: $makers is not $version" >&2; exit 1; }
  echo "cargo-make: installed in $((SECONDS - start)) s"
fi
exec "$makers" --no-color --disable-check-for-updates "$@"
