"""The suites' seam (`pgjax.algo.suites`): the SUITE/NAME spelling, its refusals, its presets."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pgjax.algo import suites
from pgjax.algo.envs import make_env
from pgjax.algo.presets import ENV_PRESETS, preset_config


def test_the_spelling_splits_at_the_first_slash():
    assert suites.split_suite_name("kinetix/s/h0_weak_thrust") == ("kinetix", "s/h0_weak_thrust")
    assert suites.split_suite_name("CartPole-v1") is None
    assert suites.split_suite_name("tests.custom:make_chain") is None


@pytest.mark.parametrize("env, missing", [("/", "suite"), ("/CartPole-v1", "suite"), ("jumanji/", "task"),
                                          ("gymnax/", "task")])
def test_a_spelling_without_its_suite_or_task_is_refused(env, missing):
    with pytest.raises(ValueError, match=f"names no {missing}: give SUITE/NAME"):
        make_env(env)


def test_an_unknown_suite_is_refused_with_the_closest_name():
    with pytest.raises(ValueError, match="unknown environment suite 'jumanj': did you mean jumanji"):
        make_env("jumanj/Snake-v1")


def test_a_suite_not_installed_names_its_extra(monkeypatch):
    monkeypatch.setitem(suites.SUITES, "nosuch", suites.Suite("nosuch_suite", "pgjax_no_such_package", "nosuch", "X"))
    with pytest.raises(ValueError, match=r'needs the nosuch package.*pip install "pgjax\[nosuch\]"'):
        make_env("nosuch/X")
    assert suites.suite_preset("nosuch/X") is None  # no preset, no error: make_env says what is missing


def test_gymnax_by_suite_name_is_the_bare_id_with_its_preset():
    assert make_env("gymnax/CartPole-v1").name == make_env("CartPole-v1").name == "CartPole-v1"
    for env in ("CartPole-v1", "Acrobot-v1"):
        named = preset_config("default", f"gymnax/{env}")
        assert named.hparams == ENV_PRESETS[env].hparams and named.static.env == f"gymnax/{env}"
    with pytest.raises(ValueError, match="unknown environment 'CartPole-v9'"):
        make_env("gymnax/CartPole-v9")


def test_env_kwargs_need_a_suite_or_a_factory():
    with pytest.raises(ValueError, match="needs --env package.module:factory or SUITE/NAME"):
        make_env("CartPole-v1", env_kwargs=("a=1",))


def test_the_train_command_refuses_an_unknown_suite_in_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "pgjax.train", "--env", "nosuch/Task", "--out", str(tmp_path / "r")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "unknown environment suite 'nosuch'" in lines[0]
    assert not (tmp_path / "r").exists()
