"""What a training command leaves in its run folder, and how to read it back.

    config.json     the command line, its arguments, every grid point's settings,
                    the chunk plan, versions and devices
    summary.json    per-run, per-group and aggregate results (the contract other tools read)
    metrics.npz     per-update metrics of every group (grid point): arrays
                    "group<g>/<name>" of shape [R runs of the group, U updates, ...]
                    and "group<g>/seeds" [R]
    params.msgpack  final policy parameters, {"group<g>": params stacked on a leading [R] axis}
    checkpoints/    orbax checkpoints of every chunk of runs (`pgjax.running.checkpoints`)
    learning_curves.png  return against env steps, one curve per group (`pgjax.plot`)
    runs.csv        one row per run: group, seed, settings, final results (`pgjax.results.exports`)
    curves.parquet  one row per run and update: the per-update metrics (curves.csv without pyarrow)
    tensorboard/    TensorBoard event files, with `--tensorboard` (`pgjax.results.tracking`)
    wandb/          Weights & Biases' local run files, with `--wandb`

A group is one grid point; its runs are its seeds, listed in summary.json's
`groups[g]["runs"]` (indices into `runs`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import serialization

from pgjax.algo.config import Config, StaticConfig
from pgjax.running.checkpoints import CHECKPOINT_DIR

CONFIG_FILE = "config.json"
SUMMARY_FILE = "summary.json"
METRICS_FILE = "metrics.npz"
PARAMS_FILE = "params.msgpack"
PLOT_FILE = "learning_curves.png"
RUNS_FILE = "runs.csv"
CURVES_PARQUET = "curves.parquet"
CURVES_CSV = "curves.csv"
TENSORBOARD_DIR = "tensorboard"  # --tensorboard's default folder
WANDB_DIR = "wandb"  # where --wandb's local files go
RUN_FILES = (CONFIG_FILE, SUMMARY_FILE, METRICS_FILE, PARAMS_FILE, CHECKPOINT_DIR, PLOT_FILE, RUNS_FILE,
             CURVES_PARQUET, CURVES_CSV, TENSORBOARD_DIR, WANDB_DIR)


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


def write_metrics(path: Path, group_metrics: list[Any], group_seeds: list[np.ndarray]) -> None:
    """Save each group's `Metrics` (leaves [R, U, ...]) and seeds [R] as named arrays.

    U may differ between groups: under successive halving a group dropped
    early has only the updates it trained.
    """
    arrays = {}
    for g, (metrics, seeds) in enumerate(zip(group_metrics, group_seeds)):
        arrays[f"group{g}/seeds"] = np.asarray(seeds)
        for f in dataclasses.fields(metrics):
            arrays[f"group{g}/{f.name}"] = np.asarray(getattr(metrics, f.name))
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)


def write_params(path: Path, group_params: list[Any]) -> None:
    """Save each group's stacked final parameters (leaves [R, ...]) as msgpack."""
    tmp = path.with_name(path.name + ".tmp")
    state_dict = {
        f"group{g}": serialization.to_state_dict(jax.tree.map(np.asarray, params))
        for g, params in enumerate(group_params)
    }
    tmp.write_bytes(serialization.msgpack_serialize(state_dict))
    os.replace(tmp, path)


