"""Warnings of training that cannot learn: what the first updates of every run show, said in one line each.

    lines = run_warnings(metrics, spec)   # after training: summary.json's "warnings", printed by the report

A run can finish without an error and learn nothing: every episode ends at its
first step, the step limit is 1 (an env params left at gymnax's `EnvParams`
default, `max_steps_in_episode=1`), the observations are raw pixel values, the
policy turns deterministic at once, or the gradient is exactly zero. Each
detector below is a pure function of what training recorded (`Metrics` leaves
over the first `FIRST_UPDATES` updates, numpy [runs, updates]) or of the
environment (`pgjax.algo.envs.EnvSpec`, observations from its reset), and
gives None or one line: what was seen, and what to do.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# The updates looked at: what goes wrong from the start shows in these.
FIRST_UPDATES = 5
# Mean policy entropy (nats, over the runs) below which a discrete policy counts as deterministic.
ENTROPY_FLOOR = 0.01
# Resets sampled to look at the observations.
OBSERVATION_SAMPLES = 8
# What a step limit of 1 asks for: the env params' field (gymnax's EnvParams default is 1).
STEP_LIMIT_FIX = "give the env params a larger max_steps_in_episode (the episode's step limit, in env steps)"


def step_limit_of_one(max_steps: int) -> str | None:
    """A step limit (`EnvSpec.max_steps`, env steps) of 1: every episode is cut after its first step."""
    if max_steps != 1:
        return None
    return (f"the environment's step limit is 1 (max_steps_in_episode=1, gymnax's EnvParams default if the env "
            f"params do not set it): every episode is cut after one step; {STEP_LIMIT_FIX}")


def one_step_episodes(episode_length: np.ndarray, max_steps: int) -> str | None:
    """Every episode of the first updates lasted 1 env step, under a step limit above 1.

    Args:
      episode_length: [runs, updates] mean episode length of each update, in env steps (>= 1).
      max_steps: the step limit (a limit of 1 is `step_limit_of_one`'s).
    """
    lengths = np.asarray(episode_length)
    if max_steps == 1 or lengths.size == 0 or not np.all(lengths == 1):
        return None
    return (f"every episode of the first {lengths.shape[1]} updates ended at its first step (all "
            f"{lengths.shape[0]} runs): the environment terminates at once; check its termination condition "
            "and the state its reset returns")


def unscaled_observations(observations: np.ndarray | None, low: Any = None, high: Any = None) -> str | None:
    """Float observations that look like raw pixel values: a float Box of bounds 0..255, or reset
    observations that are all integers in 0..255 with some above 1.

    Args:
      observations: [N, *obs_shape] float observations from the environment's reset (None: not sampled).
        Integer observations (a grid position, say) are the environment's own and raise no warning.
      low, high: the observation space's bounds (scalars or arrays; None if it has none).
    """
    if observations is None or not np.issubdtype(np.asarray(observations).dtype, np.floating):
        return None
    obs = np.asarray(observations)
    bounded = (low is not None and high is not None and np.all(np.isfinite(np.asarray(low)))
               and np.min(low) == 0 and np.max(high) == 255)
    integral = obs.size > 0 and np.all(np.isfinite(obs)) and np.all(obs == np.round(obs))
    pixels = integral and obs.min() >= 0 and 1 < obs.max() <= 255
    if not (bounded or pixels):
        return None
    seen = f"values up to {obs.max():g} at reset" if pixels else "an observation space of bounds 0..255"
    return (f"the observations look unscaled ({seen}, float): a network learns poorly from raw 0..255 pixel "
            "values; scale them to [0, 1] (divide by 255) in the environment, or give them as uint8")


def collapsed_entropy(entropy: np.ndarray, action_kind: str = "discrete", num_actions: int = 2) -> str | None:
    """The policy's entropy (nats, mean over the runs) below `ENTROPY_FLOOR` within the first updates: a
    discrete policy deterministic before it learned. Gaussian policies' differential entropy can be negative:
    not judged.

    Args:
      entropy: [runs, updates] mean policy entropy of each update, in nats.
      action_kind, num_actions: the environment's (`EnvSpec`); one action has entropy 0 by right.
    """
    values = np.asarray(entropy, dtype=np.float64)
    if action_kind != "discrete" or num_actions < 2 or values.size == 0:
        return None
    mean = values.mean(axis=0)  # [updates]
    low = np.flatnonzero(mean < ENTROPY_FLOOR)
    if not low.size:
        return None
    return (f"the policy's entropy fell to {mean[low[0]]:.2g} nats by update {low[0] + 1} (mean over "
            f"{values.shape[0]} runs; uniform over {num_actions} actions is {np.log(num_actions):.2g}): the "
            "policy turned deterministic before it learned; lower --lr or give --entropy-coef a value above 0")


def zero_gradients(grad_norm: np.ndarray) -> str | None:
    """The policy gradient's norm exactly 0 in every run for every one of the first updates.

    Args:
      grad_norm: [runs, updates] global norm of the gradient before clipping.
    """
    norms = np.asarray(grad_norm)
    if norms.size == 0 or np.any(norms != 0):
        return None
    return (f"the policy gradient was exactly 0 in all {norms.shape[0]} runs for the first {norms.shape[1]} "
            "updates: the returns give no signal (every return the same, e.g. a reward that is always 0, or "
            "episodes of one step); check the environment's rewards and episode ends")


def training_warnings(episode_length: np.ndarray, entropy: np.ndarray, grad_norm: np.ndarray, spec: Any,
                      observations: np.ndarray | None = None, low: Any = None, high: Any = None) -> list[str]:
    """Every detector's line, in order (step limit, one-step episodes, observations, entropy, gradient).

    Args:
      episode_length, entropy, grad_norm: [runs, updates] of the first updates (`Metrics` leaves).
      spec: the environment's `EnvSpec` (max_steps, action_kind, num_actions are read).
      observations, low, high: as `unscaled_observations`'s.

    Returns:
      One line per warning (no newline in any); empty when nothing looks wrong.
    """
    found = [
        step_limit_of_one(spec.max_steps),
        one_step_episodes(episode_length, spec.max_steps),
        unscaled_observations(observations, low, high),
        collapsed_entropy(entropy, spec.action_kind, spec.num_actions),
        zero_gradients(grad_norm),
    ]
    return [line for line in found if line]


def reset_observations(spec: Any, num: int = OBSERVATION_SAMPLES, seed: int = 0) -> np.ndarray | None:
    """[num, *obs_shape] observations of `num` resets of the environment (its own dtype), or None when its
    reset cannot be called here (a warning is no place for an error)."""
    import jax

    try:
        keys = jax.random.split(jax.random.key(seed), num)
        from pgjax.algo.envs import reset_function

        return np.asarray(jax.vmap(reset_function(spec.env), in_axes=(0, None))(keys, spec.params)[0])
    except Exception:  # the run trained with this reset: one that fails here only loses the check
        return None


def run_warnings(metrics: list, spec: Any) -> list[str]:
    """`training_warnings` of a sweep: the first `FIRST_UPDATES` updates of every run of every grid point.

    Args:
      metrics: one `pgjax.algo.trainer.Metrics` per grid point, leaves [num_seeds, num_updates, ...].
      spec: the environment's `EnvSpec`; its reset is called `OBSERVATION_SAMPLES` times.
    """
    if not metrics:
        return []
    first = min(FIRST_UPDATES, *(np.shape(m.entropy)[1] for m in metrics))
    stacked = {name: np.concatenate([np.asarray(getattr(m, name))[:, :first] for m in metrics])
               for name in ("episode_length", "entropy", "grad_norm")}
    space = spec.env.observation_space(spec.params)
    low, high = getattr(space, "low", None), getattr(space, "high", None)
    float_space = np.issubdtype(np.dtype(getattr(space, "dtype", np.float32)), np.floating)
    # Observations pgjax encodes or scales itself (one-hots, Dict and Tuple, uint8 images) reach no network raw.
    served_raw = getattr(spec, "encode_obs", None) is None and getattr(spec, "obs_scale", 1.0) == 1.0
    return training_warnings(stacked["episode_length"], stacked["entropy"], stacked["grad_norm"], spec,
                             reset_observations(spec) if served_raw else None,
                             *((low, high) if float_space and served_raw else (None, None)))
