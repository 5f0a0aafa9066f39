"""Environments as pgjax sees them: a gymnax id, a suite's task "SUITE/NAME" (`pgjax.algo.suites`), a factory
"package.module:factory", or any object with gymnax's shape; its spaces, its step limit and how one step is taken.

pgjax serves an environment whose observations are one array (a gymnax `Box`:
a vector for the MLP, an image [H, W, C] or [H, W] for the CNN or flattened for
the MLP) and whose actions are `Discrete` (categorical policy) or a bounded
`Box` vector (Gaussian policy). Anything else gets a ValueError that names what
is unsupported.

What pgjax calls on an environment (reset, step or step_env, the spaces,
params or none) is `pgjax.algo.envs`'s contract: wrappers and other
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
* `route`: how a step is taken (`choose_route`).

## The contract

An environment serves pgjax when it has gymnax's shape, whatever its classes:

* reset: `reset(key, params) -> (obs, state)`, or else `reset_env(key, params)`;
* step: `step(key, state, action, params)` giving gymnax 1.0's six values
  `(obs, state, reward, terminated, truncated, info)` or the five
  `(obs, state, reward, done, info)` of packages built on older gymnax (Craftax),
  whose `done` is taken as a termination; or else, without `step`,
  `step_env(key, state, action, params)`, five values and no auto-reset;
* `observation_space(params)` and `action_space(params)`, recognised by their
  attributes (`space_kind`);
* params given with it, else its `default_params` (called where it is a method, as xminigrid's), else None
  (passed as it is).

pgjax counts the steps of its own rollout and cuts each episode off at the step
limit itself (`EnvSpec.max_steps`), so the environment needs no
`is_truncated`, `state.time` or `max_steps_in_episode` of its own.

Routes (`ROUTES`), the way one step is taken, chosen once by `choose_route`:

* "step": the environment's own `step`, so a wrapper's `step` (gymnax's
  `LogWrapper`, `FlattenObservationWrapper`, `StickyActionWrapper`, a reward
  scaling of one's own) is what trains. The auto-reset a step does when an
  episode ends is thrown away (pgjax ends episodes for good): the observation
  kept is `info["final_observation"]` where the step gives it (gymnax 1.0
  does), else the one returned. This is the plain path.
* "step_env" and "step_env+is_truncated": `step_env` with no reset (and the
  environment's own time limit, where `is_truncated` can be traced), for an
  object without `step`, or one whose inherited gymnax `step` cannot be traced
  (it reads `state.time`, which the state lacks).

`steps_directly(env)` says where "step_env+is_truncated" is the very step that
"step" takes, less its reset: an environment whose class keeps gymnax's own
`step` and `reset` (no wrapper, no override). There the fast path
`pgjax.algo.config.FastPaths.skip_auto_reset` takes it (`step_function`).

## Spaces

Spaces are recognised by their attributes, not their class (`space_kind`), so a
package's own look-alike classes serve like gymnax's.

Observations (`observation_codec`) become one array the network takes:

* a `Box` (shape, low, high) is served as it is: a vector for the MLP, an image
  [H, W] or [H, W, C] for the CNN (or flattened for the MLP). A uint8 Box of
  0..255 (camera images) is stored as uint8 and scaled by 1/255 inside the
  network (`ObsCodec.scale`), so the network sees [0, 1];
* a `Discrete(n)` observation (a state index, as FrozenLake's) becomes its
  one-hot uint8 [n]; a MultiDiscrete one (`nvec`) the one-hots of its entries,
  concatenated;
* a `Dict` or `Tuple` (a `spaces` attribute: a dict, or a tuple or list, of
  subspaces) becomes one float32 vector: each leaf encoded as above (Box
  flattened, uint8 0..255 ones scaled by 1/255; Discrete one-hot), in the order
  `jax.tree` flattens them (a dict's keys sorted), concatenated.

A `Dict` holding an `action_mask` leaf (`MASK_KEY`: bool, True = legal, one per action or MultiDiscrete
logit) is a legal-action mask: the other leaves are encoded as above, and the mask's entries, as 0.0/1.0, end
the vector (`EnvSpec.mask_size`, `legal_actions`); the policy cuts them off before its network and masks its
logits with them (`pgjax.algo.policy.Masked`).

Actions (`action_codec`): `Discrete(n)` (categorical), a bounded 1-D `Box`
(Gaussian), or a MultiDiscrete vector of sizes `nvec` [D] (independent
categoricals, one per entry: `pgjax.algo.policy.multi_categorical`).

## Factories

`--env mypackage.envs:make --env-kwargs size=8 symbolic=true` calls
`make(size=8, symbolic=True)`: each "key=value" is converted to the type the
factory's signature gives the parameter (its annotation, else its default's
type): int, float, bool ("true"/"false", "1"/"0", "yes"/"no"), str, or None
("none"). A parameter with neither is given the value as a number where it
reads as one, else as a string. The pairs are part of the static
configuration (`StaticConfig.env_kwargs`), so config.json records them and
`--resume`, `pgjax.evaluate` and `pgjax.plot` call the factory the same way.
"""

