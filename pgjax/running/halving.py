"""Successive halving: train every configuration to a rung, keep the best 1/ETA, train those on, and so on.

    plan = HalvingPlan.make(num_updates=100, eta=3, rungs=3)     # rungs at 11, 33, 100 updates
    results, info, outcome = train_halving(groups, 16, 0, plan, chunks, score)

A configuration is a grid point, trained on the same `num_seeds` seeds as every
other (paired). At rung k every configuration still in trains up to
`plan.rung_updates[k]` updates; the best ceil(n / ETA) of the n configurations
in, ranked by `score` (higher is better; ties go to the lower grid point index),
go on to the next rung; the others stop there and keep what they trained. The
last rung is the whole `num_updates`.

The survivors continue from their states (kept on the host between rungs).
A later rung's runs are chunked with the chunk size of the group's first-rung
plan, or repacked into smaller chunks where the padding that saves outweighs
one more compile of the group's segment program (`pgjax.running.repack`: the
cost model, measured on the first rung; `repack="off"` never does). Since a
segment's results do not depend on where segments end (`pgjax.running.sweep`),
a configuration that survives to the end computes what it would have computed
without halving wherever its chunks hold the same runs as they would have
(bitwise, with the same per-device batch shape: the rollout loop of a batch
runs to its longest episode, which `Metrics.loop_steps` reports); in a
repacked rung its batch shape changes, and so may the last bits of its floats.

Checkpoints go to `checkpoints/rung-<k>/chunk-<c>/` of the run folder, the
metrics of every update since the first, and a later rung's chunk sizes to
`checkpoints/rung-<k>/chunk_sizes.json` before it trains; the rung plan is a
function of the first rung's chunk plan, of the metrics and of those sizes, so
a resumed sweep makes the same choices and restores every chunk it had trained.
`Halving` is successive halving as a stage of a plan (`pgjax.running.strategy`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from pgjax.algo.trainer import Metrics
from pgjax.running.grid import GridPoint
from pgjax.running.progress import rung_progress
from pgjax.running.repack import RungCost, SizeChoice, choose_chunk_size, fitted_size, read_sizes, write_sizes
from pgjax.running.run_folder.checkpoints import CHECKPOINT_DIR, check_chunk_folders
from pgjax.running.segments import concat_trees, split_into_chunks
from pgjax.running.sharding import process_0_values
from pgjax.running.strategy import Hooks, Plan, Trained, Work
from pgjax.running.sweep import SEGMENT_UPDATES, Chunk, ChunkRunner, ChunkStart, GroupResult, SegmentReport

DEFAULT_RUNGS = 3  # rungs when --halving is given without --rungs


@dataclasses.dataclass(frozen=True)
class HalvingPlan:
    """Rungs of successive halving.

    Attributes:
      eta: keep the best 1/eta of the configurations at each rung (ceil, at least 1).
      rung_updates: [K] updates at the end of each rung, strictly increasing,
        the last one the whole run's `num_updates`.
    """

    eta: int
    rung_updates: tuple[int, ...]

    @property
    def rungs(self) -> int:
        return len(self.rung_updates)

    @classmethod
    def for_points(cls, points: Sequence[GridPoint], eta: int | None, rungs: int | None) -> HalvingPlan | None:
        """The rungs of --halving ETA (and --rungs) for `points`; None without --halving.

        Raises:
          ValueError: (naming the flags) --rungs without --halving, grid points
            of different --num-updates, or what `make` refuses.
        """
        if eta is None:
            if rungs is not None:
                raise ValueError("--rungs sets the rungs of successive halving: give --halving ETA with it")
            return None
        budgets = sorted({p.config.static.num_updates for p in points})
        if len(budgets) > 1:
            raise ValueError(f"--halving needs the same number of updates for every grid point, and these train "
                             f"{', '.join(map(str, budgets))}: give --num-updates instead of --num-episodes")
        return cls.make(budgets[0], eta, rungs)

    @classmethod
    def make(cls, num_updates: int, eta: int, rungs: int | None = None) -> HalvingPlan:
        """The standard rungs: rung k ends after round(num_updates * eta^-(K-1-k)) updates (halves rounded up).

        Raises:
          ValueError: (naming the flags) eta < 2, rungs < 1, or rungs that are
            not at least 1 update and strictly increasing (too many rungs for
            the updates).
        """
        rungs = DEFAULT_RUNGS if rungs is None else rungs
        if eta < 2:
            raise ValueError(f"--halving must be >= 2 (each rung keeps the best 1/ETA of the configurations), "
                             f"got {eta}")
        if rungs < 1:
            raise ValueError(f"--rungs must be >= 1, got {rungs}")
        fit = 1  # the most rungs that fit: they only collapse more with more rungs (checked first, so that
        while fit < rungs and _rung_updates(num_updates, eta, fit + 1) is not None:  # --rungs 100000 is quick)
            fit += 1
        if fit < rungs:
            where = "the rungs below 1 update or on top of each other"
            if rungs <= 8:  # a short list says it all; 100,000 rungs would not
                updates = [math.floor(num_updates / eta ** (rungs - 1 - k) + 0.5) for k in range(rungs)]
                where = (f"the rungs at {', '.join(map(str, updates))} updates, which must be >= 1 and strictly "
                         "increasing")
            raise ValueError(
                f"--halving {eta} --rungs {rungs} with --num-updates {num_updates} puts {where}: at most {fit} "
                f"rung{'s' * (fit > 1)} fit{'s' * (fit == 1)} {num_updates} updates with --halving {eta} (give "
                "fewer --rungs, a smaller --halving or more --num-updates)")
        return cls(eta, _rung_updates(num_updates, eta, rungs))

    def survivors(self, num_in: int) -> int:
        """How many of `num_in` configurations go on to the next rung: ceil(num_in / eta), at least 1."""
        return max(1, math.ceil(num_in / self.eta))


def _rung_updates(num_updates: int, eta: int, rungs: int) -> tuple[int, ...] | None:
    """The rungs' updates round(num_updates * eta^-(K-1-k)), or None where they are not >= 1 and increasing."""
    updates = tuple(math.floor(num_updates / eta ** (rungs - 1 - k) + 0.5) for k in range(rungs))
    if updates[0] < 1 or any(b <= a for a, b in zip(updates, updates[1:])):
        return None
    return updates


