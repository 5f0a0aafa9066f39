"""Craftax by name (`--env craftax/NAME`): building, stepping apart termination and truncation, its arguments,
a short training run. Skipped where craftax is not installed."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("craftax")

from pgjax.algo.envs import make_env  # noqa: E402
from pgjax.algo.suites import suite_names  # noqa: E402
from pgjax.algo.trainer import make_train  # noqa: E402

from .conftest import small_config  # noqa: E402

CLASSIC = "craftax/Craftax-Classic-Symbolic-v1"
NOOP = jnp.int32(0)


def test_the_suite_names_its_tasks_and_each_builds_by_name():
    names = suite_names("craftax")
    assert set(names) == {
        "Craftax-Symbolic-v1", "Craftax-Pixels-v1", "Craftax-Classic-Symbolic-v1", "Craftax-Classic-Pixels-v1",
        "Craftax-Symbolic-AutoReset-v1", "Craftax-Pixels-AutoReset-v1", "Craftax-Classic-Symbolic-AutoReset-v1",
        "Craftax-Classic-Pixels-AutoReset-v1",
    }
    spec = make_env(CLASSIC)
    assert (spec.obs_shape, spec.num_actions, spec.max_steps, spec.action_kind) == ((1345,), 17, 10_000, "discrete")
    assert spec.solve_threshold is None and spec.route == "step"
    pixels = make_env("craftax/Craftax-Classic-Pixels-AutoReset-v1", max_episode_steps=50)
    assert len(pixels.obs_shape) == 3 and pixels.obs_shape[-1] == 3 and pixels.max_steps == 50


def test_an_unknown_task_gets_close_names():
    with pytest.raises(ValueError, match="did you mean craftax/Craftax-Classic-Symbolic-v1"):
        make_env("craftax/Craftax-Classic-Symbolc-v1")


def _jitted(spec):
    """(reset(params), step(state, params)): the environment's, jitted once (Craftax is slow op by op)."""
    reset = jax.jit(lambda params: spec.env.reset(jax.random.key(0), params))
    step = jax.jit(lambda state, params: spec.env.step(jax.random.key(1), state, NOOP, params))
    return reset, step


def _dying(state, timestep):
    """`state` with the player at 0 health (dead after the next step) and the time counter at `timestep`."""
    return state.replace(player_health=jnp.zeros_like(state.player_health),
                         timestep=jnp.full_like(state.timestep, timestep))


def test_the_time_limit_is_a_truncation_and_death_a_termination():
    spec = make_env(CLASSIC, env_kwargs=["max_timesteps=3"])
    reset, step = _jitted(spec)
    _, fresh = reset(spec.params)
    flags, state = [], fresh
    for _ in range(3):
        _, state, _, terminated, truncated, _ = step(state, spec.params)
        flags.append((bool(terminated), bool(truncated)))
    assert flags == [(False, False), (False, False), (False, True)]
    # The player at 0 health dies on the next step: a termination, also when it coincides with the time limit.
    for timestep in (0, 2):
        _, after, _, terminated, truncated, _ = step(_dying(fresh, timestep), spec.params)
        assert (bool(terminated), bool(truncated)) == (True, False)
        assert int(after.timestep) == timestep + 1


def test_an_auto_reset_task_keeps_the_observation_reached_not_a_reset():
    spec = make_env("craftax/Craftax-Classic-Symbolic-AutoReset-v1")
    reset, step = _jitted(spec)
    _, state = reset(spec.params)
    obs, after, _, terminated, _, _ = step(_dying(state, 5), spec.params)
    assert bool(terminated) and int(after.timestep) == 6  # a reset would have set it to 0
    np.testing.assert_array_equal(obs, jax.jit(spec.env.craftax.get_obs)(after))


def test_env_kwargs_reach_the_suites_params_and_static_params():
    spec = make_env(CLASSIC, env_kwargs=["max_timesteps=7", "day_length=50", "max_zombies=1"])
    assert spec.max_steps == 7 and spec.params.max_timesteps == 7 and spec.params.day_length == 50
    assert spec.env.craftax.static_env_params.max_zombies == 1
    with pytest.raises(ValueError, match="takes no --env-kwargs 'size'.*max_timesteps.*max_zombies"):
        make_env(CLASSIC, env_kwargs=["size=3"])
    with pytest.raises(ValueError, match="max_timesteps as int"):
        make_env(CLASSIC, env_kwargs=["max_timesteps=many"])


def test_a_short_run_trains():
    """A few updates under the cap: episodes end by it, and the policy moves (its entropy bonus alone gives
    a gradient where no achievement was reached in 16 steps)."""
    config = small_config(env=CLASSIC, max_episode_steps=16, num_updates=3, episodes_per_update=2)
    config = dataclasses.replace(config, hparams=dataclasses.replace(config.hparams, entropy_coef=0.01))
    state, metrics = jax.jit(jax.vmap(make_train(config)))(jax.vmap(jax.random.key)(jnp.arange(2)))
    lengths = np.asarray(metrics.episode_length)
    assert lengths.shape == (2, 3) and np.all((lengths > 0) & (lengths <= 16))
    assert np.all(np.isfinite(np.asarray(metrics.loss))) and np.all(np.asarray(metrics.grad_norm) > 0)
    np.testing.assert_allclose(np.asarray(state.env_steps), (lengths * 2).sum(axis=1))  # 2 episodes an update
