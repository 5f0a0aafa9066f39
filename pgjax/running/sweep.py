"""Train every run of a sweep: compiled once per group, chunks that fit memory, segments of updates.

    groups = grid.compile_groups(grid.expand_grid(base, static_values, numeric_values))
    results, info = train_sweep(groups, num_seeds=64, first_seed=0)

For each compile group (grid points sharing their static settings) two
executables are compiled: one initialises a chunk of runs, the other trains
it, the runs' numeric settings vmapped and the chunk spread over every device
(`pgjax.running.sharding`), for a segment of updates. Chunks hold as many runs as
memory allows (`pgjax.running.memory`, `plan_chunks`) and run one after another;
within a chunk, segments of `segment_updates` updates run one after another
(`pgjax.running.segments`: progress, checkpoints and stops between them; the
results do not depend on where segments end). `ChunkRunner` keeps each group's
executables, so that `pgjax.running.halving` can train chunks up to a rung and
the survivors on from their states with the same programs. `PlainSweep` is the
plain sweep as a stage of a plan (`pgjax.running.strategy`).
"""
from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from pgjax.algo.config import FastPaths, Hyperparams
from pgjax.algo.trainer import Metrics, RunState, make_trainer
from pgjax.running import memory
from pgjax.running.grid import GridPoint, group_runs
from pgjax.running.progress import SweepProgress
from pgjax.running.run_folder.checkpoints import ChunkCheckpoints, check_chunk_folders, chunk_dir
from pgjax.running.segments import (
    SEGMENT_UPDATES,
    Chunk,
    ChunkStart,
    Interrupted,
    SegmentLoop,
    SegmentReport,
    _placeholder_state,
    _take,
    check_checkpoint,
    concat_trees,
    make_segment,
    segment_length,
    split_into_chunks,
)
from pgjax.running.sharding import process_0_values, run_mesh
from pgjax.running.strategy import Hooks, Plan, Trained, Work

__all__ = ["SEGMENT_UPDATES", "Chunk", "ChunkRunner", "ChunkStart", "GroupResult", "Interrupted", "PlainSweep",
           "SegmentReport", "plan_chunks", "segment_length", "train_sweep"]


@dataclasses.dataclass
class GroupResult:
    """A compile group's runs after training, in run order (NumPy leaves).

    Attributes:
      runs: [R] indices of the runs in the sweep; seeds: [R] their seeds.
      state: `RunState`, leaves [R, ...] (the PRNG key as uint32 key data).
      metrics: `Metrics`, leaves [R, U, ...].
    """

    runs: np.ndarray
    seeds: np.ndarray
    state: RunState
    metrics: Metrics


def plan_chunks(
    groups: Sequence[Sequence[GridPoint]],
    num_seeds: int,
    devices: list,
    max_parallel: int | None,
    segment_updates: int = SEGMENT_UPDATES,
    block_rows: int | None = None,
) -> tuple[list[Chunk], list[dict]]:
    """Split each compile group's runs into chunks that fit memory and `max_parallel`.

    Without `max_parallel`, chunks hold as many runs as memory allows, at most
    `memory.default_max_parallel(devices)` (a cap on CPU devices only).

    Returns:
      (chunks, estimates): the chunks in training order, and per group the
      memory estimate {"run_bytes", "device_bytes", "chunk_size", "parts"
      (`memory.RunShapes` as a dict: the bytes each part of a run holds)}.

    Raises:
      ValueError: (from `memory.chunk_size`) not even one run per device fits,
        or `max_parallel` does not fit.
    """
    num_devices = len(devices)
    available = memory.available_bytes(devices)
    default_cap = memory.default_max_parallel(devices) if max_parallel is None else None
    chunks, estimates = [], []
    for g, points in enumerate(groups):
        static = points[0].config.static
        per_run = memory.run_bytes(static, segment_length(static.num_updates, segment_updates))
        per_device = memory.device_bytes(static, block_rows)
        num_runs = len(points) * num_seeds
        try:
            size = memory.chunk_size(num_runs, per_run, per_device, num_devices, available, max_parallel)
        except memory.OneRunTooBig as error:  # advice: what would bring one run per device under the budget
            raise ValueError(memory.fitting_advice(str(error), static, per_run, num_devices, available,
                                                  block_rows)) from None
        if default_cap is not None:
            size = min(size, memory.chunk_size(num_runs, per_run, per_device, num_devices, None, default_cap))
        estimates.append({"run_bytes": per_run, "device_bytes": per_device, "chunk_size": size,
                          "parts": dataclasses.asdict(memory.run_shapes(static))})
        chunks += split_into_chunks(g, np.arange(num_runs), size, len(chunks))
    return chunks, estimates


