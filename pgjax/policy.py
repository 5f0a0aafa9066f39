"""The policy: a Flax MLP from observations to the logits of a categorical distribution.

Parameters are a plain pytree and `MLPPolicy(...).apply({"params": p}, obs)` is pure.
Layers are initialised as PyTorch's `nn.Linear` is (weights and biases uniform in
+-1/sqrt(fan_in)), so the tutorial presets start from the same distribution as the
originals.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {"relu": nn.relu, "tanh": nn.tanh}


def _torch_uniform(fan_in: int) -> Callable:
    bound = 1.0 / jnp.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


class TorchDense(nn.Module):
    """`nn.Dense` with PyTorch's default initialisation."""

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        init = _torch_uniform(x.shape[-1])
        return nn.Dense(self.features, kernel_init=init, bias_init=init)(x)


class MLPPolicy(nn.Module):
    """obs [..., obs_dim] -> logits [..., num_actions] (unnormalised log-probabilities)."""

    num_actions: int
    hidden: Sequence[int] = (32,)
    activation: str = "relu"

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = obs
        act = ACTIVATIONS[self.activation]
        for width in self.hidden:
            x = act(TorchDense(width)(x))
        return TorchDense(self.num_actions)(x)


def _action_major_log_softmax(logits: jax.Array) -> jax.Array:
    """log_softmax over the action axis, returned action-major: [..., A] -> [A, ...].

    Reducing over a leading axis of A rows vectorises along the batch; on a CPU the
    gradient of the default network got 1.5x faster than reducing over a trailing
    axis of 2 (1.15x in a micro-benchmark of the loss alone).
    """
    z = jnp.moveaxis(logits, -1, 0)
    z = z - jax.lax.stop_gradient(z.max(axis=0))
    return z - jnp.log(jnp.sum(jnp.exp(z), axis=0))


def log_prob(logits: jax.Array, actions: jax.Array) -> jax.Array:
    """log pi(a|s): logits [..., A], integer actions [...] -> [...]."""
    logp = _action_major_log_softmax(logits)
    index = jnp.arange(logp.shape[0]).reshape((-1,) + (1,) * actions.ndim)
    return jnp.sum(jnp.where(index == actions, logp, 0.0), axis=0)


def entropy(logits: jax.Array) -> jax.Array:
    """Entropy of the categorical distribution in nats: logits [..., A] -> [...]."""
    logp = _action_major_log_softmax(logits)
    return -jnp.sum(jnp.exp(logp) * logp, axis=0)


def sample(key: jax.Array, logits: jax.Array) -> jax.Array:
    """Draw actions a ~ pi(.|s): logits [..., A] -> int32 [...].

    Inverse-CDF sampling: one uniform number per draw, a = #{k : CDF_k <= u}.
    Exact like `jax.random.categorical`'s Gumbel-max trick, which draws A
    numbers and takes two logarithms of each.
    """
    cdf = jnp.cumsum(jax.nn.softmax(logits), axis=-1)
    u = jax.random.uniform(key, logits.shape[:-1] + (1,), dtype=cdf.dtype)
    return jnp.minimum(jnp.sum(cdf <= u * cdf[..., -1:], axis=-1), logits.shape[-1] - 1).astype(jnp.int32)
