"""`make_train(config)` -> pure `train(key)` -> `(TrainState, Metrics)`: REINFORCE, one update at a time.

    train = make_train(PRESETS["default"])
    keys = jax.vmap(jax.random.key)(jnp.arange(64))
    state, metrics = jax.jit(jax.vmap(train))(keys)      # 64 seeds in one call

One update (`make_trainer`'s `update_batch`, read it top to bottom) is six steps:

1. collect: `episodes_per_update` fresh episodes per run with the current
   policy (`pgjax.algo.rollout`);
2. weights: per-step weights from the returns and a baseline, or from the
   advantages over a learned value V(s) (`pgjax.algo.baselines`, whose kinds
   are registry entries of `pgjax.algo.returns`);
3. policy gradient: of the REINFORCE loss sum c * (-log pi(a|s) * w - beta * H)
   (`pgjax.algo.loss`);
4. optimizer step: Adam after clipping, for the policy; the value baseline
   takes its own step;
5. divergence guard: an update whose loss or new parameters are not finite,
   or that takes a parameter past `Hyperparams.divergence_limit` in magnitude,
   is not applied; the run keeps its last sane parameters and optimizer state
   from then on and is flagged `diverged`. Runs never mix, so the other runs
   of a vmapped batch are unaffected;
6. metrics.

The updates run in a `lax.scan`, so compile time does not grow with their
number. The policy follows the environment's action space: a categorical
policy for Discrete actions, a Gaussian one for Box actions (`pgjax.algo.networks`).

`make_trainer(config)` gives the same pieces apart (`init`, one `update`, the
same update over an explicit run axis `update_batch`, and `run_updates` for a
stretch of updates), which `pgjax.running.sweep` uses to train in segments with
progress, checkpoints and safe stopping points in between. `speed`
(`pgjax.algo.speed.SpeedOptions`) switches the speed devices of every step;
`SpeedOptions.reference()` is the plain path the tests compare against.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from pgjax.algo.baselines import make_baseline, sane
from pgjax.algo.batching import over_runs
from pgjax.algo.config import Config, Hyperparams
from pgjax.algo.distributions import make_distribution
from pgjax.algo.envs import make_env
from pgjax.algo.loss import make_policy_gradient
from pgjax.algo.networks import make_apply_fn, make_policy
from pgjax.algo.rollout import make_collect
from pgjax.algo.speed import DEFAULT, SpeedOptions
from pgjax.algo.validation import validate_config


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

    @classmethod
    def shapes(cls, episodes_per_update: int) -> Metrics:
        """Shapes and dtypes of one update's metrics of one run (leaves without the update axis), as
        `jax.ShapeDtypeStruct`s: what `Trainer.update` returns, without tracing an update.

        Args:
          episodes_per_update: E, the length of `episode_returns`.
        """
        f32, i32 = jnp.float32, jnp.int32
        dtypes = dict(episode_return=f32, episode_length=f32, episodes=i32, env_steps=i32, loss=f32, entropy=f32,
                      grad_norm=f32, loop_steps=i32, diverged=jnp.bool_, value_loss=f32, explained_variance=f32)
        return cls(episode_returns=jax.ShapeDtypeStruct((episodes_per_update,), f32),
                   **{name: jax.ShapeDtypeStruct((), dtype) for name, dtype in dtypes.items()})


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
        run axis [B] (`update` is it folded by `pgjax.algo.batching.fold_vmap`,
        or a plain vmap without `SpeedOptions.fold_runs`); tracing it costs one
        trace at B rather than one at 1 and one at B.
    """

    init: Callable[[jax.Array, Hyperparams], TrainState]
    update: Callable[[TrainState, Hyperparams], tuple[TrainState, Metrics]]
    num_updates: int
    update_batch: Callable[[TrainState, Hyperparams], tuple[TrainState, Metrics]]


