"""What the suites' tests (tests/test_suite_*.py) check the same way: a scripted episode through pgjax's step,
and the moves of an untrained policy under a legal-action mask."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from pgjax.algo.envs import EnvSpec, legal_actions, make_env, step_function
from pgjax.algo.policy import make_apply_fn, make_distribution, make_policy
from pgjax.algo.rollout import make_collect
from pgjax.algo.trainer import make_train


def play(env: str, actions, env_kwargs=(), digits: int | None = None) -> list[tuple[float, bool, bool]]:
    """(reward, terminated, truncated) of each step of `actions` (Discrete) from a reset of `env`, through pgjax's
    step; rewards rounded to `digits` where given."""
    spec = make_env(env, env_kwargs=env_kwargs)
    step = jax.jit(step_function(spec.env, spec.route))
    _, state = spec.env.reset(jax.random.key(0), spec.params)
    out = []
    for action in actions:
        _, state, reward, terminated, truncated = step(jax.random.key(1), state, jnp.int32(action), spec.params)
        reward = float(reward) if digits is None else round(float(reward), digits)
        out.append((reward, bool(terminated), bool(truncated)))
    return out


def untrained_moves(spec: EnvSpec, config, episodes: int = 128) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(legal bool [T, E], valid bool [T, E], reward [T, E]) of `episodes` episodes of an untrained policy of
    `config`: whether each step's sampled action was legal under the mask it was chosen on, which steps are inside
    an episode, and their rewards."""
    policy = make_policy(spec, config)
    params = policy.init(jax.random.key(0), jnp.zeros(spec.obs_shape))["params"]
    collect = jax.jit(make_collect(spec, make_apply_fn(policy), episodes, make_distribution(spec)))
    traj = collect(params, jax.random.key(1))
    legal = np.asarray(legal_actions(spec, traj.obs.astype(jnp.float32)))
    taken = np.take_along_axis(legal, np.asarray(traj.action)[..., None], -1)[..., 0]
    return taken, np.asarray(traj.valid), np.asarray(traj.reward)


def shortened_preset(config, num_updates: int = 40, seeds: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """(episode_return, loss), each [seeds, num_updates], of `config` trained for `num_updates` updates on
    `seeds` seeds (keys 0..seeds-1), vmapped and jitted."""
    config = dataclasses.replace(config, static=dataclasses.replace(config.static, num_updates=num_updates))
    _, metrics = jax.jit(jax.vmap(make_train(config)))(jax.vmap(jax.random.key)(jnp.arange(seeds)))
    return np.asarray(metrics.episode_return), np.asarray(metrics.loss)
