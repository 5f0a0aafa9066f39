"""jumanji's environments by name: `--env jumanji/Snake-v1` (`pgjax.algo.suites`).

jumanji (InstaDeep) gives `reset(key) -> (state, timestep)` and `step(state, action) -> (state, timestep)` with a
dm_env-like `TimeStep` (`step_type`, `reward`, `discount`, `observation`); `JumanjiEnv` gives them gymnax's shape:

* termination: a last step (`StepType.LAST`) with discount 0; truncation: a last step with discount > 0
  (jumanji's `truncation`, as Connector-v3 and LevelBasedForaging-v0 give at their time limits);
* the time limit: `max_steps_in_episode` is the environment's `time_limit` where it has one. Several environments
  (`LIMIT_REPORTED_AS_TERMINATION`: Snake-v1, Tetris-v0, Maze-v0, ...) report reaching their own `time_limit` as
  a termination (discount 0, the same step as a crash); for those the adapter steps a copy of the environment
  whose `time_limit` is lifted, so that its terminations are the game's own, and reports the step that reaches
  `time_limit` as a truncation itself. Elsewhere the suite's own signal stands;
* jumanji's environments do not auto-reset (its `AutoResetWrapper` is not used): pgjax starts each episode anew;
* observations: jumanji's observation specs (a NamedTuple or dataclass of `BoundedArray`, `DiscreteArray`,
  `MultiDiscreteArray`, `Array`, nested specs) become a gymnax `Dict` of the top-level fields (a bool
  `BoundedArray` a bool Box 0..1; a scalar `DiscreteArray` a `Discrete`, one-hot; a `MultiDiscreteArray` a
  `MultiDiscrete`; an unbounded `Array` a Box of its dtype's range; uint8 0..255 stays a uint8 Box 0..255), and
  the observation a dict of those fields;
* the legal-action mask, jumanji's `action_mask` field (bool, True = legal), is the `action_mask` leaf where it
  masks pgjax's actions: [A] for `Discrete(A)` actions, or per entry of a `MultiDiscrete` ([D, n] for D entries
  of n values, flattened to [D * n]). A joint mask over all the entries together (BinPack-v2's [E, I], of
  E * I joint actions) masks no single entry: it stays a feature, named `joint_action_mask`;
* actions: `DiscreteArray` -> `Discrete`, `MultiDiscreteArray` -> `MultiDiscrete` (`nvec`), a float
  `BoundedArray` -> a bounded Box;
* `--env-kwargs` reach the environment's constructor (`jumanji.make(name, **kwargs)`), typed by its signature:
  `--env jumanji/Snake-v1 --env-kwargs num_rows=6 num_cols=6 time_limit=200`.

Multi-agent environments whose reward is one per agent (LevelBasedForaging-v0, MultiCVRP-v0,
SearchAndRescue-v0) are refused in one line: pgjax trains one policy on a scalar reward.
"""

from __future__ import annotations

import copy
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from gymnax.environments import spaces

from pgjax.algo.config import Config, Hyperparams, StaticConfig
from pgjax.algo.envs import error_line, typed_kwargs

# Environments whose step folds reaching `self.time_limit` into the termination it gives a crash or a win
# (jumanji 1.1.2's source: `done = ... | (step_count >= self.time_limit)` then `termination(...)`, discount 0), and
# whose step reads `time_limit` nowhere else: lifting it on a copy changes only that. (MMST-v0 passes it to its
# generator and SearchAndRescue-v0 scales rewards by it: not listed, their time limit stays a termination.)
LIMIT_REPORTED_AS_TERMINATION = frozenset({
    "Snake-v1", "Tetris-v0", "Maze-v0", "Sokoban-v0", "Cleaner-v0", "PacMan-v1", "RobotWarehouse-v0",
    "SlidingTilePuzzle-v0",
})

# A time limit no episode reaches: int32's largest, as jumanji's step counters are int32.
_NO_LIMIT = int(np.iinfo(np.int32).max)

