"""Extension points: an environment of one's own (an object, or "package.module:factory") and a network
registered by name, each trained a few updates; the errors a user meets when one is wrong."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnax.environments import spaces

from pgjax.algo.config import Config, Hyperparams, StaticConfig
from pgjax.algo.envs import make_env
from pgjax.algo.policy import make_policy, network_names, register_network
from pgjax.algo.presets import PRESETS, preset_config
from pgjax.algo.trainer import make_train, make_trainer
from pgjax.algo.validation import validate_config, validate_static
from pgjax.commands.train import main as train_main
from pgjax.results import evaluation
from tests import custom

ROOT = Path(__file__).resolve().parent.parent
CHAIN = "tests.custom:make_chain"


def _tiny(config: Config, **static) -> Config:
    fields = {"hidden": (8,), "episodes_per_update": 2, "num_updates": 2, **static}
    return dataclasses.replace(config, static=dataclasses.replace(config.static, **fields))


# --- environments ---------------------------------------------------------------------------------


def test_an_environment_object_and_its_factory_give_the_same_spec():
    by_object = make_env(custom.Chain())
    by_factory = make_env(CHAIN)
    fields = dict(obs_shape=(4,), num_actions=2, max_steps=8, solve_threshold=0.9, action_kind="discrete",
                  obs_dtype="float32")
    for spec in (by_object, by_factory):
        assert {k: getattr(spec, k) for k in fields} == fields
    assert by_object.name == "Chain" and by_factory.name == CHAIN
    pair = make_env("tests.custom:make_long_chain")  # a factory returning (env, env_params)
    assert pair.obs_shape == (6,) and pair.max_steps == 12 and pair.params.max_steps_in_episode == 12
    assert make_env((custom.Chain(6), custom.ChainParams(max_steps_in_episode=12))).max_steps == 12
    assert make_env("tests.custom:Chain").obs_shape == (4,)  # a class is a factory too
    assert make_env(by_object) is by_object  # an EnvSpec passes through


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Catch-bsuite"])
def test_a_gymnax_object_gets_what_its_id_gets(env_id):
    by_id = make_env(env_id)
    by_object = make_env(gymnax.make(env_id)[0])  # threshold and uint8 storage found by its name
    assert by_object._replace(env=None, params=None) == by_id._replace(env=None, params=None)


def test_a_custom_environment_trains_through_its_factory_and_learns(keys8):
    config = _tiny(PRESETS["default"], env=CHAIN, episodes_per_update=8, num_updates=20)
    _, metrics = jax.jit(jax.vmap(make_train(config)))(keys8[:4])
    returns, lengths = np.asarray(metrics.episode_return), np.asarray(metrics.episode_length)
    assert np.all(np.isfinite(np.asarray(metrics.loss))) and not np.asarray(metrics.diverged).any()
    assert np.all(lengths <= 8) and np.all((returns >= 0) & (returns <= 1))
    # Stepping right reaches the end in 3 steps: the walk gets shorter and reaches the end more often.
    assert returns[:, -5:].mean() >= 0.9 > returns[:, :5].mean()
    assert lengths[:, -5:].mean() < lengths[:, :5].mean() - 1


class _WrongShape(custom.Chain):
    def observation_space(self, params):
        return spaces.Box(0.0, 1.0, (5,), jnp.float32)


class _Unbounded(custom.Chain):
    def action_space(self, params):
        return spaces.Box(-jnp.inf, jnp.inf, (2,))


class _SixTuple(custom.Chain):
    def step_env(self, key, state, action, params):
        return (*super().step_env(key, state, action, params), None)


class _VectorReward(custom.Chain):
    def step_env(self, key, state, action, params):
        obs, state, reward, terminated, info = super().step_env(key, state, action, params)
        return obs, state, jnp.stack([reward, reward]), terminated, info


class _NoReset(custom.Chain):
    def reset_env(self, key, params):
        raise NotImplementedError("reset_env")


@pytest.mark.parametrize(
    "env, message",
    [
        ("tests.no_such_module:make", "cannot import module 'tests.no_such_module' of the environment factory"),
        ("tests.custom:no_such_factory", "module 'tests.custom' has no attribute 'no_such_factory'"),
        ("tests.custom:LENGTH", "names an object of type int, not a factory"),
        ("tests.custom:", "the environment factory 'tests.custom:' is not of the form package.module:name"),
        (object(), "lacks reset or reset_env, step or step_env, observation_space, action_space"),
        ((custom.Chain(), object()), "declares no step limit"),
        (_WrongShape(), "reset returns observations of shape (4,); its observation_space says (5,)"),
        (_Unbounded(), "unbounded Box action space"),
        (_SixTuple(), "step_env must return (obs, state, reward, terminated, info)"),
        (_VectorReward(), "step must give a scalar reward (shape ()), got shape (2,)"),
        (_NoReset(), "reset failed when traced: NotImplementedError: reset_env"),
        ("Cartpole-v1", "did you mean CartPole-v1"),
    ],
)
def test_a_wrong_environment_is_named_in_one_line(env, message):
    with pytest.raises(ValueError) as raised:
        make_env(env)
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_the_command_line_trains_a_factory_and_the_run_folder_loads(tmp_path):
    out = tmp_path / "chain"
    command = [sys.executable, "-m", "pgjax.train", "--env", CHAIN, "--num-seeds", "2", "--num-updates", "3",
               "--quiet", "--out", str(out)]
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(command, cwd=ROOT, env=environ, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["env"] == CHAIN and summary["num_runs"] == 2
    with pytest.raises(ValueError, match="imports no code a run folder names"):
        evaluation.load_policy(out, run=1)
    act = evaluation.load_policy(out, run=1, env=CHAIN)  # the factory named again: make_env imports it
    assert act(np.eye(4, dtype=np.float32)).shape == (4,)


def test_the_command_line_names_a_missing_factory(tmp_path, capsys):
    out = tmp_path / "missing"
    assert train_main(["--env", "tests.custom:make_nothing", "--num-seeds", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: module 'tests.custom' has no attribute 'make_nothing'") and "\n" not in err
    assert not out.exists()


# --- networks -------------------------------------------------------------------------------------


def test_a_registered_network_trains(keys8):
    register_network("test-linear", custom.linear_network, replace=True)
    assert {"mlp", "cnn", "test-linear"} <= set(network_names())
    config = _tiny(PRESETS["default"], network="test-linear", num_updates=3)
    state, metrics = jax.jit(jax.vmap(make_train(config)))(keys8[:2])
    assert set(state.params) == {"linear"} and state.params["linear"]["kernel"].shape == (2, 4, 2)
    assert np.all(np.isfinite(np.asarray(metrics.loss))) and np.any(np.asarray(metrics.grad_norm) > 0)


def test_a_network_named_by_its_factory_serves_a_gaussian_policy_and_a_value(keys8):
    # Pendulum's preset: a Gaussian policy and a learned value baseline, both built by the factory.
    base = preset_config("default", "Pendulum-v1")
    config = _tiny(dataclasses.replace(base, hparams=dataclasses.replace(base.hparams, init_log_std=-0.5)),
                   network="tests.custom:linear_network")
    trainer = make_trainer(config)
    state = trainer.init(keys8[0], config.hparams.as_arrays())
    assert state.params["log_std"].tolist() == [-0.5]  # the trainer sets the declared "log_std"
    assert state.params["linear"]["kernel"].shape == (3, 1) and state.value_params["linear"]["kernel"].shape == (3, 1)
    _, metrics = jax.jit(jax.vmap(make_train(config)))(keys8[:2])
    for name in ("loss", "entropy", "value_loss"):
        assert np.all(np.isfinite(np.asarray(getattr(metrics, name)))), name


def test_unknown_and_duplicate_networks_are_refused():
    with pytest.raises(ValueError, match="unknown network 'transformer'; registered: mlp, cnn"):
        validate_static(StaticConfig(network="transformer"))
    missing = Config(StaticConfig(network="tests.custom:no_network"), Hyperparams())
    validate_config(missing)  # a factory's name is checked for its form only: validating imports nothing
    with pytest.raises(ValueError, match="not of the form package.module:name"):
        validate_static(StaticConfig(network="tests.custom:a:b"))
    with pytest.raises(ValueError, match="module 'tests.custom' has no attribute 'no_network'"):
        make_policy(make_env("CartPole-v1"), missing)  # building it imports it
    with pytest.raises(ValueError, match="network 'mlp' is already registered; pass replace=True"):
        register_network("mlp", custom.linear_network)
    with pytest.raises(ValueError, match="without ':'"):
        register_network("a:b", custom.linear_network)
    spec = make_env(CHAIN)
    with pytest.raises(ValueError, match="network 'cnn' needs image observations.*tests.custom:make_chain"):
        make_policy(spec, Config(StaticConfig(env=CHAIN, network="cnn")))


def _wrong_width(spec, static, num_outputs, gaussian):
    return custom.LinearPolicy(num_outputs + 1, len(spec.obs_shape), gaussian)


def _without_log_std(spec, static, num_outputs, gaussian):
    return custom.LinearPolicy(2 * num_outputs if gaussian else num_outputs, len(spec.obs_shape), False)


def test_a_network_breaking_the_contract_is_named():
    register_network("test-wrong-width", _wrong_width, replace=True)
    register_network("test-without-log-std", _without_log_std, replace=True)
    chain, pendulum = make_env(CHAIN), make_env("Pendulum-v1")
    with pytest.raises(ValueError, match=r"maps 2 observations to outputs of shape \(2, 3\); it must give \(2, 2\)"):
        make_policy(chain, Config(StaticConfig(env=CHAIN, network="test-wrong-width")))
    with pytest.raises(ValueError, match=r"must declare a top-level parameter 'log_std' of shape \(1,\)"):
        make_policy(pendulum, Config(StaticConfig(env="Pendulum-v1", network="test-without-log-std")))


# --- a step weighting and a loss of one's own (experiments/leave_one_out.py) ------------------------------------


def _leave_one_out():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
    try:
        import leave_one_out
    finally:
        sys.path.pop(0)
    return leave_one_out


def test_a_leave_one_out_weighting_trains_64_seeds_from_python():
    """`make_train(config, weighting=fn)`: the weights are the function's (zero on padding), on 64 seeds at once."""
    loo = _leave_one_out()
    config = dataclasses.replace(PRESETS["default"], static=dataclasses.replace(
        PRESETS["default"].static, num_updates=3, baseline="none"))
    keys = jax.vmap(jax.random.key)(jnp.arange(64))
    _, mine = jax.jit(jax.vmap(make_train(config, weighting=loo.weights)))(keys)
    _, default = jax.jit(jax.vmap(make_train(config)))(keys)
    assert mine.loss.shape == (64, 3) and np.isfinite(np.asarray(mine.loss)).all()
    np.testing.assert_array_equal(mine.episode_return[:, 0], default.episode_return[:, 0])  # same first episodes
    assert not np.array_equal(np.asarray(mine.loss), np.asarray(default.loss))  # other weights, another loss


