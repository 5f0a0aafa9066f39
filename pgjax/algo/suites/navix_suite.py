"""navix's grid worlds by name: `--env navix/Navix-Empty-5x5-v0` (`pip install "pgjax[navix]"`).

navix (0.7 on Python 3.11; 4.x needs Python >= 3.12) builds an environment with
`navix.make(name, **kwargs)`; it steps as `env.reset(key) -> Timestep` and
`env.step(timestep, action) -> Timestep`. `NavixEnv` gives it gymnax's shape:

* terminated and truncated from the Timestep's `step_type` (navix's `StepType`:
  2 TERMINATION, the goal or lava reached; 1 TRUNCATION, `max_steps` reached),
  kept apart, so a value baseline bootstraps at the time limit (navix's own
  gymnax wrapper folds both into `done`; this adapter does not use it);
* no auto-reset: navix 4's `disable_autoreset=True` turns it off; navix 0.7 has
  no such switch, so its `_step` is taken, the half of `step` without the reset
  branch (under vmap `step` computes both: 0.6x the steps/s of `_step`, measured);
* the step limit is navix's `max_steps` (`NavixEnv.max_steps_in_episode`);
* observations as gymnax Boxes of navix's own shape: the rgb observation
  functions' uint8 images 0..255 (scaled by 1/255 in the network), the symbolic
  and categorical grids' small entity codes (uint8, 0..`SYMBOL_MAX`, taken as
  numbers); actions a `Discrete` of navix's action set.

`--env-kwargs` reach `navix.make`: the environment's own fields (`max_steps`,
`gamma`, ...) typed by their values, and `observation_fn`, `reward_fn`,
`termination_fn` by the name of a function of `navix.observations`,
`navix.rewards`, `navix.terminations` (e.g. `observation_fn=rgb`).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import navix
from gymnax.environments import spaces

from pgjax.algo.config import Config, Hyperparams, StaticConfig
from pgjax.algo.envs import error_line, typed_kwargs

# navix's StepType values (navix.environments.environment.StepType)
TRUNCATION, TERMINATION = 1, 2

# The largest code of navix's symbolic and categorical observations: its entity ids (navix.entities.EntityIds:
# PLAYER = 10); colours (navix.rendering.registry's, GREY = 5) and states (directions, < 4) are below it.
SYMBOL_MAX = 10

# The environment fields --env-kwargs may name by a function of a navix module (module name -> field).
FUNCTION_FIELDS = {"observation_fn": "observations", "reward_fn": "rewards", "termination_fn": "terminations"}

# Fields navix computes or the registration fixes: not --env-kwargs.
FIXED_FIELDS = ("height", "width", "observation_space", "action_space", "reward_space", "transitions_fn",
                "action_set", "disable_autoreset", "random_start")

# What preset "default" means for a navix task, chosen by measurement. Navix-Empty-5x5-v0 (reward 1 at the goal
# whenever reached, 100 steps): each run's final return (mean of its last 100 episodes), 8 seeds:
#   CartPole's unpreset default (lr 0.03, 8 episodes, 32 units): mean 0.12, 7 of 8 seeds at 0.0 (entropy 0);
#   the same at lr 0.01: mean 0.59, 3 of 8 seeds at 0.0 (issue 40 saw 3 of 4 at 0.2);
#   lr 0.003, entropy 0.01, 16 episodes (issue 40's): mean 0.91, every seed 0.85 to 0.94, 84k env steps a run;
#   that with 64 units, reward-to-go, gamma 0.99: mean 0.99, every seed >= 0.94, 44k env steps a run, but its
#   policies reach the goal only by sampling: their greedy argmax walks into a wall for good (pgjax.evaluate:
#   greedy IQM 0.0 on 8 of 8 seeds; with --env-kwargs penality_coeff=0.9 greedy mean 0.1, with lr 0.01 and
#   gamma 0.9 greedy mean 0.6);
#   gamma 0.9 over 300 updates (this preset): final 1.0 and greedy IQM 1.0 on 16 of 16 seeds (--seed 0, 100),
#   62k env steps a run (200 updates: greedy mean 0.8).
# experiments/suites_table.py: experiments/results/suites/navix_Navix-Empty-5x5-v0.json.
PRESETS: dict[str, Config] = {
    "Navix-Empty-5x5-v0": Config(
        StaticConfig(env="navix/Navix-Empty-5x5-v0", hidden=(64,), episodes_per_update=16, num_updates=300,
                     returns="reward_to_go", baseline="batch_norm"),
        Hyperparams(learning_rate=0.003, gamma=0.9, entropy_coef=0.01),
    ),
}


def names() -> tuple[str, ...]:
    """navix's registered task names (`navix.registry()`), sorted."""
    return tuple(sorted(navix.registry()))


def _navix_module(field: str) -> Any:
    """The navix module whose functions the field `field` takes (navix.observations for observation_fn)."""
    return importlib.import_module(f"navix.{FUNCTION_FIELDS[field]}")


