"""Environments: gymnax by id, checked for what pgjax's policies can serve.

pgjax serves an environment whose observations are one array (a gymnax `Box`:
a vector for the MLP, an image [H, W, C] or [H, W] for the CNN or flattened for
the MLP) and whose actions are `Discrete` (categorical policy) or a bounded
`Box` vector (Gaussian policy). Anything else gets a ValueError that names what
is unsupported.
"""

from __future__ import annotations

import difflib
import importlib.metadata
from typing import Any, Literal, NamedTuple

import gymnax
import numpy as np
from gymnax.environments import spaces

# Returns at which an environment counts as solved (Gym's `reward_threshold`),
# judged on the mean return of the last 100 training episodes. Gym gives none
# for Pendulum-v1; MinAtar and bsuite define none.
SOLVE_THRESHOLDS: dict[str, float] = {
    "CartPole-v1": 475.0,
    "Acrobot-v1": -100.0,
    "MountainCar-v0": -110.0,
    "MountainCarContinuous-v0": 90.0,
}

ActionKind = Literal["discrete", "continuous"]

# Environments whose observations are 0/1 maps (gymnax builds them from booleans):
# rollouts store them as uint8, a quarter of float32's memory and bandwidth.
BINARY_OBSERVATIONS = frozenset({
    "Asterix-MinAtar", "Breakout-MinAtar", "Freeway-MinAtar", "Seaquest-MinAtar", "SpaceInvaders-MinAtar",
    "Catch-bsuite", "DeepSea-bsuite",
})


class EnvSpec(NamedTuple):
    """A gymnax environment with what the trainer needs to know about it.

    Attributes:
      obs_shape: one observation's shape, e.g. (4,) or (10, 10, 4).
      num_actions: A, the number of actions (Discrete) or action dimensions (Box).
      max_steps: the episode step limit; reaching it is a truncation.
      action_kind: "discrete" (categorical policy) or "continuous" (Gaussian).
      action_low, action_high: [A] bounds of a Box action space (None if Discrete).
      obs_dtype: the dtype rollouts store observations in: "float32", or
        "uint8" for the 0/1 maps of `BINARY_OBSERVATIONS`.
    """

    env: Any  # gymnax.environments.environment.Environment
    params: Any  # its EnvParams
    obs_shape: tuple[int, ...]
    num_actions: int
    max_steps: int
    solve_threshold: float | None
    action_kind: ActionKind = "discrete"
    action_low: tuple[float, ...] | None = None
    action_high: tuple[float, ...] | None = None
    obs_dtype: str = "float32"


def _check_step_api() -> None:
    """Fail loudly on gymnax releases whose `step` predates the 1.0 6-tuple."""
    installed = importlib.metadata.version("gymnax")
    if int(installed.split(".")[0]) < 1:
        raise ImportError(
            f"gymnax {installed} has the pre-1.0 step API (obs, state, reward, done, info); "
            "pgjax needs gymnax>=1.0 (obs, state, reward, terminated, truncated, info): "
            "pip install 'gymnax>=1.0'"
        )


def make_env(env_id: str) -> EnvSpec:
    """Build a gymnax environment pgjax can serve and describe its spaces.

    Raises:
      ValueError: unknown id (close matches are named), an environment gymnax
        cannot build here, or a space pgjax cannot serve (the message names it).
    """
    _check_step_api()
    if env_id not in gymnax.registered_envs:
        close = difflib.get_close_matches(env_id, gymnax.registered_envs, n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown environment '{env_id}'{hint}")
    try:
        env, params = gymnax.make(env_id)
    except Exception as error:  # e.g. MNISTBandit-bsuite downloads its data set when built
        raise ValueError(f"gymnax cannot build {env_id} here: {type(error).__name__}: {error}") from None
    obs_space = env.observation_space(params)
    if not isinstance(obs_space, spaces.Box):
        raise ValueError(
            f"{env_id} has a {type(obs_space).__name__} observation space; "
            "pgjax's networks take Box (array) observations"
        )
    obs_shape = tuple(int(n) for n in obs_space.shape)
    if not 1 <= len(obs_shape) <= 3:
        raise ValueError(
            f"{env_id} has observations of shape {obs_shape}; pgjax's networks take a vector or an image "
            "[H, W] or [H, W, C]"
        )
    action_space = env.action_space(params)
    common = dict(env=env, params=params, obs_shape=obs_shape, max_steps=int(params.max_steps_in_episode),
                  solve_threshold=SOLVE_THRESHOLDS.get(env_id),
                  obs_dtype="uint8" if env_id in BINARY_OBSERVATIONS else "float32")
    if isinstance(action_space, spaces.Discrete):
        return EnvSpec(num_actions=int(action_space.n), action_kind="discrete", **common)
    if isinstance(action_space, spaces.Box):
        shape = tuple(action_space.shape)
        low = np.broadcast_to(np.asarray(action_space.low, np.float64), shape).reshape(-1)
        high = np.broadcast_to(np.asarray(action_space.high, np.float64), shape).reshape(-1)
        if len(shape) != 1:
            raise ValueError(
                f"{env_id} has a Box action space of shape {shape}; pgjax's Gaussian policy takes a vector of actions"
            )
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and np.all(low < high)):
            raise ValueError(
                f"{env_id} has an unbounded Box action space (low {low}, high {high}); pgjax's Gaussian policy "
                "clips or squashes its actions to finite bounds"
            )
        return EnvSpec(num_actions=shape[0], action_kind="continuous", action_low=tuple(low.tolist()),
                       action_high=tuple(high.tolist()), **common)
    raise ValueError(
        f"{env_id} has a {type(action_space).__name__} action space; pgjax's policies take a Discrete "
        "(categorical) or a Box (Gaussian) one"
    )
