"""Paired comparisons of groups of runs: differences over seeds, probability of improvement, profiles, aggregates.

NumPy and SciPy on arrays (no files), after rliable (Agarwal et al. 2021, "Deep RL at the
edge of the statistical precipice"). Every interval is a 95% percentile bootstrap
(`scipy.stats.bootstrap`, `stats.BOOTSTRAP_RESAMPLES` resamples, seed 0), as in
`pgjax.results.stats`: over seed pairs for a paired difference; over each group's runs,
independently, for the probability of improvement (rliable's `StratifiedIndependentBootstrap`
for one task); over each task's runs apart (stratified) for aggregates over tasks.
`COMPARISON_METHOD` states each definition; docs/results.md explains them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats

from pgjax.results.stats import BOOTSTRAP_RESAMPLES, CONFIDENCE, bootstrap_interval, iqm
from pgjax.results.tables import settings_label

# How comparison entries are made (the "method" of summary.json's "comparison" and of comparison.json).
COMPARISON_METHOD = {
    "confidence": CONFIDENCE,
    "baseline": "the group with the highest IQM of final return, unless given",
    "difference": "mean over seeds of (group - baseline), runs paired by seed; percentile bootstrap over seed pairs; "
                  "a pair is dropped when either run diverged",
    "probability_of_improvement": "P(group > baseline) = Mann-Whitney U / (m n), ties 1/2 (rliable); percentile "
                                  "bootstrap resampling each group's runs independently; diverged runs left out",
    "env_steps_to_solve": "env steps at which the trailing 100-episode mean first reached the threshold; difference "
                          "over seeds where both runs reached it; P(fewer steps) counts a run that never reached "
                          "it as slower than any that did (two such runs tie)",
    "bootstrap": {"implementation": "scipy.stats.bootstrap", "method": "percentile",
                  "resamples": BOOTSTRAP_RESAMPLES, "seed": 0},
}


@dataclasses.dataclass(frozen=True)
class GroupRuns:
    """The runs of one group, as a comparison needs them.

    Attributes:
      name: how the group is named in the results (an index, or "DIR:index").
      seeds: [R] the seed of each run; runs of two groups pair when their seeds are equal.
      final_returns: [R] final return of each run.
      diverged: [R] bool, runs that diverged (left out of every statistic).
      solved_at_env_steps: [R] env steps at which each run first reached the solve
        threshold, NaN for never; None when the environment has no threshold.
      label: what tells the group apart, for tables and plots.
    """

    name: int | str
    seeds: np.ndarray
    final_returns: np.ndarray
    diverged: np.ndarray
    solved_at_env_steps: np.ndarray | None = None
    label: str = ""

    def sane(self) -> np.ndarray:
        """[R] bool: runs that did not diverge and have a finite final return."""
        return ~np.asarray(self.diverged, bool) & np.isfinite(np.asarray(self.final_returns, np.float64))


def probability_of_improvement(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """P(X > Y) for one task: Mann-Whitney U of `x` against `y` over m n, a tie counting 1/2.

    Args:
      x: [..., m] scores of X's runs; y: [..., n] scores of Y's runs (along `axis`;
        the other axes alike, e.g. bootstrap resamples). Infinite values rank as
        any value does (-inf below everything, two -inf tie).

    Returns:
      [...] in [0, 1]; 0.5 when x and y hold the same values. Equals
      `rliable.metrics.probability_of_improvement` on [m, 1] and [n, 1] arrays.
    """
    x = np.moveaxis(np.asarray(x, np.float64), axis, -1)
    y = np.moveaxis(np.asarray(y, np.float64), axis, -1)
    m, n = x.shape[-1], y.shape[-1]
    ranks = stats.rankdata(np.concatenate([x, y], axis=-1), axis=-1)  # ties take their average rank
    u = ranks[..., :m].sum(axis=-1) - m * (m + 1) / 2
    return u / (m * n)


def paired_difference(
    x: np.ndarray, y: np.ndarray, *, reps: int = BOOTSTRAP_RESAMPLES, seed: int = 0
) -> dict:
    """Mean of the paired differences x - y with its percentile-bootstrap interval over pairs.

    Args:
      x, y: [P] values of the P pairs (finite).

    Returns:
      {"mean", "ci95" ([low, high], None for fewer than 2 pairs), "pairs": P};
      "mean" None with no pair. The interval lies within the differences' [min, max]
      (`pgjax.results.stats.bootstrap_interval`).
    """
    mean, interval, pairs = _mean_over_pairs(np.asarray(x, np.float64) - np.asarray(y, np.float64), reps, seed)
    return {"mean": mean, "ci95": interval, "pairs": pairs}


def _mean_over_pairs(values: np.ndarray, reps: int, seed: int) -> tuple[float | None, list[float] | None, int]:
    """(mean of `values` [P], one per pair (None with none); its percentile-bootstrap interval over the pairs
    (None for fewer than 2), within the values' range; P)."""
    if values.size == 0:
        return None, None, 0
    interval = None
    if values.size >= 2:
        low, high = bootstrap_interval(values, np.mean, reps=reps, seed=seed)
        interval = [float(low), float(high)]
    return float(values.mean()), interval, int(values.size)


def improvement(x: np.ndarray, y: np.ndarray, *, reps: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> dict:
    """P(X > Y) (`probability_of_improvement`) with its percentile-bootstrap interval (runs resampled independently).

    Returns:
      {"probability", "ci95" (None unless both have 2 or more runs), "runs": [m, n]};
      "probability" None when either has no run.
    """
    x, y = np.asarray(x, np.float64).reshape(-1), np.asarray(y, np.float64).reshape(-1)
    if x.size == 0 or y.size == 0:
        return {"probability": None, "ci95": None, "runs": [int(x.size), int(y.size)]}
    interval = None
    if x.size >= 2 and y.size >= 2:
        low, high = bootstrap_interval((x, y), probability_of_improvement, axis=-1, reps=reps, seed=seed,
                                       within_range=False)
        interval = [float(np.clip(low, 0, 1)), float(np.clip(high, 0, 1))]
    probability = float(probability_of_improvement(x, y))
    return {"probability": probability, "ci95": interval, "runs": [int(x.size), int(y.size)]}


def paired_improvement(x: np.ndarray, y: np.ndarray, *, reps: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> dict:
    """P(X > Y) over seed pairs: the share of pairs in which x beats y (a tie counts 1/2), with its percentile
    bootstrap interval over pairs.

    Args:
      x, y: [P] values of the P pairs (the same seed's runs).

    Returns:
      {"probability" (None with no pair), "ci95" (None for fewer than 2 pairs), "pairs": P}.
    """
    wins = (np.asarray(x, np.float64) > y) + 0.5 * (np.asarray(x, np.float64) == y)
    probability, interval, pairs = _mean_over_pairs(wins, reps, seed)
    return {"probability": probability, "ci95": interval, "pairs": pairs}


def _pairs(group: GroupRuns, baseline: GroupRuns, keep: Callable[[GroupRuns], np.ndarray]) -> tuple:
    """Positions (in group, in baseline) of runs with equal seeds that both pass `keep`; and the seeds dropped."""
    position = {int(s): k for k, s in enumerate(np.asarray(baseline.seeds).reshape(-1))}
    kept_group, kept_baseline = keep(group), keep(baseline)
    mine, theirs, dropped = [], [], []
    for k, s in enumerate(np.asarray(group.seeds).reshape(-1)):
        j = position.get(int(s))
        if j is None:
            continue
        if kept_group[k] and kept_baseline[j]:
            mine.append(k)
            theirs.append(j)
        else:
            dropped.append(int(s))
    return np.array(mine, int), np.array(theirs, int), dropped


def _by_seed(group: GroupRuns) -> GroupRuns:
    """The same runs in the order of their seeds."""
    order = np.argsort(np.asarray(group.seeds).reshape(-1), kind="stable")
    steps = None if group.solved_at_env_steps is None else np.asarray(group.solved_at_env_steps, np.float64)[order]
    return dataclasses.replace(group, seeds=np.asarray(group.seeds)[order],
                               final_returns=np.asarray(group.final_returns, np.float64)[order],
                               diverged=np.asarray(group.diverged, bool)[order], solved_at_env_steps=steps)


def compare_to_baseline(
    group: GroupRuns, baseline: GroupRuns, *, reps: int = BOOTSTRAP_RESAMPLES, seed: int = 0
) -> dict:
    """One group against the baseline: final returns, and env steps to solve where there is a threshold.

    Returns:
      {"group", "label",
       "final_return": {"difference": `paired_difference` of group - baseline over
         seed pairs, plus "dropped_seeds" (pairs with a diverged run);
         "probability_of_improvement": `improvement(group, baseline)` over each
         group's sane runs},
       "env_steps_to_solve": None without a threshold or when no run of either
         reached it; else {"difference": paired difference of steps (negative: the
         group got there sooner) over seeds where both reached the threshold,
         "probability_of_fewer": P(the group's run needs fewer steps than the
         baseline's), a run that never reached it counting as slower than any
         that did, "reached": [group's count, baseline's]}}.
      Runs pair when their seeds are equal ("pairs" 0 when no seed is shared);
      the result does not depend on the order of the runs.
    """
    group, baseline = _by_seed(group), _by_seed(baseline)
    finals, base_finals = np.asarray(group.final_returns, np.float64), np.asarray(baseline.final_returns, np.float64)
    mine, theirs, dropped = _pairs(group, baseline, GroupRuns.sane)
    difference = paired_difference(finals[mine], base_finals[theirs], reps=reps, seed=seed)
    out = {
        "group": group.name,
        "label": group.label,
        "final_return": {
            "difference": {**difference, "dropped_seeds": dropped},
            "probability_of_improvement": improvement(finals[group.sane()], base_finals[baseline.sane()],
                                                      reps=reps, seed=seed),
        },
        "env_steps_to_solve": None,
    }
    if group.solved_at_env_steps is None or baseline.solved_at_env_steps is None:
        return out
    steps = np.asarray(group.solved_at_env_steps, np.float64)
    base_steps = np.asarray(baseline.solved_at_env_steps, np.float64)
    reached = lambda runs: runs.sane() & np.isfinite(np.asarray(runs.solved_at_env_steps, np.float64))
    if not (reached(group).any() or reached(baseline).any()):
        return out
    mine, theirs, _ = _pairs(group, baseline, reached)
    # Fewer steps is better: score = -steps, never reached = -inf (ties with another that never did).
    score = lambda s, runs: np.where(np.isfinite(s), -s, -np.inf)[runs.sane()]
    out["env_steps_to_solve"] = {
        "difference": paired_difference(steps[mine], base_steps[theirs], reps=reps, seed=seed),
        "probability_of_fewer": improvement(score(steps, group), score(base_steps, baseline), reps=reps, seed=seed),
        "reached": [int(reached(group).sum()), int(reached(baseline).sum())],
    }
    return out


RANKING_RULE = ("best IQM of final return; ties broken by fewer median env steps to first solve (a run that "
                "never did counts as never), then by the higher mean final return")


def rank_key(group: GroupRuns) -> tuple[float, float, float]:
    """What orders groups best first (`RANKING_RULE`), larger is better: (IQM of the sane runs' final
    returns, minus the median over them of env steps to first solve (never: infinity; 0 without a
    threshold), their mean final return). The IQM alone ties often: 500.0 for every group that solves
    CartPole-v1 on all its seeds."""
    sane = group.sane()
    finals = np.asarray(group.final_returns, np.float64)[sane]
    if group.solved_at_env_steps is None:
        solve = 0.0
    else:
        steps = np.asarray(group.solved_at_env_steps, np.float64)[sane]
        solve = float(np.median(np.where(np.isfinite(steps), steps, np.inf)))
    return float(iqm(finals)), -solve, float(finals.mean())


def ranked_groups(groups: Sequence[GroupRuns]) -> list[GroupRuns]:
    """The groups with a sane run, best first by `rank_key` (the earlier group first on a full tie)."""
    scored = [(rank_key(g), -k) for k, g in enumerate(groups) if g.sane().any()]
    return [groups[-k] for _, k in sorted(scored, reverse=True)]


def best_group(groups: Sequence[GroupRuns]) -> GroupRuns:
    """The first of `ranked_groups`.

    Raises:
      ValueError: no group has a sane run.
    """
    ranked = ranked_groups(groups)
    if not ranked:
        raise ValueError("no group has a run that did not diverge: nothing to compare")
    return ranked[0]


def compare_groups(
    groups: Sequence[GroupRuns], baseline: int | str | None = None, *, reps: int = BOOTSTRAP_RESAMPLES, seed: int = 0
) -> dict:
    """Every group against a baseline group.

    Args:
      groups: the groups to compare (two or more).
      baseline: the baseline's `name`; None picks `best_group`.

    Returns:
      {"baseline": its name, "baseline_label", "baseline_rule" (`RANKING_RULE`
      or "given"), "method": COMPARISON_METHOD, "groups": [`compare_to_baseline`
      of every other group, in order]}.

    Raises:
      ValueError: fewer than two groups; no group of that name; no sane run anywhere.
    """
    if len(groups) < 2:
        raise ValueError(f"a comparison needs at least two groups, got {len(groups)}")
    if baseline is None:
        chosen, rule = best_group(groups), RANKING_RULE
    else:
        by_name = {str(g.name): g for g in groups}
        if str(baseline) not in by_name:
            raise ValueError(f"no group {baseline!r} to take as the baseline; the groups are {', '.join(by_name)}")
        chosen, rule = by_name[str(baseline)], "given"
    return {
        "baseline": chosen.name,
        "baseline_label": chosen.label,
        "baseline_rule": rule,
        "method": COMPARISON_METHOD,
        "groups": [compare_to_baseline(g, chosen, reps=reps, seed=seed) for g in groups if g is not chosen],
    }


def tau_grid(scores: Sequence[np.ndarray], points: int = 101) -> np.ndarray:
    """[points] thresholds from just below the smallest to the largest finite score of any group."""
    values = np.concatenate([np.asarray(s, np.float64).reshape(-1) for s in scores])
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise ValueError("no finite score to draw a performance profile of")
    low, high = float(values.min()), float(values.max())
    margin = 0.02 * (high - low) or 1.0
    return np.linspace(low - margin, high, points)


def _fraction_above(tau: np.ndarray) -> Callable:
    """Vectorised statistic: samples [..., R_t] (along axis -1) -> [T, ...], the fraction of all runs above each tau."""

    def fraction(*samples, axis=-1):
        pooled = np.moveaxis(np.concatenate(samples, axis=axis), axis, -1)
        return np.moveaxis(np.mean(pooled[..., None] > tau, axis=-2), -1, 0)

    return fraction


def performance_profile(
    scores: Sequence[np.ndarray] | np.ndarray, tau: np.ndarray, *, reps: int = BOOTSTRAP_RESAMPLES, seed: int = 0
) -> dict:
    """Fraction of runs whose score exceeds each tau, with a percentile-bootstrap band.

    Args:
      scores: [R] scores of one group's runs on one task, or a list of [R_t] per
        task (pooled; the band then resamples each task's runs apart: stratified).
      tau: [T] thresholds.

    Returns:
      {"fraction": [T], "low": [T] or None, "high": [T] or None} (None when a task has fewer than 2 runs).
    """
    samples = [np.asarray(scores, np.float64)] if isinstance(scores, np.ndarray) else [
        np.asarray(s, np.float64).reshape(-1) for s in scores]
    tau = np.asarray(tau, np.float64)
    statistic = _fraction_above(tau)
    fraction = statistic(*samples)
    if min(s.size for s in samples) < 2:
        return {"fraction": fraction, "low": None, "high": None}
    low, high = bootstrap_interval(tuple(samples), statistic, axis=-1, reps=reps, seed=seed, within_range=False,
                                   per_value=tau.size)
    return {"fraction": fraction, "low": low, "high": high}


def summary_groups(summary: dict, prefix: str = "") -> tuple[list[GroupRuns], list[dict]]:
    """The groups of a summary.json (or `summarise`'s dict) that a comparison takes, and those it leaves out.

    Args:
      summary: with "groups", "runs" and "solve_threshold".
      prefix: put before each group's index in its name ("DIR:" for several folders); none gives int names.

    Returns:
      (GroupRuns of every group that completed and has a run that did not diverge,
      [{"group": name, "reason": ...}] of the others: a group that stopped early under
      successive halving ("stopped_early", trained fewer updates), or whose every run diverged).
    """
    runs, threshold = summary["runs"], summary.get("solve_threshold")
    kept, left_out = [], []
    for group in summary["groups"]:
        name = f"{prefix}{group['index']}" if prefix else group["index"]
        if group.get("stopped_early"):
            left_out.append({"group": name, "reason": f"stopped early (successive halving, rung {group.get('rung')})"})
            continue
        members = [runs[i] for i in group["runs"]]
        diverged = np.array([r["diverged"] for r in members], bool)
        if diverged.all():
            left_out.append({"group": name, "reason": "every run diverged"})
            continue
        solved_at = None
        if threshold is not None:
            solved_at = np.array([np.nan if r["solved_at_env_steps"] is None else r["solved_at_env_steps"]
                                  for r in members], np.float64)
        label = settings_label(group.get("varied") or {}, group.get("varied") or {})
        kept.append(GroupRuns(
            name=name, seeds=np.array([r["seed"] for r in members], np.int64),
            final_returns=np.array([np.nan if r["final_return"] is None else r["final_return"] for r in members],
                                   np.float64),
            diverged=diverged, solved_at_env_steps=solved_at, label=label or f"group {group['index']}",
        ))
    return kept, left_out


def summary_comparison(summary: dict, *, reps: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> dict | None:
    """summary.json's "comparison": every completed group against the best by IQM; None with fewer than two.

    Returns:
      `compare_groups` of `summary_groups(summary)` plus "left_out" (the groups it
      left out, and why); None when fewer than two groups are left to compare.
    """
    groups, left_out = summary_groups(summary)
    if len(groups) < 2:
        return None
    return {**compare_groups(groups, reps=reps, seed=seed), "left_out": left_out}
