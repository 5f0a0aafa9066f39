"""A recurrent network's gradients and values over time slices: backpropagation through whole episodes,
memory flat in the step limit.

`pgjax.algo.loss` differentiates a recurrent policy's loss with one `lax.scan`
over all T rows of the trajectory (up to the step limit, padding included), so
it stores every step's values for the backward pass and computes the padding
too. Here the rows are taken in slices of S steps, and only the slices that
hold any episode's step:

1. forward: the network's state is carried through the slices, and the state
   at each slice's start is kept (n states [E, H], n the slices that hold a step);
2. backward, from the last slice to the first: each slice is recomputed from
   its kept state and differentiated (`jax.vjp`), the cotangent of its end state
   being what the next slice gave back for its start state.

That is the gradient of the whole episodes (exact backpropagation through
time, up to the order of float sums), with the values of one slice alive at a
time; the forward is computed twice. Rows past T in the last slice (T not a
multiple of S) repeat row T - 1 and are masked out. `FastPaths.blocked_gradient`
switches this in (off: `pgjax.algo.loss`'s whole-trajectory scan and
`pgjax.algo.weights.recurrent_values`); each function has the per-run
interface of the plain one and is vmappable over runs (its loops then run to
the batch's longest episode).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from pgjax.algo.loss import PolicyGradientFn, reinforce_loss
from pgjax.algo.policy import Distribution, Recurrence
from pgjax.algo.rollout import Trajectory


def slice_steps(num_steps: int, num_episodes: int, block_rows: int) -> int:
    """S, the time steps of a slice: about `block_rows` steps of E episodes, between 1 and T."""
    return min(num_steps, max(1, block_rows // max(1, num_episodes)))


def _rows(i: jax.Array, steps: int, num_steps: int) -> tuple[jax.Array, jax.Array]:
    """Slice i's row indices [S] (clamped to T - 1) and whether each is a real row (< T), as [S, 1]."""
    rows = i * steps + jnp.arange(steps)
    return jnp.minimum(rows, num_steps - 1), (rows < num_steps)[:, None]


def _take(x: jax.Array, rows: jax.Array) -> jax.Array:
    return jnp.take(x, rows, axis=0)


def sequence(recurrence: Recurrence, params: Any, state: Any, obs: jax.Array) -> tuple[Any, jax.Array]:
    """The network over obs [S, E, *obs_shape] from `state`: (end state, out [S, E, K])."""
    return jax.lax.scan(lambda carry, x: recurrence.step(params, carry, x), state, obs.astype(jnp.float32))


def _num_slices(valid: jax.Array, steps: int) -> jax.Array:
    """The slices that hold any step (episodes start at row 0, so rows past the longest are padding)."""
    return (valid.any(axis=1).sum() + steps - 1) // steps


