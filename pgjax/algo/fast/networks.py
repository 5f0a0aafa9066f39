"""The networks' fast paths: a feature-major backward pass for an MLP's dense layers, im2col convolutions.

`fast_network(module, spec, paths)` is the one place that swaps them into the
plain modules of `pgjax.algo.networks` (same parameters, same function):

* `FeatureMajorMLP`: `MLPPolicy` whose dense layers are
  `pgjax.algo.fast.dense.dense_stack`, differentiated feature-major
  (`FastPaths.feature_major_dense`; None: where the flattened observation has
  at most `hidden[0]` entries, where it pays);
* `Im2colConv`: `TorchConv` as one matrix product over the 9 shifted copies
  of the input, where `lax.conv_general_dilated` under `jax.vmap` over runs (a
  kernel per run) becomes a grouped convolution (`FastPaths.im2col_convolution`).

Custom networks (`pgjax.algo.networks.register_network`) are left as they are.
"""

from __future__ import annotations

import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from pgjax.algo.envs import EnvSpec
from pgjax.algo.fast.dense import dense_stack
from pgjax.algo.fast.paths import FastPaths
from pgjax.algo.networks import CNNPolicy, DenseWeights, MLPPolicy, TorchConv, flatten, scaled, with_log_std


class FeatureMajorMLP(MLPPolicy):
    """`MLPPolicy` whose dense layers take `dense_stack`'s hand-written feature-major backward pass."""

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = flatten(scaled(obs, self.obs_scale), self.obs_dims)
        fan_ins = (x.shape[-1], *self.hidden)
        widths = (*self.hidden, self.num_actions)
        layers = tuple(DenseWeights(w, name=f"TorchDense_{i}")(f) for i, (f, w) in enumerate(zip(fan_ins, widths)))
        out = dense_stack(self.activation, layers, x)
        return with_log_std(self, out) if self.gaussian else out


class Im2colConv(TorchConv):
    """`TorchConv` computed as one matrix product over the 9 shifted copies of the input (im2col)."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        channels = x.shape[-1]
        kernel, bias = self.weights(channels)
        h, w = x.shape[-3] - 2, x.shape[-2] - 2
        patches = jnp.concatenate(
            [x[..., i : i + h, j : j + w, :] for i in range(3) for j in range(3)], axis=-1
        )  # [..., h, w, 9 C], in the kernel's (i, j, c) order
        return patches @ kernel.reshape(9 * channels, self.features) + bias


def feature_major(module: MLPPolicy, spec: EnvSpec, paths: FastPaths) -> bool:
    """Whether the MLP takes the feature-major backward pass: `paths.feature_major_dense` where set,
    else where the flattened observation has at most `hidden[0]` entries."""
    if paths.feature_major_dense is not None:
        return paths.feature_major_dense
    return bool(module.hidden) and math.prod(spec.obs_shape) <= module.hidden[0]


def fast_network(module: nn.Module, spec: EnvSpec, paths: FastPaths) -> nn.Module:
    """`module` with the network fast paths `paths` takes swapped in (`module` itself where none applies).

    Only the built-in `MLPPolicy` and `CNNPolicy` (their exact classes) are swapped.
    """
    if type(module) is MLPPolicy and feature_major(module, spec, paths):
        fields = {f.name: getattr(module, f.name) for f in dataclasses.fields(MLPPolicy)
                  if f.name not in ("parent", "name")}
        return FeatureMajorMLP(**fields)
    if type(module) is CNNPolicy and paths.im2col_convolution and module.conv_layer is TorchConv:
        return module.clone(conv_layer=Im2colConv)
    return module
