"""Environment factories: "package.module:factory", called with keyword arguments typed by its signature.

`--env mypackage.envs:make --env-kwargs size=8 symbolic=true` calls
`make(size=8, symbolic=True)`: each "key=value" is converted to the type the
factory's signature gives the parameter (its annotation, else its default's
type): int, float, bool ("true"/"false", "1"/"0", "yes"/"no"), str, or None
("none"). A parameter with neither is given the value as a number where it
reads as one, else as a string. The pairs are part of the static
configuration (`StaticConfig.env_kwargs`), so config.json records them and
`--resume`, `pgjax.evaluate` and `pgjax.plot` call the factory the same way.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Sequence
from typing import Any

from pgjax.algo.env_api import error_line
from pgjax.algo.imports import import_object

_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def split_pairs(pairs: Sequence[str]) -> dict[str, str]:
    """{"key": "value"} from "key=value" strings.

    Raises:
      ValueError: a pair without "=", an empty or non-identifier key, or a key given twice.
    """
    kwargs: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = str(pair).partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ValueError(f"--env-kwargs takes key=value pairs (e.g. size=8), got {pair!r}")
        if key in kwargs:
            raise ValueError(f"--env-kwargs gives {key} twice; give it once")
        kwargs[key] = value
    return kwargs


def _base_type(kind: Any) -> tuple[Any, bool]:
    """(the type an annotation or type names, or None; whether it allows None): `int | None` -> (int, True)."""
    if isinstance(kind, str):  # a postponed annotation: "int", "int | None"
        names = [part.strip() for part in kind.split("|")]
        builtin = {"int": int, "float": float, "bool": bool, "str": str}
        return next((builtin[n] for n in names if n in builtin), None), "None" in names or "Optional" in kind
    args = typing.get_args(kind)
    if args and type(None) in args:
        others = [k for k in args if k is not type(None)]
        return (others[0] if len(others) == 1 else None), True
    return (kind if kind in (int, float, bool, str) else None), False


def _convert(value: str, kind: Any, key: str) -> Any:
    """`value` read as `kind` (a type or annotation; None: a number where it reads as one, else a string).

    Raises:
      ValueError: naming `key`, when the value does not read as the type.
    """
    kind, optional = _base_type(kind)
    word = value.strip().lower()
    if word == "none" and (optional or kind is None):
        return None
    try:
        if kind is bool:
            if word not in _TRUE + _FALSE:
                raise ValueError
            return word in _TRUE
        if kind is not None:
            return kind(value)
    except ValueError:
        raise ValueError(f"--env-kwargs {key}={value}: the factory takes {key} as {kind.__name__}") from None
    for number in (int, float):
        try:
            return number(value)
        except ValueError:
            pass
    return value


def typed_kwargs(factory: Any, pairs: Sequence[str], path: str) -> dict[str, Any]:
    """The keyword arguments "key=value" `pairs` give `factory`, typed by its signature.

    Raises:
      ValueError: one line: a malformed pair, a key the factory does not take (its
        parameters named), or a value that does not read as the parameter's type.
    """
    raw = split_pairs(pairs)
    if not raw:
        return {}
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        parameters = {}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    named = {name: p for name, p in parameters.items()
             if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)}
    kwargs = {}
    for key, value in raw.items():
        if key not in named and not takes_any:
            takes = ", ".join(named) or "no arguments"
            raise ValueError(f"the environment factory '{path}' takes no argument {key!r} (it takes {takes})")
        parameter = named.get(key)
        kind = None
        if parameter is not None:
            if parameter.annotation is not inspect.Parameter.empty:
                kind = parameter.annotation
            elif parameter.default not in (inspect.Parameter.empty, None):
                kind = type(parameter.default)
        kwargs[key] = _convert(value, kind, key)
    return kwargs


def call_factory(path: str, pairs: Sequence[str] = ()) -> Any:
    """What the factory "package.module:factory" returns when called with `pairs` ("key=value").

    An environment object stored there (not a class or function) is taken as it is (no pairs allowed).

    Raises:
      ValueError: one line: the factory cannot be imported or called, its arguments
        do not fit (`typed_kwargs`), or it failed (its exception's type and message).
    """
    factory = import_object(path, "environment factory")
    if not isinstance(factory, type) and callable(getattr(factory, "observation_space", None)):
        if pairs:
            raise ValueError(f"'{path}' names an environment object, not a factory: it takes no --env-kwargs")
        return factory
    if not callable(factory):
        raise ValueError(
            f"'{path}' names an object of type {type(factory).__name__}, not a factory: give a function (or "
            "class) that returns an environment or an (environment, env_params) pair"
        )
    kwargs = typed_kwargs(factory, pairs, path)
    shown = f"({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})" if kwargs else ""
    try:
        return factory(**kwargs)
    except Exception as error:
        raise ValueError(f"calling the environment factory '{path}{shown}' failed: {error_line(error)}") from error
    except BaseException as error:  # sys.exit or KeyboardInterrupt inside the factory: not pgjax's own exit or stop
        raise ValueError(f"calling the environment factory '{path}{shown}' failed: {_escaped(error)}") from None


def _escaped(error: BaseException) -> str:
    """What a factory's SystemExit or KeyboardInterrupt (or other BaseException) says, in words."""
    if isinstance(error, SystemExit):
        return f"it ended the process (sys.exit({error.code!r})); a factory must return, not exit"
    if isinstance(error, KeyboardInterrupt):
        return "it raised KeyboardInterrupt"
    return error_line(error)
