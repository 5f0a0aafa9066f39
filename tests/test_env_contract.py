"""The environment contract (`pgjax.algo.envs`): wrappers, other packages' step APIs, pgjax's own step limit,
factory arguments, and calls named when they fail."""

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
from flax import struct
from gymnax.environments import spaces
from gymnax.wrappers import FlattenObservationWrapper, LogWrapper, StickyActionWrapper

from pgjax.algo.envs import make_env, steps_directly, typed_kwargs
from pgjax.algo.policy import categorical
from pgjax.algo.presets import PRESETS
from pgjax.algo.rollout import make_collect
from pgjax.algo.trainer import make_train
from tests import custom

ROOT = Path(__file__).resolve().parents[1]


def _tiny(**static):
    config = PRESETS["default"]
    fields = {"hidden": (8,), "episodes_per_update": 2, "num_updates": 3, **static}
    return dataclasses.replace(config, static=dataclasses.replace(config.static, **fields))


def _train(env, keys, **static):
    _, metrics = jax.jit(jax.vmap(make_train(_tiny(**static), env)))(keys)
    return jax.tree.map(np.asarray, metrics)


class DoubleReward:
    """A user's wrapper that only overrides `step`: rewards x2 (gymnax's wrapper base class, no step_env)."""

    def __init__(self, env):
        self._env = env

    def __getattr__(self, name):
        return getattr(self._env, name)

    def step(self, key, state, action, params=None):
        obs, state, reward, terminated, truncated, info = self._env.step(key, state, action, params)
        return obs, state, 2.0 * reward, terminated, truncated, info


@struct.dataclass
class OldState:
    position: jax.Array
    timestep: jax.Array  # time counted under another name, as Craftax does


@struct.dataclass
class OldParams:
    max_timesteps: int = 9  # the step limit under another name, as Craftax's


class OldApiChain:
    """A chain walk with an older gymnax's API, as Craftax has: no gymnax base class, a five-value auto-resetting
    `step` whose `done` includes its own time limit, the limit in `params.max_timesteps`, time in `timestep`."""

    length = 4

    @property
    def default_params(self):
        return OldParams()

    def reset(self, key, params=None):
        state = OldState(position=jnp.int32(0), timestep=jnp.int32(0))
        return jax.nn.one_hot(state.position, self.length), state

    def step(self, key, state, action, params=None):
        params = params or self.default_params
        position = jnp.clip(state.position + 2 * action - 1, 0, self.length - 1).astype(jnp.int32)
        moved = OldState(position=position, timestep=state.timestep + 1)
        won = position == self.length - 1
        done = won | (moved.timestep >= params.max_timesteps)
        obs_reset, state_reset = self.reset(key, params)
        state = jax.tree.map(lambda a, b: jnp.where(done, a, b), state_reset, moved)
        obs = jnp.where(done, obs_reset, jax.nn.one_hot(position, self.length))
        return obs, state, won.astype(jnp.float32), done, {}

    def observation_space(self, params):
        return spaces.Box(0.0, 1.0, (self.length,), jnp.float32)

    def action_space(self, params):
        return spaces.Discrete(2)


class NoTimeChain(custom.Chain):
    """A gymnax subclass whose state keeps no `time`: gymnax's own `step` cannot be traced (its `is_truncated`
    reads `state.time`), so pgjax steps `step_env` and counts the steps itself."""

    def reset_env(self, key, params):
        obs, state = super().reset_env(key, params)
        return obs, {"position": state.position}

    def step_env(self, key, state, action, params):
        full = custom.ChainState(time=0, position=state["position"])
        obs, full, reward, terminated, info = super().step_env(key, full, action, params)
        return obs, {"position": full.position}, reward, terminated, info


@pytest.fixture(scope="module")
def cartpole_metrics(keys8):
    return _train(gymnax.make("CartPole-v1"), keys8[:2])


def test_gymnax_environments_step_directly_and_wrappers_through_their_step():
    env, _ = gymnax.make("CartPole-v1")
    assert steps_directly(env) and steps_directly(custom.Chain())
    for wrapped in (LogWrapper(env), FlattenObservationWrapper(env), StickyActionWrapper(env, 0.25),
                    DoubleReward(env), OldApiChain()):
        assert not steps_directly(wrapped)
        assert make_env(wrapped).route == "step"
    assert make_env(NoTimeChain()).route == "step_env"


