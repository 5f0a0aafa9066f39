"""Checkpoints of a chunk of runs with orbax-checkpoint: state and metrics so far, by update.

A run folder keeps one orbax `CheckpointManager` per chunk, under
`checkpoints/chunk-<c>/<update>/`. A checkpoint holds the chunk's `RunState`
(parameters, optimizer state, PRNG key data, counters, divergence flags; leaves
[n runs, ...]) and its metrics of every update so far (leaves [n, u, ...]), as
NumPy arrays, so restoring needs no device layout. A chunk whose latest
checkpoint is at the last update is complete.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import serialization

from pgjax.running.run_folder.files import CHECKPOINT_DIR
from pgjax.running.sharding import fetch, wrap_keys

# orbax's folder for a save in progress: "<update>.orbax-checkpoint-tmp" (older orbax: "-<timestamp>" after it)
_INCOMPLETE_SAVE = re.compile(r"^\d+\.orbax-checkpoint-tmp(-\d+)?$")
_CHUNK_DIR = re.compile(r"^chunk-\d{4,}$")
_RUNG_DIR = re.compile(r"^rung-\d+$")
STEP_METADATA = "_CHECKPOINT_METADATA"  # orbax writes it into a step's folder once the save is complete


class CheckpointMismatch(ValueError):
    """A run folder's checkpoints do not belong to the plan its config.json describes (edited or damaged).

    Attributes:
      run_dir: the run folder; detail: what does not match, e.g. "chunk 1 has 3 runs, the plan 6".
    """

    def __init__(self, run_dir: Path, detail: str):
        self.run_dir, self.detail = Path(run_dir), detail
        super().__init__(f"{self.run_dir}/config.json does not match its checkpoints ({detail}); the folder was "
                         "edited or damaged")


def run_dir_of(directory: Path) -> Path:
    """The run folder a chunk's checkpoint folder is in (the parent of its checkpoints/)."""
    directory = Path(directory)
    for parent in directory.parents:
        if parent.name == CHECKPOINT_DIR:
            return parent.parent
    return directory.parent


def chunk_folders(root: Path) -> list[Path]:
    """The chunk checkpoint folders under a checkpoints/ folder (or under one of its rung-<k>/ folders)."""
    root = Path(root)
    return sorted(p for p in root.iterdir() if p.is_dir() and _CHUNK_DIR.match(p.name)) if root.is_dir() else []


def check_chunk_folders(run_dir: Path, expected: set[Path], num_chunks: int) -> None:
    """Raise CheckpointMismatch if checkpoints/ holds a chunk (or rung) folder that no chunk of the plan owns.

    Args:
      run_dir: the run folder; expected: every checkpoint folder the plan may use
        (`chunk_dir`, or a rung's); num_chunks: the plan's chunks (for the message).
    """
    root = Path(run_dir) / CHECKPOINT_DIR
    if not root.is_dir():
        return
    expected = {Path(p).absolute() for p in expected}
    parents = {p.parent for p in expected}
    for entry in sorted(root.iterdir()):
        if not entry.is_dir() or entry.absolute() in expected:
            continue
        inside = chunk_folders(entry) if entry.absolute() in parents else [entry]
        for folder in inside:
            if folder.absolute() not in expected and (_CHUNK_DIR.match(folder.name) or _RUNG_DIR.match(folder.name)):
                name = folder.relative_to(run_dir).as_posix()
                raise CheckpointMismatch(run_dir, f"{name} belongs to no chunk of the plan, which has {num_chunks} "
                                                  f"chunk{'s' * (num_chunks != 1)}")


def remove_incomplete_saves(run_dir: Path) -> list[Path]:
    """Delete what saves cut short left in a run folder's chunk checkpoint folders; returns what was deleted.

    Only orbax's temporary folders of a save in progress
    ("<update>.orbax-checkpoint-tmp...") directly inside pgjax's chunk folders
    (`checkpoints/chunk-<c>/`, `checkpoints/rung-<k>/chunk-<c>/`) go, and a newer
    step folder without orbax's step metadata where a complete older one is left;
    complete checkpoints and anything else stay.
    """
    root = Path(run_dir) / CHECKPOINT_DIR
    if not root.is_dir():
        return []
    folders = chunk_folders(root)
    for rung in sorted(p for p in root.iterdir() if p.is_dir() and _RUNG_DIR.match(p.name)):
        folders.extend(chunk_folders(rung))
    removed = []
    for folder in folders:
        for leftover in sorted(folder.iterdir()):
            if leftover.is_dir() and not leftover.is_symlink() and _INCOMPLETE_SAVE.match(leftover.name):
                shutil.rmtree(leftover)
                removed.append(leftover)
        # A save cut short after orbax renamed its folder but before it wrote the step's metadata: that
        # checkpoint goes where an older complete one is left to resume from (resuming from it gives the same
        # results, bitwise); alone, it stays (orbax reads it, warning of the missing metadata).
        steps = [p for p in folder.iterdir() if p.is_dir() and not p.is_symlink() and p.name.isdigit()]
        complete = [int(p.name) for p in steps if (p / STEP_METADATA).is_file()]
        for step in steps:
            if complete and int(step.name) > max(complete):  # newer than every complete one: it has none
                shutil.rmtree(step)
                removed.append(step)
    return removed


