"""`python -m pgjax.train`: train a grid of settings x many seeds of REINFORCE in one call.

    python -m pgjax.train                                # 64 seeds, CartPole-v1, preset "default"
    python -m pgjax.train --num-seeds 32 --lr 0.001 0.003 0.01 0.03    # 4 x 32 runs, one compile
    python -m pgjax.train --hidden 32 128 --lr 0.01 0.03 # 2 compile groups x 2 learning rates
    python -m pgjax.train --lr 1e-3:1e-1:log --num-samples 32  # 32 learning rates drawn (Sobol'), one compile
    python -m pgjax.train --resume runs/<folder>         # continue an interrupted run
    python -m pgjax.train --help                         # every flag, with the preset's values

Flags left out take the preset's value; a flag given several values sweeps them
(every combination, each with the same `--num-seeds` seeds). The flags are the
fields of `pgjax.algo.config` and `pgjax.commands.options.RunOptions` (`pgjax.commands.options`).
Results go to `--out` (default: a new folder under runs/); `pgjax.results.outputs`
describes the files.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()  # so that wall_seconds counts the imports too

import sys

from pgjax.commands.shared import ABORTED, StopRequest, exit_process, make_console, parse, prepare_process, run_command
from pgjax.running.devices import start_distributed, use_compile_cache


def prepare(argv: list[str]) -> None:
    """`prepare_process(argv)`; a --distributed that cannot start ends the process with one line (exit status 2)."""
    try:
        prepare_process(argv)
    except ValueError as error:
        print(f"error: --distributed: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    prepare(sys.argv)  # before gymnax starts JAX's backends

import contextlib
import dataclasses
import signal
import typing
from pathlib import Path
from typing import Any

import jax
from rich.console import Console
from rich.markup import escape

from pgjax.algo.config import Config
from pgjax.algo.envs import make_env
from pgjax.algo.networks import make_policy
from pgjax.algo.presets import ENV_PRESETS
from pgjax.commands import grid_settings, options
from pgjax.commands.options import RunOptions
from pgjax.results import loading, outputs, tracking, trust
from pgjax.results.exports import write_exports
from pgjax.results.outputs import default_out_dir, prepare_out_dir
from pgjax.results.summary import halving_score, summarise
from pgjax.results.tables import print_report
from pgjax.running import grid, resume
from pgjax.running.folder_lock import FolderLock, hold_new_folder, remove_made_folders
from pgjax.running.halving import HalvingPlan, train_halving
from pgjax.running.memory import check_host_memory, format_bytes
from pgjax.running.progress import SweepProgress
from pgjax.running.search import balance_note
from pgjax.running.sweep import Chunk, Interrupted, plan_chunks, train_sweep

# The options a --resume takes from its own command line, not from the folder's config.json.
RESUME_OPTIONS = ("resume", "quiet", "compile_cache", "tensorboard", "wandb", "distributed")


@dataclasses.dataclass(frozen=True)
class Sweep:
    """What a training command trains: the preset's name, the grid points and the run options.

    `search` is the record of the ranges the points were drawn from
    (`pgjax.running.search.Search.record`), None for a plain grid; `notes`
    lines to print before the plan.
    """

    preset: str
    points: list[grid.GridPoint]
    run: RunOptions
    search: dict | None = None
    notes: tuple[str, ...] = ()


def parse_args(argv: list[str] | None = None) -> Any:
    """The command line, parsed into `options.train_arguments(preset, env)` (usage errors: one line, exit 2)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    preset, env = options.prescan(argv, "--preset") or "default", options.prescan(argv, "--env")
    description = f"{__doc__.splitlines()[0]}\n\n{options.environments_text()}"
    return parse(options.train_arguments(preset, env), argv, "pgjax.train", description)


