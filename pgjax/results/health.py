"""Warnings of training that cannot learn: what the first updates of every run show, what the whole run shows
against a uniformly random policy, said in one line each.

    lines = run_warnings(metrics, spec, randoms)   # after training: summary.json's "warnings", printed by the report

A run can finish without an error and learn nothing: every episode ends at its
first step, the step limit is 1 (an env params left at gymnax's `EnvParams`
default, `max_steps_in_episode=1`), the observations are raw pixel values, the
policy turns deterministic at once, or the gradient is exactly zero. Each
detector below is a pure function of what training recorded (`Metrics` leaves
over the first `FIRST_UPDATES` updates, numpy [runs, updates]) or of the
environment (`pgjax.algo.envs.EnvSpec`, observations from its reset), and
gives None or one line: what was seen, and what to do.

Over the whole run, against the random policy's return (`pgjax.results.random_policy`): a run that
collapsed later (`late_collapse`: its entropy to ~0 while its return is at or below the random policy's,
or its return fallen back to it from well above, or clearly below it), and groups whose final return is at
or below it (`below_random_policy`). "At or below" allows for noise: `NOISE_SIGMAS` standard errors of the
random policy's mean above it (and, for a run's smoothed return, the noise of its window too).
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
# Standard errors a return may lie above the random policy's mean and still count as "at or below" it.
NOISE_SIGMAS = 2.0
# Most updates in the trailing mean that smooths a run's return (`late_collapse`); a fifth of the run if fewer.
RETURN_WINDOW = 20
# How far above the random policy's mean a run's smoothed return must have been to have "fallen" from it, in
# noise margins (`late_collapse`'s m).
FALL_MARGINS = 3.0
# Runs a warning names (the rest are counted).
RUNS_NAMED = 10
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


def late_collapse(episode_return: np.ndarray, entropy: np.ndarray, episodes: np.ndarray, random: Any,
                  action_kind: str = "discrete", num_actions: int = 2, diverged: np.ndarray | None = None,
                  first_run: int = 0) -> list[tuple[int, int, str]]:
    """The runs of one grid point that collapsed over the whole run: each run's return smoothed by a
    trailing mean of `RETURN_WINDOW` updates (a fifth of the run if shorter) ends at or below the random
    policy's, and either its entropy ended below `ENTROPY_FLOOR` (a discrete policy turned deterministic;
    Gaussian entropies are not judged), or its return had been well above the random policy's and fell
    back, or it ends clearly below it. A run that ends above the random policy (CartPole's default, whose
    entropy falls as it converges) is no collapse. Diverged runs are left out (reported as diverged).

    "At or below" is mean + m and "clearly below" mean - m, "well above" mean + `FALL_MARGINS` m, where m =
    `NOISE_SIGMAS` x (the random policy's standard error + the noise of a window's mean, the random
    policy's episode standard deviation / sqrt(window updates x episodes per update)).

    Args:
      episode_return, entropy, episodes: [runs, updates] `Metrics` leaves (mean return, mean entropy in nats,
        episodes per update).
      random: the random policy's `pgjax.results.random_policy.RandomScore` (mean, stderr, episodes).
      action_kind, num_actions: the environment's (`EnvSpec`).
      diverged: [runs, updates] bool, or None.
      first_run: the index of the first run (summary.json's "runs") of this grid point.

    Returns:
      [(run index, update (1-based) where it collapsed: the first update at or below the bound within the first
      trailing window (after the last one above) whose mean is at or below it, or the one from which the
      entropy stayed below the floor; what happened)].
    """
    returns = np.asarray(episode_return, np.float64)
    if returns.ndim != 2 or returns.size == 0 or random is None or not np.isfinite(random.stderr):
        return []
    updates = returns.shape[1]
    window = max(1, min(RETURN_WINDOW, updates // 5))
    kernel = np.ones(window) / window
    smoothed = np.stack([np.convolve(row, kernel, "valid") for row in returns])  # [runs, updates - window + 1]
    per_update = max(float(np.mean(episodes)), 1.0)
    episode_sd = random.stderr * np.sqrt(random.episodes)
    margin = NOISE_SIGMAS * (random.stderr + episode_sd / np.sqrt(window * per_update))
    upper, lower = random.mean + margin, random.mean - margin
    judged_entropy = action_kind == "discrete" and num_actions >= 2
    found = []
    for run in range(returns.shape[0]):
        if diverged is not None and np.asarray(diverged)[run, -1]:
            continue
        trail = smoothed[run]
        if not np.isfinite(trail[-1]) or trail[-1] > upper:
            continue
        above = np.flatnonzero(trail > upper)
        since = _first_within(returns[run], int(above[-1]) + 1 if above.size else 0, window, upper)
        deterministic = judged_entropy and float(np.asarray(entropy)[run, -1]) < ENTROPY_FLOOR
        if np.any(trail > random.mean + FALL_MARGINS * margin):
            what = f"its return fell from {np.max(trail):.3g} to {trail[-1]:.3g}"
        elif deterministic:
            high = np.flatnonzero(np.asarray(entropy)[run] >= ENTROPY_FLOOR)
            since = int(high[-1]) + 2 if high.size else 1
            what = f"entropy {float(np.asarray(entropy)[run, -1]):.2g} nats, return {trail[-1]:.3g}"
        elif trail[-1] < lower:
            not_below = np.flatnonzero(trail >= lower)
            since = _first_within(returns[run], int(not_below[-1]) + 1 if not_below.size else 0, window, lower)
            what = f"its return ends at {trail[-1]:.3g}"
        else:
            continue
        found.append((first_run + run, min(since, updates), what))
    return found


def _first_within(returns: np.ndarray, start: int, window: int, bound: float) -> int:
    """The 1-based update of the first of `returns[start:start + window]` at or below `bound` (`start` + 1 if
    none is: the window's mean is)."""
    within = np.flatnonzero(returns[start:start + window] <= bound)
    return start + (int(within[0]) if within.size else 0) + 1


def collapse_warning(collapsed: list[tuple[int, int, str]], random_mean: float | None) -> str | None:
    """One line naming the runs `late_collapse` found (the first `RUNS_NAMED`) and the update where each
    collapsed; None for none. `random_mean`: the random policy's return where every grid point has the same
    (None: not said)."""
    if not collapsed:
        return None
    listed = "; ".join(f"run {run} at update {update} ({what})" for run, update, what in collapsed[:RUNS_NAMED])
    more = f"; and {len(collapsed) - RUNS_NAMED} more" if len(collapsed) > RUNS_NAMED else ""
    random = "" if random_mean is None else f" {random_mean:.3g}"
    return (f"{len(collapsed)} run{'s' * (len(collapsed) > 1)} collapsed during training, ending at or below a "
            f"uniformly random policy's return{random}: {listed}{more}; lower --lr, give --entropy-coef "
            "a value above 0, or train more episodes per update")


def below_random_policy(groups: list[dict]) -> str | None:
    """One line naming the groups whose trained policy ends at or below the random policy: the IQM of final
    returns <= the random policy's mean + `NOISE_SIGMAS` x its standard error (the random policy's noise: an
    IQM that seeds spread widely, but whose point lies above that, is not at or below it).

    Args:
      groups: summary.json's "groups", each with "statistics" ("iqm", "iqm_ci95") and "random_policy"
        ({"mean", "stderr"}, `RandomScore.to_dict`); a group without either, or one that successive halving
        stopped early ("stopped_early"), is not judged.
    """
    found = []
    for group in groups:
        random, statistics = group.get("random_policy"), group.get("statistics") or {}
        iqm = statistics.get("iqm")
        if random is None or iqm is None or not np.isfinite(iqm) or group.get("stopped_early"):
            continue  # a group successive halving stopped early was judged worse already
        if iqm <= random["mean"] + NOISE_SIGMAS * random["stderr"]:
            interval = statistics.get("iqm_ci95")
            shown = "" if interval is None else f" [{interval[0]:.3g}, {interval[1]:.3g}]"
            found.append(f"group {group['index']} (IQM {iqm:.3g}{shown}, random {random['mean']:.3g})")
    if not found:
        return None
    return (f"the trained policy ends at or below a uniformly random policy's return (its mean + {NOISE_SIGMAS:g} "
            f"standard errors): {', '.join(found[:RUNS_NAMED])}"
            f"{f' and {len(found) - RUNS_NAMED} more' if len(found) > RUNS_NAMED else ''}; it learned no better "
            "than acting at random: try another --lr, more --num-updates or --episodes-per-update")


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


def run_warnings(metrics: list, spec: Any, randoms: list | None = None) -> list[str]:
    """`training_warnings` of a sweep's first `FIRST_UPDATES` updates of every run of every grid point, then
    `late_collapse` over the whole of every run (its line: `collapse_warning`).

    Args:
      metrics: one `pgjax.algo.trainer.Metrics` per grid point, leaves [num_seeds, num_updates, ...].
      spec: the environment's `EnvSpec`; its reset is called `OBSERVATION_SAMPLES` times.
      randoms: one random policy's `RandomScore` per grid point (its environment's, `random_policy_of`), or
        None: no judging against it.
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
    lines = training_warnings(stacked["episode_length"], stacked["entropy"], stacked["grad_norm"], spec,
                              reset_observations(spec) if served_raw else None,
                              *((low, high) if float_space and served_raw else (None, None)))
    if randoms is None:
        return lines
    collapsed, first_run = [], 0
    for m, random in zip(metrics, randoms, strict=True):
        collapsed += late_collapse(m.episode_return, m.entropy, m.episodes, random, spec.action_kind,
                                   spec.num_actions, getattr(m, "diverged", None), first_run)
        first_run += np.shape(m.episode_return)[0]
    means = {random.mean for random in randoms}
    line = collapse_warning(collapsed, means.pop() if len(means) == 1 else None)
    return lines + ([line] if line else [])
