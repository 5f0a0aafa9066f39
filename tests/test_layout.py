"""pgjax's layout: the commands in one package, the package's top level only their `python -m` entry
points, and no module that only re-exports another's names.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pgjax"
COMMANDS = ("train", "evaluate", "plot", "compare", "bench", "gradients")


def _assigns_sys_modules(tree: ast.AST) -> bool:
    """Whether the module puts something in `sys.modules` under its own or a pgjax name (a module standing in
    for another). Another package's own module objects placed under their names (gymnax's, deferred by
    `pgjax.algo.suites.gymnax_builtins`) stand in for nothing."""
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        for target in targets:
            if (isinstance(target, ast.Subscript) and isinstance(target.value, ast.Attribute)
                    and target.value.attr == "modules" and isinstance(target.value.value, ast.Name)
                    and target.value.value.id == "sys"):
                key = target.slice
                if (isinstance(key, ast.Name) and key.id == "__name__") or (
                        isinstance(key, ast.Constant) and str(key.value).startswith("pgjax")):
                    return True
    return False


def _only_reexports(tree: ast.Module) -> bool:
    """Whether a module's body is only imports of pgjax (with `__all__`, a docstring, `__future__` imports).

    A package's `__init__.py` with only its docstring holds no names, and re-exports none.
    """
    body = [node for node in tree.body if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))]
    imports_pgjax = False
    for node in body:
        if isinstance(node, ast.ImportFrom):
            imports_pgjax |= (node.module or "").startswith("pgjax") or node.level > 0
        elif isinstance(node, ast.Import):
            imports_pgjax |= any(alias.name.startswith("pgjax") for alias in node.names)
        elif not (isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)) and all(
                isinstance(t, ast.Name) and t.id == "__all__"
                for t in (node.targets if isinstance(node, ast.Assign) else [node.target]))):
            return False
    return imports_pgjax


def test_the_reexport_check_finds_a_facade_and_passes_a_module():
    facade = ast.parse('"""Old name."""\nfrom pgjax.results.random_policy import *\n__all__ = ["x"]\n')
    docstring_only = ast.parse('"""A package."""\n')
    module = ast.parse("from pgjax.results import stats\n\ndef f():\n    return stats\n")
    assert _only_reexports(facade) and not _only_reexports(docstring_only) and not _only_reexports(module)
    assert _assigns_sys_modules(ast.parse("import sys\nimport pgjax.x\nsys.modules[__name__] = pgjax.x\n"))
    assert _assigns_sys_modules(ast.parse("import sys\nsys.modules['pgjax.old'] = sys.modules[__name__]\n"))
    assert not _assigns_sys_modules(module)
    assert not _assigns_sys_modules(ast.parse("import sys\nfor name in NAMES:\n    sys.modules[name] = make(name)\n"))


def test_the_top_level_holds_only_the_package_and_the_entry_points():
    assert sorted(path.name for path in PACKAGE.glob("*.py")) == sorted(
        ["__init__.py", *(f"{command}.py" for command in COMMANDS)])


def test_each_entry_point_only_runs_its_command():
    for command in COMMANDS:
        assert (PACKAGE / "commands" / f"{command}.py").is_file()
        tree = ast.parse((PACKAGE / f"{command}.py").read_text())
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        assert imported == {"runpy"} and not any(isinstance(node, ast.ImportFrom) for node in ast.walk(tree))
        runs = [ast.literal_eval(node.args[0]) for node in ast.walk(tree)
                if isinstance(node, ast.Call) and ast.unparse(node.func) == "runpy.run_module"]
        assert runs == [f"pgjax.commands.{command}"], command


def test_no_module_only_reexports():
    facades = [str(path.relative_to(ROOT)) for path in sorted(PACKAGE.rglob("*.py"))
               if _only_reexports(tree := ast.parse(path.read_text())) or _assigns_sys_modules(tree)]
    assert not facades, "modules that only re-export (import from their names' home instead): " + ", ".join(facades)


def test_the_reference_algorithm_imports_nothing_of_the_fast_paths():
    """`pgjax.algo.pieces` is the one table that chooses a fast path: the trainer and the reference pieces
    never import `pgjax.algo.fast`, and no reference piece reads a `FastPaths` switch."""
    reference = ("config", "envs", "policy", "rollout", "weights", "loss", "trainer", "presets", "validation")
    for name in reference:
        tree = ast.parse((PACKAGE / "algo" / f"{name}.py").read_text())
        imported = {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)} | {
            alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        assert not any(module.startswith("pgjax.algo.fast") for module in imported), (name, imported)
        switches = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)} & {
            "fold_runs", "blocked_gradient", "feature_major_dense", "inverse_cdf_sampling", "im2col_convolution",
            "run_major_buffers"}
        assert not switches, (name, switches)
