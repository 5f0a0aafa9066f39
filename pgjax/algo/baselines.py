"""The per-step weights of an update, and the learned value baseline, as one component each.

    weighting = make_weighting(spec, config)
    value_params, value_opt_state = weighting.init(key, hparams)
    weights = weighting.weights(value_params, traj, hparams)
    value = weighting.update(value_params, value_opt_state, traj, weights, hparams)

Every function is one run's (vmappable over runs). A `StepWeighting` turns a
run's episodes into `StepWeights` (the weight w and
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
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import linen as nn

from pgjax.algo.config import Config, Hyperparams
from pgjax.algo.envs import EnvSpec
from pgjax.algo.loss import ValueFn, make_value_forward, make_value_gradient
from pgjax.algo.networks import Recurrence, is_recurrent, make_value_fn, make_value_network, recurrence
from pgjax.algo.returns import ADVANTAGES, BASELINES, REDUCTIONS, RETURNS, explained_variance
from pgjax.algo.rollout import Trajectory


class StepWeights(NamedTuple):
    """Per-step quantities of one run's update; leaves [T, E], zero on padding.

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
    """A weighting's optimizer step for one run.

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


class StepWeighting(NamedTuple):
    """One way of weighting the steps of an update (a `BASELINES` kind made functions), with whatever it learns.

    Attributes:
      init: `(key, hparams) -> (params, opt_state)` of one run (None, None if it learns nothing).
      weights: `(params, traj, hparams) -> StepWeights` of one run.
      update: `(params, opt_state, traj, weights, hparams) -> BaselineUpdate` of one run.
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


def returns_baseline(config: Config) -> StepWeighting:
    """Weights from the returns and a fixed baseline: w = BASELINES[baseline](RETURNS[returns](r))."""
    static = config.static

    def weights(params: None, traj: Trajectory, hparams: Hyperparams) -> StepWeights:
        returns = RETURNS[static.returns](traj.reward, traj.valid, hparams)
        weight = BASELINES[static.baseline].weights(returns, traj.valid, hparams)
        return StepWeights(weight, REDUCTIONS[static.reduction](traj.valid))

    def update(params, opt_state, traj, weights, hparams) -> BaselineUpdate:
        return BaselineUpdate(None, None, jnp.float32(0), jnp.float32(0), jnp.bool_(True))

    return StepWeighting(lambda key, hparams: (None, None), weights, update, keeps_last_obs=False)


def make_value_optimizer(hparams: Hyperparams) -> optax.GradientTransformation:
    """Adam (PyTorch's defaults but the step size) for the value network."""
    return optax.adam(hparams.value_learning_rate)


def value_baseline(
    spec: EnvSpec, config: Config, module: nn.Module, values_of: Callable, value_gradient: Callable
) -> StepWeighting:
    """The learned value baseline V(s) = value_scale * net(s), net the policy's architecture with one output.

    Weights: `BASELINES[baseline]` of the advantages `ADVANTAGES[advantage]`
    over V (a truncated episode bootstraps with V of its last observation).
    Update: one Adam step (`Hyperparams.value_learning_rate`) on half the mean
    squared error between net(s) and target / value_scale over the update's
    steps (`pgjax.algo.loss.value_loss`); the reported loss is scaled back by
    value_scale^2.

    Args:
      spec, config: the environment and settings.
      module: the value network (`pgjax.algo.networks.make_value_network`).
      values_of: `(params, obs, valid) -> V [T, E]` (`pgjax.algo.loss.make_value_forward` or its fast path);
        for a recurrent `module`, `(params, traj) -> (V [T, E], V [E] of the last observations)`
        (`recurrent_values` or its fast path).
      value_gradient: `(params, obs, target, coef, valid) -> (loss, grads)`
        (`pgjax.algo.loss.make_value_gradient` or its fast path).
    """
    static = config.static
    value_fn = make_value_fn(module)
    recurrent = is_recurrent(module)

    def init(key: jax.Array, hparams: Hyperparams) -> tuple[Any, Any]:
        params = module.init(key, jnp.zeros(spec.obs_shape, jnp.float32))["params"]
        return params, make_value_optimizer(hparams).init(params)

    def weights(params: Any, traj: Trajectory, hparams: Hyperparams) -> StepWeights:
        scale = hparams.value_scale
        if recurrent:  # `recurrent_values` or its fast path
            values, last_values = values_of(params, traj)
            values, last_values = scale * values, scale * last_values
        else:
            values = scale * values_of(params, traj.obs, traj.valid)
            last_values = scale * value_fn(params, traj.last_obs)
        advantage, target = ADVANTAGES[static.advantage](
            traj.reward, traj.valid, traj.truncated, values, last_values, hparams
        )
        weight = BASELINES[static.baseline].weights(advantage, traj.valid, hparams)
        return StepWeights(weight, REDUCTIONS[static.reduction](traj.valid), values, target)

    def update(params, opt_state, traj: Trajectory, weights: StepWeights, hparams: Hyperparams) -> BaselineUpdate:
        scale = hparams.value_scale
        coef = REDUCTIONS["step_mean"](traj.valid)  # the value loss is a mean over the update's steps
        loss, grads = value_gradient(params, traj.obs, weights.target / scale, coef, traj.valid)
        loss = loss * scale**2  # the network fits target / value_scale
        updates, opt_state = make_value_optimizer(hparams).update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return BaselineUpdate(params, opt_state, loss, explained_variance(weights.values, weights.target, traj.valid),
                              sane(loss, params, hparams.divergence_limit))

    return StepWeighting(init, weights, update, keeps_last_obs=True)


