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

The command parses, calls and prints: the sweep's chunks, its run folder and its
records are `pgjax.running`'s and `pgjax.results`' (`pgjax.results.run_record`).
JAX is imported once the command line is parsed, so that `--help` and a refused
flag answer at once.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()  # so that wall_seconds counts the imports too

import dataclasses
import signal
import sys
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pgjax.commands import options, train_confirm, train_plan, train_report, train_tpe
from pgjax.commands.options import RunOptions
from pgjax.commands.process import ABORTED, StopRequest, exit_process, freeze_imports, prepare_process, run_command
from pgjax.commands.shared import make_console, parse

if TYPE_CHECKING:
    from rich.console import Console

    from pgjax.running import grid
    from pgjax.running.folder_lock import FolderLock
    from pgjax.running.halving import HalvingPlan


def prepare(argv: list[str]) -> None:
    """`prepare_process(argv)`; a --distributed that cannot start ends the process with one line (exit status 2)."""
    try:
        prepare_process(argv)
    except ValueError as error:
        print(f"error: --distributed: {error}", file=sys.stderr)
        sys.exit(2)


# The options a --resume takes from its own command line, not from the folder's config.json.
RESUME_OPTIONS = ("resume", "quiet", "compile_cache", "tensorboard", "wandb", "distributed")


@dataclasses.dataclass(frozen=True)
class Sweep:
    """What a training command trains: the preset's name, the grid points and the run options.

    `search` is the record of the ranges the points were drawn from
    (`pgjax.running.search.Search.record`), None for a plain grid; `notes`
    lines to print before the plan; `halving` the rungs of --halving (None without it).
    """

    preset: str
    points: list[grid.GridPoint]
    run: RunOptions
    search: dict | None = None
    notes: tuple[str, ...] = ()
    halving: HalvingPlan | None = None


