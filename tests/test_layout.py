"""pgjax's layout: the commands in one package, no module over about 400 lines, no function over about 60.

A function's length is its lines from `def` (or its first decorator) to its end, its
docstring left out (`experiments/long_functions.py` lists them, and with
`--with-docstrings` counts docstrings in). The limits hold for every layer (algorithm,
commands, running, results) and the top of the package.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pgjax"
FUNCTION_LIMIT = 60
MODULE_LIMIT = 400
HELD = ("algo", "commands", "running", "results")  # the layers held to FUNCTION_LIMIT
COMMANDS = ("train", "evaluate", "plot", "compare", "bench")

sys.path.insert(0, str(ROOT / "experiments"))
from long_functions import long_functions  # noqa: E402


def test_the_function_counter_leaves_the_docstring_out(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(FUNCTION_LIMIT - 1))
    (tmp_path / "m.py").write_text(f'def f():\n    """A\n    docstring.\n    """\n{body}\n\n\ndef g():\n{body}\n'
                                   "    return 0\n")
    assert [where.split()[-1] for _, where in long_functions(tmp_path, FUNCTION_LIMIT)] == ["g"]


def test_no_function_is_over_the_limit():
    long = [f"{where} ({length} lines)" for layer in HELD
            for length, where in long_functions(PACKAGE / layer, FUNCTION_LIMIT)]
    assert not long, f"functions over {FUNCTION_LIMIT} lines: " + "; ".join(long)


def test_no_module_is_over_the_limit():
    paths = [*PACKAGE.glob("*.py"), *(path for layer in HELD for path in (PACKAGE / layer).rglob("*.py"))]
    long = [f"{path.relative_to(ROOT)} ({n} lines)" for path in sorted(paths)
            if (n := len(path.read_text().splitlines())) > MODULE_LIMIT]
    assert not long, f"modules over {MODULE_LIMIT} lines: " + "; ".join(long)


def test_the_commands_are_one_package_and_the_old_paths_are_shims():
    for command in COMMANDS:
        assert (PACKAGE / "commands" / f"{command}.py").is_file()
    for old in (*COMMANDS, "cli", "options", "grid_settings", "scripts", "checks"):
        tree = ast.parse((PACKAGE / f"{old}.py").read_text())
        imported = {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)} | {
            alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        assert all(name in ("sys", "runpy") or name.startswith("pgjax.commands") for name in imported), (old, imported)


def test_the_old_paths_are_the_new_modules():
    import pgjax.cli
    import pgjax.commands.options
    import pgjax.commands.shared
    import pgjax.options

    assert pgjax.cli is pgjax.commands.shared and pgjax.options is pgjax.commands.options
    from pgjax.cli import run_command, version  # noqa: F401  (names users import from the old paths)
    from pgjax.options import RunOptions, train_arguments  # noqa: F401


def test_the_fast_package_lists_the_names_of_its_seam():
    """`pgjax.algo.fast` names the seam's functions without importing it (JAX): the two lists are one."""
    from pgjax.algo import fast
    from pgjax.algo.fast import select

    assert fast.__all__ == select.__all__
    assert all(getattr(fast, name) is getattr(select, name) for name in fast.__all__)
