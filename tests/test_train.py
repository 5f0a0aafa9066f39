"""Training end to end: learning, determinism, vmapped hyperparameters, metrics."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pgjax.algo.trainer import make_train, make_trainer, run_batch_updates
from pgjax.running.sharding import train_runs

from .conftest import small_config

NUM_UPDATES = 25


@pytest.fixture(scope="module")
def trained(keys8):
    config = small_config(num_updates=NUM_UPDATES)
    train = jax.jit(jax.vmap(make_train(config)))
    state, metrics = train(keys8)
    return config, train, state, jax.tree.map(np.asarray, metrics)


def test_training_improves_the_return_on_every_seed(trained):
    _, _, _, metrics = trained
    first = metrics.episode_return[:, :3].mean(axis=1)
    last = metrics.episode_return[:, -3:].mean(axis=1)
    assert np.all(last > first), (first, last)
    assert last.mean() > 2 * first.mean(), (first.mean(), last.mean())


def test_metrics_are_consistent(trained):
    config, _, state, m = trained
    E = config.static.episodes_per_update
    assert m.episode_returns.shape == (8, NUM_UPDATES, E)
    np.testing.assert_allclose(m.episode_return, m.episode_returns.mean(axis=-1), rtol=1e-6)
    # CartPole pays 1 per step: return == length, and env steps add up the lengths
    np.testing.assert_allclose(m.episode_length, m.episode_return, rtol=1e-6)
    np.testing.assert_array_equal(m.env_steps, np.cumsum(m.episode_returns.sum(-1), axis=1).astype(np.int32))
    np.testing.assert_array_equal(np.asarray(state.env_steps), m.env_steps[:, -1])
    assert np.all(m.episodes == E)
    assert np.all(m.loop_steps >= m.episode_returns.max(axis=-1))
    assert np.all(np.isfinite(m.loss)) and np.all(m.grad_norm > 0)
    assert np.all((m.entropy > 0) & (m.entropy <= np.log(2) + 1e-6))


def test_same_keys_give_bitwise_identical_runs(trained, keys8):
    _, train, state, metrics = trained
    state2, metrics2 = train(keys8)
    jax.tree.map(np.testing.assert_array_equal, metrics, jax.tree.map(np.asarray, metrics2))
    jax.tree.map(np.testing.assert_array_equal, state.params, state2.params)


def test_a_run_does_not_depend_on_its_batch(trained, keys8):
    """Run k alone, or beside other seeds, learns the same thing."""
    _, _, _, metrics = trained
    config = small_config(num_updates=NUM_UPDATES)
    _, alone = jax.jit(jax.vmap(make_train(config)))(keys8[2:4])
    np.testing.assert_allclose(np.asarray(alone.episode_returns), metrics.episode_returns[2:4])


def test_hyperparameters_are_vmapped_without_recompiling(keys8):
    config = small_config(num_updates=3)
    hparams = jax.tree.map(lambda x: jnp.full((3,), x), config.hparams.as_arrays())
    hparams = hparams.replace(learning_rate=jnp.array([0.0, 0.03, 0.0]))
    keys = jnp.stack([keys8[0], keys8[0], keys8[1]])
    state, metrics = jax.jit(jax.vmap(make_train(config)))(keys, hparams)
    params = jax.tree.map(np.asarray, state.params)
    # the same seed starts from the same parameters; learning rate 0 keeps them
    one_update = dataclasses.replace(config, static=dataclasses.replace(config.static, num_updates=1))
    start, _ = jax.jit(jax.vmap(make_train(one_update)))(keys, hparams.replace(learning_rate=jnp.zeros(3)))
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(a[0], b[0]), params, start.params)
    moved = jax.tree.map(lambda a, b: np.abs(a[1] - b[1]).max(), params, start.params)
    assert max(jax.tree.leaves(moved)) > 0
    # the first update's episodes do not depend on the learning rate
    np.testing.assert_array_equal(np.asarray(metrics.episode_returns)[0, 0], np.asarray(metrics.episode_returns)[1, 0])


def test_batch_of_updates_is_the_vmapped_train(trained, keys8):
    """`run_batch_updates` (the segments' batch of runs) gives `jax.vmap(train)`'s results bitwise."""
    config, _, state, metrics = trained
    trainer = make_trainer(config)
    hparams = config.hparams.broadcast(8)
    state2, metrics2 = jax.jit(lambda k, h: run_batch_updates(trainer, jax.vmap(trainer.init)(k, h), h,
                                                               trainer.num_updates))(keys8, hparams)
    jax.tree.map(np.testing.assert_array_equal, metrics, jax.tree.map(np.asarray, metrics2))
    jax.tree.map(np.testing.assert_array_equal, state.params, state2.params)
    np.testing.assert_array_equal(jax.random.key_data(state.key), jax.random.key_data(state2.key))


def test_train_runs_shards_and_matches_plain_vmap(trained, keys8):
    """5 runs over 2 devices (one padded): the same episodes as one vmapped batch."""
    config, _, state, metrics = trained
    assert len(jax.devices()) == 2
    state2, metrics2, timings = train_runs(make_train(config), keys8[:5], config.hparams.broadcast(5))
    assert timings["devices"] == 2 and timings["compile_seconds"] > 0 and timings["run_seconds"] > 0
    assert np.asarray(metrics2.episode_returns).shape[0] == 5
    np.testing.assert_allclose(np.asarray(metrics2.episode_returns), metrics.episode_returns[:5])
