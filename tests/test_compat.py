"""The install check (`pgjax.running.install`): features checked by behaviour, and a broken install in one line."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import gymnax.environments.environment as gymnax_environment
import jax.extend.core
import pytest

from pgjax.running import install as compat

ROOT = Path(__file__).resolve().parent.parent
DEPENDENCIES = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
FLOORS = {re.match(r"[a-z0-9-]+", r)[0]: r for r in DEPENDENCIES}  # {'jax': 'jax>=0.10.2', ...}


@pytest.fixture
def fresh(monkeypatch):
    """The check's kept outcome forgotten for the test (and the passing one back after it)."""
    monkeypatch.setattr(compat, "_outcome", [])


def test_this_install_passes_and_the_outcome_is_kept(fresh, monkeypatch):
    compat.check_installed()
    assert compat._outcome == [None]
    monkeypatch.setattr(compat, "_check_gymnax_step", lambda: pytest.fail("the checks ran twice"))
    compat.check_installed()


def _one_line_error() -> str:
    with pytest.raises(compat.BrokenInstall) as caught:
        compat.check_installed()
    message = str(caught.value)
    assert len(message.splitlines()) == 1
    with pytest.raises(compat.BrokenInstall) as again:  # kept: raised again, not checked again
        compat.check_installed()
    assert again.value is caught.value
    return message


def test_a_gymnax_step_of_five_values_is_named_with_its_fix(fresh, monkeypatch):
    six = gymnax_environment.Environment.step

    def five(self, key, state, action, params=None):  # an old gymnax's (obs, state, reward, done, info)
        obs, state, reward, terminated, truncated, info = six(self, key, state, action, params)
        return obs, state, reward, terminated | truncated, info

    monkeypatch.setattr(gymnax_environment.Environment, "step", five)
    message = _one_line_error()
    assert "gymnax's Environment.step returns 5 values" in message
    assert message.endswith("pip install 'gymnax>=1.0.1' --force-reinstall")


def test_a_gymnax_without_is_truncated_is_named(fresh, monkeypatch):
    monkeypatch.delattr(gymnax_environment.Environment, "is_truncated")
    message = _one_line_error()
    assert "has no gymnax.environments.environment.Environment.is_truncated" in message
    assert "overwritten" in message and message.endswith("--force-reinstall")


def test_a_jax_without_jaxprs_in_params_asks_for_jax_s_floor(fresh, monkeypatch):
    monkeypatch.delattr(jax.extend.core, "jaxprs_in_params")
    message = _one_line_error()
    jax_floor = FLOORS["jax"]  # 'jax>=0.10.2'
    assert f"has no jax.extend.core.jaxprs_in_params (pgjax needs {jax_floor}): pip install '{jax_floor}'" in message


def test_an_optax_without_tree_norm_asks_for_optax_0_2_5(fresh, monkeypatch):
    import optax

    monkeypatch.delattr(optax.tree, "norm")
    assert _one_line_error().endswith("pip install 'optax>=0.2.5'")


def test_pgjax_s_exports_run_the_check(fresh, monkeypatch):
    import pgjax

    monkeypatch.delattr(gymnax_environment.Environment, "is_truncated")
    with pytest.raises(ImportError, match="is_truncated"):
        pgjax.make_env


def test_only_an_error_of_a_package_at_import_reads_as_a_broken_install():
    def raised(error: BaseException) -> BaseException:
        try:
            raise error
        except BaseException as caught:
            return caught

    assert compat.broken_import(raised(AttributeError("'Config' object has no attribute 'x'"))) is None
    missing = compat.broken_import(raised(ModuleNotFoundError("No module named 'optax'", name="optax")))
    assert str(missing) == "optax is not installed (No module named 'optax'): pip install 'optax>=0.2.5'"
    assert compat.broken_import(raised(ModuleNotFoundError("No module named 'tests.nope'", name="tests.nope"))) is None


