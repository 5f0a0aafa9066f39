"""`import_object("package.module:name")`: what `--env`, `StaticConfig.network`, `.weighting` and `.step_loss`
strings of that form name."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any


def names_code(name: Any) -> bool:
    """Whether a setting's value names code to import: a "package.module:name" string.

    A gymnax id ("CartPole-v1") or a registered network ("mlp") names none: building it imports nothing.
    """
    return isinstance(name, str) and ":" in name


def well_formed(path: Any) -> bool:
    """Whether `path` is "package.module:name": a module and a name, one ":" between them."""
    module_name, _, attr = path.partition(":") if isinstance(path, str) else ("", "", "")
    return bool(module_name and attr and ":" not in attr)


def import_object(path: str, what: str) -> Any:
    """The object that "package.module:name" names (name may be dotted: "module:Class.attr").

    Args:
      path: "package.module:name"; the module must be importable (its folder on
        `sys.path`: `python -m` puts the current folder there, PYTHONPATH adds others).
      what: what the object is for, used in messages (e.g. "environment factory").

    Raises:
      ValueError: a malformed path, a module that cannot be imported (the
        message says why), or a missing attribute.
    """
    if not well_formed(path):
        raise ValueError(f"the {what} '{path}' is not of the form package.module:name")
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name is not None and (module_name + ".").startswith(error.name + "."):
            raise ValueError(
                f"cannot import module '{module_name}' of the {what} '{path}': run from the folder that holds "
                "it or add that folder to PYTHONPATH"
            ) from None
        raise ValueError(f"importing '{module_name}' for the {what} '{path}' failed: {error}") from error
    except Exception as error:
        raise ValueError(
            f"importing '{module_name}' for the {what} '{path}' failed: {type(error).__name__}: {error}"
        ) from error
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"module '{module_name}' has no attribute '{attr}' (the {what} '{path}' names)")
        obj = getattr(obj, part)
    return obj


def import_callable(path: str, what: str) -> Any:
    """`import_object(path, what)`, which must be callable (a function, a class).

    Raises:
      ValueError: as `import_object`'s, or an object that is not callable (named with its type).
    """
    found = import_object(path, what)
    if not callable(found):
        raise ValueError(f"'{path}' names an object of type {type(found).__name__}, not a {what}")
    return found


def one_line_errors(function: Callable, what: str) -> Callable:
    """`function` (code of one's own, called while pgjax traces), whose exceptions become one line.

    Raises (when called):
      ValueError: "the {what} NAME failed: TYPE: first line of its message"; pgjax's own ValueErrors pass as they are.
    """
    name = getattr(function, "__qualname__", type(function).__name__)

    @functools.wraps(function)
    def called(*args: Any) -> Any:
        try:
            return function(*args)
        except ValueError:
            raise
        except Exception as error:
            message = (str(error).strip().splitlines() or [""])[0]
            raise ValueError(f"the {what} {name} failed: {type(error).__name__}: {message}") from error

    return called


def own_functions(static: Any, weighting: Callable | None = None, step_loss: Callable | None = None
                  ) -> tuple[Callable | None, Callable | None]:
    """(weighting, step loss) of one's own: those given, else those a `pgjax.algo.config.StaticConfig` names
    ("package.module:name", imported), each wrapped to fail in one line (`one_line_errors`); None for none.

    Raises:
      ValueError: a named function that cannot be imported or is not callable (`import_callable`).
    """
    if weighting is None and static.weighting:
        weighting = import_callable(static.weighting, "weighting function")
    if step_loss is None and static.step_loss:
        step_loss = import_callable(static.step_loss, "step loss function")
    return (weighting and one_line_errors(weighting, "weighting"),
            step_loss and one_line_errors(step_loss, "step loss"))
