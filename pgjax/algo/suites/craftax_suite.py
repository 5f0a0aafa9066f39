"""Craftax by name: `--env craftax/Craftax-Classic-Symbolic-v1` (pip install "pgjax[craftax]").

Craftax (craftax.craftax_env.make_craftax_env_from_name) is built on an older
gymnax: `step` gives five values `(obs, state, reward, done, info)`, where
`done` folds the time limit into the episode's end. This adapter steps the
suite's `step_env` (never its auto-reset, so no reset's observation is kept)
and reads the two apart from the suite's own state:

* truncated: the suite's time counter reached its limit, `state.timestep >=
  params.max_timesteps` (and the episode did not end otherwise);
* terminated: the suite's own `is_terminal` with the time limit lifted (the
  player died, stood in lava, or beat the final boss).

Task names: the four of `make_craftax_env_from_name` (Craftax-Symbolic-v1,
Craftax-Pixels-v1, Craftax-Classic-Symbolic-v1, Craftax-Classic-Pixels-v1) and
their "-AutoReset-v1" spellings, which build the suite's auto-resetting class
and step it without its reset (the same episodes).

The step limit is the params' `max_timesteps` (10,000 by default), declared as
`max_steps_in_episode`; `--max-episode-steps N` cuts episodes sooner.
Observations are float32 Boxes in [0, 1] (a vector for "Symbolic", an image
[H, W, 3] for "Pixels"); actions Discrete (17 Classic, 43 full). Craftax has
no legal-action mask and documents no solving return.

`--env-kwargs` set fields of the suite's `EnvParams` (max_timesteps, day_length,
zombie_health, spawn chances, ...) or of its `StaticEnvParams` (max_zombies,
max_cows, ...), typed by those dataclasses.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from pgjax.algo.config import Config, Hyperparams, StaticConfig
from pgjax.algo.envs import split_pairs, typed_kwargs

# Task name -> (its module, its auto-resetting class; the class without is that name + "NoAutoReset").
_TASKS: dict[str, tuple[str, str]] = {
    "Craftax-Symbolic-v1": ("craftax.craftax.envs.craftax_symbolic_env", "CraftaxSymbolicEnv"),
    "Craftax-Pixels-v1": ("craftax.craftax.envs.craftax_pixels_env", "CraftaxPixelsEnv"),
    "Craftax-Classic-Symbolic-v1": ("craftax.craftax_classic.envs.craftax_symbolic_env", "CraftaxClassicSymbolicEnv"),
    "Craftax-Classic-Pixels-v1": ("craftax.craftax_classic.envs.craftax_pixels_env", "CraftaxClassicPixelsEnv"),
}


def _auto_reset_name(name: str) -> str:
    """"Craftax-Symbolic-AutoReset-v1" from "Craftax-Symbolic-v1"."""
    return name.removesuffix("-v1") + "-AutoReset-v1"


def names() -> tuple[str, ...]:
    """The task names `craftax.craftax_env.make_craftax_env_from_name` takes: the four and their AutoReset forms."""
    return (*_TASKS, *(_auto_reset_name(name) for name in _TASKS))


class CraftaxEnv:
    """A Craftax environment in gymnax 1.0's shape: six-value `step`, termination and truncation apart.

    Attributes:
      craftax: the suite's environment object (its `step_env`, `reset_env`, spaces are used).
      name: the task name, e.g. "Craftax-Classic-Symbolic-v1".
      max_steps_in_episode: the suite's limit, `params.max_timesteps` of the params built with it.
    """

    def __init__(self, craftax: Any, name: str, max_steps_in_episode: int):
        self.craftax = craftax
        self.name = name
        self.max_steps_in_episode = max_steps_in_episode

    def reset(self, key: jax.Array, params: Any) -> tuple[jax.Array, Any]:
        """(obs, state) of a new episode: the suite's `reset_env` (world generation)."""
        return self.craftax.reset_env(key, params)

    def step(self, key: jax.Array, state: Any, action: jax.Array, params: Any) -> tuple:
        """One step without a reset.

        Returns:
          (obs reached, state, reward [] float32, terminated [] bool, truncated [] bool, info): terminated by
          the suite's `is_terminal` with its time limit lifted; truncated where `state.timestep >=
          params.max_timesteps` and not terminated; info the suite's (achievements, discount).
        """
        obs, state, reward, done, info = self.craftax.step_env(key, state, action, params)
        no_limit = params.replace(max_timesteps=jnp.iinfo(jnp.int32).max)
        terminated = jnp.asarray(self.craftax.is_terminal(state, no_limit), bool)
        truncated = (jnp.asarray(done, bool) | (state.timestep >= params.max_timesteps)) & ~terminated
        return obs, state, jnp.asarray(reward, jnp.float32), terminated, truncated, info

    def observation_space(self, params: Any) -> Any:
        """The suite's observation space: a float32 Box in [0, 1]."""
        return self.craftax.observation_space(params)

    def action_space(self, params: Any) -> Any:
        """The suite's action space: Discrete(17) (Classic) or Discrete(43)."""
        return self.craftax.action_space(params)


