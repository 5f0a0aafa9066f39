"""Step weights: what multiplies each step's -log pi(a|s) in an update, and the learned value baseline.

    weighting = choose_pieces(spec, config, paths).weighting   # pgjax.algo.pieces: returns_baseline or value_weighting
    value_params, value_opt_state = weighting.init(key, hparams)
    weights = weighting.weights(value_params, traj, hparams)          # StepWeights: w and c, [T, E]
    value = weighting.update(value_params, value_opt_state, traj, weights, hparams)

Every function is one run's (vmappable over runs). All arrays are time-major
`[T, E]`: episode e occupies rows `0 .. len_e - 1` of column e, and the rows
after it are padding with `valid == False` and zero reward.

The settings `StaticConfig.returns`, `.baseline`, `.advantage` and `.reduction`
name entries of four registries; a new kind is one new entry (the command line
offers the built-in names, `pgjax.algo.config`'s Literal types):

* `RETURNS[name](reward, valid, hparams) -> returns` [T, E], zero on padding;
* `BASELINES[name] = BaselineKind(weights, learned)`, `weights(x, valid,
  hparams) -> weights` [T, E] (zero on padding), where x is the returns, or for
  a `learned` baseline the advantages over a learned value V(s);
* `ADVANTAGES[name](reward, valid, truncated, values, last_values, hparams) ->
  (advantage, target)`, each [T, E] and zero on padding (learned baselines only);
* `REDUCTIONS[name](valid) -> coef` [T, E], the factor of each step's loss.

`hparams` is the run's `Hyperparams` (scalar leaves): gamma, baseline_constant,
gae_lambda and any other field an entry needs.

A `StepWeighting` turns a run's episodes into `StepWeights` (the weight w and
reduction coefficient c of each step's -log pi, `pgjax.algo.loss`) and, if it
learns, takes its own optimizer step. Two kinds, chosen by whether
`BASELINES[static.baseline]` is `learned`:

* `returns_baseline`: weights from the returns and a fixed baseline; no
  parameters, nothing to learn.
* `value_baseline`: a second network of the policy's shape learns V(s) by
  regression on the update's returns or GAE targets, with its own Adam; the
  weights come from the advantages over its values, computed before its update.

A weighting of your own is a plain function `weights(traj, hparams) ->
weight [T, E]` (`custom_weighting`; `make_train(config, weighting=fn)`, or
`--weighting package.module:function` on the command line).

The module's parts, in this order: the registry entries and the registries;
`validate_kinds` and `validate_learned` (a config's kind names against them);
the same kinds called by name with plain numbers (`step_returns`,
`apply_baseline`, `value_advantages`, `advantage_weights`, `step_coefficients`:
for tests, experiments and tutorials); then the weightings the trainer builds.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import linen as nn

from pgjax.algo.config import Advantage, Baseline, Config, Hyperparams, Reduction, Returns, StaticConfig
from pgjax.algo.envs import EnvSpec
from pgjax.algo.loss import ValueFn, make_value_forward, make_value_gradient
from pgjax.algo.policy import Recurrence, is_recurrent, make_value_fn, make_value_network, recurrence
from pgjax.algo.rollout import Trajectory

# The registry entries and the four registries (what the trainer looks a kind's name up in).


def discounted_returns(reward: jax.Array, gamma: jax.Array | float) -> jax.Array:
    """Reward-to-go G_t = sum_{t' >= t} gamma^(t'-t) r_t' (tutorial 001).

    Args:
      reward: [T, E] rewards, zero on padding rows.
      gamma: discount factor, a scalar.

    Returns:
      [T, E] float32; zero on padding rows. At a truncation the sum stops at the
      last reward received (nothing is bootstrapped).
    """

    def backward(next_return, r):
        g = r + gamma * next_return
        return g, g

    _, returns = jax.lax.scan(backward, jnp.zeros_like(reward[0]), reward, reverse=True)
    return returns


def reward_to_go(reward: jax.Array, valid: jax.Array, hparams: Hyperparams) -> jax.Array:
    """RETURNS["reward_to_go"]: `discounted_returns` with `hparams.gamma` (tutorial 001)."""
    return discounted_returns(reward, hparams.gamma)


def episode_total(reward: jax.Array, valid: jax.Array, hparams: Hyperparams) -> jax.Array:
    """RETURNS["episode"]: the discounted total sum_t gamma^t r_t of the step's episode on every
    step of it (tutorial 000 with gamma = 1: sum(rewards))."""
    return jnp.where(valid, discounted_returns(reward, hparams.gamma)[0], 0.0)


ReturnsFn = Callable[[jax.Array, jax.Array, Hyperparams], jax.Array]


RETURNS: dict[str, ReturnsFn] = {"episode": episode_total, "reward_to_go": reward_to_go}


def _masked_mean_std(x: jax.Array, mask: jax.Array, axis) -> tuple[jax.Array, jax.Array]:
    """Mean and sample standard deviation (ddof=1, as torch.std) over `mask`ed entries.

    A standard deviation that is undefined (fewer than 2 entries) or negligible
    (below 1e-6 of max(1, |mean|): equal values up to float rounding) is returned
    as 1, so that standardising leaves the (near-zero) centred values as they are.
    """
    count = mask.sum(axis=axis, keepdims=True)
    # Sum deviations from the largest entry, so that equal entries give exactly 0.
    shift = jnp.where(count > 0, jnp.where(mask, x, -jnp.inf).max(axis=axis, keepdims=True), 0.0)
    centred = jnp.where(mask, x - shift, 0.0)
    mean = shift + centred.sum(axis=axis, keepdims=True) / jnp.maximum(count, 1)
    sq = jnp.where(mask, (x - mean) ** 2, 0.0).sum(axis=axis, keepdims=True)
    std = jnp.sqrt(sq / jnp.maximum(count - 1, 1))
    std = jnp.where((count > 1) & (std > 1e-6 * jnp.maximum(1.0, jnp.abs(mean))), std, 1.0)
    return mean, std


def _none(x: jax.Array, valid: jax.Array, hparams: Hyperparams) -> jax.Array:
    """x as it is."""
    return jnp.where(valid, x, 0.0)


def _constant(x: jax.Array, valid: jax.Array, hparams: Hyperparams) -> jax.Array:
    """x - hparams.baseline_constant."""
    return jnp.where(valid, x - hparams.baseline_constant, 0.0)


def _batch_mean(x: jax.Array, valid: jax.Array, hparams: Hyperparams) -> jax.Array:
    """x minus its mean over all valid steps of the batch."""
    return jnp.where(valid, x - _masked_mean_std(x, valid, axis=None)[0], 0.0)


def _episode_norm(x: jax.Array, valid: jax.Array, hparams: Hyperparams) -> jax.Array:
    """(x - mean) / std within each episode (tutorial 001; torch's sample std, ddof=1)."""
    mean, std = _masked_mean_std(x, valid, axis=0)
    return jnp.where(valid, (x - mean) / std, 0.0)


def _batch_norm(x: jax.Array, valid: jax.Array, hparams: Hyperparams) -> jax.Array:
    """(x - mean) / std over all valid steps of the batch (torch's sample std, ddof=1)."""
    mean, std = _masked_mean_std(x, valid, axis=None)
    return jnp.where(valid, (x - mean) / std, 0.0)


class BaselineKind(NamedTuple):
    """A registry entry of `BASELINES`.

    Attributes:
      weights: `(x [T, E], valid [T, E], hparams) -> weights [T, E]`, zero on padding.
      learned: x is the advantage over a learned value V(s) (a value network is
        trained, `value_baseline`; needs returns "reward_to_go"); otherwise x
        is the returns.
    """

    weights: Callable[[jax.Array, jax.Array, Hyperparams], jax.Array]
    learned: bool = False


BASELINES: dict[str, BaselineKind] = {
    "none": BaselineKind(_none),
    "constant": BaselineKind(_constant),
    "batch_mean": BaselineKind(_batch_mean),
    "episode_norm": BaselineKind(_episode_norm),
    "batch_norm": BaselineKind(_batch_norm),
    "value": BaselineKind(_none, learned=True),  # G_t - V(s_t) (or GAE) as it is
    "value_norm": BaselineKind(_batch_norm, learned=True),  # standardised over the batch
}


def is_learned(baseline: str) -> bool:
    """Whether `baseline` names a learned `BASELINES` entry (a value network is trained: "value", "value_norm").

    Args:
      baseline: a `StaticConfig.baseline`; an unregistered name is not learned.

    Returns:
      `BASELINES[baseline].learned`, or False for a name not registered.
    """
    return baseline in BASELINES and BASELINES[baseline].learned


def _last_step(valid: jax.Array) -> jax.Array:
    """[T, E] bool, True at each episode's last step."""
    after = jnp.concatenate([valid[1:], jnp.zeros_like(valid[:1])], axis=0)
    return valid & ~after


def _bootstrap(valid: jax.Array, truncated: jax.Array, last_values: jax.Array) -> jax.Array:
    """[T, E]: V(s_L) of a truncated episode at its last row L - 1, else 0."""
    return jnp.where(_last_step(valid) & truncated[None, :], last_values[None, :], 0.0)


def return_advantages(reward, valid, truncated, values, last_values, hparams: Hyperparams):
    """ADVANTAGES["return"]: A_t = G_t - V(s_t), target G_t, the (bootstrapped) reward-to-go."""
    values = jnp.where(valid, values, 0.0)
    gamma = hparams.gamma
    target = discounted_returns(reward + gamma * _bootstrap(valid, truncated, last_values), gamma)
    return jnp.where(valid, target - values, 0.0), jnp.where(valid, target, 0.0)


def gae_advantages(reward, valid, truncated, values, last_values, hparams: Hyperparams):
    """ADVANTAGES["gae"]: A_t = sum_k (gamma lambda)^k delta_{t+k}, delta_t = r_t + gamma V(s_{t+1})
    - V(s_t) (Schulman et al. 2016), target A_t + V(s_t); GAE(1) is "return"."""
    values = jnp.where(valid, values, 0.0)
    gamma, gae_lambda = hparams.gamma, hparams.gae_lambda
    bootstrap = _bootstrap(valid, truncated, last_values)
    next_values = jnp.concatenate([values[1:], jnp.zeros_like(values[:1])], axis=0) + bootstrap
    delta = jnp.where(valid, reward + gamma * next_values - values, 0.0)

    def backward(next_advantage, d):
        a = d + gamma * gae_lambda * next_advantage
        return a, a

    _, advantage = jax.lax.scan(backward, jnp.zeros_like(delta[0]), delta, reverse=True)
    advantage = jnp.where(valid, advantage, 0.0)
    return advantage, jnp.where(valid, advantage + values, 0.0)


AdvantageFn = Callable[..., tuple[jax.Array, jax.Array]]


ADVANTAGES: dict[str, AdvantageFn] = {"return": return_advantages, "gae": gae_advantages}


def _episode_mean(valid: jax.Array) -> jax.Array:
    """c = 1 / (E * len_e): mean over each episode's steps, then over episodes (tutorial 000)."""
    valid_f = valid.astype(jnp.float32)
    lengths = jnp.maximum(valid_f.sum(axis=0, keepdims=True), 1.0)
    return valid_f / (valid.shape[1] * lengths)


def _episode_sum(valid: jax.Array) -> jax.Array:
    """c = 1 / E: sum over each episode's steps, mean over episodes (tutorial 001)."""
    return valid.astype(jnp.float32) / valid.shape[1]


def _step_mean(valid: jax.Array) -> jax.Array:
    """c = 1 / sum_e len_e: mean over every step of the batch."""
    valid_f = valid.astype(jnp.float32)
    return valid_f / jnp.maximum(valid_f.sum(), 1.0)


REDUCTIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "episode_mean": _episode_mean, "episode_sum": _episode_sum, "step_mean": _step_mean,
}


