"""Rollouts: episode boundaries, truncation, dynamics, and vmap folding (the folded rollout, `pgjax.algo.fast`,
against the plain one of `pgjax.algo.rollout`)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnax.environments.classic_control.cartpole import EnvState

from pgjax.algo import rollout
from pgjax.algo.envs import make_env
from pgjax.algo.pieces import choose_collect as make_collect
from pgjax.algo.policy import MLPPolicy

MAX_STEPS, E, RUNS = 30, 6, 4


@pytest.fixture(scope="module")
def setup():
    spec = make_env("CartPole-v1")
    # A short time limit, so that both terminations and truncations occur.
    spec = spec._replace(params=spec.params.replace(max_steps_in_episode=MAX_STEPS), max_steps=MAX_STEPS)
    module = MLPPolicy(spec.num_actions, hidden=(8,))

    def apply_fn(params, obs):
        return module.apply({"params": params}, obs)

    keys = jax.vmap(jax.random.key)(jnp.arange(RUNS))
    params = jax.vmap(lambda k: module.init(k, jnp.zeros(spec.obs_shape))["params"])(keys)
    collect = make_collect(spec, apply_fn, E)
    traj = jax.jit(jax.vmap(collect))(params, keys)
    return spec, collect, params, keys, jax.tree.map(np.asarray, traj)


def test_episodes_are_contiguous_from_step_zero(setup):
    *_, traj = setup
    lengths = traj.valid.sum(axis=1)
    assert lengths.min() >= 1 and lengths.max() <= MAX_STEPS
    steps = np.arange(MAX_STEPS)[None, :, None]
    np.testing.assert_array_equal(traj.valid, steps < lengths[:, None, :])
    for field in (traj.obs, traj.action, traj.reward):
        padding = ~traj.valid.reshape(traj.valid.shape + (1,) * (field.ndim - 3))
        assert np.all(np.where(padding, field, 0) == 0), "padding rows must be zero"
    assert np.all(traj.reward[traj.valid] == 1.0)  # CartPole pays 1 per step, the last one included


def test_truncation_is_not_termination(setup):
    spec, *_, traj = setup
    lengths = traj.valid.sum(axis=1)
    assert traj.truncated.any() and (~traj.truncated).any(), "need both kinds of ending in this sample"
    np.testing.assert_array_equal(traj.truncated, lengths == MAX_STEPS)


def test_transitions_follow_the_dynamics_and_end_where_the_env_ends(setup):
    spec, *_, traj = setup
    env, params = spec.env, spec.params
    for b in range(RUNS):
        for e in range(E):
            n = int(traj.valid[b, :, e].sum())
            for t in range(n):
                x, x_dot, theta, theta_dot = traj.obs[b, t, e]
                state = EnvState(x=x, x_dot=x_dot, theta=theta, theta_dot=theta_dot, time=t)
                obs, state, _, terminated, _ = env.step_env(jax.random.key(0), state, traj.action[b, t, e], params)
                ended = bool(terminated) or bool(env.is_truncated(state, params))
                if t + 1 < n:
                    assert not ended, f"episode ({b},{e}) went on after it ended at step {t}"
                    np.testing.assert_allclose(traj.obs[b, t + 1, e], obs, rtol=1e-5, atol=1e-6)
                else:
                    assert ended, f"episode ({b},{e}) stopped at step {t} without ending"
                    assert bool(terminated) != bool(traj.truncated[b, e])


def test_vmapped_rollout_equals_each_run_alone(setup):
    """Folding runs into one loop changes nothing about any run's episodes."""
    _, collect, params, keys, traj = setup
    for b in range(RUNS):
        alone = jax.jit(collect)(jax.tree.map(lambda x: x[b], params), keys[b])
        for name in ("obs", "action", "reward", "valid", "truncated"):
            np.testing.assert_array_equal(getattr(alone, name), getattr(traj, name)[b], err_msg=name)


def test_nested_vmap_folds_into_one_batch(setup):
    """vmap over a grid of 2, then runs: the same episodes as the flat batch."""
    _, collect, params, keys, traj = setup
    grid = lambda x: x.reshape((2, RUNS // 2) + x.shape[1:])
    nested = jax.jit(jax.vmap(jax.vmap(collect)))(jax.tree.map(grid, params), grid(keys))
    np.testing.assert_array_equal(np.asarray(nested.action).reshape(traj.action.shape), traj.action)
    np.testing.assert_array_equal(np.asarray(nested.valid).reshape(traj.valid.shape), traj.valid)
    # one loop for the whole batch: every run reports the batch's longest episode
    longest = traj.valid.sum(axis=1).max()
    assert np.all(np.asarray(nested.loop_steps) == longest) and np.all(traj.loop_steps == longest)


def test_plain_rollout_gives_the_folded_rollouts_episodes(setup):
    """The reference rollout (one loop per run, vmapped plainly) and the folded one: the same episodes; the
    plain loop of each run stops at that run's longest episode."""
    spec, _, params, keys, traj = setup
    module = MLPPolicy(spec.num_actions, hidden=(8,))
    # the fixture's environment route (the folded rollout's default); the routes are compared in test_env_contract
    plain = rollout.make_collect(spec, lambda p, o: module.apply({"params": p}, o), E, skip_auto_reset=True)
    got = jax.tree.map(np.asarray, jax.jit(jax.vmap(plain))(params, keys))
    for name in ("obs", "action", "reward", "valid", "truncated"):
        np.testing.assert_array_equal(getattr(got, name), getattr(traj, name), err_msg=name)
    np.testing.assert_array_equal(got.loop_steps, traj.valid.sum(axis=1).max(axis=1))
