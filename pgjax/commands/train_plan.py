"""`python -m pgjax.train --plan-only`: what a command would train, compile and take, without training it.

Prints, after the plan line: the rungs of a halving (configurations, runs and
chunks per rung), the work (run-updates) and the env steps it may take, the
compiles, the confirmation, and an estimated time from one short calibration:
the first compile group's programs compiled for its first chunk and three
updates of that chunk timed (thrown away: nothing of it is kept or written).
Updates get slower as episodes lengthen, so the time is given twice: at the
initial policy's episode lengths, and with every episode at its step limit.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

CALIBRATION_UPDATES = 3  # updates of the first chunk the estimate times


def plan_only(sweep: Any, groups: list, chunks: list, estimates: list | None, devices: list, spec: Any,
              console: Console, is_main: bool = True) -> None:
    """Print the notes, the plan line and `print_plan_only`'s (process 0, `is_main`; every process calibrates)."""
    from rich.console import Console as Quiet

    from pgjax.commands import train_report

    if is_main:
        train_report.print_notes(sweep, spec.action_kind == "continuous", console)
        train_report.print_plan(sweep, groups, chunks, estimates, console)
    print_plan_only(sweep, groups, chunks, devices, console if is_main else Quiet(quiet=True))


def print_plan_only(sweep: Any, groups: list, chunks: list, devices: list, console: Console) -> None:
    """The lines of --plan-only after the plan line (`pgjax.commands.train_report.print_plan`)."""
    from pgjax.algo.envs import env_for
    from pgjax.running.repack import fitted_size

    opts, plan, seeds = sweep.run, sweep.halving, sweep.run.num_seeds
    size = {c.group: c.size for c in chunks}
    lines, compiles = [], len(groups)
    if plan is None:  # in chunk-updates of the first chunk's size: a chunk's update takes time in proportion to it
        chunk_updates = sum(c.size / chunks[0].size * groups[c.group][0].config.static.num_updates for c in chunks)
        run_updates = sum(len(c.positions) * groups[c.group][0].config.static.num_updates for c in chunks)
    else:  # one compile group assumed for the survivors' split (which the results decide)
        configurations, begun, chunk_updates, run_updates, counts = len(sweep.points), 0, 0, 0, []
        for rung, until in enumerate(plan.rung_updates):
            runs = configurations * seeds
            chunk = size[0] if rung == 0 or opts.repack == "off" else fitted_size(runs, size[0], len(devices))
            count = math.ceil(runs / chunk)
            chunk_updates += count * (until - begun) * chunk / size[0]  # in first-rung chunk-updates
            run_updates += runs * (until - begun)
            counts.append(f"{configurations:,} x {seeds} in {count:,} chunk{'s' * (count > 1)} of {chunk:,}")
            compiles += rung > 0 and chunk != size[0] and opts.repack != "off"
            begun, configurations = until, plan.survivors(configurations)
        lines.append(f"rungs at {', '.join(map(str, plan.rung_updates))} updates: {' -> '.join(counts)} runs "
                     f"(later rungs' chunks as fitted; --repack {opts.repack} decides on measured costs)")
    env = env_for(groups[0][0].config.static)
    static = groups[0][0].config.static
    most_steps = run_updates * static.episodes_per_update * env.max_steps
    lines.append(f"work: {run_updates:,} run-updates; at most {most_steps:,} env steps (every episode to its "
                 f"{env.max_steps:,}-step limit)")
    if opts.confirm_seeds:
        confirm_runs = (opts.confirm_top + 1) * opts.confirm_seeds
        lines.append(f"then the confirmation: at most {opts.confirm_top} configurations and the reference x "
                     f"{opts.confirm_seeds} fresh seeds = {confirm_runs:,} runs x {static.num_updates:,} updates, "
                     "a compile of its own")
        compiles += 1
    seconds_per_update, compile_seconds, loop_steps, cached = _calibrate(groups, chunks[0], seeds, opts, devices)
    lines.append(f"compiles: {compiles} (the first took {compile_seconds:.1f} s"
                 f"{', loaded from the compile cache' if cached else ''})")
    initial = chunk_updates * seconds_per_update
    longest = initial * env.max_steps / max(loop_steps, 1.0)
    lines.append(f"estimated training time: {_duration(initial)} at the initial policy's episodes "
                 f"({loop_steps:.0f} steps), up to {_duration(longest)} with every episode at its limit, plus "
                 f"the compiles (timed: {CALIBRATION_UPDATES} updates of the first chunk of {chunks[0].size:,} "
                 "runs, thrown away)")
    lines.append("plan only: nothing was trained or written")
    for line in lines:
        console.print(line, soft_wrap=True)


def _calibrate(groups: list, chunk: Any, num_seeds: int, opts: Any,
               devices: list) -> tuple[float, float, float, bool]:
    """(seconds per update of `chunk`, seconds its programs took to compile, its runs' mean rollout-loop steps per
    update, whether they came from the compile cache) from `CALIBRATION_UPDATES` updates of it, nothing written."""
    from pgjax.running.sweep import ChunkRunner

    runner = ChunkRunner(groups, num_seeds, opts.seed, devices=devices, block_rows=opts.gradient_block_rows)
    until = min(CALIBRATION_UPDATES, groups[chunk.group][0].config.static.num_updates)
    _, metrics = runner.train_chunk(chunk, None, until)
    return (runner.info["run_seconds"] / until, runner.info["compile_seconds"], float(metrics.loop_steps.mean()),
            runner.info["compile_cache_hits"] > 0)


def _duration(seconds: float) -> str:
    """e.g. "45 s", "12.5 min", "3.2 h"."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"
