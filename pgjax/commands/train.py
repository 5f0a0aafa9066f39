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
Results go to `--out` (default: a new folder under runs/); `pgjax.running.run_folder.files`
describes the files.

The command parses, plans, prints, runs and prints: the command line becomes a
`Sweep` (what to train), then one plan (`pgjax.running.plan.make_plan`: grid
points, compile groups, chunks, memory estimates, devices and the stages that
train them, `pgjax.running.strategy`), printed (`--plan-only` prints it with an
estimated time and stops), recorded (config.json, `pgjax.results.run_record`),
run by one call (`pgjax.running.plan.run_plan`) and its results written and
printed (`pgjax.results.run_record.finish`). JAX is imported once the command
line is parsed, so that `--help` and a refused flag answer at once.
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

from pgjax.commands import options
from pgjax.commands.options import RunOptions
from pgjax.commands.process import (
    ABORTED,
    QuietLibraries,
    RunFailed,
    StopRequest,
    end_at_once,
    exit_process,
    exit_status,
    freeze_imports,
    note_resume_command,
    prepare_process,
    refused,
    resume_command,
    run_command,
    run_failed,
    say_failure,
)
from pgjax.commands.shared import make_console, parse

if TYPE_CHECKING:
    from rich.console import Console

    from pgjax.running.run_folder.lock import FolderLock


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
    """What the command line asks to train, before the plan: the preset's name, the grid points, the run
    options, and how they train.

    `search` is the record of the ranges the points were drawn from (`pgjax.running.search.Search.record`),
    None for a plain grid; `stages` the plan's stages (`pgjax.running.plan.stages_of`); `notes` lines to
    print before the plan; `given` the settings given (config.json's "given"); `saved` and `config_file`
    a resumed run's config.json (checked) and its path.
    """

    preset: str
    points: list
    run: RunOptions
    search: dict | None = None
    stages: tuple = ()
    notes: tuple[str, ...] = ()
    given: dict = dataclasses.field(default_factory=dict)
    saved: dict | None = None
    config_file: Path | None = None


