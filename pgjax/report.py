"""From per-update metrics to per-run results and statistics over runs (NumPy, after training)."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

SOLVE_WINDOW = 100  # episodes in the trailing mean that decides "solved"


def trailing_mean_returns(episode_returns: np.ndarray, window: int = SOLVE_WINDOW) -> np.ndarray:
    """Mean return of the last `window` episodes after each episode.

    Args:
      episode_returns: [U, E] returns of one run, in training order.

    Returns:
      [U * E] float64; NaN until `window` episodes have been played.
    """
    flat = np.asarray(episode_returns, np.float64).reshape(-1)
    out = np.full(flat.shape, np.nan)
    if flat.size >= window:
        csum = np.concatenate([[0.0], np.cumsum(flat)])
        out[window - 1 :] = (csum[window:] - csum[:-window]) / window
    return out


def run_result(episode_returns: np.ndarray, env_steps: np.ndarray, threshold: float | None) -> dict:
    """One run's headline numbers.

    Args:
      episode_returns: [U, E] episode returns in training order.
      env_steps: [U] cumulative env steps after each update.
      threshold: solve threshold, or None where the environment has none.

    Returns:
      dict with `final_return` (mean of the last 100 training episodes, or of all
      if fewer), `solved` (at least 100 episodes and that mean reached the
      threshold) and
      `solved_at_env_steps` (env steps at the end of the update in which the
      trailing 100-episode mean first reached the threshold; None if never).
    """
    flat = np.asarray(episode_returns, np.float64).reshape(-1)
    final_return = float(flat[-SOLVE_WINDOW:].mean())
    solved_at = None
    if threshold is not None:
        trailing = trailing_mean_returns(episode_returns)
        hits = np.flatnonzero(trailing >= threshold)
        if hits.size:
            episodes_per_update = np.asarray(episode_returns).shape[1]
            solved_at = int(np.asarray(env_steps)[hits[0] // episodes_per_update])
    return {
        "final_return": final_return,
        "solved": bool(threshold is not None and flat.size >= SOLVE_WINDOW and final_return >= threshold),
        "solved_at_env_steps": solved_at,
    }


def mean_interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and its two-sided Student-t confidence interval: (mean, low, high)."""
    values = np.asarray(values, np.float64)
    mean = float(values.mean()) if values.size else math.nan
    if values.size < 2:
        return mean, math.nan, math.nan
    sem = float(values.std(ddof=1) / math.sqrt(values.size))
    if sem == 0.0:
        return mean, mean, mean
    low, high = stats.t.interval(confidence, values.size - 1, loc=mean, scale=sem)
    return mean, float(low), float(high)