def rank(scores: Sequence[float], indices: Sequence[int]) -> list[int]:
    """`indices` from the best score to the worst; NaN counts as the worst; ties by index (lower first)."""
    scores = np.where(np.isnan(np.asarray(scores, np.float64)), -np.inf, np.asarray(scores, np.float64))
    order = np.lexsort((np.asarray(indices), -scores))
    return [int(indices[i]) for i in order]


def rung_dir(run_dir: Path, rung: int, chunk: int) -> Path:
    """A rung's chunk checkpoint folder: `<run_dir>/checkpoints/rung-<k>/chunk-<c>`."""
    return Path(run_dir) / CHECKPOINT_DIR / f"rung-{rung}" / f"chunk-{chunk:04d}"


@dataclasses.dataclass(frozen=True)
class HalvingOutcome:
    """What successive halving decided.

    Attributes:
      plan: the rungs.
      rung: grid point index -> 0-based index of the last rung it trained through.
      survivors: [K] per rung, the grid point indices that trained through it (best first
        where ranked: every rung's list is in the order of that rung's ranking).
      scores: [K] per rung, grid point index -> its score at the rung's end.
      chunks: [K] chunks trained per rung.
      chunk_sizes: [K] per rung, compile group -> its chunk size in the rung.
      choices: [K] per rung, compile group -> the `SizeChoice` that set it
        (rung 0's: none; a resumed rung's sizes were read back: none).
    """

    plan: HalvingPlan
    rung: dict[int, int]
    survivors: list[list[int]]
    scores: list[dict[int, float]]
    chunks: list[int]
    chunk_sizes: list[dict[int, int]] = dataclasses.field(default_factory=list)
    choices: list[dict[int, SizeChoice]] = dataclasses.field(default_factory=list)


