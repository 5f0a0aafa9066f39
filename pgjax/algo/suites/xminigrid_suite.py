"""XLand-MiniGrid's grid worlds by name: `--env xminigrid/MiniGrid-Empty-5x5` (`pip install "pgjax[xminigrid]"`).

xminigrid builds a task with `xminigrid.make(name) -> (env, env_params)`; it
steps as `env.reset(params, key) -> TimeStep` and `env.step(params, timestep,
action) -> TimeStep` (dm_env's shape). `XMiniGridEnv` gives it gymnax's shape:

* terminated where the TimeStep is the LAST with discount 0 (the goal reached),
  truncated where it is the LAST with discount 1 (`step_num == max_steps`);
* no auto-reset: `xminigrid.make` gives the bare environment (auto-reset is a
  wrapper, `GymAutoResetWrapper`, this adapter does not use);
* the step limit is the params' `max_steps` (read by pgjax);
* observations: the agent's symbolic view [view_size, view_size, 2] of uint8
  (tile id < 13, colour id < 12), a gymnax Box taken as numbers; actions a
  `Discrete(6)`.

`--env-kwargs` set the fields of the task's params (`height`, `width`,
`view_size`, `max_steps`, ...), typed by their class's signature; the size of a
task is given before its step limit is derived from it (as `default_params`
does). The XLand-MiniGrid-* tasks take their rules from a benchmark:
`--env-kwargs benchmark=trivial-21k ruleset=0` (`xminigrid.load_benchmark`
downloads it once, to ~/.xland_minigrid); without one they have no goal.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import xminigrid
from gymnax.environments import spaces
from xminigrid.core.constants import NUM_COLORS, NUM_TILES

from pgjax.algo.config import Config, Hyperparams, StaticConfig
from pgjax.algo.envs import error_line, split_pairs, typed_kwargs

# dm_env's step types as xminigrid stores them (xminigrid.types.StepType)
LAST = 2

# --env-kwargs of the XLand-MiniGrid-* tasks that choose their rules: a benchmark's name and a ruleset's index in it.
RULESET_ARGUMENTS = ("benchmark", "ruleset")

# What preset "default" means for an xminigrid task, chosen by measurement. MiniGrid-Empty-5x5 (reward
# 1 - 0.9 * steps / 100 at the goal, at best 0.955): each run's final return (mean of its last 100 episodes),
# 8 seeds, pgjax.algo.trainer.make_train:
#   CartPole's unpreset default (lr 0.03, 8 episodes, 32 units): mean 0.60, 3 of 8 seeds at 0.0;
#   the same at lr 0.01: mean 0.95, every seed >= 0.94, 7k env steps a run;
#   navix's preset (lr 0.003, entropy 0.01, 16 episodes, 64 units, reward-to-go, gamma 0.99): mean 0.95, every
#   seed >= 0.93, 15k env steps a run. It is taken here too: lr 0.01 collapsed 3 of 8 seeds on navix's Empty-5x5.
# experiments/suites_table.py: random policy 0.24, this preset's IQM 0.953 [0.944, 0.955]
# (experiments/results/suites/xminigrid_MiniGrid-Empty-5x5.json).
PRESETS: dict[str, Config] = {
    "MiniGrid-Empty-5x5": Config(
        StaticConfig(env="xminigrid/MiniGrid-Empty-5x5", hidden=(64,), episodes_per_update=16, num_updates=100,
                     returns="reward_to_go", baseline="batch_norm"),
        Hyperparams(learning_rate=0.003, gamma=0.99, entropy_coef=0.01),
    ),
}


def names() -> tuple[str, ...]:
    """xminigrid's registered task names (`xminigrid.registered_environments()`)."""
    return tuple(xminigrid.registered_environments())


def observation_box(env: Any, params: Any) -> spaces.Box:
    """The gymnax Box of the symbolic view: uint8 [*env.observation_shape(params)], each cell's last axis
    (tile id, colour id) bounded by xminigrid's NUM_TILES - 1 and NUM_COLORS - 1."""
    shape = tuple(int(n) for n in env.observation_shape(params))
    high = np.broadcast_to(np.asarray([NUM_TILES - 1, NUM_COLORS - 1], np.uint8)[: shape[-1]], shape)
    return spaces.Box(np.zeros(shape, np.uint8), high, shape, jnp.uint8)


