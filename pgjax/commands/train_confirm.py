"""`python -m pgjax.train --confirm-seeds N`: after a search, its best configurations on fresh seeds.

The command's part of a confirmation: how many seeds (`confirm_seeds_of`),
the reference configuration (`reference_config`: the preset's values for the
settings the search varied), and `confirm`, which ranks the search's results,
trains the confirmation (`pgjax.running.confirm`) with a progress line and
returns summary.json's "confirmation" (`pgjax.results.confirmation`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from rich.console import Console

    from pgjax.algo.config import Config
    from pgjax.commands.options import RunOptions


def confirm_seeds_of(run: RunOptions, searched: bool, num_points: int) -> int:
    """--confirm-seeds as given, else `DEFAULT_CONFIRM_SEEDS` for a search or a halving (`searched`), else 0;
    0 for a single grid point (nothing was chosen)."""
    from pgjax.running.confirm import DEFAULT_CONFIRM_SEEDS

    if num_points < 2:
        return 0
    if run.confirm_seeds is not None:
        return run.confirm_seeds
    return DEFAULT_CONFIRM_SEEDS if searched else 0


def reference_config(preset: str, points: list) -> Config:
    """The configuration a search is measured against: its first grid point with the preset's values for
    every setting the grid varies (the command without the swept flags). Where the grid varies the updates (an
    episode budget, --num-episodes), the reference's updates keep the first point's episodes."""
    from pgjax.algo.config import is_static
    from pgjax.algo.presets import preset_config
    from pgjax.running.grid import varied_settings

    first = points[0].config
    base = preset_config(preset, first.static.env)
    varied = [n for n in varied_settings([p.hyperparameters() for p in points]) if n != "num_updates"]
    static = dataclasses.replace(first.static, **{n: getattr(base.static, n) for n in varied if is_static(n)})
    hparams = first.hparams.replace(**{n: getattr(base.hparams, n) for n in varied if not is_static(n)})
    if "episodes_per_update" in varied and len({p.config.static.num_updates for p in points}) > 1:
        episodes = first.static.num_updates * first.static.episodes_per_update
        static = dataclasses.replace(static, num_updates=max(1, math.ceil(episodes / static.episodes_per_update)))
    return dataclasses.replace(first, static=static, hparams=hparams)


def confirm(sweep: Any, opts: RunOptions, results: list, outcome, spec, out: Path, devices: list,
            console: Console, mode: str, stop) -> dict | None:
    """Train the confirmation of `sweep`'s search (with `opts.confirm_seeds`) and return summary.json's
    "confirmation"; None without one.

    Raises:
      Interrupted: `stop` was triggered (the confirmation's chunk is checkpointed).
    """
    from pgjax.results.confirmation import confirmation_fields, tuning_ranking
    from pgjax.running.confirm import confirmation_points, train_confirmation
    from pgjax.running.progress import SweepProgress

    if not opts.confirm_seeds:
        return None
    stopped = set() if outcome is None else {i for i, rung in outcome.rung.items() if rung < outcome.plan.rungs - 1}
    ranked, iqm = tuning_ranking(sweep.points, opts.num_seeds, results, spec.solve_threshold, stopped)
    if not ranked:
        console.print("confirmation: no configuration of the search has a run that did not diverge: none")
        return None
    confirmation = confirmation_points(sweep.points, ranked, opts.confirm_top, reference_config(sweep.preset,
                                       sweep.points), opts.seed + opts.num_seeds, opts.confirm_seeds)
    work = sum(p.config.static.num_updates for p in confirmation.points) * confirmation.num_seeds
    with SweepProgress(work, console, mode) as progress:
        def plan_line(chunks: list) -> None:
            if mode != "off":
                console.print(_plan_text(confirmation, opts, chunks), soft_wrap=True)

        results, timings = train_confirmation(
            confirmation, devices=devices, max_parallel=opts.max_parallel, run_dir=out, on_segment=progress.report,
            should_stop=stop, block_rows=opts.gradient_block_rows, on_plan=plan_line,
            checkpoint_every=opts.checkpoint_every)
    tuning = {"first_seed": opts.seed, "num_seeds": opts.num_seeds, "iqm": iqm}
    return confirmation_fields(confirmation, results, spec.solve_threshold, tuning, timings)


def _plan_text(confirmation, opts: RunOptions, chunks: list) -> str:
    """e.g. "confirmation: the best 3 configurations (groups 6, 1, 4) and the reference x 16 fresh seeds
    (4-19) | 64 runs in 1 chunk"."""
    best = [i for i in confirmation.tuned if i is not None]
    reference = ("and the reference" if confirmation.tuned[confirmation.reference] is None
                 else f"(the reference is group {confirmation.tuned[confirmation.reference]})")
    runs = len(confirmation.points) * confirmation.num_seeds
    last = confirmation.first_seed + confirmation.num_seeds - 1
    return (f"confirmation: the best {len(best)} configuration{'s' * (len(best) > 1)} (group"
            f"{'s' * (len(best) > 1)} {', '.join(map(str, best))}) {reference} x {confirmation.num_seeds} fresh "
            f"seeds ({confirmation.first_seed}-{last}; tuning seeds {opts.seed}-{opts.seed + opts.num_seeds - 1}) | "
            f"{runs} runs in {len(chunks)} chunk{'s' * (len(chunks) > 1)}")
