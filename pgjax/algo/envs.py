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
from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

import gymnax
import jax
import jax.numpy as jnp
import numpy as np

from pgjax.algo import env_api
from pgjax.algo.env_factory import call_factory

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

# Where an environment's own step limit is looked for, in this order: fields of its params, then attributes
# of the environment (gymnax's name first; Craftax's params call it max_timesteps).
STEP_LIMIT_NAMES = ("max_steps_in_episode", "max_timesteps", "max_episode_steps", "max_steps")


class EnvSpec(NamedTuple):
    """An environment with what the trainer needs to know about it.

    Attributes:
      env: the environment object (gymnax's `Environment` API).
      params: its EnvParams, passed to every call.
      obs_shape: one observation's shape, e.g. (4,) or (10, 10, 4).
      num_actions: A, the number of actions (Discrete) or action dimensions (Box).
      max_steps: the episode step limit, in env steps; reaching it is a truncation.
      solve_threshold: the mean return (of the last 100 training episodes) at
        which a run counts as solved; None if the environment defines none.
      action_kind: "discrete" (categorical policy) or "continuous" (Gaussian).
      action_low, action_high: [A] bounds of a Box action space (None if Discrete).
      obs_dtype: the dtype rollouts store observations in: "float32", or
        "uint8" for 0/1 maps (`BINARY_OBSERVATIONS`).
      name: what names the environment in messages: the gymnax id or
        "package.module:factory" string it was made from, else its `name`.
      route: how a step is taken (`pgjax.algo.env_api.ROUTES`): "step" (the
        environment's own, wrappers and all), or "step_env"/"step_env+is_truncated".
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


def space_kind(space: Any) -> str | None:
    """What a space is, recognised by its attributes rather than its class.

    Packages built on gymnax (Craftax, say) declare spaces of their own classes with
    gymnax's attributes; they are served like gymnax's.

    Args:
      space: an observation or action space.

    Returns:
      "box" for one shaped like gymnax's `Box` (`shape`, `low` and `high`); "discrete" for one
      shaped like its `Discrete` (a scalar `n`, and no `low`/`high`); None for anything else,
      composite spaces (with `spaces`, like `Tuple` and `Dict`) and a vector of sizes (`nvec`) included.
    """
    if hasattr(space, "spaces") or hasattr(space, "nvec"):
        return None
    if all(hasattr(space, name) for name in ("shape", "low", "high")):
        return "box"
    n = getattr(space, "n", None)
    if n is not None and np.ndim(n) == 0:
        return "discrete"
    return None


def _describe(env: Any, params: Any, name: str, solve_threshold: float | None, obs_dtype: str,
              max_episode_steps: int = 0) -> EnvSpec:
    """The EnvSpec of an environment, checking its spaces are ones pgjax's policies serve."""
    obs_space = env.observation_space(params)
    if space_kind(obs_space) != "box":
        raise ValueError(
            f"{name} has a {type(obs_space).__name__} observation space; pgjax's networks take array "
            "observations: a space with shape, low and high, as gymnax's Box"
        )
    obs_shape = tuple(int(n) for n in obs_space.shape)
    if not 1 <= len(obs_shape) <= 3:
        raise ValueError(
            f"{name} has observations of shape {obs_shape}; pgjax's networks take a vector or an image "
            "[H, W] or [H, W, C]"
        )
    if 0 in obs_shape:
        raise ValueError(f"{name} has observations of shape {obs_shape}, which hold no number; pgjax's networks "
                         "need at least one (every size >= 1)")
    action_space = env.action_space(params)
    common = dict(env=env, params=params, obs_shape=obs_shape,
                  max_steps=_max_steps(env, params, name, max_episode_steps),
                  solve_threshold=solve_threshold, obs_dtype=obs_dtype, name=name)
    if space_kind(action_space) == "discrete":
        if int(action_space.n) < 1:
            raise ValueError(f"{name} has a Discrete({int(action_space.n)}) action space: a policy needs at least "
                             "one action to choose (n >= 1)")
        return EnvSpec(num_actions=int(action_space.n), action_kind="discrete", **common)
    if space_kind(action_space) == "box":
        shape = tuple(int(n) for n in action_space.shape)
        low = np.broadcast_to(np.asarray(action_space.low, np.float64), shape).reshape(-1)
        high = np.broadcast_to(np.asarray(action_space.high, np.float64), shape).reshape(-1)
        if len(shape) != 1:
            raise ValueError(
                f"{name} has a Box action space of shape {shape}; pgjax's Gaussian policy takes a vector of actions"
            )
        if shape[0] < 1:
            raise ValueError(f"{name} has a Box action space of shape {shape}: a Gaussian policy needs at least one "
                             "action dimension")
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and np.all(low < high)):
            raise ValueError(
                f"{name} has an unbounded Box action space (low {low}, high {high}); pgjax's Gaussian policy "
                "clips or squashes its actions to finite bounds"
            )
        return EnvSpec(num_actions=shape[0], action_kind="continuous", action_low=tuple(low.tolist()),
                       action_high=tuple(high.tolist()), **common)
    raise ValueError(
        f"{name} has a {type(action_space).__name__} action space; pgjax's policies take a discrete one "
        "(a scalar n, as gymnax's Discrete: categorical) or a bounded vector (shape, low and high, as its Box: "
        "Gaussian)"
    )


def _shape(x: Any) -> Any:
    return getattr(x, "shape", type(x).__name__)


def _check_transitions(spec: EnvSpec) -> EnvSpec:
    """Choose the route of the steps (`pgjax.algo.env_api.choose_route`, tracing reset and step, computing
    nothing) and check they give what the spaces say; returns `spec` with its route."""
    name = spec.name
    if spec.action_kind == "discrete":
        action = jax.ShapeDtypeStruct((), jnp.int32)
    else:
        action = jax.ShapeDtypeStruct((spec.num_actions,), jnp.float32)
    try:
        route, (reset_obs, _), (step_obs, _, reward, terminated, truncated) = env_api.choose_route(
            spec.env, spec.params, action, name)
    except env_api.ContractError as error:
        raise ValueError(str(error)) from error
    call = "step" if route == "step" else "step_env"
    for what, obs in (("reset", reset_obs), (call, step_obs)):
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
