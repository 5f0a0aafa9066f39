"""Returns, baselines and loss reductions for a batch of E episodes.

All arrays are time-major `[T, E]`: episode e occupies rows `0 .. len_e - 1` of
column e, and the rows after it are padding with `valid == False` and zero reward.
Every function here is pure and works on one run; `jax.vmap` adds runs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from pgjax.algo.config import Advantage, Baseline, Reduction, Returns


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
        raise ValueError(f"unknown baseline {kind!r}" + (" (learned: see value_advantages)" if "value" in kind else ""))
    return jnp.where(valid, weights, 0.0)


def _last_step(valid: jax.Array) -> jax.Array:
    """[T, E] bool, True at each episode's last step."""
    after = jnp.concatenate([valid[1:], jnp.zeros_like(valid[:1])], axis=0)
    return valid & ~after


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
    """Advantages and value targets with a learned baseline V (REINFORCE with baseline).

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
    values = jnp.where(valid, values, 0.0)
    last = _last_step(valid)
    bootstrap = jnp.where(last & truncated[None, :], last_values[None, :], 0.0)  # V(s_L) at row L - 1
    if kind == "return":
        target = discounted_returns(reward + gamma * bootstrap, gamma)
        return jnp.where(valid, target - values, 0.0), jnp.where(valid, target, 0.0)
    if kind == "gae":
        next_values = jnp.concatenate([values[1:], jnp.zeros_like(values[:1])], axis=0) + bootstrap
        delta = jnp.where(valid, reward + gamma * next_values - values, 0.0)

        def backward(next_advantage, d):
            a = d + gamma * gae_lambda * next_advantage
            return a, a

        _, advantage = jax.lax.scan(backward, jnp.zeros_like(delta[0]), delta, reverse=True)
        advantage = jnp.where(valid, advantage, 0.0)
        return advantage, jnp.where(valid, advantage + values, 0.0)
    raise ValueError(f"unknown advantage {kind!r}")


def advantage_weights(advantage: jax.Array, valid: jax.Array, kind: Baseline) -> jax.Array:
    """Per-step weights from value-baseline advantages: as they are ("value") or
    standardised over all valid steps of the batch ("value_norm"), zero on padding."""
    if kind == "value":
        return jnp.where(valid, advantage, 0.0)
    if kind == "value_norm":
        mean, std = _masked_mean_std(advantage, valid, axis=None)
        return jnp.where(valid, (advantage - mean) / std, 0.0)
    raise ValueError(f"{kind!r} is not a value baseline")


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


def explained_variance(values: jax.Array, target: jax.Array, valid: jax.Array) -> jax.Array:
    """1 - Var(target - values) / Var(target) over valid steps ([T, E] each): 1 is a perfect fit, 0 none."""
    count = jnp.maximum(valid.sum(), 1)

    def var(x):
        mean = jnp.where(valid, x, 0.0).sum() / count
        return jnp.where(valid, (x - mean) ** 2, 0.0).sum() / count

    total = var(target)
    return jnp.where(total > 0, 1.0 - var(target - values) / jnp.where(total > 0, total, 1.0), 0.0)
