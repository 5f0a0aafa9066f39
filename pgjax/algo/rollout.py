"""Rollouts: collect E complete episodes per run with the current policy.

Every update starts E fresh episodes, one per environment slot, and steps all
slots together until each episode has ended, or the environment's step limit is
reached. The loop is a `lax.while_loop` over an explicit run axis (see
`pgjax.algo.batching`), so under `jax.vmap` over runs it stops as soon as the longest
episode of the whole batch has ended instead of always running to the limit.

Truncation: gymnax 1.0 reports `terminated` (the pole fell) and `truncated` (the
500-step limit of CartPole-v1) apart. Both end the episode; a truncated episode
is no failure. Without a critic there is no value to bootstrap from, so its
returns simply stop at the last reward received; with a value baseline
(`keep_last_obs`) the rollout also keeps the observation each episode ended in,
and `pgjax.algo.returns` bootstraps a truncated episode's return with its value.

Actions: the policy's `Distribution` (`pgjax.algo.networks`) samples what is stored
(int32 [E] for categorical policies, float32 [E, A] for Gaussian ones) and
maps it to what the environment is given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from pgjax.algo import distributions
from pgjax.algo.batching import over_runs
from pgjax.algo.envs import EnvSpec
from pgjax.algo.speed import DEFAULT, SpeedOptions

# (params, obs [..., *obs_shape]) -> out [..., K] (`pgjax.algo.networks`)
ApplyFn = Callable[[Any, jax.Array], jax.Array]


@struct.dataclass
class Trajectory:
    """E episodes of one run, time-major; step t of every episode sits at row t.

    Steps after an episode's end are padding: `valid` is False there and every
    other field is zero.

    Attributes:
      obs: [T, E, *obs_shape] observation the action was chosen on, in
        `EnvSpec.obs_dtype` (float32, or uint8 for 0/1 maps).
      action: [T, E, *action_shape] action taken, as the policy stored it:
        int32 [T, E] (categorical) or float32 [T, E, A] (Gaussian, `pgjax.algo.networks`).
      reward: [T, E] float32 reward received for it.
      valid: [T, E] bool, True for steps inside an episode.
      truncated: [E] bool, True for episodes cut off by the step limit rather
        than ended in a terminal state.
      loop_steps: [] int32, loop iterations the batch of runs actually ran
        (>= the longest episode of this run).
      last_obs: [E, *obs_shape] float32 observation after each episode's last
        step (where a truncated episode was cut off); None unless asked for.
    """

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    valid: jax.Array
    truncated: jax.Array
    loop_steps: jax.Array
    last_obs: jax.Array | None = None

    @property
    def lengths(self) -> jax.Array:
        """[E] int32 episode lengths in env steps."""
        return self.valid.sum(axis=-2, dtype=jnp.int32)


def make_collect(
    spec: EnvSpec,
    apply_fn: ApplyFn,
    num_episodes: int,
    dist: distributions.Distribution | None = None,
    *,
    greedy: bool = False,
    keep_last_obs: bool = False,
    speed: SpeedOptions = DEFAULT,
) -> Callable[[Any, jax.Array], Trajectory]:
    """Build `collect(params, key) -> Trajectory` for one run, vmappable over runs.

    Args:
      spec: the environment.
      apply_fn: the policy network, `(params, obs [E, *obs_shape]) -> out [E, K]`.
      num_episodes: E, episodes (and environment slots) per call.
      dist: the action distribution `out` parameterises (default: categorical).
      greedy: take `dist.greedy` actions (argmax, or the Gaussian's mean) instead of sampling.
      keep_last_obs: also return `Trajectory.last_obs`.
      speed: `fold_runs` folds a vmap over runs into one loop for the batch
        (`pgjax.algo.batching`); `run_major_buffers` writes image observations
        run-major (`pgjax.algo.speed`).

    Returns:
      `collect(params, key)`; its attribute `batched` takes params and keys with
      a leading run axis [B] and returns a Trajectory whose leaves have one too.
    """
    dist = dist or distributions.categorical()
    choose = (lambda key, out: dist.greedy(out)) if greedy else dist.sample
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

    def alive_like(alive, x):
        return alive.reshape(alive.shape + (1,) * (x.ndim - alive.ndim))

    def step_run(params, state, obs, alive, step_key, t):
        action_key, env_key = jax.random.split(jax.random.fold_in(step_key, t))
        obs = obs.astype(jnp.float32)
        action = choose(action_key, apply_fn(params, obs))
        next_obs, state, reward, terminated, truncated = env_step(
            jax.random.split(env_key, num_episodes), state, dist.to_env(action)
        )
        record = (
            jnp.where(alive_like(alive, obs), obs, 0.0).astype(spec.obs_dtype),
            jnp.where(alive_like(alive, action), action, 0),
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
        # Image observations: run-major buffers (`SpeedOptions.run_major_buffers`), written one time row of
        # every run per step, so that no transpose of the whole buffer follows the loop. Vector observations
        # keep the time-major layout (their transpose is cheap; XLA then sums the gradient in the same order
        # as it always did, so results stay bitwise the same).
        run_major = speed.run_major_buffers and len(spec.obs_shape) > 1
        shape = (num_runs, max_steps, num_episodes) if run_major else (max_steps, num_runs, num_episodes)
        buffers = (
            jnp.zeros(shape + spec.obs_shape, spec.obs_dtype),
            jnp.zeros(shape + dist.action_shape, dist.action_dtype),
            jnp.zeros(shape, jnp.float32),
            jnp.zeros(shape, bool),
        )
        # The observation each episode ended in (kept only when asked for).
        last_obs = jnp.zeros((num_runs, num_episodes) + spec.obs_shape, jnp.float32) if keep_last_obs else None

        def not_finished(carry):
            t, _, _, alive, _, _, _ = carry
            return (t < max_steps) & alive.any()

        def step(carry):
            t, state, obs, alive, truncated, buffers, last_obs = carry
            state, next_obs, still, cut_off, record = jax.vmap(step_run, in_axes=(0, 0, 0, 0, 0, None))(
                params, state, obs, alive, step_keys, t
            )
            if run_major:
                buffers = jax.tree.map(lambda b, r: b.at[:, t].set(r), buffers, record)
            else:
                buffers = jax.tree.map(lambda b, r: b.at[t].set(r), buffers, record)
            if last_obs is not None:
                ended = alive & ~still
                last_obs = jnp.where(alive_like(ended, last_obs), next_obs.astype(jnp.float32), last_obs)
            return t + 1, state, next_obs, still, truncated | cut_off, buffers, last_obs

        t, _, _, _, truncated, buffers, last_obs = jax.lax.while_loop(
            not_finished, step, (jnp.int32(0), state, obs, alive, truncated, buffers, last_obs)
        )
        obs, action, reward, valid = buffers if run_major else (jnp.moveaxis(b, 0, 1) for b in buffers)
        return Trajectory(
            obs=obs, action=action, reward=reward, valid=valid, truncated=truncated,
            loop_steps=jnp.broadcast_to(t, (num_runs,)), last_obs=last_obs,
        )

    return over_runs(collect_batch, speed.fold_runs)