def sweep_of(args: Any) -> Sweep:
    """The sweep the arguments ask for (from the run folder's config.json with --resume)."""
    run = options.run_options(args)
    options.check_run_options(run)
    if run.resume is not None:
        return resumed_sweep(args, run)
    given = grid_settings.given_settings(args)
    search = grid_settings.search_of(given, run.num_samples, run.sampler, run.sampler_seed, run.seed)
    points = grid_settings.resolve_grid(args.preset, given, search, run.num_seeds)
    halving_plan(points, run)
    return Sweep(args.preset, points, run, search.record() if search else None)


def halving_plan(points: list[grid.GridPoint], run: RunOptions) -> HalvingPlan | None:
    """The rungs of --halving (None without it).

    Raises:
      ValueError: (naming the flags) --rungs without --halving, grid points
        of different --num-updates, ETA < 2, rungs < 1 or rungs that collapse.
    """
    if run.halving is None:
        if run.rungs is not None:
            raise ValueError("--rungs sets the rungs of successive halving: give --halving ETA with it")
        return None
    budgets = sorted({p.config.static.num_updates for p in points})
    if len(budgets) > 1:
        raise ValueError(f"--halving needs the same number of updates for every grid point, and these train "
                         f"{', '.join(map(str, budgets))}: give --num-updates instead of --num-episodes")
    return HalvingPlan.make(budgets[0], run.halving, run.rungs)


def rung_progress(console: Console, mode: str, plan: HalvingPlan, num_seeds: int):
    """`train_halving`'s rung_progress: a line per rung, then `SweepProgress` over the rung's chunks."""

    @contextlib.contextmanager
    def progress(rung: int, configurations: int, num_chunks: int, total_updates: int):
        if mode != "off":
            console.print(f"rung {rung + 1}/{plan.rungs}: {configurations} configuration"
                          f"{'s' * (configurations > 1)} x {num_seeds} seeds to {plan.rung_updates[rung]} updates "
                          f"({num_chunks} chunk{'s' * (num_chunks > 1)})", soft_wrap=True)
        with SweepProgress(total_updates, console, mode) as bar:
            yield bar.report

    return progress


def resumed_sweep(args: Any, run: RunOptions) -> Sweep:
    """The sweep saved in `run.resume`'s config.json, with this invocation's --quiet and --compile-cache."""
    folder = run.resume
    if not folder.is_dir():
        raise ValueError(f"--resume {folder}: no such folder")
    config_file = folder / outputs.CONFIG_FILE
    if not config_file.exists():
        raise ValueError(f"{folder} holds no run to resume (no {outputs.CONFIG_FILE})")
    if (folder / outputs.SUMMARY_FILE).exists():
        raise ValueError(f"{folder} holds a finished run; there is nothing to resume")
    # This command's own: how it prints and caches, and the trackers and processes it starts (a folder's
    # files start none, `pgjax.results.trust`).
    kept = {name: getattr(run, name) for name in RESUME_OPTIONS}
    given = grid_settings.given_settings(args)
    env, networks = given.pop("env", None), tuple(given.pop("network", ()))
    if given or args.preset != "default" or dataclasses.replace(RunOptions(), **kept) != run:
        raise ValueError(f"--resume continues a run with its own settings; give only --resume DIR (and "
                         f"{', '.join('--' + n.replace('_', '-') for n in RESUME_OPTIONS if n != 'resume')}, "
                         "--env and --network to name a factory the run was trained with again)")
    saved = loading.load_json(config_file)
    if "run" not in saved:
        raise ValueError(f"{folder} was written by another pgjax version; it cannot be resumed by this one")
    resume.check_saved_config(config_file, saved, typing.get_type_hints(RunOptions))
    points = [grid.GridPoint(p["index"], Config.from_dict(p["config"])) for p in saved["grid"]]
    trust.confirm_configs([p.config for p in points], str(config_file), env, networks)
    recorded = {k: v for k, v in saved["run"].items() if k not in kept}
    run = dataclasses.replace(RunOptions(**recorded), **kept, out=folder)
    return Sweep(saved["preset"], points, run, saved.get("search"), notes=tracker_notes(saved["run"], run))