def test_log_wrapper_trains_like_the_environment_it_wraps(cartpole_metrics, keys8):
    # CartPole's step draws nothing: through LogWrapper's step (auto-reset thrown away) the runs are the same.
    wrapped = _train(LogWrapper(gymnax.make("CartPole-v1")[0]), keys8[:2])
    np.testing.assert_allclose(wrapped.episode_returns, cartpole_metrics.episode_returns)
    np.testing.assert_allclose(wrapped.loss, cartpole_metrics.loss, rtol=1e-5)


def test_a_reward_scaling_wrapper_scales_the_recorded_returns(cartpole_metrics, keys8):
    doubled = _train(DoubleReward(gymnax.make("CartPole-v1")[0]), keys8[:2])
    assert np.all(np.isfinite(doubled.loss))
    # The first update's episodes are played by the same initial policy: each return exactly doubled.
    np.testing.assert_array_equal(doubled.episode_returns[:, 0], 2 * cartpole_metrics.episode_returns[:, 0])


def test_sticky_actions_and_flattened_images_train(keys8):
    sticky = _train(StickyActionWrapper(gymnax.make("CartPole-v1")[0], 0.5), keys8[:2])
    assert np.all(np.isfinite(sticky.loss)) and np.all(sticky.episode_length >= 1)
    breakout, params = gymnax.make("Breakout-MinAtar")
    flat = make_env((FlattenObservationWrapper(breakout), params))
    assert flat.obs_shape == (400,) and flat.route == "step"
    metrics = _train((FlattenObservationWrapper(breakout), params), keys8[:2], num_updates=2)
    assert np.all(np.isfinite(metrics.loss)) and np.all(metrics.episode_length >= 1)


def test_skipping_the_auto_reset_collects_what_stepping_through_step_collects():
    """The fast path (`FastPaths.skip_auto_reset`) against the plain one, on an environment whose step draws
    nothing: the same episodes, step for step."""
    spec = make_env("CartPole-v1")
    policy = lambda params, obs: obs[..., :2] * params  # noqa: E731 - a fixed, state-dependent policy
    collected = [jax.jit(make_collect(spec, policy, 4, categorical(), skip_auto_reset=skip, keep_last_obs=True))(
        jnp.float32(3.0), jax.random.key(1)) for skip in (False, True)]
    for plain, fast in zip(jax.tree.leaves(collected[0]), jax.tree.leaves(collected[1]), strict=True):
        np.testing.assert_array_equal(plain, fast)
    assert int(collected[0].lengths.max()) > 5


def test_an_older_five_value_step_api_trains_with_its_own_limit_and_pgjax_s_cap(keys8):
    spec = make_env(OldApiChain())
    assert spec.max_steps == 9 and spec.route == "step"
    metrics = _train(OldApiChain(), keys8[:2], num_updates=4)
    assert np.all(metrics.episode_length <= 9) and np.all(np.isfinite(metrics.loss))
    capped = make_env(OldApiChain(), max_episode_steps=2)
    assert capped.max_steps == 2
    trajectory = jax.jit(make_collect(capped, lambda p, obs: jnp.zeros(obs.shape[:-1] + (2,)), 16))(
        None, jax.random.key(0))
    # Two steps cannot reach position 3: every episode is cut off, a truncation.
    assert np.all(np.asarray(trajectory.lengths) == 2) and np.asarray(trajectory.truncated).all()


def test_an_environment_without_time_in_its_state_is_stepped_by_step_env(keys8):
    metrics = _train(NoTimeChain(), keys8[:2])
    assert np.all(metrics.episode_length <= 8) and np.all(np.isfinite(metrics.loss))


def test_the_step_limit_is_pgjax_s_own_and_a_missing_one_asks_for_the_cap():
    @struct.dataclass
    class NoLimit:
        size: int = 3

    with pytest.raises(ValueError, match="declares no step limit .* give --max-episode-steps N"):
        make_env((NoTimeChain(), NoLimit()))
    assert make_env((NoTimeChain(), NoLimit()), max_episode_steps=7).max_steps == 7
    assert make_env("CartPole-v1", max_episode_steps=100).max_steps == 100
    assert make_env("CartPole-v1", max_episode_steps=10_000).max_steps == 500  # the sooner of the two