# What preset "default" means for a jumanji task (`pgjax.algo.suites.suite_preset`); it includes the documented
# task's arguments (a 6x6 grid, 200 steps: Snake-v1's own 12x12 and 4000 steps make episodes 20x longer); giving
# --env-kwargs replaces them. Measured with `python -m pgjax.train --env jumanji/Snake-v1 --env-kwargs num_rows=6
# num_cols=6 time_limit=200 --num-seeds 8 --num-updates 200` (IQM of the final return [95% CI], 8 seeds; a random
# policy 0.16 in issue 40). Without legal-action masks: CartPole's settings at lr 0.01 (the unpreset default)
# 0.7 [0.3, 1.0], at lr 0.03 0.1 [0.0, 0.5]; these settings (reward-to-go, gamma 0.99, entropy 0.01, 16 episodes,
# 64 units) 4.2 [3.8, 4.8] at lr 0.01, 2.1 [2.0, 2.1] at lr 0.003. With the masks (Snake no longer dies by moving
# into a wall or itself): CartPole's settings 7.1 [6.5, 8.2] at lr 0.01, 2.8 [0.9, 4.2] at lr 0.03; these settings
# 13.0 [12.5, 13.8] at lr 0.01, 12.8 [12.7, 13.2] at lr 0.003.
PRESETS: dict[str, Config] = {
    "Snake-v1": Config(
        StaticConfig(
            env="jumanji/Snake-v1", env_kwargs=("num_rows=6", "num_cols=6", "time_limit=200"), hidden=(64,),
            episodes_per_update=16, num_updates=200, returns="reward_to_go", baseline="batch_norm",
        ),
        Hyperparams(learning_rate=0.01, gamma=0.99, entropy_coef=0.01),
    ),
}


class MultiDiscrete(NamedTuple):
    """A vector of D discrete values, entry i in 0..nvec[i]-1 (gymnasium's MultiDiscrete attributes, which
    gymnax lacks; `pgjax.algo.envs.space_kind` recognises it by `nvec`).

    Attributes:
      nvec: [D] the number of values of each entry.
      shape: (D,).
      dtype: the entries' integer dtype.
    """

    nvec: np.ndarray
    shape: tuple[int, ...]
    dtype: Any


class JumanjiState(NamedTuple):
    """The state `JumanjiEnv` threads through reset and step.

    Attributes:
      env_state: jumanji's own state.
      steps: int32 [], the steps taken in this episode.
    """

    env_state: Any
    steps: jax.Array


def names() -> tuple[str, ...]:
    """The task names jumanji registers (`jumanji.registered_environments()`), sorted: e.g. "Snake-v1"."""
    import jumanji

    return tuple(sorted(jumanji.registered_environments()))


def _box(spec: Any) -> spaces.Box:
    """A gymnax Box of a jumanji `BoundedArray` (its bounds) or `Array` (its dtype's range)."""
    dtype = np.dtype(spec.dtype)
    shape = tuple(int(n) for n in spec.shape)
    if hasattr(spec, "minimum"):
        low, high = np.asarray(spec.minimum), np.asarray(spec.maximum)
    elif dtype == np.bool_:
        low, high = np.asarray(False), np.asarray(True)
    elif np.issubdtype(dtype, np.integer):
        low, high = np.asarray(np.iinfo(dtype).min), np.asarray(np.iinfo(dtype).max)
    else:
        low, high = np.asarray(-np.inf), np.asarray(np.inf)
    if dtype == np.bool_:
        low, high = low.astype(np.int32), high.astype(np.int32)
    return spaces.Box(low=np.broadcast_to(low, shape), high=np.broadcast_to(high, shape), shape=shape, dtype=dtype)


def _space(spec: Any) -> Any:
    """The gymnax-like space of one jumanji spec (module docstring); a nested spec becomes a Dict of its fields."""
    from jumanji import specs

    if isinstance(spec, specs.DiscreteArray):
        return spaces.Discrete(int(spec.num_values), dtype=spec.dtype)
    if isinstance(spec, specs.MultiDiscreteArray):
        nvec = np.asarray(spec.num_values)
        return MultiDiscrete(nvec, tuple(nvec.shape), spec.dtype)
    if isinstance(spec, specs.Array):
        return _box(spec)
    return spaces.Dict({field: _space(child) for field, child in spec._specs.items()})


