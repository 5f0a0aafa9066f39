"""A gymnax id imports its environment's module alone (`pgjax.algo.suites.gymnax_builtins`), and gymnax stays whole.

The import checks run in fresh interpreters (what is in `sys.modules` depends on
what ran before); the table is checked in this process against `gymnax.make`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import gymnax
import jax
import numpy as np
import pytest

from pgjax.algo.envs import make_env
from pgjax.algo.suites import gymnax_suite, make_suite_env
from pgjax.algo.suites.gymnax_builtins import BUILTIN_ENVIRONMENTS, environment_class, make_environment
from pgjax.commands.options import gymnax_environments

ROOT = Path(__file__).resolve().parents[1]
EVERY_OTHER_SUITE = ("gymnax.registration", "gymnax.environments.bsuite", "gymnax.environments.minatar",
                     "gymnax.environments.misc", "seaborn")
DOWNLOADS = ("MNISTBandit-bsuite",)  # built, it downloads MNIST


def _python(script: str) -> str:
    """Run `script` in a fresh interpreter with this checkout first on the path; its stdout (stderr on failure)."""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"})
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


LOADED = f"[m for m in {EVERY_OTHER_SUITE!r} if m in sys.modules]"


@pytest.mark.parametrize("env_id", ["CartPole-v1", "gymnax/CartPole-v1"])
def test_an_id_imports_its_module_alone_and_gymnax_is_whole_after(env_id):
    out = _python(f"""
import sys, types
from pgjax.running.install import check_installed
from pgjax.algo.envs import make_env
check_installed()  # what every command does first: traces one step of CartPole
spec = make_env({env_id!r})
print("after make_env:", {LOADED})
import gymnax
from gymnax.environments import spaces  # a submodule: imported alone
print("after spaces:", {LOADED}, type(gymnax) is types.ModuleType)
env, params = gymnax.make("Catch-bsuite")
from gymnax import EnvParams, registered_envs
from gymnax.wrappers import LogWrapper
print("whole:", type(gymnax) is types.ModuleType, type(gymnax.environments) is types.ModuleType,
      len(registered_envs), registered_envs is gymnax.registration.registered_envs,
      type(spec.env) is gymnax.environments.CartPole, type(env) is gymnax.environments.Catch,
      "make" in dir(gymnax), gymnax.make("CartPole-v1")[1] == spec.params)
""")
    assert "after make_env: []" in out
    assert "after spaces: [] False" in out
    assert f"whole: True True {len(BUILTIN_ENVIRONMENTS)} True True True True True" in out


def test_gymnax_imported_first_is_left_as_it_is_and_its_registrations_serve():
    out = _python("""
import sys, types
import gymnax
from gymnax.environments.classic_control.cartpole import CartPole
gymnax.register("MyCartPole-v0", CartPole)
from pgjax.algo.envs import make_env
from pgjax.commands.options import gymnax_environments
spec = make_env("MyCartPole-v0")
print(sys.modules["gymnax"] is gymnax, type(gymnax) is types.ModuleType, type(spec.env) is CartPole,
      make_env("CartPole-v1").obs_shape, gymnax_environments()[-1])
""")
    assert out.split() == ["True", "True", "True", "(4,)", "MyCartPole-v0"]


def test_a_failing_attribute_leaves_the_package_usable():
    out = _python("""
import types
from pgjax.algo.suites.gymnax_builtins import make_environment
make_environment("CartPole-v1")
import gymnax
try:
    gymnax.no_such_attribute
except AttributeError as error:
    print("AttributeError:", error)
print(type(gymnax) is types.ModuleType, gymnax.make("Acrobot-v1")[0].name)
""")
    assert "AttributeError: module 'gymnax' has no attribute 'no_such_attribute'" in out
    assert out.splitlines()[-1] == "True Acrobot-v1"


def _same_tree(a, b) -> bool:
    leaves_a, tree_a = jax.tree.flatten(a)
    leaves_b, tree_b = jax.tree.flatten(b)
    return tree_a == tree_b and all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(leaves_a, leaves_b))


def _attributes(env) -> dict:
    return {key: value for key, value in vars(env).items() if not callable(value)}


def test_the_table_is_gymnax_s_registry():
    assert list(BUILTIN_ENVIRONMENTS) == [i for i in gymnax.registered_envs if i in BUILTIN_ENVIRONMENTS]
    assert set(gymnax.registered_envs) >= set(BUILTIN_ENVIRONMENTS)
    assert gymnax_environments()[: len(BUILTIN_ENVIRONMENTS)] == list(BUILTIN_ENVIRONMENTS)
    assert environment_class("MNISTBandit-bsuite") is gymnax.environments.MNISTBandit


@pytest.mark.parametrize("env_id", [i for i in BUILTIN_ENVIRONMENTS if i not in DOWNLOADS])
def test_every_id_builds_what_gymnax_make_builds(env_id):
    ours, ours_params = make_environment(env_id)
    theirs, theirs_params = gymnax.make(env_id)
    assert type(ours) is type(theirs)
    assert _same_tree(ours_params, theirs_params)
    assert _same_tree(_attributes(ours), _attributes(theirs))
    adapted, adapted_params = make_suite_env("gymnax", env_id)
    assert type(adapted) is type(theirs) and _same_tree(adapted_params, theirs_params)


def test_the_suite_types_its_arguments_as_the_class_takes_them():
    env, params = gymnax_suite.make("Catch-bsuite", ("rows=8", "columns=4"))
    theirs, theirs_params = gymnax.make("Catch-bsuite", rows=8, columns=4)
    assert (env.rows, env.columns) == (8, 4) and _same_tree(params, theirs_params)
    assert make_env("gymnax/Catch-bsuite", env_kwargs=("rows=8", "columns=4")).obs_shape == (8, 4)
    with pytest.raises(ValueError, match=r"takes no argument 'size' \(it takes rows, columns\)"):
        gymnax_suite.make("Catch-bsuite", ("size=3",))
    with pytest.raises(ValueError, match="takes rows as int"):
        gymnax_suite.make("Catch-bsuite", ("rows=many",))


def test_unknown_ids_get_close_matches():
    with pytest.raises(ValueError, match=r"unknown environment 'CartPol-v1'; did you mean CartPole-v1"):
        make_env("CartPol-v1")
    with pytest.raises(ValueError, match=r"gymnax has no task 'CartPol-v1'; did you mean gymnax/CartPole-v1"):
        make_env("gymnax/CartPol-v1", env_kwargs=("a=1",))
    with pytest.raises(ValueError, match="is not a registered gymnax environment"):
        make_environment("CartPol-v1")
