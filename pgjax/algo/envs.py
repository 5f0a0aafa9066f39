"""Environments: a gymnax id, a factory named "package.module:factory", or any object with gymnax's API.

pgjax serves an environment whose observations are one array (a gymnax `Box`:
a vector for the MLP, an image [H, W, C] or [H, W] for the CNN or flattened for
the MLP) and whose actions are `Discrete` (categorical policy) or a bounded
`Box` vector (Gaussian policy). Anything else gets a ValueError that names what
is unsupported.

An environment of your own is any object with the methods of gymnax's
`gymnax.environments.environment.Environment` that pgjax calls (subclassing it
gives `reset` and `is_truncated` for free):

* `reset(key, params) -> (obs, state)` (gymnax's calls `reset_env`);
* `step_env(key, state, action, params) -> (obs, state, reward, terminated, info)`,
  with no auto-reset: pgjax ends an episode at its first terminated or
  truncated step;
* `is_truncated(state, params) -> bool []`, the time limit;
* `observation_space(params)` (shaped like gymnax's `spaces.Box`) and `action_space(params)`
  (like `spaces.Discrete` or a bounded 1-D `spaces.Box`): spaces are recognised by their
  attributes, not their class (`space_kind`), so a package's own look-alike classes serve;
* `default_params`, its `EnvParams`, unless the params are given with it.

What the trainer needs besides (`EnvSpec`) comes from:

* `max_steps`: `params.max_steps_in_episode` (gymnax's field, which its
  `is_truncated` reads): the most steps an episode lasts, and the length of
  the rollout buffers. Required.
* `solve_threshold`: the environment's attribute `solve_threshold` (a return,
  or None); else gymnax's threshold for its `name` where pgjax knows one
  (`SOLVE_THRESHOLDS`); else None (no run is judged solved).
* `obs_dtype`: "uint8" if the environment's attribute `binary_observations` is
  True (observations are 0/1 maps, stored in a quarter of the memory), or its
  `name` is in `BINARY_OBSERVATIONS`; else "float32".
"""

from __future__ import annotations

import difflib
import importlib.metadata
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import gymnax
import jax
import jax.numpy as jnp

from pgjax.algo.imports import import_object
from pgjax.algo.spaces import action_codec, observation_codec, space_kind  # noqa: F401 (space_kind: its home was here)

# Returns at which an environment counts as solved (Gym's `reward_threshold`),
# judged on the mean return of the last 100 training episodes. Gym gives none
# for Pendulum-v1; MinAtar and bsuite define none.
SOLVE_THRESHOLDS: dict[str, float] = {
    "CartPole-v1": 475.0,
    "Acrobot-v1": -100.0,
    "MountainCar-v0": -110.0,
    "MountainCarContinuous-v0": 90.0,
}

ActionKind = Literal["discrete", "continuous", "multi_discrete"]

# Environments whose observations are 0/1 maps (gymnax builds them from booleans):
# rollouts store them as uint8, a quarter of float32's memory and bandwidth.
BINARY_OBSERVATIONS = frozenset({
    "Asterix-MinAtar", "Breakout-MinAtar", "Freeway-MinAtar", "Seaquest-MinAtar", "SpaceInvaders-MinAtar",
    "Catch-bsuite", "DeepSea-bsuite",
})

# The methods and attributes of gymnax's Environment API that pgjax calls.
REQUIRED_API = ("reset", "step_env", "is_truncated", "observation_space", "action_space")


class EnvSpec(NamedTuple):
    """An environment with what the trainer needs to know about it.

    Attributes:
      env: the environment object (gymnax's `Environment` API).
      params: its EnvParams, passed to every call.
      obs_shape: one observation's shape, e.g. (4,) or (10, 10, 4).
      num_actions: A, the number of actions (Discrete) or action dimensions (Box), or the
        sum of a MultiDiscrete's sizes (the logits the policy outputs).
      max_steps: the episode step limit, in env steps; reaching it is a truncation.
      solve_threshold: the mean return (of the last 100 training episodes) at
        which a run counts as solved; None if the environment defines none.
      action_kind: "discrete" (categorical policy), "continuous" (Gaussian) or
        "multi_discrete" (a categorical per entry of a MultiDiscrete).
      action_low, action_high: [A] bounds of a Box action space (None if Discrete).
      obs_dtype: the dtype rollouts store observations in: "float32", or
        "uint8" for 0/1 maps (`BINARY_OBSERVATIONS`), one-hots and 0..255 images.
      name: what names the environment in messages: the gymnax id or
        "package.module:factory" string it was made from, else its `name`.
      obs_scale: what the network multiplies its float32 input by: 1/255 for uint8 0..255
        images (stored as uint8), else 1.0 (`pgjax.algo.spaces.ObsCodec`).
      encode_obs: one raw observation (as reset and step_env return it) -> array [*obs_shape]
        of obs_dtype: one-hot for Discrete, one float32 vector for Dict and Tuple; None for a
        Box, whose observations are served as they are (`pgjax.algo.spaces.encode_batch`).
      action_nvec: [D] sizes of a MultiDiscrete action space (action_kind "multi_discrete",
        num_actions = sum(nvec) logits, actions int32 [D]); None otherwise.
    """

    env: Any  # gymnax.environments.environment.Environment or an object with its API
    params: Any  # its EnvParams
    obs_shape: tuple[int, ...]
    num_actions: int
    max_steps: int
    solve_threshold: float | None
    action_kind: ActionKind = "discrete"
    action_low: tuple[float, ...] | None = None
    action_high: tuple[float, ...] | None = None
    obs_dtype: str = "float32"
    name: str = ""
    obs_scale: float = 1.0
    encode_obs: Callable[[Any], jax.Array] | None = None
    action_nvec: tuple[int, ...] | None = None


