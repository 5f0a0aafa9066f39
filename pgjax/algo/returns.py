"""Returns, baselines and loss reductions for a batch of E episodes, each kind one registry entry.

All arrays are time-major `[T, E]`: episode e occupies rows `0 .. len_e - 1` of
column e, and the rows after it are padding with `valid == False` and zero reward.
Every function here is pure and works on one run; `jax.vmap` adds runs.

The settings `StaticConfig.returns`, `.baseline`, `.advantage` and `.reduction`
name entries of the registries below; a new kind is one new entry (the
trainer and `validate_kinds` look names up here; the command line
offers the built-in names, `pgjax.algo.config`'s Literal types):

* `RETURNS[name](reward, valid, hparams) -> returns` [T, E], zero on padding;
* `BASELINES[name] = BaselineKind(weights, learned)`, `weights(x, valid,
  hparams) -> weights` [T, E] (zero on padding), where x is the returns, or for
  a `learned` baseline the advantages over a learned value V(s)
  (`pgjax.algo.baselines`);
* `ADVANTAGES[name](reward, valid, truncated, values, last_values, hparams) ->
  (advantage, target)`, each [T, E] and zero on padding (learned baselines only);
* `REDUCTIONS[name](valid) -> coef` [T, E], the factor of each step's loss.

`hparams` is the run's `Hyperparams` (scalar leaves): gamma, baseline_constant,
gae_lambda and any other field an entry needs.

The module has three parts, in this order: the entries and the four registries
(what `pgjax.algo.baselines` looks a config's kinds up in); `validate_kinds`
and `validate_learned` (a config's kind names against them); and the same
kinds called by name with plain numbers (`step_returns`, `apply_baseline`,
`value_advantages`, `advantage_weights`, `step_coefficients`), which tests,
experiments and tutorials use and the trainer does not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

import jax
import jax.numpy as jnp

if TYPE_CHECKING:
    from pgjax.algo.config import Advantage, Baseline, Hyperparams, Reduction, Returns, StaticConfig


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


def episode_returns(reward: jax.Array, valid: jax.Array, hparams: Hyperparams) -> jax.Array:
    """RETURNS["episode"]: the discounted total sum_t gamma^t r_t of the step's episode on every
    step of it (tutorial 000 with gamma = 1: sum(rewards))."""
    return jnp.where(valid, discounted_returns(reward, hparams.gamma)[0], 0.0)


ReturnsFn = Callable[[jax.Array, jax.Array, "Hyperparams"], jax.Array]


RETURNS: dict[str, ReturnsFn] = {"episode": episode_returns, "reward_to_go": reward_to_go}


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
        trained, `pgjax.algo.baselines`; needs returns "reward_to_go"); otherwise x
        is the returns.
    """

    weights: Callable[[jax.Array, jax.Array, "Hyperparams"], jax.Array]
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