def load_json(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


def check_run_dir(run_dir: str | Path) -> Path:
    """The folder of a finished run, or a ValueError whose one-line message says what it holds instead.

    Returns:
      `run_dir` as a Path.

    Raises:
      ValueError: the folder is missing or a file; it holds an interrupted run
        (config.json or checkpoints/ but no summary.json: the message says how
        to continue it); or it holds no run.
    """
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise ValueError(f"{run_dir} is missing: no such folder")
    if not run_dir.is_dir():
        raise ValueError(f"{run_dir} is a file, not a run folder")
    if not (run_dir / SUMMARY_FILE).is_file():
        if (run_dir / CONFIG_FILE).is_file() or (run_dir / CHECKPOINT_DIR).is_dir():
            raise ValueError(
                f"{run_dir} holds an interrupted run (no {SUMMARY_FILE} yet); "
                f"continue it with: python -m pgjax.train --resume {run_dir}"
            )
        raise ValueError(f"{run_dir} holds no run (no {SUMMARY_FILE})")
    return run_dir


def load_summary(run_dir: str | Path) -> dict:
    """summary.json of a finished run (`pgjax.results.summary.summarise`); ValueError as `check_run_dir`."""
    return load_json(check_run_dir(run_dir) / SUMMARY_FILE)


def load_group_metrics(run_dir: str | Path, group: int) -> dict[str, np.ndarray]:
    """Per-update metrics of one group's runs: name -> [R, U, ...] array (plus "seeds" [R]).

    Raises:
      ValueError: as `check_run_dir`. IndexError: the run has no such group.
    """
    prefix = f"group{group}/"
    with np.load(check_run_dir(run_dir) / METRICS_FILE) as data:
        found = {k[len(prefix):]: data[k] for k in data.files if k.startswith(prefix)}
    if not found:
        raise IndexError(f"{run_dir} has no group {group}")
    return found


def load_metrics(run_dir: str | Path) -> list[dict[str, np.ndarray]]:
    """Per-update metrics of every group of a run folder, in group order (see `load_group_metrics`)."""
    with np.load(check_run_dir(run_dir) / METRICS_FILE) as data:
        num_groups = len({k.split("/")[0] for k in data.files})
    return [load_group_metrics(run_dir, g) for g in range(num_groups)]


def _locate(summary: dict, run: int, run_dir: str | Path) -> tuple[int, int]:
    """(group, position within the group) of a run index."""
    num_runs = len(summary["runs"])
    if not -num_runs <= run < num_runs:
        raise IndexError(f"run {run} out of range: {run_dir} holds {num_runs} runs")
    run %= num_runs
    group = summary["runs"][run]["group"]
    return group, summary["groups"][group]["runs"].index(run)


def load_params(run_dir: str | Path, run: int | None = None) -> Any:
    """Final policy parameters from a run folder.

    Args:
      run_dir: a folder written by `python -m pgjax.train`.
      run: index of the run (into summary.json's `runs`); None returns every
        group's stacked parameters, {"group<g>": leaves [R, ...]}.

    Returns:
      A Flax params pytree (nested dicts of NumPy arrays) for
      `MLPPolicy(...).apply({"params": params}, obs)`.

    Raises:
      ValueError: as `check_run_dir`. IndexError: `run` is out of range.
    """
    params = serialization.msgpack_restore((check_run_dir(run_dir) / PARAMS_FILE).read_bytes())
    if run is None:
        return params
    group, position = _locate(load_summary(run_dir), run, run_dir)
    return jax.tree.map(lambda x: x[position], params[f"group{group}"])


def load_run_config(run_dir: str | Path, run: int) -> Config:
    """The settings (static and numeric) that run `run` of a run folder trained with."""
    summary = load_summary(run_dir)
    _locate(summary, run, run_dir)
    settings = summary["runs"][run]["hyperparameters"]
    static_names = {f.name for f in dataclasses.fields(StaticConfig)}
    return Config.from_dict({"static": {k: v for k, v in settings.items() if k in static_names},
                             "hparams": {k: v for k, v in settings.items() if k not in static_names}})


def default_out_dir(env: str, preset: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path("runs") / f"{env}_{preset}_{stamp}"
    out, n = base, 1
    while out.exists():
        out, n = base.with_name(f"{base.name}-{n}"), n + 1
    return out


def prepare_out_dir(out: Path, overwrite: bool) -> None:
    """Create `out` for a new run: refuse to replace a run unless asked; fail early if it is not writable."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder")
    if any((out / name).exists() for name in RUN_FILES):
        if not overwrite:
            raise FileExistsError(
                f"{out} already holds a run; continue it with --resume {out}, replace it with --overwrite, "
                "or choose another --out"
            )
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".pgjax-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise ValueError(f"cannot write to --out {out}: {error.strerror or error}") from None
    if overwrite:
        remove_run_files(out)


def remove_run_files(out: Path) -> None:
    """Delete the files and folders of `RUN_FILES` in `out` (a run's, none of the user's own)."""
    for name in RUN_FILES:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