def parse_args(argv: list[str] | None = None) -> Any:
    """The command line, parsed into `options.train_arguments(preset, env)` (usage errors: one line, exit 2)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    preset, env = options.prescan(argv, "--preset") or "default", options.prescan(argv, "--env")
    description = f"{__doc__.splitlines()[0]}\n\n{options.environments_text()}"
    return parse(options.train_arguments(preset, env), argv, "pgjax.train", description)


def sweep_of(args: Any, hold: FolderLock | None = None) -> Sweep:
    """The sweep the arguments ask for (from the run folder's config.json with --resume, held by `hold`)."""
    from pgjax.commands import grid_settings
    from pgjax.running import plan as planning

    run = options.run_options(args)
    options.check_run_options(run)
    if run.resume is not None:
        sweep = resumed_sweep(args, run, hold)
    else:
        given = grid_settings.given_settings(args)
        search = grid_settings.search_of(given, run.num_samples, run.sampler, run.sampler_seed, run.seed)
        points, record = planning.search_points(
            given, search, run, lambda drawn: grid_settings.resolve_grid(args.preset, given, drawn, run.num_seeds))
        sweep = Sweep(args.preset, points, run, record, given=given)
    stages, confirm_seeds = planning.stages_of(sweep.points, sweep.search, sweep.run, sweep.config_file)
    run = dataclasses.replace(sweep.run, confirm_seeds=confirm_seeds)
    options.check_run_options(run)  # the confirmation's seeds fit too
    return dataclasses.replace(sweep, run=run, stages=stages)


def resumed_sweep(args: Any, run: RunOptions, hold: FolderLock | None = None) -> Sweep:
    """The sweep saved in `run.resume`'s config.json, with this invocation's --quiet and --compile-cache."""
    from pgjax.commands import grid_settings
    from pgjax.results.run_record import read_resumable, resumable_config

    config_file = resumable_config(run.resume, hold)
    # This command's own: how it prints and caches, and the trackers and processes it starts (a folder's
    # files start none, `pgjax.running.run_folder.trust`).
    kept = {name: getattr(run, name) for name in RESUME_OPTIONS}
    given = grid_settings.given_settings(args)
    env, networks = given.pop("env", None), tuple(given.pop("network", ()))
    weightings, step_losses = tuple(given.pop("weighting", ())), tuple(given.pop("step_loss", ()))
    if given or args.preset != "default" or dataclasses.replace(RunOptions(), **kept) != run:
        raise ValueError(f"--resume continues a run with its own settings; give only --resume DIR (and "
                         f"{', '.join('--' + n.replace('_', '-') for n in RESUME_OPTIONS if n != 'resume')}, "
                         "--env, --network, --weighting and --step-loss to name code the run was trained with "
                         "again)")
    saved, points = read_resumable(config_file, typing.get_type_hints(RunOptions), env, networks, weightings,
                                   step_losses)
    recorded = {k: v for k, v in saved["run"].items() if k not in kept}
    run = dataclasses.replace(RunOptions(**recorded), **kept, out=run.resume)
    return Sweep(saved["preset"], points, run, saved.get("search"), notes=tracker_notes(saved["run"], run),
                 saved=saved, config_file=config_file)


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


def preset_note(plan: Any, given: dict | None = None) -> str | None:
    """Under preset "default", for an environment without a preset of its own, or with its suite adapter's
    (`pgjax.algo.suites.suite_preset`): which settings it trains with
    (`plan`: a `pgjax.running.strategy.Plan`; `given`: the settings the command line gave, `Sweep.given`: a
    learning rate given is the user's, not the one measured for environments without a preset)."""
    env = plan.points[0].config.static.env
    if plan.suite_preset:  # a suite adapter's measured preset: say so
        return (f"{env}: preset default is its suite adapter's, measured for this task "
                f"({options.settings_line([p.config for p in plan.points], plan.spec.action_kind == 'continuous')}); "
                "give flags to change them")
    if plan.env_has_preset:
        return None
    measured = "learning_rate" not in (given or {})
    learning_rate = " and the learning rate measured for environments without one" if measured else ""
    return (f"{plan.points[0].config.static.env} has no preset of its own: training with CartPole-v1's default "
            f"settings{learning_rate} "
            f"({options.settings_line([p.config for p in plan.points], plan.spec.action_kind == 'continuous')}); "
            "give flags to change them")


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
    from pgjax.running.run_folder.lock import FolderLock

    with FolderLock() as hold:
        return _train(args, console or make_console(), time.perf_counter() if started is None else started,
                      stop, hold)


def _train(args: Any, console: Console, start: float, stop: StopRequest | None, hold: FolderLock) -> Path:
    """`run`, holding the run folder with `hold`: parse, plan, print, record, run the plan, print."""
    import jax

    from pgjax.results import run_record
    from pgjax.running import plan as planning
    from pgjax.running.segments import Interrupted

    sweep = sweep_of(args, hold)
    devices, warnings = planning.start_devices(sweep.run, hold)
    for line in warnings:
        console.print(line, soft_wrap=True)
    plan = planning.make_plan(sweep.preset, sweep.points, sweep.stages, sweep.run, devices, search=sweep.search,
                              saved=sweep.saved, config_file=sweep.config_file, flag_names=options.with_flag_names)
    out, opts = run_record.run_folder(sweep.run, plan)
    is_main = jax.process_index() == 0
    lines = [*sweep.notes, preset_note(plan, sweep.given), *planning.describe(plan)]
    if opts.plan_only:  # every process calibrates (their devices train together); process 0 prints
        for line in filter(None, lines if is_main else []):
            console.print(line, soft_wrap=True)
        estimate = planning.plan_only_lines(plan)
        for line in estimate if is_main else []:
            console.print(line, soft_wrap=True)
        return out
    made, started = None, is_main and not plan.resuming
    if started:
        made = run_record.start_run_folder(out, opts.overwrite, hold,
                                           run_record.config_record(sys.argv, plan, opts, sweep.given))
    verbose = is_main and not opts.quiet
    for line in filter(None, lines if verbose else []):
        console.print(line, soft_wrap=True)
    mode = ("bar" if console.is_terminal else "lines") if verbose else "off"
    tracker = run_record.open_trackers(opts if is_main else RunOptions(), out, plan, hold, started, made)
    note_resume_command(out)  # a --distributed process's watcher says it, should native code end the process
    with QuietLibraries() as libraries:
        try:
            trained = planning.run_plan(plan, run_record.hooks(out, tracker, console, mode, stop, records=is_main))
            libraries.release()
            if is_main:
                run_record.finish(out, plan, trained, start, tracker, console)
        except BaseException as error:  # a stop, an error or a second Ctrl-C: the trackers flush and finish first
            tracker.close()
            if isinstance(error, Exception) and not isinstance(error, Interrupted) and not refused(error):
                libraries.keep_holding()
                raise run_failed(error, out, libraries.lines()) from error
            libraries.release()
            raise
    if is_main:
        if stop is not None and stop.signal is not None:
            console.print(f"{signal.Signals(stop.signal).name} arrived during the last segment or after it: "
                          "training finished, every run is complete and saved (nothing was lost)", soft_wrap=True)
    return out


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
    # The layers a run uses (JAX, gymnax, Flax, optax with them: the plan's and the run record's imports),
    # imported before their objects are frozen out of the garbage collector's sight (`freeze_imports`: 0.2's
    # start-up imported them before it).
    from pgjax.results import run_record  # noqa: F401
    from pgjax.running import plan  # noqa: F401
    from pgjax.running.segments import Interrupted

    freeze_imports()

    console = make_console()
    with StopRequest(console) as stop:
        try:
            run(args, console=console, started=started, stop=stop)
        except (ValueError, FileExistsError, ImportError) as error:  # FolderInUse, CheckpointMismatch too
            print(f"error: {error}", file=sys.stderr)
            return exit_status(error)
        except RunFailed as failed:
            return say_failure(failed)
        except Interrupted as stopped:
            console.print(f"{stopped}; every finished chunk and the current one are checkpointed.")
            console.print(f"resume with: {resume_command(stopped.run_dir)}", soft_wrap=True)
            return 128 + (stop.signal or signal.SIGINT)
        except BaseException as error:
            if not _aborted(error):
                raise
            print(ABORTED, file=sys.stderr)
            end_at_once()  # the other processes of a multi-process run may be anywhere: no shutdown together
            return 128 + (stop.signal or signal.SIGINT)
    return 0


if __name__ == "__main__":
    prepare(sys.argv)  # XLA set up before anything starts JAX's backends
    exit_process(run_command(lambda: main(started=STARTED)))
