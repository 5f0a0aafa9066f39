"""The environment contract: what pgjax calls on an environment, found by what the object has.

An environment serves pgjax when it has gymnax's shape, whatever its classes:

* reset: `reset(key, params) -> (obs, state)`, or else `reset_env(key, params)`;
* step: `step(key, state, action, params)` giving gymnax 1.0's six values
  `(obs, state, reward, terminated, truncated, info)` or the five
  `(obs, state, reward, done, info)` of packages built on older gymnax (Craftax),
  whose `done` is taken as a termination; or else, without `step`,
  `step_env(key, state, action, params)`, five values and no auto-reset;
* `observation_space(params)` and `action_space(params)`, recognised by their
  attributes (`pgjax.algo.envs.space_kind`);
* params given with it, else its `default_params`, else None (passed as it is).

pgjax counts the steps of its own rollout and cuts each episode off at the step
limit itself (`pgjax.algo.envs.EnvSpec.max_steps`), so the environment needs no
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
`pgjax.algo.fast.FastPaths.skip_auto_reset` takes it (`step_function`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

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
    """One environment's step by `route` (`ROUTES`); with `skip_auto_reset`, "step_env+is_truncated" in place
    of "step" where that is the same step (`steps_directly`).

    Returns:
      `step(key, state, action, params) -> (obs, state, reward, terminated, truncated)`: obs is the
      observation the step reached (never an auto-reset's), truncated the environment's own time limit
      (False where it reports none).

    Raises:
      ValueError: an unknown route.
    """
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
