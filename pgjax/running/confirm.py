"""Confirmation on fresh seeds: a search's best configurations and a reference, trained again on other seeds.

A search picks its winner on the seeds it tuned on, and the winner's figure
on those seeds is biased upwards (the best of many noisy estimates). After a
search, the best `top` configurations by the tuning's ranking, and a
reference configuration (the preset's, `reference_config`), train again from
scratch on `num_seeds` seeds that follow the tuning seeds (disjoint from
them), paired by seed with each other: one more sweep, one compile per
compile group (one in all when they share their static settings).

    confirmation = confirmation_points(tuned, ranked, top=3, reference=config, first_seed=..., num_seeds=16)
    results, info = train_confirmation(confirmation, run_dir=out)

`Confirm` is the stage of a plan that does it after a search
(`pgjax.running.strategy`): `--confirm-seeds` (`confirm_seeds_of`) and
`--confirm-top`. What summary.json says of it, and the ranking it starts
from, are `pgjax.results.confirmation`'s.

Checkpoints go to `checkpoints/confirmation/chunk-<c>/` of the run folder and
the plan (which configurations, which seeds, the chunks) to
`checkpoints/confirmation/plan.json` before training, so that a resumed run
trains the same chunks wherever its memory would now plan others.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import jax

from pgjax.algo.config import Config, is_static
from pgjax.algo.presets import preset_config
from pgjax.running.grid import GridPoint, compile_groups, varied_settings
from pgjax.running.progress import SweepProgress
from pgjax.running.run_folder.checkpoints import CHECKPOINT_DIR, CheckpointMismatch, chunk_folders, write_record
from pgjax.running.run_folder.resume import chunk_plan, resumed_chunks
from pgjax.running.segments import concat_trees
from pgjax.running.strategy import Confirmed, Hooks, Plan, Trained, Work
from pgjax.running.sweep import ChunkRunner, GroupResult, SegmentReport, plan_chunks

CONFIRM_DIR = "confirmation"  # under the run folder's checkpoints/
PLAN_FILE = "plan.json"
DEFAULT_CONFIRM_SEEDS = 16  # --confirm-seeds for a search or a halving when not given
DEFAULT_CONFIRM_TOP = 3  # --confirm-top


@dataclasses.dataclass(frozen=True)
class Confirmation:
    """What a confirmation trains.

    Attributes:
      points: the configurations, as grid points 0..n-1 of the confirmation sweep:
        the tuning's best first, then the reference (unless it is one of them).
      tuned: [n] the tuning grid point index of each (None for the reference).
      reference: the position in `points` of the reference configuration.
      first_seed, num_seeds: the confirmation's seeds, `first_seed + k`.
    """

    points: list[GridPoint]
    tuned: list[int | None]
    reference: int
    first_seed: int
    num_seeds: int

    def record(self) -> dict:
        """What plan.json holds of it (besides the chunks): checked against a resumed run's."""
        return {"tuned": self.tuned, "reference": self.reference, "first_seed": self.first_seed,
                "num_seeds": self.num_seeds}


def confirmation_points(tuned: Sequence[GridPoint], ranked: Sequence[int], top: int, reference: Config,
                        first_seed: int, num_seeds: int) -> Confirmation:
    """The confirmation of a search: its best `top` grid points (by `ranked`, best first) and `reference`.

    Args:
      tuned: the search's grid points; ranked: their indices, best first (the
        groups that completed: under successive halving, the last rung's).
      top: how many of the best to confirm (fewer where fewer are ranked).
      reference: the configuration to compare against; where it equals one of
        the best, that one is the reference and nothing trains twice.
      first_seed, num_seeds: the confirmation's seeds.

    Raises:
      ValueError: nothing ranked (no configuration completed with a sane run).
    """
    if not ranked:
        raise ValueError("no configuration of the search has a run that did not diverge: nothing to confirm")
    by_index = {p.index: p for p in tuned}
    best = [by_index[i] for i in ranked[:top]]
    configs = [p.config for p in best]
    indices: list[int | None] = [p.index for p in best]
    if reference in configs:
        position = configs.index(reference)
    else:
        configs.append(reference)
        indices.append(None)
        position = len(configs) - 1
    points = [GridPoint(k, config) for k, config in enumerate(configs)]
    return Confirmation(points, indices, position, first_seed, num_seeds)


def confirm_dir(run_dir: Path) -> Path:
    """`<run_dir>/checkpoints/confirmation`."""
    return Path(run_dir) / CHECKPOINT_DIR / CONFIRM_DIR


