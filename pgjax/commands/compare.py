"""`python -m pgjax.compare`: paired comparisons of a sweep's groups, or aggregates over environments.

    python -m pgjax.compare runs/DIR                     # every group against the best (IQM) -> runs/DIR/
    python -m pgjax.compare runs/DIR --baseline 0        # ... against group 0
    python -m pgjax.compare runs/A runs/B --out cmp/     # groups of two folders of one environment: "runs/A:0", ...
    python -m pgjax.compare runs/cartpole runs/acrobot   # folders of different environments: normalised aggregates

Writes comparison.json, performance_profiles.png and (one environment)
probability_of_improvement.png into DIR for one folder, else into the current
folder, or into --out: over files of those names only where they are an
earlier comparison's (`pgjax.commands.outputs`). The statistics are
`pgjax.results.comparison`'s; this module parses, calls, prints and writes.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import tyro
from rich.console import Console
from rich.table import Table

from pgjax.algo.config import setting
from pgjax.commands.outputs import Own, check_output_file, image, json_object
from pgjax.commands.process import run_command
from pgjax.commands.shared import FOLDER_ERRORS, folder_error, make_console, parse
from pgjax.results.stats import BOOTSTRAP_RESAMPLES, iqm
from pgjax.results.tables import format_return, return_decimals

if TYPE_CHECKING:
    from pgjax.results import comparison as cmp

COMPARISON_FILE = "comparison.json"
# Bounds of --resamples: below 100 a 95% interval's ends rest on a handful of resamples; above 1,000,000 the work
# (scipy.stats.bootstrap holds resamples x runs values for every interval of every group) takes hours, while the
# intervals' own Monte Carlo error is already far below the seeds' spread at the default 2,000.
MIN_RESAMPLES, MAX_RESAMPLES = 100, 10**6


@dataclasses.dataclass
class Args:
    """Compare the groups of run folders: paired differences and P(improvement), or normalised aggregates."""

    dirs: tyro.conf.Positional[tuple[Path, ...]] = setting(
        dataclasses.MISSING, "Run folders written by `python -m pgjax.train`: one, several of one environment, or "
                             "one per environment.")
    baseline: str | None = setting(None, "Group to compare against: its index (one folder), or DIR:index (several "
                                         "folders); default the best by IQM (ties: fewer steps to solve, then "
                                         "the mean).")
    out: Path | None = setting(None, "Folder to write comparison.json and the plots into (made if missing, in "
                                     "a folder that exists; files of those names there only if they are an "
                                     "earlier comparison's); default DIR for one folder, else the current folder.")
    resamples: int = setting(BOOTSTRAP_RESAMPLES, "Bootstrap resamples of every interval (seed 0).")
    env: tuple[str, ...] | None = setting(None, "Environment factories (package.module:factory) the folders were "
                                                "trained on, named again: folders of different environments are "
                                                "normalised by a random policy's return, played in each "
                                                "environment, and pgjax imports no code a run folder names.")


def _groups_of_one_environment(dirs: list[Path], summaries: list[dict]) -> tuple[list[cmp.GroupRuns], list[dict]]:
    """Every folder's completed groups; named by index for one folder, "DIR:index" for several, and then
    labelled by the folder's name and the settings that differ between the groups of every folder."""
    from pgjax.results import comparison as cmp
    from pgjax.results.tables import settings_label
    from pgjax.running.grid import varied_settings

    names = varied_settings([g["hyperparameters"] for s in summaries for g in s["groups"]])
    groups, left_out = [], []
    for run_dir, summary in zip(dirs, summaries):
        prefix = f"{run_dir}:" if len(dirs) > 1 else ""
        kept, dropped = cmp.summary_groups(summary, prefix=prefix)
        if prefix:
            def label(group: cmp.GroupRuns) -> str:
                index = int(str(group.name)[len(prefix):])
                settings = summary["groups"][index]["hyperparameters"]
                return f"{run_dir.name}: {settings_label(settings, names) or f'group {index}'}"

            kept = [dataclasses.replace(g, label=label(g)) for g in kept]
        groups.extend(kept)
        left_out.extend(dropped)
    return groups, left_out


def _interval(found: dict | None, key: str, digits: int | None) -> str:
    """ "+0.12 [0.05, 0.20]": `found[key]` (a difference signed) and its "ci95", at `digits` decimals (None: the
    decimals the returns need, `pgjax.results.tables.return_decimals`); "-" without it."""
    if not found or found.get(key) is None:
        return "-"
    if digits is None:
        digits = return_decimals([found[key], *(found.get("ci95") or ())])
    low_high = "" if found.get("ci95") is None else f" [{found['ci95'][0]:.{digits}f}, {found['ci95'][1]:.{digits}f}]"
    return f"{found[key]:+.{digits}f}{low_high}" if key == "mean" else f"{found[key]:.{digits}f}{low_high}"


