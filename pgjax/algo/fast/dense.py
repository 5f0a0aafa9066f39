"""A stack of dense layers whose backward pass runs feature-major.

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

from collections.abc import Sequence
from functools import partial

import jax

from pgjax.algo.networks import ACTIVATIONS

Layer = tuple[jax.Array, jax.Array]  # kernel [fan_in, width], bias [width]


def dense_layers(activation: str, layers: Sequence[Layer], x: jax.Array) -> jax.Array:
    """`dense_stack` without its VJP: autodiff differentiates it row-major.

    The same function as `pgjax.algo.networks.dense_head`'s layers; the reference
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
