"""What a training command leaves in its run folder, and how to read it back.

    config.json   the command line, the resolved Config, versions and devices
    summary.json  per-run and aggregate results (the contract other tools read)
    metrics.npz   every run's per-update metrics: arrays [N runs, U updates, ...]
    params.msgpack  every run's final policy parameters, stacked on a leading [N] axis
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import serialization

CONFIG_FILE = "config.json"
SUMMARY_FILE = "summary.json"
METRICS_FILE = "metrics.npz"
PARAMS_FILE = "params.msgpack"


def package_versions(packages=("pgjax", "jax", "jaxlib", "flax", "optax", "gymnax")) -> dict:
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
    """Write JSON atomically: a reader never sees a half-written file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(jsonable(data), indent=2) + "\n")
    os.replace(tmp, path)


def write_metrics(path: Path, metrics: Any, seeds: np.ndarray) -> None:
    """Save a `Metrics` pytree with leaves [N, U, ...] as named arrays, plus the seeds."""
    arrays = {f.name: np.asarray(getattr(metrics, f.name)) for f in dataclasses.fields(metrics)}
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, seeds=np.asarray(seeds), **arrays)
    os.replace(tmp, path)


def write_params(path: Path, params: Any) -> None:
    """Save the stacked final parameters of all runs (leaves [N, ...]) as msgpack."""
    tmp = path.with_name(path.name + ".tmp")
    state_dict = serialization.to_state_dict(jax.tree.map(np.asarray, params))
    tmp.write_bytes(serialization.msgpack_serialize(state_dict))
    os.replace(tmp, path)


def load_metrics(run_dir: str | Path) -> dict[str, np.ndarray]:
    """Every per-update metric of a run folder: name -> [N, U, ...] array."""
    with np.load(Path(run_dir) / METRICS_FILE) as data:
        return {k: data[k] for k in data.files}


def load_summary(run_dir: str | Path) -> dict:
    return json.loads((Path(run_dir) / SUMMARY_FILE).read_text())


def load_params(run_dir: str | Path, run: int | None = None) -> Any:
    """Final policy parameters from a run folder.

    Args:
      run_dir: a folder written by `python -m pgjax.train`.
      run: index of the run (0 .. N-1); None returns all, stacked on axis 0.

    Returns:
      A Flax params pytree (nested dicts of NumPy arrays) for
      `MLPPolicy(...).apply({"params": params}, obs)`.
    """
    params = serialization.msgpack_restore((Path(run_dir) / PARAMS_FILE).read_bytes())
    if run is None:
        return params
    num_runs = len(load_summary(run_dir)["runs"])
    if not -num_runs <= run < num_runs:
        raise IndexError(f"run {run} out of range: {run_dir} holds {num_runs} runs")
    return jax.tree.map(lambda x: x[run], params)
