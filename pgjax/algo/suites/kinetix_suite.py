"""Kinetix's levels by name: `--env kinetix/s/h0_weak_thrust --env-kwargs action_type=discrete`.

A task name is a level Kinetix ships, "<size>/<level>" (its `levels/` folder:
"s/h0_weak_thrust", "m/h3_car_thrust", "l/grasp_easy", ...). `make` loads it
(`kinetix.util.saving.load_from_json_file`: the level's state, its static
parameters, its EnvParams) and builds Kinetix's environment with
`kinetix.environment.make_kinetix_env(action_type, observation_type,
reset_fn=None, env_params, static_env_params, auto_reset=False)`, served with
gymnax's shape (`KinetixLevelEnv`):

* reset: the level itself (`reset_env(..., override_reset_state=level)`); the
  auto-reset is off (pgjax ends an episode for good and starts a fresh one);
* termination and truncation: Kinetix's `done` folds three things together:
  a goal or hazard reached (reward +1 or -1), a NaN in the physics state, and
  `timestep >= max_timesteps`. The step is taken with `max_timesteps` lifted
  out of reach, so its `done` is the termination alone; the truncation is
  `timestep >= max_timesteps` (the level's limit, 256 by default) where not
  terminated. `max_timesteps` is the step limit pgjax reads from the params;
* actions (`action_type`): "multi_discrete" (Kinetix's default: one choice per
  motor binding of {off, +1, -1} and per thruster binding of {off, on}; a
  MultiDiscrete with `nvec`), "discrete" (one of 2 x motor bindings + thruster
  bindings + 1 no-op: a Discrete) or "continuous" (a Box [-1, 1] per motor and
  thruster binding; Kinetix clips the thrusters' to [0, 1]);
* observations (`observation_type`): "symbolic_flat" (pgjax's default: one
  float32 vector, the fastest), "symbolic_entity" (Kinetix's default: a Dict of
  per-shape feature arrays and masks; pgjax flattens it into one vector for its
  networks, losing its permutation invariance), "pixels" (the float32 image
  [H, W, 3] in [0, 1] of Kinetix's `PixelsObservation`, for `--network cnn`, as
  Kinetix's observation space says; its `global_info`, gravity / 10, constant
  within a level, is left out). Kinetix's "symbolic_flat_padded"
  declares no observation space and "blind" is not built by make_kinetix_env:
  both are refused.

`--env-kwargs`: `action_type`, `observation_type`, any field of Kinetix's
`EnvParams` (`max_timesteps`, `dense_reward_scale`, `base_motor_power`, ...)
and of the level's `StaticEnvParams` that does not change its shapes
(`frame_skip`, `downscale`), typed by their dataclasses.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import kinetix
import numpy as np
from kinetix.environment import ActionType, ObservationType, make_kinetix_env
from kinetix.util.saving import load_from_json_file

from pgjax.algo.config import Config, Hyperparams, StaticConfig
from pgjax.algo.envs import typed_kwargs

ACTION_TYPES = ("multi_discrete", "discrete", "continuous")
OBSERVATION_TYPES = ("symbolic_flat", "symbolic_entity", "pixels")
DEFAULT_ACTION_TYPE = "multi_discrete"  # Kinetix's own default
DEFAULT_OBSERVATION_TYPE = "symbolic_flat"  # the one vector pgjax's MLP takes as it is (Kinetix's fastest)
# StaticEnvParams fields a level can take another value of: others set its arrays' shapes.
STATIC_FIELDS = ("frame_skip", "downscale")
# max_timesteps while stepping: out of reach, so that Kinetix's done is its termination alone.
UNREACHABLE_TIMESTEP = 2**30

# What preset "default" means for Kinetix's levels (pgjax.algo.suites.suite_preset). s/h0_weak_thrust, Kinetix's
# first small handmade level, with the defaults above (multi-discrete actions, symbolic_flat observations, 256
# steps): CartPole's default settings with the unpreset learning rate 0.01, 8 episodes per update, 30 updates
# gave IQM 1.2 [1.2, 1.2] over 8 seeds (python -m pgjax.train --env kinetix/s/h0_weak_thrust --num-seeds 8
# --num-updates 30 --episodes-per-update 8; 46k env steps per 8 runs, 3.7k steps/s on 2 shared CPU cores,
# compile 54 s): every seed thrusts the ball onto the goal (+1, plus the dense reward's approach).
PRESETS: dict[str, Config] = {
    "s/h0_weak_thrust": Config(
        StaticConfig(env="kinetix/s/h0_weak_thrust", hidden=(32,), episodes_per_update=8, num_updates=30,
                     returns="episode", baseline="batch_norm", reduction="step_mean"),
        Hyperparams(learning_rate=0.01, gamma=1.0),
    ),
}


def _levels_folder() -> Path:
    return Path(kinetix.__file__).parent / "levels"


def names() -> tuple[str, ...]:
    """The levels Kinetix ships, "<size>/<level>" ("s/h0_weak_thrust"), sorted."""
    folder = _levels_folder()
    return tuple(sorted(path.relative_to(folder).with_suffix("").as_posix() for path in folder.glob("*/*.json")))


class MultiDiscreteSpace:
    """A MultiDiscrete space of sizes `nvec` [D] (int32 actions, entry d in [0, nvec[d]));
    Kinetix's own class names them `number_of_dims_per_distribution`, which pgjax does not read."""

    def __init__(self, nvec: Sequence[int]):
        self.nvec = np.asarray(nvec, np.int32)
        self.shape = self.nvec.shape
        self.dtype = jnp.int32