def _field_names(cls: Any) -> list[str]:
    """The field names of a dataclass, in order."""
    return [field.name for field in dataclasses.fields(cls)]


def make(name: str, pairs: Sequence[str] = ()) -> tuple[CraftaxEnv, Any]:
    """(env, params) of the Craftax task `name`, its `EnvParams` and `StaticEnvParams` set by `pairs`.

    Args:
      name: one of `names()`.
      pairs: "key=value" strings (`--env-kwargs`): fields of the task's EnvParams or StaticEnvParams.

    Returns:
      The `CraftaxEnv` and its EnvParams (`max_timesteps` its step limit).

    Raises:
      ValueError: one line: a key neither dataclass has (the fields named), a value not of the field's type,
        or the suite failing to build the task.
    """
    base = name.replace("-AutoReset-v1", "-v1")
    module_name, class_name = _TASKS[base]
    module = importlib.import_module(module_name)
    env_class = getattr(module, class_name if name != base else class_name + "NoAutoReset")
    params_class, static_class = module.EnvParams, module.StaticEnvParams
    label = f"craftax/{name}"
    raw = split_pairs(pairs)
    params_fields, static_fields = _field_names(params_class), _field_names(static_class)
    unknown = [key for key in raw if key not in params_fields and key not in static_fields]
    if unknown:
        raise ValueError(f"{label} takes no --env-kwargs {unknown[0]!r}: it takes its EnvParams' "
                         f"{', '.join(params_fields)} or its StaticEnvParams' {', '.join(static_fields)}")
    params_pairs = [f"{key}={value}" for key, value in raw.items() if key in params_fields]
    static_pairs = [f"{key}={value}" for key, value in raw.items() if key not in params_fields]
    params = params_class(**typed_kwargs(params_class, params_pairs, label))
    static = static_class(**typed_kwargs(static_class, static_pairs, label))
    try:
        craftax = env_class(static_env_params=static)
    except Exception as error:
        raise ValueError(f"craftax cannot build {name}: {type(error).__name__}: {error}") from None
    if int(params.max_timesteps) < 1:
        raise ValueError(f"{label}: max_timesteps must be >= 1, got {params.max_timesteps}")
    return CraftaxEnv(craftax, name, int(params.max_timesteps)), params


# What preset "default" means for Craftax Classic (symbolic), measured on a 2-core CPU, 8 seeds, 100-step
# episodes (--max-episode-steps 100: a full 10,000-step episode is beyond a CPU's budget), 8 episodes an update,
# 100 updates (about 575k env steps a run), hidden 64: the unpreset defaults (lr 0.01, whole-episode return)
# ended at IQM 2.0 [1.1, 2.7]; lr 0.003, reward-to-go with gamma 0.99 and entropy 0.01 at 2.9 [2.7, 3.1], every
# seed within 0.4 of the others. experiments/results/suites/craftax_Craftax-Classic-Symbolic-v1.json measures it
# against the random policy.
_CLASSIC_SYMBOLIC = "craftax/Craftax-Classic-Symbolic-v1"
PRESETS: dict[str, Config] = {
    "Craftax-Classic-Symbolic-v1": Config(
        StaticConfig(env=_CLASSIC_SYMBOLIC, max_episode_steps=100, hidden=(64,), episodes_per_update=8,
                     num_updates=100, returns="reward_to_go", baseline="batch_norm"),
        Hyperparams(learning_rate=0.003, gamma=0.99, entropy_coef=0.01),
    ),
}