def explained_variance(values: jax.Array, target: jax.Array, valid: jax.Array) -> jax.Array:
    """1 - Var(target - values) / Var(target) over valid steps ([T, E] each): 1 is a perfect fit, 0 none."""
    count = jnp.maximum(valid.sum(), 1)

    def var(x):
        mean = jnp.where(valid, x, 0.0).sum() / count
        return jnp.where(valid, (x - mean) ** 2, 0.0).sum() / count

    total = var(target)
    return jnp.where(total > 0, 1.0 - var(target - values) / jnp.where(total > 0, total, 1.0), 0.0)


# Validation of a config's kind names against the registries.


def validate_kinds(static: StaticConfig) -> None:
    """Check that `static`'s returns, baseline, advantage and reduction are registered here.

    A kind registered from Python is accepted as the built-in ones are.

    Args:
      static: the settings to check.

    Raises:
      ValueError: one line naming the setting, its value and the registered kinds.
    """
    for setting, registry in (("returns", RETURNS), ("baseline", BASELINES), ("advantage", ADVANTAGES),
                              ("reduction", REDUCTIONS)):
        if getattr(static, setting) not in registry:
            raise ValueError(f"unknown {setting} {getattr(static, setting)!r}; choose from {', '.join(registry)}")


def validate_learned(static: StaticConfig) -> None:
    """Check the settings that a learned baseline (`is_learned`) needs, or that need one.

    Args:
      static: the settings to check.

    Raises:
      ValueError: a learned baseline without returns "reward_to_go", or advantage
        "gae" without a learned baseline (one line naming them).
    """
    learned = is_learned(static.baseline)
    if learned and static.returns != "reward_to_go":
        raise ValueError(
            f"baseline '{static.baseline}' learns V(s), the expected return from s on: it needs returns "
            "'reward_to_go'"
        )
    if static.advantage == "gae" and not learned:
        raise ValueError("advantage 'gae' needs a value baseline: baseline 'value' or 'value_norm'")


