#!/usr/bin/env bash
# The PowerShell a tester runs on the VM (install.ps1, uninstall.ps1, odx-vm-test.ps1) and the
# Windows tasks' scripts in Makefile.toml, parsed with tree-sitter's PowerShell grammar through
# cargo-make (`cargo make ps-syntax` → scripts/ps-syntax.sh; PyPI tree-sitter 0.26.1 and
# tree-sitter-powershell 0.26.4 in a venv under target/). A parse: nothing of it runs here.
set -euo pipefail
cd "$(dirname "$0")/../.."
start=$SECONDS
bash scripts/cargo-make.sh ps-syntax
echo "41-powershell-syntax: $((SECONDS - start)) s"
