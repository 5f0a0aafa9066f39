"""Statistics over runs: point estimates with bootstrap intervals, solve rates and solve times (NumPy).

Follows rliable (Agarwal et al. 2021, "Deep RL at the edge of the statistical
precipice") for one task: the interquartile mean (IQM) next to the mean and the
median, each with a 95% percentile-bootstrap interval that resamples runs. This
is the one interval method for returns throughout pgjax (summary.json, the
tables, the plots' bands, evaluation.json): a percentile-bootstrap interval of
the mean, median or IQM lies within the data's [min, max], so it never leaves
what is possible (a CartPole-v1 return above 500, say). A solve rate, a
proportion, takes the Wilson score interval, which lies within [0, 1].

rliable itself is not used: its latest release (1.2.0) pins arch<8, and arch 7
fails at import under pandas 3 (`deprecate_kwarg()` changed signature), which a
fresh install resolves to. For one task rliable's stratified bootstrap is the
plain bootstrap over runs, which `scipy.stats.bootstrap(method="percentile")`
computes, and `iqm` here equals `rliable.metrics.aggregate_iqm` and
`scipy.stats.trim_mean(x, 0.25)`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Literal

import numpy as np

CONFIDENCE = 0.95
Statistic = Literal["iqm", "mean"]  # a statistic over runs: the interquartile mean or the mean
BOOTSTRAP_RESAMPLES = 2000  # resamples of the intervals in summary.json and evaluation.json
# How every interval of summary.json and evaluation.json is made (summary.json's "interval_method").
INTERVAL_METHOD = {
    "confidence": CONFIDENCE,
    "returns": "percentile bootstrap over runs",  # of the mean, median and IQM (`bootstrap_interval`)
    "bootstrap": {"implementation": "scipy.stats.bootstrap", "resamples": BOOTSTRAP_RESAMPLES, "seed": 0},
    "solve_rate": "Wilson score interval",
}


def iqm(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean along `axis`: the mean after dropping floor(n / 4) values at each end.

    For n = 8 it is the mean of the middle 4 sorted values. Any NaN sorts last and
    may be trimmed away, so check for NaN first where that matters. A partial sort
    (`np.partition`) finds the middle values: linear time, which the bootstrap
    over thousands of runs needs.
    """
    values = np.moveaxis(np.asarray(values, np.float64), axis, -1)
    n = values.shape[-1]
    cut = n // 4
    if cut == 0:
        return values.mean(axis=-1)
    middle = np.partition(values, (cut, n - cut - 1), axis=-1)[..., cut : n - cut]
    return middle.mean(axis=-1)