# By name: the same kinds called with their name and plain numbers rather than a run's `Hyperparams`
# (tests, experiments and tutorials call these; the trainer does not).


class StepNumbers(NamedTuple):
    """The numbers of `Hyperparams` that the built-in entries read, for the functions below that take
    them one by one (the trainer passes a run's whole `Hyperparams`). The defaults are neutral."""

    gamma: jax.Array | float = 1.0
    baseline_constant: jax.Array | float = 0.0
    gae_lambda: jax.Array | float = 1.0


def _lookup(registry: dict, name: str, what: str):
    if name not in registry:
        raise ValueError(f"unknown {what} {name!r}; registered: {', '.join(registry)}")
    return registry[name]


def step_returns(reward: jax.Array, valid: jax.Array, gamma: jax.Array | float, kind: Returns) -> jax.Array:
    """The return that weights each step's log-probability, [T, E] (zero on padding): `RETURNS[kind]`."""
    return _lookup(RETURNS, kind, "returns kind")(reward, valid, StepNumbers(gamma=gamma))


def apply_baseline(
    returns: jax.Array, valid: jax.Array, kind: Baseline, constant: jax.Array | float = 0.0
) -> jax.Array:
    """Turn returns [T, E] into per-step weights [T, E] (zero on padding): `BASELINES[kind]`, not learned.

    kind: "none" (returns as they are), "constant" (returns - constant),
    "batch_mean" (minus the mean over all valid steps of the batch),
    "episode_norm" ((G - mean) / std within each episode, tutorial 001) or
    "batch_norm" ((G - mean) / std over all valid steps of the batch).
    Standard deviations are torch's sample std (ddof=1).

    Raises:
      ValueError: an unknown or a learned baseline (see `advantage_weights`).
    """
    baseline = _lookup(BASELINES, kind, "baseline")
    if baseline.learned:
        raise ValueError(f"baseline {kind!r} is learned: see value_advantages and advantage_weights")
    return baseline.weights(returns, valid, StepNumbers(baseline_constant=constant))


