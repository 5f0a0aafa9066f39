"""`make_train(config)` -> pure `train(key)` -> `(RunState, Metrics)`: REINFORCE, one update at a time.

    train = make_train(PRESETS["default"])
    keys = jax.vmap(jax.random.key)(jnp.arange(64))
    state, metrics = jax.jit(jax.vmap(train))(keys)      # 64 seeds in one call

One update of one run (`make_trainer`'s `update`, read it top to bottom; vmapped from outside) is six steps:

1. collect: `episodes_per_update` fresh episodes per run with the current
   policy (`pgjax.algo.rollout`);
2. weights: per-step weights from the returns and a baseline, or from the
   advantages over a learned value V(s) (`pgjax.algo.weights`: each kind a
   registry entry), or your own `weighting`;
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
policy for Discrete actions, a Gaussian one for Box actions (`pgjax.algo.policy`).

`make_trainer(config)` gives the same pieces apart (`init`, one `update`, and
`run_updates` for a stretch of updates), which `pgjax.running.sweep` uses to
train in segments with progress, checkpoints and safe stopping points in
between. The pieces come from `pgjax.algo.pieces.choose_pieces`, the one table
that takes each reference piece or its fast path, as `fast`
(`pgjax.algo.config.FastPaths`) says; `FastPaths.reference()` is the plain path
the tests compare against. `weighting` and `step_loss` put your own step
weights or per-step loss in the update.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from pgjax.algo.config import Config, FastPaths, Hyperparams
from pgjax.algo.envs import EnvSpec, env_for
from pgjax.algo.gradients import estimator_statistics, flatten_gradient, sliced_episode_gradients
from pgjax.algo.imports import own_functions
from pgjax.algo.pieces import choose_pieces
from pgjax.algo.policy import make_apply_fn, make_policy, recurrence
from pgjax.algo.rollout import Trajectory
from pgjax.algo.validation import validate_config
from pgjax.algo.weights import BaselineUpdate, sane


@struct.dataclass
class RunState:
    """Everything one run carries from update to update (a plain pytree, unlike Flax's `TrainState`)."""

    params: Any  # policy parameters (a Flax params pytree)
    opt_state: Any  # optax state
    key: jax.Array  # PRNG key for the next rollout
    env_steps: jax.Array  # int32 [], env steps in episodes used so far
    update: jax.Array  # int32 [], updates done so far
    diverged: jax.Array  # bool [], an update gave a non-finite loss or parameters
    value_params: Any = None  # value network parameters (value baselines only)
    value_opt_state: Any = None  # its optax state
    # float32 [P], the previous update's policy gradient flattened (`pgjax.algo.gradients.flatten_gradient`;
    # zeros before the first update), for `Metrics.gradient_cosine`; None without `StaticConfig.gradient_stats`
    previous_gradient: Any = None


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
      gradient_variance, gradient_snr, gradient_cosine: with `StaticConfig.gradient_stats` only (None
        otherwise: no leaves), statistics of the update's per-episode gradient estimates g_e [E, P]
        (`pgjax.algo.gradients.sliced_episode_gradients`, whose mean g is the update's gradient, of norm
        `grad_norm`): [U] the variance of the update's estimate, tr Cov(g_e) / E (ddof 1, summed over
        parameters); [U] the signal-to-noise ratio |g|^2 / that variance; [U] the cosine between this
        update's gradient and the previous update's (nan at the first update, and where either is 0).
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
    gradient_variance: jax.Array | None = None
    gradient_snr: jax.Array | None = None
    gradient_cosine: jax.Array | None = None

    @classmethod
    def shapes(cls, episodes_per_update: int, gradient_stats: bool = False) -> Metrics:
        """Shapes and dtypes of one update's metrics of one run (leaves without the update axis), as
        `jax.ShapeDtypeStruct`s: what `Trainer.update` returns, without tracing an update.

        Args:
          episodes_per_update: E, the length of `episode_returns`.
          gradient_stats: `StaticConfig.gradient_stats` (False: the `GRADIENT_STATS` fields are None).
        """
        f32, i32 = jnp.float32, jnp.int32
        dtypes = dict(episode_return=f32, episode_length=f32, episodes=i32, env_steps=i32, loss=f32, entropy=f32,
                      grad_norm=f32, loop_steps=i32, diverged=jnp.bool_, value_loss=f32, explained_variance=f32,
                      **({name: f32 for name in GRADIENT_STATS} if gradient_stats else {}))
        return cls(episode_returns=jax.ShapeDtypeStruct((episodes_per_update,), f32),
                   **{name: jax.ShapeDtypeStruct((), dtype) for name, dtype in dtypes.items()})

    @classmethod
    def names(cls, gradient_stats: bool = False) -> tuple[str, ...]:
        """The fields that hold arrays (the others are None), in declaration order: what metrics.npz and a
        checkpoint hold per group or chunk."""
        return tuple(f.name for f in dataclasses.fields(cls) if gradient_stats or f.name not in GRADIENT_STATS)


