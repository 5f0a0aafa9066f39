"""Extension points of the algorithm: a new baseline is one registry entry; `env=` overrides the config's."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pgjax.algo.config import Config, StaticConfig
from pgjax.algo.envs import make_env
from pgjax.algo.pieces import choose_pieces
from pgjax.algo.rollout import Trajectory
from pgjax.algo.trainer import make_train, make_trainer
from pgjax.algo.validation import validate_config, validate_static
from pgjax.algo.weights import BASELINES, BaselineKind, apply_baseline, is_learned

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
    validate_config(config)
    assert not is_learned(config.static.baseline)
    # the weights the trainer computes are the new entry's
    valid = jnp.arange(6)[:, None] < jnp.array([6, 3])[None, :]
    reward = jnp.where(valid, 1.0, 0.0)
    traj = Trajectory(obs=jnp.zeros((6, 2, 4)), action=jnp.zeros((6, 2), jnp.int32), reward=reward,
                      valid=valid, truncated=jnp.zeros(2, bool), loop_steps=jnp.int32(0))
    weights = choose_pieces(make_env("CartPole-v1"), config).weighting.weights(None, traj, config.hparams.as_arrays())
    # episode returns 6 and 3 (default preset: undiscounted episode returns), the best 6
    np.testing.assert_array_equal(weights.weight, np.where(valid, np.array([0.0, -3.0]), 0.0))
    np.testing.assert_array_equal(apply_baseline(reward * 2, valid, registered), _minus_best(reward * 2, valid, None))
    # and training with it runs and differs from another baseline's
    state, metrics = jax.jit(jax.vmap(make_train(config)))(keys8[:2], config.hparams.broadcast(2))
    other, _ = jax.jit(jax.vmap(make_train(small_config(num_updates=2))))(keys8[:2], config.hparams.broadcast(2))
    assert np.all(np.isfinite(np.asarray(metrics.loss))) and not np.asarray(state.diverged).any()
    assert not np.allclose(state.params["TorchDense_0"]["Dense_0"]["kernel"],
                           other.params["TorchDense_0"]["Dense_0"]["kernel"])


def test_unknown_kinds_name_the_registered_ones():
    with pytest.raises(ValueError, match="unknown baseline 'minus_best'; choose from none, constant"):
        validate_static(StaticConfig(baseline="minus_best"))
    with pytest.raises(ValueError, match="unknown returns 'x'"):
        validate_static(StaticConfig(returns="x"))
    with pytest.raises(ValueError, match="unknown reduction 'x'"):
        validate_static(StaticConfig(reduction="x"))


def test_env_argument_overrides_the_configs_environment():
    """`make_trainer(config, env=...)` builds for that environment (CartPole's 4 inputs, not Acrobot's 6)."""
    config = Config(dataclasses.replace(small_config().static, env="Acrobot-v1"), small_config().hparams)
    trainer = make_trainer(config, env="CartPole-v1")
    shapes = jax.eval_shape(trainer.init, jax.random.key(0), config.hparams.as_arrays())
    assert shapes.params["TorchDense_0"]["Dense_0"]["kernel"].shape == (4, 16)
    assert shapes.params["TorchDense_1"]["Dense_0"]["kernel"].shape == (16, 2)


def test_the_config_checks_what_needs_no_registry_and_validation_the_rest():
    StaticConfig(baseline="minus_best", network="transformer").validate()  # names are the registries' to check
    with pytest.raises(ValueError, match="hidden sizes must be positive"):
        StaticConfig(hidden=(0,), baseline="minus_best").validate()
    with pytest.raises(ValueError, match="gives every step weight 0"):
        StaticConfig(baseline="episode_norm").validate()
    # the complete check, in its order: the network's name first, then sizes, kinds, combinations, numbers
    with pytest.raises(ValueError, match="unknown network 'transformer'"):
        validate_static(StaticConfig(network="transformer", hidden=(0,)))
    with pytest.raises(ValueError, match="hidden sizes"):
        validate_static(StaticConfig(hidden=(0,), returns="x"))
    with pytest.raises(ValueError, match="unknown advantage 'x'"):
        validate_static(StaticConfig(baseline="episode_norm", advantage="x"))
    with pytest.raises(ValueError, match="gives every step weight 0"):
        validate_static(StaticConfig(baseline="episode_norm", advantage="gae"))
    with pytest.raises(ValueError, match="learning_rate must be > 0"):
        validate_config(Config(StaticConfig(), dataclasses.replace(Config().hparams, learning_rate=0.0)))
    assert is_learned("value") and is_learned("value_norm") and not is_learned("batch_norm")
    assert not is_learned("no such baseline")
