"""The adapter of the suite "gymnax" (`--env gymnax/NAME`, the same environment as the bare id `--env NAME`).

gymnax's environments have pgjax's shape already, so the adapter only builds
them, importing the named environment's module alone
(`pgjax.algo.suites.gymnax_builtins`), and gives `--env-kwargs` to its class,
typed by the class's signature: `--env gymnax/Catch-bsuite --env-kwargs rows=8
columns=4` builds `Catch(rows=8, columns=4)`, as `gymnax.make("Catch-bsuite",
rows=8, columns=4)` would.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pgjax.algo.envs import error_line, typed_kwargs
from pgjax.algo.suites.gymnax_builtins import BUILTIN_ENVIRONMENTS, environment_class, make_environment, registered_ids


def names() -> tuple[str, ...]:
    """gymnax's ids pgjax builds: the built-in ones, and those registered at run time where gymnax is imported
    (`pgjax.algo.suites.gymnax_builtins.registered_ids`). Imports nothing."""
    return registered_ids()


def make(name: str, pairs: Sequence[str] = ()) -> tuple[Any, Any]:
    """(env, env.default_params) of the gymnax id `name`, its class called with the "key=value" `pairs`.

    Raises:
      ValueError: one line: an argument the class does not take or of the wrong type (`typed_kwargs`),
        pairs given for an id registered at run time (whose factory pgjax cannot read), an unknown id, or the
        constructor failing (its exception's type and message).
    """
    label = f"gymnax/{name}"
    if name in BUILTIN_ENVIRONMENTS:
        kwargs = typed_kwargs(environment_class(name), pairs, label)
    elif pairs:
        raise ValueError(f"{label} is registered at run time (gymnax.register), so pgjax cannot read which "
                         "arguments it takes; give its factory instead: --env package.module:factory --env-kwargs ...")
    else:
        kwargs = {}
    try:
        return make_environment(name, kwargs)
    except ValueError:
        raise
    except Exception as error:
        shown = ", ".join(f"{key}={value!r}" for key, value in kwargs.items())
        raise ValueError(f"gymnax cannot build {label}({shown}) here: {error_line(error)}") from None
