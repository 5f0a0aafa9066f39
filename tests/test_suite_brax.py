"""brax by name (`--env brax/NAME`): spaces, termination apart from truncation, --env-kwargs, training."""

from __future__ import annotations

import dataclasses

import pytest

pytest.importorskip("brax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from pgjax.algo.envs import make_env, step_function  # noqa: E402
from pgjax.algo.presets import preset_config  # noqa: E402
from pgjax.algo.suites import suite_names  # noqa: E402
from pgjax.algo.trainer import make_train  # noqa: E402

from .conftest import small_config  # noqa: E402

ENV = "brax/inverted_pendulum"


EPISODE_LENGTH = 25


@pytest.fixture(scope="module")
def short_episodes():
    """inverted_pendulum on the positional backend, brax's EpisodeWrapper cutting episodes at 25 steps."""
    return make_env(ENV, env_kwargs=("backend=positional", f"episode_length={EPISODE_LENGTH}"))


@pytest.fixture(scope="module")
def rollout(short_episodes):
    """action [1] -> (terminated, truncated) [EPISODE_LENGTH] of an episode always taking `action`,
    by pgjax's step (`step_function`); one compile for the module."""
    spec = short_episodes
    step = step_function(spec.env, spec.route)

    def run(action):
        _, state = spec.env.reset(jax.random.key(0), spec.params)

        def body(state, key):
            _, state, _, terminated, truncated = step(key, state, action, spec.params)
            return state, (terminated, truncated)

        keys = jax.random.split(jax.random.key(1), EPISODE_LENGTH)
        return jax.lax.scan(body, state, keys)[1]

    compiled = jax.jit(run)
    return lambda action: jax.tree.map(np.asarray, compiled(action))


def test_names_and_spaces(short_episodes):
    assert {"inverted_pendulum", "ant", "halfcheetah"} <= set(suite_names("brax"))
    spec = short_episodes
    assert spec.obs_shape == (4,) and spec.action_kind == "continuous" and spec.num_actions == 1
    assert (spec.action_low, spec.action_high) == ((-1.0,), (1.0,))
    assert spec.route == "step" and spec.max_steps == EPISODE_LENGTH  # EpisodeWrapper's limit, the env's own


def test_the_step_limit_is_a_truncation_not_a_termination(rollout):
    terminated, truncated = rollout(jnp.zeros(1))  # no push: the pole stays within 0.2 rad for 25 steps
    assert not terminated.any()
    assert np.flatnonzero(truncated).tolist() == [EPISODE_LENGTH - 1]


def test_a_falling_pole_is_a_termination_not_a_truncation(rollout):
    terminated, truncated = rollout(jnp.ones(1))  # full push one way: the pole passes 0.2 rad (step 7)
    assert terminated.any() and not truncated.any()
    assert 0 < np.argmax(terminated) < EPISODE_LENGTH - 1


def test_env_kwargs_reach_brax(short_episodes):
    unwrapped = short_episodes.env.wrapped.unwrapped
    assert unwrapped._backend == "positional"  # brax's own record of the backend it was built with
    assert make_env(ENV, env_kwargs=("action_repeat=2", "episode_length=9")).max_steps == 5  # ceil(9 / 2)
    assert make_env(ENV, max_episode_steps=3, env_kwargs=("backend=positional",)).max_steps == 3


def test_bad_names_and_arguments_are_one_line():
    with pytest.raises(ValueError, match="did you mean brax/inverted_pendulum") as error:
        make_env("brax/inverted_pendulm")
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="bakend: brax/inverted_pendulum takes backend, n_frames, debug, "
                                         "episode_length, action_repeat"):
        make_env(ENV, env_kwargs=("bakend=positional",))
    with pytest.raises(ValueError, match="brax's backends are generalized, positional, spring, mjx"):
        make_env(ENV, env_kwargs=("backend=euler",))


def test_the_preset_is_the_measured_task():
    config = preset_config("default", ENV)
    assert config.static.env == ENV and config.static.env_kwargs == ("backend=positional",)
    assert config.static.max_episode_steps == 200


def test_training_by_name_trains_and_caps_episodes():
    """A tiny budget (brax compiles slowly): two seeds, 3 updates of 4 episodes capped at 20 steps."""
    config = small_config(env=ENV, env_kwargs=("backend=positional",), max_episode_steps=20, num_updates=3)
    config = dataclasses.replace(config, hparams=dataclasses.replace(config.hparams, learning_rate=0.01))
    _, metrics = jax.jit(jax.vmap(make_train(config)))(jax.random.split(jax.random.key(0), 2))
    lengths, returns = np.asarray(metrics.episode_length), np.asarray(metrics.episode_returns)
    assert np.all(np.isfinite(np.asarray(metrics.loss))) and np.all(np.asarray(metrics.grad_norm) > 0)
    assert np.all((lengths >= 1) & (lengths <= 20))
    assert np.all((returns >= 1) & (returns <= 20))  # 1 per step the pole is up
