"""Normalised scores across environments: a uniformly random policy scores 0, the reference score 1.

The reference is the environment's solve threshold (`pgjax.algo.envs.SOLVE_THRESHOLDS`, or a
custom environment's `solve_threshold`); where there is none (Pendulum-v1, MinAtar), the best
final return among the runs compared, which the caller passes. The random policy's score is
measured here: the mean return of episodes played with uniformly random actions (every
discrete action equally likely; a continuous action uniform within its bounds), computed once
per environment and process.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from pgjax.algo.envs import make_env

RANDOM_EPISODES = 1000  # episodes behind a random-policy score
RANDOM_SEED = 0


@functools.lru_cache(maxsize=None)
def random_policy_return(env: str, episodes: int = RANDOM_EPISODES, seed: int = RANDOM_SEED) -> float:
    """Mean return of a uniformly random policy over `episodes` fresh episodes of `env`, each to its end.

    Args:
      env: a gymnax id or "package.module:factory" (`pgjax.algo.envs.make_env`).
      episodes, seed: the episodes played and the PRNG seed; the result is a function of them.

    Returns:
      The mean episode return (an episode ends at its first terminated or truncated
      step, as in training). Cached per (env, episodes, seed) for the process.

    Raises:
      ValueError: as `make_env`.
    """
    spec = make_env(env)

    def act(key):
        if spec.action_kind == "discrete":
            return jax.random.randint(key, (), 0, spec.num_actions)
        low, high = jnp.asarray(spec.action_low, jnp.float32), jnp.asarray(spec.action_high, jnp.float32)
        return jax.random.uniform(key, low.shape, jnp.float32, low, high)

    def episode(key):
        reset_key, steps_key = jax.random.split(key)
        _, state = spec.env.reset(reset_key, spec.params)

        def step(carry, key):
            state, total, done = carry
            action_key, step_key = jax.random.split(key)
            _, state, reward, terminated, _ = spec.env.step_env(step_key, state, act(action_key), spec.params)
            total = total + jnp.where(done, 0.0, reward.astype(jnp.float32))
            done = done | terminated.astype(bool) | spec.env.is_truncated(state, spec.params)
            return (state, total, done), None

        carry = (state, jnp.float32(0.0), jnp.bool_(False))
        (_, total, _), _ = jax.lax.scan(step, carry, jax.random.split(steps_key, spec.max_steps))
        return total

    keys = jax.random.split(jax.random.key(seed), episodes)
    return float(np.mean(np.asarray(jax.jit(jax.vmap(episode))(keys), np.float64)))
