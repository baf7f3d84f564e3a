#!/usr/bin/env bash
# cargo-make, the project's entry point, installed at the pinned version (scripts/cargo-make.sh:
# `cargo install --locked` from crates.io into a per-user tool cache keyed by version, 4–8
# minutes on 2 cores the first time on a machine). Later steps (25, 27, 40) run their Linux tasks
# through it, so Makefile.toml is executed, not only parsed. This step lists the tasks it parsed.
set -euo pipefail
cd "$(dirname "$0")/../.."
start=$SECONDS
bash scripts/cargo-make.sh --list-all-steps --output-format short-description
echo "cargo-make: $((SECONDS - start)) s"
