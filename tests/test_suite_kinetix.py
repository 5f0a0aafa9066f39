"""Kinetix by name (`--env kinetix/<size>/<level>`): spaces, termination apart from truncation, --env-kwargs,
training."""

from __future__ import annotations

import dataclasses

import pytest

pytest.importorskip("kinetix")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from pgjax.algo.envs import make_env, step_function  # noqa: E402
from pgjax.algo.suites import suite_names  # noqa: E402
from pgjax.algo.suites.kinetix_suite import make  # noqa: E402
from pgjax.algo.trainer import make_train  # noqa: E402

from .conftest import small_config  # noqa: E402

LEVEL = "s/h0_weak_thrust"  # a ball on a platform: the thrusters push it onto the goal, else it rolls into a hazard
ENV = f"kinetix/{LEVEL}"
STEPS = 30
NOOP, THRUST = jnp.zeros(6), jnp.array([0.0, 0.0, 0.0, 0.0, 1.0, 1.0])  # continuous: 4 motors, 2 thrusters


@pytest.fixture(scope="module")
def continuous():
    return make_env(ENV, env_kwargs=("action_type=continuous",))


@pytest.fixture(scope="module")
def rollout(continuous):
    """(action [6], params) -> (reward, terminated, truncated) [STEPS] from the level's start, always taking
    `action`, by pgjax's step (`step_function`); params are an argument, so one compile serves every limit."""
    spec = continuous
    step = step_function(spec.env, spec.route)

    def run(action, params):
        _, state = spec.env.reset(jax.random.key(0), params)

        def body(state, key):
            _, state, reward, terminated, truncated = step(key, state, action, params)
            return state, (reward, terminated, truncated)

        return jax.lax.scan(body, state, jax.random.split(jax.random.key(1), STEPS))[1]

    return jax.jit(run)


def test_names_are_the_shipped_levels():
    names = suite_names("kinetix")
    assert LEVEL in names and "m/h3_car_thrust" in names and len(names) > 50
    assert all(name.split("/")[0] in ("s", "m", "l") for name in names)


def test_action_and_observation_types_become_pgjax_spaces():
    env, params = make(LEVEL)  # Kinetix's default actions, multi-discrete; pgjax's default observations
    assert np.asarray(env.action_space(params).nvec).tolist() == [3, 3, 3, 3, 2, 2]
    assert env.observation_space(params).shape == (140,)
    env, params = make(LEVEL, ("action_type=discrete", "observation_type=symbolic_entity"))
    assert env.action_space(params).n == 11  # 2 per motor binding, 1 per thruster binding, a no-op
    assert "attention_mask" in env.observation_space(params).spaces
    env, params = make(LEVEL, ("action_type=continuous", "observation_type=pixels"))
    box = env.action_space(params)
    assert box.shape == (6,) and np.all(np.asarray(box.low) == -1) and np.all(np.asarray(box.high) == 1)
    obs, _ = jax.eval_shape(lambda key: env.reset(key, params), jax.random.key(0))
    assert obs.shape == env.observation_space(params).shape == (125, 125, 3)  # the image of PixelsObservation


def test_spec_by_name(continuous):
    assert continuous.obs_shape == (140,) and continuous.action_kind == "continuous"
    assert continuous.max_steps == 256 and continuous.route == "step"  # the level's max_timesteps


def test_the_time_limit_is_a_truncation_not_a_termination(rollout, continuous):
    _, terminated, truncated = rollout(NOOP, continuous.params.replace(max_timesteps=10))
    assert np.argmax(np.asarray(truncated)) == 9 and not np.asarray(terminated)[:10].any()


def test_touching_the_goal_or_a_hazard_is_a_termination(rollout, continuous):
    reward, terminated, truncated = jax.tree.map(np.asarray, rollout(NOOP, continuous.params))
    end = np.argmax(terminated)  # no thrust: the ball rolls into the hazard
    assert terminated.any() and not truncated.any() and reward[end] < -0.9
    reward, terminated, truncated = jax.tree.map(np.asarray, rollout(THRUST, continuous.params))
    end = np.argmax(terminated)  # full thrust: onto the goal
    assert terminated.any() and not truncated.any() and reward[end] > 0.9


def test_env_kwargs_reach_kinetix():
    spec = make_env(ENV, env_kwargs=("max_timesteps=12", "action_type=discrete", "dense_reward_scale=0"))
    assert spec.max_steps == 12 and spec.action_kind == "discrete" and spec.num_actions == 11
    assert spec.params.max_timesteps == 12 and spec.params.dense_reward_scale == 0.0


def test_refusals_are_one_line():
    with pytest.raises(ValueError, match="did you mean kinetix/s/h0_weak_thrust") as error:
        make_env("kinetix/s/h0_weak_thrus")
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="pgjax serves Kinetix's symbolic_flat, symbolic_entity, pixels"):
        make(LEVEL, ("observation_type=symbolic_flat_padded",))
    with pytest.raises(ValueError, match="takes one of multi_discrete, discrete, continuous"):
        make(LEVEL, ("action_type=multidiscrete",))
    with pytest.raises(ValueError, match="takes no argument 'max_timestep'.*max_timesteps"):
        make(LEVEL, ("max_timestep=3",))


def test_training_by_name_trains_and_caps_episodes():
    """A tiny budget (Kinetix compiles slowly): two seeds, 2 updates of 4 episodes of at most 16 steps."""
    config = small_config(env=ENV, env_kwargs=("max_timesteps=16",), num_updates=2)
    config = dataclasses.replace(config, hparams=dataclasses.replace(config.hparams, learning_rate=0.01))
    _, metrics = jax.jit(jax.vmap(make_train(config)))(jax.random.split(jax.random.key(0), 2))
    lengths = np.asarray(metrics.episode_length)
    assert np.all(np.isfinite(np.asarray(metrics.loss))) and np.all(np.asarray(metrics.grad_norm) > 0)
    assert np.all((lengths >= 1) & (lengths <= 16))
    assert np.all(np.isfinite(np.asarray(metrics.episode_returns)))