def test_a_weighting_of_the_wrong_shape_or_beside_a_learned_baseline_is_refused():
    config = dataclasses.replace(PRESETS["default"], static=dataclasses.replace(PRESETS["default"].static,
                                                                                   num_updates=1))
    with pytest.raises(ValueError, match=r"must give one weight per step, \[T, E\]"):
        jax.eval_shape(make_train(config, weighting=lambda traj, hparams: traj.reward.sum(0)), jax.random.key(0))
    learned = dataclasses.replace(config, static=dataclasses.replace(config.static, baseline="value",
                                                                     returns="reward_to_go"))
    with pytest.raises(ValueError, match="replaces the baseline"):
        make_train(learned, weighting=_leave_one_out().weights)


def test_a_step_loss_of_ones_own_is_the_reference_loss_when_it_computes_the_same():
    """`step_loss` on both paths: REINFORCE's own per-step loss written outside pgjax gives the same update."""
    from pgjax.algo.config import FastPaths

    config = dataclasses.replace(PRESETS["default"], static=dataclasses.replace(PRESETS["default"].static,
                                                                                   num_updates=2))

    def reinforce(log_prob, entropy, weight, entropy_coef):
        return -log_prob * weight - entropy_coef * entropy

    keys = jax.vmap(jax.random.key)(jnp.arange(4))
    for fast in (FastPaths(entropy_bonus=True), FastPaths.reference()):
        _, plain = jax.jit(jax.vmap(make_train(config, fast=fast)))(keys)
        _, mine = jax.jit(jax.vmap(make_train(config, fast=fast, step_loss=reinforce)))(keys)
        np.testing.assert_allclose(np.asarray(mine.loss), np.asarray(plain.loss), rtol=1e-5, atol=1e-6)