def train_confirmation(
    confirmation: Confirmation,
    *,
    devices: list | None = None,
    max_parallel: int | None = None,
    run_dir: Path | None = None,
    on_segment: Callable[[SegmentReport], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    block_rows: int | None = None,
    on_plan: Callable[[list], None] | None = None,
    checkpoint_every: int | None = None,
) -> tuple[list[GroupResult], dict]:
    """Train the confirmation sweep (every run to the end), checkpointed under `confirm_dir(run_dir)`.

    Args:
      confirmation: `confirmation_points`'s.
      devices, max_parallel, on_segment, should_stop, block_rows, checkpoint_every: as
        `pgjax.running.sweep.train_sweep`'s.
      run_dir: the run folder (None: no checkpoints). A plan found there is
        followed (a resumed run), its chunks restored.
      on_plan: called with the chunks before training (for a progress line).

    Returns:
      (results, info) as `train_sweep`'s: one `GroupResult` per compile group of `confirmation.points`.

    Raises:
      CheckpointMismatch: a plan.json or chunk folder there of another confirmation.
      Interrupted: `should_stop` said so (the chunk is checkpointed).
    """
    devices = devices or jax.devices()
    groups = compile_groups(confirmation.points)
    chunks = _planned_chunks(confirmation, groups, devices, max_parallel, block_rows, run_dir)
    if on_plan is not None:
        on_plan(chunks)
    trainer = ChunkRunner(groups, confirmation.num_seeds, confirmation.first_seed, devices=devices,
                          checkpoint_every=checkpoint_every, on_segment=on_segment, should_stop=should_stop,
                          block_rows=block_rows)
    trainer.info.update({"chunks": len(chunks), "chunk_sizes": sorted({c.size for c in chunks})})
    trainer.loop.num_chunks = len(chunks)
    folder = None if run_dir is None else confirm_dir(run_dir)
    results = []
    for g in range(len(groups)):
        runs, seeds, _ = trainer.group_runs(g)
        trained = [trainer.train_chunk(c, None if folder is None else folder / f"chunk-{c.index:04d}")
                   for c in chunks if c.group == g]
        results.append(GroupResult(runs, seeds, concat_trees([s for s, _ in trained]),
                                   concat_trees([m for _, m in trained])))
    return results, trainer.info


def _planned_chunks(confirmation: Confirmation, groups: list, devices: list, max_parallel: int | None,
                    block_rows: int | None, run_dir: Path | None) -> list:
    """The confirmation's chunks: the plan.json of a resumed run (checked), else a new plan, recorded."""
    if run_dir is None:
        return plan_chunks(groups, confirmation.num_seeds, devices, max_parallel, block_rows=block_rows)[0]
    folder = confirm_dir(run_dir)
    path = folder / PLAN_FILE
    if path.is_file():
        try:
            saved = json.loads(path.read_text())
        except (OSError, ValueError, UnicodeDecodeError):
            saved = None
        if not isinstance(saved, dict) or {k: saved.get(k) for k in confirmation.record()} != confirmation.record():
            raise CheckpointMismatch(run_dir, f"{path.relative_to(run_dir).as_posix()} plans another "
                                              "confirmation than the search's results give")
        try:
            chunks = resumed_chunks(path, saved, groups, confirmation.num_seeds, devices)
        except (KeyError, TypeError) as error:
            raise CheckpointMismatch(run_dir, f"{path.relative_to(run_dir).as_posix()} has no chunk plan "
                                              f"({error})") from None
    else:
        chunks = plan_chunks(groups, confirmation.num_seeds, devices, max_parallel, block_rows=block_rows)[0]
        if jax.process_index() == 0:
            write_record(path, {**confirmation.record(), "chunks": chunk_plan(chunks), "num_devices": len(devices)})
    expected = {folder / f"chunk-{c.index:04d}" for c in chunks}
    for found in chunk_folders(folder):
        if found not in expected:
            raise CheckpointMismatch(run_dir, f"{found.relative_to(run_dir).as_posix()} belongs to no chunk of "
                                              f"the confirmation, which has {len(chunks)}")
    return chunks


def confirm_seeds_of(confirm_seeds: int | None, searched: bool, num_points: int) -> int:
    """--confirm-seeds as given, else `DEFAULT_CONFIRM_SEEDS` for a search or a halving (`searched`), else 0;
    0 for a single grid point (nothing was chosen)."""
    if num_points < 2:
        return 0
    if confirm_seeds is not None:
        return confirm_seeds
    return DEFAULT_CONFIRM_SEEDS if searched else 0


def reference_config(preset: str, points: Sequence[GridPoint]) -> Config:
    """The configuration a search is measured against: its first grid point with the preset's values for
    every setting the grid varies (the command without the swept flags). Where the grid varies the updates (an
    episode budget, --num-episodes), the reference's updates keep the first point's episodes."""
    first = points[0].config
    base = preset_config(preset, first.static.env)
    varied = [n for n in varied_settings([p.hyperparameters() for p in points]) if n != "num_updates"]
    static = dataclasses.replace(first.static, **{n: getattr(base.static, n) for n in varied if is_static(n)})
    hparams = first.hparams.replace(**{n: getattr(base.hparams, n) for n in varied if not is_static(n)})
    if "episodes_per_update" in varied and len({p.config.static.num_updates for p in points}) > 1:
        episodes = first.static.num_updates * first.static.episodes_per_update
        static = dataclasses.replace(static, num_updates=max(1, math.ceil(episodes / static.episodes_per_update)))
    return dataclasses.replace(first, static=static, hparams=hparams)


@dataclasses.dataclass(frozen=True)
class Confirm:
    """The confirmation after a search (a `pgjax.running.strategy.Strategy`): the search's best `top` grid
    points (by `Hooks.rank`) and the preset's configuration (`reference_config`) on `seeds` fresh seeds, those
    after the tuning's."""

    seeds: int
    top: int = DEFAULT_CONFIRM_TOP

    def fit_chunks(self, chunks: list, num_seeds: int, num_devices: int, resuming: bool) -> list:
        return chunks

    def notes(self) -> tuple[str, ...]:
        return ()

    def work(self, plan: Plan) -> Work:
        """Its line of --plan-only; its chunks are planned once the search has trained (a compile of its own)."""
        static = plan.groups[0][0].config.static
        runs = (self.top + 1) * self.seeds
        return Work((f"then the confirmation: at most {self.top} configurations and the reference x {self.seeds} "
                     f"fresh seeds = {runs:,} runs x {static.num_updates:,} updates, a compile of its own",),
                    compiles=1)

    def train(self, plan: Plan, hooks: Hooks, before: Trained | None) -> Trained:
        """`before` with the confirmation of its results (`Trained.confirmed`); as it is where none of its
        configurations has a run that did not diverge."""
        outcome = before.outcome
        stopped = (set() if outcome is None
                   else {i for i, rung in outcome.rung.items() if rung < outcome.plan.rungs - 1})
        ranked, iqm = hooks.rank(before.points, plan.num_seeds, before.results, plan.spec.solve_threshold, stopped)
        if not ranked:
            hooks.console.print("confirmation: no configuration of the search has a run that did not diverge: none")
            return before
        confirmation = confirmation_points(before.points, ranked, self.top, reference_config(
            plan.preset, before.points), plan.seed + plan.num_seeds, self.seeds)
        work = sum(p.config.static.num_updates for p in confirmation.points) * confirmation.num_seeds
        with SweepProgress(work, hooks.console, hooks.mode) as progress:
            results, timings = train_confirmation(
                confirmation, devices=plan.devices, max_parallel=plan.max_parallel, run_dir=hooks.folder,
                on_segment=progress.report, should_stop=hooks.should_stop, block_rows=plan.block_rows,
                on_plan=lambda chunks: hooks.say(_plan_text(confirmation, plan, chunks)),
                checkpoint_every=plan.checkpoint_every)
        return dataclasses.replace(before, confirmed=Confirmed(confirmation, results, timings, iqm))


def _plan_text(confirmation: Confirmation, plan: Plan, chunks: list) -> str:
    """e.g. "confirmation: the best 3 configurations (groups 6, 1, 4) and the reference x 16 fresh seeds
    (4-19) | 64 runs in 1 chunk"."""
    best = [i for i in confirmation.tuned if i is not None]
    reference = ("and the reference" if confirmation.tuned[confirmation.reference] is None
                 else f"(the reference is group {confirmation.tuned[confirmation.reference]})")
    runs = len(confirmation.points) * confirmation.num_seeds
    last = confirmation.first_seed + confirmation.num_seeds - 1
    return (f"confirmation: the best {len(best)} configuration{'s' * (len(best) > 1)} (group"
            f"{'s' * (len(best) > 1)} {', '.join(map(str, best))}) {reference} x {confirmation.num_seeds} fresh "
            f"seeds ({confirmation.first_seed}-{last}; tuning seeds {plan.seed}-{plan.seed + plan.num_seeds - 1}) | "
            f"{runs} runs in {len(chunks)} chunk{'s' * (len(chunks) > 1)}")