def _check_step_api() -> None:
    """Fail loudly on gymnax releases whose `step` predates the 1.0 6-tuple."""
    installed = importlib.metadata.version("gymnax")
    if int(installed.split(".")[0]) < 1:
        raise ImportError(
            f"gymnax {installed} has the pre-1.0 step API (obs, state, reward, done, info); "
            "pgjax needs gymnax>=1.0 (obs, state, reward, terminated, truncated, info): "
            "pip install 'gymnax>=1.0'"
        )


def _from_factory(path: str) -> Any:
    """Call the factory "package.module:factory" names, with no arguments; an environment
    object found there (not a class or function) is taken as it is."""
    factory = import_object(path, "environment factory")
    if all(hasattr(factory, name) for name in REQUIRED_API) and not isinstance(factory, type):
        return factory
    if not callable(factory):
        raise ValueError(
            f"'{path}' names an object of type {type(factory).__name__}, not a factory: give a function (or "
            "class) that takes no arguments and returns an environment or an (environment, env_params) pair"
        )
    try:
        return factory()
    except Exception as error:
        raise ValueError(f"calling the environment factory '{path}' failed: {type(error).__name__}: {error}") from error
    except BaseException as error:  # sys.exit or KeyboardInterrupt inside the factory: not pgjax's own exit or stop
        raise ValueError(f"calling the environment factory '{path}' failed: {_escaped(error)}") from None


def _escaped(error: BaseException) -> str:
    """What a factory's SystemExit or KeyboardInterrupt (or other BaseException) says, in words."""
    if isinstance(error, SystemExit):
        return f"it ended the process (sys.exit({error.code!r})); a factory must return, not exit"
    if isinstance(error, KeyboardInterrupt):
        return "it raised KeyboardInterrupt"
    return f"{type(error).__name__}: {error}"


def _split_env_params(made: Any, source: str) -> tuple[Any, Any]:
    """(env, params) from an environment or an (environment, env_params) pair; params from
    `env.default_params` when not given. `source` begins the messages, e.g. "make_env was given"."""
    if isinstance(made, tuple):
        if len(made) != 2:
            raise ValueError(
                f"{source} a tuple of {len(made)} items; give an environment or an (environment, env_params) pair"
            )
        env, params = made
    else:
        env, params = made, None
    missing = [attr for attr in REQUIRED_API if not callable(getattr(env, attr, None))]
    if params is None and not hasattr(env, "default_params"):
        missing.append("default_params")
    if missing:
        raise ValueError(
            f"{source} an object of type {type(env).__name__}, which lacks {', '.join(missing)} of gymnax's "
            "Environment API: subclass gymnax.environments.environment.Environment and define step_env, reset_env, "
            "observation_space and action_space"
        )
    return env, (env.default_params if params is None else params)


def _max_steps(params: Any, name: str) -> int:
    limit = getattr(params, "max_steps_in_episode", None)
    if limit is None:
        raise ValueError(
            f"{name}'s env params ({type(params).__name__}) have no max_steps_in_episode: give them that field, "
            "the most steps an episode lasts (gymnax's EnvParams has it)"
        )
    limit = int(limit)
    if limit < 1:
        raise ValueError(f"{name}'s max_steps_in_episode must be >= 1, got {limit}")
    return limit


def _describe(env: Any, params: Any, name: str, solve_threshold: float | None, obs_dtype: str) -> EnvSpec:
    """The EnvSpec of an environment, checking its spaces are ones pgjax serves (`pgjax.algo.spaces`).

    `obs_dtype` "uint8" (0/1 maps) overrides the codec's "float32"; Dict and Tuple observations stay float32.
    """
    obs = observation_codec(env.observation_space(params), name)
    actions = action_codec(env.action_space(params), name)
    stored = "uint8" if obs_dtype == "uint8" and obs.encode is None else obs.dtype
    return EnvSpec(env=env, params=params, obs_shape=obs.shape, num_actions=actions.num_actions,
                   max_steps=_max_steps(params, name), solve_threshold=solve_threshold, action_kind=actions.kind,
                   action_low=actions.low, action_high=actions.high, obs_dtype=stored, name=name,
                   obs_scale=obs.scale, encode_obs=obs.encode, action_nvec=actions.nvec)