def tracker_notes(recorded: dict, run: RunOptions) -> tuple[str, ...]:
    """A line for each tracker the interrupted command had and this --resume does not: it starts none by itself."""
    notes = []
    for name in ("tensorboard", "wandb"):
        before = recorded.get(name)
        if before is not None and getattr(run, name) is None:
            again = escape(f"--{name} {before}".rstrip())  # the folder's text, printed as text (no markup)
            notes.append(f"the interrupted command logged to --{name}; a resumed run starts no tracker its "
                         f"folder names: give {again} with --resume to log again")
    return tuple(notes)


def print_plan(sweep: Sweep, groups: list, chunks: list[Chunk], estimates: list[dict] | None,
               console: Console) -> None:
    """One line: runs, compile groups, chunks x chunk size and the memory estimate per chunk."""
    num_runs = len(sweep.points) * sweep.run.num_seeds
    sizes = sorted({c.size for c in chunks})
    memory = ""
    if estimates:
        largest = max(e["chunk_size"] * e["run_bytes"] + e["device_bytes"] for e in estimates)
        memory = f" | memory about {format_bytes(largest)} per chunk"
    console.print(
        f"plan: {num_runs:,} runs ({len(sweep.points)} grid point{'s' * (len(sweep.points) > 1)} x "
        f"{sweep.run.num_seeds:,} seeds) | {len(groups)} compile group{'s' * (len(groups) > 1)} | "
        f"{len(chunks):,} chunk{'s' * (len(chunks) > 1)} x {'/'.join(str(s) for s in sizes)} runs{memory}",
        soft_wrap=True)


def preset_note(sweep: Sweep, continuous_actions: bool) -> str | None:
    """For an environment without a preset of its own under preset "default": which settings it trains with."""
    env = sweep.points[0].config.static.env
    if sweep.preset != "default" or env in ENV_PRESETS:
        return None
    return (f"{env} has no preset of its own: training with CartPole-v1's default settings "
            f"({options.settings_line(sweep.points[0].config, continuous_actions)}); give flags to change them")


def run(args: Any, console: Console | None = None, started: float | None = None,
        stop: StopRequest | None = None) -> Path:
    """Train, write the run folder and print the report; returns the folder.

    The run folder is held for the whole command (`FolderLock`; in a
    multi-process run by process 0): a second command on it is refused.

    Args:
      args: `parse_args`'s result.
      console: where the plan, progress and report go (default: `make_console()`).
      started: the `time.perf_counter()` from which wall_seconds counts (default: now).
      stop: polled between segments; once triggered, training checkpoints and stops.

    Returns:
      The run folder.

    Raises:
      Interrupted: (after checkpointing) `stop` was triggered.
      FolderInUse: another process holds the run folder.
      ValueError, FileExistsError, ImportError: the user's error, in one line; nothing written.
    """
    with FolderLock() as hold:
        return _train(args, console, started, stop, hold)