def value_advantages(
    reward: jax.Array,
    valid: jax.Array,
    truncated: jax.Array,
    values: jax.Array,
    last_values: jax.Array,
    gamma: jax.Array | float,
    gae_lambda: jax.Array | float,
    kind: Advantage,
) -> tuple[jax.Array, jax.Array]:
    """Advantages and value targets with a learned baseline V (REINFORCE with baseline): `ADVANTAGES[kind]`.

    Args:
      reward, valid: [T, E] as above.
      truncated: [E] bool, episodes cut off by the step limit.
      values: [T, E] V(s_t) of every step (anything on padding rows).
      last_values: [E] V of the observation each episode ended in; a
        truncated episode's return is bootstrapped with gamma * it (a
        terminated episode's value there is 0).
      gamma: discount factor; gae_lambda: GAE's lambda (kind "gae" only).
      kind: "return": A_t = G_t - V(s_t), with G_t the (bootstrapped)
        reward-to-go; "gae": A_t = sum_k (gamma lambda)^k delta_{t+k}, delta_t =
        r_t + gamma V(s_{t+1}) - V(s_t) (Schulman et al. 2016); GAE(1) = "return".

    Returns:
      (advantage, target), each [T, E] and zero on padding; the value network
      regresses V(s_t) on `target` (G_t, or A_t + V(s_t) for GAE).
    """
    hparams = StepNumbers(gamma=gamma, gae_lambda=gae_lambda)
    return _lookup(ADVANTAGES, kind, "advantage")(reward, valid, truncated, values, last_values, hparams)


def advantage_weights(advantage: jax.Array, valid: jax.Array, kind: Baseline) -> jax.Array:
    """Per-step weights from value-baseline advantages: `BASELINES[kind]`, a learned one: as they are
    ("value") or standardised over all valid steps of the batch ("value_norm"), zero on padding."""
    baseline = _lookup(BASELINES, kind, "baseline")
    if not baseline.learned:
        raise ValueError(f"{kind!r} is not a value baseline")
    return baseline.weights(advantage, valid, StepNumbers())