from __future__ import annotations

import difflib
import inspect
import math
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pgjax.algo.imports import import_object
from pgjax.algo.suites import make_suite_env, split_suite_name

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

# The observation leaf that is a legal-action mask: bool [A], True = legal (jumanji's and pgx's convention). It is
# not fed to the network; the policy gives illegal actions no probability (`pgjax.algo.policy.masked_logits`).
MASK_KEY = "action_mask"

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
      route: how a step is taken (`ROUTES`): "step" (the
        environment's own, wrappers and all), or "step_env"/"step_env+is_truncated".
      obs_scale: what the network multiplies its float32 input by: 1/255 for uint8 0..255
        images (stored as uint8), else 1.0 (`ObsCodec`).
      encode_obs: one raw observation (as reset and step_env return it) -> array [*obs_shape]
        of obs_dtype: one-hot for Discrete, one float32 vector for Dict and Tuple; None for a
        Box, whose observations are served as they are (`encode_batch`).
      action_nvec: [D] sizes of a MultiDiscrete action space (action_kind "multi_discrete",
        num_actions = sum(nvec) logits, actions int32 [D]); None otherwise.
      mask_size: the entries of the legal-action mask that end each encoded observation (= num_actions), 0
        where the environment gives none (`MASK_KEY`, `legal_actions`).
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
    mask_size: int = 0


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
    missing = missing_calls(env)
    if missing:
        raise ValueError(
            f"{source} an object of type {type(env).__name__}, which lacks {', '.join(missing)}: an environment "
            "has gymnax's shape (reset, step, observation_space, action_space; see pgjax.algo.envs)"
        )
    if params is None:
        params = getattr(env, "default_params", None)
        if inspect.ismethod(params) or inspect.isfunction(params):  # xminigrid's is a method: call it
            try:
                params = params()
            except Exception as error:
                raise ValueError(f"{source} an environment whose default_params() failed: {error_line(error)}; "
                                 "give an (environment, env_params) pair") from error
    return env, params


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
        raise ValueError(f"{name}: {which} failed: {error_line(error)}") from error


def _describe(env: Any, params: Any, name: str, solve_threshold: float | None, obs_dtype: str,
              max_episode_steps: int = 0) -> EnvSpec:
    """The EnvSpec of an environment, checking its spaces are ones pgjax serves (`pgjax.algo.envs`).

    `obs_dtype` "uint8" (0/1 maps) overrides the codec's "float32"; Dict and Tuple observations stay float32.
    """
    obs = observation_codec(_space(env, params, name, "observation_space"), name)
    actions = action_codec(_space(env, params, name, "action_space"), name)
    stored = "uint8" if obs_dtype == "uint8" and obs.encode is None else obs.dtype
    if obs.mask_size and actions.kind == "continuous":
        raise ValueError(f"{name}'s observations hold an {MASK_KEY}, but its actions are a Box: a legal-action "
                         "mask serves Discrete and MultiDiscrete actions")
    if obs.mask_size and obs.mask_size != actions.num_actions:
        raise ValueError(f"{name}'s {MASK_KEY} has {obs.mask_size} entries, its action space "
                         f"{actions.num_actions} {'logits' if actions.kind == 'multi_discrete' else 'actions'}: "
                         "a mask holds one bool per action (True = legal)")
    return EnvSpec(env=env, params=params, obs_shape=obs.shape, num_actions=actions.num_actions,
                   max_steps=_max_steps(env, params, name, max_episode_steps), solve_threshold=solve_threshold,
                   action_kind=actions.kind, action_low=actions.low, action_high=actions.high, obs_dtype=stored,
                   name=name, obs_scale=obs.scale, encode_obs=obs.encode, action_nvec=actions.nvec,
                   mask_size=obs.mask_size)


def _shape(x: Any) -> Any:
    return getattr(x, "shape", type(x).__name__)


def _check_transitions(spec: EnvSpec) -> EnvSpec:
    """Choose the route of the steps (`choose_route`, tracing reset and step, computing
    nothing) and check they give what the spaces say; returns `spec` with its route."""
    name = spec.name
    action = action_struct(spec)
    try:
        route, (reset_obs, _), (step_obs, _, reward, terminated, truncated) = choose_route(
            spec.env, spec.params, action, name)
    except ContractError as error:
        raise ValueError(str(error)) from error
    call = "step" if route == "step" else "step_env"
    for what, raw in (("reset", reset_obs), (call, step_obs)):
        obs = encoded_struct(spec, raw)
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
    """Describe an environment pgjax can serve; build it when named (the forms: the module's docstring).

    Args:
      env: a gymnax id ("CartPole-v1"), "package.module:factory", an object with
        gymnax's shape or an (environment, env_params) pair, or an `EnvSpec` (returned as it is).
      max_episode_steps: cut episodes off after this many steps (a truncation) where
        sooner than the environment's own limit; 0: its own limit (required then).
      env_kwargs: "key=value" arguments of a "package.module:factory", typed by its signature.

    Returns:
      The EnvSpec. A custom environment's reset and step are traced once (nothing
      computed) to choose its route and check their shapes against its spaces.

    Raises:
      ValueError: one line saying what is wrong (an unknown id with close matches,
        an import or factory call that fails, a missing call of the contract, no
        step limit, shapes that disagree with the spaces, a space pgjax cannot serve).
    """
    if isinstance(env, EnvSpec):
        return env
    suite = split_suite_name(env) if isinstance(env, str) else None
    if suite is not None and not all(suite):
        raise ValueError(f"--env {env!r} names no {'suite' if not suite[0] else 'task'}: give SUITE/NAME, e.g. "
                         "jumanji/Snake-v1 (pgjax.algo.suites.SUITES lists the suites)")
    if suite is not None and suite[0] == "gymnax" and not env_kwargs:
        return _gymnax_env(suite[1], max_episode_steps)
    if env_kwargs and not (isinstance(env, str) and (":" in env or suite is not None)):
        raise ValueError(f"--env-kwargs {' '.join(env_kwargs)} needs --env package.module:factory or "
                         f"SUITE/NAME, not {env if isinstance(env, str) else type(env).__name__}")
    if isinstance(env, str) and ":" not in env and suite is None:
        return _gymnax_env(env, max_episode_steps)
    return _custom_env(env, max_episode_steps, env_kwargs)


def _custom_env(env: Any, max_episode_steps: int, env_kwargs: Sequence[str]) -> EnvSpec:
    """`make_env` of a "SUITE/NAME" or "package.module:factory" string, or an object with gymnax's shape (or
    a pair)."""
    suite = split_suite_name(env) if isinstance(env, str) else None
    if suite is not None:
        name = env
        env, params = _split_env_params(make_suite_env(*suite, env_kwargs), f"the suite adapter of '{name}' gave")
    elif isinstance(env, str):
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


def env_for(static: Any, env: Any = None) -> EnvSpec:
    """`make_env` of a `pgjax.algo.config.StaticConfig`'s env, step cap and factory arguments; with `env` (an
    object, a pair or a string, as `make_env` takes), that environment under the config's cap, and the config's
    factory arguments where `env` is a string."""
    cap = getattr(static, "max_episode_steps", 0)
    if env is None:
        return make_env(static.env, max_episode_steps=cap, env_kwargs=getattr(static, "env_kwargs", ()))
    return make_env(env, max_episode_steps=cap, env_kwargs=getattr(static, "env_kwargs", ()) if isinstance(env, str)
                    else ())


def _gymnax_env(env_id: str, max_episode_steps: int = 0) -> EnvSpec:
    """The EnvSpec of a gymnax id, its module alone imported (`pgjax.algo.suites.gymnax_builtins`)."""
    from pgjax.algo.suites.gymnax_builtins import make_environment, registered_ids

    known = registered_ids()
    if env_id not in known:
        close = difflib.get_close_matches(env_id, known, n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(
            f"unknown environment '{env_id}'{hint} (a gymnax id, or package.module:factory for your own)"
        )
    try:
        env, params = make_environment(env_id)
    except Exception as error:  # e.g. MNISTBandit-bsuite downloads its data set when built
        raise ValueError(f"gymnax cannot build {env_id} here: {type(error).__name__}: {error}") from None
    binary = env_id in BINARY_OBSERVATIONS
    return _describe(env, params, env_id, SOLVE_THRESHOLDS.get(env_id), "uint8" if binary else "float32",
                     max_episode_steps)


# ---- the contract: what pgjax calls on an environment, and the route of its step
ROUTES = ("step", "step_env+is_truncated", "step_env")

# (key, state, action, params) -> (obs, state, reward [], terminated [], truncated []): one environment's step
StepFn = Callable[[jax.Array, Any, jax.Array, Any], tuple]


class ContractError(ValueError):
    """An environment lacks what pgjax calls, or a call of it fails when traced (one line, naming the call)."""


def _from_gymnax_base(env: Any, name: str) -> bool:
    """Whether `type(env).<name>` is gymnax's `Environment.<name>` itself (a copy of gymnax's counts)."""
    method = getattr(type(env), name, None)
    return (getattr(method, "__qualname__", "") == f"Environment.{name}"
            and getattr(method, "__module__", "").startswith("gymnax"))


def _class_has(env: Any, name: str) -> bool:
    """Whether the class defines `name` (a wrapper's `__getattr__` forwarding to its inner env does not count)."""
    return callable(getattr(type(env), name, None))


def steps_directly(env: Any) -> bool:
    """Whether `step_env` then `is_truncated` is what `env.step` does, less its auto-reset.

    True for an environment whose class keeps gymnax's own `step` and `reset`
    (gymnax's environments, and subclasses that define `step_env` and
    `reset_env` only); False for wrappers and for classes with a `step` of their own.
    """
    return (_class_has(env, "step_env") and _from_gymnax_base(env, "step")
            and (_from_gymnax_base(env, "reset") or not _class_has(env, "reset")))


def missing_calls(env: Any) -> list[str]:
    """The calls of the contract `env` lacks, in words ("reset or reset_env", ...); [] when it has them all."""
    has = {name: callable(getattr(env, name, None))
           for name in ("reset", "reset_env", "step", "step_env", "observation_space", "action_space")}
    missing = [f"{a} or {b}" for a, b in (("reset", "reset_env"), ("step", "step_env")) if not (has[a] or has[b])]
    return missing + [name for name in ("observation_space", "action_space") if not has[name]]


def reset_function(env: Any) -> Callable[[jax.Array, Any], tuple]:
    """`(key, params) -> (obs, state)`: the environment's `reset`, else its `reset_env`."""
    return env.reset if callable(getattr(env, "reset", None)) else env.reset_env


def _five_or_six(out: Any, call: str) -> tuple:
    if not isinstance(out, tuple) or len(out) not in (5, 6):
        what = f"a tuple of {len(out)} values" if isinstance(out, tuple) else type(out).__name__
        raise ContractError(f"{call} returned {what}; give (obs, state, reward, terminated, truncated, info) "
                            "or (obs, state, reward, done, info)")
    return out


def step_function(env: Any, route: str, skip_auto_reset: bool = False) -> StepFn:
    """`step(key, state, action, params) -> (obs reached, never an auto-reset's; state, reward, terminated,
    truncated by the environment's own limit, else False)` by `route` (`ROUTES`; another: ValueError); with
    `skip_auto_reset`, "step_env+is_truncated" in place of "step" where that is the same step."""
    if route not in ROUTES:
        raise ValueError(f"unknown environment route {route!r}; one of {', '.join(ROUTES)}")
    if route == "step" and skip_auto_reset and steps_directly(env):
        route = "step_env+is_truncated"
    if route == "step":
        def step(key, state, action, params):
            out = _five_or_six(env.step(key, state, action, params), "step")
            obs, state, reward, terminated = out[:4]
            truncated = out[4] if len(out) == 6 else jnp.zeros((), bool)
            info = out[-1]
            final = info.get("final_observation") if isinstance(info, dict) else None
            return (obs if final is None else final), state, reward, terminated, truncated
        return step
    reads_time_limit = route == "step_env+is_truncated"

    def step_env(key, state, action, params):
        out = env.step_env(key, state, action, params)
        if not isinstance(out, tuple) or len(out) != 5:
            raise ContractError("step_env must return (obs, state, reward, terminated, info)")
        obs, state, reward, terminated, _ = out
        truncated = env.is_truncated(state, params) if reads_time_limit else jnp.zeros((), bool)
        return obs, state, reward, terminated, truncated
    return step_env


def error_line(error: BaseException) -> str:
    """An exception as one line: its type and the first line of its message, or "(no message)"."""
    message = next((line.strip() for line in str(error).splitlines() if line.strip()), "")
    return f"{type(error).__name__}: {message or '(no message)'}"


def _trace_step(env: Any, params: Any, route: str, state: Any, action: Any) -> tuple[Any, BaseException | None]:
    """(shapes of the route's (obs, state, reward, terminated, truncated), None), or (None, the error) if it fails."""
    try:
        return jax.eval_shape(lambda s, a: step_function(env, route)(jax.random.key(0), s, a, params),
                              state, action), None
    except Exception as error:
        return None, error


def choose_route(env: Any, params: Any, action: jax.ShapeDtypeStruct, name: str) -> tuple[str, Any, Any]:
    """The route (`ROUTES`) by which pgjax steps `env`, found by tracing (nothing is computed).

    "step" where the environment has `step` and it traces; else, for a class
    with `step_env` whose `step` is absent or gymnax's own (which reads
    `state.time`), "step_env+is_truncated" or "step_env".

    Args:
      env, params: the environment and what its calls are given.
      action: the shape and dtype of one action.
      name: names the environment in messages.

    Returns:
      (route, reset output, step output): the shapes (`jax.ShapeDtypeStruct`) of
      reset's (obs, state) and of the route's (obs, state, reward, terminated, truncated).

    Raises:
      ContractError: one line naming the call that failed (reset, step or
        step_env), with the exception's type and message.
    """
    try:
        reset_out = jax.eval_shape(lambda key: reset_function(env)(key, params), jax.random.key(0))
    except Exception as error:
        raise ContractError(f"{name}: reset failed when traced: {error_line(error)}") from error
    candidates = ["step"] if callable(getattr(env, "step", None)) else []
    if not candidates or steps_directly(env):
        candidates += ["step_env+is_truncated", "step_env"] if callable(getattr(env, "step_env", None)) else []
    errors = {}
    for route in candidates:
        step_out, error = _trace_step(env, params, route, reset_out[1], action)
        if error is None:
            return route, reset_out, step_out
        errors[route] = error
    if not errors:
        raise ContractError(f"{name} has no step or step_env")
    # Say what broke the contract, else what failed in the environment's own code: its step_env where the
    # step is gymnax's (which calls it), else its step.
    broken = [route for route, error in errors.items() if isinstance(error, ContractError)]
    route = (broken or ["step_env"] * ("step_env" in errors) or ["step"])[0]
    error = errors[route]
    call = "step" if route == "step" else "step_env"
    detail = str(error) if isinstance(error, ContractError) else error_line(error)
    raise ContractError(f"{name}: {call} failed when traced: {detail}") from error


# ---- spaces: observation and action codecs
Encode = Callable[[Any], jax.Array]


class ObsCodec(NamedTuple):
    """How one raw observation becomes what rollouts store and the network takes.

    Attributes:
      shape: the array shape the network sees per observation, e.g. (4,), (10, 10, 4), (n,).
      dtype: what rollouts store it in: "float32", or "uint8" (one-hots, 0..255 images).
      scale: the multiplier the network applies to its float32 input: 1.0, or 1/255 for uint8 images.
      encode: raw observation (an array; an int [] for Discrete; a dict or tuple pytree for Dict and
        Tuple) -> array [*shape] of `dtype`, pure and jittable; None where the raw observation
        already is that array.
      mask_size: the last entries of the encoded vector that are the legal-action mask (1 = legal), 0 for none.
    """

    shape: tuple[int, ...]
    dtype: str
    scale: float
    encode: Encode | None
    mask_size: int = 0


class ActionCodec(NamedTuple):
    """What the policy chooses for an action space.

    Attributes:
      kind: "discrete", "continuous" (Box) or "multi_discrete".
      num_actions: A, the actions (Discrete), action dimensions (Box), or sum(nvec) logits (MultiDiscrete).
      low, high: [A] bounds of a Box (None otherwise).
      nvec: [D] sizes of a MultiDiscrete (None otherwise).
    """

    kind: str
    num_actions: int
    low: tuple[float, ...] | None = None
    high: tuple[float, ...] | None = None
    nvec: tuple[int, ...] | None = None


IMAGE_SCALE = 1.0 / 255.0


def space_kind(space: Any) -> str | None:
    """What a space is, by its attributes: "dict" or "tuple" (`spaces`), "multi_discrete" (`nvec`), "box"
    (`shape`, `low`, `high`), "discrete" (a scalar `n`), else None."""
    children = getattr(space, "spaces", None)
    if children is not None:
        if isinstance(children, Mapping):
            return "dict"
        return "tuple" if isinstance(children, (tuple, list)) else None
    if hasattr(space, "nvec"):
        return "multi_discrete"
    if all(hasattr(space, name) for name in ("shape", "low", "high")):
        return "box"
    n = getattr(space, "n", None)
    if n is not None and np.ndim(n) == 0:
        return "discrete"
    return None


def is_image_bytes(space: Any) -> bool:
    """True for a uint8 Box of 0..255 (camera images): stored as uint8, scaled by 1/255 in the network.

    A 0/1 Box (MinAtar's maps, float32 or uint8) is not one: only high 255 everywhere is.
    """
    if space_kind(space) != "box" or np.dtype(getattr(space, "dtype", np.float32)) != np.uint8:
        return False
    return bool(np.all(np.asarray(space.low) == 0) and np.all(np.asarray(space.high) == 255))


def _nvec(space: Any, name: str, what: str) -> tuple[int, ...]:
    nvec = np.asarray(space.nvec)
    if nvec.ndim != 1 or nvec.size < 1 or np.any(nvec < 1):
        raise ValueError(f"{name} has a MultiDiscrete {what} space of sizes {nvec.tolist()}; pgjax takes a vector "
                         "of at least one size, each >= 1")
    return tuple(int(n) for n in nvec)


def _one_hots(nvec: tuple[int, ...], dtype: Any) -> Encode:
    """int [D] -> the one-hots of its entries concatenated, [sum(nvec)]."""
    return lambda x: jnp.concatenate([jax.nn.one_hot(x[i], n, dtype=dtype) for i, n in enumerate(nvec)])


def _leaf(space: Any, name: str) -> tuple[int, Encode]:
    """(size, raw leaf -> float32 [size]) of one part of a Dict or Tuple observation."""
    kind = space_kind(space)
    if kind == "box":
        size = math.prod(int(n) for n in space.shape)
        scale = IMAGE_SCALE if is_image_bytes(space) else 1.0
        if scale == 1.0:
            return size, lambda x: jnp.asarray(x, jnp.float32).reshape(size)
        return size, lambda x: jnp.asarray(x, jnp.float32).reshape(size) * scale
    if kind == "discrete":
        n = int(space.n)
        return n, lambda x: jax.nn.one_hot(x, n, dtype=jnp.float32).reshape(n)
    if kind == "multi_discrete":
        nvec = _nvec(space, name, "observation")
        return sum(nvec), _one_hots(nvec, jnp.float32)
    if kind in ("dict", "tuple"):
        keys = sorted(space.spaces) if kind == "dict" else range(len(space.spaces))
        parts = [(key, *_leaf(space.spaces[key], name)) for key in keys]

        def encode(x):
            def part(key):
                return x[key] if kind == "tuple" or isinstance(x, Mapping) else getattr(x, key)

            return jnp.concatenate([fn(part(key)) for key, _, fn in parts])

        return sum(size for _, size, _ in parts), encode
    raise ValueError(_refusal(space, name))


def _refusal(space: Any, name: str) -> str:
    return (f"{name} has a {type(space).__name__} observation space; pgjax's networks take a Box (shape, low and "
            "high), a Discrete (a scalar n: one-hot), a MultiDiscrete (nvec) or a Dict or Tuple of these")


def observation_codec(space: Any, name: str) -> ObsCodec:
    """The `ObsCodec` of an observation `space` (the module's docstring lists them); `name` names the
    environment in messages. Raises ValueError (one line): another space, a Box of other than 1 to 3 axes
    or with a size 0, a Discrete of n < 1."""
    kind = space_kind(space)
    if kind == "box":
        shape = tuple(int(n) for n in space.shape)
        if not 1 <= len(shape) <= 3:
            raise ValueError(f"{name} has observations of shape {shape}; pgjax's networks take a vector or an image "
                             "[H, W] or [H, W, C]")
        if 0 in shape:
            raise ValueError(f"{name} has observations of shape {shape}, which hold no number; pgjax's networks "
                             "need at least one (every size >= 1)")
        if is_image_bytes(space):
            return ObsCodec(shape, "uint8", IMAGE_SCALE, None)
        return ObsCodec(shape, "float32", 1.0, None)
    if kind == "discrete":
        n = int(space.n)
        if n < 1:
            raise ValueError(f"{name} has a Discrete({n}) observation space; pgjax one-hots it and needs n >= 1")
        return ObsCodec((n,), "uint8", 1.0, lambda x: jax.nn.one_hot(x, n, dtype=jnp.uint8).reshape(n))
    if kind == "multi_discrete":
        nvec = _nvec(space, name, "observation")
        return ObsCodec((sum(nvec),), "uint8", 1.0, _one_hots(nvec, jnp.uint8))
    if kind == "dict" and MASK_KEY in space.spaces:
        return _masked_codec(space, name)
    if kind in ("dict", "tuple"):
        size, encode = _leaf(space, name)
        if size < 1:
            raise ValueError(f"{name} has a {type(space).__name__} observation space that holds no number")
        return ObsCodec((size,), "float32", 1.0, encode)
    raise ValueError(_refusal(space, name))


class _Parts(NamedTuple):
    """A Dict space's other leaves (`spaces`, as `space_kind` reads a Dict), without its mask."""

    spaces: dict[str, Any]


def _masked_codec(space: Any, name: str) -> ObsCodec:
    """The codec of a Dict observation holding a legal-action mask (`MASK_KEY`): the other leaves encoded as a
    Dict's (one float32 vector [F]), then the mask's entries as 0.0/1.0, [F + M]."""
    mask_space = space.spaces[MASK_KEY]
    shape = getattr(mask_space, "shape", None)  # a Box of bools, or a MultiBinary (shape and n)
    if not isinstance(shape, tuple | list) or len(shape) < 1 or 0 in tuple(shape):
        raise ValueError(f"{name}'s {MASK_KEY} must be a Box of bools, one per action (True = legal); got a "
                         f"{type(mask_space).__name__} of shape {shape}")
    mask_size = math.prod(int(n) for n in mask_space.shape)
    others = _Parts({key: leaf for key, leaf in space.spaces.items() if key != MASK_KEY})
    size, encode_others = _leaf(others, name) if others.spaces else (0, None)
    if size < 1:
        raise ValueError(f"{name}'s observations hold only an {MASK_KEY}: the policy needs something to see")

    def encode(x):
        mask = x[MASK_KEY] if isinstance(x, Mapping) else getattr(x, MASK_KEY)
        return jnp.concatenate([encode_others(x), jnp.asarray(mask).reshape(mask_size).astype(jnp.float32)])

    return ObsCodec((size + mask_size,), "float32", 1.0, encode, mask_size)


def legal_actions(spec: Any, obs: jax.Array) -> jax.Array | None:
    """The legal-action mask that ends encoded observations: obs [..., F + M] -> bool [..., M] (True = legal),
    M = `spec.mask_size` = num_actions; None where the environment gives no mask."""
    size = getattr(spec, "mask_size", 0)
    return obs[..., obs.shape[-1] - size:] > 0.5 if size else None


def _box_actions(space: Any, name: str) -> ActionCodec:
    shape = tuple(int(n) for n in space.shape)
    low = np.broadcast_to(np.asarray(space.low, np.float64), shape).reshape(-1)
    high = np.broadcast_to(np.asarray(space.high, np.float64), shape).reshape(-1)
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
    return ActionCodec("continuous", shape[0], tuple(low.tolist()), tuple(high.tolist()))


def action_codec(space: Any, name: str) -> ActionCodec:
    """The `ActionCodec` of an action `space`: Discrete (n), a bounded 1-D Box or MultiDiscrete (nvec [D]).
    Raises ValueError (one line): another space, n < 1, a Box not a bounded non-empty vector, a bad nvec."""
    kind = space_kind(space)
    if kind == "discrete":
        if int(space.n) < 1:
            raise ValueError(f"{name} has a Discrete({int(space.n)}) action space: a policy needs at least "
                             "one action to choose (n >= 1)")
        return ActionCodec("discrete", int(space.n))
    if kind == "box":
        return _box_actions(space, name)
    if kind == "multi_discrete":
        nvec = _nvec(space, name, "action")
        return ActionCodec("multi_discrete", sum(nvec), nvec=nvec)
    raise ValueError(
        f"{name} has a {type(space).__name__} action space; pgjax's policies take a discrete one "
        "(a scalar n, as gymnax's Discrete: categorical), a bounded vector (shape, low and high, as its Box: "
        "Gaussian) or a MultiDiscrete (nvec: a categorical per entry)"
    )


def encode_batch(spec: Any) -> Callable[[Any], jax.Array]:
    """`spec.encode_obs` over a leading batch axis: raw observations [E, ...] (a pytree) -> [E, *obs_shape].

    The identity (the function returns its argument, adding nothing to a trace) where
    `spec.encode_obs` is None, as for every Box observation space.
    """
    if getattr(spec, "encode_obs", None) is None:
        return lambda obs: obs
    return jax.vmap(spec.encode_obs)


def action_struct(spec: Any) -> jax.ShapeDtypeStruct:
    """One action as the environment's step_env takes it, for tracing: int32 [] (Discrete),
    float32 [A] (Box), int32 [D] (MultiDiscrete)."""
    if spec.action_kind == "continuous":
        return jax.ShapeDtypeStruct((spec.num_actions,), jnp.float32)
    if spec.action_kind == "multi_discrete":
        return jax.ShapeDtypeStruct((len(spec.action_nvec),), jnp.int32)
    return jax.ShapeDtypeStruct((), jnp.int32)


def encoded_struct(spec: Any, obs: Any) -> Any:
    """What `spec.encode_obs` makes of one traced raw observation (a pytree of `jax.ShapeDtypeStruct`s, as
    `jax.eval_shape` of reset gives), for checking it against `spec.obs_shape`; `obs` itself where
    `encode_obs` is None. Raises what the encoding raises on a raw observation of the wrong structure."""
    return obs if getattr(spec, "encode_obs", None) is None else jax.eval_shape(spec.encode_obs, obs)


# ---- factories: "package.module:factory" called with typed keyword arguments
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def split_pairs(pairs: Sequence[str]) -> dict[str, str]:
    """{"key": "value"} from "key=value" strings.

    Raises:
      ValueError: a pair without "=", an empty or non-identifier key, or a key given twice.
    """
    kwargs: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = str(pair).partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ValueError(f"--env-kwargs takes key=value pairs (e.g. size=8), got {pair!r}")
        if key in kwargs:
            raise ValueError(f"--env-kwargs gives {key} twice; give it once")
        kwargs[key] = value
    return kwargs


def _base_type(kind: Any) -> tuple[Any, bool]:
    """(the type an annotation or type names, or None; whether it allows None): `int | None` -> (int, True)."""
    if isinstance(kind, str):  # a postponed annotation: "int", "int | None"
        names = [part.strip() for part in kind.split("|")]
        builtin = {"int": int, "float": float, "bool": bool, "str": str}
        return next((builtin[n] for n in names if n in builtin), None), "None" in names or "Optional" in kind
    args = typing.get_args(kind)
    if args and type(None) in args:
        others = [k for k in args if k is not type(None)]
        return (others[0] if len(others) == 1 else None), True
    return (kind if kind in (int, float, bool, str) else None), False


def _convert(value: str, kind: Any, key: str) -> Any:
    """`value` read as `kind` (a type or annotation; None: a number where it reads as one, else a string).

    Raises:
      ValueError: naming `key`, when the value does not read as the type.
    """
    kind, optional = _base_type(kind)
    word = value.strip().lower()
    if word == "none" and (optional or kind is None):
        return None
    try:
        if kind is bool:
            if word not in _TRUE + _FALSE:
                raise ValueError
            return word in _TRUE
        if kind is not None:
            return kind(value)
    except ValueError:
        raise ValueError(f"--env-kwargs {key}={value}: the factory takes {key} as {kind.__name__}") from None
    for number in (int, float):
        try:
            return number(value)
        except ValueError:
            pass
    return value


def typed_kwargs(factory: Any, pairs: Sequence[str], path: str) -> dict[str, Any]:
    """The keyword arguments "key=value" `pairs` give `factory`, typed by its signature.

    Raises:
      ValueError: one line: a malformed pair, a key the factory does not take (its
        parameters named), or a value that does not read as the parameter's type.
    """
    raw = split_pairs(pairs)
    if not raw:
        return {}
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        parameters = {}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    named = {name: p for name, p in parameters.items()
             if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)}
    kwargs = {}
    for key, value in raw.items():
        if key not in named and not takes_any:
            takes = ", ".join(named) or "no arguments"
            raise ValueError(f"the environment factory '{path}' takes no argument {key!r} (it takes {takes})")
        parameter = named.get(key)
        kind = None
        if parameter is not None:
            if parameter.annotation is not inspect.Parameter.empty:
                kind = parameter.annotation
            elif parameter.default not in (inspect.Parameter.empty, None):
                kind = type(parameter.default)
        kwargs[key] = _convert(value, kind, key)
    return kwargs


def call_factory(path: str, pairs: Sequence[str] = ()) -> Any:
    """What the factory "package.module:factory" returns when called with `pairs` ("key=value").

    An environment object stored there (not a class or function) is taken as it is (no pairs allowed).

    Raises:
      ValueError: one line: the factory cannot be imported or called, its arguments
        do not fit (`typed_kwargs`), or it failed (its exception's type and message).
    """
    factory = import_object(path, "environment factory")
    if not isinstance(factory, type) and callable(getattr(factory, "observation_space", None)):
        if pairs:
            raise ValueError(f"'{path}' names an environment object, not a factory: it takes no --env-kwargs")
        return factory
    if not callable(factory):
        raise ValueError(
            f"'{path}' names an object of type {type(factory).__name__}, not a factory: give a function (or "
            "class) that returns an environment or an (environment, env_params) pair"
        )
    kwargs = typed_kwargs(factory, pairs, path)
    shown = f"({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})" if kwargs else ""
    try:
        return factory(**kwargs)
    except Exception as error:
        raise ValueError(f"calling the environment factory '{path}{shown}' failed: {error_line(error)}") from error
    except BaseException as error:  # sys.exit or KeyboardInterrupt inside the factory: not pgjax's own exit or stop
        raise ValueError(f"calling the environment factory '{path}{shown}' failed: {_escaped(error)}") from None


def _escaped(error: BaseException) -> str:
    """What a factory's SystemExit or KeyboardInterrupt (or other BaseException) says, in words."""
    if isinstance(error, SystemExit):
        return f"it ended the process (sys.exit({error.code!r})); a factory must return, not exit"
    if isinstance(error, KeyboardInterrupt):
        return "it raised KeyboardInterrupt"
    return error_line(error)
