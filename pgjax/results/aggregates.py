"""Scores across environments: normalised (a uniformly random policy 0, the reference 1) and aggregated over
tasks as rliable does, the IQM and the optimality gap of every run of every task, with stratified
percentile-bootstrap intervals (each task's runs resampled apart). The random policy's scores come from
`pgjax.results.random_policy`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pgjax.results.stats import BOOTSTRAP_RESAMPLES, bootstrap_interval, iqm


def normalise(scores: np.ndarray, random_score: float, reference_score: float) -> np.ndarray:
    """(score - random) / (reference - random): 0 for a uniformly random policy, 1 at the reference.

    Raises:
      ValueError: reference and random scores are equal.
    """
    if reference_score == random_score:
        raise ValueError(f"cannot normalise: the reference score equals the random policy's ({random_score})")
    return (np.asarray(scores, np.float64) - random_score) / (reference_score - random_score)


def optimality_gap(scores: np.ndarray, axis: int = -1) -> np.ndarray:
    """Mean of max(0, 1 - score) along `axis` (rliable's `aggregate_optimality_gap` with gamma 1)."""
    return np.mean(np.maximum(0.0, 1.0 - np.asarray(scores, np.float64)), axis=axis)


def _iqm_and_gap(*samples, axis=-1):
    pooled = np.concatenate(samples, axis=axis)
    return np.stack([iqm(pooled, axis=axis), optimality_gap(pooled, axis=axis)])


def aggregate_scores(
    normalised: Sequence[np.ndarray], *, reps: int = BOOTSTRAP_RESAMPLES, seed: int = 0
) -> dict:
    """IQM and optimality gap of normalised scores over every run of every task, with stratified intervals.

    Args:
      normalised: one [R_t] array of normalised scores per task (R_t may differ).

    Returns:
      {"iqm", "iqm_ci95", "optimality_gap", "optimality_gap_ci95", "runs": [R_t, ...]};
      intervals None when a task has fewer than 2 runs. With equal R_t the point
      estimates equal rliable's `aggregate_iqm` and `aggregate_optimality_gap`
      of the [R, T] matrix.
    """
    samples = [np.asarray(s, np.float64).reshape(-1) for s in normalised]
    if not samples or min(s.size for s in samples) == 0:
        raise ValueError("every task needs at least one run to aggregate")
    point = _iqm_and_gap(*samples)
    out = {"iqm": float(point[0]), "iqm_ci95": None, "optimality_gap": float(point[1]), "optimality_gap_ci95": None,
           "runs": [int(s.size) for s in samples]}
    if min(s.size for s in samples) >= 2:
        low, high = bootstrap_interval(tuple(samples), _iqm_and_gap, axis=-1, reps=reps, seed=seed, within_range=False)
        out["iqm_ci95"] = [float(low[0]), float(high[0])]
        out["optimality_gap_ci95"] = [float(low[1]), float(high[1])]
    return out