def compare_one_environment(dirs: list[Path], summaries: list[dict], args: Args, out: Path, console: Console) -> dict:
    """Paired comparisons of every completed group against the baseline; prints, writes, returns comparison.json."""
    from pgjax.results import comparison as cmp
    from pgjax.results.comparison_plots import (
        IMPROVEMENT_FILE,
        PROFILE_FILE,
        plot_improvement,
        plot_performance_profiles,
    )
    from pgjax.results.confirmation import checked_confirmation
    from pgjax.running.run_folder import files
    from pgjax.running.run_folder.files import SUMMARY_FILE

    groups, left_out = _groups_of_one_environment(dirs, summaries)
    confirmations = [checked_confirmation(s, d / SUMMARY_FILE) for d, s in zip(dirs, summaries)]  # before
    if len(groups) < 2:  # anything is written
        raise ValueError(f"{len(groups)} completed group{'s' * (len(groups) != 1)} in {', '.join(map(str, dirs))}: "
                         "nothing to compare (train several settings, e.g. --lr 0.003 0.03, or give several folders)")
    result = {**cmp.compare_groups(groups, args.baseline, reps=args.resamples), "left_out": left_out}
    scores = [g.final_returns[g.sane()] for g in groups]
    tau = cmp.tau_grid(scores)
    profiles = [{"group": g.name, "label": g.label, **cmp.performance_profile(s, tau, reps=args.resamples)}
                for g, s in zip(groups, scores)]
    env = summaries[0]["env"]
    data = {"dirs": [str(d) for d in dirs], "env": env, "solve_threshold": summaries[0].get("solve_threshold"),
            "comparison": result, "performance_profile": {"tau": tau, "groups": profiles}}
    plot_performance_profiles(profiles, tau, out / PROFILE_FILE, title=f"{env}: performance profiles",
                              xlabel="final return (tau)")
    plot_improvement(result, out / IMPROVEMENT_FILE, title=f"{env}: probability of improvement")

    iqms = {g.name: iqm(s) if s.size else np.nan for g, s in zip(groups, scores)}
    runs = {g.name: f"{int(g.sane().sum())}/{g.seeds.size}" for g in groups}
    base = result["baseline"]
    table = Table(title=f"{env}: each group against the baseline, group {base} ({result['baseline_label']}; "
                        f"{result['baseline_rule']}, IQM {format_return(iqms[base])})",
                  caption="difference: mean over seeds of group - baseline (runs paired by seed); P(improvement): "
                          "P(a run of the group beats one of the baseline), ties 1/2; [95% percentile-bootstrap CI]")
    steps = any(entry["env_steps_to_solve"] is not None for entry in result["groups"])
    columns = ["group", "settings", "runs", "IQM final return", "difference [95% CI]", "pairs",
               "P(improvement) [95% CI]"]
    if steps:
        columns += ["steps to solve: difference [95% CI]", "P(fewer steps) [95% CI]"]
    for column in columns:
        table.add_column(column, justify="left" if column == "settings" else "right")
    decimals = return_decimals(iqms.values(), tell_apart=False)
    for entry in result["groups"]:
        final = entry["final_return"]
        row = [str(entry["group"]), entry["label"], runs[entry["group"]], format_return(iqms[entry["group"]], decimals),
               _interval(final["difference"], "mean", None), str(final["difference"]["pairs"]),
               _interval(final["probability_of_improvement"], "probability", 2)]
        if steps:
            solve = entry["env_steps_to_solve"] or {}
            row += [_interval(solve.get("difference"), "mean", 0),
                    _interval(solve.get("probability_of_fewer"), "probability", 2)]
        table.add_row(*row)
    console.print(table)
    for dropped in left_out:
        console.print(f"left out: group {dropped['group']}: {dropped['reason']}")
    _print_confirmations(dirs, confirmations, data, console)
    files.write_json(out / COMPARISON_FILE, data)
    return data


def _print_confirmations(dirs: list[Path], confirmations: list[dict | None], data: dict, console: Console) -> None:
    """Each folder's confirmation on fresh seeds (`checked_confirmation`: its figures recomputed from its
    runs): a table and the winner's line; comparison.json's "confirmation" gets {folder: its winner}."""
    from pgjax.results.tables import print_confirmation

    for folder, confirmation in zip(dirs, confirmations):
        if confirmation is not None:
            console.print(f"{folder}: the search's winner on fresh seeds")
            print_confirmation(confirmation, console)
            data.setdefault("confirmation", {})[str(folder)] = confirmation["winner"]


