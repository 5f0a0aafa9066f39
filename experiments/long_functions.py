"""The functions of pgjax longer than a limit (default 60 lines), longest first: `python experiments/long_functions.py`.

    python experiments/long_functions.py [--limit 60] [PACKAGE_DIR ...]   # default: every folder of pgjax/

A function's length is its source lines from `def` (or its first decorator) to its
last line, its docstring left out (`ast`'s lineno..end_lineno, less the docstring's
lines); a nested function counts in its parent too. `--with-docstrings` counts them
in. A survey to read, not a rule: no test holds pgjax to the limit.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def function_length(node: ast.FunctionDef | ast.AsyncFunctionDef, docstrings: bool = False) -> int:
    """Source lines of a function, from its first decorator to its last line, without its docstring's lines."""
    start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    length = node.end_lineno - start + 1
    first = node.body[0]
    if not docstrings and isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(
            first.value.value, str):
        length -= first.end_lineno - first.lineno + 1
    return length


def long_functions(folder: Path, limit: int = 60, docstrings: bool = False) -> list[tuple[int, str]]:
    """(length, "path:line name") of every function in `folder`'s modules longer than `limit` lines."""
    found = []
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = function_length(node, docstrings)
                if length > limit:
                    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
                    found.append((length, f"{shown}:{node.lineno} {node.name}"))
    return sorted(found, reverse=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=Path, default=[ROOT / "pgjax"])
    parser.add_argument("--limit", type=int, default=60)
    parser.add_argument("--with-docstrings", action="store_true", help="count docstrings' lines too")
    args = parser.parse_args()
    for folder in args.folders:
        for length, where in long_functions(folder.resolve(), args.limit, args.with_docstrings):
            print(f"{length:4d}  {where}")


if __name__ == "__main__":
    main()