def make_trainer(
    config: Config, entropy_bonus: bool | None = None, env: Any = None, speed: SpeedOptions = DEFAULT
) -> Trainer:
    """Build (compile nothing yet) the init and update functions for `config`.

    Args:
      config: what to train; validated here.
      entropy_bonus: whether any run trained with these functions has a non-zero
        `Hyperparams.entropy_coef`. None (default) decides at run time; True or
        False fixes it when tracing, which compiles the policy gradient once rather
        than twice (False ignores entropy_coef: pass it only when every run's is 0).
      env: the environment, given to `pgjax.algo.envs.make_env` instead of
        `config.static.env` (None: that id).
      speed: the speed devices to use (`pgjax.algo.speed`; default: all).

    Raises:
      ValueError: settings that cannot work (`pgjax.algo.validation.validate_config`), or an
        environment pgjax cannot serve (`make_env`).
    """
    validate_config(config)
    static = config.static
    spec = make_env(env if env is not None else static.env)
    policy = speed.network(make_policy(spec, config))
    apply_fn = make_apply_fn(policy)
    dist = make_distribution(spec, static.squash, speed)
    baseline = make_baseline(spec, config, speed)
    collect = make_collect(spec, apply_fn, static.episodes_per_update, dist,
                           keep_last_obs=baseline.keeps_last_obs, speed=speed)
    policy_gradient = make_policy_gradient(apply_fn, static.gradient_block_rows, dist, entropy_bonus, speed)

    def init(key: jax.Array, hparams: Hyperparams) -> TrainState:
        init_key, loop_key = jax.random.split(key)
        params = policy.init(init_key, jnp.zeros(spec.obs_shape, jnp.float32))["params"]
        if spec.action_kind == "continuous":  # the Gaussian policy's state-independent log std
            params = {**params, "log_std": jnp.full_like(params["log_std"], hparams.init_log_std)}
        value_params, value_opt_state = baseline.init(jax.random.fold_in(init_key, 1), hparams)
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

    # The steps of one update, each for one run (vmapped below) unless it says otherwise.

    def optimizer_step(params, opt_state, grads, hparams):
        updates, opt_state = make_optimizer(hparams).update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    def divergence_guard(state, loss, params, opt_state, value, hparams):
        """The new parameters and optimizer states, or the old ones for a run that has diverged."""
        diverged = state.diverged | ~(sane(loss, params, hparams.divergence_limit) & value.sane)
        new = (params, opt_state, value.params, value.opt_state)
        old = (state.params, state.opt_state, state.value_params, state.value_opt_state)
        return diverged, jax.tree.map(lambda n, o: jnp.where(diverged, o, n), new, old)

    def metrics_of(state, traj, loss, grads, entropy, diverged, value):
        lengths = traj.lengths
        episode_returns = traj.reward.sum(axis=0)
        return Metrics(
            episode_return=episode_returns.mean(),
            episode_length=lengths.mean(dtype=jnp.float32),
            episodes=jnp.int32(lengths.shape[0]),
            env_steps=state.env_steps + lengths.sum(),
            loss=loss,
            entropy=entropy,
            grad_norm=optax.tree.norm(grads),
            episode_returns=episode_returns,
            loop_steps=traj.loop_steps,
            diverged=diverged,
            value_loss=value.loss,
            explained_variance=value.explained_variance,
        )

    def update_batch(state: TrainState, hparams: Hyperparams) -> tuple[TrainState, Metrics]:
        """One update of a batch of runs (every leaf of state and hparams [B, ...])."""
        keys = jax.vmap(jax.random.split)(state.key)
        # 1. collect episodes
        traj = collect.batched(state.params, keys[:, 1])
        # 2. per-step weights: returns and a baseline, or advantages over the learned value
        weights = baseline.weights(state.value_params, traj, hparams)
        # 3. the policy gradient
        loss, grads, entropy = policy_gradient.batched(
            state.params, traj.obs, traj.action, weights.weight, weights.coef, traj.valid, hparams.entropy_coef
        )
        # 4. optimizer steps: the policy's, then the baseline's own
        params, opt_state = jax.vmap(optimizer_step)(state.params, state.opt_state, grads, hparams)
        value = baseline.update(state.value_params, state.value_opt_state, traj, weights, hparams)
        # 5. divergence guard
        diverged, (params, opt_state, value_params, value_opt_state) = jax.vmap(divergence_guard)(
            state, loss, params, opt_state, value, hparams
        )
        # 6. metrics
        metrics = jax.vmap(metrics_of)(state, traj, loss, grads, entropy, diverged, value)
        new_state = TrainState(params, opt_state, keys[:, 0], metrics.env_steps, state.update + 1, diverged,
                               value_params, value_opt_state)
        return new_state, metrics

    return Trainer(init, over_runs(update_batch, speed.fold_runs), static.num_updates, update_batch)


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


def make_train(
    config: Config, entropy_bonus: bool | None = None, env: Any = None, speed: SpeedOptions = DEFAULT
) -> Callable[..., tuple[TrainState, Metrics]]:
    """Compile nothing yet; return the pure training function for `config`.

    `entropy_bonus`, `env` and `speed`: as in `make_trainer`.

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
    trainer = make_trainer(config, entropy_bonus, env, speed)
    default_hparams = config.hparams.as_arrays()

    def train(key: jax.Array, hparams: Hyperparams = default_hparams) -> tuple[TrainState, Metrics]:
        return run_updates(trainer.update, trainer.init(key, hparams), hparams, trainer.num_updates)

    def train_batch(keys: jax.Array, hparams: Hyperparams) -> tuple[TrainState, Metrics]:
        return run_batch_updates(trainer, jax.vmap(trainer.init)(keys, hparams), hparams, trainer.num_updates)

    train.batched = train_batch
    return train
