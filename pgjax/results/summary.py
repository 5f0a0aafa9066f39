"""The summary.json contract: from per-update metrics to per-run results and statistics over runs.

NumPy, after training. `summarise` builds the whole summary of a sweep;
`run_result` decides one run's final return and when it solved the environment;
`statistics_over_runs` gives the statistics over the runs that did not diverge.
Every interval is `pgjax.results.stats`'s (summary.json's "interval_method"
says which): a percentile bootstrap over runs for returns, Wilson's for the
solve rate.
"""

from __future__ import annotations

import jax
import numpy as np

from pgjax.results.comparison import RANKING_RULE, ranked_groups, summary_comparison, summary_groups
from pgjax.results.stats import INTERVAL_METHOD, group_statistics, iqm
from pgjax.running.devices import float_determinants
from pgjax.running.grid import GridPoint, varied_settings
from pgjax.running.halving import HalvingOutcome

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


def halving_score(metrics) -> float:
    """A configuration's score at a rung of successive halving: the IQM over its seeds of the final return.

    Args:
      metrics: `Metrics` of its runs, leaves [S seeds, u updates, ...].

    Returns:
      The IQM (`pgjax.results.stats.iqm`) of each run's final return after its
      u updates (`run_result`: the mean of its last 100 episodes), a run that
      has diverged counting as -inf (the worst), and so does a non-finite return.
    """
    finals = np.array([run_result(returns, steps, None)["final_return"]
                       for returns, steps in zip(metrics.episode_returns, metrics.env_steps)])
    finals[np.asarray(metrics.diverged)[:, -1] | ~np.isfinite(finals)] = -np.inf
    return float(iqm(finals))


def summarise(
    points: list[GridPoint], num_seeds: int, preset: str, results, timings: dict, threshold: float | None, *,
    search: dict | None = None,
    halving: HalvingOutcome | None = None,
) -> dict:
    """The summary.json contract: one entry per run, one per group (grid point), and statistics over runs.

    Args:
      points: the sweep's grid points; num_seeds: runs per point.
      preset: the preset's name, recorded.
      results: `pgjax.running.sweep.GroupResult`s holding every run (one per
        compile group from `train_sweep`, one per grid point from `train_halving`).
      timings: `train_sweep`'s info, plus "wall_seconds".
      threshold: the environment's solve threshold, or None.
      search: the ranges the points were drawn from (`pgjax.running.search.Search.record`:
        {"sampler", "seed", "num_samples", "ranges": {setting: {"low", "high", "scale"}}}),
        recorded as "search"; None for a plain grid.
      halving: `train_halving`'s outcome, for a sweep by successive halving:
        adds its fields (`halving_fields`).

    Returns:
      The summary.json dict. Statistics leave diverged runs out and say how
      many there were. "env_steps_total" counts every run's env steps;
      "env_steps_trained" those trained in this process (less the ones restored
      from checkpoints by a resume), which "env_steps_per_second" divides by
      "train_seconds". With two or more groups, "comparison" holds every group
      against the best by IQM (`pgjax.results.comparison.summary_comparison`).
    """
    runs = run_entries(points, num_seeds, results, threshold)
    settings = [point.hyperparameters() for point in points]
    varied = varied_settings(settings)
    groups = []
    for point, hyperparameters in zip(points, settings):
        indices = list(range(point.index * num_seeds, (point.index + 1) * num_seeds))
        groups.append({
            "index": point.index,
            "hyperparameters": hyperparameters,
            "varied": {name: hyperparameters[name] for name in varied},
            "runs": indices,
            **statistics_over_runs([runs[i] for i in indices], threshold),
        })
    steps_total = sum(r["env_steps"] for r in runs)
    steps_trained = steps_total - timings["resumed_env_steps"]
    # halving_fields marks the groups that stopped early, which the comparison leaves out: it goes first
    halving_entry = {} if halving is None else {"halving": halving_fields(halving, points, groups, results)}
    comparison = summary_comparison({"groups": groups, "runs": runs, "solve_threshold": threshold})
    ranked = ranked_groups(summary_groups({"groups": groups, "runs": runs, "solve_threshold": threshold})[0])
    return {
        "env": points[0].config.static.env,
        "preset": preset,
        "num_runs": len(runs),
        "num_groups": len(groups),
        "compile_groups": len({point.config.static for point in points}),
        "num_seeds": num_seeds,
        "search": search,
        "solve_threshold": threshold,
        "interval_method": INTERVAL_METHOD,
        **statistics_over_runs(runs, threshold),
        "env_steps_total": steps_total,
        "env_steps_trained": steps_trained,
        "wall_seconds": timings["wall_seconds"],
        "compile_seconds": timings["compile_seconds"],
        "compile_cache_hits": timings["compile_cache_hits"],
        "train_seconds": timings["run_seconds"],
        "env_steps_per_second": steps_trained / timings["run_seconds"] if timings["run_seconds"] else None,
        "devices": timings["devices"],
        "device_kind": jax.devices()[0].device_kind,
        "float_determinants": float_determinants(),
        "memory_bytes": timings["memory_bytes"],
        "chunks": timings["chunks"],
        "chunk_sizes": timings["chunk_sizes"],
        "resumed_updates": timings["resumed_updates"],
        "resumed_env_steps": timings["resumed_env_steps"],
        **halving_entry,
        "groups": groups,
        "ranking": {"rule": RANKING_RULE, "groups": [group.name for group in ranked]},
        "runs": runs,
        **({"comparison": comparison} if comparison is not None else {}),
    }


