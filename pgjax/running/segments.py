"""One chunk of runs trained in compiled segments of updates: reports, checkpoints and stops between them.

`pgjax.running.sweep` makes, per compile group, an init and a segment program
(`make_segment`: the runs vmapped and spread over the devices' mesh) and trains
each chunk with a `SegmentLoop`. A segment is a `lax.scan` of `length` updates
whose steps past `num_active` are skipped by a `lax.cond`, so one executable
serves the last, shorter segment too, and the results do not depend on where
the segments end: a resumed run is bitwise the run that was never stopped.
Between segments the host reports progress (`SegmentReport`), writes
checkpoints (`pgjax.running.run_folder.checkpoints`) and checks whether it was asked to
stop (`Interrupted`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from pgjax.algo.config import Hyperparams
from pgjax.algo.trainer import Metrics, RunState, run_batch_updates
from pgjax.running.devices import count_cache_hits
from pgjax.running.run_folder.checkpoints import CheckpointMismatch, ChunkCheckpoints, host_tree, run_dir_of
from pgjax.running.sharding import any_process, fetch, is_key, key_data, memory_bytes, place_runs, shard_runs, wrap_keys

SEGMENT_UPDATES = 20  # updates per compiled segment: progress, checkpoints and stops happen between segments


class Interrupted(Exception):
    """Training stopped on request at a safe point; every chunk's progress is checkpointed.

    `run_dir` is the folder to resume from (set by whoever knows it).
    """

    run_dir: Path | None = None


@dataclasses.dataclass(frozen=True)
class Chunk:
    """Runs trained together by one executable.

    Attributes:
      index: the chunk's number in the sweep (its checkpoint folder).
      group: index of its compile group.
      positions: [n] the runs' positions within the compile group's runs.
      size: runs the executable trains (>= n; the rest repeat the last run).
    """

    index: int
    group: int
    positions: np.ndarray
    size: int


def split_into_chunks(group: int, positions: np.ndarray, size: int, first_index: int = 0) -> list[Chunk]:
    """A compile group's runs cut into chunks of `size` runs, in order (the last one may hold fewer).

    The one place chunks are built: `sweep.plan_chunks` (a group's runs
    `0..R-1`), `halving`'s rungs (the survivors' runs, not contiguous) and
    `resume.chunks_of` (the plan saved in config.json) all call it.

    Args:
      group: index of the compile group (each chunk's `group`).
      positions: [R] the runs' positions within the group's runs, in training
        order (any integer array; the chunks hold slices of it).
      size: runs per chunk (each chunk's `size`, also the last one's), >= 1.
      first_index: the first chunk's `index` (the chunks before it in the sweep).

    Returns:
      ceil(R / size) chunks numbered `first_index`, `first_index + 1`, ...;
      none where `positions` is empty.

    Raises:
      ValueError: `size` < 1.
    """
    if size < 1:
        raise ValueError(f"chunk size must be at least 1, got {size}")
    positions = np.asarray(positions)
    return [Chunk(first_index + i, group, positions[begin:begin + size], size)
            for i, begin in enumerate(range(0, positions.size, size))]


@dataclasses.dataclass(frozen=True)
class SegmentReport:
    """What the host learns after each segment (for progress displays and experiment trackers).

    After restoring a chunk from a checkpoint one report with `restored=True`
    counts the restored updates (no env steps, no time).
    """

    chunk: Chunk
    num_chunks: int
    updates_done: int  # updates of this chunk done so far
    num_updates: int  # updates of a whole run
    new_updates: int  # updates in this segment
    env_steps: int  # env steps of the chunk's runs in this segment
    seconds: float  # wall time since the previous report
    mean_return: float  # mean episode return of the segment's last update over the chunk's sane runs
    restored: bool = False
    # the segment's `Metrics` of the chunk's real runs (`chunk.positions`), host NumPy, leaves [n, new_updates, ...]:
    # updates `updates_done - new_updates` to `updates_done` (a restored report: the restored ones)
    metrics: Metrics | None = None


def segment_length(num_updates: int, segment_updates: int = SEGMENT_UPDATES) -> int:
    return max(1, min(num_updates, segment_updates))


class ChunkStart(NamedTuple):
    """Where a chunk's runs continue from after u updates, as `train_chunk` returns them (NumPy leaves)."""

    state: RunState  # leaves [n, ...], the PRNG key as uint32 key data
    metrics: Metrics  # leaves [n, u, ...]: the updates done so far

    @property
    def updates(self) -> int:
        return int(self.metrics.env_steps.shape[1])


def _take(tree: Any, index: np.ndarray) -> Any:
    return jax.tree.map(lambda x: x[index], tree)


def _placeholder_state(init: Callable, size: int) -> RunState:
    """A zero `RunState` of `size` runs with the right structure (a template to restore checkpoints into)."""
    keys = jax.random.split(jax.random.key(0), size)
    shapes = jax.eval_shape(jax.vmap(init), keys, Hyperparams().broadcast(size))
    return jax.tree.map(
        lambda s: keys if is_key(s) else np.zeros(s.shape, s.dtype), shapes
    )


class Segment(NamedTuple):
    """A compile group's functions, jitted over the mesh (compiled on first use)."""

    init: Callable  # (seed key data, hparams) -> fresh RunState
    fn: Callable  # (state, hparams, control) -> (state, Metrics with a [length] axis)
    length: int  # updates per segment (scan length)


def make_segment(trainer, length: int, mesh) -> Segment:
    """Init and segment for a compile group: one device's slice of runs, shard_mapped over `mesh`."""

    def init(seed_keys, hparams):
        return jax.vmap(trainer.init)(wrap_keys(seed_keys), hparams)

    def segment(state, hparams, control):
        """Do control's number of updates (at most `length`) on the device's runs, at once."""
        return run_batch_updates(trainer, state, hparams, length, control[0])

    return Segment(shard_runs(init, mesh), shard_runs(segment, mesh), length)


@dataclasses.dataclass
class SegmentLoop:
    """Runs chunks segment by segment: reports, checkpoints, stops; keeps the sweep's timings in `info`."""

    mesh: Any
    num_chunks: int
    checkpoint_every: int | None
    on_segment: Callable[[SegmentReport], None] | None
    should_stop: Callable[[], bool] | None
    info: dict
    # (id(segment), chunk size) -> (segment, init executable or None, segment executable)
    _compiled: dict = dataclasses.field(default_factory=dict)
    compile_seconds_by_shape: dict = dataclasses.field(default_factory=dict)  # the same keys -> segment's seconds

    def _compile(self, segment: Segment, key_data, hparams, control, fresh: bool = True) -> tuple[Any, Any]:
        """The group's (init, segment) executables for this batch shape, compiled once per group and shape (its
        chunks share their shapes; a repacked rung of successive halving adds one); init only if `fresh`
        (None until a chunk starts from scratch). `compile_seconds_by_shape` keeps the segment program's compile
        seconds (a new batch shape's cost, what `pgjax.running.repack` weighs)."""
        key = (id(segment), control.shape[0])
        known = self._compiled.get(key)
        if known is None or (fresh and known[1] is None):
            start = time.perf_counter()
            init = segment.init.lower(key_data, hparams)
            with count_cache_hits() as hits:
                init_executable = init.compile() if fresh else None
                program_start = time.perf_counter()
                if known is None:
                    state = jax.tree.map(lambda o: jax.ShapeDtypeStruct(o.shape, o.dtype, sharding=o.sharding),
                                         init.out_info)
                    compiled = segment.fn.lower(state, hparams, control).compile()
                    bytes_ = memory_bytes(compiled, self.mesh.size) or 0
                    self.info["memory_bytes"] = max(self.info["memory_bytes"], bytes_)
                else:
                    compiled = known[2]
                self._compiled[key] = (segment, init_executable, compiled)
            end = time.perf_counter()
            self.info["compile_seconds"] += end - start
            self.info["compile_cache_hits"] += hits[0]
            if known is None:
                self.compile_seconds_by_shape[key] = end - program_start
        return self._compiled[key][1:]

    def compiled_sizes(self, segment: Segment) -> set[int]:
        """The chunk sizes `segment`'s program is compiled for."""
        return {size for (ident, size) in self._compiled if ident == id(segment)}

    def _report(self, report: SegmentReport) -> None:
        if self.on_segment is not None:
            self.on_segment(report)

    def train_chunk(self, segment: Segment, trainer, chunk: Chunk, seeds: np.ndarray, hparams,
                    checkpoints: ChunkCheckpoints | None, until: int | None = None,
                    continue_from: ChunkStart | None = None) -> tuple[Any, Metrics]:
        """Train (or restore, or continue) one chunk; returns its real runs' (state, metrics) on the host.

        `until`, `continue_from`: as `ChunkRunner.train_chunk`'s.
        """
        n, num_updates = chunk.positions.size, trainer.num_updates if until is None else until
        begun = 0 if continue_from is None else continue_from.updates  # updates done before this call
        pad = np.concatenate([chunk.positions, np.full(chunk.size - n, chunk.positions[-1])])
        placed_hparams = place_runs(_take(hparams, pad), self.mesh)
        done, history = begun, ([] if continue_from is None else [continue_from.metrics])
        latest = checkpoints.latest() if checkpoints is not None else None
        template = None
        if latest is not None:
            template = _placeholder_state(trainer.init, chunk.size)
            check_checkpoint(checkpoints, latest, _take(template, np.arange(n)), chunk, num_updates, begun,
                             trainer.gradient_stats)
            restored, restored_metrics = checkpoints.restore(latest, _take(template, np.arange(n)),
                                                             _metrics_template(n, trainer.gradient_stats))
            restored_steps = restored_metrics.env_steps[:, -1].astype(np.int64)
            if begun:
                restored_steps -= restored_metrics.env_steps[:, begun - 1]
            self.info["resumed_updates"] += latest - begun
            self.info["resumed_env_steps"] += int(np.sum(restored_steps, dtype=np.int64))
            self._report(SegmentReport(chunk, self.num_chunks, latest, num_updates, latest - begun, 0, 0.0, math.nan,
                                       True, metrics=jax.tree.map(lambda x: x[:, begun:], restored_metrics)))
            if latest == num_updates:
                return fetch(restored), restored_metrics
            history, done = [restored_metrics], latest
        elif continue_from is not None:
            template = _placeholder_state(trainer.init, chunk.size)
            restored = wrap_keys(continue_from.state, like=_take(template, np.arange(n)))  # keys come as key data
        seed_keys = place_runs(np.asarray(key_data(jax.vmap(jax.random.key)(seeds[pad]))), self.mesh)
        init, compiled = self._compile(segment, seed_keys, placed_hparams,
                                       place_runs(_control(chunk.size, segment.length), self.mesh),
                                       fresh=template is None)
        if template is not None:
            state = place_runs(jax.tree.map(lambda p, r: _pad_like(r, p), template, restored), self.mesh)
        else:
            state = init(seed_keys, placed_hparams)
        pending, last_report = None, time.perf_counter()
        while done < num_updates:
            active = min(segment.length, self._next_stop(done, num_updates) - done)
            start = time.perf_counter()
            control = place_runs(_control(chunk.size, active), self.mesh)
            state, metrics = compiled(state, placed_hparams, control)
            done += active
            if pending is not None:  # the previous segment's metrics, read while this one runs
                last_report = self._collect(pending, history, n, last_report)
            pending = (chunk, metrics, active, done, num_updates)
            at_checkpoint = bool(self.checkpoint_every) and done % self.checkpoint_every == 0
            # every process stops at the same segment, that of the first to be asked (a signal reaches each
            # process at its own time; a process that went on alone would wait in a collective for ever)
            stopping = self.should_stop is not None and any_process(self.should_stop())
            if done == num_updates or at_checkpoint or stopping:
                last_report = self._collect(pending, history, n, last_report)
                pending = None
                self.info["run_seconds"] += time.perf_counter() - start
                if checkpoints is not None:
                    checkpoints.save(done, _take(fetch(state), np.arange(n)), concat_trees(history, axis=1))
                if stopping and done < num_updates:
                    raise Interrupted(f"stopped after {done} of {num_updates} updates of chunk {chunk.index}")
            else:
                self.info["run_seconds"] += time.perf_counter() - start
        return _take(fetch(state), np.arange(n)), concat_trees(history, axis=1)

    def _next_stop(self, done: int, num_updates: int) -> int:
        """The update count at which training after `done` updates stops next: the end, or the next checkpoint."""
        if not self.checkpoint_every:
            return num_updates
        return min(num_updates, (done // self.checkpoint_every + 1) * self.checkpoint_every)

    def _collect(self, pending, history: list[Metrics], n: int, last_report: float) -> float:
        """Fetch a segment's metrics of the chunk's real runs, keep them, report; returns the report time."""
        chunk, metrics, active, done, num_updates = pending
        metrics = jax.tree.map(lambda x: x[:n, :active], fetch(metrics))
        history.append(metrics)
        now = time.perf_counter()
        if self.on_segment is not None:
            steps_before = history[-2].env_steps[:, -1].sum() if len(history) > 1 else 0
            sane = ~metrics.diverged[:, -1]
            returns = metrics.episode_return[:, -1][sane]
            self.on_segment(SegmentReport(
                chunk=chunk, num_chunks=self.num_chunks, updates_done=done, num_updates=num_updates,
                new_updates=active, env_steps=int(metrics.env_steps[:, -1].sum() - steps_before),
                seconds=now - last_report, mean_return=float(returns.mean()) if returns.size else math.nan,
                metrics=metrics,
            ))
        return now


def check_checkpoint(checkpoints: ChunkCheckpoints, update: int, state_like: Any, chunk: Chunk, until: int,
                     begun: int = 0, gradient_stats: bool = False) -> None:
    """Check, from its metadata, that a chunk's checkpoint after `update` updates is one of this plan's.

    Args:
      checkpoints: the chunk's checkpoint folder; update: its latest checkpoint.
      state_like: a `RunState` of the chunk's real runs (leaves [n, ...]), the shapes expected.
      chunk: the chunk of the plan; until: the updates the plan trains it to;
        begun: the updates its runs had before (a later rung's chunk).
        gradient_stats: whether the metrics hold the gradient statistics (`Metrics.names`).

    Raises:
      CheckpointMismatch: another number of runs, other array shapes or names,
        or more updates than the plan trains (the run folder was edited or damaged).
    """
    run_dir = run_dir_of(checkpoints.directory)
    name = f"chunk {chunk.index}"
    n = chunk.positions.size
    if not begun <= update <= until:
        raise CheckpointMismatch(run_dir, f"{name} is checkpointed after {update} updates, the plan trains "
                                          f"{begun} to {until}")
    saved = checkpoints.saved_shapes(update)
    runs = sorted({shape[0] for shape in saved.values() if shape})
    # pgjax 1.0's --distributed runs saved every run once per process: read as one (`ChunkCheckpoints.restore`)
    copies = 1 if runs == [n] else checkpoints.copies_of_runs(update, n) if len(runs) == 1 else 0
    if not copies:
        raise CheckpointMismatch(run_dir, f"{name} has {'/'.join(map(str, runs)) or 'no'} runs, the plan {n}")
    saved = {key: (shape[0] // copies, *shape[1:]) if shape else shape for key, shape in saved.items()}
    expected = {f"state/{key}": shape for key, shape in _flat_shapes(serialization.to_state_dict(
        host_tree(state_like))).items()}
    expected.update({f"metrics/{name}": None for name in Metrics.names(gradient_stats)})
    if set(saved) != set(expected):
        odd = sorted(set(saved) ^ set(expected))
        raise CheckpointMismatch(run_dir, f"{name} holds other arrays than the plan's ({', '.join(odd[:3])}"
                                          f"{' ...' if len(odd) > 3 else ''})")
    for key, shape in expected.items():
        if shape is None:  # metrics: [n runs, updates so far, ...]
            if saved[key][:2] != (n, update):
                raise CheckpointMismatch(run_dir, f"{name}'s {key} has shape {saved[key]}, the plan "
                                                  f"({n}, {update}, ...)")
        elif saved[key] != shape:
            raise CheckpointMismatch(run_dir, f"{name}'s {key} has shape {saved[key]}, the plan {shape}")


def _flat_shapes(tree: Any) -> dict[str, tuple[int, ...]]:
    """{'/'-joined key path: shape} of a nested dict of arrays (`ChunkCheckpoints.saved_shapes`' keys)."""
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {"/".join(str(getattr(k, "key", k)) for k in path): tuple(np.shape(leaf)) for path, leaf in flat}


def _control(size: int, num_active: int) -> np.ndarray:
    """[size] int32: the updates to do, the same for every run (each device reads its first)."""
    return np.full((size,), num_active, np.int32)


def _pad_like(restored: Any, placeholder: Any) -> Any:
    """Pad a restored [n, ...] leaf to the placeholder's [size, ...] by repeating its last run."""
    extra = placeholder.shape[0] - restored.shape[0]
    if extra == 0:
        return restored
    if isinstance(restored, jax.Array):
        return jnp.concatenate([restored, jnp.repeat(restored[-1:], extra, axis=0)])
    return np.concatenate([restored, np.repeat(restored[-1:], extra, axis=0)])


def _metrics_template(n: int, gradient_stats: bool = False) -> Metrics:
    """A `Metrics` pytree with the structure of a chunk's saved metrics (values unused)."""
    return Metrics(**{name: np.zeros((n, 0)) for name in Metrics.names(gradient_stats)})


def concat_trees(trees: Sequence[Any], axis: int = 0) -> Any:
    """Pytrees of the same structure with their NumPy leaves joined along `axis` (0: runs; 1: a Metrics' updates)."""
    return jax.tree.map(lambda *xs: np.concatenate(xs, axis=axis), *trees)