class XMiniGridEnv:
    """An xminigrid environment with gymnax's shape (pgjax.algo.envs's contract); its state is xminigrid's
    TimeStep, its params xminigrid's EnvParams.

    Attributes:
      env: the xminigrid `Environment`.
      name: "xminigrid/<task>", for messages.
      max_steps_in_episode: the params' `max_steps`: the step at which xminigrid truncates an episode.
    """

    def __init__(self, env: Any, params: Any, name: str):
        self.env = env
        self.name = name
        self.max_steps_in_episode = int(params.max_steps)

    def reset(self, key: jax.Array, params: Any) -> tuple[jax.Array, Any]:
        """(observation, TimeStep) of a new episode."""
        timestep = self.env.reset(params, key)
        return timestep.observation, timestep

    def step(self, key: jax.Array, state: Any, action: jax.Array, params: Any) -> tuple:
        """One step: (observation, TimeStep, reward f32 [], terminated bool [], truncated bool [], info {}).

        `key` is unused: xminigrid's steps are deterministic given the TimeStep.
        """
        timestep = self.env.step(params, state, jnp.asarray(action, jnp.int32))
        last = timestep.step_type == LAST
        terminated = last & (timestep.discount == 0)
        truncated = last & (timestep.discount != 0)
        return (timestep.observation, timestep, jnp.asarray(timestep.reward, jnp.float32), terminated, truncated,
                {})

    def observation_space(self, params: Any) -> spaces.Box:
        """The symbolic view's gymnax Box (`observation_box`)."""
        return observation_box(self.env, params)

    def action_space(self, params: Any) -> spaces.Discrete:
        """A gymnax Discrete of xminigrid's actions."""
        return spaces.Discrete(int(self.env.num_actions(params)))


def _ruleset(name: str, arguments: dict[str, str]) -> Any:
    """The RuleSet an XLand-MiniGrid task plays: `ruleset` (an index, default 0) of the benchmark named.

    Raises:
      ValueError: one line: no benchmark given, an unknown one, an index that is not an int or out of range.
    """
    benchmarks = xminigrid.registered_benchmarks()
    if "benchmark" not in arguments:
        raise ValueError(f"xminigrid/{name} plays the rules of a benchmark: give --env-kwargs benchmark=NAME "
                         f"ruleset=INDEX (benchmarks: {', '.join(benchmarks)})")
    if arguments["benchmark"] not in benchmarks:
        raise ValueError(f"--env-kwargs benchmark={arguments['benchmark']}: xminigrid's benchmarks are "
                         f"{', '.join(benchmarks)}")
    try:
        index = int(arguments.get("ruleset", "0"))
    except ValueError:
        raise ValueError(f"--env-kwargs ruleset={arguments['ruleset']}: an index into the benchmark (int)") from None
    try:
        benchmark = xminigrid.load_benchmark(arguments["benchmark"])
    except Exception as error:
        raise ValueError(f"xminigrid cannot load the benchmark {arguments['benchmark']}: "
                         f"{error_line(error)}") from None
    if not 0 <= index < benchmark.num_rulesets():
        raise ValueError(f"--env-kwargs ruleset={index}: the benchmark {arguments['benchmark']} has rulesets "
                         f"0 to {benchmark.num_rulesets() - 1}")
    return benchmark.get_ruleset(index)


def make(name: str, pairs: Sequence[str] = ()) -> tuple[XMiniGridEnv, Any]:
    """(XMiniGridEnv, its EnvParams) of the xminigrid task `name`, with `--env-kwargs` `pairs` ("key=value").

    Raises:
      ValueError: one line: a field the params lack (those they have named), a value of the wrong type,
        an XLand task without a benchmark, or xminigrid failing to build it.
    """
    label = f"xminigrid/{name}"
    env, registered = xminigrid.make(name)
    xland = name.startswith("XLand-")
    raw = split_pairs(pairs)
    own = {key: raw.pop(key) for key in RULESET_ARGUMENTS if xland and key in raw}
    settable = [f"{key}={value}" for key, value in raw.items()]
    kwargs = typed_kwargs(type(registered), settable, label)
    if "ruleset" in kwargs:  # the RuleSet itself, an array pytree, is not given in words
        raise ValueError(f"--env-kwargs ruleset: {label} takes no rules in words; "
                         + ("give benchmark=NAME ruleset=INDEX" if xland else "it has fixed rules"))
    if xland:
        kwargs["ruleset"] = _ruleset(name, own)
    if kwargs:
        # The task's registered size, then the given fields; its step limit derived anew unless given.
        fields = {field.name: getattr(registered, field.name) for field in dataclasses.fields(registered)
                  if field.name not in ("max_steps", "ruleset")}
        try:
            params = env.default_params(**{**fields, **kwargs})
        except Exception as error:
            raise ValueError(f"xminigrid cannot build {name} with --env-kwargs {' '.join(pairs)}: "
                             f"{error_line(error)}") from None
    else:
        params = registered
    return XMiniGridEnv(env, params, label), params
