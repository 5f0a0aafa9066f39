"""gymnax's built-in environments by id, each built by importing its own module only.

`import gymnax` runs `gymnax/__init__.py`, which imports `gymnax.registration`,
which imports every environment module gymnax has (bsuite's, MinAtar's, the
misc ones; Pong's imports seaborn, Catch's matplotlib): about half of a pgjax
command's import time, for CartPole. Importing `gymnax.environments.classic_control.cartpole`
the ordinary way runs the same `__init__.py`s (of `gymnax` and
`gymnax.environments`) on the way down.

So pgjax keeps its own table, `BUILTIN_ENVIRONMENTS` (gymnax 1.0.1's
`registration` maps each id to the class, called with no arguments; a test
checks every id builds the same class with the same params as `gymnax.make`),
and imports an environment's module with the two package `__init__.py`s
deferred (`defer_package_inits`): `gymnax` and `gymnax.environments` are
placed in `sys.modules` as the very module objects an import would make (the
real `__spec__`, `__path__`, `__file__`), not yet executed. Importing a
submodule below them works as usual (and runs that subpackage's own
`__init__.py`, e.g. `classic_control`'s five classes). The first access of any
other attribute (`gymnax.make`, `gymnax.registered_envs`, `from gymnax import
...`, `dir(gymnax)`) executes the real `__init__.py` in that same module object,
after which it is an ordinary module: a user's `import gymnax` before or after
pgjax gets the real, complete gymnax.

Where gymnax is already imported (by the user, or finished), nothing is
deferred, and ids registered at run time (`gymnax.register`) are built by
`gymnax.make`.

This module imports no JAX (nor gymnax) at its top, so that a command's `--help` need not.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from collections.abc import Mapping
from typing import Any

_CLASSIC = "gymnax.environments.classic_control"
_MINATAR = "gymnax.environments.minatar"
_BSUITE = "gymnax.environments.bsuite"
_MISC = "gymnax.environments.misc"

# id -> (module, class): gymnax 1.0.1's `registration._builtins`, in the order of its `registered_envs`.
# gymnax.make(id) calls the class with no arguments (make's keyword arguments go to it).
BUILTIN_ENVIRONMENTS: dict[str, tuple[str, str]] = {
    "CartPole-v1": (f"{_CLASSIC}.cartpole", "CartPole"),
    "Pendulum-v1": (f"{_CLASSIC}.pendulum", "Pendulum"),
    "Acrobot-v1": (f"{_CLASSIC}.acrobot", "Acrobot"),
    "MountainCar-v0": (f"{_CLASSIC}.mountain_car", "MountainCar"),
    "MountainCarContinuous-v0": (f"{_CLASSIC}.continuous_mountain_car", "ContinuousMountainCar"),
    "Asterix-MinAtar": (f"{_MINATAR}.asterix", "MinAsterix"),
    "Breakout-MinAtar": (f"{_MINATAR}.breakout", "MinBreakout"),
    "Freeway-MinAtar": (f"{_MINATAR}.freeway", "MinFreeway"),
    "Seaquest-MinAtar": (f"{_MINATAR}.seaquest", "MinSeaquest"),
    "SpaceInvaders-MinAtar": (f"{_MINATAR}.space_invaders", "MinSpaceInvaders"),
    "Catch-bsuite": (f"{_BSUITE}.catch", "Catch"),
    "DeepSea-bsuite": (f"{_BSUITE}.deep_sea", "DeepSea"),
    "MemoryChain-bsuite": (f"{_BSUITE}.memory_chain", "MemoryChain"),
    "UmbrellaChain-bsuite": (f"{_BSUITE}.umbrella_chain", "UmbrellaChain"),
    "DiscountingChain-bsuite": (f"{_BSUITE}.discounting_chain", "DiscountingChain"),
    "MNISTBandit-bsuite": (f"{_BSUITE}.mnist", "MNISTBandit"),
    "SimpleBandit-bsuite": (f"{_BSUITE}.bandit", "SimpleBandit"),
    "FourRooms-misc": (f"{_MISC}.rooms", "FourRooms"),
    "MetaMaze-misc": (f"{_MISC}.meta_maze", "MetaMaze"),
    "PointRobot-misc": (f"{_MISC}.point_robot", "PointRobot"),
    "BernoulliBandit-misc": (f"{_MISC}.bernoulli_bandit", "BernoulliBandit"),
    "GaussianBandit-misc": (f"{_MISC}.gaussian_bandit", "GaussianBandit"),
    "Reacher-misc": (f"{_MISC}.reacher", "Reacher"),
    "Swimmer-misc": (f"{_MISC}.swimmer", "Swimmer"),
    "Pong-misc": (f"{_MISC}.pong", "Pong"),
    "FrozenLake-misc": (f"{_MISC}.frozen_lake", "FrozenLake"),
}

# The packages whose __init__.py imports every environment, deferred; a parent before its child.
DEFERRED_PACKAGES = ("gymnax", "gymnax.environments")

_finishing_lock = threading.RLock()
_finishing: set[str] = set()  # the deferred packages whose __init__.py is running now


class _DeferredPackage(types.ModuleType):
    """A package module whose `__init__.py` has not run yet: it runs on the first access of an attribute the
    module lacks that is not a submodule; the module is then an ordinary `types.ModuleType`."""

    def __getattr__(self, name: str) -> Any:
        submodule = f"{self.__name__}.{name}"
        if name.isidentifier() and not name.startswith("__") and importlib.util.find_spec(submodule) is not None:
            return importlib.import_module(submodule)  # a submodule: imported as `from package import it` would
        _finish(self)
        try:
            return self.__dict__[name]
        except KeyError:
            raise AttributeError(f"module '{self.__name__}' has no attribute '{name}'") from None

    def __dir__(self) -> list[str]:
        _finish(self)
        return sorted(self.__dict__)


def _finish(module: types.ModuleType) -> None:
    """Run the deferred package's real `__init__.py` in `module` (once; others wait for it), leaving an
    ordinary module. An attribute the package lacks while its `__init__.py` runs raises AttributeError, as
    in any partly initialised module.

    Raises:
      AttributeError: `module` is already running its `__init__.py` (in this thread).
      Whatever the `__init__.py` raises (it stays deferred, to be tried again).
    """
    with _finishing_lock:
        if type(module) is not _DeferredPackage:
            return
        if module.__name__ in _finishing:
            raise AttributeError(f"partially initialized module '{module.__name__}' is still running its "
                                 "__init__.py")
        _finishing.add(module.__name__)
        try:
            module.__spec__.loader.exec_module(module)
            module.__class__ = types.ModuleType
        finally:
            _finishing.discard(module.__name__)


def is_deferred(module: Any) -> bool:
    """Whether `module` is a gymnax package placed by `defer_package_inits` whose `__init__.py` has not run."""
    return type(module) is _DeferredPackage


def defer_package_inits() -> None:
    """Place `gymnax` and `gymnax.environments` in `sys.modules`, their `__init__.py`s not run (the module's
    docstring), where gymnax is not imported yet; else do nothing. Imports no environment.

    Raises:
      ModuleNotFoundError: gymnax is not installed.
    """
    with _finishing_lock:
        if DEFERRED_PACKAGES[0] in sys.modules:
            return
        parent = None
        for name in DEFERRED_PACKAGES:
            spec = importlib.util.find_spec(name)
            if spec is None or spec.submodule_search_locations is None:
                raise ModuleNotFoundError(f"No module named '{name}'", name=name)
            module = importlib.util.module_from_spec(spec)
            module.__class__ = _DeferredPackage
            sys.modules[name] = module
            if parent is not None:
                setattr(parent, name.rpartition(".")[2], module)  # as an import binds a submodule to its parent
            parent = module


def imported_gymnax() -> Any:
    """The gymnax module where it is imported in full (its `__init__.py` run), else None."""
    module = sys.modules.get("gymnax")
    return None if module is None or is_deferred(module) else module


def registered_ids() -> tuple[str, ...]:
    """The gymnax ids pgjax builds: the built-in ones (`BUILTIN_ENVIRONMENTS`), and where gymnax is imported in
    full, those of `gymnax.registered_envs` (ids registered at run time included). Imports nothing."""
    gymnax = imported_gymnax()
    if gymnax is None:
        return tuple(BUILTIN_ENVIRONMENTS)
    return tuple(BUILTIN_ENVIRONMENTS) + tuple(i for i in gymnax.registered_envs if i not in BUILTIN_ENVIRONMENTS)


def environment_class(env_id: str) -> type:
    """The class of the built-in gymnax environment `env_id`, importing its module only (`defer_package_inits`).

    Raises:
      KeyError: `env_id` is not one of `BUILTIN_ENVIRONMENTS`.
    """
    module, name = BUILTIN_ENVIRONMENTS[env_id]
    defer_package_inits()
    return getattr(importlib.import_module(module), name)


def make_environment(env_id: str, kwargs: Mapping[str, Any] | None = None) -> tuple[Any, Any]:
    """(env, env.default_params) of the gymnax id `env_id`, as `gymnax.make(env_id, **kwargs)` gives them.

    A built-in id is built from its own module (`environment_class`); an id registered at run time by
    `gymnax.make` (gymnax is imported in full then).

    Raises:
      ValueError: `env_id` is not one of `registered_ids()`.
      Whatever the environment's constructor raises (MNISTBandit-bsuite downloads its data set).
    """
    kwargs = dict(kwargs or {})
    if env_id in BUILTIN_ENVIRONMENTS:
        env = environment_class(env_id)(**kwargs)
        return env, env.default_params
    if env_id not in registered_ids():
        raise ValueError(f"{env_id} is not a registered gymnax environment")
    return imported_gymnax().make(env_id, **kwargs)
