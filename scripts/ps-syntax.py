"""Parses PowerShell scripts with tree-sitter's PowerShell grammar and fails on any syntax error.

Usage: ps-syntax.py FILE.ps1... [--makefile Makefile.toml]
With --makefile, the `script` of every task whose script_runner is powershell is checked too.
Prints one line per error (file:line:column and the line) and one line per script; exits 1 if any
script has an error. The grammar is tree-sitter-powershell's, not PowerShell's own parser (none
runs on this machine): it rejects a few valid forms, so the scripts avoid them (an argument that
starts with `--` is quoted; a command argument list is not written as `a, b`).
"""

import sys
import tomllib

import tree_sitter
import tree_sitter_powershell


def errors(parser, source):
    found = []

    def walk(node):
        if node.is_error or node.is_missing:
            found.append(node)
            return
        for child in node.children:
            walk(child)

    walk(parser.parse(source).root_node)
    return found


def main(argv):
    scripts = []
    args = iter(argv)
    for arg in args:
        if arg == "--makefile":
            path = next(args)
            with open(path, "rb") as f:
                tasks = tomllib.load(f).get("tasks", {})
            for name, task in tasks.items():
                if task.get("script_runner") == "powershell" and "script" in task:
                    scripts.append((f"{path} [tasks.{name}]", task["script"].encode()))
        else:
            with open(arg, "rb") as f:
                scripts.append((arg, f.read()))
    parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))
    bad = 0
    for name, source in scripts:
        found = errors(parser, source)
        lines = source.decode("utf-8", "replace").splitlines()
        for node in found:
            row, col = node.start_point
            what = f"missing {node.type}" if node.is_missing else "syntax error"
            text = lines[row].strip() if row < len(lines) else ""
            print(f"{name}:{row + 1}:{col + 1}: {what}: {text}")
        print(f"{name}: {'SYNTAX ERRORS' if found else 'ok'}")
        bad += bool(found)
    print(f"ps-syntax: {len(scripts) - bad} passed, {bad} failed")
    return 1 if bad or not scripts else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
