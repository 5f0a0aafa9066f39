"""A search's results on fresh seeds: which configurations to confirm, and summary.json's "confirmation".

`tuning_ranking` orders the search's completed grid points by the one ranking
(`pgjax.results.comparison.RANKING_RULE`) before its summary is written;
`pgjax.running.confirm` trains the best of them and the reference again on
seeds the search did not use; `confirmation_fields` reports them: per
configuration the statistics over the confirmation seeds, and for the winner
(the tuning's best, not the best on the confirmation seeds, whose figure would
be biased again) its IQM with its interval and, paired by seed, its
probability of improvement over the reference and the mean difference.
"""

from __future__ import annotations

import numpy as np

from pgjax.results.comparison import paired_difference, paired_improvement, rank_key, ranked_groups, summary_groups
from pgjax.results.summary import run_entries, statistics_over_runs
from pgjax.running.confirm import Confirmation
from pgjax.running.grid import GridPoint, varied_settings

RUN_KEYS = ("seed", "final_return", "solved", "diverged", "solved_at_env_steps", "env_steps")  # of each run kept
CONFIRMATION_RULE = ("the tuning's best configurations by its ranking and the reference trained again from scratch "
                     "on seeds the tuning did not use; the winner is the tuning's best, its confirmed figures come "
                     "from these seeds alone; P(improvement): the share of seeds on which the winner's final "
                     "return beats the reference's (a tie counts 1/2), percentile bootstrap over seed pairs")


def tuning_ranking(points: list[GridPoint], num_seeds: int, results, threshold: float | None,
                   stopped_early: set[int] = frozenset()) -> tuple[list[int], dict[int, float]]:
    """The search's grid points that completed with a sane run, best first (summary.json's "ranking").

    Args:
      points, num_seeds, results: the search's (`pgjax.results.summary.summarise`'s arguments).
      threshold: the environment's solve threshold (None: none).
      stopped_early: grid points successive halving stopped before the last rung (not ranked).

    Returns:
      (their indices best first, {index: IQM of its sane runs' final returns}).
    """
    runs = run_entries(points, num_seeds, results, threshold)
    groups = [{"index": p.index, "runs": list(range(p.index * num_seeds, (p.index + 1) * num_seeds)),
               "stopped_early": p.index in stopped_early} for p in points]
    ranked = ranked_groups(summary_groups({"groups": groups, "runs": runs, "solve_threshold": threshold})[0])
    return [group.name for group in ranked], {group.name: rank_key(group)[0] for group in ranked}


def confirmation_fields(confirmation: Confirmation, results, threshold: float | None, tuning: dict,
                        timings: dict) -> dict:
    """summary.json's "confirmation".

    Args:
      confirmation: what was trained (`pgjax.running.confirm.confirmation_points`).
      results: `train_confirmation`'s results (one `GroupResult` per compile group).
      threshold: the environment's solve threshold.
      tuning: {"first_seed", "num_seeds", "iqm": {grid point index: its IQM on the tuning seeds}}.
      timings: `train_confirmation`'s info.

    Returns:
      {"rule", "reference" (the reference's position in "configurations"), "seeds" ([first, last]),
      "tuning_seeds" ([first, last]),
      "configurations" (per configuration: "role" ("winner", "runner-up",
      "reference"; the reference may also be one of the others: "winner,
      reference"), "tuning_group" (its grid point index in the search, None
      for the reference), "hyperparameters", "varied", "tuning_iqm", its
      statistics over the confirmation seeds (as a group's), "runs" (seed,
      final_return, solved, diverged, solved_at_env_steps, env_steps), "versus_reference"
      ({"probability_of_improvement": `paired_improvement` over the reference,
      "difference": `paired_difference`, mean over seeds of it - the reference})),
      "winner" ({"tuning_group", "tuning_iqm", "iqm", "iqm_ci95", and its
      "versus_reference" entries}),
      "env_steps", "train_seconds", "compile_seconds"}.
    """
    points, n = confirmation.points, confirmation.num_seeds
    runs = run_entries(points, n, results, threshold)
    varied = varied_settings([p.hyperparameters() for p in points])
    configurations = []
    for point, tuned in zip(points, confirmation.tuned):
        mine = runs[point.index * n:(point.index + 1) * n]
        roles = ["winner" if point.index == 0 else "runner-up"] if tuned is not None else []
        roles += ["reference"] if point.index == confirmation.reference else []
        configurations.append({
            "role": ", ".join(roles), "tuning_group": tuned, "hyperparameters": point.hyperparameters(),
            "varied": {name: point.hyperparameters()[name] for name in varied},
            "tuning_iqm": None if tuned is None else tuning["iqm"].get(tuned),
            "runs": [{key: r[key] for key in RUN_KEYS} for r in mine]})
    _add_figures(configurations, confirmation.reference, threshold)
    return {
        "rule": CONFIRMATION_RULE, "reference": confirmation.reference,
        "seeds": [confirmation.first_seed, confirmation.first_seed + n - 1],
        "tuning_seeds": [tuning["first_seed"], tuning["first_seed"] + tuning["num_seeds"] - 1],
        "configurations": configurations,
        "winner": _winner(configurations[0]),
        "env_steps": sum(r["env_steps"] for r in runs),
        "train_seconds": timings["run_seconds"], "compile_seconds": timings["compile_seconds"],
    }


