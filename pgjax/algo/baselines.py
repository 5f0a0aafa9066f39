"""The per-step weights of an update, and the learned value baseline, as one component each.

    baseline = make_baseline(spec, config)
    value_params, value_opt_state = baseline.init(key, hparams)                   # one run
    weights = baseline.weights(value_params, traj, hparams)                       # runs [B]
    value = baseline.update(value_params, value_opt_state, traj, weights, hparams)  # runs [B]

A `Baseline` turns a batch of runs' episodes into `StepWeights` (the weight w and
reduction coefficient c of each step's -log pi, `pgjax.algo.loss`) and, if it
learns, takes its own optimizer step. Two kinds, chosen by whether
`BASELINES[static.baseline]` is `learned` (`pgjax.algo.returns`):

* `returns_baseline`: weights from the returns (`RETURNS[static.returns]`) and a
  fixed baseline (`BASELINES[static.baseline]`); no parameters, nothing to learn.
* `value_baseline`: a second network of the policy's shape learns V(s) by
  regression on the update's returns or GAE targets (`ADVANTAGES[static.advantage]`),
  with its own Adam; the weights come from the advantages over its values,
  computed before its update.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from pgjax.algo.config import Config, Hyperparams
from pgjax.algo.envs import EnvSpec
from pgjax.algo.loss import make_value_gradient, make_values
from pgjax.algo.networks import make_value_fn, make_value_network
from pgjax.algo.returns import ADVANTAGES, BASELINES, REDUCTIONS, RETURNS, explained_variance, step_coefficients
from pgjax.algo.rollout import Trajectory
from pgjax.algo.speed import DEFAULT, SpeedOptions


class StepWeights(NamedTuple):
    """Per-step quantities of one update; leaves [B, T, E] for a batch of B runs, zero on padding.

    Attributes:
      weight: w, what multiplies each step's -log pi(a|s) (returns after the baseline, or advantages).
      coef: c, the factor of each step's loss in the total (`REDUCTIONS[static.reduction]`).
      values: V(s_t) of every step before the value update (learned baselines; else None).
      target: what V(s_t) is regressed on (learned baselines; else None).
    """

    weight: jax.Array
    coef: jax.Array
    values: jax.Array | None = None
    target: jax.Array | None = None


class BaselineUpdate(NamedTuple):
    """A baseline's optimizer step for a batch of runs; leaves carry the run axis [B].

    Attributes:
      params, opt_state: the value network's new parameters and optax state (None without one).
      loss: the value loss before the step (0 without a value network).
      explained_variance: 1 - Var(target - V) / Var(target) before the step (0 without).
      sane: bool, the loss and the new parameters are finite and within the divergence limit.
    """

    params: Any
    opt_state: Any
    loss: jax.Array
    explained_variance: jax.Array
    sane: jax.Array


class Baseline(NamedTuple):
    """One way of weighting the steps of an update, with whatever it learns.

    Attributes:
      init: `(key, hparams) -> (params, opt_state)` of one run (None, None if it learns nothing).
      weights: `(params, traj, hparams) -> StepWeights` for a batch of runs (leaves [B, ...]).
      update: `(params, opt_state, traj, weights, hparams) -> BaselineUpdate` for a batch of runs.
      keeps_last_obs: the rollout must keep each episode's last observation (`Trajectory.last_obs`).
    """

    init: Callable[[jax.Array, Hyperparams], tuple[Any, Any]]
    weights: Callable[[Any, Trajectory, Hyperparams], StepWeights]
    update: Callable[[Any, Any, Trajectory, StepWeights, Hyperparams], BaselineUpdate]
    keeps_last_obs: bool


def sane(loss: jax.Array, params: Any, limit: jax.Array) -> jax.Array:
    """Whether the loss is finite and every parameter finite and at most `limit` in magnitude (one run)."""
    largest = jnp.max(jnp.array([jnp.max(jnp.abs(x)) for x in jax.tree.leaves(params)]))
    return jnp.isfinite(loss) & jnp.isfinite(largest) & (largest <= limit)


def returns_baseline(config: Config) -> Baseline:
    """Weights from the returns and a fixed baseline: w = BASELINES[baseline](RETURNS[returns](r))."""
    static = config.static

    def weights(params: None, traj: Trajectory, hparams: Hyperparams) -> StepWeights:
        def one_run(traj, hparams):
            returns = RETURNS[static.returns](traj.reward, traj.valid, hparams)
            weight = BASELINES[static.baseline].weights(returns, traj.valid, hparams)
            return StepWeights(weight, REDUCTIONS[static.reduction](traj.valid))

        return jax.vmap(one_run)(traj, hparams)

    def update(params, opt_state, traj, weights, hparams) -> BaselineUpdate:
        zeros = jnp.zeros(traj.valid.shape[0], jnp.float32)
        return BaselineUpdate(None, None, zeros, zeros, jnp.ones(traj.valid.shape[0], bool))

    return Baseline(lambda key, hparams: (None, None), weights, update, keeps_last_obs=False)


def make_value_optimizer(hparams: Hyperparams) -> optax.GradientTransformation:
    """Adam (PyTorch's defaults but the step size) for the value network."""
    return optax.adam(hparams.value_learning_rate)


def value_baseline(spec: EnvSpec, config: Config, speed: SpeedOptions = DEFAULT) -> Baseline:
    """The learned value baseline V(s) = value_scale * net(s), net the policy's architecture with one output.

    Weights: `BASELINES[baseline]` of the advantages `ADVANTAGES[advantage]`
    over V (a truncated episode bootstraps with V of its last observation).
    Update: one Adam step (`Hyperparams.value_learning_rate`) on half the mean
    squared error between net(s) and target / value_scale over the update's
    steps (`pgjax.algo.loss.value_loss`); the reported loss is scaled back by
    value_scale^2. `speed` chooses how the values and gradient are computed.
    """
    static = config.static
    module = speed.network(make_value_network(spec, config))
    value_fn = make_value_fn(module)
    values_of = make_values(value_fn, static.gradient_block_rows, speed)
    value_gradient = make_value_gradient(value_fn, static.gradient_block_rows, speed)

    def init(key: jax.Array, hparams: Hyperparams) -> tuple[Any, Any]:
        params = module.init(key, jnp.zeros(spec.obs_shape, jnp.float32))["params"]
        return params, make_value_optimizer(hparams).init(params)

    def weights(params: Any, traj: Trajectory, hparams: Hyperparams) -> StepWeights:
        scale = hparams.value_scale
        values = scale[:, None, None] * values_of.batched(params, traj.obs, traj.valid)
        last_values = scale[:, None] * jax.vmap(value_fn)(params, traj.last_obs)

        def one_run(traj, values, last_values, hparams):
            advantage, target = ADVANTAGES[static.advantage](
                traj.reward, traj.valid, traj.truncated, values, last_values, hparams
            )
            weight = BASELINES[static.baseline].weights(advantage, traj.valid, hparams)
            return StepWeights(weight, REDUCTIONS[static.reduction](traj.valid), values, target)

        return jax.vmap(one_run)(traj, values, last_values, hparams)

    def update(params, opt_state, traj: Trajectory, weights: StepWeights, hparams: Hyperparams) -> BaselineUpdate:
        scale = hparams.value_scale
        coef = jax.vmap(lambda valid: step_coefficients(valid, "step_mean"))(traj.valid)
        loss, grads = value_gradient.batched(params, traj.obs, weights.target / scale[:, None, None], coef, traj.valid)

        def one_run(params, opt_state, loss, grads, values, target, valid, hparams):
            loss = loss * hparams.value_scale**2  # the network fits target / value_scale
            updates, opt_state = make_value_optimizer(hparams).update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
            return BaselineUpdate(
                params, opt_state, loss, explained_variance(values, target, valid),
                sane(loss, params, hparams.divergence_limit),
            )

        return jax.vmap(one_run)(params, opt_state, loss, grads, weights.values, weights.target, traj.valid, hparams)

    return Baseline(init, weights, update, keeps_last_obs=True)


def make_baseline(spec: EnvSpec, config: Config, speed: SpeedOptions = DEFAULT) -> Baseline:
    """`value_baseline` for a learned `BASELINES` entry (e.g. "value", "value_norm"), else `returns_baseline`."""
    if BASELINES[config.static.baseline].learned:
        return value_baseline(spec, config, speed)
    return returns_baseline(config)
