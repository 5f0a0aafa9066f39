"""POPGym Arcade by name: `--env popgym-arcade/CartPoleEasy` (see the install note below).

POPGym Arcade (`popgym_arcade.make(name, **kwargs)`) gives pixel games, each
fully or partially observable (`partial_obs=true`: a memory task, where a
recurrent policy, `--network gru`, helps). Its environments subclass gymnax's
`Environment` but their `step_env` gives five values `(obs, state, reward,
done, info)` with `info["terminated"]` and `info["truncated"]`, and gymnax
1.0's own `step` cannot run them (it calls an `is_terminated` they lack). This
adapter steps `step_env` (no auto-reset, so no reset's observation is kept)
and reads the suite's own flags:

* terminated: `info["terminated"]` (the pole fell, the game was won or lost);
* truncated: `info["truncated"]`, or `done` without `info["terminated"]` (the
  suite's time limit), never together with terminated.

The step limit is the environment's own `max_steps_in_episode` (CartPoleEasy
200; `max_episode_length` in BattleShip and MineSweeper), declared as
`max_steps_in_episode`. Observations are uint8 images 0..255 [S, S, 3] (S =
`obs_size`, 128 or 256), a uint8 Box 0..255; actions Discrete. No legal-action
masks; POPGym Arcade documents no solving return (CartPole's returns are
scaled to at most 1.0).

`--env-kwargs` reach the task's constructor (`partial_obs`, `obs_size`, and
where the task does not fix it `max_steps_in_episode` or `n_sigma`), typed by
the signature of the class that defines them.

Install: popgym-arcade depends on `stable-gymnax`, which ships its own copy of
gymnax's files and overwrites gymnax 1.0.1's (pgjax refuses such an install).
Install it without its dependencies, then what it really imports:
`pip install --no-deps popgym-arcade && pip install dm_pix jaxtyping`.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from pgjax.algo.config import Config, Hyperparams, StaticConfig
from pgjax.algo.envs import typed_kwargs

# Where the suite keeps an environment's step limit: its attribute names, in this order.
_LIMIT_ATTRIBUTES = ("max_steps_in_episode", "max_episode_length")


def _registration() -> Any:
    """The module `popgym_arcade.registration` (its `make`, `REGISTERED_ENVIRONMENTS`).

    Raises:
      ValueError: one line, where popgym_arcade is there but does not import (installed with --no-deps and
        without what it imports).
    """
    try:
        return importlib.import_module("popgym_arcade.registration")
    except ImportError as error:
        raise ValueError(f"popgym-arcade does not import here ({type(error).__name__}: {error}); installed with "
                         "--no-deps it needs: pip install dm_pix jaxtyping") from None


def names() -> tuple[str, ...]:
    """The task names `popgym_arcade.make` takes (`popgym_arcade.registration.REGISTERED_ENVIRONMENTS`)."""
    return tuple(_registration().REGISTERED_ENVIRONMENTS)


class PopgymArcadeEnv:
    """A POPGym Arcade environment in gymnax 1.0's shape: six-value `step` from its `step_env`.

    Attributes:
      arcade: the suite's environment object.
      name: the task name, e.g. "CartPoleEasy".
      max_steps_in_episode: the suite's own step limit for this task (None where it has none: pgjax then
        asks for --max-episode-steps).
    """

    def __init__(self, arcade: Any, name: str, max_steps_in_episode: int | None):
        self.arcade = arcade
        self.name = name
        self.max_steps_in_episode = max_steps_in_episode

    def reset(self, key: jax.Array, params: Any) -> tuple[jax.Array, Any]:
        """(obs uint8 [S, S, 3], state) of a new episode: the suite's `reset_env`."""
        return self.arcade.reset_env(key, params)

    def step(self, key: jax.Array, state: Any, action: jax.Array, params: Any) -> tuple:
        """One step without a reset.

        Returns:
          (obs uint8 [S, S, 3], state, reward [] float32, terminated [] bool, truncated [] bool, info): terminated
          is the suite's `info["terminated"]`; truncated its `info["truncated"]` or a `done` it does not call a
          termination, never both.
        """
        obs, state, reward, done, info = self.arcade.step_env(key, state, action, params)
        terminated = jnp.asarray(info["terminated"], bool)
        truncated = (jnp.asarray(info["truncated"], bool) | jnp.asarray(done, bool)) & ~terminated
        return obs, state, jnp.asarray(reward, jnp.float32), terminated, truncated, info

    def observation_space(self, params: Any) -> Any:
        """The suite's observation space: a uint8 Box 0..255 [S, S, 3]."""
        return self.arcade.observation_space(params)

    def action_space(self, params: Any) -> Any:
        """The suite's action space: Discrete."""
        return self.arcade.action_space(params)