# The `Metrics` fields of `StaticConfig.gradient_stats`, None without it.
GRADIENT_STATS = ("gradient_variance", "gradient_snr", "gradient_cosine")


def make_optimizer(hparams: Hyperparams) -> optax.GradientTransformation:
    """Adam (PyTorch's defaults but the step size) after clipping to `max_grad_norm`."""
    return optax.chain(
        optax.clip_by_global_norm(hparams.max_grad_norm),
        optax.adam(hparams.learning_rate),
    )


class Trainer(NamedTuple):
    """The pure pieces of one run's training, each vmappable over runs.

    Attributes:
      init: `(key, hparams) -> RunState`, fresh parameters and optimizer state.
      update: `(state, hparams) -> (state, Metrics)`, one policy update; the
        metrics leaves have no update axis.
      num_updates: U, updates of a whole training run.
      spec: the environment it trains on; paths: the fast paths it takes.
      gradient_stats: whether its state and metrics carry the gradient statistics (`StaticConfig.gradient_stats`).
    """

    init: Callable[[jax.Array, Hyperparams], RunState]
    update: Callable[[RunState, Hyperparams], tuple[RunState, Metrics]]
    num_updates: int
    spec: EnvSpec | None = None
    paths: FastPaths | None = None
    gradient_stats: bool = False


def make_trainer(
    config: Config,
    env: Any = None,
    fast: FastPaths | None = None,
    *,
    weighting: Callable | None = None,
    step_loss: Callable | None = None,
) -> Trainer:
    """Build (compile nothing yet) the init and update functions of one run for `config`.

    Args:
      config: what to train (checked by `make_train` and the commands, not here).
      env: the environment, for `pgjax.algo.envs.make_env` (None: `config.static.env`); built under
        `config.static.max_episode_steps`, and a string with `config.static.env_kwargs`.
      fast: the fast paths (`pgjax.algo.config.FastPaths`; None: all but those
        PGJAX_SPEED_OFF names; `FastPaths.reference()` is the plain path).
      weighting: your own step weights, `weights(traj, hparams) -> weight [T, E]`
        (None: `config.static.weighting`'s function, else the config's returns and baseline).
      step_loss: your own per-step loss (`pgjax.algo.loss.StepLoss`; None:
        `config.static.step_loss`'s function, else REINFORCE's).

    Raises:
      ValueError: an environment, network or function pgjax cannot serve (one line); gradient statistics of a
        recurrent network.
    """
    static = config.static
    paths = fast or FastPaths.from_environment()
    spec = env_for(static, env)  # the config's cap, and its factory arguments for an environment named by a string
    weighting, step_loss = own_functions(static, weighting, step_loss)  # one's own code fails in one line
    pieces = choose_pieces(spec, config, paths, weighting=weighting, step_loss=step_loss)
    collect, weights_of, policy_gradient = pieces.collect, pieces.weighting, pieces.policy_gradient
    stats = static.gradient_stats
    if stats and recurrence(pieces.policy) is not None:
        raise ValueError(f"gradient_stats computes per-episode gradients of feed-forward networks only, not "
                         f"network '{static.network}'")
    # the plain network's layers (not the fast paths' feature-major ones, slower per episode): the same function
    apply_fn = make_apply_fn(make_policy(spec, config)) if stats else None

    def init(key: jax.Array, hparams: Hyperparams) -> RunState:
        init_key, loop_key = jax.random.split(key)
        params = pieces.policy.init(init_key, jnp.zeros(spec.obs_shape, jnp.float32))["params"]
        if spec.action_kind == "continuous":  # the Gaussian policy's state-independent log std
            params = {**params, "log_std": jnp.full_like(params["log_std"], hparams.init_log_std)}
        value_params, value_opt_state = weights_of.init(jax.random.fold_in(init_key, 1), hparams)
        return RunState(params=params, opt_state=make_optimizer(hparams).init(params), key=loop_key,
                        env_steps=jnp.int32(0), update=jnp.int32(0), diverged=jnp.bool_(False),
                        value_params=value_params, value_opt_state=value_opt_state,
                        previous_gradient=jnp.zeros_like(flatten_gradient(params)) if stats else None)

    def update(state: RunState, hparams: Hyperparams) -> tuple[RunState, Metrics]:
        """One update of one run."""
        next_key, rollout_key = jax.random.split(state.key)
        # 1. collect episodes
        traj = collect(state.params, rollout_key)
        # 2. per-step weights: returns and a baseline, or advantages over the learned value
        weights = weights_of.weights(state.value_params, traj, hparams)
        # 3. the policy gradient
        loss, grads, entropy = policy_gradient(
            state.params, traj.obs, traj.action, weights.weight, weights.coef, traj.valid, hparams.entropy_coef
        )
        # 4. optimizer steps: the policy's, then the value baseline's own
        updates, opt_state = make_optimizer(hparams).update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        value = weights_of.update(state.value_params, state.value_opt_state, traj, weights, hparams)
        # 5. divergence guard: a run whose update is not sane keeps its last parameters
        diverged = state.diverged | ~(sane(loss, params, hparams.divergence_limit) & value.sane)
        new = (params, opt_state, value.params, value.opt_state)
        old = (state.params, state.opt_state, state.value_params, state.value_opt_state)
        params, opt_state, value_params, value_opt_state = jax.tree.map(lambda n, o: jnp.where(diverged, o, n),
                                                                        new, old)
        # 6. metrics, and with gradient_stats those of the update's per-episode gradient estimates
        metrics = metrics_of(state, traj, loss, grads, entropy, diverged, value)
        gradient = None
        if stats:
            gradient = flatten_gradient(grads)
            episodes = sliced_episode_gradients(apply_fn, pieces.dist, state.params, traj, weights,
                                                hparams.entropy_coef, step_loss)
            metrics = metrics.replace(**gradient_statistics(episodes, gradient, state.previous_gradient))
        new_state = RunState(params, opt_state, next_key, metrics.env_steps, state.update + 1, diverged,
                             value_params, value_opt_state, gradient)
        return new_state, metrics

    return Trainer(init, update, static.num_updates, spec, paths, stats)


