"""Recurrent policies: a dense torso, Flax's GRU or LSTM cell, a linear output, carried step by step.

`RecurrentPolicy` is what `--network gru` and `--network lstm` build (`pgjax.algo.networks`
registers them). `recurrence(module)` gives the rollout and the sliced gradient
(`pgjax.algo.fast.recurrent`) its two plain functions, the zero state and one step; a custom
module with `initial_carry` and `step` methods is recurrent too (`is_recurrent`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from pgjax.algo.layers import ACTIVATIONS, TorchDense, flatten, scaled

CELLS = {"gru": nn.GRUCell, "lstm": nn.LSTMCell}  # the recurrent networks' Flax cells, by network name


def orthogonal_one_at_a_time(scale: float = 1.0) -> Callable[..., jax.Array]:
    """Flax's orthogonal initializer (the cells' default recurrent kernel), one QR per call under `vmap`.

    Vmapped over seeds, `flax.linen.initializers.orthogonal` becomes one batched
    LAPACK QR, which jaxlib's CPU kernel splits over XLA's intra-op thread pool
    and then waits on from a thread of that same pool: with the cells' several
    kernels initialised side by side (an LSTM has four) every worker can end up
    waiting, and the program hangs at 0% CPU, sometimes. `sequential_vmap` turns
    the batch into a loop of single QRs, so the values are Flax's, bitwise, and
    the kernel never fans out.

    Returns:
      init(key, shape [..., n, m], dtype) -> [..., n, m], as Flax's.
    """
    flax_orthogonal = nn.initializers.orthogonal(scale)

    def init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
        return jax.custom_batching.sequential_vmap(lambda k: flax_orthogonal(k, shape, dtype))(key)

    return init


class RecurrentPolicy(nn.Module):
    """A recurrent policy: obs -> dense torso -> Flax's GRU or LSTM cell -> linear output, step by step.

    `__call__(obs [T, ..., *obs_shape]) -> out [T, ..., K]` reads the leading axis
    as time: every sequence starts from the zero state at row 0 (an episode's
    first step), and `lax.scan` (lifted by `nn.scan`) carries the state down
    the rows, so differentiating it is backpropagation through the whole
    episode. A single observation `[*obs_shape]` is one step from the zero
    state. `step(carry, obs [..., *obs_shape]) -> (carry, out [..., K])` is one
    step, what the rollout calls; `initial_carry(batch_shape)` is the zero state.

    Attributes:
      num_actions: K, as `MLPPolicy`'s (1 for a value network).
      hidden: the widths of the dense torso, then the cell's: (64,) is a 64-unit
        cell on the (flattened) observation, (64, 128) a 64-unit dense layer
        before a 128-unit cell.
      cell: "gru" (`flax.linen.GRUCell`) or "lstm" (`flax.linen.LSTMCell`, whose
        state is its (c, h) pair).
      activation, obs_dims, gaussian, obs_scale: as `MLPPolicy`'s.
    """

    num_actions: int
    hidden: Sequence[int] = (64,)
    cell: str = "gru"
    activation: str = "relu"
    obs_dims: int = 1
    gaussian: bool = False
    obs_scale: float = 1.0

    def setup(self) -> None:
        *torso, width = self.hidden
        self.torso = [TorchDense(w, name=f"TorchDense_{i}") for i, w in enumerate(torso)]
        self.recurrent_cell = CELLS[self.cell](width, recurrent_kernel_init=orthogonal_one_at_a_time(),
                                               name="cell")
        self.head = TorchDense(self.num_actions, name=f"TorchDense_{len(torso)}")
        if self.gaussian:
            self.log_std = self.param("log_std", nn.initializers.zeros, (self.num_actions,))

    def initial_carry(self, batch_shape: tuple[int, ...]) -> Any:
        """The zero state of `batch_shape` sequences: h [*batch_shape, H] (GRU) or (c, h) (LSTM)."""
        zeros = jnp.zeros(tuple(batch_shape) + (self.hidden[-1],), jnp.float32)
        return (zeros, zeros) if self.cell == "lstm" else zeros

    def step(self, carry: Any, obs: jax.Array) -> tuple[Any, jax.Array]:
        """One step: (state, obs [..., *obs_shape]) -> (next state, out [..., K] or [..., 2K])."""
        x = flatten(scaled(obs, self.obs_scale), self.obs_dims)
        act = ACTIVATIONS[self.activation]
        for layer in self.torso:
            x = act(layer(x))
        carry, y = self.recurrent_cell(carry, x)
        out = self.head(y)
        if self.gaussian:
            out = jnp.concatenate([out, jnp.broadcast_to(self.log_std, out.shape)], axis=-1)
        return carry, out

    def __call__(self, obs: jax.Array) -> jax.Array:
        if obs.ndim == self.obs_dims:  # one observation: one step from the zero state
            return self.step(self.initial_carry(()), obs)[1]
        scan = nn.scan(lambda module, carry, x: module.step(carry, x), variable_broadcast="params",
                       split_rngs={"params": False})
        return scan(self, self.initial_carry(obs.shape[1:obs.ndim - self.obs_dims]), obs)[1]


class Recurrence(NamedTuple):
    """What the rollout needs of a recurrent policy (`recurrence`), each a plain function.

    Attributes:
      initial_carry: `(batch_shape) -> state`, the zero state an episode starts from.
      step: `(params, state, obs [E, *obs_shape]) -> (state, out [E, K])`, one step of E episodes.
    """

    initial_carry: Callable[[tuple[int, ...]], Any]
    step: Callable[[Any, Any, jax.Array], tuple[Any, jax.Array]]


def is_recurrent(module: nn.Module) -> bool:
    """Whether `module` carries a state from step to step: it has `initial_carry` and `step` methods
    (`RecurrentPolicy`, or a custom module of the same shape)."""
    return callable(getattr(module, "initial_carry", None)) and callable(getattr(module, "step", None))


def recurrence(module: nn.Module) -> Recurrence | None:
    """The `Recurrence` of a recurrent module, None for a feed-forward one (`is_recurrent`)."""
    if not is_recurrent(module):
        return None

    def step(params, carry, obs):
        return module.apply({"params": params}, carry, obs.astype(jnp.float32), method="step")

    return Recurrence(lambda batch_shape: module.initial_carry(batch_shape), step)
