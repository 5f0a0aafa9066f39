"""Rollouts: collect E complete episodes per run with the current policy.

Every update starts E fresh episodes, one per environment slot, and steps all
slots together until each episode has ended, or the environment's step limit is
reached. The loop is a `lax.while_loop` over an explicit run axis (see
`pgjax.batching`), so under `jax.vmap` over runs it stops as soon as the longest
episode of the whole batch has ended instead of always running to the limit.

Truncation: gymnax 1.0 reports `terminated` (the pole fell) and `truncated` (the
500-step limit of CartPole-v1) apart. Both end the episode; a truncated episode
is no failure, and since REINFORCE has no critic there is no value to bootstrap
from, so its returns simply stop at the last reward received.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from pgjax import policy
from pgjax.batching import fold_vmap
from pgjax.envs import EnvSpec

ApplyFn = Callable[[Any, jax.Array], jax.Array]  # (params, obs [..., D]) -> logits [..., A]


@struct.dataclass
class Trajectory:
    """E episodes of one run, time-major; step t of every episode sits at row t.

    Steps after an episode's end are padding: `valid` is False there and every
    other field is zero.

    Attributes:
      obs: [T, E, *obs_shape] observation the action was chosen on.
      action: [T, E] int32 action taken.
      reward: [T, E] float32 reward received for it.
      valid: [T, E] bool, True for steps inside an episode.
      truncated: [E] bool, True for episodes cut off by the step limit rather
        than ended in a terminal state.
      loop_steps: [] int32, loop iterations the batch of runs actually ran
        (>= the longest episode of this run).
    """

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    valid: jax.Array
    truncated: jax.Array
    loop_steps: jax.Array

    @property
    def lengths(self) -> jax.Array:
        """[E] int32 episode lengths in env steps."""
        return self.valid.sum(axis=-2, dtype=jnp.int32)


def make_collect(spec: EnvSpec, apply_fn: ApplyFn, num_episodes: int) -> Callable[[Any, jax.Array], Trajectory]:
    """Build `collect(params, key) -> Trajectory` for one run, vmappable over runs.

    Args:
      spec: the environment.
      apply_fn: the policy, `(params, obs [E, D]) -> logits [E, A]`.
      num_episodes: E, episodes (and environment slots) per call.
    """
    env, env_params, max_steps = spec.env, spec.params, spec.max_steps
    env_reset = jax.vmap(env.reset, in_axes=(0, None))

    def env_step(key, state, action):
        # gymnax's `step` without its auto-reset, which a rollout that ends
        # episodes for good would only throw away: step_env, then the time limit.
        obs, state, reward, terminated, _ = env.step_env(key, state, action, env_params)
        return obs, state, reward, terminated, env.is_truncated(state, env_params)

    env_step = jax.vmap(env_step)

    def start_run(key):
        reset_key, step_key = jax.random.split(key)
        obs, state = env_reset(jax.random.split(reset_key, num_episodes), env_params)
        return obs, state, step_key

    def step_run(params, state, obs, alive, step_key, t):
        action_key, env_key = jax.random.split(jax.random.fold_in(step_key, t))
        action = policy.sample(action_key, apply_fn(params, obs))
        next_obs, state, reward, terminated, truncated = env_step(
            jax.random.split(env_key, num_episodes), state, action
        )
        keep = alive.reshape(alive.shape + (1,) * (obs.ndim - 1))
        record = (
            jnp.where(keep, obs, 0.0).astype(jnp.float32),
            jnp.where(alive, action, 0),
            jnp.where(alive, reward, 0.0).astype(jnp.float32),
            alive,
        )
        cut_off = alive & truncated & ~terminated
        return state, next_obs, alive & ~(terminated | truncated), cut_off, record

    def collect_batch(params, key):
        num_runs = key.shape[0]
        obs, state, step_keys = jax.vmap(start_run)(key)
        alive = jnp.ones((num_runs, num_episodes), bool)
        truncated = jnp.zeros((num_runs, num_episodes), bool)
        shape = (max_steps, num_runs, num_episodes)
        buffers = (
            jnp.zeros(shape + spec.obs_shape, jnp.float32),
            jnp.zeros(shape, jnp.int32),
            jnp.zeros(shape, jnp.float32),
            jnp.zeros(shape, bool),
        )

        def not_finished(carry):
            t, _, _, alive, _, _ = carry
            return (t < max_steps) & alive.any()

        def step(carry):
            t, state, obs, alive, truncated, buffers = carry
            state, obs, alive, cut_off, record = jax.vmap(step_run, in_axes=(0, 0, 0, 0, 0, None))(
                params, state, obs, alive, step_keys, t
            )
            buffers = jax.tree.map(lambda b, r: b.at[t].set(r), buffers, record)
            return t + 1, state, obs, alive, truncated | cut_off, buffers

        t, _, _, _, truncated, buffers = jax.lax.while_loop(
            not_finished, step, (jnp.int32(0), state, obs, alive, truncated, buffers)
        )
        obs, action, reward, valid = (jnp.moveaxis(b, 0, 1) for b in buffers)
        return Trajectory(
            obs=obs, action=action, reward=reward, valid=valid, truncated=truncated,
            loop_steps=jnp.broadcast_to(t, (num_runs,)),
        )

    return fold_vmap(collect_batch)