def gradient_statistics(episodes: jax.Array, gradient: jax.Array, previous: jax.Array) -> dict[str, jax.Array]:
    """One update's `Metrics.gradient_*` of one run.

    Args:
      episodes: [E, P] the update's per-episode gradient estimates (`pgjax.algo.gradients.episode_gradients`).
      gradient: [P] the update's gradient, flattened (the mean of `episodes` up to float rounding).
      previous: [P] the previous update's (zeros before the first: the cosine is then nan).

    Returns:
      {"gradient_variance", "gradient_snr", "gradient_cosine"}: float32 scalars (`Metrics`).
    """
    estimates = estimator_statistics(episodes)
    cosine = jnp.dot(gradient, previous) / (jnp.linalg.norm(gradient) * jnp.linalg.norm(previous))
    return dict(gradient_variance=estimates.variance, gradient_snr=estimates.snr, gradient_cosine=cosine)


def trace_update(config: Config) -> Metrics:
    """Trace one run's init and one update of `config` (`jax.eval_shape`: nothing computed), as a check that
    its pieces build and run: what a weighting or step loss of one's own raises shows here.

    Returns:
      The update's `Metrics` shapes. Raises: what `make_trainer` and the update raise.
    """
    trainer = make_trainer(config)
    hparams = config.hparams.as_arrays()
    state = jax.eval_shape(trainer.init, jax.random.key(0), hparams)
    return jax.eval_shape(trainer.update, state, hparams)[1]


def metrics_of(state: RunState, traj: Trajectory, loss: jax.Array, grads: Any, entropy: jax.Array,
               diverged: jax.Array, value: BaselineUpdate) -> Metrics:
    """One update's `Metrics` of one run, from what the update computed."""
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


def run_updates(
    update: Callable[[RunState, Hyperparams], tuple[RunState, Metrics]],
    state: RunState,
    hparams: Hyperparams,
    length: int,
    num_active: jax.Array | int | None = None,
) -> tuple[RunState, Metrics]:
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
    state: RunState,
    hparams: Hyperparams,
    length: int,
    num_active: jax.Array | int | None = None,
) -> tuple[RunState, Metrics]:
    """`run_updates` of `jax.vmap(trainer.update)` on a batch of runs (leaves [B, ...]).

    Returns the state and the Metrics with the run axis first: leaves [B, length, ...].
    """
    state, metrics = run_updates(jax.vmap(trainer.update), state, hparams, length, num_active)
    return state, jax.tree.map(lambda x: jnp.moveaxis(x, 0, 1), metrics)  # [length, B, ...] -> [B, length, ...]


def make_train(
    config: Config,
    env: Any = None,
    fast: FastPaths | None = None,
    *,
    weighting: Callable | None = None,
    step_loss: Callable | None = None,
) -> Callable[..., tuple[RunState, Metrics]]:
    """Check `config` and return the pure training function of one run (compile nothing yet).

    Arguments: as `make_trainer`'s. Whether one run fits the device's memory is
    `pgjax.running.footprint.check_train`'s to say (the commands check every chunk).

    Returns:
      `train(key, hparams=config.hparams) -> (RunState, Metrics)` for one run.
      `hparams` leaves may be traced, so `jax.vmap(train)(keys, hparams)` trains
      a batch of seeds and numeric settings under one compile.

    Raises:
      ValueError: settings that cannot work (`pgjax.algo.validation.validate_config`), and `make_trainer`'s.
    """
    validate_config(config)
    trainer = make_trainer(config, env, fast, weighting=weighting, step_loss=step_loss)
    default_hparams = config.hparams.as_arrays()

    def train(key: jax.Array, hparams: Hyperparams = default_hparams) -> tuple[RunState, Metrics]:
        return run_updates(trainer.update, trainer.init(key, hparams), hparams, trainer.num_updates)

    return train