def train_sweep(
    groups: Sequence[Sequence[GridPoint]],
    num_seeds: int,
    first_seed: int,
    *,
    devices: list | None = None,
    max_parallel: int | None = None,
    run_dir: Path | None = None,
    checkpoint_every: int | None = None,
    segment_updates: int = SEGMENT_UPDATES,
    on_segment: Callable[[SegmentReport], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    chunks: list[Chunk] | None = None,
    block_rows: int | None = None,
) -> tuple[list[GroupResult], dict]:
    """Train every run of every compile group.

    Args:
      groups: compile groups of grid points (`grid.compile_groups`).
      num_seeds, first_seed: seeds `first_seed + k`, k < num_seeds, for every grid point.
      devices: devices to spread each chunk over (default: all, of every process).
      max_parallel: most runs trained at once (default: see `plan_chunks`).
      run_dir: where checkpoints go (None: no checkpoints, and no resuming).
        Chunks found complete there are loaded, partly trained ones continue.
      checkpoint_every: also checkpoint every this many updates (besides at the
        end of each chunk and on a stop).
      segment_updates: updates per compiled segment.
      on_segment: called after every segment, on the host.
      should_stop: polled after every segment; True checkpoints the chunk (if
        `run_dir`) and raises `Interrupted`.
      chunks: a chunk plan to follow (`plan_chunks`); default: planned here.

    Returns:
      (results, info): one `GroupResult` per group, and {"compile_seconds",
      "run_seconds" (training executions only), "devices", "memory_bytes"
      (XLA's estimate, the largest over groups), "chunks", "chunk_sizes",
      "memory_estimate" (per group), "resumed_updates" and "resumed_env_steps"
      (updates, and env steps summed over runs, restored from checkpoints
      instead of trained: "run_seconds" did not train them), "compile_cache_hits" (executables loaded
      from the compile cache, `pgjax.running.devices.use_compile_cache`)}.
    """
    devices = devices or jax.devices()
    estimates = None
    if chunks is None:
        chunks, estimates = plan_chunks(groups, num_seeds, devices, max_parallel, segment_updates, block_rows)
    trainer = ChunkRunner(groups, num_seeds, first_seed, devices=devices, checkpoint_every=checkpoint_every,
                          segment_updates=segment_updates, on_segment=on_segment, should_stop=should_stop,
                          block_rows=block_rows)
    trainer.info.update({"chunks": len(chunks), "chunk_sizes": sorted({c.size for c in chunks}),
                         "memory_estimate": estimates})
    trainer.loop.num_chunks = len(chunks)
    if run_dir is not None:  # a resumed sweep: every checkpoint must be one of this plan's, before training any
        check_chunk_folders(run_dir, {chunk_dir(run_dir, c.index) for c in chunks}, len(chunks))
        trainer.check_checkpoints(chunks, lambda c: chunk_dir(run_dir, c.index))
    results = []
    for g in range(len(groups)):
        runs, seeds, _ = trainer.group_runs(g)
        trained = [trainer.train_chunk(chunk, chunk_dir(run_dir, chunk.index) if run_dir is not None else None)
                   for chunk in chunks if chunk.group == g]
        results.append(GroupResult(
            runs=runs, seeds=seeds,
            state=concat_trees([state for state, _ in trained]),
            metrics=concat_trees([metrics for _, metrics in trained]),
        ))
    return results, trainer.info


class ChunkRunner:
    """Trains chunks of a sweep's compile groups; each group's executables are compiled once and kept.

    `train_sweep` trains every chunk of a plan to the end with it;
    `pgjax.running.halving` trains chunks up to a rung, and later chunks of the
    survivors on from their states, with the same executables.

    Attributes:
      info: `train_sweep`'s timings and counters, summed over every chunk trained.
      loop: trains a chunk segment by segment; its `num_chunks` (in the plan, as
        the segment reports say) and `on_segment` may change between chunks.
    """

    def __init__(self, groups: Sequence[Sequence[GridPoint]], num_seeds: int, first_seed: int, *,
                 devices: list | None = None, checkpoint_every: int | None = None,
                 segment_updates: int = SEGMENT_UPDATES, on_segment: Callable[[SegmentReport], None] | None = None,
                 should_stop: Callable[[], bool] | None = None, block_rows: int | None = None):
        devices = devices or jax.devices()
        self.groups, self.num_seeds, self.first_seed = groups, num_seeds, first_seed
        self.block_rows = block_rows
        self.segment_updates = segment_updates
        self.info = {"compile_seconds": 0.0, "run_seconds": 0.0, "devices": len(devices), "memory_bytes": 0,
                     "resumed_updates": 0, "resumed_env_steps": 0, "compile_cache_hits": 0}
        self.loop = SegmentLoop(run_mesh(devices), 1, checkpoint_every, on_segment, should_stop, self.info)
        self._parts: dict[int, tuple] = {}
        self._entropy_bonus: dict[int, bool] = {}  # whether group g's trainer computes the entropy bonus

    def _group(self, g: int) -> tuple:
        """(runs, seeds, hparams, trainer, segment) of compile group `g`, made on first use."""
        if g not in self._parts:
            points = self.groups[g]
            runs, seeds, hparams = group_runs(points, self.num_seeds, self.first_seed)
            entropy_bonus = any(p.config.hparams.entropy_coef != 0 for p in points)
            self._entropy_bonus[g] = entropy_bonus
            trainer = make_trainer(points[0].config, fast=FastPaths(entropy_bonus=entropy_bonus,
                                                                    block_rows=self.block_rows))
            segment = make_segment(trainer, segment_length(trainer.num_updates, self.segment_updates),
                                    self.loop.mesh)
            self._parts[g] = (runs, seeds, hparams, trainer, segment)
        return self._parts[g]

    def set_points(self, g: int, points: Sequence[GridPoint]) -> None:
        """Give compile group `g` the numeric settings of `points` (its static settings, as many points),
        keeping its compiled programs (`pgjax.running.tpe` asks a search's points round by round).

        Raises:
          ValueError: points of other static settings, another number of them, or an entropy bonus that
            the group's trainer was built without.
        """
        *_, trainer, segment = self._group(g)
        before = self.groups[g]
        if len(points) != len(before) or any(p.config.static != before[0].config.static for p in points):
            raise ValueError("set_points takes as many points as the group has, of the group's static settings")
        if any(p.config.hparams.entropy_coef != 0 for p in points) and not self._entropy_bonus[g]:
            raise ValueError("set_points: an entropy bonus where the group's trainer was built without one")
        self.groups = [*self.groups[:g], list(points), *self.groups[g + 1:]]
        self._parts[g] = (*group_runs(points, self.num_seeds, self.first_seed), trainer, segment)

    def group_runs(self, g: int) -> tuple[np.ndarray, np.ndarray, Hyperparams]:
        """`grid.group_runs` of compile group `g`: (run indices [R], seeds [R], hparams [R])."""
        return self._group(g)[:3]

    def compiled_sizes(self, g: int) -> set[int]:
        """The chunk sizes compile group `g`'s segment program is compiled for so far."""
        return self.loop.compiled_sizes(self._group(g)[4])

    def compile_seconds(self, g: int, size: int) -> float:
        """Seconds compile group `g`'s segment program for chunks of `size` runs took to compile (0: not here)."""
        return self.loop.compile_seconds_by_shape.get((id(self._group(g)[4]), size), 0.0)

    def check_checkpoints(self, chunks: Sequence[Chunk], folder_of: Callable[[Chunk], Path],
                          until: int | None = None) -> None:
        """Check each chunk's checkpoint (where its folder exists) against the chunk, before any training.

        Args:
          chunks: chunks of the plan; folder_of: a chunk's checkpoint folder;
          until: the updates they train to (default: the whole run's).

        Raises:
          CheckpointMismatch: a checkpoint of another number of runs, other
            shapes, or more updates (`pgjax.running.segments.check_checkpoint`).
        """
        folders = [folder_of(chunk) for chunk in chunks]
        for chunk, folder, present in zip(chunks, folders, folders_present(folders)):
            if not present:
                continue
            trainer = self._group(chunk.group)[3]
            checkpoints = ChunkCheckpoints(folder)
            try:
                latest = checkpoints.latest()
                if latest is not None:
                    state = _take(_placeholder_state(trainer.init, chunk.size), np.arange(chunk.positions.size))
                    check_checkpoint(checkpoints, latest, state, chunk, trainer.num_updates if until is None
                                     else until, gradient_stats=trainer.gradient_stats)
            finally:
                checkpoints.close()

    def train_chunk(self, chunk: Chunk, checkpoint_dir: Path | None = None, until: int | None = None,
                    continue_from: ChunkStart | None = None) -> tuple[Any, Metrics]:
        """Train (or restore, or continue) one chunk up to update `until`.

        Args:
          chunk: runs of compile group `chunk.group` (positions among its runs).
          checkpoint_dir: the chunk's checkpoint folder (None: none). A checkpoint
            there is restored, before `continue_from`; one at `until` is complete.
          until: updates done at the end (default, and at most: `num_updates`).
          continue_from: the runs after `continue_from.updates` updates (default:
            fresh runs from their seeds).

        Returns:
          (state, metrics) of the chunk's real runs on the host, leaves [n, ...]
          (keys as key data) and [n, until, ...] (`continue_from`'s first).
        """
        _, seeds, hparams, trainer, segment = self._group(chunk.group)
        checkpoints = ChunkCheckpoints(checkpoint_dir) if checkpoint_dir is not None else None
        try:
            trained = self.loop.train_chunk(segment, trainer, chunk, seeds, hparams, checkpoints, until, continue_from)
        except BaseException:  # a second Ctrl-C may cut a save short: closing must not hide what stopped it
            if checkpoints is not None:
                with contextlib.suppress(Exception):
                    checkpoints.close()
            raise
        if checkpoints is not None:
            checkpoints.close()
        return trained


def folders_present(folders: list[Path]) -> list[bool]:
    """Which of `folders` exist, as process 0 sees them, the same on every process of a multi-process run.

    Opening a chunk's checkpoints is a barrier of every process (orbax's), so every
    process must open the same ones. A process that looked later could see a folder
    that process 0 has just made for its training, open it, and leave the processes
    one barrier apart (gloo: "Received data size doesn't match expected size"):
    process 0's view, taken before it makes any, decides.
    """
    if not folders:
        return []
    present = process_0_values(np.array([Path(folder).is_dir() for folder in folders], np.int32))
    return [bool(flag) for flag in np.asarray(present)]



def chunk_work(plan: Plan) -> Work:
    """The run-updates of every chunk of `plan` trained to its end, and the chunk-updates they take."""
    chunks, groups = plan.chunks, plan.groups
    return Work(chunk_updates=sum(c.size / chunks[0].size * groups[c.group][0].config.static.num_updates
                                  for c in chunks),
                run_updates=sum(len(c.positions) * groups[c.group][0].config.static.num_updates for c in chunks))


def each_of(*callbacks: Callable[[SegmentReport], None] | None) -> Callable[[SegmentReport], None]:
    """One segment callback that calls each of `callbacks` (None: left out) in turn."""
    called = [f for f in callbacks if f is not None]

    def report(segment: SegmentReport) -> None:
        for f in called:
            f(segment)

    return report


@dataclasses.dataclass(frozen=True)
class PlainSweep:
    """The plain sweep (a `pgjax.running.strategy.Strategy`): every run of every chunk trains to the end."""

    def fit_chunks(self, chunks: list[Chunk], num_seeds: int, num_devices: int, resuming: bool) -> list[Chunk]:
        return chunks

    def notes(self) -> tuple[str, ...]:
        return ()

    def work(self, plan: Plan) -> Work:
        return chunk_work(plan)

    def train(self, plan: Plan, hooks: Hooks, before: Trained | None) -> Trained:
        with SweepProgress(int(chunk_work(plan).run_updates), hooks.console, hooks.mode) as progress:
            results, timings = train_sweep(
                plan.groups, plan.num_seeds, plan.seed, devices=plan.devices, run_dir=hooks.folder,
                chunks=plan.chunks, checkpoint_every=plan.checkpoint_every,
                on_segment=each_of(progress.report, hooks.on_segment), should_stop=hooks.should_stop,
                block_rows=plan.block_rows)
        return Trained(plan.points, plan.groups, results, timings, search=plan.search)
