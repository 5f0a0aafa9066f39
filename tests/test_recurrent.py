"""Recurrent policies (`--network gru/lstm`): the sliced gradient and values against the whole-episode scans,
the policy state through the rollout and evaluation, and a memory task learned that an MLP cannot learn."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pgjax.algo import loss
from pgjax.algo.config import Config, FastPaths
from pgjax.algo.fast import recurrent
from pgjax.algo.policy import RecurrentPolicy, categorical, make_apply_fn, make_value_fn, recurrence
from pgjax.algo.presets import PRESETS
from pgjax.algo.rollout import Trajectory
from pgjax.algo.trainer import make_train
from pgjax.algo.weights import recurrent_values
from pgjax.results.evaluation import policy_callable


def _batch(num_steps=37, lengths=(3, 37, 10, 1, 20), obs_size=4, actions=3):
    keys = jax.random.split(jax.random.key(1), 4)
    lengths = jnp.array(lengths)
    valid = jnp.arange(num_steps)[:, None] < lengths[None]
    obs = jnp.where(valid[..., None], jax.random.normal(keys[0], (num_steps, len(lengths), obs_size)), 0.0)
    action = jnp.where(valid, jax.random.randint(keys[1], valid.shape, 0, actions), 0)
    weight = jax.random.normal(keys[2], valid.shape)
    last_obs = jax.random.normal(keys[3], (len(lengths), obs_size))
    return obs, action, weight, valid / valid.sum(), valid, last_obs


# block rows 5 over 5 episodes: slices of 1 step; 40: of 8 steps, the last one partial (clamped rows); 1000: one
@pytest.mark.parametrize("cell,block_rows", [("gru", 5), ("lstm", 5), ("gru", 40), ("lstm", 1000)])
def test_sliced_policy_gradient_is_the_whole_episode_gradient(cell, block_rows):
    module = RecurrentPolicy(3, (16, 8), cell)
    params = module.init(jax.random.key(0), jnp.zeros(4))["params"]
    obs, action, weight, coef, valid, _ = _batch()
    dist = categorical()
    plain = loss.make_policy_gradient(make_apply_fn(module), dist)(params, obs, action, weight, coef, valid, 0.01)
    sliced = recurrent.make_policy_gradient(recurrence(module), dist, True, block_rows)(
        params, obs, action, weight, coef, valid, 0.01)
    for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(sliced)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_recurrent_gradient_matches_a_python_loop_over_each_episode():
    """The loss recomputed by hand, one episode at a time from the zero state, step by step."""
    module = RecurrentPolicy(3, (8,), "gru")
    params = module.init(jax.random.key(0), jnp.zeros(4))["params"]
    obs, action, weight, coef, valid, _ = _batch(num_steps=13, lengths=(3, 13, 5, 1))  # slices of 2: the last clamped
    dist = categorical()
    step = recurrence(module).step

    def by_hand(p):
        total = 0.0
        for e in range(valid.shape[1]):
            state = module.initial_carry((1,))
            for t in range(int(valid[:, e].sum())):
                state, out = step(p, state, obs[t, e][None])
                total = total - dist.log_prob(out, action[t, e][None])[0] * weight[t, e] * coef[t, e]
        return total

    expected = jax.grad(by_hand)(params)
    sliced = recurrent.make_policy_gradient(recurrence(module), dist, False, 10)(
        params, obs, action, weight, coef, valid, 0.0)[1]
    for a, b in zip(jax.tree.leaves(expected), jax.tree.leaves(sliced)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("block_rows", [5, 1000])
def test_sliced_values_and_value_gradient_match_the_whole_episode_ones(block_rows):
    module = RecurrentPolicy(1, (8,), "lstm")
    params = module.init(jax.random.key(0), jnp.zeros(4))["params"]
    obs, _, target, coef, valid, last_obs = _batch()
    traj = Trajectory(obs=obs, action=None, reward=None, valid=valid, truncated=None, loop_steps=None,
                      last_obs=last_obs)
    value_fn = make_value_fn(module)
    plain = recurrent_values(value_fn, params, traj)
    sliced = recurrent.make_value_forward(recurrence(module), block_rows)(params, traj)
    for a, b in zip(plain, sliced):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    plain_grad = loss.make_value_gradient(value_fn)(params, obs, target, coef, valid)
    sliced_grad = recurrent.make_value_gradient(recurrence(module), block_rows)(params, obs, target, coef, valid)
    for a, b in zip(jax.tree.leaves(plain_grad), jax.tree.leaves(sliced_grad)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def _memory_chain(network: str, **static) -> Config:
    config = PRESETS["default"]
    return dataclasses.replace(config, static=dataclasses.replace(
        config.static, **{"env": "MemoryChain-bsuite", "network": network, "num_updates": 60, **static}),
        hparams=dataclasses.replace(config.hparams, learning_rate=0.01))


@pytest.fixture(scope="module")
def trained_gru():
    config = _memory_chain("gru")
    state, metrics = jax.jit(jax.vmap(make_train(config)))(jax.random.split(jax.random.key(0), 4))
    return config, state, metrics


def test_gru_learns_the_memory_chain_an_mlp_cannot(trained_gru):
    """MemoryChain-bsuite shows its cue at step 0 only and pays +1 or -1 for recalling it at the end."""
    _, _, metrics = trained_gru
    assert float(metrics.episode_return[:, -10:].mean()) > 0.6
    mlp = _memory_chain("mlp")
    _, mlp_metrics = jax.jit(jax.vmap(make_train(mlp)))(jax.random.split(jax.random.key(0), 4))
    assert float(mlp_metrics.episode_return[:, -10:].mean()) < 0.4


def test_recurrent_training_matches_the_reference_path():
    config = _memory_chain("lstm", num_updates=3)
    keys = jax.random.split(jax.random.key(3), 2)
    fast = jax.jit(jax.vmap(make_train(config)))(keys)[1]
    reference = jax.jit(jax.vmap(make_train(config, fast=dataclasses.replace(
        FastPaths.reference(), skip_auto_reset=True, inverse_cdf_sampling=True))))(keys)[1]
    np.testing.assert_array_equal(fast.episode_returns, reference.episode_returns)
    np.testing.assert_allclose(fast.loss, reference.loss, rtol=1e-4, atol=1e-6)


def test_policy_callable_carries_the_state_through_an_episode(trained_gru):
    """The trained GRU's callable, stepped by hand through MemoryChain episodes, recalls the cue; reset()
    starts the next episode from the zero state."""
    config, state, _ = trained_gru
    params = jax.tree.map(lambda x: x[0], state.params)
    act = policy_callable(config, params)
    assert act.recurrent
    from pgjax.algo.envs import env_for
    spec = env_for(config.static)
    returns = []
    for seed in range(6):
        obs, env_state = spec.env.reset(jax.random.key(seed), spec.params)
        act.reset()
        total, done, t = 0.0, False, 0
        while not done:
            obs, env_state, reward, done, *_ = spec.env.step(jax.random.key(100 + t), env_state, act(np.asarray(obs)),
                                                             spec.params)
            total, t = total + float(reward), t + 1
        returns.append(total)
    assert np.mean(returns) > 0.6


def test_a_stopped_recurrent_sweep_resumes_bitwise_and_its_estimate_covers_xla(tmp_path):
    """4 LSTM runs over 2 devices in chunks of 2, stopped mid-chunk and resumed from the checkpoint: the runs
    are bitwise the uninterrupted ones; the memory plan covers what XLA allocated."""
    from pgjax.running import grid, sweep

    from .test_memory import XLA_FACTOR

    def groups():
        return grid.compile_groups(grid.expand_grid(_memory_chain("lstm", num_updates=6, hidden=(8,),
                                                                  episodes_per_update=4)))

    polls = []

    def stop_in_the_second_chunk():  # chunk 0 polls after its segments of 3 + 3 updates; chunk 1 after its first
        polls.append(1)
        return len(polls) == 3

    whole, info = sweep.train_sweep(groups(), 4, 0, segment_updates=4, max_parallel=2)
    assert info["devices"] == 2 and info["chunks"] == 2
    (estimate,) = info["memory_estimate"]
    planned = estimate["chunk_size"] * estimate["run_bytes"] + info["devices"] * estimate["device_bytes"]
    assert info["memory_bytes"] <= planned <= XLA_FACTOR * info["memory_bytes"], (info["memory_bytes"], planned)
    with pytest.raises(sweep.Interrupted):
        sweep.train_sweep(groups(), 4, 0, segment_updates=4, max_parallel=2, run_dir=tmp_path, checkpoint_every=3,
                          should_stop=stop_in_the_second_chunk)
    resumed, info = sweep.train_sweep(groups(), 4, 0, segment_updates=4, max_parallel=2, run_dir=tmp_path)
    assert info["resumed_updates"] == 6 + 3  # chunk 0 whole, chunk 1 after 3 of its updates
    same = jax.tree.map(np.array_equal, (whole[0].state, whole[0].metrics), (resumed[0].state, resumed[0].metrics))
    assert all(jax.tree.leaves(same))
    assert float(np.asarray(whole[0].metrics.episode_returns).std()) > 0  # the episodes did something
