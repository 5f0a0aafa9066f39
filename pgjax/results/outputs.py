"""What a training command leaves in its run folder, and how to read it back.

    .pgjax-run.json the marker: written first, it lists what pgjax wrote into the folder
                    (`pgjax.results.folder.MARKER_FILE`; a folder "holds a run" only with it)
    config.json     the command line, its arguments, every grid point's settings,
                    the chunk plan, versions and devices
    summary.json    per-run, per-group and aggregate results (the contract other tools read);
                    written last: a folder is a finished run only with it
    metrics.npz     per-update metrics of every group (grid point): arrays
                    "group<g>/<name>" of shape [R runs of the group, U updates, ...]
                    and "group<g>/seeds" [R]
    params.msgpack  final policy parameters, {"group<g>": params stacked on a leading [R] axis}
    checkpoints/    orbax checkpoints of every chunk of runs (`pgjax.running.checkpoints`)
    learning_curves.png  return against env steps, one curve per group (`pgjax.results.plots`)
    runs.csv        one row per run: group, seed, settings, final results (`pgjax.results.exports`)
    curves.parquet  one row per run and update: the per-update metrics (curves.csv without pyarrow)
    tensorboard/    TensorBoard event files, with `--tensorboard` (`pgjax.results.tracking`)
    wandb/          Weights & Biases' local run files, with `--wandb`

A group is one grid point; its runs are its seeds, listed in summary.json's
`groups[g]["runs"]` (indices into `runs`).

The files' names, the marker and the atomic writes are `pgjax.results.folder`'s;
this module writes the files' content. Every file is written through a
temporary file beside it (`write_atomic`): a reader never sees half a file, a
failed write leaves no temporary file, and a full disk is a one-line ValueError
naming the file. The loaders validate what they read and raise ValueError
naming the damaged file and its folder.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import serialization

from pgjax.results.folder import write_atomic, write_bytes
from pgjax.running.footprint import format_bytes

DECIDING_PACKAGES = ("pgjax", "jax", "jaxlib", "flax", "optax", "gymnax")


def package_versions(packages: tuple[str, ...] = DECIDING_PACKAGES) -> dict:
    """Installed versions of the packages that decide results (None if not installed)."""
    import importlib.metadata
    import platform

    found = {"python": platform.python_version()}
    for package in packages:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = None
    return found


def jsonable(value: Any) -> Any:
    """Plain JSON types: NumPy scalars become Python numbers, inf and NaN become null."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path: Path, data: dict) -> None:
    """Write JSON atomically (`write_atomic`): a reader never sees a half-written file. ValueError: it failed."""
    text = (json.dumps(jsonable(data), indent=2) + "\n").encode()
    write_atomic(path, lambda tmp: write_bytes(tmp, text), f"about {format_bytes(len(text))}")


def write_metrics(path: Path, group_metrics: list[Any], group_seeds: list[np.ndarray]) -> None:
    """Save each group's `Metrics` (leaves [R, U, ...]) and seeds [R] as named arrays, atomically.

    U may differ between groups: under successive halving a group dropped
    early has only the updates it trained.

    Raises:
      ValueError: the write failed (`write_atomic`).
    """
    arrays = {}
    for g, (metrics, seeds) in enumerate(zip(group_metrics, group_seeds)):
        arrays[f"group{g}/seeds"] = np.asarray(seeds)
        for f in dataclasses.fields(metrics):
            arrays[f"group{g}/{f.name}"] = np.asarray(getattr(metrics, f.name))

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as file:  # a file object: NumPy adds no ".npz" to the name
            np.savez_compressed(file, **arrays)

    write_atomic(path, write, f"up to {format_bytes(sum(a.nbytes for a in arrays.values()))}")


def write_params(path: Path, group_params: list[Any]) -> None:
    """Save each group's stacked final parameters (leaves [R, ...]) as msgpack, atomically.

    Raises:
      ValueError: the write failed (`write_atomic`).
    """
    state_dict = {
        f"group{g}": serialization.to_state_dict(jax.tree.map(np.asarray, params))
        for g, params in enumerate(group_params)
    }
    data = serialization.msgpack_serialize(state_dict)
    write_atomic(path, lambda tmp: write_bytes(tmp, data), f"about {format_bytes(len(data))}")
