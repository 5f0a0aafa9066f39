"""Checkpoints of a chunk of runs with orbax-checkpoint: state and metrics so far, by update.

A run folder keeps one orbax `CheckpointManager` per chunk, under
`checkpoints/chunk-<c>/<update>/`. A checkpoint holds the chunk's `TrainState`
(parameters, optimizer state, PRNG key data, counters, divergence flags; leaves
[n runs, ...]) and its metrics of every update so far (leaves [n, u, ...]), as
NumPy arrays, so restoring needs no device layout. A chunk whose latest
checkpoint is at the last update is complete.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import serialization

from pgjax.running.sharding import fetch, is_key

CHECKPOINT_DIR = "checkpoints"  # the run folder's (`pgjax.results.outputs.RUN_FILES`)


def chunk_dir(run_dir: Path, chunk: int) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"chunk-{chunk:04d}"


def _host_tree(tree: Any) -> Any:
    """NumPy leaves; typed PRNG keys become their uint32 key data."""
    return jax.tree.map(np.asarray, fetch(tree))


class ChunkCheckpoints:
    """Save and restore one chunk's (state, metrics) by update count."""

    def __init__(self, directory: Path):
        import orbax.checkpoint as ocp  # imported here: it takes about a second

        self._ocp = ocp
        self.directory = Path(directory).absolute()
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=1, enable_async_checkpointing=False, create=True),
        )

    def latest(self) -> int | None:
        """Update count of the newest complete checkpoint, or None."""
        return self._manager.latest_step()

    def save(self, update: int, state: Any, metrics: Any) -> None:
        """Write (state, metrics) after `update` updates; older checkpoints are removed."""
        tree = serialization.to_state_dict({"state": _host_tree(state), "metrics": _host_tree(metrics)})
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
        template = {"state": _host_tree(state_like), "metrics": _host_tree(metrics_like)}
        restored = serialization.from_state_dict(template, raw)

        def rewrap(like, value):
            return jax.random.wrap_key_data(value) if is_key(like) else value

        state = jax.tree.map(rewrap, state_like, restored["state"])
        return state, restored["metrics"]

    def close(self) -> None:
        self._manager.close()
