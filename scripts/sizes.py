"""List modules over 350 lines and functions over 60 lines (the project's size aims): `python scripts/sizes.py`."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

MAX_MODULE, MAX_FUNCTION = 350, 60


def oversized(root: Path) -> list[str]:
    rows = []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        n = len(text.splitlines())
        if n > MAX_MODULE:
            rows.append(f"{path}: module {n} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION:
                    rows.append(f"{path}:{node.lineno}: {node.name}() {length} lines")
    return rows


if __name__ == "__main__":
    for row in oversized(Path(sys.argv[1] if len(sys.argv) > 1 else "affectkit")):
        print(row)