def write_record(path: Path, record: Any) -> None:
    """Write `record` as JSON to `path` (its folder made) through a temporary file beside it: a reader never
    sees half of it (the sweep's own records under checkpoints/: a rung's chunk sizes, a confirmation's plan)."""
    import json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(record))
    temporary.replace(path)


def chunk_dir(run_dir: Path, chunk: int) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"chunk-{chunk:04d}"


def host_tree(tree: Any) -> Any:
    """NumPy leaves; typed PRNG keys become their uint32 key data."""
    return jax.tree.map(np.asarray, fetch(tree))


class ChunkCheckpoints:
    """Save and restore one chunk's (state, metrics) by update count."""

    def __init__(self, directory: Path):
        import orbax.checkpoint as ocp  # imported here: it takes about a second

        self._ocp = ocp
        self.directory = Path(directory).absolute()
        # In a multi-process run every process holds the whole chunk (`pgjax.running.sharding.fetch`): process 0
        # alone writes it, and no process waits for another to save or read (a process that died must not
        # leave the others waiting in orbax's barriers: they end in one line, the checkpoint complete).
        self._writes = jax.process_index() == 0
        alone = ocp.options.MultiprocessingOptions(primary_host=jax.process_index(),
                                                   active_processes={jax.process_index()})
        self.directory.mkdir(parents=True, exist_ok=True)  # orbax makes no folder for a subset of processes
        self._manager = ocp.CheckpointManager(
            self.directory, item_handlers=ocp.StandardCheckpointHandler(),
            options=ocp.CheckpointManagerOptions(max_to_keep=1, enable_async_checkpointing=False, create=False,
                                                 multiprocessing_options=alone),
        )

    def latest(self) -> int | None:
        """Update count of the newest complete checkpoint, or None."""
        return self._manager.latest_step()

    def saved_shapes(self, update: int) -> dict[str, tuple[int, ...]]:
        """The shapes of the arrays saved after `update` updates, read from the checkpoint's metadata (no restore).

        Returns:
          {"state/params/...": shape, "metrics/<field>": shape, ...}: '/'-joined keys of the saved tree.
        """
        metadata = self._manager.item_metadata(update)
        flat = jax.tree_util.tree_flatten_with_path(metadata, is_leaf=lambda x: hasattr(x, "shape"))[0]
        return {"/".join(str(getattr(k, "key", k)) for k in path): tuple(leaf.shape) for path, leaf in flat}

    def save(self, update: int, state: Any, metrics: Any) -> None:
        """Write (state, metrics) after `update` updates (in process 0 of a multi-process run; the others hold the
        same); older checkpoints are removed."""
        if not self._writes:
            return
        tree = serialization.to_state_dict({"state": host_tree(state), "metrics": host_tree(metrics)})
        self._manager.save(update, args=self._ocp.args.StandardSave(tree), force=True)
        self._manager.wait_until_finished()

    def restore(self, update: int, state_like: Any, metrics_like: Any) -> tuple[Any, Any]:
        """Read the checkpoint after `update` updates into the structures of the templates.

        Args:
          state_like, metrics_like: pytrees of the saved structure (values unused);
            typed PRNG key leaves are restored as keys.

        Returns:
          (state, metrics) with NumPy leaves (keys as `jax.random` key arrays).
        """
        raw = self._manager.restore(update, args=self._ocp.args.StandardRestore())
        template = {"state": host_tree(state_like), "metrics": host_tree(metrics_like)}
        n = len(jax.tree.leaves(state_like)[0])  # a checkpoint of copies of the runs (`copies_of_runs`): the first
        raw = jax.tree.map(lambda x: x[:n] if np.ndim(x) and len(x) > n else x, raw)
        restored = serialization.from_state_dict(template, _with_empty_fields(raw, serialization.to_state_dict(
            template)))

        state = wrap_keys(restored["state"], like=state_like)
        return state, restored["metrics"]

    def copies_of_runs(self, update: int, n: int) -> int:
        """How many identical copies of n runs, one after another, the checkpoint after `update` updates holds:
        pgjax 1.0's --distributed runs saved every run once per process. 0 where its runs are not copies of n
        runs (their number is no multiple of n, or the copies differ: another plan's, or damaged)."""
        leaves = [np.asarray(x) for x in jax.tree.leaves(self._manager.restore(
            update, args=self._ocp.args.StandardRestore()))]
        sizes = {x.shape[0] for x in leaves if x.ndim}
        if len(sizes) != 1 or not n or sizes.pop() % n:
            return 0
        copies = [x.reshape(-1, n, *x.shape[1:]) for x in leaves if x.ndim]
        if not all(np.array_equal(x[k], x[0], equal_nan=True) for x in copies for k in range(1, len(x))):
            return 0
        return len(copies[0]) if copies else 0

    def close(self) -> None:
        self._manager.close()


def _with_empty_fields(raw: Any, template: Any) -> Any:
    """`raw` (a restored state dict) with the None entries of `template` (a state dict) that it lacks added: a
    checkpoint saved before a field that is None here existed (e.g. `RunState.previous_gradient`, which only
    `StaticConfig.gradient_stats` fills) restores into the structure of today's."""
    if not isinstance(raw, dict) or not isinstance(template, dict):
        return raw
    return {**{key: None for key, value in template.items() if value is None},
            **{key: _with_empty_fields(value, template.get(key)) for key, value in raw.items()}}