def _train(args: Any, console: Console | None, started: float | None, stop: StopRequest | None,
           hold: FolderLock) -> Path:
    """`run`, holding the run folder with `hold`."""
    start = time.perf_counter() if started is None else started
    console = console or make_console()
    resume.hold_resumed_folder(options.run_options(args).resume, hold)
    sweep = sweep_of(args)
    tracking.check_installed(sweep.run)  # a missing extra: nothing written
    opts = sweep.run
    if opts.distributed and not jax.distributed.is_initialized():
        try:
            start_distributed()
        except (RuntimeError, ValueError) as error:
            raise ValueError(f"--distributed: {error}") from None
    if use_compile_cache(opts.compile_cache) is None and opts.compile_cache != "off":
        console.print(f"compile cache off: cannot write {opts.compile_cache}", soft_wrap=True)
    is_main = jax.process_index() == 0
    resuming = opts.resume is not None
    if resuming and is_main:  # a multi-process run's folder is held here, by process 0 (`hold_resumed_folder`)
        resume.hold_resumed_folder(opts.resume, hold, distributed=True)
    points = sweep.points
    groups = grid.compile_groups(points)
    spec = make_env(points[0].config.static.env)
    for compile_group in groups:  # an unsupported network for the environment fails here, before any file
        try:
            make_policy(spec, compile_group[0].config)
        except ValueError as error:
            raise ValueError(options.with_flag_names(str(error))) from None
    plan = halving_plan(points, opts)
    out = opts.out or default_out_dir(points[0].config.static.env, sweep.preset)
    if opts.tensorboard == "":  # --tensorboard without DIR: config.json records the folder it means
        opts = dataclasses.replace(opts, tensorboard=str(tracking.tensorboard_dir(opts, out)))
    devices = jax.devices()
    estimates = None
    if resuming:
        config_file = out / outputs.CONFIG_FILE
        chunks = resume.resumed_chunks(config_file, loading.load_json(config_file), groups, opts.num_seeds, devices)
    else:
        check_host_memory(groups, opts.num_seeds)
        chunks, estimates = plan_chunks(groups, opts.num_seeds, devices, opts.max_parallel)
        if is_main:
            made = hold_new_folder(out, hold)
            try:
                prepare_out_dir(out, opts.overwrite)
            except BaseException:  # refused (a clash, a damaged marker): the folders this command made go
                hold.release()
                remove_made_folders(out, made)
                raise
            outputs.write_json(out / outputs.CONFIG_FILE, {
                "command": sys.argv, "preset": sweep.preset, "run": dataclasses.asdict(opts),
                "given": grid_settings.given_settings(args), "search": sweep.search,
                "grid": [{"index": p.index, "config": p.config.to_dict()} for p in points],
                "seeds": {"first": opts.seed, "count": opts.num_seeds},
                "chunks": resume.chunk_plan(chunks),
                "memory_estimate": estimates, "num_devices": len(devices),
                "versions": outputs.package_versions(), "devices": [str(d) for d in devices],
            })
    verbose = is_main and not opts.quiet
    if verbose:
        notes = [*sweep.notes, preset_note(sweep, spec.action_kind == "continuous"),
                 sweep.search and balance_note(sweep.search["num_samples"], sweep.search["sampler"])]
        for note in filter(None, notes):
            console.print(note, soft_wrap=True)
        print_plan(sweep, groups, chunks, estimates, console)
        if plan is not None:
            console.print(f"successive halving: rungs at {', '.join(map(str, plan.rung_updates))} updates; at each "
                          f"rung the best 1/{plan.eta} of the configurations (by IQM of the final return over "
                          "the seeds) go on", soft_wrap=True)
    total_updates = sum(groups[c.group][0].config.static.num_updates for c in chunks)
    mode = ("bar" if console.is_terminal else "lines") if verbose else "off"
    try:
        tracker = tracking.open_tracking(opts if is_main else RunOptions(), out, points, opts.num_seeds)
    except ValueError:
        if is_main and not resuming:  # nothing of this command's is left: no folder that looks resumable
            outputs.remove_run_files(out, this_command=True)
            hold.release()  # its lock file goes too
            remove_made_folders(out, made)
        raise
    outcome = None
    try:
        if plan is None:
            with SweepProgress(total_updates, console, mode) as progress:
                def on_segment(report) -> None:
                    progress.report(report)
                    tracker.log_segment(report)

                results, timings = train_sweep(
                    groups, opts.num_seeds, opts.seed, devices=devices, run_dir=out, chunks=chunks,
                    checkpoint_every=opts.checkpoint_every, on_segment=on_segment, should_stop=stop,
                )
        else:
            results, timings, outcome = train_halving(
                groups, opts.num_seeds, opts.seed, plan, chunks, halving_score, devices=devices, run_dir=out,
                checkpoint_every=opts.checkpoint_every, should_stop=stop,
                rung_progress=rung_progress(console, mode, plan, opts.num_seeds), on_segment=tracker.log_segment)
            timings["memory_estimate"] = estimates
    except BaseException as error:  # a stop, an error, a second Ctrl-C: the trackers flush and finish first
        tracker.close()
        if isinstance(error, Interrupted):
            error.run_dir = out
        raise
    if not is_main:
        return out
    try:
        summary = write_results(out, points, groups, results, timings, outcome, sweep, spec, start)
        tracker.log_final(summary)
    finally:
        tracker.close()
    outputs.record_folders(out)  # the marker lists what the trackers wrote, for --overwrite
    print_report(summary, console)
    console.print(f"results in {out}/ (learning curves: {out / outputs.PLOT_FILE})", soft_wrap=True)
    for line in tracker.where():
        console.print(line, soft_wrap=True)
    if stop is not None and stop.signal is not None:
        console.print(f"{signal.Signals(stop.signal).name} arrived during the last segment or after it: training "
                      "finished, every run is complete and saved (nothing was lost)", soft_wrap=True)
    return out