def recurrent_values(value_fn: ValueFn, params: Any, traj: Trajectory) -> tuple[jax.Array, jax.Array]:
    """A recurrent value network's V [T, E] over the episodes (0 past them) and V [E] of each episode's last
    observation, in one pass: the last observation is put in the row after the episode's last step (a row
    T is added for episodes of T steps), so that the network reaches it with the state of the whole episode."""
    num_steps, num_episodes = traj.valid.shape
    lengths = traj.lengths
    obs = jnp.concatenate([traj.obs.astype(jnp.float32), jnp.zeros((1,) + traj.obs.shape[1:], jnp.float32)])
    obs = obs.at[lengths, jnp.arange(num_episodes)].set(traj.last_obs)
    values = value_fn(params, obs)  # [T + 1, E]
    return jnp.where(traj.valid, values[:num_steps], 0.0), values[lengths, jnp.arange(num_episodes)]


def make_weighting(
    spec: EnvSpec,
    config: Config,
    *,
    network: Callable[[nn.Module], nn.Module] = lambda module: module,
    value_forward: Callable[[ValueFn], Callable] = make_value_forward,
    value_gradient: Callable[[ValueFn], Callable] = make_value_gradient,
    recurrent_forward: Callable[[Recurrence, ValueFn], Callable] = lambda _, value_fn: partial(recurrent_values,
                                                                                               value_fn),
    recurrent_gradient: Callable[[Recurrence, ValueFn], Callable] = lambda _, value_fn: make_value_gradient(value_fn),
) -> StepWeighting:
    """`value_baseline` for a learned `BASELINES` entry (e.g. "value", "value_norm"), else `returns_baseline`.

    Args:
      spec, config: the environment and settings.
      network, value_forward, value_gradient: what builds the value network and its
        values and gradient from `value_fn` (default: the reference path, `pgjax.algo.loss`;
        `pgjax.algo.fast.make_weighting` passes the fast paths).
      recurrent_forward, recurrent_gradient: the same for a recurrent value network, from its
        `Recurrence` and `value_fn` (default: whole-episode scans, `recurrent_values`).
    """
    if not BASELINES[config.static.baseline].learned:
        return returns_baseline(config)
    module = network(make_value_network(spec, config))
    value_fn = make_value_fn(module)
    value_recurrence = recurrence(module)
    if value_recurrence is not None:  # its values and gradient go through whole episodes
        return value_baseline(spec, config, module, recurrent_forward(value_recurrence, value_fn),
                              recurrent_gradient(value_recurrence, value_fn))
    return value_baseline(spec, config, module, value_forward(value_fn), value_gradient(value_fn))


Baseline = StepWeighting  # the names of pgjax 0.2
make_baseline = make_weighting
