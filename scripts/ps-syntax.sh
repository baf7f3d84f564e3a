#!/usr/bin/env bash
# The PowerShell the project ships or runs on Windows, parsed on Linux (`cargo make ps-syntax`;
# CI: .ci/steps/41-powershell-syntax.sh): tests/vm/*.ps1 (install, uninstall, the VM test) and the
# PowerShell scripts of Makefile.toml's Windows tasks, with tree-sitter's PowerShell grammar
# (PyPI tree-sitter + tree-sitter-powershell, pinned, in a venv under target/tools/ps-venv).
# A parse, not a run: no PowerShell runs here. Fails on the first script with a syntax error.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/tools/ps-venv
want="tree-sitter==0.26.1 tree-sitter-powershell==0.26.4"
if ! "$venv/bin/python" -c 'import tree_sitter, tree_sitter_powershell' 2>/dev/null ||
   [ "$("$venv/bin/pip" freeze 2>/dev/null | grep -ciE '^tree-sitter(-powershell)?==(0\.26\.1|0\.26\.4)$')" -ne 2 ]; then
  python3 -m venv "$venv"
  # shellcheck disable=SC2086 # the two requirements
  "$venv/bin/pip" install --quiet --disable-pip-version-check $want
fi
"$venv/bin/python" scripts/ps-syntax.py tests/vm/*.ps1 --makefile Makefile.toml
