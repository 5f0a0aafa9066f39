"""`make_train(config)` -> pure `train(key)` -> `(TrainState, Metrics)`.

    train = make_train(PRESETS["default"])
    keys = jax.vmap(jax.random.key)(jnp.arange(64))
    state, metrics = jax.jit(jax.vmap(train))(keys)      # 64 seeds in one call

Each update collects `episodes_per_update` fresh episodes with the current policy
(`pgjax.algo.rollout`), turns their rewards into per-step weights (`pgjax.algo.returns`),
takes the REINFORCE gradient (`pgjax.algo.loss`) and applies one optax step. The
updates run in a `lax.scan`, so compile time does not grow with their number.

The policy follows the environment's action space: a categorical policy for
Discrete actions, a Gaussian one for Box actions (`pgjax.algo.networks`). With a value
baseline (`StaticConfig.baseline` "value" or "value_norm") a second network of
the same shape learns V(s) by regression on the update's returns (or GAE
targets), with its own Adam, after the weights of the update were computed
with its current values.

`make_trainer(config)` gives the same pieces apart (`init`, one `update`, the
same update over an explicit run axis `update_batch`, and `run_updates` for a
stretch of updates), which `pgjax.running.sweep` uses to train in segments with
progress, checkpoints and safe stopping points in between.

Divergence: an update whose loss or new parameters are not finite, or that
takes a parameter past `Hyperparams.divergence_limit` in magnitude, is not
applied; the run keeps its last sane parameters and optimizer state from then
on and is flagged `diverged`. Runs never mix, so the other runs of a vmapped
batch are unaffected.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from pgjax.algo.batching import fold_vmap
from pgjax.algo.config import Config, Hyperparams
from pgjax.algo.distributions import make_distribution
from pgjax.algo.envs import make_env
from pgjax.algo.loss import make_policy_gradient, make_value_gradient, make_values
from pgjax.algo.networks import make_apply_fn, make_policy, make_value_fn, make_value_network
from pgjax.algo.returns import (
    advantage_weights,
    apply_baseline,
    explained_variance,
    step_coefficients,
    step_returns,
    value_advantages,
)
from pgjax.algo.rollout import make_collect


@struct.dataclass
class TrainState:
    """Everything one run carries from update to update."""

    params: Any  # policy parameters (a Flax params pytree)
    opt_state: Any  # optax state
    key: jax.Array  # PRNG key for the next rollout
    env_steps: jax.Array  # int32 [], env steps in episodes used so far
    update: jax.Array  # int32 [], updates done so far
    diverged: jax.Array  # bool [], an update gave a non-finite loss or parameters
    value_params: Any = None  # value network parameters (value baselines only)
    value_opt_state: Any = None  # its optax state


@struct.dataclass
class Metrics:
    """Per-update metrics of one run; every leaf has a leading axis of U updates.

    Attributes:
      episode_return: [U] mean undiscounted return of the update's episodes.
      episode_length: [U] mean length of those episodes, in env steps.
      episodes: [U] episodes completed in the update (E).
      env_steps: [U] cumulative env steps of the episodes used, after the update.
      loss: [U] value of the REINFORCE loss (`pgjax.algo.loss`).
      entropy: [U] mean policy entropy over the update's steps, in nats
        (a Gaussian's before clipping or squashing, in normalised units).
      grad_norm: [U] global norm of the gradient before clipping.
      episode_returns: [U, E] undiscounted return of every episode, in order.
      loop_steps: [U] rollout loop iterations (the longest episode in the batch
        of runs rolled out together); padding = loop_steps * E - steps used.
      diverged: [U] bool, the run had diverged by the end of the update (its
        parameters are frozen from the first such update on).
      value_loss: [U] the value network's loss (`pgjax.algo.loss.value_loss`: half
        the mean squared error over the update's steps) before its update; 0
        without a value baseline.
      explained_variance: [U] 1 - Var(target - V) / Var(target) over the
        update's steps, before the value update; 0 without a value baseline.
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
    diverged: jax.Array
    value_loss: jax.Array
    explained_variance: jax.Array


def make_optimizer(hparams: Hyperparams) -> optax.GradientTransformation:
    """Adam (PyTorch's defaults but the step size) after clipping to `max_grad_norm`."""
    return optax.chain(
        optax.clip_by_global_norm(hparams.max_grad_norm),
        optax.adam(hparams.learning_rate),
    )


class Trainer(NamedTuple):
    """The pure pieces of one run's training, each vmappable over runs.

    Attributes:
      init: `(key, hparams) -> TrainState`, fresh parameters and optimizer state.
      update: `(state, hparams) -> (state, Metrics)`, one policy update; the
        metrics leaves have no update axis.
      num_updates: U, updates of a whole training run.
      update_batch: `update` for a batch of runs whose leaves carry a leading
        run axis [B] (`update` is it folded by `pgjax.algo.batching.fold_vmap`);
        tracing it costs one trace at B rather than one at 1 and one at B.
    """

    init: Callable[[jax.Array, Hyperparams], TrainState]
    update: Callable[[TrainState, Hyperparams], tuple[TrainState, Metrics]]
    num_updates: int
    update_batch: Callable[[TrainState, Hyperparams], tuple[TrainState, Metrics]]


def _sane(loss: jax.Array, params: Any, limit: jax.Array) -> jax.Array:
    """Whether the loss is finite and every parameter finite and at most `limit` in magnitude."""
    largest = jnp.max(jnp.array([jnp.max(jnp.abs(x)) for x in jax.tree.leaves(params)]))
    return jnp.isfinite(loss) & jnp.isfinite(largest) & (largest <= limit)


def make_value_optimizer(hparams: Hyperparams) -> optax.GradientTransformation:
    """Adam (PyTorch's defaults but the step size) for the value network."""
    return optax.adam(hparams.value_learning_rate)


def make_trainer(config: Config, entropy_bonus: bool | None = None) -> Trainer:
    """Build (compile nothing yet) the init and update functions for `config`.

    `entropy_bonus`: whether any run trained with these functions has a non-zero
    `Hyperparams.entropy_coef`. None (default) decides at run time; True or
    False fixes it when tracing, which compiles the policy gradient once rather
    than twice (False ignores entropy_coef: pass it only when every run's is 0).
    """
    config.validate()
    static = config.static
    spec = make_env(static.env)
    module = make_policy(spec, config)
    apply_fn = make_apply_fn(module)
    dist = make_distribution(spec, config)
    gaussian = spec.action_kind == "continuous"
    with_value = static.value_baseline
    collect = make_collect(spec, apply_fn, static.episodes_per_update, dist, keep_last_obs=with_value)
    policy_gradient = make_policy_gradient(apply_fn, static.gradient_block_rows, dist, entropy_bonus)
    if with_value:
        value_module = make_value_network(spec, config)
        value_fn = make_value_fn(value_module)
        values_of = make_values(value_fn, static.gradient_block_rows)
        value_gradient = make_value_gradient(value_fn, static.gradient_block_rows)

    def init(key: jax.Array, hparams: Hyperparams) -> TrainState:
        init_key, loop_key = jax.random.split(key)
        dummy_obs = jnp.zeros(spec.obs_shape, jnp.float32)
        params = module.init(init_key, dummy_obs)["params"]
        if gaussian:
            params = {**params, "log_std": jnp.full_like(params["log_std"], hparams.init_log_std)}
        value_params = value_opt_state = None
        if with_value:
            value_params = value_module.init(jax.random.fold_in(init_key, 1), dummy_obs)["params"]
            value_opt_state = make_value_optimizer(hparams).init(value_params)
        return TrainState(
            params=params,
            opt_state=make_optimizer(hparams).init(params),
            key=loop_key,
            env_steps=jnp.int32(0),
            update=jnp.int32(0),
            diverged=jnp.bool_(False),
            value_params=value_params,
            value_opt_state=value_opt_state,
        )

    def step_weights(traj, values, last_values, hparams):
        """One run's policy-gradient weights and loss coefficients [T, E], and value targets (or None)."""
        target = None
        if with_value:
            advantage, target = value_advantages(
                traj.reward, traj.valid, traj.truncated, values, last_values, hparams.gamma, hparams.gae_lambda,
                static.advantage,
            )
            weight = advantage_weights(advantage, traj.valid, static.baseline)
        else:
            returns = step_returns(traj.reward, traj.valid, hparams.gamma, static.returns)
            weight = apply_baseline(returns, traj.valid, static.baseline, hparams.baseline_constant)
        return weight, step_coefficients(traj.valid, static.reduction), target

    def apply_gradients(state, key, traj, values, target, gradients, hparams):
        """One run's optimizer steps, divergence check and metrics, from its gradients."""
        loss, grads, entropy, value_loss, value_grads = gradients
        updates, opt_state = make_optimizer(hparams).update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        sane = _sane(loss, params, hparams.divergence_limit)
        value_params, value_opt_state = state.value_params, state.value_opt_state
        ev = jnp.float32(0.0)
        if with_value:
            value_loss = value_loss * hparams.value_scale**2  # the network fits target / value_scale
            value_updates, value_opt_state = make_value_optimizer(hparams).update(
                value_grads, value_opt_state, value_params
            )
            value_params = optax.apply_updates(value_params, value_updates)
            sane = sane & _sane(value_loss, value_params, hparams.divergence_limit)
            ev = explained_variance(values, target, traj.valid)
        diverged = state.diverged | ~sane
        params, opt_state, value_params, value_opt_state = jax.tree.map(
            lambda new, old: jnp.where(diverged, old, new),
            (params, opt_state, value_params, value_opt_state),
            (state.params, state.opt_state, state.value_params, state.value_opt_state),
        )
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
            diverged=diverged,
            value_loss=value_loss,
            explained_variance=ev,
        )
        new_state = TrainState(
            params, opt_state, key, env_steps, state.update + 1, diverged, value_params, value_opt_state
        )
        return new_state, metrics

    def update_batch(state: TrainState, hparams: Hyperparams) -> tuple[TrainState, Metrics]:
        """One update of a batch of runs (leaves [B, ...]): the rollout and the gradients take the
        whole batch at once (`pgjax.algo.batching`), everything else is vmapped over runs."""
        keys = jax.vmap(jax.random.split)(state.key)
        traj = collect.batched(state.params, keys[:, 1])
        values = last_values = None
        if with_value:
            scale = hparams.value_scale
            values = scale[:, None, None] * values_of.batched(state.value_params, traj.obs, traj.valid)
            last_values = scale[:, None] * jax.vmap(value_fn)(state.value_params, traj.last_obs)
        weight, coef, target = jax.vmap(step_weights)(traj, values, last_values, hparams)
        loss, grads, entropy = policy_gradient.batched(
            state.params, traj.obs, traj.action, weight, coef, traj.valid, hparams.entropy_coef
        )
        value_loss = jnp.zeros_like(loss)
        value_grads = None
        if with_value:
            value_coef = jax.vmap(lambda valid: step_coefficients(valid, "step_mean"))(traj.valid)
            value_loss, value_grads = value_gradient.batched(
                state.value_params, traj.obs, target / scale[:, None, None], value_coef, traj.valid
            )
        gradients = (loss, grads, entropy, value_loss, value_grads)
        return jax.vmap(apply_gradients)(state, keys[:, 0], traj, values, target, gradients, hparams)

    return Trainer(init, fold_vmap(update_batch), static.num_updates, update_batch)