def parse_args(argv: list[str] | None = None) -> Any:
    """The command line, parsed into `options.train_arguments(preset, env)` (usage errors: one line, exit 2)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    preset, env = options.prescan(argv, "--preset") or "default", options.prescan(argv, "--env")
    description = f"{__doc__.splitlines()[0]}\n\n{options.environments_text()}"
    return parse(options.train_arguments(preset, env), argv, "pgjax.train", description)


def sweep_of(args: Any) -> Sweep:
    """The sweep the arguments ask for (from the run folder's config.json with --resume)."""
    from pgjax.commands import grid_settings
    from pgjax.running.halving import HalvingPlan

    run = options.run_options(args)
    options.check_run_options(run)
    if run.resume is not None:
        sweep = resumed_sweep(args, run)
    else:
        given = grid_settings.given_settings(args)
        search = grid_settings.search_of(given, run.num_samples, run.sampler, run.sampler_seed, run.seed)
        if search is not None and search.sampler == "tpe":  # its points: places until they are asked
            train_tpe.check_search(given, search, run)
            sweep = Sweep(args.preset, train_tpe.slot_points(args.preset, given, search, run.num_seeds), run,
                          train_tpe.record(search))
        else:
            points = grid_settings.resolve_grid(args.preset, given, search, run.num_seeds)
            sweep = Sweep(args.preset, points, run, search.record() if search else None)
    plan = HalvingPlan.for_points(sweep.points, sweep.run.halving, sweep.run.rungs)
    confirm_seeds = train_confirm.confirm_seeds_of(sweep.run, bool(sweep.search or plan), len(sweep.points))
    options.check_run_options(dataclasses.replace(sweep.run, confirm_seeds=confirm_seeds))  # its seeds fit too
    return dataclasses.replace(sweep, halving=plan, run=dataclasses.replace(sweep.run, confirm_seeds=confirm_seeds))


def resumed_sweep(args: Any, run: RunOptions) -> Sweep:
    """The sweep saved in `run.resume`'s config.json, with this invocation's --quiet and --compile-cache."""
    from pgjax.commands import grid_settings
    from pgjax.results.run_record import read_resumable, resumable_config

    config_file = resumable_config(run.resume)
    # This command's own: how it prints and caches, and the trackers and processes it starts (a folder's
    # files start none, `pgjax.results.trust`).
    kept = {name: getattr(run, name) for name in RESUME_OPTIONS}
    given = grid_settings.given_settings(args)
    env, networks = given.pop("env", None), tuple(given.pop("network", ()))
    if given or args.preset != "default" or dataclasses.replace(RunOptions(), **kept) != run:
        raise ValueError(f"--resume continues a run with its own settings; give only --resume DIR (and "
                         f"{', '.join('--' + n.replace('_', '-') for n in RESUME_OPTIONS if n != 'resume')}, "
                         "--env and --network to name a factory the run was trained with again)")
    saved, points = read_resumable(config_file, typing.get_type_hints(RunOptions), env, networks)
    if train_tpe.is_tpe(saved.get("search")):  # checked before anything trains
        train_tpe.recorded_points(saved["search"], len(points), config_file)
    recorded = {k: v for k, v in saved["run"].items() if k not in kept}
    run = dataclasses.replace(RunOptions(**recorded), **kept, out=run.resume)
    return Sweep(saved["preset"], points, run, saved.get("search"), notes=tracker_notes(saved["run"], run))


def tracker_notes(recorded: dict, run: RunOptions) -> tuple[str, ...]:
    """A line for each tracker the interrupted command had and this --resume does not: it starts none by itself."""
    from rich.markup import escape

    notes = []
    for name in ("tensorboard", "wandb"):
        before = recorded.get(name)
        if before is not None and getattr(run, name) is None:
            again = escape(f"--{name} {before}".rstrip())  # the folder's text, printed as text (no markup)
            notes.append(f"the interrupted command logged to --{name}; a resumed run starts no tracker its "
                         f"folder names: give {again} with --resume to log again")
    return tuple(notes)


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
    from pgjax.running.folder_lock import FolderLock

    with FolderLock() as hold:
        return _train(args, console or make_console(), time.perf_counter() if started is None else started,
                      stop, hold)


def _start_processes(opts: RunOptions, console: Console) -> None:
    """Join the other processes of a --distributed run, and set the compile cache up."""
    import jax

    from pgjax.running.devices import start_distributed, use_compile_cache

    if opts.distributed and not jax.distributed.is_initialized():
        try:
            start_distributed()
        except (RuntimeError, ValueError) as error:
            raise ValueError(f"--distributed: {error}") from None
    if use_compile_cache(opts.compile_cache) is None and opts.compile_cache != "off":
        console.print(f"compile cache off: cannot write {opts.compile_cache}", soft_wrap=True)


def _check_networks(groups: list, env: str):
    """The environment's spec; an unsupported network for it fails here, before any file (flags named)."""
    from pgjax.algo.envs import make_env
    from pgjax.algo.policy import make_policy

    spec = make_env(env)
    for compile_group in groups:
        try:
            make_policy(spec, compile_group[0].config)
        except ValueError as error:
            raise ValueError(options.with_flag_names(str(error))) from None
    return spec


def _train(args: Any, console: Console, start: float, stop: StopRequest | None, hold: FolderLock) -> Path:
    """`run`, holding the run folder with `hold`."""
    import jax

    from pgjax.results import run_record, tracking
    from pgjax.results.folder import default_out_dir, remove_run_files
    from pgjax.running import grid, resume

    resume.hold_resumed_folder(options.run_options(args).resume, hold)
    sweep = sweep_of(args)
    tracking.check_installed(sweep.run)  # a missing extra: nothing written
    opts = sweep.run
    _start_processes(opts, console)
    is_main, resuming = jax.process_index() == 0, opts.resume is not None
    if resuming and is_main:  # a multi-process run's folder is held here, by process 0 (`hold_resumed_folder`)
        resume.hold_resumed_folder(opts.resume, hold, distributed=True)
    groups = grid.compile_groups(sweep.points)
    spec = _check_networks(groups, sweep.points[0].config.static.env)
    out = opts.out or default_out_dir(sweep.points[0].config.static.env, sweep.preset)
    if opts.tensorboard == "":  # --tensorboard without DIR: config.json records the folder it means
        opts = dataclasses.replace(opts, tensorboard=str(tracking.tensorboard_dir(opts, out)))
    devices = jax.devices()
    chunks, estimates = run_record.plan_or_resume_chunks(out, resuming, groups, opts.num_seeds, devices,
                                                         opts.max_parallel, opts.gradient_block_rows)
    if train_tpe.is_tpe(sweep.search):  # chunks that hold a round's runs
        chunks = train_tpe.chunks_of(chunks, len(sweep.points), opts.num_seeds, len(devices), resuming)
    if opts.plan_only:  # every process calibrates (their devices train together); process 0 prints
        train_plan.plan_only(sweep, groups, chunks, estimates, devices, spec, console, is_main)
        return out
    made = []
    if is_main and not resuming:
        from pgjax.commands import grid_settings

        record = run_record.config_record(sys.argv, sweep.preset, opts, grid_settings.given_settings(args),
                                          sweep.search, sweep.points, chunks, estimates, devices)
        made = run_record.start_run_folder(out, opts.overwrite, hold, record)
    verbose = is_main and not opts.quiet
    if verbose:
        train_report.print_notes(sweep, spec.action_kind == "continuous", console)
        train_report.print_plan(sweep, groups, chunks, estimates, console)
    mode = ("bar" if console.is_terminal else "lines") if verbose else "off"
    try:
        tracker = tracking.open_tracking(opts if is_main else RunOptions(), out, sweep.points, opts.num_seeds)
    except ValueError:
        if is_main and not resuming:  # nothing of this command's is left: no folder that looks resumable
            remove_run_files(out, this_command=True)
            hold.release()  # its lock file goes too
            from pgjax.running.folder_lock import remove_made_folders

            remove_made_folders(out, made)
        raise
    points, results, timings, outcome = _train_sweep(sweep, opts, groups, chunks, estimates, out, devices, tracker,
                                                     console, mode, stop)
    if train_tpe.is_tpe(sweep.search):  # the points asked, in their places
        sweep = dataclasses.replace(sweep, points=points, search={**sweep.search, "asked_points": len(points)})
        groups = grid.compile_groups(points)
    confirmation = _with_trackers_closed_on_error(tracker, out, lambda: train_confirm.confirm(
        sweep, opts, results, outcome, spec, out, devices, console, mode, stop))
    if is_main:
        _finish(sweep, opts, groups, results, timings, outcome, spec, start, out, tracker, console, stop,
                confirmation)
    return out


def _train_sweep(sweep: Sweep, opts: RunOptions, groups: list, chunks: list, estimates, out: Path, devices: list,
                 tracker, console: Console, mode: str, stop: StopRequest | None) -> tuple[list, list, dict, Any]:
    """Train every chunk (a plain sweep, a TPE search's rounds, or successive halving's rungs): (the grid
    points, asked by TPE, results, timings, halving's outcome)."""
    from pgjax.results.summary import halving_score
    from pgjax.running.halving import train_halving
    from pgjax.running.progress import SweepProgress, rung_progress
    from pgjax.running.sweep import train_sweep

    def train() -> tuple[list, list, dict, Any]:
        if plan is None:
            work = sum(len(c.positions) * groups[c.group][0].config.static.num_updates for c in chunks)
            with SweepProgress(work, console, mode) as progress:
                def on_segment(report) -> None:
                    progress.report(report)
                    tracker.log_segment(report)

                if train_tpe.is_tpe(sweep.search):
                    return *train_tpe.train(sweep.points, sweep.search, opts, chunks, out, devices, on_segment,
                                            stop), None
                return sweep.points, *train_sweep(
                    groups, opts.num_seeds, opts.seed, devices=devices, run_dir=out, chunks=chunks,
                    checkpoint_every=opts.checkpoint_every, on_segment=on_segment, should_stop=stop,
                    block_rows=opts.gradient_block_rows,
                ), None
        results, timings, outcome = train_halving(
            groups, opts.num_seeds, opts.seed, plan, chunks, halving_score, devices=devices, run_dir=out,
            checkpoint_every=opts.checkpoint_every, should_stop=stop, block_rows=opts.gradient_block_rows,
            rung_progress=rung_progress(console, mode, plan, opts.num_seeds), on_segment=tracker.log_segment,
            repack=opts.repack)
        return sweep.points, results, {**timings, "memory_estimate": estimates}, outcome

    plan = sweep.halving
    return _with_trackers_closed_on_error(tracker, out, train)


def _with_trackers_closed_on_error(tracker, out: Path, train):
    """`train()`; a stop, an error or a second Ctrl-C closes the trackers first (they flush and finish), and a
    stop learns the run folder to resume."""
    from pgjax.running.sweep import Interrupted

    try:
        return train()
    except BaseException as error:
        tracker.close()
        if isinstance(error, Interrupted):
            error.run_dir = out
        raise


def _finish(sweep: Sweep, opts: RunOptions, groups: list, results: list, timings: dict, outcome, spec,
            start: float, out: Path, tracker, console: Console, stop: StopRequest | None,
            confirmation: dict | None = None) -> None:
    """Write the results (summary.json last, with the `confirmation`), close the trackers and print the report."""
    from pgjax.results.folder import PLOT_FILE, record_folders
    from pgjax.results.run_record import write_results
    from pgjax.results.tables import print_report

    try:
        summary = write_results(out, sweep.points, groups, results, timings, outcome, sweep.preset,
                                opts.num_seeds, sweep.search, spec, start, confirmation)
        tracker.log_final(summary)
    finally:
        tracker.close()
    record_folders(out)  # the marker lists what the trackers wrote, for --overwrite
    print_report(summary, console)
    train_report.print_best(summary, console)
    console.print(f"results in {out}/ (learning curves: {out / PLOT_FILE})", soft_wrap=True)
    for line in tracker.where():
        console.print(line, soft_wrap=True)
    if stop is not None and stop.signal is not None:
        console.print(f"{signal.Signals(stop.signal).name} arrived during the last segment or after it: training "
                      "finished, every run is complete and saved (nothing was lost)", soft_wrap=True)


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
    # The layers a run uses (JAX, gymnax, Flax, optax with them), imported before their objects are frozen
    # out of the garbage collector's sight (`freeze_imports`: 0.2's start-up imported them before it).
    from pgjax.algo import envs, policy, trainer  # noqa: F401
    from pgjax.results import outputs, run_record, summary, tables, tracking  # noqa: F401
    from pgjax.running import grid, halving, progress, resume  # noqa: F401
    from pgjax.running.sweep import Interrupted

    freeze_imports()

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
    prepare(sys.argv)  # XLA set up before anything starts JAX's backends
    exit_process(run_command(lambda: main(started=STARTED)))