class _MaskForm(NamedTuple):
    """How jumanji's `action_mask` field is served: `key` its name in pgjax's observation ("action_mask", or
    "joint_action_mask" where it masks no single action entry) and `size` its flattened length where it is pgjax's
    mask (None: kept as it is)."""

    key: str
    size: int | None


def _mask_form(mask_spec: Any, actions: Any) -> _MaskForm:
    """Whether jumanji's mask masks pgjax's actions: [A] for Discrete(A), [D, n] for a MultiDiscrete of D entries
    of n values each (flattened: per entry); otherwise it is a joint mask (features only)."""
    shape = tuple(int(n) for n in mask_spec.shape)
    if isinstance(actions, spaces.Discrete) and shape == (int(actions.n),):
        return _MaskForm("action_mask", int(actions.n))
    if isinstance(actions, MultiDiscrete):
        nvec = [int(n) for n in np.ravel(actions.nvec)]
        if len(shape) == 2 and shape[0] == len(nvec) and all(n == shape[1] for n in nvec):
            return _MaskForm("action_mask", sum(nvec))
    return _MaskForm("joint_action_mask", None)


def _action_space(spec: Any, name: str) -> Any:
    """The gymnax-like action space of jumanji's action spec; a float `BoundedArray` becomes a bounded Box."""
    space = _space(spec)
    if isinstance(space, spaces.Dict):
        raise ValueError(f"{name} has a structured action spec ({type(spec).__name__}); pgjax takes a "
                         "DiscreteArray, MultiDiscreteArray or BoundedArray action")
    return space


class JumanjiEnv:
    """One jumanji environment with gymnax's shape (reset, step, observation_space, action_space; the module's
    docstring says how its signals are read). Pure and jit/vmap-safe: all state is in `JumanjiState`.

    Attributes:
      env: the jumanji environment (spaces and reset).
      name: "jumanji/<task>".
      max_steps_in_episode: the environment's `time_limit`, or None where it has none (pgjax then asks for
        --max-episode-steps).
      default_params: None (jumanji environments keep their settings on the object).
    """

    default_params = None

    def __init__(self, env: Any, task: str):
        self.env = env
        self.name = f"jumanji/{task}"
        limit = getattr(env, "time_limit", None)
        self.max_steps_in_episode = int(limit) if isinstance(limit, int | np.integer) and limit > 0 else None
        self._limit_lifted = task in LIMIT_REPORTED_AS_TERMINATION and self.max_steps_in_episode is not None
        # the copy whose only change is its time limit (LIMIT_REPORTED_AS_TERMINATION): the game's own ends
        self._stepper = copy.copy(env) if self._limit_lifted else env
        if self._limit_lifted:
            self._stepper.time_limit = _NO_LIMIT
        self._action_space = _action_space(env.action_spec, self.name)
        observation_space = _space(env.observation_spec)
        if not isinstance(observation_space, spaces.Dict):  # a bare array observation
            self._fields = None
            self._observation_space = observation_space
            self._mask = None
            return
        fields = dict(observation_space.spaces)
        self._fields = tuple(fields)
        mask_spec = env.observation_spec._specs.get("action_mask")
        self._mask = None if mask_spec is None else _mask_form(mask_spec, self._action_space)
        if self._mask is not None:
            del fields["action_mask"]
            shape = (self._mask.size,) if self._mask.size is not None else tuple(mask_spec.shape)
            fields[self._mask.key] = spaces.Box(low=0, high=1, shape=shape, dtype=jnp.bool_)
        self._observation_space = spaces.Dict(fields)

    def observation_space(self, params: Any = None) -> Any:
        """A gymnax Dict of the observation's fields (a Box or Discrete where jumanji's is a bare array)."""
        return self._observation_space

    def action_space(self, params: Any = None) -> Any:
        """Discrete, MultiDiscrete (`nvec`) or a bounded Box (module docstring)."""
        return self._action_space

    def _observation(self, observation: Any) -> Any:
        """jumanji's observation -> pgjax's: a dict of its top-level fields, the mask as `_MaskForm` says."""
        if self._fields is None:
            return observation
        values = {field: _field(observation, field) for field in self._fields}
        if self._mask is not None:
            mask = jnp.asarray(values.pop("action_mask"), jnp.bool_)
            values[self._mask.key] = mask.reshape(self._mask.size) if self._mask.size is not None else mask
        return values

    def reset(self, key: jax.Array, params: Any = None) -> tuple[Any, JumanjiState]:
        """(observation, state) of a new episode: jumanji's `reset(key)`."""
        env_state, timestep = self.env.reset(key)
        return self._observation(timestep.observation), JumanjiState(env_state, jnp.zeros((), jnp.int32))

    def step(self, key: jax.Array, state: JumanjiState, action: jax.Array, params: Any = None) -> tuple:
        """gymnax 1.0's six values of one step: (obs, state, reward float32 [], terminated bool [],
        truncated bool [], info {}). `key` is unused (jumanji keeps its own key in its state); no reset."""
        from jumanji.types import StepType

        action = jnp.asarray(action).astype(self._action_space.dtype)
        env_state, timestep = self._stepper.step(state.env_state, action)
        steps = state.steps + 1
        last = timestep.step_type == StepType.LAST
        terminated = last & (timestep.discount == 0)
        truncated = last & ~terminated
        if self._limit_lifted:
            truncated = truncated | (~terminated & (steps >= self.max_steps_in_episode))
        reward = jnp.asarray(timestep.reward, jnp.float32)
        return (self._observation(timestep.observation), JumanjiState(env_state, steps), reward,
                jnp.asarray(terminated, jnp.bool_), jnp.asarray(truncated, jnp.bool_), {})


