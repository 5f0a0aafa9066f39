"""Networks: Flax modules from observations to the output that parameterises the action distribution.

`MLPPolicy` (observations flattened, then dense layers) and `CNNPolicy` (3x3
convolutions over an image observation [H, W, C], then dense layers; the
MinAtar paper's network is one layer of 16 channels and 128 hidden units).
Their output `out` is logits [..., A] for a categorical policy, or [..., 2A]
(mean, then the learned state-independent log std) for a Gaussian one
(`pgjax.algo.distributions`).

Their dense layers are `pgjax.algo.dense.dense_layers`; an MLP can instead use
`dense_stack`, the same function with a hand-written feature-major backward pass.
Parameters are a plain pytree and `module.apply({"params": p}, obs)` is pure.
Layers are initialised as PyTorch's `nn.Linear` / `nn.Conv2d` are (weights and
biases uniform in +-1/sqrt(fan_in)), so the tutorial presets start from the same
distribution as the originals.

`make_policy(spec, config)` and `make_value_network(spec, config)` build the
modules a config describes for an environment; `make_apply_fn` and
`make_value_fn` turn them into plain functions of (params, obs).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from pgjax.algo.config import Config, StaticConfig
from pgjax.algo.dense import ACTIVATIONS, dense_layers, dense_stack
from pgjax.algo.envs import EnvSpec


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


class TorchConv(nn.Module):
    """3x3 convolution ('VALID', stride 1): [..., H, W, C] -> [..., H-2, W-2, features].

    Initialised as PyTorch's `nn.Conv2d` (uniform in +-1/sqrt(9 C)). Computed as
    one matrix product over the 9 shifted copies of the input (im2col) rather
    than `lax.conv`: under `jax.vmap` over runs a convolution with per-run
    kernels becomes a grouped convolution, which XLA's CPU backend ran two
    orders of magnitude slower than this batched product.
    """

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        channels = x.shape[-1]
        init = _torch_uniform(9 * channels)
        kernel = self.param("kernel", init, (3, 3, channels, self.features))
        bias = self.param("bias", init, (self.features,))
        h, w = x.shape[-3] - 2, x.shape[-2] - 2
        patches = jnp.concatenate(
            [x[..., i : i + h, j : j + w, :] for i in range(3) for j in range(3)], axis=-1
        )  # [..., h, w, 9 C], in the kernel's (i, j, c) order
        return patches @ kernel.reshape(9 * channels, self.features) + bias


def _flatten(obs: jax.Array, obs_dims: int) -> jax.Array:
    """[..., *obs_shape] -> [..., prod(obs_shape)], the last `obs_dims` axes being the observation's."""
    if obs_dims == 1:
        return obs
    return obs.reshape(obs.shape[: obs.ndim - obs_dims] + (-1,))


def _dense_head(
    module: nn.Module,
    x: jax.Array,
    hidden: Sequence[int],
    num_actions: int,
    activation: str,
    gaussian: bool,
    stack: Callable = dense_layers,
) -> jax.Array:
    """The `hidden` dense layers and the output layer: x [..., D] -> out.

    out: logits [..., A], or for a Gaussian [mean, log_std] [..., 2A]. `stack` is
    `pgjax.algo.dense.dense_stack` or `dense_layers`. The layers' parameters are
    "TorchDense_0", "TorchDense_1", ... in order.
    """
    fan_ins = (x.shape[-1], *hidden)
    widths = (*hidden, num_actions)
    layers = tuple(DenseWeights(w, name=f"TorchDense_{i}")(f) for i, (f, w) in enumerate(zip(fan_ins, widths)))
    out = stack(activation, layers, x)
    if not gaussian:
        return out
    # The initial log std is set by the trainer (`Hyperparams.init_log_std`); zeros here.
    log_std = module.param("log_std", nn.initializers.zeros, (num_actions,))
    return jnp.concatenate([out, jnp.broadcast_to(log_std, out.shape)], axis=-1)