def _function_names(field: str) -> list[str]:
    """The functions of the navix module `field` takes one of (e.g. observation_fn: navix.observations): its
    public functions of a state (first parameter `state` or `prev_state`)."""
    module = _navix_module(field)
    return sorted(name for name, value in vars(module).items()
                  if inspect.isfunction(value) and not name.startswith("_") and value.__module__ == module.__name__
                  and next(iter(inspect.signature(value).parameters), "") in ("state", "prev_state"))


def _arguments(env: Any) -> Callable[..., dict[str, Any]]:
    """A function whose signature is what `--env-kwargs` may give the navix environment `env` (its class's
    settable fields, typed by their current values; the *_fn fields as str), for `typed_kwargs`."""
    parameters = []
    for field in dataclasses.fields(env):
        if field.name in FIXED_FIELDS:
            continue
        value = getattr(env, field.name)
        kind = str if field.name in FUNCTION_FIELDS else type(value)
        if kind not in (int, float, bool, str):
            continue
        parameters.append(inspect.Parameter(field.name, inspect.Parameter.KEYWORD_ONLY, default=value,
                                            annotation=kind))

    def arguments(**kwargs: Any) -> dict[str, Any]:
        return kwargs

    arguments.__signature__ = inspect.Signature(parameters)
    return arguments


def _resolve_functions(kwargs: dict[str, Any], label: str) -> dict[str, Any]:
    """`kwargs` with each *_fn name replaced by the navix function it names. Raises ValueError (one line)
    for a name the module lacks, listing those it has."""
    resolved = dict(kwargs)
    for field in FUNCTION_FIELDS:
        if field in resolved:
            choices = _function_names(field)
            if resolved[field] not in choices:
                raise ValueError(f"--env-kwargs {field}={resolved[field]}: {label} takes one of navix."
                                 f"{FUNCTION_FIELDS[field]}'s functions: {', '.join(choices)}")
            resolved[field] = getattr(_navix_module(field), resolved[field])
    return resolved


def observation_box(env: Any) -> spaces.Box:
    """The gymnax Box of a navix environment's observations: uint8 0..255 for the rgb observation functions
    (images), else uint8 0..SYMBOL_MAX (symbolic and categorical grids, taken as numbers)."""
    space = env.observation_space
    shape = tuple(int(n) for n in space.shape)
    if env.observation_fn in (navix.observations.rgb, navix.observations.rgb_first_person):
        return spaces.Box(0, 255, shape, jnp.uint8)
    if env.observation_fn in (navix.observations.none,):
        return spaces.Box(0.0, 0.0, shape, jnp.float32)
    return spaces.Box(0, SYMBOL_MAX, shape, jnp.uint8)


class NavixEnv:
    """A navix environment with gymnax's shape (pgjax.algo.envs's contract); its state is navix's Timestep.

    Attributes:
      env: the navix `Environment` (auto-reset disabled where navix can).
      name: "navix/<task>", for messages.
      max_steps_in_episode: navix's `max_steps`: the step at which navix truncates an episode.
    """

    def __init__(self, env: Any, name: str):
        self.env = env
        self.name = name
        self.max_steps_in_episode = int(env.max_steps)
        self._navix_step = env.step if getattr(env, "disable_autoreset", False) else env._step

    def reset(self, key: jax.Array, params: Any = None) -> tuple[jax.Array, Any]:
        """(observation, Timestep) of a new episode."""
        timestep = self.env.reset(key)
        return timestep.observation, timestep

    def step(self, key: jax.Array, state: Any, action: jax.Array, params: Any = None) -> tuple:
        """One step: (observation, Timestep, reward f32 [], terminated bool [], truncated bool [], info {}).

        `key` is unused: navix keeps its own key in the Timestep's state.
        """
        timestep = self._navix_step(state, jnp.asarray(action, jnp.int32))
        terminated = timestep.step_type == TERMINATION
        truncated = timestep.step_type == TRUNCATION
        return (timestep.observation, timestep, jnp.asarray(timestep.reward, jnp.float32), terminated, truncated,
                {})

    def observation_space(self, params: Any = None) -> spaces.Box:
        """The observations' gymnax Box (`observation_box`)."""
        return observation_box(self.env)

    def action_space(self, params: Any = None) -> spaces.Discrete:
        """A gymnax Discrete of navix's action set."""
        return spaces.Discrete(len(self.env.action_set))


def make(name: str, pairs: Sequence[str] = ()) -> tuple[NavixEnv, None]:
    """(NavixEnv, None) of the navix task `name`, built with `--env-kwargs` `pairs` ("key=value").

    Raises:
      ValueError: one line: an argument the environment does not take (those it takes named), a value
        of the wrong type or an unknown function name, or navix failing to build it.
    """
    label = f"navix/{name}"
    default = navix.make(name)
    kwargs = _resolve_functions(typed_kwargs(_arguments(default), pairs, label), label)
    if any(field.name == "disable_autoreset" for field in dataclasses.fields(default)):
        kwargs["disable_autoreset"] = True
    try:
        env = navix.make(name, **kwargs) if kwargs else default
    except Exception as error:
        raise ValueError(f"navix cannot build {name} with --env-kwargs {' '.join(pairs)}: "
                         f"{error_line(error)}") from None
    return NavixEnv(env, label), None
