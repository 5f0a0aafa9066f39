"""What pgjax needs of the packages installed with it, checked by feature, not by version number.

    from pgjax.running.install import check_installed
    check_installed()   # raises BrokenInstall (one line) if a package lacks what pgjax uses

A version number can lie: a package that ships its own copy of gymnax's files
(popgym-arcade's dependency does) can overwrite gymnax 1.0.1's with an older
copy whose `Environment.step` returns five values `(obs, state, reward, done,
info)` and that has no `is_truncated`, while gymnax still reports 1.0.1. So
`check_installed` looks at what the packages do: it resolves each name of
`FEATURES` and traces (`jax.eval_shape`: nothing computed) one step of gymnax's
CartPole-v1, which must give gymnax 1.0's six values. The checks run once per
process; their outcome (a pass or the error) is kept.

`broken_import(error)` reads an ImportError or AttributeError raised while
importing pgjax's layers and says whether one of these packages raised it, as
a `BrokenInstall` (the commands print it as one line, `pgjax.commands.process`).

Every fix printed names the package and pgjax's floor for it (`requirement`), read from the one
declaration, pyproject.toml's dependencies (`floors`), e.g. "importing orbax-checkpoint 0.11.16
failed (...): pgjax needs orbax-checkpoint>=0.11.33: pip install --upgrade 'orbax-checkpoint>=0.11.33'".

This module imports no JAX at its top, so that a command's `--help` need not.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import re
import traceback
from pathlib import Path

from pgjax.algo.suites.gymnax_builtins import defer_package_inits, make_environment

# (package, dotted name pgjax uses): each must resolve (every release from pyproject.toml's floor on has it).
FEATURES = (
    ("jax", "jax.extend.core.jaxprs_in_params"),  # pgjax.running.memory
    ("jax", "jax.shard_map"),  # pgjax.running.sharding
    ("jax", "jax.custom_batching.custom_vmap"),  # pgjax.algo.fast.folded
    ("optax", "optax.tree.norm"),  # pgjax.algo.trainer's grad_norm
    ("flax", "flax.linen.Module"),  # pgjax.algo.policy
    ("flax", "flax.struct.dataclass"),  # pgjax.algo.trainer
    ("gymnax", "gymnax.environments.environment.Environment.is_truncated"),
)
# The packages (import names) whose failure at import `broken_import` reports as a broken install.
PACKAGES = ("jax", "jaxlib", "flax", "optax", "gymnax", "chex", "orbax", "numpy", "scipy", "matplotlib", "tyro",
            "rich", "filelock", "six")
DISTRIBUTIONS = {"orbax": "orbax-checkpoint"}  # import name -> the name pip installs, where they differ
GYMNAX_FIX = "pip install '{}' --force-reinstall"
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"  # there in a clone (and an editable install)

_outcome: list = []  # [None] once the checks passed, [error] once they failed


class BrokenInstall(ImportError):
    """An installed package lacks a feature pgjax uses. `str(error)` is one line: the package, what is
    missing and the command that fixes it; `package` names the package."""

    def __init__(self, package: str, message: str):
        super().__init__(message)
        self.package = package


def check_installed() -> None:
    """Check, once per process, that jax, optax, flax and gymnax have what pgjax uses (`FEATURES`), and
    that gymnax's `Environment.step` gives six values (traced on CartPole-v1, nothing computed).

    Raises:
      BrokenInstall: one line naming the package, the missing feature and the fix, e.g.
        "gymnax's Environment.step returns 5 values (obs, state, reward, done, info), not gymnax 1.0's 6
        (...): another package may have overwritten gymnax's files; pip install 'gymnax>=1.0.1' --force-reinstall".
        A failed check raises the same error again on every later call.
    """
    if not _outcome:
        try:
            for package, name in FEATURES:
                _check_feature(package, name)
            _check_gymnax_step()
        except BrokenInstall as error:
            _outcome.append(error)
        else:
            _outcome.append(None)
    if _outcome[0] is not None:
        raise _outcome[0]


@functools.cache
def floors() -> dict[str, str]:
    """pgjax's runtime requirements by distribution name, e.g. {'orbax-checkpoint': 'orbax-checkpoint>=0.11.33'}.

    Declared once, in pyproject.toml: read from it where pgjax runs from its source tree (a clone, an
    editable install), else from the installed pgjax's metadata (`importlib.metadata.requires`); empty
    when neither is there.
    """
    requirements: list[str] = []
    if PYPROJECT.is_file():
        import tomllib

        project = tomllib.loads(PYPROJECT.read_text()).get("project", {})
        if project.get("name") == "pgjax":
            requirements = project.get("dependencies", [])
    if not requirements:
        try:
            requirements = [r for r in importlib.metadata.requires("pgjax") or [] if "extra ==" not in r]
        except importlib.metadata.PackageNotFoundError:
            pass
    found = {}
    for requirement in requirements:
        requirement = requirement.split(";")[0].strip()
        name = re.match(r"[A-Za-z0-9._-]+", requirement).group(0)
        found[_normal(name)] = requirement.replace(" ", "")
    return found


def requirement(package: str) -> str:
    """pgjax's requirement on `package` (an import name, `orbax` for orbax-checkpoint): 'jax>=0.10.2', or the
    distribution's bare name where pgjax declares no floor for it."""
    distribution = DISTRIBUTIONS.get(package, package)
    return floors().get(_normal(distribution), distribution)


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _fix(package: str) -> str:
    return GYMNAX_FIX.format(requirement("gymnax")) if package == "gymnax" else f"pip install '{requirement(package)}'"