def write_results(out: Path, points: list[grid.GridPoint], groups: list, results: list, timings: dict, outcome,
                  sweep: Sweep, spec, start: float) -> dict:
    """Write metrics.npz, params.msgpack, the exports, the plot and summary.json (last) into `out`; returns the summary.

    summary.json marks a finished run: a write that fails before it leaves a folder that reads as interrupted.
    """
    opts = sweep.run
    by_point = {}
    for result, compile_group in zip(results, groups if outcome is None else [[p] for p in points]):
        for i, point in enumerate(compile_group):
            rows = slice(i * opts.num_seeds, (i + 1) * opts.num_seeds)
            by_point[point.index] = (jax.tree.map(lambda x: x[rows], result.metrics),
                                     jax.tree.map(lambda x: x[rows], result.state.params), result.seeds[rows])
    ordered = [by_point[i] for i in range(len(points))]
    outputs.write_metrics(out / outputs.METRICS_FILE, [m for m, _, _ in ordered], [s for _, _, s in ordered])
    outputs.write_params(out / outputs.PARAMS_FILE, [p for _, p, _ in ordered])
    timings["wall_seconds"] = time.perf_counter() - start  # summary.json, written last, is all that is left
    summary = summarise(points, opts.num_seeds, sweep.preset, results, timings, spec.solve_threshold,
                        search=sweep.search, halving=outcome)
    write_exports(out, summary, [m for m, _, _ in ordered])
    from pgjax.results.plots import plot_summary  # matplotlib: only here

    plot_summary(out, summary, [m for m, _, _ in ordered])
    outputs.write_json(out / outputs.SUMMARY_FILE, summary)
    return summary


def _aborted(error: BaseException) -> bool:
    """Whether `error` is a second Ctrl-C (KeyboardInterrupt), or what a library raised while one unwound it
    (orbax: "cannot schedule new futures after shutdown")."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return True
        seen.add(id(error))
        error = error.__context__
    return False


def main(argv: list[str] | None = None, started: float | None = None) -> int:
    try:
        args = parse_args(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 2
    console = make_console()
    with StopRequest(console) as stop:
        try:
            run(args, console=console, started=started, stop=stop)
        except (ValueError, FileExistsError, ImportError) as error:  # FolderInUse, CheckpointMismatch too
            print(f"error: {error}", file=sys.stderr)
            return 2
        except Interrupted as stopped:
            console.print(f"{stopped}; every finished chunk and the current one are checkpointed.")
            console.print(f"resume with: python -m pgjax.train --resume {stopped.run_dir}", soft_wrap=True)
            return 128 + (stop.signal or signal.SIGINT)
        except BaseException as error:
            if not _aborted(error):
                raise
            print(ABORTED, file=sys.stderr)
            return 128 + (stop.signal or signal.SIGINT)
    return 0


if __name__ == "__main__":
    exit_process(run_command(lambda: main(started=STARTED)))