def _run(script: str, tmp_path: Path, pythonpath: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [pythonpath, str(ROOT)]))}
    return subprocess.run([sys.executable, "-c", script, "--num-seeds", "2", "--num-updates", "2",
                           "--episodes-per-update", "2", "--hidden", "8", "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)


PATCHED_STEP = """
import sys
from pgjax.commands.process import exit_process, prepare_process, run_command
prepare_process(sys.argv)
import gymnax.environments.environment as e
six = e.Environment.step
def step(self, key, state, action, params=None):
    obs, state, reward, terminated, truncated, info = six(self, key, state, action, params)
    return obs, state, reward, terminated | truncated, info
e.Environment.step = step
from pgjax.commands import train
exit_process(run_command(train.main))
"""


def test_the_train_command_names_an_overwritten_gymnax_in_one_line(tmp_path):
    done = _run(PATCHED_STEP, tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert done.stderr.startswith("error: gymnax's Environment.step returns 5 values")
    assert not (tmp_path / "run").exists()


def test_a_package_that_fails_at_import_is_one_line_not_a_traceback(tmp_path):
    fake = tmp_path / "site-packages" / "flax"  # an old flax, under a JAX that lacks what it imports
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise AttributeError(\"module 'jax.core' has no attribute 'pp_eqn_rules'\")\n")
    script = ("import sys, runpy; sys.argv[0] = 'pgjax.train'; "
              "runpy.run_module('pgjax.train', run_name='__main__', alter_sys=True)")
    done = _run(script, tmp_path, pythonpath=str(fake.parent))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert done.stderr.startswith("error: importing flax ")
    assert "AttributeError: module 'jax.core' has no attribute 'pp_eqn_rules'" in done.stderr
    assert done.stderr.strip().endswith(f"pgjax needs {FLOORS['flax']}: pip install --upgrade '{FLOORS['flax']}'")
    assert not (tmp_path / "run").exists()


def test_a_package_that_fails_at_import_is_named_with_its_floor(tmp_path):
    # an orbax-checkpoint older than its floor under jax 0.10: its import of a name JAX no longer has
    fake = tmp_path / "site-packages" / "orbax" / "checkpoint" / "__init__.py"
    code = compile("raise ImportError(\"cannot import name 'DeviceLocalLayout' from 'jax.experimental.layout'\")\n",
                   str(fake), "exec")
    try:
        exec(code, {})
    except ImportError as error:
        broken = compat.broken_import(error)
    assert broken.package == "orbax"
    message = str(broken)
    assert message.startswith("importing orbax-checkpoint ") and "cannot import name 'DeviceLocalLayout'" in message
    floor = FLOORS["orbax-checkpoint"]  # 'orbax-checkpoint>=0.11.33'
    assert message.endswith(f": pgjax needs {floor}: pip install --upgrade '{floor}'")


def test_the_floors_named_are_pyproject_s_and_every_package_has_one():
    assert sorted(FLOORS.values()) == sorted(DEPENDENCIES)
    for package in compat.PACKAGES:  # each package the check names has a floor in pyproject.toml
        assert ">=" in compat.requirement(package), package
    missing = compat.broken_import(ModuleNotFoundError("No module named 'orbax'", name="orbax.checkpoint"))
    assert str(missing).endswith(f"pip install '{FLOORS['orbax-checkpoint']}'")


def test_an_installed_pgjax_reads_its_floors_from_its_metadata(monkeypatch, tmp_path):
    monkeypatch.setattr(compat, "PYPROJECT", tmp_path / "pyproject.toml")  # not a source tree
    monkeypatch.setattr(compat.importlib.metadata, "requires",
                        lambda name: ["jax>=0.10", "orbax-checkpoint>=0.11.33", "pandas>=2; extra == \"results\""])
    compat.floors.cache_clear()
    try:
        assert compat.floors() == {"jax": "jax>=0.10", "orbax-checkpoint": "orbax-checkpoint>=0.11.33"}
        assert compat.requirement("orbax") == "orbax-checkpoint>=0.11.33" and compat.requirement("six") == "six"
    finally:
        compat.floors.cache_clear()