def _stacked_mean_median_iqm(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """[..., n] -> [3, ...]: mean, median and IQM along `axis`, stacked (a vectorised bootstrap statistic)."""
    return np.stack([np.mean(values, axis=axis), np.median(values, axis=axis), iqm(values, axis=axis)])


def bootstrap_interval(
    values: np.ndarray | tuple[np.ndarray, ...],
    statistic: Callable[..., np.ndarray],
    *,
    axis: int = 0,
    reps: int = 2000,
    seed: int = 0,
    confidence: float = CONFIDENCE,
    within_range: bool = True,
    per_value: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile-bootstrap interval of `statistic` over the runs on `axis` (rliable's default method).

    The one bootstrap of pgjax: the intervals of summary.json, the plots' bands, and
    `pgjax.results.comparison`'s and `pgjax.results.aggregates`' intervals all come from it.

    Args:
      values: [..., R, ...] with R >= 2 runs on `axis`; whole slices along the
        other axes are resampled together (for curves [R, G]: whole runs). Or a
        tuple of such arrays, independent samples (two groups, or the tasks of
        an aggregate), each resampled apart (stratified); `statistic` then
        takes them all, `statistic(*values, axis=...)`.
      statistic: vectorised, `statistic(x, axis=...) -> array`, e.g. `np.mean` or `iqm`.
      axis: the runs' axis of every array.
      reps: bootstrap resamples.
      seed: the resampling is a function of the data, `reps` and `seed`.
      confidence: the interval's confidence level.
      within_range: clip the bounds to the [min, max] of the values along `axis`
        (one array only): right for a mean, median or IQM of the values, wrong for
        a statistic with other units (a probability, a fraction of runs), which
        passes False.
      per_value: intermediate values the statistic makes per resampled value
        (sizes the batches of resamples).

    Returns:
      (low, high), each shaped like `statistic(values, axis=axis)`. With
      `within_range`, within the [min, max] of the values along `axis` (a
      percentile of resampled means, medians or IQMs lies there; the bounds are
      clipped to it so that float rounding cannot take them out). Resamples are
      drawn in batches of about 16M values (128 MiB) at a time, so memory stays
      bounded for thousands of runs. Where the statistic of the resamples is NaN (a NaN among the
      values: runs that diverged to NaN), both bounds are NaN, silently (scipy's DegenerateDataWarning
      is not printed).

    Raises:
      ValueError: fewer than 2 runs (in any sample); `within_range` with a tuple of samples.
    """
    several = isinstance(values, tuple)
    samples = tuple(np.asarray(v, np.float64) for v in values) if several else (np.asarray(values, np.float64),)
    for sample in samples:
        if sample.shape[axis] < 2:
            raise ValueError(f"a bootstrap over runs needs at least 2 runs, got {sample.shape[axis]}")
    if several and within_range:
        raise ValueError("within_range applies to one array of values; pass within_range=False for several")
    size = sum(sample.size for sample in samples) * per_value
    from scipy import stats  # scipy: only when an interval is computed

    with warnings.catch_warnings():  # NaN among the values (every run diverged): NaN bounds there, said by no warning
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        result = stats.bootstrap(
            samples, statistic, n_resamples=reps, vectorized=True, axis=axis, batch=max(1, 2**24 // size),
            confidence_level=confidence, method="percentile", rng=np.random.default_rng(seed),
        )
    low, high = result.confidence_interval.low, result.confidence_interval.high
    if within_range:
        smallest, largest = samples[0].min(axis=axis), samples[0].max(axis=axis)
        low, high = np.clip(low, smallest, largest), np.clip(high, smallest, largest)
    return np.asarray(low), np.asarray(high)


def mean_median_iqm(values: np.ndarray, *, reps: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> dict:
    """Mean, median and IQM of per-run values [R], each with its 95% percentile-bootstrap interval.

    Returns:
      {"mean", "mean_ci95", "median", "median_ci95", "iqm", "iqm_ci95"}: floats
      and [low, high] lists (`bootstrap_interval`: within the values' range).
      With R = 1 the intervals are None (one run gives no spread to resample);
      if any value is not finite, every entry is None.

    Raises:
      ValueError: no values.
    """
    values = np.asarray(values, np.float64).reshape(-1)
    if values.size == 0:
        raise ValueError("mean_median_iqm needs at least one value")
    names = ("mean", "median", "iqm")
    if not np.isfinite(values).all():
        return {key: None for name in names for key in (name, f"{name}_ci95")}
    points = _stacked_mean_median_iqm(values)
    if values.size >= 2:
        low, high = bootstrap_interval(values, _stacked_mean_median_iqm, reps=reps, seed=seed)
        intervals = [[float(lo), float(hi)] for lo, hi in zip(low, high)]
    else:
        intervals = [None] * len(names)
    out = {}
    for name, point, interval in zip(names, points, intervals):
        out[name] = float(point)
        out[f"{name}_ci95"] = interval
    return out


def wilson_interval(successes: int, trials: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (no continuity correction); trials >= 1."""
    from scipy import stats

    ci = stats.binomtest(int(successes), int(trials)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def solve_steps(solved_at_env_steps: np.ndarray) -> dict:
    """Env steps to first solve over the runs that reached the threshold (finite entries of [R]).

    Returns:
      {"count", "median", "quartiles": [q25, q75], "min", "max"} in env steps
      (linear-interpolated percentiles); None values when count is 0.
    """
    steps = np.asarray(solved_at_env_steps, np.float64).reshape(-1)
    steps = steps[np.isfinite(steps)]
    if steps.size == 0:
        return {"count": 0, "median": None, "quartiles": [None, None], "min": None, "max": None}
    q25, median, q75 = np.percentile(steps, [25, 50, 75])
    return {
        "count": int(steps.size),
        "median": float(median),
        "quartiles": [float(q25), float(q75)],
        "min": float(steps.min()),
        "max": float(steps.max()),
    }


def group_statistics(
    final_returns: np.ndarray,
    solved: np.ndarray | None,
    solved_at_env_steps: np.ndarray,
    *,
    reps: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> dict:
    """JSON-ready statistics of a group of R runs trained with the same settings.

    Args:
      final_returns: [R] final return of each run (mean of its last 100 training episodes).
      solved: [R] bool, or None where the environment has no solve threshold.
      solved_at_env_steps: [R] env steps at which each run first reached the
        threshold; NaN (or None) for never.
      reps, seed: bootstrap resamples and seed; the result is deterministic given them.

    Returns:
      `mean_median_iqm(final_returns)` (mean, median, IQM and their percentile-bootstrap
      95% intervals over runs; intervals None for R = 1) plus
      "solve_rate": fraction of runs solved, and "solve_rate_ci95": its 95% Wilson
      score interval (well defined for any R >= 1, and not of zero width at
      0/R or R/R as a bootstrap would be); both None if `solved` is None;
      "solve_steps": `solve_steps(solved_at_env_steps)`: count, median, [q25, q75],
      min and max env steps to first reach the threshold, over every run that
      reached it (every solved run, and runs that reached it and fell back).
    """
    final_returns = np.asarray(final_returns, np.float64).reshape(-1)
    solved_at = np.array([math.nan if s is None else s for s in np.asarray(solved_at_env_steps).reshape(-1)], float)
    num_runs = final_returns.size
    if solved_at.size != num_runs or (solved is not None and np.asarray(solved).size != num_runs):
        raise ValueError("final_returns, solved and solved_at_env_steps must hold one entry per run")
    out = mean_median_iqm(final_returns, reps=reps, seed=seed)
    if solved is None:
        out["solve_rate"], out["solve_rate_ci95"] = None, None
    else:
        successes = int(np.count_nonzero(np.asarray(solved, bool)))
        out["solve_rate"] = successes / num_runs
        out["solve_rate_ci95"] = list(wilson_interval(successes, num_runs))
    out["solve_steps"] = solve_steps(solved_at)
    return out
