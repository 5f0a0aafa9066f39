"""Environments: gymnax by id, checked for what pgjax's policies can serve."""

from __future__ import annotations

import difflib
import importlib.metadata
from typing import Any, NamedTuple

import gymnax
from gymnax.environments import spaces

# Returns at which an environment counts as solved (Gym's `reward_threshold`),
# judged on the mean return of the last 100 training episodes.
SOLVE_THRESHOLDS: dict[str, float] = {
    "CartPole-v1": 475.0,
    "Acrobot-v1": -100.0,
    "MountainCar-v0": -110.0,
}


class EnvSpec(NamedTuple):
    """A gymnax environment with what the trainer needs to know about it."""

    env: Any  # gymnax.environments.environment.Environment
    params: Any  # its EnvParams
    obs_shape: tuple[int, ...]
    num_actions: int
    max_steps: int  # episode step limit; reaching it is a truncation
    solve_threshold: float | None


def _check_step_api() -> None:
    """Fail loudly on gymnax releases whose `step` predates the 1.0 6-tuple."""
    installed = importlib.metadata.version("gymnax")
    if int(installed.split(".")[0]) < 1:
        raise RuntimeError(
            f"gymnax {installed} has the pre-1.0 step API (obs, state, reward, done, info); "
            "pgjax needs gymnax>=1.0 (obs, state, reward, terminated, truncated, info): "
            "pip install 'gymnax>=1.0'"
        )


def make_env(env_id: str) -> EnvSpec:
    """Build a gymnax environment with a discrete action space and a flat observation.

    Raises:
      ValueError: unknown id (close matches are named) or a space pgjax cannot serve.
    """
    _check_step_api()
    if env_id not in gymnax.registered_envs:
        close = difflib.get_close_matches(env_id, gymnax.registered_envs, n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown environment '{env_id}'{hint}")
    env, params = gymnax.make(env_id)
    action_space = env.action_space(params)
    if not isinstance(action_space, spaces.Discrete):
        raise ValueError(
            f"{env_id} has a {type(action_space).__name__} action space; "
            "pgjax's categorical policy needs a Discrete one"
        )
    obs_shape = tuple(env.observation_space(params).shape)
    if len(obs_shape) != 1:
        raise ValueError(f"{env_id} has observations of shape {obs_shape}; the MLP policy needs a flat vector")
    return EnvSpec(
        env=env,
        params=params,
        obs_shape=obs_shape,
        num_actions=int(action_space.n),
        max_steps=int(params.max_steps_in_episode),
        solve_threshold=SOLVE_THRESHOLDS.get(env_id),
    )