def sliced_gradient(
    recurrence: Recurrence, params: Any, obs: jax.Array, valid: jax.Array, terms: Callable, steps: int
) -> tuple[jax.Array, jax.Array, Any]:
    """The gradient of sum over slices of `terms(out, rows, real)[0]` through the network's whole sequence.

    Args:
      recurrence, params: the network.
      obs: [T, E, *obs_shape]; valid: [T, E] bool (which slices hold steps).
      terms: `(out [S, E, K], rows [S], real [S, 1]) -> (loss [], aux [])` of one slice.
      steps: S.

    Returns:
      (loss, aux summed over the slices, grads like params).
    """
    num_steps, num_episodes = valid.shape
    num_slices = _num_slices(valid, steps)
    start = recurrence.initial_carry((num_episodes,))

    def forward(i, carried):
        state, starts = carried
        starts = jax.tree.map(lambda s, x: s.at[i].set(x), starts, state)
        return sequence(recurrence, params, state, _take(obs, _rows(i, steps, num_steps)[0]))[0], starts

    max_slices = -(-num_steps // steps)
    starts = jax.tree.map(lambda x: jnp.zeros((max_slices,) + x.shape, x.dtype), start)
    _, starts = jax.lax.fori_loop(0, num_slices, forward, (start, starts))

    def slice_terms(p, state, i):
        rows, real = _rows(i, steps, num_steps)
        state, out = sequence(recurrence, p, state, _take(obs, rows))
        return terms(out, rows, real), state

    def backward(j, carried):
        state_cotangent, grads, loss, aux = carried
        i = num_slices - 1 - j
        state = jax.tree.map(lambda s: s[i], starts)
        ((slice_loss, slice_aux), _), pullback = jax.vjp(lambda p, s: slice_terms(p, s, i), params, state)
        slice_grads, state_cotangent = pullback(((jnp.ones_like(slice_loss), jnp.zeros_like(slice_aux)),
                                                 state_cotangent))
        return state_cotangent, jax.tree.map(jnp.add, grads, slice_grads), loss + slice_loss, aux + slice_aux

    zero = jnp.zeros((), jnp.float32)
    init = (jax.tree.map(jnp.zeros_like, start), jax.tree.map(jnp.zeros_like, params), zero, zero)
    _, grads, loss, aux = jax.lax.fori_loop(0, num_slices, backward, init)
    return loss, aux, grads


def make_policy_gradient(
    recurrence: Recurrence, dist: Distribution | None = None, entropy_bonus: bool | None = None,
    block_rows: int = 1024, step_loss: Callable | None = None,
) -> PolicyGradientFn:
    """`pgjax.algo.loss.make_policy_gradient`'s `policy_gradient(params, obs, action, weight, coef, valid,
    entropy_coef) -> (loss, grads, entropy)` of one run of a recurrent policy, over time slices.

    Args:
      recurrence: the policy's state and step (`pgjax.algo.policy.recurrence`).
      dist, entropy_bonus, step_loss: as `pgjax.algo.loss.make_policy_gradient`'s.
      block_rows: about the steps a slice takes, S x E (`slice_steps`).
    """
    bonus = entropy_bonus is not False

    def policy_gradient(params, obs, action, weight, coef, valid, entropy_coef):
        def terms(out, rows, real):
            return reinforce_loss(lambda *_: out, params, None, _take(action, rows), _take(weight, rows),
                                  _take(coef, rows) * real, _take(valid, rows) & real, entropy_coef, bonus, dist,
                                  step_loss)

        steps = slice_steps(*valid.shape, block_rows)
        loss, entropy_sum, grads = sliced_gradient(recurrence, params, obs, valid, terms, steps)
        return loss, grads, entropy_sum / jnp.maximum(valid.sum(), 1)

    return policy_gradient


def make_value_gradient(recurrence: Recurrence, block_rows: int = 1024) -> Callable[..., tuple[jax.Array, Any]]:
    """`pgjax.algo.loss.make_value_gradient`'s `value_gradient(params, obs, target, coef, valid) -> (loss,
    grads)` of one run of a recurrent value network (output [..., 1]), over time slices."""

    def value_gradient(params, obs, target, coef, valid):
        def terms(out, rows, real):
            error = out[..., 0] - _take(target, rows)
            return jnp.sum(_take(coef, rows) * real * 0.5 * error * error), jnp.zeros((), jnp.float32)

        steps = slice_steps(*valid.shape, block_rows)
        loss, _, grads = sliced_gradient(recurrence, params, obs, valid, terms, steps)
        return loss, grads

    return value_gradient


def make_value_forward(recurrence: Recurrence, block_rows: int = 1024) -> Callable:
    """`pgjax.algo.weights.recurrent_values`' `(params, traj) -> (V [T, E] (0 past the episodes), V [E] of
    each episode's last observation)` of one run, over the slices that hold steps: the last value is the
    network's step on `traj.last_obs` from the state at the episode's last step."""

    def values_of(params, traj: Trajectory):
        valid = traj.valid
        num_steps, num_episodes = valid.shape
        steps = slice_steps(num_steps, num_episodes, block_rows)
        last_row = traj.lengths - 1  # [E]
        start = recurrence.initial_carry((num_episodes,))

        def forward(i, carried):
            state, end_state, values = carried
            rows, _ = _rows(i, steps, num_steps)
            unclamped = i * steps + jnp.arange(steps)  # past T - 1 in the last slice: no episode's row

            def step(carry, x):
                state, end_state = carry
                obs, row = x
                state, out = recurrence.step(params, state, obs)
                ended = row == last_row  # [E]: the episode's last step is this row
                end_state = jax.tree.map(lambda e, s: jnp.where(ended.reshape(ended.shape + (1,) * (s.ndim - 1)),
                                                                s, e), end_state, state)
                return (state, end_state), out[..., 0]

            (state, end_state), slice_values = jax.lax.scan(
                step, (state, end_state), (_take(traj.obs, rows).astype(jnp.float32), unclamped)
            )
            values = values.at[unclamped].set(slice_values, mode="drop")  # rows past T - 1 dropped
            return state, end_state, values

        init = (start, start, jnp.zeros(valid.shape, jnp.float32))
        _, end_state, values = jax.lax.fori_loop(0, _num_slices(valid, steps), forward, init)
        last_values = recurrence.step(params, end_state, traj.last_obs)[1][..., 0]
        return jnp.where(valid, values, 0.0), last_values

    return values_of
