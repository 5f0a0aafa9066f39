"""Action distributions: sampling, log-probability, entropy and the greedy action of one kind.

* categorical (Discrete action spaces): the network's `out` is logits [..., A];
* multi-categorical (MultiDiscrete action spaces, sizes nvec [D]): `out` is the D
  logit vectors concatenated [..., sum(nvec)], one independent categorical per entry;
* Gaussian (Box action spaces): `out` is [..., 2A], the mean [..., :A] and the
  learned, state-independent log standard deviation [..., A:]. Both are in
  normalised units: u = -1 and 1 are the action space's bounds (`Distribution.to_env`).

`categorical()`, `multi_categorical(nvec)` and `gaussian(low, high, squash)` build a `Distribution`;
`make_distribution(spec, squash)` picks the one for an environment's action space.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import log_ndtr

from pgjax.algo.config import Squash
from pgjax.algo.envs import EnvSpec


def log_prob(logits: jax.Array, actions: jax.Array) -> jax.Array:
    """log pi(a|s): logits [..., A], integer actions [...] -> [...]."""
    logp = jax.nn.log_softmax(logits, axis=-1)
    return jnp.take_along_axis(logp, actions[..., None].astype(jnp.int32), axis=-1)[..., 0]


def entropy(logits: jax.Array) -> jax.Array:
    """Entropy of the categorical distribution in nats: logits [..., A] -> [...]."""
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.sum(jnp.exp(logp) * logp, axis=-1)


def sample(key: jax.Array, logits: jax.Array) -> jax.Array:
    """Draw actions a ~ pi(.|s): logits [..., A] -> int32 [...].

    Inverse-CDF sampling: one uniform number per draw, a = #{k : CDF_k <= u}.
    Exact like `jax.random.categorical`'s Gumbel-max trick (`plain_sample`),
    which draws A numbers and takes two logarithms of each; the two give
    different samples from the same key (`pgjax.algo.fast.FastPaths.inverse_cdf_sampling`).
    """
    cdf = jnp.cumsum(jax.nn.softmax(logits), axis=-1)
    u = jax.random.uniform(key, logits.shape[:-1] + (1,), dtype=cdf.dtype)
    return jnp.minimum(jnp.sum(cdf <= u * cdf[..., -1:], axis=-1), logits.shape[-1] - 1).astype(jnp.int32)


def plain_sample(key: jax.Array, logits: jax.Array) -> jax.Array:
    """`sample` by `jax.random.categorical` (the reference path): logits [..., A] -> int32 [...]."""
    return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)


def categorical_greedy(logits: jax.Array) -> jax.Array:
    """The most probable action (ties: the first): logits [..., A] -> int32 [...]."""
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)


# Gaussian policies. The network's mean and log std live in normalised units, in
# which the action space's bounds are -1 and 1; `to_env` maps a sample there.
#
# "clip": u ~ N(mean, std) is clipped to [-1, 1] and stored. The stored action is
#   then distributed as a clipped Gaussian: a density inside the bounds and a
#   point mass at each bound (the Gaussian's tail beyond it). Its log-probability
#   is that mixture's: log N(a; mean, std) inside, log P(u <= -1) = log Phi((-1 -
#   mean) / std) at -1 and log P(u >= 1) at 1 ("clipped action policy gradient",
#   Fujita & Maeda 2018), which gives a lower-variance gradient than the
#   unclipped sample's density and is exactly the distribution of what was done.
# "tanh": the pre-squash sample u ~ N(mean, std) is stored and the environment
#   gets tanh(u); the log-density of tanh(u) is log N(u) - log(1 - tanh(u)^2).
# Either log-probability is of the action in the environment's units: the affine
# map from normalised units subtracts log(half range) per density dimension.
# The entropy (metrics and bonus) is the Gaussian's before clipping or squashing,
# in normalised units: sum(log std) + A/2 log(2 pi e).

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def gaussian_split(out: jax.Array) -> tuple[jax.Array, jax.Array]:
    """out [..., 2A] -> (mean [..., A], log_std [..., A])."""
    a = out.shape[-1] // 2
    return out[..., :a], out[..., a:]


def gaussian_log_prob(
    out: jax.Array, action: jax.Array, squash: Squash, half_range: jax.Array | float = 1.0
) -> jax.Array:
    """log pi(a|s) of stored Gaussian actions: out [..., 2A], action [..., A] -> [...].

    `action` is what `gaussian_sample` stored (the clipped u, or the pre-squash u);
    the result is the log-probability of the action the environment received, in
    its units (`half_range` [A]: (high - low) / 2 of the action space).
    """
    mean, log_std = gaussian_split(out)
    inv_std = jnp.exp(-log_std)
    z = (action - mean) * inv_std
    density = -0.5 * z * z - log_std - _HALF_LOG_2PI - jnp.log(half_range)
    if squash == "tanh":
        # log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), stable for large |u|
        density = density - 2.0 * (math.log(2.0) - action - jax.nn.softplus(-2.0 * action))
        return density.sum(axis=-1)
    if squash == "clip":
        below = log_ndtr((-1.0 - mean) * inv_std)  # log P(u <= -1)
        above = log_ndtr((mean - 1.0) * inv_std)  # log P(u >= 1)
        per_dim = jnp.where(action <= -1.0, below, jnp.where(action >= 1.0, above, density))
        return per_dim.sum(axis=-1)
    raise ValueError(f"unknown squash {squash!r}")


def gaussian_entropy(out: jax.Array) -> jax.Array:
    """Entropy in nats of the Gaussian before clipping or squashing (normalised units): [..., 2A] -> [...]."""
    _, log_std = gaussian_split(out)
    return jnp.sum(log_std + 0.5 + _HALF_LOG_2PI, axis=-1)


def gaussian_sample(key: jax.Array, out: jax.Array, squash: Squash) -> jax.Array:
    """Draw a stored action [..., A]: clip(u, -1, 1) ("clip") or u itself ("tanh"), u ~ N(mean, std)."""
    mean, log_std = gaussian_split(out)
    u = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape, mean.dtype)
    return jnp.clip(u, -1.0, 1.0) if squash == "clip" else u


def gaussian_greedy(out: jax.Array, squash: Squash) -> jax.Array:
    """The stored action of the mean: clip(mean, -1, 1) or the mean itself."""
    mean, _ = gaussian_split(out)
    return jnp.clip(mean, -1.0, 1.0) if squash == "clip" else mean


class Distribution(NamedTuple):
    """One kind of action distribution; `out` is the network's output.

    Attributes:
      sample: (key, out [..., K]) -> stored action [..., *action_shape].
      log_prob: (out, stored action) -> [...], log pi(a|s) of what the environment received.
      entropy: out -> [...] nats.
      greedy: out -> the stored action of the most probable choice (argmax, or the mean).
      to_env: stored action -> the action the environment is given.
      action_shape: () for categorical, (A,) for Gaussian, (D,) for multi-categorical.
      action_dtype: int32 or float32.
    """

    sample: Callable[[jax.Array, jax.Array], jax.Array]
    log_prob: Callable[[jax.Array, jax.Array], jax.Array]
    entropy: Callable[[jax.Array], jax.Array]
    greedy: Callable[[jax.Array], jax.Array]
    to_env: Callable[[jax.Array], jax.Array]
    action_shape: tuple[int, ...]
    action_dtype: jnp.dtype


def categorical(inverse_cdf: bool = True) -> Distribution:
    """The categorical distribution over logits (Discrete action spaces).

    Args:
      inverse_cdf: sample by inverse CDF (`sample`), else by `jax.random.categorical` (`plain_sample`).
    """
    return Distribution(sample if inverse_cdf else plain_sample, log_prob, entropy, categorical_greedy,
                        lambda a: a, (), jnp.int32)


def gaussian(low: Sequence[float], high: Sequence[float], squash: Squash = "clip") -> Distribution:
    """A Gaussian over a Box action space [low, high] (each of shape [A]), clipped or tanh-squashed to it."""
    low, high = jnp.asarray(low, jnp.float32), jnp.asarray(high, jnp.float32)
    centre, half = (high + low) / 2, (high - low) / 2
    if squash not in ("clip", "tanh"):
        raise ValueError(f"unknown squash {squash!r}")
    squash_fn = (lambda u: u) if squash == "clip" else jnp.tanh
    return Distribution(
        sample=lambda key, out: gaussian_sample(key, out, squash),
        log_prob=lambda out, action: gaussian_log_prob(out, action, squash, half),
        entropy=gaussian_entropy,
        greedy=lambda out: gaussian_greedy(out, squash),
        to_env=lambda action: centre + half * squash_fn(action),
        action_shape=(int(low.shape[0]),),
        action_dtype=jnp.float32,
    )


def multi_categorical(nvec: Sequence[int], inverse_cdf: bool = True) -> Distribution:
    """Independent categoricals, one per entry of a MultiDiscrete action space of sizes `nvec` [D].

    `out` is the D logit vectors concatenated, [..., sum(nvec)]; the stored (and the
    environment's) action is int32 [..., D]. log_prob and entropy are the sums over
    the entries; greedy is each entry's argmax. Entry d samples with `fold_in(key, d)`.
    """
    nvec = tuple(int(n) for n in nvec)
    bounds = [sum(nvec[:d]) for d in range(len(nvec) + 1)]
    draw = sample if inverse_cdf else plain_sample

    def parts(out):
        return [out[..., bounds[d]:bounds[d + 1]] for d in range(len(nvec))]

    def multi_sample(key, out):
        return jnp.stack([draw(jax.random.fold_in(key, d), logits) for d, logits in enumerate(parts(out))], axis=-1)

    def multi_log_prob(out, action):
        return sum(log_prob(logits, action[..., d]) for d, logits in enumerate(parts(out)))

    def multi_entropy(out):
        return sum(entropy(logits) for logits in parts(out))

    def multi_greedy(out):
        return jnp.stack([categorical_greedy(logits) for logits in parts(out)], axis=-1)

    return Distribution(multi_sample, multi_log_prob, multi_entropy, multi_greedy, lambda a: a, (len(nvec),),
                        jnp.int32)


def make_distribution(spec: EnvSpec, squash: Squash = "clip", inverse_cdf: bool = True) -> Distribution:
    """The action distribution for this environment's action space: Gaussian for Box, else categorical.

    Args:
      spec: the environment (`pgjax.algo.envs.EnvSpec`): its action space picks the kind.
      squash: how a Gaussian's actions meet the Box's bounds, "clip" or "tanh"
        (`StaticConfig.squash`); unused for Discrete actions.
      inverse_cdf: the categorical's sampler (`categorical`; the fast path `FastPaths.inverse_cdf_sampling`).

    Returns:
      `gaussian(low, high, squash)` for Box actions, `multi_categorical(nvec, ...)` for
      MultiDiscrete ones, else `categorical(...)`.

    Raises:
      ValueError: an unknown squash (Box actions only).
    """
    if spec.action_kind == "continuous":
        return gaussian(spec.action_low, spec.action_high, squash)
    if spec.action_kind == "multi_discrete":
        return multi_categorical(spec.action_nvec, inverse_cdf)
    return categorical(inverse_cdf)
