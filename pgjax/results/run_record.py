"""What a training command records in its run folder and prints after it: config.json before it trains,
the results and the report after.

    saved, points = read_resumable(resumable_config(folder, hold), run_fields)   # what --resume reads back
    out, run = run_folder(run, plan)                             # where the results go; the trackers checked
    made = start_run_folder(out, overwrite, hold, config_record(sys.argv, plan, run, given))
    tracker = open_trackers(run, out, plan, hold, started=True, made=made)
    trained = pgjax.running.plan.run_plan(plan, hooks(out, tracker, console, mode, stop))
    finish(out, plan, trained, start, tracker, console)         # summary.json last, then the report

config.json's fields (`config_record`) are the one statement of its schema; `pgjax.running.run_folder.resume`
checks them as untrusted data when a run is resumed (`check_saved_config`, `resumed_chunks`).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from pgjax.algo.config import Config
from pgjax.results import tables, tracking
from pgjax.results.confirmation import confirmation_fields, tuning_ranking
from pgjax.results.summary import halving_score, summarise
from pgjax.running.grid import GridPoint
from pgjax.running.run_folder import files, links, loading, resume, trust
from pgjax.running.run_folder.lock import FolderLock, hold_new_folder, remove_made_folders
from pgjax.running.strategy import Hooks, Plan, Trained


def config_record(command: list[str], plan: Plan, run: Any, given: dict) -> dict:
    """config.json: the command, the preset, the run options (a dataclass), the settings given, the search,
    the grid, the seeds, the chunk plan, the memory estimate, the devices and the package versions."""
    search = plan.search
    return {
        "command": command, "preset": plan.preset, "run": dataclasses.asdict(run), "given": given, "search": search,
        "grid": [{"index": p.index, "config": p.config.to_dict()} for p in plan.points],
        "seeds": {"first": run.seed, "count": run.num_seeds},
        "chunks": resume.chunk_plan(plan.chunks),
        "memory_estimate": plan.estimates, "num_devices": len(plan.devices),
        "versions": files.package_versions(files.DECIDING_PACKAGES + (  # TPE's points: Optuna's
            ("optuna",) if search and search.get("sampler") == "tpe" else ())),
        "devices": [str(d) for d in plan.devices],
    }


def run_folder(run: Any, plan: Plan) -> tuple[Path, Any]:
    """The run folder (--out, else a new one under runs/) and the run options as config.json records them
    (--tensorboard without DIR: the folder it means).

    Raises:
      ImportError: a tracker's extra is not installed (`pgjax.results.tracking.check_installed`): nothing written.
    """
    tracking.check_installed(run)
    out = run.out or files.default_out_dir(plan.points[0].config.static.env, plan.preset)
    if run.tensorboard == "":
        run = dataclasses.replace(run, tensorboard=str(tracking.tensorboard_dir(run, out)))
    return out, run


def start_run_folder(out: Path, overwrite: bool, hold: FolderLock, record: dict) -> Path | None:
    """Make (or, with `overwrite`, clear) the run folder `out`, held by `hold`, and write config.json there.

    Returns:
      The folders this command made (`remove_made_folders` takes them away again).

    Raises:
      ValueError, FileExistsError: the folder cannot be used (a clash, a damaged marker); the folders
        made for it are gone again and `hold` is released.
    """
    made = hold_new_folder(out, hold)
    try:
        files.prepare_out_dir(out, overwrite)
    except BaseException:
        hold.release()
        remove_made_folders(out, made)
        raise
    files.write_json(out / resume.CONFIG_FILE, record)
    return made


def resumable_config(run_dir: Path, hold: FolderLock | None = None) -> Path:
    """The config.json of the interrupted run in `run_dir`, held by `hold` first (`resume.hold_resumed_folder`:
    a multi-process run's is held later, by process 0).

    Raises:
      ValueError: one line: no such folder, no run in it, or a finished run; a folder that cannot be written;
        config.json or checkpoints/ (or a file under it) is a link leading outside the folder.
      FolderInUse: another process holds it.
    """
    if hold is not None:
        resume.hold_resumed_folder(run_dir, hold)
    if not run_dir.is_dir():
        raise ValueError(f"--resume {run_dir}: no such folder")
    config_file = links.inside(run_dir, run_dir / resume.CONFIG_FILE)
    if not config_file.exists():
        raise ValueError(f"{run_dir} holds no run to resume (no {resume.CONFIG_FILE})")
    if (run_dir / files.SUMMARY_FILE).exists():
        raise ValueError(f"{run_dir} holds a finished run; there is nothing to resume")
    return config_file


def read_resumable(config_file: Path, run_fields: dict[str, Any], env: str | None = None,
                   networks: tuple[str, ...] = (), weightings: tuple[str, ...] = (),
                   step_losses: tuple[str, ...] = ()) -> tuple[dict, list[GridPoint]]:
    """An interrupted run's config.json (`resumable_config`), checked as untrusted data, and its grid points.

    Args:
      run_fields: the type of each run option (`typing.get_type_hints` of the command's run options).
      env, networks, weightings, step_losses: the code the user names again (`--env`, `--network`,
        `--weighting`, `--step-loss`), which a folder's own names may be (`trust.confirm_configs`).

    Raises:
      ValueError: one line: another version's folder, a damaged config.json or a factory it names
        that was not named again.
    """
    saved = loading.load_json(config_file)
    if "run" not in saved:
        raise ValueError(f"{config_file.parent} was written by another pgjax version; it cannot be resumed by "
                         "this one")
    resume.check_saved_config(config_file, saved, run_fields)
    points = [GridPoint(p["index"], Config.from_dict(p["config"])) for p in saved["grid"]]
    trust.confirm_configs([p.config for p in points], str(config_file), env, networks, weightings, step_losses)
    return saved, points


def open_trackers(run: Any, out: Path, plan: Plan, hold: FolderLock, started: bool = False,
                  made: Path | None = None) -> tracking.Tracking:
    """The trackers of `run` (`pgjax.results.tracking.open_tracking`) for the plan's groups.

    Raises:
      ValueError: a tracker cannot start; where this command `started` the folder (`start_run_folder`, which
        made `made`), its files and the folders it made are gone again and `hold` is released, so that
        nothing looks resumable.
    """
    try:
        return tracking.open_tracking(run, out, plan.points, plan.num_seeds)
    except ValueError:
        if started:
            files.remove_run_files(out, this_command=True)
            hold.release()  # its lock file goes too
            remove_made_folders(out, made)
        raise


def hooks(out: Path, tracker: tracking.Tracking, console: Any, mode: str, stop: Any,
          records: bool = True) -> Hooks:
    """What a run of a plan reports to (`pgjax.running.strategy.Hooks`): the trackers, the progress on
    `console` in `mode`, `stop`, the results layer's score and ranking, and (`records`: process 0) config.json's
    record of a TPE search's asked points before each round trains (its "grid", and "search"'s "asked_points":
    the grid points from that one on are places not asked yet), so that --resume asks them again and checks them."""
    config_file = out / resume.CONFIG_FILE

    def on_round(asked: list[GridPoint]) -> None:
        saved = loading.load_json(config_file)
        saved["grid"][:len(asked)] = [{"index": p.index, "config": p.config.to_dict()} for p in asked]
        saved["search"]["asked_points"] = len(asked)
        files.write_json(config_file, saved)

    return Hooks(folder=out, console=console, mode=mode, should_stop=stop, on_segment=tracker.log_segment,
                 on_round=on_round if records else None, score=halving_score, rank=tuning_ranking)


def finish(out: Path, plan: Plan, trained: Trained, start: float, tracker: tracking.Tracking, console: Any) -> dict:
    """Write the results (`write_results`), log them to the trackers and close them, mark the folders they
    wrote (for --overwrite) and print the report: the table, the best group's flags, where the results are.
    Returns the summary."""
    try:
        summary = write_results(out, plan, trained, start)
        tracker.log_final(summary)
    finally:
        tracker.close()
    files.record_folders(out)  # the marker lists what the trackers wrote, for --overwrite
    tables.print_report(summary, console)
    print_best(summary, console)
    console.print(f"results in {out}/ (learning curves: {out / files.PLOT_FILE})", soft_wrap=True)
    for line in tracker.where():
        console.print(line, soft_wrap=True)
    return summary


def best_flags(group: dict) -> str:
    """The flags that train `group` (a summary.json group) again: its varied settings at full precision,
    e.g. "--learning-rate 0.012345678918063641 --entropy-coef 0.0031"."""
    def full(value) -> str:
        if isinstance(value, (list, tuple)):
            return ",".join(full(v) for v in value)
        return repr(value) if isinstance(value, float) else str(value)

    return " ".join(f"--{name.replace('_', '-')} {full(value)}" for name, value in group["varied"].items())


def print_best(summary: dict, console: Any) -> None:
    """With several groups, one line: the best by summary.json's "ranking" and its flags ready to paste."""
    from rich.markup import escape

    ranked = (summary.get("ranking") or {}).get("groups") or []
    if len(summary["groups"]) < 2 or not ranked:
        return
    best = next(group for group in summary["groups"] if group["index"] == ranked[0])
    statistics = best["statistics"] or {}
    iqm = statistics.get("iqm")
    shown = tables.format_return(iqm)
    console.print(f"best: group {best['index']} (IQM {shown} over its {len(best['runs'])} runs; ties go to fewer "
                  f"steps to solve, then the mean: summary.json's ranking) | its settings: "
                  f"{escape(best_flags(best))}", soft_wrap=True)


def write_results(out: Path, plan: Plan, trained: Trained, start: float) -> dict:
    """Write metrics.npz, params.msgpack (value_params.msgpack for learned baselines), the exports, the plot and
    summary.json (last) into `out`; returns the summary.

    summary.json marks a finished run: a write that fails before it leaves a folder that reads as interrupted.
    `trained` is `pgjax.running.plan.run_plan`'s: its results are one per compile group, or one per grid point
    under successive halving (its `outcome`), and its confirmation becomes summary.json's "confirmation"
    (`pgjax.results.confirmation.confirmation_fields`); the plan's `spec` gives the solve threshold, and what
    `pgjax.results.health.run_warnings` looks at for summary.json's "warnings"; `start` is the
    `time.perf_counter()` wall_seconds counts from.
    """
    import jax

    from pgjax.results.exports import write_exports
    from pgjax.results.health import below_random_policy, run_warnings
    from pgjax.results.plots import plot_summary  # matplotlib: only here
    from pgjax.results.random_policy import random_policy_of

    points, num_seeds, spec, outcome = trained.points, plan.num_seeds, plan.spec, trained.outcome
    by_point = {}
    for result, compile_group in zip(trained.results, trained.groups if outcome is None else [[p] for p in points]):
        for i, point in enumerate(compile_group):
            rows = slice(i * num_seeds, (i + 1) * num_seeds)
            by_point[point.index] = (jax.tree.map(lambda x: x[rows], result.metrics),
                                     jax.tree.map(lambda x: x[rows], result.state.params), result.seeds[rows],
                                     jax.tree.map(lambda x: x[rows], result.state.value_params))
    ordered = [by_point[i] for i in range(len(points))]
    metrics = [m for m, _, _, _ in ordered]
    files.write_metrics(out / files.METRICS_FILE, metrics, [s for _, _, s, _ in ordered])
    files.write_params(out / files.PARAMS_FILE, [p for _, p, _, _ in ordered])
    value_params = [v for _, _, _, v in ordered]
    if any(v is not None for v in value_params):  # the learned baselines' (pgjax.gradients compares with them)
        files.write_params(out / files.VALUE_PARAMS_FILE, value_params)
    # wall_seconds: summary.json, written last, is all that is left
    timings = {**trained.timings, "wall_seconds": time.perf_counter() - start}
    summary = summarise(points, num_seeds, plan.preset, trained.results, timings, spec.solve_threshold,
                        search=trained.search, halving=outcome)
    confirmed = trained.confirmed
    if confirmed is not None:
        tuning = {"first_seed": plan.seed, "num_seeds": num_seeds, "iqm": confirmed.tuning_iqm}
        summary["confirmation"] = confirmation_fields(confirmed.confirmation, confirmed.results,
                                                      spec.solve_threshold, tuning, confirmed.timings)
    # the random policy's return in each grid point's environment (its --env-kwargs and cap; computed once per
    # environment setting): beside the report's table, and what the warnings judge the runs against
    randoms = [random_policy_of(point.config.static) for point in points]
    by_index = {point.index: random for point, random in zip(points, randoms)}
    for group in summary["groups"]:
        group["random_policy"] = by_index[group["index"]].to_dict()
    distinct = {random for random in randoms}
    summary["random_policy"] = distinct.pop().to_dict() if len(distinct) == 1 else None
    warned = [*run_warnings(metrics, spec, randoms), below_random_policy(summary["groups"])]
    summary["warnings"] = [line for line in warned if line]  # lines: what looks like a run that cannot learn
    write_exports(out, summary, metrics)
    plot_summary(out, summary, metrics)
    files.write_json(out / files.SUMMARY_FILE, summary)
    return summary
