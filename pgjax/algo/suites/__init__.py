"""The JAX environment suites pgjax builds by name: `--env SUITE/NAME`, e.g. `jumanji/Snake-v1`.

The spelling splits at the first "/": a suite name from `SUITES`, then the
suite's own task name (which may hold further "/", as Kinetix's levels do).
No module path holds a "/", so it cannot be taken for "package.module:factory",
and no gymnax id holds one. `gymnax/CartPole-v1` is CartPole-v1.

Each suite is an optional extra (`pip install "pgjax[jumanji]"`) and is
imported only when named. Its module here (`pgjax.algo.suites.<module>`)
gives two functions:

* `names() -> tuple[str, ...]`: the suite's registered task names (imports the suite);
* `make(name, pairs) -> (env, params)`: an object of gymnax's shape (the
  contract of `pgjax.algo.envs`) for the task `name`, built with the "key=value"
  `pairs` of `--env-kwargs` typed by the suite's own signature
  (`pgjax.algo.envs.typed_kwargs`). It reads termination and truncation from
  the suite's own signals, never auto-resets (or its reset is thrown away), and
  gives a legal-action mask as an `action_mask` leaf of a Dict observation
  (bool [A], True = legal) where the suite has one.

An adapter module may also hold `PRESETS: dict[str, pgjax.algo.config.Config]`:
what preset "default" means for its tasks (task name -> the Config, its env
"SUITE/NAME"), each chosen by measurement (`preset_config` uses it).

Raises ValueError (one line) for an unknown suite or task (close names
suggested), or a suite that is not installed (the extra to install named).
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
from collections.abc import Sequence
from typing import Any, NamedTuple


class Suite(NamedTuple):
    """One suite pgjax builds by name.

    Attributes:
      module: the module of the suite's adapter, under `pgjax.algo.suites`.
      package: the import name of the suite's own package (what is missing when it is not installed).
      extra: the pgjax extra that installs it (`pip install "pgjax[<extra>]"`).
      example: one task name, for messages and docs.
      install: the install command where the extra alone does not install the suite (its release pins an
        older JAX than pgjax's); "" for `pip install "pgjax[<extra>]"`.
    """

    module: str
    package: str
    extra: str
    example: str
    install: str = ""


SUITES: dict[str, Suite] = {
    "gymnax": Suite("gymnax_suite", "gymnax", "", "CartPole-v1"),
    "jumanji": Suite("jumanji_suite", "jumanji", "jumanji", "Snake-v1"),
    "brax": Suite("brax_suite", "brax", "brax", "inverted_pendulum"),
    "navix": Suite("navix_suite", "navix", "navix", "Navix-Empty-5x5-v0"),
    "xminigrid": Suite("xminigrid_suite", "xminigrid", "xminigrid", "MiniGrid-Empty-5x5"),
    "craftax": Suite("craftax_suite", "craftax", "craftax", "Craftax-Classic-Symbolic-v1"),
    "pgx": Suite("pgx_suite", "pgx", "pgx", "2048"),
    # kinetix-env 3.0.2 pins jax<=0.9.0 and jax2d 1.0.1 (whose jnp.clip(a_min=) fails on jax 0.10): its extra
    # holds what it needs at run time, jax2d 1.0.2 among them, and kinetix-env itself goes in without its pins
    "kinetix": Suite("kinetix_suite", "kinetix", "kinetix", "s/h0_weak_thrust",
                     'pip install "pgjax[kinetix]" && pip install --no-deps kinetix-env==3.0.2'),
    # popgym-arcade's stable-gymnax would overwrite gymnax 1.0.1's files: it goes in without its dependencies
    "popgym-arcade": Suite("popgym_arcade_suite", "popgym_arcade", "popgym-arcade", "CartPoleEasy",
                           'pip install "pgjax[popgym-arcade]" && pip install --no-deps "popgym-arcade>=0.0.7"'),
}


def split_suite_name(env: str) -> tuple[str, str] | None:
    """("jumanji", "Snake-v1") from "jumanji/Snake-v1"; None for a string without "/"."""
    suite, sep, name = env.partition("/")
    return (suite, name) if sep else None


def _adapter(suite: str) -> Any:
    """The adapter module of `suite`; ValueError (one line) if the suite is unknown or not installed."""
    if suite not in SUITES:
        close = difflib.get_close_matches(suite, SUITES, n=2, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise ValueError(f"unknown environment suite '{suite}': {hint}--env SUITE/NAME takes one of "
                         f"{', '.join(SUITES)}")
    entry = SUITES[suite]
    try:
        if importlib.util.find_spec(entry.package) is None:
            raise ModuleNotFoundError(f"No module named '{entry.package}'", name=entry.package)
        # the adapter imports its suite (gymnax's adapter only the environment named)
        return importlib.import_module(f"pgjax.algo.suites.{entry.module}")
    except ImportError as error:
        install = entry.install or (f'pip install "pgjax[{entry.extra}]"' if entry.extra
                                    else f"pip install {entry.package}")
        raise ValueError(f"--env {suite}/... needs the {suite} package, which does not import here "
                         f"({type(error).__name__}: {error}); install it: {install}") from None


def suite_names(suite: str) -> tuple[str, ...]:
    """The task names `suite` registers (imports the suite). Raises ValueError as `make_suite_env`."""
    return tuple(_adapter(suite).names())


def make_suite_env(suite: str, name: str, pairs: Sequence[str] = ()) -> tuple[Any, Any]:
    """(env, params) of the task `name` of `suite`, built with the `--env-kwargs` `pairs` ("key=value").

    Raises:
      ValueError: one line: an unknown suite or task (close names suggested), a suite
        not installed (its extra named), arguments the suite does not take.
    """
    adapter = _adapter(suite)
    known = tuple(adapter.names())
    if name not in known:
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(f'{suite}/{c}' for c in close)}?" if close else ""
        raise ValueError(f"{suite} has no task '{name}'{hint} ({len(known)} tasks, e.g. "
                         f"{suite}/{SUITES[suite].example})")
    return adapter.make(name, tuple(pairs))


def suite_preset(env: str) -> Any:
    """The `pgjax.algo.config.Config` the adapter of `env` ("SUITE/NAME") recommends for it (its `PRESETS`),
    or None: no suite, no such preset, or the suite not installed (make_env says so when it builds it)."""
    split = split_suite_name(env)
    if split is None or split[0] not in SUITES:
        return None
    try:
        adapter = _adapter(split[0])
    except ValueError:
        return None
    return getattr(adapter, "PRESETS", {}).get(split[1])