def test_the_command_line_trains_a_weighting_by_name_and_compare_reads_both(tmp_path):
    """`--weighting leave_one_out:weights` on 64 seeds, recorded in config.json, then `pgjax.compare` of it
    against the default run."""
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "experiments"), str(root)])}
    common = [sys.executable, "-m", "pgjax.train", "--quiet", "--num-seeds", "64", "--num-updates", "3",
              "--compile-cache", "off", "--baseline", "none"]
    for name, extra in (("default", []), ("loo", ["--weighting", "leave_one_out:weights"])):
        done = subprocess.run([*common, *extra, "--out", str(tmp_path / name)], env=env, capture_output=True,
                              text=True)
        assert done.returncode == 0, done.stderr
    recorded = json.loads((tmp_path / "loo" / "config.json").read_text())
    assert "leave_one_out:weights" in json.dumps(recorded)
    compared = subprocess.run([sys.executable, "-m", "pgjax.compare", str(tmp_path / "default"),
                               str(tmp_path / "loo"), "--out", str(tmp_path / "compared")], env=env,
                              capture_output=True, text=True)
    assert compared.returncode == 0, compared.stderr
    assert "weighting=leave_one_out:weights" in compared.stdout
    assert (tmp_path / "compared" / "comparison.json").is_file()


@pytest.mark.parametrize("flags, message", [
    (["--weighting", "nosuch_module:fn"], "cannot import module 'nosuch_module' of the weighting"),
    (["--weighting", "justaname"], "--weighting 'justaname' is not of the form package.module:function"),
    (["--step-loss", "tests.custom:LENGTH"], "names an object of type int, not a step loss function"),
    (["--weighting", "tests.custom:returns_to_go", "--baseline", "value", "--returns", "reward_to_go"],
     "replaces the --baseline"),
    (["--weighting", "builtins:len"], "the weighting len failed: TypeError: len() takes exactly one argument"),
    (["--step-loss", "builtins:len"], "the step loss len failed: TypeError: len() takes exactly one argument"),
])
def test_a_weighting_or_loss_that_cannot_serve_is_refused_before_any_file(flags, message, tmp_path, capsys):
    assert train_main([*flags, "--num-seeds", "2", "--num-updates", "2", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "x").exists()