def train_halving(
    groups: Sequence[Sequence[GridPoint]],
    num_seeds: int,
    first_seed: int,
    plan: HalvingPlan,
    chunks: list[Chunk],
    score: Callable[[Metrics], float],
    *,
    devices: list | None = None,
    run_dir: Path | None = None,
    checkpoint_every: int | None = None,
    segment_updates: int = SEGMENT_UPDATES,
    rung_progress: Callable[[int, int, int, int], Any] | None = None,
    on_segment: Callable[[SegmentReport], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    block_rows: int | None = None,
    repack: str = "auto",
) -> tuple[list[GroupResult], dict, HalvingOutcome]:
    """Train the sweep by successive halving.

    Args:
      groups: compile groups of grid points (`grid.compile_groups`); every grid
        point trains the same `num_updates`, the last rung's.
      num_seeds, first_seed: every configuration's seeds, at every rung (paired).
      plan: the rungs (`HalvingPlan.make`).
      chunks: the first rung's chunk plan (`sweep.plan_chunks`): its chunk size
        per compile group serves every rung, or the most a later rung's repacked
        chunks hold.
      score: a configuration's metrics ([num_seeds, u, ...] after u updates) ->
        its score, higher better (NaN: the worst).
      devices, checkpoint_every, segment_updates, should_stop: as `train_sweep`'s.
      run_dir: where checkpoints go (`rung_dir`); None: none. Chunks found
        there are restored (a resumed sweep).
      rung_progress: `(rung, configurations, num_chunks, work, note) -> context
        manager`, entered around each rung, whose value (if not None) is called
        with every `SegmentReport` of the rung; `configurations` is the number of
        grid points in the rung, `work` adds up its chunks' run-updates (real runs
        x updates), `note` says how a later rung's runs were packed ("" for none).
      on_segment: also called with every `SegmentReport`, of every rung.
      repack: a later rung's chunk sizes (`pgjax.running.repack.REPACK_MODES`):
        "auto" by the cost model, "off" the first rung's, "always" the fitted ones.

    Returns:
      (results, info, outcome): one `GroupResult` per grid point, in grid point
      order, with `num_seeds` runs and the metrics of the updates it trained
      (leaves [num_seeds, rung_updates[rung], ...]); `train_sweep`'s info
      ("chunks" counts every rung's); the `HalvingOutcome`.

    Raises:
      Interrupted: `should_stop` said so; what was trained is checkpointed (with `run_dir`).
    """
    trainer = ChunkRunner(groups, num_seeds, first_seed, devices=devices, checkpoint_every=checkpoint_every,
                           segment_updates=segment_updates, should_stop=should_stop, block_rows=block_rows)
    chunk_size = {c.group: c.size for c in chunks}
    group_of = {p.index: (g, i) for g, points in enumerate(groups) for i, p in enumerate(points)}
    alive = sorted(group_of)
    starts: dict[int, ChunkStart] = {}  # grid point index -> its runs' state and metrics at the previous rung
    results: dict[int, GroupResult] = {}
    outcome = HalvingOutcome(plan, {}, [], [], [])
    costs: dict[int, RungCost | None] = {}  # compile group -> what its first rung measured
    if run_dir is not None:  # a resumed sweep: every checkpoint must be one of this plan's (rung 0's, before training)
        _check_resumed(trainer, run_dir, plan, chunks, _rung_chunks(alive, group_of, chunk_size, num_seeds))
    for rung, until in enumerate(plan.rung_updates):
        begun = 0 if rung == 0 else plan.rung_updates[rung - 1]
        sizes, choices = (chunk_size, {}) if rung == 0 else _rung_sizes(
            trainer, alive, group_of, starts, chunk_size, num_seeds, rung, until - begun, costs, run_dir, repack)
        rung_chunks = _rung_chunks(alive, group_of, sizes, num_seeds)
        total = (until - begun) * sum(len(c.positions) for c in rung_chunks)  # run-updates
        with (rung_progress(rung, len(alive), len(rung_chunks), total, _packing_note(choices)) if rung_progress
              else contextlib.nullcontext()) as report:
            callbacks = [f for f in (report, on_segment) if f is not None]
            trainer.loop.on_segment = (lambda r: [f(r) for f in callbacks]) if callbacks else None
            trainer.loop.num_chunks = len(rung_chunks)
            for g in sorted({group_of[index][0] for index in alive}):
                members = [index for index in alive if group_of[index][0] == g]  # grid points in, in run order
                group_chunks = [c for c in rung_chunks if c.group == g]
                before = dict(trainer.info)
                _train_rung_group(trainer, group_chunks, members, starts, rung, until, run_dir, num_seeds)
                if rung == 0:
                    costs[g] = _measured_cost(trainer, g, before, group_chunks, [starts[i] for i in members])
        scores = {index: float(score(starts[index].metrics)) for index in alive}
        ranked = _record_rung(outcome, alive, scores, rung_chunks, {group_of[i][0]: sizes[group_of[i][0]]
                                                                     for i in alive}, choices)
        last = rung == plan.rungs - 1
        kept = ranked if last else ranked[:plan.survivors(len(alive))]
        for index in alive:
            if last or index not in kept:  # its training ends at this rung
                results[index] = _result(trainer, group_of[index], starts.pop(index), num_seeds)
                outcome.rung[index] = rung
        alive = sorted(kept)
    sizes = sorted({size for rung_sizes in outcome.chunk_sizes for size in rung_sizes.values()})
    info = {**trainer.info, "chunks": sum(outcome.chunks), "chunk_sizes": sizes, "memory_estimate": None}
    return [results[index] for index in sorted(results)], info, outcome


def _check_resumed(trainer: ChunkRunner, run_dir: Path, plan: HalvingPlan, chunks: list[Chunk],
                   first_rung: list[Chunk]) -> None:
    """Before training: every checkpoint folder is one of the plan's, and the first rung's match their chunks."""
    check_chunk_folders(run_dir, {rung_dir(run_dir, k, c.index) for k in range(plan.rungs) for c in chunks},
                        len(chunks))
    trainer.check_checkpoints(first_rung, lambda c: rung_dir(run_dir, 0, c.index), plan.rung_updates[0])


def _packing_note(choices: dict[int, SizeChoice]) -> str:
    """How a later rung's runs were packed, for its progress line ("" for the first rung)."""
    if len(choices) == 1:
        return next(iter(choices.values())).text()
    return "; ".join(f"group {g}: {choices[g].text()}" for g in sorted(choices))


def _record_rung(outcome: HalvingOutcome, alive: list[int], scores: dict[int, float], chunks: list[Chunk],
                 sizes: dict[int, int], choices: dict[int, SizeChoice]) -> list[int]:
    """Add a rung's ranking (of `alive` by `scores`, `rank`), scores, chunk count, chunk sizes and packing
    choices to `outcome`; returns the ranking."""
    ranked = rank([scores[i] for i in alive], alive)
    outcome.survivors.append(ranked)
    outcome.scores.append(scores)
    outcome.chunks.append(len(chunks))
    outcome.chunk_sizes.append(dict(sorted(sizes.items())))
    outcome.choices.append(choices)
    return ranked


def _measured_cost(trainer: ChunkRunner, g: int, before: dict, chunks: list[Chunk],
                   trained: list[ChunkStart]) -> RungCost | None:
    """What compile group `g`'s first rung measured (`trainer.info` was `before` it, `trained` holds its grid
    points' runs after it); None where a chunk of it was restored from a checkpoint (its time was not measured)."""
    if trainer.info["resumed_updates"] != before["resumed_updates"] or not chunks:
        return None
    loop_steps = np.concatenate([t.metrics.loop_steps for t in trained]).mean(axis=0)  # [updates]
    slot_steps = sum(c.size for c in chunks) * float(loop_steps.sum())  # what the batches computed, padding too
    return RungCost((trainer.info["run_seconds"] - before["run_seconds"]) / max(slot_steps, 1.0),
                    trainer.compile_seconds(g, chunks[0].size))


def _rung_sizes(trainer: ChunkRunner, alive: list[int], group_of: dict[int, tuple[int, int]],
                starts: dict[int, ChunkStart], first_sizes: dict[int, int], num_seeds: int, rung: int, updates: int,
                costs: dict[int, RungCost | None], run_dir: Path | None,
                mode: str) -> tuple[dict[int, int], dict[int, SizeChoice]]:
    """A later rung's chunk size per compile group: read back from the run folder (a resumed sweep), else
    chosen (`choose_chunk_size`; in a multi-process run process 0's choice) and recorded there."""
    runs = {}
    for index in alive:
        runs[group_of[index][0]] = runs.get(group_of[index][0], 0) + num_seeds
    num_devices = trainer.info["devices"]
    if run_dir is not None:
        recorded = read_sizes(run_dir, rung, {g: first_sizes[g] for g in runs}, num_devices)
        if recorded is not None:
            return recorded, {}
    steps_per_update = {}  # compile group -> the survivors' mean loop steps at their last update
    for g in runs:
        last = [starts[index].metrics.loop_steps[:, -1] for index in alive if group_of[index][0] == g]
        steps_per_update[g] = float(np.concatenate(last).mean())
    choices = {g: choose_chunk_size(n, first_sizes[g], num_devices, updates * steps_per_update[g], costs.get(g),
                                    mode, compiled=_fitted_compiled(trainer, g, n, first_sizes[g], num_devices))
               for g, n in sorted(runs.items())}
    sizes = {g: choice.size for g, choice in choices.items()}
    if jax.process_count() > 1:  # every process trains the same chunks: process 0's measurements decide
        agreed = process_0_values(np.array([sizes[g] for g in sorted(sizes)], np.int64))
        sizes = dict(zip(sorted(sizes), (int(size) for size in agreed)))
        choices = {g: c for g, c in choices.items() if c.size == sizes[g]}
    if run_dir is not None and jax.process_index() == 0:
        write_sizes(run_dir, rung, sizes)
    return sizes, choices


def _fitted_compiled(trainer: ChunkRunner, g: int, runs: int, first_size: int, num_devices: int) -> bool:
    """Whether compile group `g`'s program is compiled already for the fitted chunk size of `runs` runs."""
    return fitted_size(runs, first_size, num_devices) in trainer.compiled_sizes(g)


def _train_rung_group(trainer: ChunkRunner, chunks: list[Chunk], members: list[int], starts: dict[int, ChunkStart],
                      rung: int, until: int, run_dir: Path | None, num_seeds: int) -> None:
    """Train one compile group's chunks of a rung to `until` updates, each grid point in `members` on from its
    start in `starts` (rung 0: from scratch); `starts` then holds each one's state and metrics after the rung."""
    before = _stack([starts[index] for index in members]) if rung else None
    trained = []
    for chunk in chunks:
        first = chunk.index - min(c.index for c in chunks)
        rows = slice(first * chunk.size, first * chunk.size + chunk.positions.size)
        start = None if before is None else ChunkStart(*jax.tree.map(lambda x: x[rows], before))
        folder = rung_dir(run_dir, rung, chunk.index) if run_dir is not None else None
        trained.append(trainer.train_chunk(chunk, folder, until, start))
    state, metrics = concat_trees(trained)
    for j, index in enumerate(members):
        rows = slice(j * num_seeds, (j + 1) * num_seeds)
        starts[index] = ChunkStart(*jax.tree.map(lambda x: x[rows].copy(), (state, metrics)))


def _result(trainer: ChunkRunner, where: tuple[int, int], done: ChunkStart, num_seeds: int) -> GroupResult:
    """The `GroupResult` of the grid point at position `where` = (compile group, place in it), trained to `done`."""
    g, i = where
    runs, seeds, _ = trainer.group_runs(g)
    rows = slice(i * num_seeds, (i + 1) * num_seeds)
    return GroupResult(runs[rows], seeds[rows], done.state, done.metrics)


def _rung_chunks(alive: list[int], group_of: dict[int, tuple[int, int]], chunk_size: dict[int, int],
                 num_seeds: int) -> list[Chunk]:
    """A rung's chunks: each compile group's runs of the grid points still in, in run order, `chunk_size` at a time."""
    chunks = []
    for g in sorted({group_of[index][0] for index in alive}):
        positions = np.array([group_of[index][1] * num_seeds + k for index in alive if group_of[index][0] == g
                              for k in range(num_seeds)], np.int64)
        chunks += split_into_chunks(g, positions, chunk_size[g], len(chunks))
    return chunks


def _stack(starts: list[ChunkStart]) -> ChunkStart:
    """Grid points' `ChunkStart`s one after another on the run axis."""
    return ChunkStart(*concat_trees(starts))


@dataclasses.dataclass(frozen=True)
class Halving:
    """Successive halving (a `pgjax.running.strategy.Strategy`): `train_halving` over the rungs of `rungs`,
    a later rung's chunks repacked by `repack` (`pgjax.running.repack.REPACK_MODES`)."""

    rungs: HalvingPlan
    repack: str = "auto"

    def fit_chunks(self, chunks: list[Chunk], num_seeds: int, num_devices: int, resuming: bool) -> list[Chunk]:
        return chunks

    def notes(self) -> tuple[str, ...]:
        return (f"successive halving: rungs at {', '.join(map(str, self.rungs.rung_updates))} updates; at each "
                f"rung the best 1/{self.rungs.eta} of the configurations (by IQM of the final return over the "
                "seeds) go on",)

    def work(self, plan: Plan) -> Work:
        """The rungs' runs and chunks, one compile group assumed for the survivors' split (which the results
        decide), in first-rung chunk-updates."""
        size = {c.group: c.size for c in plan.chunks}
        seeds, configurations, begun, chunk_updates, run_updates, counts, compiles = (
            plan.num_seeds, len(plan.points), 0, 0, 0, [], 0)
        for rung, until in enumerate(self.rungs.rung_updates):
            runs = configurations * seeds
            chunk = (size[0] if rung == 0 or self.repack == "off"
                     else fitted_size(runs, size[0], len(plan.devices)))
            count = math.ceil(runs / chunk)
            chunk_updates += count * (until - begun) * chunk / size[0]
            run_updates += runs * (until - begun)
            counts.append(f"{configurations:,} x {seeds} in {count:,} chunk{'s' * (count > 1)} of {chunk:,}")
            compiles += rung > 0 and chunk != size[0] and self.repack != "off"
            begun, configurations = until, self.rungs.survivors(configurations)
        line = (f"rungs at {', '.join(map(str, self.rungs.rung_updates))} updates: {' -> '.join(counts)} runs "
                f"(later rungs' chunks as fitted; --repack {self.repack} decides on measured costs)")
        return Work((line,), run_updates, chunk_updates, compiles)

    def train(self, plan: Plan, hooks: Hooks, before: Trained | None) -> Trained:
        results, timings, outcome = train_halving(
            plan.groups, plan.num_seeds, plan.seed, self.rungs, plan.chunks, hooks.score, devices=plan.devices,
            run_dir=hooks.folder, checkpoint_every=plan.checkpoint_every, should_stop=hooks.should_stop,
            block_rows=plan.block_rows, rung_progress=rung_progress(hooks.console, hooks.mode, self.rungs,
                                                                    plan.num_seeds),
            on_segment=hooks.on_segment, repack=self.repack)
        return Trained(plan.points, plan.groups, results, {**timings, "memory_estimate": plan.estimates}, outcome,
                       plan.search)
