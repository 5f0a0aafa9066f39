"""The layers pgjax's networks are built of: PyTorch-initialised dense and convolution layers, and the
small functions every network applies (flattening, input scaling, a dense head, the Gaussian's log std).

Layers are initialised as PyTorch's `nn.Linear` / `nn.Conv2d` are (weights and biases uniform in
+-1/sqrt(fan_in)), so the tutorial presets start from the same distribution as the originals.
`pgjax.algo.networks` builds its policies from them, and a custom network may reuse them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

ACTIVATIONS = {"relu": jax.nn.relu, "tanh": jnp.tanh}


def _torch_uniform(fan_in: int) -> Callable:
    bound = 1.0 / jnp.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


class _Linear(nn.Module):
    """Declares the kernel [fan_in, features] and bias [features] (PyTorch's initialisation)."""

    features: int

    @nn.compact
    def __call__(self, fan_in: int) -> tuple[jax.Array, jax.Array]:
        init = _torch_uniform(fan_in)
        return self.param("kernel", init, (fan_in, self.features)), self.param("bias", init, (self.features,))


class DenseWeights(nn.Module):
    """A dense layer's kernel [fan_in, features] and bias [features], initialised as PyTorch's `nn.Linear`.

    They live at "<name>/Dense_0/kernel" and ".../bias", where earlier versions'
    `nn.Dense` layers kept them, so parameters (and their initial values) match.
    """

    features: int

    @nn.compact
    def __call__(self, fan_in: int) -> tuple[jax.Array, jax.Array]:
        return _Linear(self.features, name="Dense_0")(fan_in)


class TorchDense(nn.Module):
    """A dense layer x [..., fan_in] -> x @ kernel + bias [..., features], initialised as PyTorch's `nn.Linear`.

    Its kernel and bias live at "<name>/Dense_0/kernel" and ".../bias" (`DenseWeights`'s places).
    """

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel, bias = _Linear(self.features, name="Dense_0")(x.shape[-1])
        return x @ kernel + bias


class TorchConv(nn.Module):
    """3x3 convolution ('VALID', stride 1): [..., H, W, C] -> [..., H-2, W-2, features].

    Initialised as PyTorch's `nn.Conv2d` (uniform in +-1/sqrt(9 C)); computed by
    `lax.conv_general_dilated` (its fast path: `pgjax.algo.fast.networks.Im2colConv`).
    """

    features: int

    def weights(self, channels: int) -> tuple[jax.Array, jax.Array]:
        """The kernel [3, 3, channels, features] and bias [features] (call inside `__call__`)."""
        init = _torch_uniform(9 * channels)
        return self.param("kernel", init, (3, 3, channels, self.features)), self.param("bias", init, (self.features,))

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel, bias = self.weights(x.shape[-1])
        h, w = x.shape[-3] - 2, x.shape[-2] - 2
        images = x.reshape((-1, *x.shape[-3:]))
        out = jax.lax.conv_general_dilated(images, kernel, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return out.reshape((*x.shape[:-3], h, w, self.features)) + bias


def flatten(obs: jax.Array, obs_dims: int) -> jax.Array:
    """[..., *obs_shape] -> [..., prod(obs_shape)], the last `obs_dims` axes being the observation's."""
    if obs_dims == 1:
        return obs
    return obs.reshape(obs.shape[: obs.ndim - obs_dims] + (-1,))


def scaled(obs: jax.Array, scale: float) -> jax.Array:
    """The network's input in its units: obs * scale (1/255 for uint8 0..255 images, `EnvSpec.obs_scale`);
    obs itself where scale is 1.0, adding nothing to the computation."""
    return obs if scale == 1.0 else obs * jnp.float32(scale)


def dense_head(x: jax.Array, hidden: Sequence[int], num_outputs: int, activation: str) -> jax.Array:
    """The `hidden` dense layers ("TorchDense_0", "TorchDense_1", ...) and the linear output layer: x -> [..., K].

    Call inside a module's compact `__call__`.
    """
    act = ACTIVATIONS[activation]
    for i, width in enumerate(hidden):
        x = act(TorchDense(width, name=f"TorchDense_{i}")(x))
    return TorchDense(num_outputs, name=f"TorchDense_{len(hidden)}")(x)


def with_log_std(module: nn.Module, out: jax.Array) -> jax.Array:
    """A Gaussian's output [mean, log_std] [..., 2A] from the mean `out` [..., A] and `module`'s "log_std" [A].

    The initial log std is set by the trainer (`Hyperparams.init_log_std`); zeros here.
    """
    log_std = module.param("log_std", nn.initializers.zeros, (out.shape[-1],))
    return jnp.concatenate([out, jnp.broadcast_to(log_std, out.shape)], axis=-1)
