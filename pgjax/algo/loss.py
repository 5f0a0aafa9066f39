"""The REINFORCE loss and its gradient, accumulated over time slices; the value baseline's loss likewise.

For one run the policy loss is

    L(theta) = sum_{t,e} c_t,e * ( -log pi_theta(a_t,e | s_t,e) * w_t,e - beta * H[pi_theta(. | s_t,e)] )

with per-step weights w (returns after the baseline, `pgjax.algo.returns`), reduction
coefficients c (zero on padding) and entropy coefficient beta; its gradient is the
policy-gradient estimate. A learned value baseline V_phi has its own loss

    L_V(phi) = sum_{t,e} k_t,e * (V_phi(s_t,e) - target_t,e)^2 / 2

with k = 1 / (valid steps) on valid steps (a mean over steps) and targets from
`pgjax.algo.returns.value_advantages`.

The reference path (`plain_policy_gradient`, `plain_values`,
`plain_value_gradient`) is `jax.value_and_grad` of these losses over a run's
whole [T, E] trajectory, `jax.vmap`-ped over runs. The fast path
(`SpeedOptions.blocked_gradient`, the default) computes the same sums over
blocks of runs and time slices, and only over the slices that hold any
episode's step, so its cost follows the episodes' lengths rather than the
environment's step limit. `make_policy_gradient`, `make_values` and
`make_value_gradient` choose between the two.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp

from pgjax.algo import distributions
from pgjax.algo.batching import over_runs, pad_runs, vmap_runs
from pgjax.algo.rollout import ApplyFn
from pgjax.algo.speed import DEFAULT, SpeedOptions

ValueFn = Callable[[Any, jax.Array], jax.Array]  # (params, obs [..., *obs_shape]) -> V [...]


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
    dist: distributions.Distribution | None = None,
) -> tuple[jax.Array, jax.Array]:
    """The loss above over any block of steps.

    Args:
      apply_fn: `(params, obs [..., *obs_shape]) -> out [..., K]`.
      obs: [..., *obs_shape] observations; action: [..., *action_shape];
        weight, coef, valid: [...].
      entropy_bonus: False leaves the bonus term out (as entropy_coef = 0 would)
        so that its gradient is not computed at all.
      dist: the action distribution (default: categorical over logits).

    Returns:
      (loss, entropy_sum): the scalar loss and the sum of the policy entropy
      (nats) over valid steps, for the metrics.
    """
    dist = dist or distributions.categorical()
    out = apply_fn(params, obs)
    step_entropy = dist.entropy(out)
    per_step = -dist.log_prob(out, action) * weight
    if entropy_bonus:
        per_step = per_step - entropy_coef * step_entropy
    return jnp.sum(coef * per_step), jnp.sum(jnp.where(valid, step_entropy, 0.0))


def value_loss(value_fn: ValueFn, params: Any, obs: jax.Array, target: jax.Array, coef: jax.Array) -> jax.Array:
    """sum coef * (V(obs) - target)^2 / 2 over any block of steps: obs [..., *obs_shape], target, coef [...]."""
    error = value_fn(params, obs) - target
    return jnp.sum(coef * 0.5 * error * error)


def plain_policy_gradient(
    apply_fn: ApplyFn, dist: distributions.Distribution | None = None, entropy_bonus: bool | None = None
) -> Callable:
    """The reference `policy_gradient`: `jax.value_and_grad(reinforce_loss)` over one run's whole trajectory.

    Same arguments and results as `make_policy_gradient`'s function; its
    `batched` attribute is `jax.vmap` of it. `entropy_bonus` False leaves the
    bonus out; None or True keep it (a zero entropy_coef then adds zeros).
    """
    loss_and_grad = jax.value_and_grad(
        lambda p, *batch: reinforce_loss(apply_fn, p, *batch, entropy_bonus=entropy_bonus is not False, dist=dist),
        has_aux=True,
    )

    def policy_gradient(params, obs, action, weight, coef, valid, entropy_coef):
        (loss, entropy_sum), grads = loss_and_grad(params, obs, action, weight, coef, valid, entropy_coef)
        return loss, grads, entropy_sum / jnp.maximum(valid.sum(), 1)

    return vmap_runs(policy_gradient)


def plain_values(value_fn: ValueFn) -> Callable:
    """The reference `values(params, obs, valid) -> V [T, E]` (0 past the episodes) of one run, in one pass."""
    return vmap_runs(lambda params, obs, valid: jnp.where(valid, value_fn(params, obs), 0.0))


def plain_value_gradient(value_fn: ValueFn) -> Callable:
    """The reference `value_gradient(params, obs, target, coef, valid) -> (loss, grads)`: autodiff of
    `value_loss` over one run's whole trajectory."""
    loss_and_grad = jax.value_and_grad(partial(value_loss, value_fn))
    return vmap_runs(lambda params, obs, target, coef, valid: loss_and_grad(params, obs, target, coef))


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
    apply_fn: ApplyFn,
    block_rows: int | None = None,
    dist: distributions.Distribution | None = None,
    entropy_bonus: bool | None = None,
    speed: SpeedOptions = DEFAULT,
) -> Callable:
    """Build `policy_gradient(params, obs, action, weight, coef, valid, entropy_coef)`.

    Arguments are one run's: obs [T, E, *obs_shape], action [T, E, *action_shape],
    weight/coef/valid [T, E] and a scalar entropy_coef. Returns `(loss, grads,
    entropy)` where `grads` matches `params` and `entropy` is the mean policy
    entropy over valid steps. `dist` is the action distribution (default categorical).

    `entropy_bonus` says whether the loss has the entropy term: None decides at
    run time (a `lax.cond` on whether any entropy_coef of the batch is non-zero,
    which compiles the gradient twice); True or False fixes it when tracing
    (False ignores entropy_coef), for callers that know every run's setting.

    Vmappable over runs. The runs are taken in blocks of about `block_rows` steps
    (default `default_block_rows()`): as many time steps of one run as fit, then
    as many runs as fit. Each block loops over time slices up to its own longest
    episode. Block sizes change only the order of float sums, not the estimator.
    `speed.blocked_gradient` off gives `plain_policy_gradient` instead;
    `speed.fold_runs` folds a vmap over runs into the blocks (`pgjax.algo.batching`).
    Its attribute `batched` takes a leading run axis [B] on every argument.
    """
    if not speed.blocked_gradient:
        return plain_policy_gradient(apply_fn, dist, entropy_bonus)

    def per_run(entropy_bonus: bool):
        loss_and_grad = jax.value_and_grad(
            lambda p, *batch: reinforce_loss(apply_fn, p, *batch, entropy_bonus=entropy_bonus, dist=dist),
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

    return over_runs(gradient_batch, speed.fold_runs)


def make_values(value_fn: ValueFn, block_rows: int | None = None, speed: SpeedOptions = DEFAULT) -> Callable:
    """Build `values(params, obs, valid) -> V [T, E]`: one run's values of every step (0 past its episodes).

    obs [T, E, *obs_shape], valid [T, E]; vmappable over runs, in blocks and time
    slices as `make_policy_gradient` (or `plain_values`, as `speed` says).
    """
    if not speed.blocked_gradient:
        return plain_values(value_fn)

    def block_values(block, steps: int):
        params, obs, valid = block

        def add_slice(start, fresh, take, values):
            return jax.lax.dynamic_update_slice_in_dim(values, jax.vmap(value_fn)(params, take(obs)), start, axis=1)

        return _over_slices(valid, steps, add_slice, jnp.zeros(valid.shape, jnp.float32))

    def values_batch(params, obs, valid):
        return jnp.where(valid, _map_blocks(block_values, (params, obs, valid), valid, block_rows), 0.0)

    return over_runs(values_batch, speed.fold_runs)


def make_value_gradient(value_fn: ValueFn, block_rows: int | None = None, speed: SpeedOptions = DEFAULT) -> Callable:
    """Build `value_gradient(params, obs, target, coef, valid) -> (loss, grads)` of `value_loss`.

    One run's obs [T, E, *obs_shape] and target/coef/valid [T, E]; vmappable over
    runs, in blocks and time slices as `make_policy_gradient` (or
    `plain_value_gradient`, as `speed` says).
    """
    if not speed.blocked_gradient:
        return plain_value_gradient(value_fn)
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

    return over_runs(gradient_batch, speed.fold_runs)
