"""pgjax's modules import each other without a cycle, and its layers import downward only.

Every `import` and `from ... import` statement counts as an edge: at module level, under
`if TYPE_CHECKING:` and inside functions alike (a late import hides a cycle, it does not break
it). `importlib.import_module("pgjax....")` with a literal name counts too. The layers are
`pgjax.algo`, then `pgjax.running`, then `pgjax.results`, then the entry layer (`pgjax.commands`,
and the `python -m` entry points `pgjax.train`, `pgjax.evaluate`, ...); each may import only those
before it. `pgjax/__init__.py`'s lazy `_EXPORTS` table is strings, not imports.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "pgjax"
# the entry layer: the commands package and the `python -m pgjax.<command>` entry points
ENTRY_POINTS = ("train", "evaluate", "plot", "compare", "bench", "gradients")
ENTRY_MODULES = {"pgjax.commands", *(f"pgjax.{name}" for name in ENTRY_POINTS)}
# Each layer and the layers it must not import.
FORBIDDEN = {
    "pgjax.algo": ("pgjax.running", "pgjax.results", *sorted(ENTRY_MODULES)),
    "pgjax.running": ("pgjax.results", *sorted(ENTRY_MODULES)),
    "pgjax.results": tuple(sorted(ENTRY_MODULES)),
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _resolve(module: str, path: Path, level: int, name: str | None) -> str:
    """The absolute name of a (possibly relative) `from` import's module."""
    if not level:
        return name or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _edges(module: str, path: Path, modules: set[str]) -> set[str]:
    """The pgjax modules that `module` imports, anywhere in its source."""
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, path, node.level, node.module)
            targets.add(base)
            # `from pgjax.algo import config` imports the module pgjax.algo.config
            targets.update(f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in modules)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            targets.add(node.args[0].value)
    return {t for t in targets if t in modules and t != module}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _edges(name, path, set(modules)) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _in(module: str, layer: str) -> bool:
    return module == layer or module.startswith(layer + ".")


def test_the_graph_sees_every_kind_of_import():
    graph = _graph()
    assert "pgjax.algo.config" in graph and "pgjax.results.tracking" in graph
    assert "pgjax.algo.config" in graph["pgjax.algo.trainer"]  # a module-level import
    assert "pgjax.running.devices" in graph["pgjax"]  # the package's own import; not its _EXPORTS strings
    assert "pgjax.algo.trainer" not in graph["pgjax"]


def test_function_level_and_type_checking_imports_are_edges(tmp_path):
    source = tmp_path / "pgjax" / "algo" / "x.py"
    source.parent.mkdir(parents=True)
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from pgjax.algo.config import Config\n"
        "def f():\n    from pgjax.running import grid\n    import pgjax.results.stats\n"
        "from . import policy\n"
    )
    modules = {"pgjax.algo.config", "pgjax.running.grid", "pgjax.running", "pgjax.results.stats",
               "pgjax.algo.policy", "pgjax.algo"}
    assert _edges("pgjax.algo.x", source, modules) == {
        "pgjax.algo.config", "pgjax.running", "pgjax.running.grid", "pgjax.results.stats", "pgjax.algo",
        "pgjax.algo.policy"}


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_of_pgjax_is_in_an_import_cycle():
    cycles = _cycles(_graph())
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_layers_import_downward_only():
    upward = [
        f"{module} imports {target}"
        for module, targets in _graph().items()
        for layer, forbidden in FORBIDDEN.items() if _in(module, layer)
        for target in sorted(targets) if any(_in(target, f) for f in forbidden)
    ]
    assert not upward, "; ".join(upward)


def test_the_config_module_imports_nothing_of_pgjax():
    assert _graph()["pgjax.algo.config"] == set()