def _field(observation: Any, field: str) -> Any:
    """One field of jumanji's observation (a NamedTuple, a dataclass or a dict)."""
    return observation[field] if isinstance(observation, dict) else getattr(observation, field)


def make(name: str, pairs: tuple[str, ...] = ()) -> tuple[JumanjiEnv, None]:
    """(JumanjiEnv, None) for the jumanji task `name` built with the `--env-kwargs` `pairs`.

    Args:
      name: a registered jumanji id (`names()`), e.g. "Snake-v1".
      pairs: "key=value" arguments of the environment's constructor, typed by its signature.

    Returns:
      The environment with gymnax's shape, and None for its params.

    Raises:
      ValueError: one line: an argument the constructor does not take (its parameters named) or cannot be given
        as text, a constructor that fails, a reward per agent.
    """
    import jumanji

    label = f"jumanji/{name}"
    try:
        env = jumanji.make(name)
    except Exception as error:  # Sokoban-v0 downloads its levels when built
        raise ValueError(f"building {label} failed: {error_line(error)}") from error
    if pairs:
        try:
            kwargs = typed_kwargs(type(env), pairs, label)
        except TypeError as error:  # an argument of a class type (generator=, viewer=): not text
            raise ValueError(f"--env-kwargs for {label}: an argument --env-kwargs cannot give as text "
                             f"(int, float, bool, str only): {error_line(error)}") from None
        shown = ", ".join(f"{key}={value!r}" for key, value in kwargs.items())
        try:
            env = jumanji.make(name, **kwargs)
        except Exception as error:
            raise ValueError(f"building {label}({shown}) failed: {error_line(error)}") from error
    reward_shape = tuple(env.reward_spec.shape)
    if reward_shape != ():
        raise ValueError(f"{label} gives a reward per agent (shape {reward_shape}); pgjax trains one policy on a "
                         "scalar reward: choose a single-agent jumanji task")
    return JumanjiEnv(env, name), None

