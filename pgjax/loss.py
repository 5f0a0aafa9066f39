"""The REINFORCE loss and its gradient, accumulated over time slices.

For one run the loss is

    L(theta) = sum_{t,e} c_t,e * ( -log pi_theta(a_t,e | s_t,e) * w_t,e - beta * H[pi_theta(. | s_t,e)] )

with per-step weights w (returns after the baseline, `pgjax.returns`), reduction
coefficients c (zero on padding) and entropy coefficient beta; its gradient is the
policy-gradient estimate. The gradient is summed over slices of `time_chunk`
steps and only over the slices that hold any episode's step, so its cost follows
the episodes' lengths rather than the environment's step limit.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp

from pgjax import policy
from pgjax.batching import fold_vmap
from pgjax.rollout import ApplyFn


def reinforce_loss(
    apply_fn: ApplyFn,
    params: Any,
    obs: jax.Array,
    action: jax.Array,
    weight: jax.Array,
    coef: jax.Array,
    valid: jax.Array,
    entropy_coef: jax.Array | float,
    entropy_bonus: bool = True,
) -> tuple[jax.Array, jax.Array]:
    """The loss above over any block of steps.

    Args:
      apply_fn: `(params, obs [..., D]) -> logits [..., A]`.
      obs: [..., D] observations; action, weight, coef, valid: [...].
      entropy_bonus: False leaves the bonus term out (as entropy_coef = 0 would)
        so that its gradient is not computed at all.

    Returns:
      (loss, entropy_sum): the scalar loss and the sum of the policy entropy
      (nats) over valid steps, for the metrics.
    """
    logits = apply_fn(params, obs)
    step_entropy = policy.entropy(logits)
    per_step = -policy.log_prob(logits, action) * weight
    if entropy_bonus:
        per_step = per_step - entropy_coef * step_entropy
    return jnp.sum(coef * per_step), jnp.sum(jnp.where(valid, step_entropy, 0.0))


ROWS_PER_CHUNK = 16384  # steps of all runs per slice when time_chunk is None


def make_policy_gradient(apply_fn: ApplyFn, time_chunk: int | None = None) -> Callable:
    """Build `policy_gradient(params, obs, action, weight, coef, valid, entropy_coef)`.

    Arguments are one run's: obs [T, E, D], action/weight/coef/valid [T, E] and a
    scalar entropy_coef. Returns `(loss, grads, entropy)` where `grads` matches
    `params` and `entropy` is the mean policy entropy over valid steps.
    Vmappable over runs; under vmap all runs share one loop over time slices.
    `time_chunk` (None: about `ROWS_PER_CHUNK` steps of all runs per slice; on a
    CPU larger slices spill out of cache and smaller ones pay per-call overhead)
    sets the slice length.
    """
    def per_run(entropy_bonus: bool):
        loss_and_grad = jax.value_and_grad(
            lambda p, *batch: reinforce_loss(apply_fn, p, *batch, entropy_bonus=entropy_bonus), has_aux=True
        )
        return jax.vmap(loss_and_grad)

    def gradient_batch(params, obs, action, weight, coef, valid, entropy_coef):
        num_runs, num_steps, num_episodes = valid.shape
        chunk = time_chunk or max(1, ROWS_PER_CHUNK // (num_runs * num_episodes))
        chunk = min(chunk, num_steps)
        # Episodes start at row 0, so rows past the longest episode of the batch are all padding.
        longest = valid.any(axis=(0, 2)).sum()
        num_chunks = (longest + chunk - 1) // chunk

        def add_chunk(i, totals, entropy_bonus):
            nominal = i * chunk
            start = jnp.minimum(nominal, num_steps - chunk)  # the last slice may overlap the one before
            fresh = (start + jnp.arange(chunk) >= nominal)[None, :, None]
            take = lambda x: jax.lax.dynamic_slice_in_dim(x, start, chunk, axis=1)
            (loss, ent_sum), grads = per_run(entropy_bonus)(
                params, take(obs), take(action), take(weight),
                take(coef) * fresh, take(valid) & fresh, entropy_coef,
            )
            return jax.tree.map(jnp.add, totals, (loss, ent_sum, grads))

        zeros = jnp.zeros(valid.shape[0], jnp.float32)
        init = (zeros, zeros, jax.tree.map(jnp.zeros_like, params))
        # Without any bonus in the batch, skip the entropy's gradient (about 10% of the work).
        loss, ent_sum, grads = jax.lax.cond(
            jnp.all(entropy_coef == 0),
            lambda: jax.lax.fori_loop(0, num_chunks, partial(add_chunk, entropy_bonus=False), init),
            lambda: jax.lax.fori_loop(0, num_chunks, partial(add_chunk, entropy_bonus=True), init),
        )
        entropy = ent_sum / jnp.maximum(valid.sum(axis=(1, 2)), 1)
        return loss, grads, entropy

    return fold_vmap(gradient_batch)
