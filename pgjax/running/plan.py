"""A training command's one plan, made before anything trains, and the one call that runs it.

    points, search = search_points(given, search, options, resolve)   # a new run's grid points
    stages, confirm_seeds = stages_of(points, search, options)        # the search, then a confirmation
    devices, warnings = start_devices(options, hold)
    plan = make_plan(preset, points, stages, options, devices, search=search)
    describe(plan); plan_only_lines(plan)                              # what it prints before training
    trained = run_plan(plan, hooks)                                     # every stage, in turn

The `Plan` and the `Strategy` interface of its stages are `pgjax.running.strategy`'s.
What the command records in the run folder (config.json before, the results after),
and the functions of the results layer the hooks carry, are `pgjax.results.run_record`'s.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax

from pgjax.algo.envs import env_for
from pgjax.algo.policy import make_policy
from pgjax.algo.presets import env_preset
from pgjax.algo.suites import suite_preset
from pgjax.algo.trainer import trace_update
from pgjax.running import memory, tpe
from pgjax.running.confirm import Confirm, confirm_seeds_of
from pgjax.running.devices import start_distributed, use_compile_cache
from pgjax.running.grid import GridPoint, compile_groups
from pgjax.running.halving import Halving, HalvingPlan
from pgjax.running.install import check_installed
from pgjax.running.run_folder.lock import FolderLock
from pgjax.running.run_folder.resume import hold_resumed_folder, resumed_chunks
from pgjax.running.search import Search, balance_note
from pgjax.running.segments import Interrupted
from pgjax.running.strategy import Hooks, Plan, Strategy, Trained
from pgjax.running.sweep import ChunkRunner, PlainSweep, plan_chunks

CALIBRATION_UPDATES = 3  # updates of the first chunk --plan-only's estimate times


def search_points(given: dict[str, Any], search: Search | None, options: Any,
                  resolve: Callable[[Search | None], list[GridPoint]]) -> tuple[list[GridPoint], dict | None]:
    """A new run's grid points and the record of the search they come from (None for a plain grid).

    Args:
      given: the settings given; search: the ranges to draw from (None: a grid of the values given);
      options: the command's run options; resolve: the grid points of `given` with a search (validated).

    Returns:
      (points, record): a TPE search's points are its places until they are asked (`tpe.slot_points`).

    Raises:
      ValueError, ImportError: what a TPE search refuses (`tpe.check_search`); `resolve`'s.
    """
    if search is not None and search.sampler == "tpe":
        tpe.check_search(given, search, options)
        base = resolve(dataclasses.replace(search, sampler="sobol", num_samples=1))[0]
        return tpe.slot_points(base, search.ranges, search.num_samples), tpe.record(search)
    return resolve(search), search.record() if search else None


def stages_of(points: list[GridPoint], search: dict | None, options: Any,
              config_file: Path | None = None) -> tuple[tuple[Strategy, ...], int]:
    """The stages that train `points` (a TPE search, successive halving or a plain sweep; then, after a
    search or a halving of several points, the confirmation), and the confirmation's seeds (0: none).

    Args:
      search: the record of the points' search (a resumed run's config.json's); options: the run options
        (--halving, --rungs, --repack, --sampler-seed, --confirm-seeds, --confirm-top);
      config_file: a resumed run's config.json (named where its TPE record is damaged).

    Raises:
      ValueError: rungs that do not fit the updates; a damaged TPE record.
    """
    halving = HalvingPlan.for_points(points, options.halving, options.rungs)
    if tpe.is_tpe(search):
        seed = options.seed if options.sampler_seed is None else options.sampler_seed
        first = tpe.TpeSearch.of(search, len(points), seed, config_file)
    else:
        first = PlainSweep() if halving is None else Halving(halving, options.repack)
    seeds = confirm_seeds_of(options.confirm_seeds, bool(search or halving), len(points))
    return (first, Confirm(seeds, options.confirm_top)) if seeds else (first,), seeds


def start_devices(options: Any, hold: FolderLock) -> tuple[list, list[str]]:
    """Check the install (`pgjax.running.install`), join the other processes of a --distributed run, set the
    compile cache up and, in a resumed multi-process run, hold its folder by process 0
    (`pgjax.running.run_folder.resume.hold_resumed_folder`).

    Returns:
      (every process's devices, lines to say: a compile cache that cannot be written).

    Raises:
      BrokenInstall: a package lacks what pgjax uses (one line); ValueError: --distributed cannot
        start; FolderInUse: another process holds the resumed folder.
    """
    check_installed()
    if options.distributed and not jax.distributed.is_initialized():
        try:
            start_distributed()
        except (RuntimeError, ValueError) as error:
            raise ValueError(f"--distributed: {error}") from None
    warnings = []
    if use_compile_cache(options.compile_cache) is None and options.compile_cache != "off":
        warnings.append(f"compile cache off: cannot write {options.compile_cache}")
    if options.resume is not None and jax.process_index() == 0:
        hold_resumed_folder(options.resume, hold, distributed=True)
    return jax.devices(), warnings


def make_plan(preset: str, points: list[GridPoint], stages: tuple[Strategy, ...], options: Any, devices: list, *,
              search: dict | None = None, saved: dict | None = None, config_file: Path | None = None,
              flag_names: Callable[[str], str] = str) -> Plan:
    """The plan: compile groups, the environment (every group's network checked against it), and the chunks
    that fit memory (or a resumed run's, `saved`), fitted to the first stage.

    Args:
      preset, points, stages, search: what trains (`search_points`, `stages_of`).
      options: the run options (--num-seeds, --seed, --max-parallel, --gradient-block-rows,
        --checkpoint-every); devices: `start_devices`'s.
      saved, config_file: a resumed run's config.json (checked, `pgjax.results.run_record.read_resumable`)
        and its path: its chunk plan is followed.
      flag_names: how an unsupported network's message names the settings (as flags).

    Raises:
      ValueError: a network the environment cannot take; results that would not fit the host's memory, or
        chunks that do not fit (`pgjax.running.sweep.plan_chunks`); a saved plan that does not fit.
    """
    groups = compile_groups(points)
    static = points[0].config.static
    spec = env_for(static)  # its step cap and factory arguments too
    for group in groups:  # an unsupported network for the environment fails here, before any file
        try:
            make_policy(spec, group[0].config)
        except ValueError as error:
            raise ValueError(flag_names(str(error))) from None
        static = group[0].config.static
        if static.weighting or static.step_loss:  # one's own code: one update traced now (nothing computed),
            trace_update(group[0].config)      # so that it fails before any file
    if saved is not None:
        chunks, estimates = resumed_chunks(config_file, saved, groups, options.num_seeds, devices), None
    else:
        memory.check_host_memory(groups, options.num_seeds)
        chunks, estimates = plan_chunks(groups, options.num_seeds, devices, options.max_parallel,
                                        block_rows=options.gradient_block_rows)
    chunks = stages[0].fit_chunks(chunks, options.num_seeds, len(devices), saved is not None)
    return Plan(preset, points, groups, chunks, estimates, devices, spec, options.num_seeds, options.seed, stages,
                checkpoint_every=options.checkpoint_every, block_rows=options.gradient_block_rows,
                max_parallel=options.max_parallel, search=search, resuming=saved is not None,
                env_has_preset=preset != "default" or env_preset(static.env) is not None,
                suite_preset=preset == "default" and suite_preset(static.env) is not None)


def run_plan(plan: Plan, hooks: Hooks) -> Trained:
    """Train every stage of `plan` in turn, each given what the one before trained.

    Raises:
      Interrupted: `hooks.should_stop` said so (what was trained is checkpointed); its `run_dir` is the
        run folder to resume.
    """
    trained = None
    try:
        for stage in plan.stages:
            trained = stage.train(plan, hooks, trained)
    except Interrupted as error:
        error.run_dir = hooks.folder
        raise
    return trained


def describe(plan: Plan) -> list[str]:
    """The lines said before training: the sampler's balance, each stage's notes, and the plan line (runs,
    compile groups, chunks x chunk size, and the memory estimate per chunk, with the initial policy's padding
    where the trajectory buffers are large, `memory.initial_padding`)."""
    balance = plan.search and balance_note(plan.search["num_samples"], plan.search["sampler"])
    lines = [*filter(None, [balance]), *(note for stage in plan.stages for note in stage.notes())]
    sizes = sorted({c.size for c in plan.chunks})
    text = ""
    if plan.estimates:
        group, _, buffers = memory.biggest_chunk(plan.estimates)
        padding = (memory.initial_padding(plan.groups[group][0].config)
                   if buffers >= memory.PADDING_SHOWN_FROM_BYTES else None)
        text = f" | {memory.chunk_memory_text(plan.estimates, padding)}"
    points, groups, chunks = len(plan.points), len(plan.groups), len(plan.chunks)
    lines.append(f"plan: {plan.num_runs:,} runs ({points} grid point{'s' * (points > 1)} x {plan.num_seeds:,} "
                 f"seeds) | {groups} compile group{'s' * (groups > 1)} | {chunks:,} chunk{'s' * (chunks > 1)} x "
                 f"{'/'.join(str(s) for s in sizes)} runs{text}")
    return lines


def plan_only_lines(plan: Plan) -> list[str]:
    """--plan-only's lines after the plan line: what each stage trains (the rungs of a halving, the
    confirmation), the work (run-updates) and the env steps it may take, the compiles, and an estimated time
    from one short calibration: the first compile group's programs compiled for its first chunk and
    `CALIBRATION_UPDATES` updates of that chunk timed (thrown away: nothing of it is kept or written).
    Updates get slower as episodes lengthen, so the time is given twice: at the initial policy's episode
    lengths, and with every episode at its step limit. Every process calibrates (their devices train
    together)."""
    first, *later = [stage.work(plan) for stage in plan.stages]
    static = plan.groups[0][0].config.static
    env = env_for(static)
    most_steps = first.run_updates * static.episodes_per_update * env.max_steps
    lines = [*first.lines, f"work: {first.run_updates:,} run-updates; at most {most_steps:,} env steps (every "
                           f"episode to its {env.max_steps:,}-step limit)", *(line for w in later for line in w.lines)]
    compiles = len(plan.groups) + first.compiles + sum(w.compiles for w in later)
    seconds_per_update, compile_seconds, loop_steps, cached = _calibrate(plan)
    lines.append(f"compiles: {compiles} (the first took {compile_seconds:.1f} s"
                 f"{', loaded from the compile cache' if cached else ''})")
    initial = first.chunk_updates * seconds_per_update
    longest = initial * env.max_steps / max(loop_steps, 1.0)
    lines.append(f"estimated training time: {_duration(initial)} at the initial policy's episodes "
                 f"({loop_steps:.0f} steps), up to {_duration(longest)} with every episode at its limit, plus "
                 f"the compiles (timed: {CALIBRATION_UPDATES} updates of the first chunk of {plan.chunks[0].size:,} "
                 "runs, thrown away)")
    lines.append("plan only: nothing was trained or written")
    return lines


def _calibrate(plan: Plan) -> tuple[float, float, float, bool]:
    """(seconds per update of the plan's first chunk, seconds its programs took to compile, its runs' mean
    rollout-loop steps per update, whether they came from the compile cache) from `CALIBRATION_UPDATES`
    updates of it, nothing written."""
    chunk = plan.chunks[0]
    runner = ChunkRunner(plan.groups, plan.num_seeds, plan.seed, devices=plan.devices, block_rows=plan.block_rows)
    until = min(CALIBRATION_UPDATES, plan.groups[chunk.group][0].config.static.num_updates)
    _, metrics = runner.train_chunk(chunk, None, until)
    return (runner.info["run_seconds"] / until, runner.info["compile_seconds"], float(metrics.loop_steps.mean()),
            runner.info["compile_cache_hits"] > 0)


def _duration(seconds: float) -> str:
    """e.g. "45 s", "12.5 min", "3.2 h"."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"