def _shape(x: Any) -> Any:
    return getattr(x, "shape", type(x).__name__)


def _check_transitions(spec: EnvSpec) -> None:
    """Trace (compute nothing) reset, step_env and is_truncated; check they give what the spaces say."""
    env, params, name = spec.env, spec.params, spec.name
    if spec.action_kind == "discrete":
        action = jax.ShapeDtypeStruct((), jnp.int32)
    else:
        action = jax.ShapeDtypeStruct((spec.num_actions,), jnp.float32)

    def transitions(action):
        key = jax.random.key(0)
        obs, state = env.reset(key, params)
        step = env.step_env(key, state, action, params)
        if not isinstance(step, tuple) or len(step) != 5:
            return obs, None, None
        next_obs, next_state, reward, terminated, _ = step  # info may hold what eval_shape cannot return
        return obs, (next_obs, reward, terminated), env.is_truncated(next_state, params)

    try:
        reset_obs, step, truncated = jax.eval_shape(transitions, action)
    except Exception as error:
        message = (str(error).strip().splitlines() or [""])[0]
        raise ValueError(
            f"{name}: tracing reset, step_env and is_truncated failed: {type(error).__name__}: {message}"
        ) from error
    if truncated is None:
        raise ValueError(f"{name}'s step_env must return (obs, state, reward, terminated, info)")
    step_obs, reward, terminated = step
    for what, obs in (("reset", reset_obs), ("step_env", step_obs)):
        if not hasattr(obs, "shape") or tuple(obs.shape) != spec.obs_shape:
            raise ValueError(
                f"{name}'s {what} returns observations of shape {_shape(obs)}; its observation_space says "
                f"{spec.obs_shape}"
            )
    for what, value in (("step_env's reward", reward), ("step_env's terminated", terminated),
                        ("is_truncated", truncated)):
        if _shape(value) != ():
            raise ValueError(f"{name}'s {what} must be a scalar (shape ()), got shape {_shape(value)}")


def make_env(env: Any) -> EnvSpec:
    """Describe an environment pgjax can serve; build it when named.

    Args:
      env: one of
        * a gymnax id, e.g. "CartPole-v1";
        * "package.module:factory": the module is imported and `factory()` called
          with no arguments; it returns an environment, or an (environment,
          env_params) pair (a class works as the factory; an environment object
          stored there is taken as it is);
        * an environment object with gymnax's `Environment` API (params from its
          `default_params`), or an (environment, env_params) pair;
        * an `EnvSpec`, returned as it is.

    Returns:
      The EnvSpec: spaces, step limit, solve threshold (see the module's
      docstring for where a custom environment's come from). A custom
      environment's reset, step_env and is_truncated are traced once (nothing
      computed) to check their shapes against its spaces.

    Raises:
      ValueError: one line saying what is wrong: an unknown gymnax id (close
        matches named), an environment gymnax cannot build here, a module that
        cannot be imported, a missing attribute, an object lacking the API's
        methods, no `max_steps_in_episode`, shapes that disagree with the
        spaces, or a space pgjax cannot serve.
    """
    if isinstance(env, EnvSpec):
        return env
    _check_step_api()
    if isinstance(env, str) and ":" not in env:
        return _gymnax_env(env)
    if isinstance(env, str):
        name = env
        env, params = _split_env_params(_from_factory(name), f"the environment factory '{name}' returned")
    else:
        env, params = _split_env_params(env, "make_env was given")
        name = str(getattr(env, "name", "")) or type(env).__name__
    known = str(getattr(env, "name", ""))
    threshold = getattr(env, "solve_threshold", SOLVE_THRESHOLDS.get(known))
    binary = getattr(env, "binary_observations", known in BINARY_OBSERVATIONS)
    spec = _describe(env, params, name, None if threshold is None else float(threshold),
                     "uint8" if binary else "float32")
    _check_transitions(spec)
    return spec


def _gymnax_env(env_id: str) -> EnvSpec:
    """The EnvSpec of a gymnax id (`gymnax.registered_envs`)."""
    if env_id not in gymnax.registered_envs:
        close = difflib.get_close_matches(env_id, gymnax.registered_envs, n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(
            f"unknown environment '{env_id}'{hint} (a gymnax id, or package.module:factory for your own)"
        )
    try:
        env, params = gymnax.make(env_id)
    except Exception as error:  # e.g. MNISTBandit-bsuite downloads its data set when built
        raise ValueError(f"gymnax cannot build {env_id} here: {type(error).__name__}: {error}") from None
    binary = env_id in BINARY_OBSERVATIONS
    return _describe(env, params, env_id, SOLVE_THRESHOLDS.get(env_id), "uint8" if binary else "float32")
