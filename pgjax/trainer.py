"""`make_train(config)` -> pure `train(key)` -> `(TrainState, Metrics)`.

    train = make_train(PRESETS["default"])
    keys = jax.vmap(jax.random.key)(jnp.arange(64))
    state, metrics = jax.jit(jax.vmap(train))(keys)      # 64 seeds in one call

Each update collects `episodes_per_update` fresh episodes with the current policy
(`pgjax.rollout`), turns their rewards into per-step weights (`pgjax.returns`),
takes the REINFORCE gradient (`pgjax.loss`) and applies one optax step. The
updates run in a `lax.scan`, so compile time does not grow with their number.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from pgjax.config import Config, Hyperparams
from pgjax.envs import EnvSpec, make_env
from pgjax.loss import make_policy_gradient
from pgjax.policy import MLPPolicy
from pgjax.returns import apply_baseline, step_coefficients, step_returns
from pgjax.rollout import make_collect


@struct.dataclass
class TrainState:
    """Everything one run carries from update to update."""

    params: Any  # policy parameters (a Flax params pytree)
    opt_state: Any  # optax state
    key: jax.Array  # PRNG key for the next rollout
    env_steps: jax.Array  # int32 [], env steps in episodes used so far
    update: jax.Array  # int32 [], updates done so far


@struct.dataclass
class Metrics:
    """Per-update metrics of one run; every leaf has a leading axis of U updates.

    Attributes:
      episode_return: [U] mean undiscounted return of the update's episodes.
      episode_length: [U] mean length of those episodes, in env steps.
      episodes: [U] episodes completed in the update (E).
      env_steps: [U] cumulative env steps of the episodes used, after the update.
      loss: [U] value of the REINFORCE loss (`pgjax.loss`).
      entropy: [U] mean policy entropy over the update's steps, in nats.
      grad_norm: [U] global norm of the gradient before clipping.
      episode_returns: [U, E] undiscounted return of every episode, in order.
      loop_steps: [U] rollout loop iterations (the longest episode in the batch
        of runs rolled out together); padding = loop_steps * E - steps used.
    """

    episode_return: jax.Array
    episode_length: jax.Array
    episodes: jax.Array
    env_steps: jax.Array
    loss: jax.Array
    entropy: jax.Array
    grad_norm: jax.Array
    episode_returns: jax.Array
    loop_steps: jax.Array


def make_optimizer(hparams: Hyperparams) -> optax.GradientTransformation:
    """Adam (PyTorch's defaults but the step size) after clipping to `max_grad_norm`."""
    return optax.chain(
        optax.clip_by_global_norm(hparams.max_grad_norm),
        optax.adam(hparams.learning_rate),
    )


def make_policy(spec: EnvSpec, config: Config) -> MLPPolicy:
    """The Flax policy module the config describes, for this environment."""
    return MLPPolicy(spec.num_actions, config.static.hidden, config.static.activation)


def make_apply_fn(module: MLPPolicy) -> Callable[[Any, jax.Array], jax.Array]:
    """`(params, obs [..., D]) -> logits [..., A]` for a policy module."""

    def apply_fn(params, obs):
        return module.apply({"params": params}, obs)

    return apply_fn


def make_train(config: Config) -> Callable[..., tuple[TrainState, Metrics]]:
    """Compile nothing yet; return the pure training function for `config`.

    Returns:
      `train(key, hparams=config.hparams) -> (TrainState, Metrics)` for one run.
      `hparams` leaves may be traced, so `jax.vmap(train)(keys, hparams)` trains
      a batch of seeds and numeric settings under one compile.
    """
    config.validate()
    static = config.static
    spec = make_env(static.env)
    module = make_policy(spec, config)
    apply_fn = make_apply_fn(module)
    collect = make_collect(spec, apply_fn, static.episodes_per_update)
    policy_gradient = make_policy_gradient(apply_fn, static.gradient_block_rows)
    default_hparams = config.hparams.as_arrays()

    def train(key: jax.Array, hparams: Hyperparams = default_hparams) -> tuple[TrainState, Metrics]:
        init_key, loop_key = jax.random.split(key)
        params = module.init(init_key, jnp.zeros(spec.obs_shape, jnp.float32))["params"]
        optimizer = make_optimizer(hparams)
        state = TrainState(
            params=params,
            opt_state=optimizer.init(params),
            key=loop_key,
            env_steps=jnp.int32(0),
            update=jnp.int32(0),
        )

        def update(state: TrainState, _) -> tuple[TrainState, Metrics]:
            key, rollout_key = jax.random.split(state.key)
            traj = collect(state.params, rollout_key)
            returns = step_returns(traj.reward, traj.valid, hparams.gamma, static.returns)
            weight = apply_baseline(returns, traj.valid, static.baseline, hparams.baseline_constant)
            coef = step_coefficients(traj.valid, static.reduction)
            loss, grads, entropy = policy_gradient(
                state.params, traj.obs, traj.action, weight, coef, traj.valid, hparams.entropy_coef
            )
            updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
            params = optax.apply_updates(state.params, updates)
            lengths = traj.lengths
            episode_returns = traj.reward.sum(axis=0)
            env_steps = state.env_steps + lengths.sum()
            metrics = Metrics(
                episode_return=episode_returns.mean(),
                episode_length=lengths.mean(dtype=jnp.float32),
                episodes=jnp.int32(lengths.shape[0]),
                env_steps=env_steps,
                loss=loss,
                entropy=entropy,
                grad_norm=optax.tree.norm(grads),
                episode_returns=episode_returns,
                loop_steps=traj.loop_steps,
            )
            next_state = TrainState(params, opt_state, key, env_steps, state.update + 1)
            return next_state, metrics

        return jax.lax.scan(update, state, None, static.num_updates)

    return train
