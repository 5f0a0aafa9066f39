"""The networks' fast paths: a feature-major backward pass for an MLP's dense layers, im2col convolutions.

`fast_network(module, spec, feature_major_dense, im2col_convolution)` swaps them into the
plain modules of `pgjax.algo.policy` (same parameters, same function; `pgjax.algo.pieces` chooses):

* `FeatureMajorMLP`: `MLPPolicy` whose dense layers are
  `dense_stack`, differentiated feature-major
  (`FastPaths.feature_major_dense`; None: where the flattened observation has
  at most `hidden[0]` entries, where it pays);
* `Im2colConv`: `TorchConv` as one matrix product over the 9 shifted copies
  of the input, where `lax.conv_general_dilated` under `jax.vmap` over runs (a
  kernel per run) becomes a grouped convolution (`FastPaths.im2col_convolution`).

Custom networks (`pgjax.algo.policy.register_network`) are left as they are.

## The feature-major dense stack

    out = dense_stack("relu", ((W0, b0), (W1, b1)), x)   # relu(x @ W0 + b0) @ W1 + b1

Called plainly (the rollout) it is the usual row-major forward, `x @ W + b`
layer by layer. Under differentiation (the losses) a hand-written VJP
(`jax.custom_vjp`) computes the same function with activations laid out
feature-major, [width, N] for N rows, and takes the gradients in that layout:
weight gradients become products whose outputs are the weights' own shape and
whose inputs need no transposed copies, where autodiff through the row-major
forward transposes every [N, width] activation before its weight gradient.
The values are the same function; float sums may differ in their order.
Whether an MLP uses it: `FastPaths.feature_major_dense`
(`pgjax.algo.fast.networks`); `experiments/feature_major.py` and
`experiments/fast_paths.py` measure it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp

from pgjax.algo.envs import EnvSpec
from pgjax.algo.policy import (
    ACTIVATIONS,
    CNNPolicy,
    DenseWeights,
    Masked,
    MLPPolicy,
    TorchConv,
    flatten,
    scaled,
    with_log_std,
)


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


def feature_major(module: MLPPolicy, spec: EnvSpec, setting: bool | None = None) -> bool:
    """Whether the MLP takes the feature-major backward pass: `setting` (`FastPaths.feature_major_dense`)
    where set, else where the flattened observation has at most `hidden[0]` entries."""
    if setting is not None:
        return setting
    return bool(module.hidden) and math.prod(spec.obs_shape) <= module.hidden[0]


def fast_network(module: nn.Module, spec: EnvSpec, feature_major_dense: bool | None = None,
                 im2col_convolution: bool = True) -> nn.Module:
    """`module` with the network fast paths swapped in (`module` itself where none applies); the settings
    are `FastPaths`'.

    Only the built-in `MLPPolicy` and `CNNPolicy` (their exact classes) are swapped, alone or inside `Masked`.
    """
    if isinstance(module, Masked):
        features = spec._replace(obs_shape=(spec.obs_shape[-1] - module.mask_size,), mask_size=0)
        return module.clone(network=fast_network(module.network, features, feature_major_dense, im2col_convolution))
    if type(module) is MLPPolicy and feature_major(module, spec, feature_major_dense):
        fields = {f.name: getattr(module, f.name) for f in dataclasses.fields(MLPPolicy)
                  if f.name not in ("parent", "name")}
        return FeatureMajorMLP(**fields)
    if type(module) is CNNPolicy and im2col_convolution and module.conv_layer is TorchConv:
        return module.clone(conv_layer=Im2colConv)
    return module


# The feature-major dense stack.

Layer = tuple[jax.Array, jax.Array]  # kernel [fan_in, width], bias [width]


def dense_layers(activation: str, layers: Sequence[Layer], x: jax.Array) -> jax.Array:
    """`dense_stack` without its VJP: autodiff differentiates it row-major.

    The same function as `pgjax.algo.policy.dense_head`'s layers; the reference
    that tests/test_dense.py checks `dense_stack` against.
    """
    act = ACTIVATIONS[activation]
    for kernel, bias in layers[:-1]:
        x = act(x @ kernel + bias)
    kernel, bias = layers[-1]
    return x @ kernel + bias


@partial(jax.custom_vjp, nondiff_argnums=(0,))
def dense_stack(activation: str, layers: Sequence[Layer], x: jax.Array) -> jax.Array:
    """Hidden layers act(h @ W + b), then a linear output layer: x [..., D] -> [..., K].

    Args:
      activation: "relu" or "tanh", the hidden layers' nonlinearity.
      layers: a tuple of (kernel [fan_in, width], bias [width]) per layer, the
        last being the output layer (no activation).
      x: float32 [..., D] inputs; any leading axes.

    Returns:
      float32 [..., K], K the output layer's width.
    """
    return dense_layers(activation, layers, x)


def _feature_major_forward(activation: str, layers: Sequence[Layer], x: jax.Array):
    """Rows x [N, D] -> (output [K, N], pre-activations [width, N] of the hidden layers)."""
    act = ACTIVATIONS[activation]
    kernel, bias = layers[0]
    z = jax.lax.dot_general(kernel, x, (((0,), (1,)), ((), ()))) + bias[:, None]  # W^T x^T: [width, N]
    pre = []
    for kernel, bias in layers[1:]:
        pre.append(z)
        z = kernel.T @ act(z) + bias[:, None]
    return z, pre


def _dense_stack_fwd(activation, layers, x):
    rows = x.reshape(-1, x.shape[-1])
    out, pre = _feature_major_forward(activation, layers, rows)
    return out.T.reshape(x.shape[:-1] + out.shape[:1]), (layers, rows, pre)


def _dense_stack_bwd(activation, residuals, g):
    layers, rows, pre = residuals
    act = ACTIVATIONS[activation]
    dz = g.reshape(-1, g.shape[-1]).T  # [K, N]
    grads = [None] * len(layers)
    for i in range(len(layers) - 1, 0, -1):
        kernel, _ = layers[i]
        h, act_vjp = jax.vjp(act, pre[i - 1])  # [fan_in, N]
        grads[i] = (jax.lax.dot_general(h, dz, (((1,), (1,)), ((), ()))), dz.sum(axis=1))
        dz = act_vjp(kernel @ dz)[0]
    kernel, _ = layers[0]
    grads[0] = ((dz @ rows).T, dz.sum(axis=1))
    dx = (kernel @ dz).T.reshape(g.shape[:-1] + rows.shape[-1:])  # dropped by XLA where x needs no gradient
    return tuple(grads), dx


dense_stack.defvjp(_dense_stack_fwd, _dense_stack_bwd)
