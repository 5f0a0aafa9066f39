"""The blocked gradient: the losses' gradients (and the value network's values) over blocks of runs and time slices.

`pgjax.algo.loss` differentiates a run's loss over its whole [T, E] trajectory,
padding included, so its cost follows the environment's step limit. Here the
runs of a batch (under `jax.vmap`, folded into one run axis by
`pgjax.algo.fast.folded`) are taken in blocks of about `block_rows` steps: as
many time steps of one run as fit, then as many runs as fit. Each block loops
over time slices up to its own longest episode, so the cost follows the
episodes' lengths. Block sizes change only the order of float sums, not the
estimator. Each function here has the per-run interface of its twin in
`pgjax.algo.loss`; `pgjax.algo.pieces` chooses them (`FastPaths.blocked_gradient`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp

from pgjax.algo.fast.folded import over_runs, pad_runs
from pgjax.algo.fast.recurrent import make_policy_gradient as sliced_policy_gradient
from pgjax.algo.loss import PolicyGradientFn, ValueFn, reinforce_loss, value_loss
from pgjax.algo.policy import Distribution, Recurrence
from pgjax.algo.rollout import ApplyFn


def default_block_rows(platform: str | None = None) -> int:
    """Steps the gradient takes at once by default: 1024 on a CPU, 2**20 on accelerators.

    On a CPU, XLA runs a matrix product over a batch of runs as one small product
    per run, so blocks of one run's steps serve it best; accelerators want large blocks.
    `pgjax.running.devices.backend_choices` reports it with pgjax's other choices by backend.

    Args:
      platform: a JAX platform name ("cpu", "gpu", "tpu"); None: `jax.default_backend()`.
    """
    return 1024 if (platform or jax.default_backend()) == "cpu" else 1 << 20


def _layout(valid_shape: tuple[int, int, int], block_rows: int | None) -> tuple[int, int, int]:
    """(time steps per slice, runs per block, blocks) for valid [R, T, E] and about `block_rows` steps a block."""
    num_runs, num_steps, num_episodes = valid_shape
    rows = block_rows or default_block_rows()
    steps = min(num_steps, max(1, rows // num_episodes))
    runs = min(num_runs, max(1, rows // (steps * num_episodes)))
    return steps, runs, -(-num_runs // runs)


def _to_blocks(batch: Any, num_runs: int, runs: int, num_blocks: int) -> Any:
    """Leaves [R, ...] -> [blocks, runs, ...], the runs padded to whole blocks with copies of the last run."""
    batch = pad_runs(batch, num_runs, runs)
    return jax.tree.map(lambda x: x.reshape((num_blocks, runs) + x.shape[1:]), batch)


def _from_blocks(tree: Any, num_runs: int) -> Any:
    """Leaves [blocks, runs, ...] -> [R, ...], the padding runs dropped."""
    return jax.tree.map(lambda x: x.reshape((x.shape[0] * x.shape[1],) + x.shape[2:])[:num_runs], tree)


def _map_blocks(block_fn: Callable, batch: tuple, valid: jax.Array, block_rows: int | None) -> Any:
    """`block_fn(block, steps=...)` over the blocks of runs of `batch` (leaves [R, ...]; valid [R, T, E]).

    Returns block_fn's results with the run axis restored: leaves [R, ...].
    """
    num_runs = valid.shape[0]
    steps, runs, num_blocks = _layout(valid.shape, block_rows)
    blocks = _to_blocks(batch, num_runs, runs, num_blocks)
    return _from_blocks(jax.lax.map(partial(block_fn, steps=steps), blocks), num_runs)


def _over_slices(valid: jax.Array, steps: int, body: Callable, init: Any) -> Any:
    """`body(start, fresh, take, carry) -> carry` over the time slices of a block that hold any step.

    valid: the block's [G, T, E]. Slice i covers rows start .. start + steps - 1
    with start = min(i * steps, T - steps) (the last slice may overlap the one
    before); `fresh` [1, steps, 1] marks its rows not covered before, and
    `take(x)` slices a [G, T, ...] array.
    """
    num_steps = valid.shape[1]
    # Episodes start at row 0, so rows past the block's longest episode are all padding.
    num_slices = (valid.any(axis=(0, 2)).sum() + steps - 1) // steps

    def add_slice(i, carry):
        nominal = i * steps
        start = jnp.minimum(nominal, num_steps - steps)
        fresh = (start + jnp.arange(steps) >= nominal)[None, :, None]
        take = lambda x: jax.lax.dynamic_slice_in_dim(x, start, steps, axis=1)
        return body(start, fresh, take, carry)

    return jax.lax.fori_loop(0, num_slices, add_slice, init)


def make_policy_gradient(
    apply_fn: ApplyFn, dist: Distribution | None = None, *, block_rows: int | None = None, fold_runs: bool = True,
    entropy_bonus: bool | None = None, recurrence: Recurrence | None = None, step_loss: Callable | None = None,
) -> PolicyGradientFn:
    """`pgjax.algo.loss.make_policy_gradient`'s function of one run, computed in blocks (vmappable over runs).

    `entropy_bonus` says whether the loss has the entropy term: None decides
    at run time (a `lax.cond` on whether any entropy_coef of the batch is non-zero,
    which compiles the gradient twice); True or False fixes it when tracing
    (False ignores entropy_coef), for callers that know every run's setting.
    `block_rows`: steps per block (None: `default_block_rows()`); `fold_runs`
    folds a vmap over runs into the blocks. A recurrent policy's (`recurrence`
    given) goes over time slices of whole episodes (`pgjax.algo.fast.recurrent`).
    `step_loss`: as `pgjax.algo.loss.reinforce_loss`'s.
    """
    if recurrence is not None:
        return sliced_policy_gradient(recurrence, dist, entropy_bonus, block_rows or default_block_rows(), step_loss)

    def per_run(entropy_bonus: bool):
        loss_and_grad = jax.value_and_grad(
            lambda p, *batch: reinforce_loss(apply_fn, p, *batch, entropy_bonus=entropy_bonus, dist=dist,
                                            step_loss=step_loss),
            has_aux=True,
        )
        return jax.vmap(loss_and_grad)

    def block_gradient(block, steps: int, entropy_bonus: bool):
        """Loss, gradient and entropy sum of a block of runs (leaves [G, T, E, ...])."""
        params, obs, action, weight, coef, valid, entropy_coef = block

        def add_slice(start, fresh, take, totals):
            (loss, entropy_sum), grads = per_run(entropy_bonus)(
                params, take(obs), take(action), take(weight),
                take(coef) * fresh, take(valid) & fresh, entropy_coef,
            )
            return jax.tree.map(jnp.add, totals, (loss, entropy_sum, grads))

        zeros = jnp.zeros(valid.shape[0], jnp.float32)
        return _over_slices(valid, steps, add_slice, (zeros, zeros, jax.tree.map(jnp.zeros_like, params)))

    def gradient_batch(params, obs, action, weight, coef, valid, entropy_coef):
        batch = (params, obs, action, weight, coef, valid, entropy_coef)

        def all_blocks(entropy_bonus: bool):
            return _map_blocks(partial(block_gradient, entropy_bonus=entropy_bonus), batch, valid, block_rows)

        if entropy_bonus is None:  # without any bonus in the batch, skip the entropy's gradient
            loss, entropy_sum, grads = jax.lax.cond(
                jnp.all(entropy_coef == 0), lambda: all_blocks(False), lambda: all_blocks(True)
            )
        else:
            loss, entropy_sum, grads = all_blocks(entropy_bonus)
        entropy = entropy_sum / jnp.maximum(valid.sum(axis=(1, 2)), 1)
        return loss, grads, entropy

    return over_runs(gradient_batch, fold_runs)


def make_value_forward(value_fn: ValueFn, *, block_rows: int | None = None, fold_runs: bool = True) -> Callable:
    """`pgjax.algo.loss.make_value_forward`'s `values(params, obs, valid) -> V [T, E]` of one run, in blocks.

    Vmappable over runs, in blocks and time slices as `make_policy_gradient`.
    """

    def block_values(block, steps: int):
        params, obs, valid = block

        def add_slice(start, fresh, take, values):
            return jax.lax.dynamic_update_slice_in_dim(values, jax.vmap(value_fn)(params, take(obs)), start, axis=1)

        return _over_slices(valid, steps, add_slice, jnp.zeros(valid.shape, jnp.float32))

    def values_batch(params, obs, valid):
        return jnp.where(valid, _map_blocks(block_values, (params, obs, valid), valid, block_rows), 0.0)

    return over_runs(values_batch, fold_runs)


def make_value_gradient(value_fn: ValueFn, *, block_rows: int | None = None, fold_runs: bool = True) -> Callable:
    """`pgjax.algo.loss.make_value_gradient`'s `(params, obs, target, coef, valid) -> (loss, grads)`, in blocks.

    Vmappable over runs, in blocks and time slices as `make_policy_gradient`.
    """
    per_run = jax.vmap(jax.value_and_grad(partial(value_loss, value_fn)))

    def block_gradient(block, steps: int):
        params, obs, target, coef, valid = block

        def add_slice(start, fresh, take, totals):
            loss, grads = per_run(params, take(obs), take(target), take(coef) * fresh)
            return jax.tree.map(jnp.add, totals, (loss, grads))

        zeros = jnp.zeros(valid.shape[0], jnp.float32)
        return _over_slices(valid, steps, add_slice, (zeros, jax.tree.map(jnp.zeros_like, params)))

    def gradient_batch(params, obs, target, coef, valid):
        return _map_blocks(block_gradient, (params, obs, target, coef, valid), valid, block_rows)

    return over_runs(gradient_batch, fold_runs)