class _FailingStep(custom.Chain):
    def step_env(self, key, state, action, params):
        raise NotImplementedError


class _FailingWrapperStep(LogWrapper):
    def step(self, key, state, action, params=None):
        raise KeyError("final_observation")


@pytest.mark.parametrize("env, message", [
    (_FailingStep(), "_FailingStep: step_env failed when traced: NotImplementedError: (no message)"),
    (_FailingWrapperStep(gymnax.make("CartPole-v1")[0]), "step failed when traced: KeyError: 'final_observation'"),
    (lambda: None, "lacks reset or reset_env, step or step_env, observation_space, action_space"),
])
def test_a_failed_call_is_named_with_its_error(env, message):
    with pytest.raises(ValueError) as raised:
        make_env(env)
    assert message in str(raised.value) and "\n" not in str(raised.value)


def _factory(size: int = 4, slippery: bool = False, scale: float = 1.0, tag: str | None = None, **rest):
    return size, slippery, scale, tag, rest


def test_factory_arguments_are_typed_by_the_signature():
    kwargs = typed_kwargs(_factory, ["size=8", "slippery=true", "scale=0.5", "tag=none", "other=3"], "m:f")
    assert kwargs == {"size": 8, "slippery": True, "scale": 0.5, "tag": None, "other": 3}
    assert typed_kwargs(_factory, ["tag=abc"], "m:f") == {"tag": "abc"}
    for pairs, message in ((["size=big"], "takes size as int"), (["slippery=maybe"], "takes slippery as bool"),
                           (["size"], "key=value pairs"), (["size=1", "size=2"], "gives size twice")):
        with pytest.raises(ValueError, match=message):
            typed_kwargs(_factory, pairs, "m:f")
    with pytest.raises(ValueError, match=r"takes no argument 'width' \(it takes length\)"):
        make_env("tests.custom:Chain", env_kwargs=["width=3"])
    assert make_env("tests.custom:Chain", env_kwargs=["length=6"]).obs_shape == (6,)
    with pytest.raises(ValueError, match="needs --env package.module:factory"):
        make_env("CartPole-v1", env_kwargs=["length=6"])


def test_the_command_line_records_the_factory_arguments_and_the_cap(tmp_path):
    out = tmp_path / "chain"
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    train = [sys.executable, "-m", "pgjax.train", "--env", "tests.custom:Chain", "--env-kwargs", "length=6",
             "--max-episode-steps", "5", "--num-seeds", "2", "--num-updates", "2", "--quiet", "--out", str(out)]
    done = subprocess.run(train, cwd=ROOT, env=environ, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    static = json.loads((out / "config.json").read_text())["grid"][0]["config"]["static"]
    assert static["env_kwargs"] == ["length=6"] and static["max_episode_steps"] == 5
    evaluate = [sys.executable, "-m", "pgjax.evaluate", str(out), "--episodes", "3", "--env", "tests.custom:Chain"]
    done = subprocess.run(evaluate, cwd=ROOT, env=environ, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr  # the policy's 6 inputs: the factory was called with length=6


def test_the_documented_fifteen_line_environment_trains(keys8):
    text = (ROOT / "docs" / "environments.md").read_text()
    code = text.split("<!-- contract-example -->\n```python\n", 1)[1].split("```", 1)[0]
    assert len([line for line in code.splitlines() if line.strip()]) <= 16  # the imports and the class, 16 lines
    namespace: dict = {}
    exec(compile(code, "docs/environments.md", "exec"), namespace)
    spec = make_env(namespace["Coin"]())
    assert spec.max_steps == 10 and spec.route == "step" and spec.obs_shape == (2,)
    metrics = _train(namespace["Coin"](), keys8[:4], num_updates=30, episodes_per_update=4)
    # Calling the coin right pays 10 an episode, guessing 5: the policy learns to read the observation.
    assert metrics.episode_return[:, -5:].mean() > 8.0 > 6.0 > metrics.episode_return[:, :3].mean()
