"""Returns, baselines and loss reductions for a batch of E episodes.

All arrays are time-major `[T, E]`: episode e occupies rows `0 .. len_e - 1` of
column e, and the rows after it are padding with `valid == False` and zero reward.
Every function here is pure and works on one run; `jax.vmap` adds runs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from pgjax.config import Baseline, Reduction, Returns


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


def step_returns(reward: jax.Array, valid: jax.Array, gamma: jax.Array | float, kind: Returns) -> jax.Array:
    """The return that weights each step's log-probability, [T, E] (zero on padding).

    kind "episode": the discounted total sum_t gamma^t r_t of the step's episode,
    the same for every step of it (tutorial 000 with gamma = 1: sum(rewards)).
    kind "reward_to_go": `discounted_returns`.
    """
    to_go = discounted_returns(reward, gamma)
    if kind == "reward_to_go":
        return to_go
    if kind == "episode":
        return jnp.where(valid, to_go[0], 0.0)
    raise ValueError(f"unknown returns kind {kind!r}")


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


def apply_baseline(
    returns: jax.Array, valid: jax.Array, kind: Baseline, constant: jax.Array | float = 0.0
) -> jax.Array:
    """Turn returns [T, E] into per-step weights [T, E] (zero on padding).

    kind: "none" (returns as they are), "constant" (returns - constant),
    "batch_mean" (minus the mean over all valid steps of the batch),
    "episode_norm" ((G - mean) / std within each episode, tutorial 001) or
    "batch_norm" ((G - mean) / std over all valid steps of the batch).
    Standard deviations are torch's sample std (ddof=1).
    """
    if kind == "none":
        weights = returns
    elif kind == "constant":
        weights = returns - constant
    elif kind == "batch_mean":
        weights = returns - _masked_mean_std(returns, valid, axis=None)[0]
    elif kind in ("episode_norm", "batch_norm"):
        mean, std = _masked_mean_std(returns, valid, axis=0 if kind == "episode_norm" else None)
        weights = (returns - mean) / std
    else:
        raise ValueError(f"unknown baseline {kind!r}")
    return jnp.where(valid, weights, 0.0)


def step_coefficients(valid: jax.Array, kind: Reduction) -> jax.Array:
    """The factor c_t,e with which each step's loss enters the total, [T, E].

    loss = sum_{t,e} c_t,e * l_t,e, where
      "episode_mean": c = 1 / (E * len_e)   (mean over steps, then episodes)
      "episode_sum":  c = 1 / E             (sum over steps, mean over episodes)
      "step_mean":    c = 1 / sum_e len_e   (mean over all steps)
    and c = 0 on padding rows.
    """
    valid_f = valid.astype(jnp.float32)
    num_episodes = valid.shape[1]
    if kind == "episode_mean":
        lengths = jnp.maximum(valid_f.sum(axis=0, keepdims=True), 1.0)
        return valid_f / (num_episodes * lengths)
    if kind == "episode_sum":
        return valid_f / num_episodes
    if kind == "step_mean":
        return valid_f / jnp.maximum(valid_f.sum(), 1.0)
    raise ValueError(f"unknown reduction {kind!r}")