def _add_figures(configurations: list[dict], reference: int, threshold: float | None) -> None:
    """Add to each configuration (with its "runs") its statistics over them and its "versus_reference"."""
    for configuration in configurations:
        configuration.update(statistics_over_runs(configuration["runs"], threshold))
    for configuration in configurations:
        finals, base, dropped = _seed_pairs(configuration["runs"], configurations[reference]["runs"])
        configuration["versus_reference"] = {
            "probability_of_improvement": paired_improvement(finals, base),
            "difference": {**paired_difference(finals, base), "dropped_seeds": dropped}}


def checked_confirmation(summary: dict, path) -> dict | None:
    """summary.json's "confirmation" (None without one) for a reader: its structure checked, and every figure
    recomputed from its runs (what the file says of them is not trusted).

    Raises:
      ValueError: one line naming `path`: the entry is not a confirmation.
    """
    from pgjax.running.run_folder.loading import damaged

    entry = summary.get("confirmation")
    if entry is None:
        return None
    number = lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
    whole = lambda v: isinstance(v, int) and not isinstance(v, bool)
    try:
        configurations = entry["configurations"]
        reference = entry["reference"]
        ok = (isinstance(configurations, list) and configurations and whole(reference)
              and 0 <= reference < len(configurations) and all(whole(s) for s in entry["seeds"])
              and all(whole(s) for s in entry["tuning_seeds"]) and len(entry["seeds"]) == 2)
        ok = ok and all(isinstance(c["role"], str) and (c["tuning_group"] is None or whole(c["tuning_group"]))
                        and isinstance(c["varied"], dict) and number(c["tuning_iqm"]) and all(
                            whole(r["seed"]) and number(r["final_return"]) and isinstance(r["diverged"], bool)
                            and isinstance(r["solved"], bool) and number(r["solved_at_env_steps"])
                            for r in c["runs"]) for c in configurations)
    except (KeyError, TypeError):
        ok = False
    if not ok or not all(set(c["varied"]) == set(configurations[0]["varied"]) for c in configurations):
        raise damaged(path, 'holds a "confirmation" that is not one pgjax writes')
    configurations = [{key: c[key] for key in ("role", "tuning_group", "varied", "tuning_iqm", "runs")}
                      for c in configurations]
    _add_figures(configurations, reference, summary.get("solve_threshold"))
    return {**{k: entry[k] for k in ("seeds", "tuning_seeds")}, "reference": reference,
            "configurations": configurations, "winner": _winner(configurations[0])}


def _winner(configuration: dict) -> dict:
    """summary.json's confirmation "winner" from the first configuration's entry (with its figures)."""
    statistics = configuration["statistics"] or {}
    return {"tuning_group": configuration["tuning_group"], "tuning_iqm": configuration["tuning_iqm"],
            "iqm": statistics.get("iqm"), "iqm_ci95": statistics.get("iqm_ci95"),
            **configuration["versus_reference"]}


def _seed_pairs(runs: list[dict], baseline: list[dict]) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """The final returns of `runs` and `baseline` (run entries) on their shared seeds, in seed order, where
    neither run diverged or has no finite return; and the shared seeds left out for that."""
    def sane(entries):
        return {r["seed"]: r["final_return"] for r in entries
                if not r["diverged"] and r["final_return"] is not None and np.isfinite(r["final_return"])}

    mine, theirs = sane(runs), sane(baseline)
    shared = sorted({r["seed"] for r in runs} & {r["seed"] for r in baseline})
    kept = [s for s in shared if s in mine and s in theirs]
    return (np.array([mine[s] for s in kept], np.float64), np.array([theirs[s] for s in kept], np.float64),
            [s for s in shared if s not in kept])