def step_coefficients(valid: jax.Array, kind: Reduction) -> jax.Array:
    """The factor c_t,e with which each step's loss enters the total, [T, E]: `REDUCTIONS[kind]`.

    loss = sum_{t,e} c_t,e * l_t,e, where
      "episode_mean": c = 1 / (E * len_e)   (mean over steps, then episodes)
      "episode_sum":  c = 1 / E             (sum over steps, mean over episodes)
      "step_mean":    c = 1 / sum_e len_e   (mean over all steps)
    and c = 0 on padding rows.
    """
    return _lookup(REDUCTIONS, kind, "reduction")(valid)


# The weightings the trainer builds: StepWeights of a run's episodes, and what a learned baseline updates.
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


def fixed_weighting(weights: Callable[[None, Trajectory, Hyperparams], StepWeights]) -> StepWeighting:
    """A `StepWeighting` that learns nothing: no parameters, and an update that changes nothing."""

    def update(params, opt_state, traj, weights, hparams) -> BaselineUpdate:
        return BaselineUpdate(None, None, jnp.float32(0), jnp.float32(0), jnp.bool_(True))

    return StepWeighting(lambda key, hparams: (None, None), weights, update, keeps_last_obs=False)


def returns_baseline(config: Config) -> StepWeighting:
    """Weights from the returns and a fixed baseline: w = BASELINES[baseline](RETURNS[returns](r))."""
    static = config.static

    def weights(params: None, traj: Trajectory, hparams: Hyperparams) -> StepWeights:
        returns = RETURNS[static.returns](traj.reward, traj.valid, hparams)
        weight = BASELINES[static.baseline].weights(returns, traj.valid, hparams)
        return StepWeights(weight, REDUCTIONS[static.reduction](traj.valid))

    return fixed_weighting(weights)


def check_beside_own_weighting(baseline: str) -> None:
    """Refuse a learned `baseline` beside a weighting of one's own, which replaces the baseline.

    Raises:
      ValueError: one line: the value network it would train no weight uses.
    """
    if is_learned(baseline):
        raise ValueError(f"a weighting of your own replaces the baseline: baseline '{baseline}' would train a value "
                         "network no weight uses; give a fixed baseline (e.g. --baseline none)")


def custom_weighting(config: Config, weights: Callable[[Trajectory, Hyperparams], jax.Array]) -> StepWeighting:
    """A step weighting of your own: w = `weights(traj, hparams)`, with the config's reduction; learns nothing.

    Args:
      config: the settings (`StaticConfig.reduction` gives the coefficients c).
      weights: `(traj, hparams) -> weight [T, E]` of one run (`pgjax.algo.rollout.Trajectory`,
        time-major); pgjax zeroes it on padding. It replaces the config's returns and baseline.

    Raises:
      ValueError: the config also asks for a learned baseline (it would train a value network no weight uses),
        or `weights` returns another shape than [T, E] (when traced).
    """
    static = config.static
    check_beside_own_weighting(static.baseline)
    name = getattr(weights, "__qualname__", type(weights).__name__)

    def step_weights(params: None, traj: Trajectory, hparams: Hyperparams) -> StepWeights:
        weight = weights(traj, hparams)
        if jnp.shape(weight) != traj.valid.shape:
            raise ValueError(f"the weighting {name} returned shape {jnp.shape(weight)}; it must give one weight per "
                             f"step, [T, E] = {traj.valid.shape} like traj.reward")
        weight = jnp.where(traj.valid, jnp.asarray(weight, jnp.float32), 0.0)
        return StepWeights(weight, REDUCTIONS[static.reduction](traj.valid))

    return fixed_weighting(step_weights)


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
      module: the value network (`pgjax.algo.policy.make_value_network`).
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


def value_weighting(
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
    """`value_baseline` of the value network for a learned `BASELINES` entry (e.g. "value", "value_norm").

    Args:
      spec, config: the environment and settings.
      network, value_forward, value_gradient: what builds the value network and its
        values and gradient from `value_fn` (default: the reference path, `pgjax.algo.loss`;
        `pgjax.algo.pieces` passes the fast paths).
      recurrent_forward, recurrent_gradient: the same for a recurrent value network, from its
        `Recurrence` and `value_fn` (default: whole-episode scans, `recurrent_values`).
    """
    module = network(make_value_network(spec, config))
    value_fn = make_value_fn(module)
    value_recurrence = recurrence(module)
    if value_recurrence is not None:  # its values and gradient go through whole episodes
        return value_baseline(spec, config, module, recurrent_forward(value_recurrence, value_fn),
                              recurrent_gradient(value_recurrence, value_fn))
    return value_baseline(spec, config, module, value_forward(value_fn), value_gradient(value_fn))