def _constructor(cls: type) -> Any:
    """The first `__init__` along `cls`'s MRO with named parameters, `self` bound (a task class's own is
    `**kwargs` only: its base class's says what it takes)."""
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        bound = functools.partial(init, None)
        kinds = [parameter.kind for parameter in inspect.signature(bound).parameters.values()]
        if inspect.Parameter.POSITIONAL_OR_KEYWORD in kinds or inspect.Parameter.KEYWORD_ONLY in kinds:
            return bound
    return cls


def make(name: str, pairs: Sequence[str] = ()) -> tuple[PopgymArcadeEnv, Any]:
    """(env, params) of the POPGym Arcade task `name`, built with `pairs`.

    Args:
      name: one of `names()`, e.g. "CartPoleEasy".
      pairs: "key=value" strings (`--env-kwargs`) for the task's constructor, e.g. "partial_obs=true".

    Returns:
      The `PopgymArcadeEnv` and the task's `default_params`.

    Raises:
      ValueError: one line: a key the constructor does not take (its parameters named), a value not of the
        parameter's type, or the task failing to build (e.g. a parameter the task fixes itself).
    """
    registration = _registration()
    from popgym_arcade import environments

    label = f"popgym-arcade/{name}"
    kwargs = typed_kwargs(_constructor(getattr(environments, name)), pairs, label)
    try:
        arcade, params = registration.make(name, **kwargs)
    except Exception as error:
        raise ValueError(f"popgym-arcade cannot build {name} with {pairs or 'no arguments'}: "
                         f"{type(error).__name__}: {error}") from None
    if "is_terminated" not in vars(type(arcade)) and callable(getattr(arcade, "is_terminal", None)):
        # The suite was written for an older gymnax, whose Environment.discount calls is_terminal; gymnax 1.0's
        # calls is_terminated, which these classes lack (CartPole's and Tetris's step_env call discount).
        arcade.is_terminated = arcade.is_terminal
    limit = next((getattr(arcade, field) for field in _LIMIT_ATTRIBUTES if hasattr(arcade, field)), None)
    if limit is not None and hasattr(params, "max_steps_in_episode"):
        # gymnax 1.0's EnvParams base gives max_steps_in_episode = 1, which most tasks leave as it is (their limit
        # is the environment's attribute): pgjax reads the params first, so they carry the task's own limit.
        params = params.replace(max_steps_in_episode=int(limit))
    return PopgymArcadeEnv(arcade, name, None if limit is None else int(limit)), params


# What preset "default" means for CartPoleEasy (fully observable, 128x128 pixels, flattened for the MLP), measured
# on a 2-core CPU, 8 seeds, 4 episodes an update, 25 updates, hidden 64, reward-to-go with gamma 0.99: at lr 0.01
# (the unpreset default, whole-episode return, no entropy bonus) the policy's entropy fell to 1.7e-09 nats by
# update 3 (return 0.1, a random policy's 0.115); at lr 3e-4 with entropy 0.01 it fell to 0.003 by update 25
# (return 0.19); at lr 1e-4 with entropy 0.01 it stayed at 0.33 nats while the return rose from 0.115 to 0.18-0.20
# (one seed of 8 at 0.07). The environment draws every frame: about 3k raw steps/s on such a CPU at a batch of 32,
# so the budget here is small (30 updates, about 4k env steps a run);
# experiments/results/suites/popgym-arcade_CartPoleEasy.json measures it: IQM 0.18 [0.15, 0.197], random 0.134.
PRESETS: dict[str, Config] = {
    "CartPoleEasy": Config(
        StaticConfig(env="popgym-arcade/CartPoleEasy", hidden=(64,), episodes_per_update=4, num_updates=30,
                     returns="reward_to_go", baseline="batch_norm"),
        Hyperparams(learning_rate=1e-4, gamma=0.99, entropy_coef=0.01),
    ),
}