def compare_environments(dirs: list[Path], summaries: list[dict], args: Args, out: Path, console: Console) -> dict:
    """Normalised IQM and optimality gap of each group index over the folders (one per environment)."""
    from pgjax.results import aggregates
    from pgjax.results import comparison as cmp
    from pgjax.results.comparison_plots import PROFILE_FILE, plot_performance_profiles
    from pgjax.results.random_policy import random_policy_of  # JAX and the environment's package
    from pgjax.running.run_folder import files, trust
    from pgjax.running.run_folder.files import SUMMARY_FILE

    per_folder = [cmp.summary_groups(summary) for summary in summaries]
    names = [sorted(g.name for g in kept) for kept, _ in per_folder]
    if any(n != names[0] for n in names):
        listed = "; ".join(f"{d}: {', '.join(map(str, n)) or 'none'}" for d, n in zip(dirs, names))
        raise ValueError(f"folders of different environments must hold the same completed groups (matched by "
                         f"index) to aggregate; they hold {listed}")
    if not names[0]:
        raise ValueError("no completed group with a run that did not diverge in these folders: nothing to aggregate")
    for run_dir, summary in zip(dirs, summaries):  # before any environment is built
        trust.confirm(summary["env"], args.env or (), "env", str(run_dir / SUMMARY_FILE))
    statics = [environment_settings(run_dir, summary) for run_dir, summary in zip(dirs, summaries)]
    envs = []
    for run_dir, summary, (kept, _), static in zip(dirs, summaries, per_folder, statics):
        threshold = summary.get("solve_threshold")
        best = max(float(np.max(g.final_returns[g.sane()])) for g in kept)
        reference = threshold if threshold is not None else best
        random_score = random_policy_of(static)  # with the run's --env-kwargs and --max-episode-steps
        envs.append({"dir": str(run_dir), "env": summary["env"], "env_kwargs": list(static.env_kwargs),
                     "max_episode_steps": static.max_episode_steps, "random_score": random_score.mean,
                     "random_score_stderr": random_score.stderr, "reference_score": reference,
                     "reference": "solve threshold" if threshold is not None else "best final return of these runs"})
    labels = {g.name: g.label for g in per_folder[0][0]}
    rows, profiles = [], []
    normalised = {name: [] for name in names[0]}
    for env, (kept, _) in zip(envs, per_folder):
        for g in kept:
            normalised[g.name].append(aggregates.normalise(g.final_returns[g.sane()], env["random_score"],
                                                    env["reference_score"]))
    tau = cmp.tau_grid([s for per_env in normalised.values() for s in per_env])
    for name in names[0]:
        rows.append({"group": name, "label": labels[name], **aggregates.aggregate_scores(normalised[name],
                                                                                  reps=args.resamples)})
        profiles.append({"group": name, "label": labels[name],
                         **cmp.performance_profile(normalised[name], tau, reps=args.resamples)})
    left_out = [dropped for _, folder_left_out in per_folder for dropped in folder_left_out]
    data = {"dirs": [str(d) for d in dirs], "environments": envs, "aggregate": rows, "left_out": left_out,
            "method": {"score": "(final return - random policy's) / (reference - random policy's)",
                       "iqm": "IQM over every run of every environment", "optimality_gap": "mean of max(0, 1 - score)",
                       "interval": "stratified percentile bootstrap (runs resampled within each environment)",
                       "resamples": args.resamples, "seed": 0},
            "performance_profile": {"tau": tau, "groups": profiles}}
    files.write_json(out / COMPARISON_FILE, data)
    plot_performance_profiles(profiles, tau, out / PROFILE_FILE, title=f"{len(dirs)} environments: normalised scores",
                              xlabel="normalised score (tau): 0 random policy, 1 reference")
    print_environments(data, console)
    return data


def environment_settings(run_dir: Path, summary: dict):
    """The `StaticConfig` of a folder's first run: its environment as it trained (--env, --env-kwargs,
    --max-episode-steps), for the random policy's score (`pgjax.results.random_policy.random_policy_of`).

    Raises:
      ValueError: the folder's runs trained different --env-kwargs or --max-episode-steps (one folder is one
        environment here; compare such a folder alone).
    """
    from pgjax.running.run_folder.loading import run_config

    fields = ("env_kwargs", "max_episode_steps")
    settings = {tuple(str(run["hyperparameters"].get(name)) for name in fields) for run in summary["runs"]}
    if len(settings) > 1:
        raise ValueError(f"{run_dir} holds runs of several --env-kwargs or --max-episode-steps: aggregating "
                         "folders takes one environment per folder; compare that folder alone")
    return run_config(summary, 0, run_dir).static