def run_updates(
    update: Callable[[TrainState, Hyperparams], tuple[TrainState, Metrics]],
    state: TrainState,
    hparams: Hyperparams,
    length: int,
    num_active: jax.Array | int | None = None,
) -> tuple[TrainState, Metrics]:
    """`length` updates in a `lax.scan`, of which only the first `num_active` run.

    Args:
      update: `Trainer.update`.
      state, hparams: one run's state and settings (or vmapped batches of them).
      length: static scan length (one compile per length).
      num_active: updates actually done, 0..length; an unbatched scalar, so the
        remaining steps are skipped by a `lax.cond`, not computed and discarded.
        None runs all `length`. One compiled segment thus serves any stretch.

    Returns:
      (state after the active updates, Metrics with a leading [length] axis whose
      rows from `num_active` on are zeros).
    """
    if num_active is None:
        return jax.lax.scan(lambda s, _: update(s, hparams), state, None, length)
    update = jax.jit(update)  # traced once for eval_shape and the cond
    metrics_shape = jax.eval_shape(update, state, hparams)[1]

    def step(state, i):
        def skip(state):
            return state, jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), metrics_shape)

        return jax.lax.cond(i < num_active, lambda s: update(s, hparams), skip, state)

    return jax.lax.scan(step, state, jnp.arange(length))


