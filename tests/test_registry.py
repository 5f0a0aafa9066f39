"""Extension points of the algorithm: a new baseline is one registry entry; `env=` overrides the config's."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pgjax.algo.baselines import make_baseline
from pgjax.algo.config import Config, StaticConfig
from pgjax.algo.envs import make_env
from pgjax.algo.returns import BASELINES, BaselineKind, apply_baseline
from pgjax.algo.rollout import Trajectory
from pgjax.algo.trainer import make_train, make_trainer

from .conftest import small_config


def _minus_best(x, valid, hparams):
    """A new baseline: each step's return minus the batch's best return (weights <= 0)."""
    best = jnp.max(jnp.where(valid, x, -jnp.inf))
    return jnp.where(valid, x - best, 0.0)


@pytest.fixture
def registered():
    BASELINES["minus_best"] = BaselineKind(_minus_best)
    yield "minus_best"
    del BASELINES["minus_best"]


def test_a_registered_baseline_is_used_by_the_trainer(registered, keys8):
    config = small_config(baseline=registered, num_updates=2)
    config.validate()
    assert not config.static.value_baseline
    # the weights the trainer computes are the new entry's
    valid = jnp.arange(6)[:, None] < jnp.array([6, 3])[None, :]
    reward = jnp.where(valid, 1.0, 0.0)
    traj = Trajectory(obs=jnp.zeros((1, 6, 2, 4)), action=jnp.zeros((1, 6, 2), jnp.int32), reward=reward[None],
                      valid=valid[None], truncated=jnp.zeros((1, 2), bool), loop_steps=jnp.zeros(1, jnp.int32))
    weights = make_baseline(make_env("CartPole-v1"), config).weights(None, traj, config.hparams.broadcast(1))
    # episode returns 6 and 3 (default preset: undiscounted episode returns), the best 6
    np.testing.assert_array_equal(weights.weight[0], np.where(valid, np.array([0.0, -3.0]), 0.0))
    np.testing.assert_array_equal(apply_baseline(reward * 2, valid, registered), _minus_best(reward * 2, valid, None))
    # and training with it runs and differs from another baseline's
    state, metrics = jax.jit(jax.vmap(make_train(config)))(keys8[:2], config.hparams.broadcast(2))
    other, _ = jax.jit(jax.vmap(make_train(small_config(num_updates=2))))(keys8[:2], config.hparams.broadcast(2))
    assert np.all(np.isfinite(np.asarray(metrics.loss))) and not np.asarray(state.diverged).any()
    assert not np.allclose(state.params["TorchDense_0"]["Dense_0"]["kernel"],
                           other.params["TorchDense_0"]["Dense_0"]["kernel"])


def test_unknown_kinds_name_the_registered_ones():
    with pytest.raises(ValueError, match="unknown baseline 'minus_best'; choose from none, constant"):
        StaticConfig(baseline="minus_best").validate()
    with pytest.raises(ValueError, match="unknown returns 'x'"):
        StaticConfig(returns="x").validate()
    with pytest.raises(ValueError, match="unknown reduction 'x'"):
        StaticConfig(reduction="x").validate()


def test_env_argument_overrides_the_configs_environment():
    """`make_trainer(config, env=...)` builds for that environment (CartPole's 4 inputs, not Acrobot's 6)."""
    config = Config(dataclasses.replace(small_config().static, env="Acrobot-v1"), small_config().hparams)
    trainer = make_trainer(config, env="CartPole-v1")
    shapes = jax.eval_shape(trainer.init, jax.random.key(0), config.hparams.as_arrays())
    assert shapes.params["TorchDense_0"]["Dense_0"]["kernel"].shape == (4, 16)
    assert shapes.params["TorchDense_1"]["Dense_0"]["kernel"].shape == (16, 2)