class MLPPolicy(nn.Module):
    """obs [..., *obs_shape] -> out: logits [..., num_actions], or [..., 2 num_actions] if `gaussian`.

    Attributes:
      num_actions: A, actions (Discrete) or action dimensions (Box, `gaussian`).
      hidden: hidden layer widths; activation: their nonlinearity.
      obs_dims: trailing axes of the input that form one observation (flattened).
      gaussian: output the mean and log standard deviation of a Gaussian.
      feature_major_backward: differentiate the layers with `pgjax.algo.dense.dense_stack`'s
        hand-written backward pass instead of autodiff (`StaticConfig.feature_major_backward`).
    """

    num_actions: int
    hidden: Sequence[int] = (32,)
    activation: str = "relu"
    obs_dims: int = 1
    gaussian: bool = False
    feature_major_backward: bool = False

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = _flatten(obs, self.obs_dims)
        stack = dense_stack if self.feature_major_backward else dense_layers
        return _dense_head(self, x, self.hidden, self.num_actions, self.activation, self.gaussian, stack)


class CNNPolicy(nn.Module):
    """Image obs [..., H, W, C] (or [..., H, W]: one channel) -> out, as `MLPPolicy`.

    Each of `conv` is a 3x3 convolution ('VALID', stride 1) with that many
    channels and the activation; its output is flattened into the `hidden` dense
    layers. conv=(16,), hidden=(128,) is the network of the MinAtar paper
    (Young & Tian, 2019).
    """

    num_actions: int
    conv: Sequence[int] = (16,)
    hidden: Sequence[int] = (128,)
    activation: str = "relu"
    obs_dims: int = 3
    gaussian: bool = False

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = obs if self.obs_dims == 3 else obs[..., None]
        act = ACTIVATIONS[self.activation]
        for channels in self.conv:
            x = act(TorchConv(channels)(x))
        x = _flatten(x, 3)
        return _dense_head(self, x, self.hidden, self.num_actions, self.activation, self.gaussian)


def feature_major_backward(spec: EnvSpec, static: StaticConfig) -> bool:
    """Whether the MLP takes `pgjax.algo.dense.dense_stack`'s feature-major backward pass.

    `static.feature_major_backward` where set; None decides by the first layer:
    on where the flattened observation has at most `hidden[0]` entries.
    """
    if static.feature_major_backward is not None:
        return static.feature_major_backward
    return math.prod(spec.obs_shape) <= static.hidden[0]


def _network(spec: EnvSpec, static: StaticConfig, num_outputs: int, gaussian: bool) -> MLPPolicy | CNNPolicy:
    obs_dims = len(spec.obs_shape)
    if static.network == "mlp":
        return MLPPolicy(num_outputs, tuple(static.hidden), static.activation, obs_dims=obs_dims, gaussian=gaussian,
                         feature_major_backward=feature_major_backward(spec, static))
    if static.network == "cnn":
        if obs_dims not in (2, 3):
            raise ValueError(
                f"network 'cnn' needs image observations [H, W] or [H, W, C]; {static.env} has observations of "
                f"shape {spec.obs_shape}: use network 'mlp'"
            )
        return CNNPolicy(num_outputs, tuple(static.conv), tuple(static.hidden), static.activation,
                         obs_dims=obs_dims, gaussian=gaussian)
    raise ValueError(f"unknown network {static.network!r}")


def make_policy(spec: EnvSpec, config: Config) -> MLPPolicy | CNNPolicy:
    """The Flax policy module the config describes, for this environment.

    Its output parameterises `make_distribution(spec, config)`: logits for
    Discrete actions, a Gaussian's mean and log std for Box actions.
    """
    return _network(spec, config.static, spec.num_actions, spec.action_kind == "continuous")


def make_value_network(spec: EnvSpec, config: Config) -> MLPPolicy | CNNPolicy:
    """The value network: the policy's architecture with one output, V(s)."""
    return _network(spec, config.static, 1, False)


def make_apply_fn(module: MLPPolicy | CNNPolicy) -> Callable[[Any, jax.Array], jax.Array]:
    """`(params, obs [..., *obs_shape]) -> out [..., K]` for a policy module."""

    def apply_fn(params, obs):
        return module.apply({"params": params}, obs.astype(jnp.float32))

    return apply_fn


def make_value_fn(module: MLPPolicy | CNNPolicy) -> Callable[[Any, jax.Array], jax.Array]:
    """`(params, obs [..., *obs_shape]) -> V [...]` for a value network."""

    def value_fn(params, obs):
        return module.apply({"params": params}, obs.astype(jnp.float32))[..., 0]

    return value_fn