def run_batch_updates(
    trainer: Trainer,
    state: TrainState,
    hparams: Hyperparams,
    length: int,
    num_active: jax.Array | int | None = None,
) -> tuple[TrainState, Metrics]:
    """`run_updates` of `trainer.update_batch` on a batch of runs (leaves [B, ...]).

    Returns the state and the Metrics with the run axis first: leaves [B, length, ...].
    """
    state, metrics = run_updates(trainer.update_batch, state, hparams, length, num_active)
    return state, jax.tree.map(lambda x: jnp.moveaxis(x, 0, 1), metrics)  # [length, B, ...] -> [B, length, ...]


def make_train(config: Config, entropy_bonus: bool | None = None) -> Callable[..., tuple[TrainState, Metrics]]:
    """Compile nothing yet; return the pure training function for `config`.

    Returns:
      `train(key, hparams=config.hparams) -> (TrainState, Metrics)` for one run.
      `hparams` leaves may be traced, so `jax.vmap(train)(keys, hparams)` trains
      a batch of seeds and numeric settings under one compile. `entropy_bonus`:
      as in `make_trainer` (None is right for any hparams).

      `train.batched(keys, hparams)` is the same for a batch with an explicit
      run axis (keys [B], hparams leaves [B]; state leaves [B, ...], metrics
      [B, U, ...]), the results of `jax.vmap(train)`; it traces the update once
      at B rather than at 1 and again at B, which takes less time to compile.
    """
    trainer = make_trainer(config, entropy_bonus)
    default_hparams = config.hparams.as_arrays()

    def train(key: jax.Array, hparams: Hyperparams = default_hparams) -> tuple[TrainState, Metrics]:
        return run_updates(trainer.update, trainer.init(key, hparams), hparams, trainer.num_updates)

    def train_batch(keys: jax.Array, hparams: Hyperparams) -> tuple[TrainState, Metrics]:
        return run_batch_updates(trainer, jax.vmap(trainer.init)(keys, hparams), hparams, trainer.num_updates)

    train.batched = train_batch
    return train