def run_entries(points: list[GridPoint], num_seeds: int, results, threshold: float | None) -> list[dict]:
    """summary.json's "runs": one entry per run (its seed, group, settings, result and divergence), in run order."""
    runs: list[dict] = [{} for _ in range(len(points) * num_seeds)]
    settings: dict[int, dict] = {}  # grid point -> its settings, made once (`hyperparameters` copies the config)
    for result in results:
        for i, index in enumerate(result.runs):
            point = points[index // num_seeds]
            if point.index not in settings:
                settings[point.index] = point.hyperparameters()
            episode_returns = result.metrics.episode_returns[i]
            env_steps = result.metrics.env_steps[i]
            diverged = result.metrics.diverged[i]
            runs[index] = {
                "seed": int(result.seeds[i]), "group": point.index, "hyperparameters": dict(settings[point.index]),
                **run_result(episode_returns, env_steps, threshold),
                "env_steps": int(env_steps[-1]), "episodes": int(episode_returns.size),
                "diverged": bool(diverged[-1]),
                "diverged_at_update": int(np.argmax(diverged)) + 1 if diverged[-1] else None,
            }
            if getattr(result.metrics, "gradient_snr", None) is not None:  # --gradient-stats
                runs[index].update(gradient_results(result.metrics.gradient_variance[i],
                                                    result.metrics.gradient_snr[i], result.metrics.gradient_cosine[i]))
    return runs


def gradient_results(variance: np.ndarray, snr: np.ndarray, cosine: np.ndarray) -> dict:
    """One run's gradient statistics over its updates (summary.json's run entry, runs.csv's columns).

    Args:
      variance, snr, cosine: [U] the run's `Metrics.gradient_variance`, `gradient_snr`, `gradient_cosine`.

    Returns:
      {"gradient_variance_median", "gradient_snr_median": medians over the updates,
      "gradient_cosine_mean": the mean over the updates after the first}; NaNs (a diverged run's, the first
      cosine) left out, NaN where nothing is left.
    """
    def over(values: np.ndarray, fn) -> float:
        values = np.asarray(values, np.float64)
        values = values[~np.isnan(values)]
        return float(fn(values)) if values.size else float("nan")

    return {"gradient_variance_median": over(variance, np.median), "gradient_snr_median": over(snr, np.median),
            "gradient_cosine_mean": over(cosine, np.mean)}


def statistics_over_runs(runs: list[dict], threshold: float | None) -> dict:
    """Statistics over the runs (summary.json entries of `runs`) that did not diverge.

    Returns:
      {"num_diverged", "solved_fraction" (None without a threshold or sane run),
      "final_return_mean" (NaN without a sane run), "statistics"
      (`pgjax.results.stats.group_statistics` of the final returns: mean,
      median and IQM with their percentile-bootstrap intervals, the solve rate
      with its Wilson interval, the env steps to first solve; None when every
      run diverged)}.
    """
    sane = [r for r in runs if not r["diverged"]]
    finals = np.array([r["final_return"] for r in sane], np.float64)
    solved = None if threshold is None else np.array([r["solved"] for r in sane], bool)
    solved_at = np.array([np.nan if r["solved_at_env_steps"] is None else r["solved_at_env_steps"] for r in sane])
    return {
        "num_diverged": len(runs) - len(sane),
        "solved_fraction": None if threshold is None or not sane else float(np.mean(solved)),
        "final_return_mean": float(finals.mean()) if sane else float("nan"),
        "statistics": group_statistics(finals, solved, solved_at) if sane else None,
    }


def halving_fields(outcome: HalvingOutcome, points: list[GridPoint], groups: list[dict], results) -> dict:
    """summary.json's "halving" entry; adds to each of `groups` (summary.json's) its rung fields.

    Each group gains "rung" (0-based index of the last rung it trained through),
    "stopped_early" (it was dropped before the last rung), "num_updates_trained"
    and "rung_scores" (its `halving_score` at each rung it reached).

    Args:
      results: one `GroupResult` per grid point (`train_halving`'s), metrics
        leaves [S, updates trained, ...].

    Returns:
      {"eta", "rungs", "rung_updates", "survivors" ([K] the grid points that
      trained through each rung, in that rung's ranking, best first), "winner"
      (the best at the last rung), "selection" and "full_sweep_estimate" (how
      both are made, in words), "env_steps" (every run's env steps, as trained),
      "env_steps_full_sweep" (an estimate, `full_sweep_env_steps`),
      "env_steps_saved" (their difference), "env_steps_full_sweep_own_rate"
      (the estimate without growth: each stopped run going on at its last rung's rate),
      "chunk_sizes" ([K] per rung, compile group -> its chunk size) and "packing"
      ([K] per rung, compile group -> how its runs were packed, in words, where
      a later rung chose: `pgjax.running.repack.SizeChoice.text`)}.
    """
    plan = outcome.plan
    steps = {point.index: np.asarray(r.metrics.env_steps, np.int64) for point, r in zip(points, results)}
    finalists = np.concatenate([steps[i] for i in outcome.survivors[-1]])
    spent = int(sum(s[:, -1].sum() for s in steps.values()))
    full, own_rate = full_sweep_env_steps(plan.rung_updates, list(steps.values()), finalists)
    for group in groups:
        rung = outcome.rung[group["index"]]
        group.update({"rung": rung, "stopped_early": rung < plan.rungs - 1,
                      "num_updates_trained": plan.rung_updates[rung],
                      "rung_scores": [outcome.scores[k][group["index"]] for k in range(rung + 1)]})
    return {
        "eta": plan.eta, "rungs": plan.rungs, "rung_updates": list(plan.rung_updates),
        "survivors": outcome.survivors, "winner": outcome.survivors[-1][0],
        "selection": "IQM over the seeds of each run's final return at the rung (mean of its last 100 episodes); "
                     "a diverged run counts as the worst; ties go to the lower group index",
        "env_steps": spent, "env_steps_full_sweep": full, "env_steps_saved": full - spent,
        "env_steps_full_sweep_own_rate": own_rate,
        "chunk_sizes": [{str(g): size for g, size in sizes.items()} for sizes in outcome.chunk_sizes],
        "packing": [{str(g): choice.text() for g, choice in choices.items()} for choices in outcome.choices],
        "full_sweep_estimate": "env steps trained, plus for each run stopped early at rung k: its env steps per "
                               "update over rung k, times how the finalists' env steps per update grew from rung k "
                               "to the end, times the updates it did not train",
    }


def full_sweep_env_steps(rung_updates: tuple[int, ...], env_steps: list[np.ndarray],
                         finalists: np.ndarray) -> tuple[int, int]:
    """Estimate the env steps a sweep stopped by successive halving would have spent in full.

    A run stopped at rung k, which trained updates b+1..u (b: the previous rung's
    updates, 0 for the first), did r = (E[u] - E[b]) / (u - b) env steps per update
    over its last rung. The finalists (the runs that trained every update) did A
    per update over the same updates and B per update over the rest, u+1..U; the
    stopped run is taken to grow as they did: r * B / A per update for U - u updates.

    Args:
      rung_updates: [K] updates at each rung's end, the last U.
      env_steps: per configuration [S, updates trained] cumulative env steps.
      finalists: [F, U] cumulative env steps of the finalists' runs.

    Returns:
      (estimate, own_rate): the estimate, and the one at r per update (without the growth).
    """
    full, own = 0.0, 0.0
    total = rung_updates[-1]
    for steps in env_steps:
        trained = steps.shape[1]
        full += steps[:, -1].sum()
        own += steps[:, -1].sum()
        if trained < total:
            begun = [0, *rung_updates][rung_updates.index(trained)]
            before = steps[:, begun - 1] if begun else 0
            rate = (steps[:, -1] - before).sum() / (trained - begun)
            finalists_before = finalists[:, begun - 1] if begun else 0
            rate_then = (finalists[:, trained - 1] - finalists_before).sum() / (trained - begun)
            rate_after = (finalists[:, -1] - finalists[:, trained - 1]).sum() / (total - trained)
            own += rate * (total - trained)
            full += rate * rate_after / rate_then * (total - trained)
    return int(round(full)), int(round(own))