def _check_feature(package: str, name: str) -> None:
    """Resolve the dotted `name` (modules imported as needed); a missing part raises BrokenInstall."""
    parts = name.split(".")
    try:
        if parts[0] == "gymnax":  # its __init__.py imports every environment: run only when wanted
            defer_package_inits()
        found = importlib.import_module(parts[0])
    except ImportError as error:
        raise BrokenInstall(package, f"{package} cannot be imported ({error}): {_fix(package)}") from None
    for depth, part in enumerate(parts[1:], start=2):
        if hasattr(found, part):
            found = getattr(found, part)
            continue
        try:
            found = importlib.import_module(".".join(parts[:depth]))
        except ImportError:
            overwritten = " (another package may have overwritten its files)" if package == "gymnax" else ""
            raise BrokenInstall(package, f"{package} {_version(package)} has no {name}{overwritten} (pgjax needs "
                                         f"{requirement(package)}): {_fix(package)}") from None


def _check_gymnax_step() -> None:
    """Trace one step of gymnax's CartPole-v1 (its module alone imported, `pgjax.algo.suites.gymnax_builtins`):
    six values (gymnax 1.0's step API), or BrokenInstall."""
    import jax

    try:
        env, params = make_environment("CartPole-v1")

        def one_step():
            key = jax.random.key(0)
            _, state = env.reset(key, params)
            return env.step(key, state, 0, params)

        out = jax.eval_shape(one_step)
    except Exception as error:  # an old copy's make, reset or step that fails to trace
        raise BrokenInstall("gymnax", f"gymnax {_version('gymnax')}: one step of CartPole-v1 fails to trace "
                                      f"({type(error).__name__}: {first_line(error)}): {_fix('gymnax')}") from None
    if not isinstance(out, tuple) or len(out) != 6:
        count = len(out) if isinstance(out, tuple) else type(out).__name__
        raise BrokenInstall("gymnax", f"gymnax's Environment.step returns {count} values (gymnax {_version('gymnax')}"
                                      " reported), not gymnax 1.0's 6 (obs, state, reward, terminated, truncated,"
                                      f" info): another package may have overwritten gymnax's files; {_fix('gymnax')}")


def broken_import(error: BaseException) -> BrokenInstall | None:
    """The BrokenInstall that an ImportError or AttributeError raised while importing means, else None.

    It means one when a package of `PACKAGES` is missing (`ModuleNotFoundError` naming it) or when the
    error was raised inside one of those packages' modules (a frame of its files), as an old flax does
    under a newer JAX. Anything else (pgjax's own errors) gives None, to be raised as it is.
    """
    if not isinstance(error, (ImportError, AttributeError)):
        return None
    if isinstance(error, BrokenInstall):
        return error
    missing = (getattr(error, "name", None) or "").split(".")[0]
    if isinstance(error, ModuleNotFoundError) and missing in PACKAGES:
        return BrokenInstall(missing, f"{missing} is not installed ({error}): {_fix(missing)}")
    frames = traceback.extract_tb(error.__traceback__)
    if not any(frame.name == "<module>" for frame in frames[1:]):  # not raised while importing a module
        return None
    for frame in reversed(frames):  # the innermost module being imported: an old flax's import of a name
        package = _package_of(frame.filename)  # that JAX no longer has (under gymnax's import of flax) is flax's
        if package is not None and frame.name == "<module>":
            name, needed = DISTRIBUTIONS.get(package, package), requirement(package)
            fix = _fix(package) if package == "gymnax" else f"pip install --upgrade '{needed}'"
            return BrokenInstall(package, f"importing {name} {_version(package)} failed ({type(error).__name__}: "
                                          f"{first_line(error)}): pgjax needs {needed}: {fix}")
    return None


def _package_of(filename: str) -> str | None:
    """The package of `PACKAGES` whose installed files hold `filename`, else None."""
    parts = filename.replace("\\", "/").split("/")
    for i, part in enumerate(parts[:-1]):
        if part in ("site-packages", "dist-packages") and parts[i + 1] in PACKAGES:
            return parts[i + 1]
    return None


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(DISTRIBUTIONS.get(package, package))
    except importlib.metadata.PackageNotFoundError:
        return "(version unknown)"


def first_line(error: BaseException) -> str:
    """The first line of `str(error)` ("" for none): what a one-line message quotes of an error."""
    return (str(error).strip().splitlines() or [""])[0]
