"""POPGym Arcade by name (`--env popgym-arcade/NAME`): building, termination vs truncation, its arguments,
gymnax 1.0.1 left intact, a short run. Skipped where popgym_arcade is not installed."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("popgym_arcade")

from pgjax.algo.envs import make_env  # noqa: E402
from pgjax.algo.suites import suite_names  # noqa: E402
from pgjax.algo.trainer import make_train  # noqa: E402

from .conftest import small_config  # noqa: E402

CARTPOLE = "popgym-arcade/CartPoleEasy"
LEFT = jnp.int32(2)


def test_the_suite_names_its_tasks_and_they_build_by_name_with_their_own_limits():
    names = suite_names("popgym-arcade")
    assert len(names) == 30 and "CartPoleEasy" in names and "MineSweeperHard" in names
    spec = make_env(CARTPOLE)
    assert (spec.obs_shape, spec.num_actions, spec.max_steps) == ((128, 128, 3), 5, 200)
    assert spec.obs_dtype == "uint8" and spec.obs_scale == pytest.approx(1 / 255) and spec.route == "step"
    assert make_env("popgym-arcade/BattleShipEasy").max_steps == 128  # the suite's max_episode_length
    assert make_env("popgym-arcade/CartPoleHard", max_episode_steps=30).max_steps == 30


def test_an_unknown_task_gets_close_names():
    with pytest.raises(ValueError, match="did you mean popgym-arcade/CartPoleEasy"):
        make_env("popgym-arcade/CartpoleEasy")


def test_gymnax_stays_gymnax_1_0():
    """The suite imports gymnax's modules without replacing them: pgjax's install check still passes."""
    from pgjax.running.install import check_installed

    make_env(CARTPOLE)
    check_installed()


@pytest.fixture(scope="module")
def cartpole():
    spec = make_env(CARTPOLE)
    reset = jax.jit(lambda params: spec.env.reset(jax.random.key(0), params))
    step = jax.jit(lambda state, params: spec.env.step(jax.random.key(1), state, LEFT, params))
    return spec, reset, step


def test_a_fall_is_a_termination_and_the_time_limit_a_truncation(cartpole):
    spec, reset, step = cartpole
    _, state = reset(spec.params)
    obs, after, reward, terminated, truncated, _ = step(state, spec.params)
    assert (bool(terminated), bool(truncated)) == (False, False) and obs.dtype == jnp.uint8
    assert float(reward) == pytest.approx(1 / 200) and int(after.time) == 1  # no reset
    # The suite ends an episode on the step after the cart left the track (it checks the state it steps from).
    off_track = state.replace(x=jnp.full_like(state.x, 3.0))
    _, after, reward, terminated, truncated, _ = step(off_track, spec.params)
    assert (bool(terminated), bool(truncated), float(reward)) == (True, False, 0.0)
    assert int(after.time) == 1
    last = state.replace(time=jnp.full_like(jnp.asarray(state.time), 199))
    _, after, _, terminated, truncated, _ = step(last, spec.params)
    assert (bool(terminated), bool(truncated), int(after.time)) == (False, True, 200)


def test_env_kwargs_reach_the_tasks_constructor(cartpole):
    spec, reset, step = cartpole
    partial = make_env(CARTPOLE, env_kwargs=["partial_obs=true"])
    assert partial.env.arcade.partial_obs is True and not spec.env.arcade.partial_obs
    _, state = reset(spec.params)
    full_obs = step(state, spec.params)[0]
    partial_obs = jax.jit(lambda s, p: partial.env.step(jax.random.key(1), s, LEFT, p)[0])(state, partial.params)
    assert not np.array_equal(full_obs, partial_obs)  # the partial view hides the cart and pole
    assert make_env(CARTPOLE, env_kwargs=["obs_size=256"]).obs_shape == (256, 256, 3)
    with pytest.raises(ValueError, match="takes no argument 'size'.*partial_obs, obs_size"):
        make_env(CARTPOLE, env_kwargs=["size=3"])
    with pytest.raises(ValueError, match="partial_obs as bool"):
        make_env(CARTPOLE, env_kwargs=["partial_obs=maybe"])
    with pytest.raises(ValueError, match="cannot build CartPoleEasy.*max_steps_in_episode"):
        make_env(CARTPOLE, env_kwargs=["max_steps_in_episode=20"])


def test_a_short_run_trains():
    config = small_config(env=CARTPOLE, max_episode_steps=8, num_updates=2, episodes_per_update=2)
    state, metrics = jax.jit(jax.vmap(make_train(config)))(jax.vmap(jax.random.key)(jnp.arange(2)))
    lengths = np.asarray(metrics.episode_length)
    assert lengths.shape == (2, 2) and np.all((lengths > 0) & (lengths <= 8))
    returns = np.asarray(metrics.episode_return)
    np.testing.assert_allclose(returns, lengths / 200, rtol=1e-5)  # 1/200 a step before the pole falls
    assert np.all(np.isfinite(np.asarray(metrics.loss)))
    np.testing.assert_allclose(np.asarray(state.env_steps), (lengths * 2).sum(axis=1))