class KinetixLevelEnv:
    """One Kinetix level with gymnax's shape (pgjax's contract); params are Kinetix's `EnvParams`.

    Attributes:
      kinetix_env: the `kinetix.environment.KinetixEnv` (auto_reset False, no reset function).
      level: the level's `EnvState`, what every episode starts from.
      name: "kinetix/<size>/<level>".
      params: the `EnvParams` the level was loaded with (and `--env-kwargs` changed).
    """

    def __init__(self, kinetix_env: Any, level: Any, name: str, params: Any):
        self.kinetix_env = kinetix_env
        self.level = level
        self.name = name
        self.params = params

    @staticmethod
    def _observation(raw: Any) -> Any:
        """What pgjax sees of Kinetix's observation: a `PixelsObservation`'s image [H, W, 3], else all of it."""
        return getattr(raw, "image", raw)

    @property
    def default_params(self) -> Any:
        return self.params

    def reset(self, key: Any, params: Any) -> tuple[Any, Any]:
        """(observation, state) of the level's start; `key` unused (the level is fixed)."""
        obs, state = self.kinetix_env.reset_env(key, params, override_reset_state=self.level)
        return self._observation(obs), state

    def step(self, key: Any, state: Any, action: Any, params: Any) -> tuple:
        """One step with no reset: (obs, state, reward [], terminated [] bool, truncated [] bool, info).

        terminated: Kinetix's done with its time limit out of reach (a goal or hazard touched, or a NaN in
        the state); truncated: `timestep >= params.max_timesteps` where not terminated.
        """
        limitless = params.replace(max_timesteps=UNREACHABLE_TIMESTEP)
        obs, state, reward, done, info = self.kinetix_env.step_env(key, state, action, limitless)
        terminated = jnp.asarray(done, bool)
        truncated = ~terminated & (state.timestep >= params.max_timesteps)
        return self._observation(obs), state, jnp.asarray(reward, jnp.float32), terminated, truncated, info

    def observation_space(self, params: Any) -> Any:
        return self.kinetix_env.observation_space(params)

    def action_space(self, params: Any) -> Any:
        space = self.kinetix_env.action_space(params)
        nvec = getattr(space, "number_of_dims_per_distribution", None)
        return space if nvec is None else MultiDiscreteSpace(np.asarray(nvec))


def _arguments_signature(env_params: Any, static_env_params: Any) -> inspect.Signature:
    """The keyword arguments `make` takes, typed: action_type, observation_type (str), the EnvParams fields
    and `STATIC_FIELDS`, each with its dataclass type and the level's value as its default."""
    keyword = inspect.Parameter.KEYWORD_ONLY
    parameters = [inspect.Parameter("action_type", keyword, default=DEFAULT_ACTION_TYPE, annotation=str),
                  inspect.Parameter("observation_type", keyword, default=DEFAULT_OBSERVATION_TYPE, annotation=str)]
    for params, chosen in ((env_params, None), (static_env_params, STATIC_FIELDS)):
        for field in dataclasses.fields(params):
            if chosen is None or field.name in chosen:
                parameters.append(inspect.Parameter(field.name, keyword, default=getattr(params, field.name),
                                                    annotation=field.type))
    return inspect.Signature(parameters)


def make(name: str, pairs: Sequence[str] = ()) -> tuple[KinetixLevelEnv, Any]:
    """(the level `name` with gymnax's shape, its EnvParams) built with the `--env-kwargs` `pairs`.

    Args:
      name: a level, "<size>/<level>" (`names()`).
      pairs: "key=value" strings: action_type (`ACTION_TYPES`), observation_type (`OBSERVATION_TYPES`),
        EnvParams fields, `STATIC_FIELDS`.

    Returns:
      (KinetixLevelEnv, EnvParams).

    Raises:
      ValueError: one line: a key it does not take (those it takes named), a value of the wrong type, an
        action or observation type pgjax does not serve.
    """
    label = f"kinetix/{name}"
    level, static_env_params, env_params = load_from_json_file(name)

    def arguments(**kwargs: Any) -> None:
        """What typed_kwargs reads the pairs by (its __signature__)."""

    arguments.__signature__ = _arguments_signature(env_params, static_env_params)  # type: ignore[attr-defined]
    kwargs = typed_kwargs(arguments, pairs, label)
    action_type = kwargs.pop("action_type", DEFAULT_ACTION_TYPE)
    observation_type = kwargs.pop("observation_type", DEFAULT_OBSERVATION_TYPE)
    if action_type not in ACTION_TYPES:
        raise ValueError(f"--env-kwargs action_type={action_type}: {label} takes one of {', '.join(ACTION_TYPES)}")
    if observation_type not in OBSERVATION_TYPES:
        raise ValueError(f"--env-kwargs observation_type={observation_type}: pgjax serves Kinetix's "
                         f"{', '.join(OBSERVATION_TYPES)} (symbolic_flat_padded declares no observation space, "
                         "make_kinetix_env builds no blind)")
    static_changes = {key: kwargs.pop(key) for key in STATIC_FIELDS if key in kwargs}
    env_params = env_params.replace(**kwargs)
    static_env_params = static_env_params.replace(**static_changes)
    if env_params.max_timesteps < 1:
        raise ValueError(f"--env-kwargs max_timesteps={env_params.max_timesteps}: must be >= 1")
    kinetix_env = make_kinetix_env(ActionType.from_string(action_type), ObservationType.from_string(observation_type),
                                   None, env_params, static_env_params, auto_reset=False)
    return KinetixLevelEnv(kinetix_env, level, label, env_params), env_params
