"""The functions of pgjax longer than a limit (default 60 lines), longest first: `python experiments/long_functions.py`.

    python experiments/long_functions.py [--limit 60] [PACKAGE_DIR ...]   # default: every folder of pgjax/

A function's length is its source lines from `def` to its last line, decorators and
docstring included (`ast`'s lineno..end_lineno); a nested function counts in its
parent too. tests/test_layout.py holds the commands, running and results layers to it.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def long_functions(folder: Path, limit: int = 60) -> list[tuple[int, str]]:
    """(length, "path:line name") of every function in `folder`'s modules longer than `limit` lines."""
    found = []
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                length = node.end_lineno - start + 1
                if length > limit:
                    found.append((length, f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"))
    return sorted(found, reverse=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=Path, default=[ROOT / "pgjax"])
    parser.add_argument("--limit", type=int, default=60)
    args = parser.parse_args()
    for folder in args.folders:
        for length, where in long_functions(folder.resolve(), args.limit):
            print(f"{length:4d}  {where}")


if __name__ == "__main__":
    main()
