"""Environments: a gymnax id, a factory named "package.module:factory", or any object with gymnax's shape.

pgjax serves an environment whose observations are one array (a gymnax `Box`:
a vector for the MLP, an image [H, W, C] or [H, W] for the CNN or flattened for
the MLP) and whose actions are `Discrete` (categorical policy) or a bounded
`Box` vector (Gaussian policy). Anything else gets a ValueError that names what
is unsupported.

What pgjax calls on an environment (reset, step or step_env, the spaces,
params or none) is `pgjax.algo.env_api`'s contract: wrappers and other
packages' environments serve without an adapter. `make_env` describes one
(`EnvSpec`); what the trainer needs besides comes from:

* `max_steps`: the steps after which pgjax cuts an episode off, also the length
  of the rollout buffers: `max_episode_steps` (`--max-episode-steps`) where
  given and sooner, else the environment's own limit (`STEP_LIMIT_NAMES`, in
  its params or on it: gymnax's `params.max_steps_in_episode`, Craftax's
  `max_timesteps`, ...). One of the two is required.
* `solve_threshold`: the environment's attribute `solve_threshold` (a return,
  or None); else gymnax's threshold for its `name` where pgjax knows one
  (`SOLVE_THRESHOLDS`); else None (no run is judged solved).
* `obs_dtype`: "uint8" if the environment's attribute `binary_observations` is
  True (observations are 0/1 maps, stored in a quarter of the memory), or its
  `name` is in `BINARY_OBSERVATIONS`; else "float32".
* `route`: how a step is taken (`pgjax.algo.env_api.choose_route`).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from typing import Any, Literal, NamedTuple

import gymnax
import jax
import numpy as np

from pgjax.algo import env_api, spaces
from pgjax.algo.env_factory import call_factory
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

# Where an environment's own step limit is looked for, in this order: fields of its params, then attributes
# of the environment (gymnax's name first; Craftax's params call it max_timesteps).
STEP_LIMIT_NAMES = ("max_steps_in_episode", "max_timesteps", "max_episode_steps", "max_steps")


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
      route: how a step is taken (`pgjax.algo.env_api.ROUTES`): "step" (the
        environment's own, wrappers and all), or "step_env"/"step_env+is_truncated".
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
    route: str = "step"
    obs_scale: float = 1.0
    encode_obs: Callable[[Any], jax.Array] | None = None
    action_nvec: tuple[int, ...] | None = None


def _check_step_api() -> None:
    """Fail loudly on an install that lacks what pgjax uses: gymnax's 1.0 step API (a 6-tuple, `is_truncated`),
    checked by behaviour, not by version number, and the JAX, Flax and optax features pgjax calls
    (`pgjax.algo.compat.check_installed`: once per process; raises its one-line `BrokenInstall`, an ImportError)."""
    from pgjax.algo.compat import check_installed

    check_installed()


def _split_env_params(made: Any, source: str) -> tuple[Any, Any]:
    """(env, params) from an environment or an (environment, env_params) pair; params from
    `env.default_params` when not given, else None. `source` begins the messages, e.g. "make_env was given"."""
    if isinstance(made, tuple):
        if len(made) != 2:
            raise ValueError(
                f"{source} a tuple of {len(made)} items; give an environment or an (environment, env_params) pair"
            )
        env, params = made
    else:
        env, params = made, None
    missing = env_api.missing_calls(env)
    if missing:
        raise ValueError(
            f"{source} an object of type {type(env).__name__}, which lacks {', '.join(missing)}: an environment "
            "has gymnax's shape (reset, step, observation_space, action_space; see pgjax.algo.env_api)"
        )
    return env, (getattr(env, "default_params", None) if params is None else params)


def _own_step_limit(env: Any, params: Any) -> tuple[int, str] | None:
    """(the environment's own step limit, where it was found), or None where it declares none (`STEP_LIMIT_NAMES`)."""
    for owner, where in ((params, "params"), (env, "environment")):
        for field in STEP_LIMIT_NAMES:
            value = getattr(owner, field, None) if owner is not None else None
            if value is not None and np.ndim(value) == 0 and not isinstance(value, bool | str):
                try:
                    return int(value), f"{where}.{field}"
                except (TypeError, ValueError):
                    continue
    return None


def _max_steps(env: Any, params: Any, name: str, cap: int = 0) -> int:
    """The steps after which pgjax cuts an episode off: `cap` (--max-episode-steps) where given and lower, else the
    environment's own limit (`_own_step_limit`).

    Raises:
      ValueError: no limit found and no cap given, or a limit below 1.
    """
    if cap < 0:
        raise ValueError(f"--max-episode-steps must be >= 1 (0: the environment's own limit), got {cap}")
    own = _own_step_limit(env, params)
    if own is None and cap == 0:
        raise ValueError(
            f"{name} declares no step limit (none of {', '.join(STEP_LIMIT_NAMES)} in its params or on it): "
            "give --max-episode-steps N (make_env(..., max_episode_steps=N)), the most steps an episode lasts"
        )
    if own is not None and own[0] < 1:
        raise ValueError(f"{name}'s {own[1]} must be >= 1, got {own[0]}; or give --max-episode-steps N")
    return min(cap, own[0]) if cap and own is not None else (cap or own[0])


def _space(env: Any, params: Any, name: str, which: str) -> Any:
    """`env.<which>(params)`; a failure is one line naming the call."""
    try:
        return getattr(env, which)(params)
    except Exception as error:
        raise ValueError(f"{name}: {which} failed: {env_api.error_line(error)}") from error


def _describe(env: Any, params: Any, name: str, solve_threshold: float | None, obs_dtype: str,
              max_episode_steps: int = 0) -> EnvSpec:
    """The EnvSpec of an environment, checking its spaces are ones pgjax serves (`pgjax.algo.spaces`).

    `obs_dtype` "uint8" (0/1 maps) overrides the codec's "float32"; Dict and Tuple observations stay float32.
    """
    obs = observation_codec(_space(env, params, name, "observation_space"), name)
    actions = action_codec(_space(env, params, name, "action_space"), name)
    stored = "uint8" if obs_dtype == "uint8" and obs.encode is None else obs.dtype
    return EnvSpec(env=env, params=params, obs_shape=obs.shape, num_actions=actions.num_actions,
                   max_steps=_max_steps(env, params, name, max_episode_steps), solve_threshold=solve_threshold,
                   action_kind=actions.kind, action_low=actions.low, action_high=actions.high, obs_dtype=stored,
                   name=name, obs_scale=obs.scale, encode_obs=obs.encode, action_nvec=actions.nvec)


def _shape(x: Any) -> Any:
    return getattr(x, "shape", type(x).__name__)


def _check_transitions(spec: EnvSpec) -> EnvSpec:
    """Choose the route of the steps (`pgjax.algo.env_api.choose_route`, tracing reset and step, computing
    nothing) and check they give what the spaces say; returns `spec` with its route."""
    name = spec.name
    action = spaces.action_struct(spec)
    try:
        route, (reset_obs, _), (step_obs, _, reward, terminated, truncated) = env_api.choose_route(
            spec.env, spec.params, action, name)
    except env_api.ContractError as error:
        raise ValueError(str(error)) from error
    call = "step" if route == "step" else "step_env"
    for what, raw in (("reset", reset_obs), (call, step_obs)):
        obs = spaces.encoded_struct(spec, raw)
        if not hasattr(obs, "shape") or tuple(obs.shape) != spec.obs_shape:
            raise ValueError(
                f"{name}'s {what} returns observations of shape {_shape(obs)}; its observation_space says "
                f"{spec.obs_shape}"
            )
    for what, value in (("reward", reward), ("terminated", terminated), ("truncated", truncated)):
        if _shape(value) != ():
            raise ValueError(f"{name}'s {call} must give a scalar {what} (shape ()), got shape {_shape(value)}")
    return spec._replace(route=route)


def make_env(env: Any, *, max_episode_steps: int = 0, env_kwargs: Sequence[str] = ()) -> EnvSpec:
    """Describe an environment pgjax can serve; build it when named.

    Args:
      env: one of
        * a gymnax id, e.g. "CartPole-v1";
        * "package.module:factory": the module is imported and `factory(**kwargs)`
          called (`env_kwargs`); it returns an environment, or an (environment,
          env_params) pair (a class works as the factory; an environment object
          stored there is taken as it is);
        * an object with gymnax's shape (`pgjax.algo.env_api`: wrappers and other
          packages' environments too; params from its `default_params`), or an
          (environment, env_params) pair;
        * an `EnvSpec`, returned as it is.
      max_episode_steps: cut every episode off after this many steps (a truncation)
        where that is sooner than the environment's own limit; 0 keeps the
        environment's limit, and is an error where it declares none.
      env_kwargs: "key=value" arguments of the factory, typed by its signature
        (`pgjax.algo.env_factory`); only with a "package.module:factory" string.

    Returns:
      The EnvSpec: spaces, step limit, solve threshold, route (see the module's
      docstring for where a custom environment's come from). A custom
      environment's reset and step are traced once (nothing computed) to choose
      how it is stepped and to check their shapes against its spaces.

    Raises:
      ValueError: one line saying what is wrong: an unknown gymnax id (close
        matches named), an environment gymnax cannot build here, a module that
        cannot be imported, factory arguments that do not fit, a missing
        attribute, an object lacking the contract's calls, no step limit, a
        call that fails when traced (named), shapes that disagree with the
        spaces, or a space pgjax cannot serve.
    """
    if isinstance(env, EnvSpec):
        return env
    _check_step_api()
    if env_kwargs and not (isinstance(env, str) and ":" in env):
        raise ValueError(f"--env-kwargs {' '.join(env_kwargs)} needs --env package.module:factory, "
                         f"not {env if isinstance(env, str) else type(env).__name__}")
    if isinstance(env, str) and ":" not in env:
        return _gymnax_env(env, max_episode_steps)
    if isinstance(env, str):
        name = env
        made = call_factory(name, env_kwargs)
        env, params = _split_env_params(made, f"the environment factory '{name}' returned")
    else:
        env, params = _split_env_params(env, "make_env was given")
        name = str(getattr(env, "name", "")) or type(env).__name__
    known = str(getattr(env, "name", ""))
    threshold = getattr(env, "solve_threshold", SOLVE_THRESHOLDS.get(known))
    binary = getattr(env, "binary_observations", known in BINARY_OBSERVATIONS)
    spec = _describe(env, params, name, None if threshold is None else float(threshold),
                     "uint8" if binary else "float32", max_episode_steps)
    return _check_transitions(spec)


def env_for(static: Any) -> EnvSpec:
    """`make_env` of a `pgjax.algo.config.StaticConfig`'s env, step cap and factory arguments."""
    return make_env(static.env, max_episode_steps=getattr(static, "max_episode_steps", 0),
                    env_kwargs=getattr(static, "env_kwargs", ()))


def _gymnax_env(env_id: str, max_episode_steps: int = 0) -> EnvSpec:
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
    return _describe(env, params, env_id, SOLVE_THRESHOLDS.get(env_id), "uint8" if binary else "float32",
                     max_episode_steps)