def print_environments(data: dict, console: Console) -> None:
    """The table of `compare_environments`' aggregates, then each environment's reference scores and what was left
    out."""
    envs, rows = data["environments"], data["aggregate"]
    table = Table(title=f"normalised final returns over {', '.join(e['env'] for e in envs)}",
                  caption="score: 0 = uniformly random policy, 1 = solve threshold (else the best final return "
                          "compared); [95% stratified percentile-bootstrap CI]")
    for column in ("group", "settings", "runs", "IQM [95% CI]", "optimality gap [95% CI]"):
        table.add_column(column, justify="left" if column == "settings" else "right")
    for row in rows:
        table.add_row(str(row["group"]), row["label"], "+".join(map(str, row["runs"])),
                      _interval({"value": row["iqm"], "ci95": row["iqm_ci95"]}, "value", 2),
                      _interval({"value": row["optimality_gap"], "ci95": row["optimality_gap_ci95"]}, "value", 2))
    console.print(table)
    for env in envs:
        decimals = return_decimals([env["random_score"], env["reference_score"]])
        console.print(f"{env['env']} ({env['dir']}): random policy {format_return(env['random_score'], decimals)}, "
                      f"reference {format_return(env['reference_score'], decimals)} ({env['reference']})")
    for dropped in data["left_out"]:
        console.print(f"left out: group {dropped['group']}: {dropped['reason']}")


def comparison_files() -> dict[str, Own]:
    """The files compare writes into --out, and what an earlier comparison's look like (`pgjax.commands.outputs`)."""
    from pgjax.results.comparison_plots import IMPROVEMENT_FILE, PROFILE_FILE

    return {COMPARISON_FILE: json_object(f'a {COMPARISON_FILE} of pgjax.compare (with "dirs" and '
                                         f'"performance_profile")', ("dirs", "performance_profile")),
            PROFILE_FILE: image("png"), IMPROVEMENT_FILE: image("png")}


def compare_folders(args: Args, console: Console) -> Path:
    """Check the input, then compare; returns the comparison.json written. ValueError: bad input, nothing written."""
    from pgjax.running.run_folder import loading

    dirs = list(args.dirs)
    if not dirs:
        raise ValueError("give at least one run folder")
    if not MIN_RESAMPLES <= args.resamples <= MAX_RESAMPLES:
        raise ValueError(f"--resamples must be from {MIN_RESAMPLES:,} to {MAX_RESAMPLES:,} (more takes hours and "
                         f"changes the intervals by less than the seeds do), got {args.resamples:,}")
    for run_dir in dirs:
        loading.check_run_dir(run_dir)
    if len({d.resolve() for d in dirs}) < len(dirs):
        raise ValueError("a run folder is given twice")
    out = args.out or (dirs[0] if len(dirs) == 1 else Path("."))
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file: give a folder (one that does not exist is made)")
    made = not out.exists()
    if made and not out.parent.is_dir():
        raise ValueError(f"no such folder for --out: {out.parent} (--out makes its own folder, not the ones above)")
    if made and out.suffix.lower() in (".json", ".png"):
        raise ValueError(f"--out {out} names a file; compare writes {COMPARISON_FILE} and its plots into a folder: "
                         f"give a folder (one that does not exist is made)")
    for name, own in ({} if made else comparison_files()).items():  # a folder there already: its files
        check_output_file("--out", out / name, own)
    try:
        if made:
            out.mkdir()
        return _compare_into(dirs, args, out, console)
    except BaseException:
        if made and out.is_dir() and not any(out.iterdir()):  # bad input writes nothing: not even the folder
            out.rmdir()
        raise


def _compare_into(dirs: list[Path], args: Args, out: Path, console: Console) -> Path:
    """`compare_folders` once its input is checked and `out` exists."""
    from pgjax.running.run_folder import loading, trust
    from pgjax.running.run_folder.files import SUMMARY_FILE

    summaries = [loading.load_summary(d) for d in dirs]
    envs = [s["env"] for s in summaries]
    if not all(isinstance(e, str) for e in envs):
        damaged = next(d for d, e in zip(dirs, envs) if not isinstance(e, str))
        raise ValueError(f"{damaged / SUMMARY_FILE} names no environment: the run folder is damaged")
    trust.check_given(args.env or (), set(envs), "env", ", ".join(str(d) for d in dirs))
    if len(set(envs)) == 1:
        compare_one_environment(dirs, summaries, args, out, console)
    elif len(set(envs)) == len(envs):
        if args.baseline is not None:
            raise ValueError("--baseline compares groups of one environment; folders of different environments "
                             "are aggregated, with no baseline")
        compare_environments(dirs, summaries, args, out, console)
    else:
        listed = ", ".join(f"{d} ({e})" for d, e in zip(dirs, envs))
        raise ValueError(f"give folders of one environment, or one folder per environment; got {listed}")
    return out / COMPARISON_FILE


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse(Args, argv, "pgjax.compare", __doc__.split("\n")[0])
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 2
    console = make_console()
    try:
        path = compare_folders(args, console)
    except FOLDER_ERRORS as error:
        return folder_error(error)
    console.print(f"comparison in {path}, plots beside it")
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
