"""The folded rollout: one `lax.while_loop` for a whole batch of runs, stopping when its longest episode ends.

`pgjax.algo.rollout.make_collect` loops over one run's steps; under `jax.vmap`
its loop gets a batched predicate, and JAX then carries every rollout buffer
through a `select` on each iteration. Here the same steps
(`pgjax.algo.rollout.make_rollout_steps`) run over an explicit run axis, with
one unbatched predicate ("has every episode of every run ended?"), and
`pgjax.algo.fast.folded` folds the vmap over runs into that axis
(`FastPaths.fold_runs`). With `FastPaths.run_major_buffers` image observations
are written run-major, so that no transpose of the whole buffer follows the loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from pgjax.algo.envs import EnvSpec
from pgjax.algo.fast.folded import fold_vmap
from pgjax.algo.policy import Distribution, Recurrence, categorical
from pgjax.algo.rollout import ApplyFn, Trajectory, empty_buffers, make_rollout_steps


def make_folded_collect(
    spec: EnvSpec,
    apply_fn: ApplyFn,
    num_episodes: int,
    dist: Distribution | None = None,
    *,
    greedy: bool = False,
    keep_last_obs: bool = False,
    skip_auto_reset: bool = False,
    run_major_buffers: bool = True,
    recurrence: Recurrence | None = None,
) -> Callable[[Any, jax.Array], Trajectory]:
    """`pgjax.algo.rollout.make_collect`'s `collect(params, key) -> Trajectory` of one run, in one loop per batch.

    Arguments as `pgjax.algo.rollout.make_collect`'s; a vmap over runs (at any
    nesting depth) folds into the loop's run axis; `run_major_buffers` lays
    image buffers out run-major (`FastPaths.run_major_buffers`).
    """
    dist = dist or categorical()
    steps = make_rollout_steps(spec, apply_fn, num_episodes, dist, greedy, skip_auto_reset, recurrence)
    max_steps = spec.max_steps

    def collect_batch(params, key):
        num_runs = key.shape[0]
        obs, state, step_keys = jax.vmap(steps.start)(key)
        alive = jnp.ones((num_runs, num_episodes), bool)
        truncated = jnp.zeros((num_runs, num_episodes), bool)
        # Image observations: run-major buffers (`FastPaths.run_major_buffers`), a time row of every run written
        # per step, so no transpose of the whole buffer follows the loop. Vectors keep the time-major layout (a
        # cheap transpose; XLA then sums the gradient in its old order, so results stay bitwise the same).
        run_major = run_major_buffers and len(spec.obs_shape) > 1
        shape = (num_runs, max_steps, num_episodes) if run_major else (max_steps, num_runs, num_episodes)
        buffers = empty_buffers(spec, dist, shape)
        # The observation each episode ended in (kept only when asked for).
        last_obs = jnp.zeros((num_runs, num_episodes) + spec.obs_shape, jnp.float32) if keep_last_obs else None

        def not_finished(carry):
            t, _, _, alive, _, _, _ = carry
            return (t < max_steps) & alive.any()

        def step(carry):
            t, state, obs, alive, truncated, buffers, last_obs = carry
            state, next_obs, still, cut_off, record = jax.vmap(steps.step, in_axes=(0, 0, 0, 0, 0, None))(
                params, state, obs, alive, step_keys, t
            )
            if run_major:
                buffers = jax.tree.map(lambda b, r: b.at[:, t].set(r), buffers, record)
            else:
                buffers = jax.tree.map(lambda b, r: b.at[t].set(r), buffers, record)
            if last_obs is not None:
                ended = alive & ~still
                last_obs = jnp.where(steps.alive_like(ended, last_obs), next_obs.astype(jnp.float32), last_obs)
            return t + 1, state, next_obs, still, truncated | cut_off, buffers, last_obs

        t, _, _, _, truncated, buffers, last_obs = jax.lax.while_loop(
            not_finished, step, (jnp.int32(0), state, obs, alive, truncated, buffers, last_obs)
        )
        obs, action, reward, valid = buffers if run_major else (jnp.moveaxis(b, 0, 1) for b in buffers)
        return Trajectory(
            obs=obs, action=action, reward=reward, valid=valid, truncated=truncated,
            loop_steps=jnp.broadcast_to(t, (num_runs,)), last_obs=last_obs,
        )

    return fold_vmap(collect_batch)
