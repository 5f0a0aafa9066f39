"""The learned value baseline: advantages, GAE, the value loss and its gradient, training, memory."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pgjax.algo.config import Config, Hyperparams, StaticConfig
from pgjax.algo.fast import blocks
from pgjax.algo.loss import value_loss
from pgjax.algo.policy import MLPPolicy
from pgjax.algo.trainer import make_train
from pgjax.algo.validation import validate_static
from pgjax.algo.weights import advantage_weights, explained_variance, value_advantages
from pgjax.running import grid, sweep

T, E, D = 9, 4, 3
LENGTHS = np.array([9, 5, 1, 3])
TRUNCATED = np.array([True, False, True, False])


def _batch(seed: int = 0):
    rng = np.random.default_rng(seed)
    valid = np.arange(T)[:, None] < LENGTHS[None, :]
    reward = np.where(valid, rng.normal(size=(T, E)), 0).astype(np.float32)
    values = rng.normal(size=(T, E)).astype(np.float32)  # anything on padding rows
    last_values = rng.normal(size=E).astype(np.float32)
    return reward, valid, values, last_values


def _direct(reward, valid, values, last_values, gamma, lam):
    """One episode at a time, in float64: (G_t - V_t, G_t) with bootstrapping, and GAE(lam) advantages."""
    adv_mc, target_mc, adv_gae = (np.zeros((T, E)) for _ in range(3))
    for e in range(E):
        n = LENGTHS[e]
        v = np.append(values[:n, e].astype(np.float64), last_values[e] if TRUNCATED[e] else 0.0)
        g = v[n]  # V(s_n) for a truncated episode, 0 after a terminal state
        a = 0.0
        for t in reversed(range(n)):
            g = reward[t, e] + gamma * g
            delta = reward[t, e] + gamma * v[t + 1] - v[t]
            a = delta + gamma * lam * a
            adv_mc[t, e], target_mc[t, e], adv_gae[t, e] = g - v[t], g, a
    return adv_mc, target_mc, adv_gae


def test_advantages_bootstrap_truncated_episodes_and_match_a_direct_computation():
    reward, valid, values, last_values = _batch()
    adv_mc, target_mc, adv_gae = _direct(reward, valid, values, last_values, 0.9, 0.7)
    adv, target = value_advantages(reward, valid, TRUNCATED, values, last_values, 0.9, 0.7, "return")
    np.testing.assert_allclose(adv, adv_mc, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(target, target_mc, rtol=1e-5, atol=1e-5)
    gae, gae_target = value_advantages(reward, valid, TRUNCATED, values, last_values, 0.9, 0.7, "gae")
    np.testing.assert_allclose(gae, adv_gae, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gae_target, np.where(valid, adv_gae + values, 0), rtol=1e-5, atol=1e-5)
    # GAE(1) is the bootstrapped return minus the value; GAE(0) the one-step TD error
    gae1, _ = value_advantages(reward, valid, TRUNCATED, values, last_values, 0.9, 1.0, "gae")
    np.testing.assert_allclose(gae1, adv_mc, rtol=1e-4, atol=1e-5)
    for x in (adv, target, gae, gae_target):
        assert np.all(np.asarray(x)[~valid] == 0)


def test_value_norm_standardises_advantages_over_the_batch():
    reward, valid, values, last_values = _batch(1)
    adv, _ = value_advantages(reward, valid, TRUNCATED, values, last_values, 0.9, 0.7, "gae")
    w = np.asarray(advantage_weights(adv, valid, "value_norm"))
    a = np.asarray(adv)[valid]
    np.testing.assert_allclose(w[valid], (a - a.mean()) / a.std(ddof=1), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(advantage_weights(adv, valid, "value")), adv)


def test_explained_variance():
    _, valid, values, _ = _batch(2)
    target = np.where(valid, values * 2.0 + 1.0, 0)
    np.testing.assert_allclose(explained_variance(target, target, valid), 1.0, rtol=1e-6)
    v = np.asarray(values)[valid].astype(np.float64)
    t = np.asarray(target)[valid]
    np.testing.assert_allclose(explained_variance(values, target, valid), 1 - np.var(t - v) / np.var(t), rtol=1e-4)


MODULE = MLPPolicy(1, hidden=(8,))


def _value_fn(params, obs):
    return MODULE.apply({"params": params}, obs)[..., 0]


@pytest.mark.parametrize("block_rows", [4, 12, 36])  # slices of 1, 3 and 9 steps
def test_value_loss_gradient_and_values_match_a_direct_computation(block_rows):
    rng = np.random.default_rng(3)
    valid = np.arange(T)[:, None] < LENGTHS[None, :]
    obs = np.where(valid[..., None], rng.normal(size=(T, E, D)), 0).astype(np.float32)
    target = np.where(valid, rng.normal(size=(T, E)), 0).astype(np.float32)
    coef = valid / valid.sum()
    params = MODULE.init(jax.random.key(0), jnp.zeros(D))["params"]

    def direct(p):  # half the mean squared error over valid steps
        err = _value_fn(p, obs) - target
        return 0.5 * jnp.sum(jnp.where(valid, err**2, 0.0)) / valid.sum()

    value_gradient = blocks.make_value_gradient(_value_fn, block_rows=block_rows)
    loss, grads = value_gradient(params, obs, target, coef, valid)
    np.testing.assert_allclose(loss, direct(params), rtol=1e-5)
    np.testing.assert_allclose(loss, value_loss(_value_fn, params, obs, target, coef), rtol=1e-5)
    jax.tree.map(lambda g, w: np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-7), grads, jax.grad(direct)(params))
    values = blocks.make_value_forward(_value_fn, block_rows=block_rows)(params, obs, valid)
    np.testing.assert_allclose(np.asarray(values)[valid], np.asarray(_value_fn(params, obs))[valid], rtol=1e-5)
    assert np.all(np.asarray(values)[~valid] == 0)


def _value_config(**static) -> Config:
    static = {"hidden": (16,), "episodes_per_update": 4, "num_updates": 12, **static}
    base = StaticConfig(returns="reward_to_go", baseline="value", **static)
    return Config(base, Hyperparams(gamma=0.99, value_learning_rate=0.03, value_scale=10.0))


def test_training_with_a_value_baseline_learns_the_value(keys8):
    """With the policy all but fixed (learning rate 1e-8) the returns are stationary and V fits them."""
    config = _value_config(advantage="gae", num_updates=30)
    hparams = config.hparams.replace(learning_rate=1e-8).broadcast(4)
    state, metrics = jax.jit(jax.vmap(make_train(config)))(keys8[:4], hparams)
    value_loss_ = np.asarray(metrics.value_loss)
    ev = np.asarray(metrics.explained_variance)
    assert value_loss_.shape == (4, 30) and np.all(np.isfinite(value_loss_)) and np.all(value_loss_ > 0)
    assert np.all(value_loss_[:, -5:].mean(1) < 0.8 * value_loss_[:, :2].mean(1))
    assert np.all(np.isfinite(ev)) and np.all(ev <= 1) and ev[:, -5:].mean() > 0
    assert state.value_params is not None and not np.asarray(metrics.diverged).any()
    # without a value baseline the state carries no value network and the metrics are 0
    state0, metrics0 = jax.jit(make_train(dataclasses.replace(config, static=dataclasses.replace(
        config.static, baseline="batch_norm", advantage="return", num_updates=2))))(keys8[0])
    assert state0.value_params is None and np.all(np.asarray(metrics0.value_loss) == 0)


def test_value_settings_are_checked():
    with pytest.raises(ValueError, match="needs returns 'reward_to_go'"):
        validate_static(StaticConfig(baseline="value"))
    with pytest.raises(ValueError, match="advantage 'gae' needs a value baseline"):
        validate_static(StaticConfig(advantage="gae"))
    with pytest.raises(ValueError, match="gae_lambda must be in"):
        Hyperparams(gae_lambda=1.5).validate()


def test_memory_estimate_covers_a_value_baseline_with_gaussian_actions():
    """Pendulum: float action buffers, the value network and its buffers are in the estimate."""
    config = _value_config(env="Pendulum-v1", advantage="gae")
    config = dataclasses.replace(config, static=dataclasses.replace(config.static, num_updates=2))
    groups = grid.compile_groups(grid.expand_grid(config))
    _, info = sweep.train_sweep(groups, 4, 0, segment_updates=2)
    (estimate,) = info["memory_estimate"]
    planned = estimate["chunk_size"] * estimate["run_bytes"] + info["devices"] * estimate["device_bytes"]
    assert info["memory_bytes"] <= planned <= 4 * info["memory_bytes"], (info["memory_bytes"], planned)
