"""What a training command leaves in its run folder, and how to read it back.

    .pgjax-run.json the marker: written first, it lists what pgjax wrote into the folder
                    (`MARKER_FILE`; a folder "holds a run" only with it)
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

Every file is written through a temporary file beside it (`write_atomic`): a
reader never sees half a file, a failed write leaves no temporary file, and a
full disk is a one-line ValueError naming the file. The loaders validate what
they read and raise ValueError naming the damaged file and its folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import math
import os
import re
import shutil
import zipfile
import zlib
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import serialization

from pgjax.algo.config import Config, StaticConfig
from pgjax.running.checkpoints import CHECKPOINT_DIR
from pgjax.running.memory import format_bytes
from pgjax.running.resume import CONFIG_FILE

MARKER_FILE = ".pgjax-run.json"
MARKER_FORMAT = "pgjax run folder"
SUMMARY_FILE = "summary.json"
METRICS_FILE = "metrics.npz"
PARAMS_FILE = "params.msgpack"
PLOT_FILE = "learning_curves.png"
RUNS_FILE = "runs.csv"
CURVES_PARQUET = "curves.parquet"
CURVES_CSV = "curves.csv"
TENSORBOARD_DIR = "tensorboard"  # --tensorboard's default folder
WANDB_DIR = "wandb"  # where --wandb's local files go
TMP_SUFFIX = ".tmp"  # `write_atomic`'s temporary file: <name>.tmp beside <name>
RUN_FILES = (CONFIG_FILE, SUMMARY_FILE, METRICS_FILE, PARAMS_FILE, CHECKPOINT_DIR, PLOT_FILE, RUNS_FILE,
             CURVES_PARQUET, CURVES_CSV, TENSORBOARD_DIR, WANDB_DIR)
# What the training command writes into --out: in a folder without the marker, any of these is a clash
# (pgjax would replace or mix with them), never replaced or deleted.
CLASH_NAMES = (CONFIG_FILE, SUMMARY_FILE, METRICS_FILE, PARAMS_FILE, PLOT_FILE, RUNS_FILE, CURVES_PARQUET,
               CURVES_CSV, CHECKPOINT_DIR)
# Folders the trackers write into; a user's own (there before the run) is left alone and is no clash.
TRACKER_DIRS = (TENSORBOARD_DIR, WANDB_DIR)
# The entries pgjax's checkpoints make under checkpoints/ (`pgjax.running.checkpoints`, `pgjax.running.halving`)
CHECKPOINT_ENTRY = re.compile(r"chunk-\d{4}|rung-\d+")


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



def write_error(path: Path, error: OSError, needed: str | None = None) -> ValueError:
    """The one-line ValueError for an OSError writing `path`: a full disk says the space needed and free.

    Args:
      path: the file being written; error: what the write raised;
      needed: the space the file needs, in words ("about 1.2 MiB"), where known.
    """
    if error.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        what = "no space left on device" if error.errno == errno.ENOSPC else "disk quota exceeded"
        sizes = [f"{needed} needed"] if needed else []
        with contextlib.suppress(OSError):
            sizes.append(f"{format_bytes(shutil.disk_usage(path.parent).free)} free")
        return ValueError(f"{what} writing {path}" + (f" ({', '.join(sizes)})" if sizes else ""))
    return ValueError(f"cannot write {path}: {error.strerror or error}")


def write_atomic(path: str | Path, write: Callable[[Path], Any], needed: str | None = None) -> Path:
    """Write `path` through `<path>.tmp`: `write(tmp)` fills it, then it replaces `path` in one step.

    In a run folder (one with the marker) the name is listed in the marker
    first, so that --overwrite knows it for pgjax's.

    Args:
      path: the file to write; write: writes the whole content to the path it is given;
      needed: the space the file needs, in words, for the message of a full disk.

    Returns:
      `path` as a Path.

    Raises:
      ValueError: one line: the write failed (a full disk: the space needed and free);
        the temporary file is removed on any error.
    """
    path = Path(path)
    tmp = path.with_name(path.name + TMP_SUFFIX)
    note_written(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise write_error(path, error, needed) from error
        raise
    return path


def _write_bytes(path: Path, data: bytes) -> None:
    """The low-level write of `write_atomic`'s callers that have the whole content in memory."""
    with open(path, "wb") as file:
        file.write(data)


def write_json(path: Path, data: dict) -> None:
    """Write JSON atomically (`write_atomic`): a reader never sees a half-written file. ValueError: it failed."""
    text = (json.dumps(jsonable(data), indent=2) + "\n").encode()
    write_atomic(path, lambda tmp: _write_bytes(tmp, text), f"about {format_bytes(len(text))}")


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
    write_atomic(path, lambda tmp: _write_bytes(tmp, data), f"about {format_bytes(len(data))}")


# --- the marker ------------------------------------------------------------------------------------------------


def _plain_name(name: Any) -> bool:
    """A file name of the folder itself: text without a path separator, not "." or "..", not the marker."""
    return (isinstance(name, str) and name not in ("", ".", "..", MARKER_FILE) and "/" not in name
            and "\\" not in name and "\0" not in name)


def _relative_path(path: Any) -> bool:
    """A path inside a folder: plain names joined by "/"."""
    return isinstance(path, str) and all(_plain_name(part) for part in path.split("/"))


def read_marker(out: str | Path) -> dict | None:
    """The marker of a run folder (`MARKER_FILE`), validated; None where there is none.

    The marker is data read back from disk and is not trusted: it must be a
    JSON object of pgjax's format whose names are plain names of the folder
    (no "/", no ".."), and of its tracker folders relative paths of plain names.

    Returns:
      {"files": [names pgjax wrote], "user_folders": [tracker folders that were there before the run],
      "folder_files": {tracker folder: [relative paths of what pgjax's trackers wrote]}}, or None.

    Raises:
      ValueError: one line: the marker is unreadable or not pgjax's.
    """
    path = Path(out) / MARKER_FILE
    if not path.exists() and not path.is_symlink():
        return None
    damaged = f"{path} is damaged"
    if path.is_symlink() or not path.is_file():
        raise ValueError(f"{damaged}: not a file; choose another --out")
    try:
        marker = json.loads(path.read_bytes())
    except (OSError, ValueError) as error:
        raise ValueError(f"{damaged} ({error}); choose another --out") from error
    if not isinstance(marker, dict) or marker.get("format") != MARKER_FORMAT:
        raise ValueError(f"{damaged}: not pgjax's marker; choose another --out")
    files, user_folders = marker.get("files", []), marker.get("user_folders", [])
    folder_files = marker.get("folder_files", {})
    if not (isinstance(files, list) and all(map(_plain_name, files))
            and isinstance(user_folders, list) and all(name in TRACKER_DIRS for name in user_folders)
            and isinstance(folder_files, dict)
            and all(name in TRACKER_DIRS and isinstance(paths, list) and all(map(_relative_path, paths))
                    for name, paths in folder_files.items())):
        raise ValueError(f"{damaged}: its lists hold what is not a plain name of the folder; choose another --out")
    return {"files": list(dict.fromkeys(files)), "user_folders": list(user_folders),
            "folder_files": {name: list(paths) for name, paths in folder_files.items()}}


def write_marker(out: str | Path, marker: dict) -> None:
    """Write the marker (`read_marker`'s dict) into `out` atomically. ValueError: the write failed."""
    data = (json.dumps({"format": MARKER_FORMAT, "version": 1, **marker}, indent=2) + "\n").encode()
    path = Path(out) / MARKER_FILE
    tmp = path.with_name(path.name + TMP_SUFFIX)
    try:
        _write_bytes(tmp, data)
        os.replace(tmp, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise write_error(path, error, f"about {format_bytes(len(data))}") from error
        raise


def note_written(path: str | Path) -> None:
    """List `path`'s name in its folder's marker (where the folder has one) before pgjax writes it.

    Raises:
      ValueError: the marker is damaged (`read_marker`) or cannot be written (`write_error`).
    """
    path = Path(path)
    marker = read_marker(path.parent)
    if marker is not None and path.name not in marker["files"] and _plain_name(path.name):
        marker["files"].append(path.name)
        write_marker(path.parent, marker)


def remove_written(path: str | Path) -> None:
    """Delete `path` if its folder's marker lists it (pgjax wrote it), and unlist it; else leave it.

    Raises:
      ValueError: as `note_written`.
    """
    path = Path(path)
    marker = read_marker(path.parent)
    if marker is None or path.name not in marker["files"]:
        return
    if path.is_file() and not path.is_symlink():
        path.unlink()
    marker["files"].remove(path.name)
    write_marker(path.parent, marker)


def _tree_entries(folder: Path) -> list[str]:
    """Every file and symbolic link under `folder` (links not followed), as "/"-joined relative paths."""
    found = []
    for root, dirs, files in os.walk(folder):
        base = Path(root).relative_to(folder)
        links = [d for d in dirs if (Path(root) / d).is_symlink()]
        dirs[:] = [d for d in dirs if d not in links]
        found.extend((base / name).as_posix() for name in [*files, *links])
    return sorted(found)


def record_folders(out: str | Path) -> None:
    """List in the marker what pgjax's trackers wrote into the tracker folders pgjax created.

    Called once the trackers are closed: everything then under a tensorboard/ or
    wandb/ that was not there before the run is the run's. Nothing to do
    without a marker.

    Raises:
      ValueError: as `note_written`.
    """
    out = Path(out)
    marker = read_marker(out)
    if marker is None:
        return
    for name in TRACKER_DIRS:
        folder = out / name
        if name not in marker["user_folders"] and folder.is_dir() and not folder.is_symlink():
            marker["folder_files"][name] = _tree_entries(folder)
    write_marker(out, marker)


def _inside(out: Path, relative: str) -> Path | None:
    """`out / relative` if no folder on the way there is a symbolic link (nothing is followed out of `out`)."""
    path = out
    for part in relative.split("/")[:-1]:
        path = path / part
        if path.is_symlink() or not path.is_dir():
            return None
    return path / relative.split("/")[-1]


def _remove_empty_dirs(folder: Path) -> None:
    """Remove the empty folders under `folder`, deepest first, and `folder` itself if it is left empty."""
    for root, dirs, _ in os.walk(folder, topdown=False):
        for name in dirs:
            with contextlib.suppress(OSError):
                if not (Path(root) / name).is_symlink():
                    (Path(root) / name).rmdir()  # only an empty folder goes
    with contextlib.suppress(OSError):
        folder.rmdir()


def remove_run_files(out: Path, this_command: bool = False) -> None:
    """Delete what pgjax wrote into `out`, as its marker lists it, then the marker; nothing of the user's.

    Deleted: the files the marker lists (and their temporary files, `<name>.tmp`);
    under a checkpoints/ folder, the chunk-<c> and rung-<k> folders pgjax's
    checkpoints make; under a tensorboard/ or wandb/ that was not there before
    the run, the files the marker lists for it. A folder is removed only once
    empty: a user's file anywhere keeps it. A folder without a marker loses nothing.

    Args:
      out: the run folder.
      this_command: the tracker folders pgjax created hold only this command's
        files (a command stopped before training, `pgjax.train`): they go whole.

    Raises:
      ValueError: the marker is damaged (`read_marker`).
    """
    out = Path(out)
    marker = read_marker(out)
    if marker is None:
        return
    for name in marker["files"]:
        for path in (out / name, out / (name + TMP_SUFFIX)):
            if path.is_symlink() or path.is_file():
                path.unlink()
    checkpoints = out / CHECKPOINT_DIR
    if checkpoints.is_dir() and not checkpoints.is_symlink():
        for entry in checkpoints.iterdir():
            if CHECKPOINT_ENTRY.fullmatch(entry.name) and entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
        _remove_empty_dirs(checkpoints)
    for name in TRACKER_DIRS:
        folder = out / name
        if name in marker["user_folders"] or folder.is_symlink() or not folder.is_dir():
            continue
        listed = _tree_entries(folder) if this_command else marker["folder_files"].get(name, [])
        for relative in listed:
            path = _inside(folder, relative)
            if path is not None and (path.is_symlink() or path.is_file()):
                path.unlink()
        _remove_empty_dirs(folder)
    (out / MARKER_FILE).unlink(missing_ok=True)


# --- reading a run folder ----------------------------------------------------------------------------------------


def damaged(path: Path, problem: str) -> ValueError:
    """The one-line ValueError for a damaged file of a run folder, naming the file (and so its folder)."""
    return ValueError(f"{path} {problem}; the run folder is damaged")


def load_json(path: str | Path) -> dict:
    """A JSON object from a file.

    Raises:
      ValueError: one line naming the file: it cannot be read, is not valid
        JSON (with the line and the parser's message) or is not an object.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except UnicodeDecodeError as error:
        raise damaged(path, "is not text (not valid JSON)") from error
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror or error}") from error
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise damaged(path, f"is not valid JSON (line {error.lineno}: {error.msg})") from error
    except ValueError as error:  # e.g. an integer too long to convert
        raise damaged(path, f"is not valid JSON ({error})") from error
    if not isinstance(data, dict):
        raise damaged(path, f"holds a JSON {type(data).__name__}, not an object")
    return data


def check_run_dir(run_dir: str | Path) -> Path:
    """The folder of a finished run, or a ValueError whose one-line message says what it holds instead.

    A run is finished once summary.json is there: pgjax writes it last.

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


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number_or_null(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def validate_summary(summary: Any, path: Path) -> dict:
    """Check the structure that every reader of summary.json relies on; returns `summary`.

    An object with "env" (text), "solve_threshold" (a number or null, if given),
    "runs" (objects with an integer "seed", "group" (an index into "groups"),
    "hyperparameters" (an object), "final_return" and "solved_at_env_steps"
    (numbers or null) and "diverged" (true or false)) and "groups" (objects
    with "index" (its position), "hyperparameters", "varied" (objects, if given)
    and "runs", the indices of exactly the runs whose "group" it is, at least one).

    Raises:
      ValueError: one line naming `path` and what is wrong.
    """
    def problem(what: str) -> ValueError:
        return damaged(path, f"is not a pgjax summary ({what})")

    if not isinstance(summary, dict):
        raise problem(f"a JSON {type(summary).__name__}, not an object")
    if not isinstance(summary.get("env"), str):
        raise problem('no "env" text')
    if not _is_number_or_null(summary.get("solve_threshold")):
        raise problem('"solve_threshold" is not a number')
    runs, groups = summary.get("runs"), summary.get("groups")
    for name, entries in (("runs", runs), ("groups", groups)):
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise problem(f'"{name}" is not a list of objects')
    for k, run in enumerate(runs):
        if not (_is_int(run.get("seed")) and _is_int(run.get("group")) and 0 <= run["group"] < len(groups)):
            raise problem(f"run {k} lacks an integer seed or the index of one of its groups")
        if not isinstance(run.get("hyperparameters"), dict) or not isinstance(run.get("diverged"), bool):
            raise problem(f'run {k} lacks "hyperparameters" or "diverged"')
        if not (_is_number_or_null(run.get("final_return")) and _is_number_or_null(run.get("solved_at_env_steps"))):
            raise problem(f'run {k}\'s "final_return" or "solved_at_env_steps" is not a number')
    for g, group in enumerate(groups):
        if group.get("index") != g or not _is_int(group["index"]):
            raise problem(f'group {g} has "index" {group.get("index")!r}')
        if not isinstance(group.get("hyperparameters"), dict) or not isinstance(group.get("varied", {}), dict):
            raise problem(f'group {g} lacks "hyperparameters"')
        members = group.get("runs")
        if not isinstance(members, list) or not members or not all(_is_int(r) for r in members) or \
                sorted(members) != [k for k, run in enumerate(runs) if run["group"] == g]:
            raise problem(f'group {g}\'s "runs" are not the runs of the group')
    return summary


def load_summary(run_dir: str | Path) -> dict:
    """summary.json of a finished run (`pgjax.results.summary.summarise`), its structure checked.

    Raises:
      ValueError: as `check_run_dir`; summary.json is damaged (`load_json`, `validate_summary`).
    """
    path = check_run_dir(run_dir) / SUMMARY_FILE
    return validate_summary(load_json(path), path)


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an .npz file (no pickles). ValueError: unreadable or damaged, naming the file."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except FileNotFoundError as error:
        raise damaged(path, "is missing") from error
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as error:
        raise damaged(path, f"cannot be read ({type(error).__name__}: {error})") from error


def _metrics_groups(path: Path) -> list[dict[str, np.ndarray]]:
    """metrics.npz's arrays by group, in group order, their shapes checked. ValueError: damaged."""
    groups: dict[int, dict[str, np.ndarray]] = {}
    for key, array in _read_npz(path).items():
        match = re.fullmatch(r"group(\d+)/(\w+)", key)
        if match is None:
            raise damaged(path, f"holds an array {key!r} that is not group<g>/<name>")
        groups.setdefault(int(match[1]), {})[match[2]] = array
    if sorted(groups) != list(range(len(groups))):
        raise damaged(path, f"holds groups {sorted(groups)}, not 0 to {len(groups) - 1}")
    ordered = [groups[g] for g in range(len(groups))]
    for g, arrays in enumerate(ordered):
        seeds = arrays.get("seeds")
        if seeds is None or seeds.ndim != 1 or "env_steps" not in arrays or "episode_return" not in arrays:
            raise damaged(path, f"lacks group {g}'s seeds, env_steps or episode_return")
        updates = {a.shape[1] for name, a in arrays.items() if name != "seeds" and a.ndim >= 2}
        if len(updates) > 1 or any(a.ndim < 2 or a.shape[0] != seeds.size
                                   for name, a in arrays.items() if name != "seeds"):
            raise damaged(path, f"holds group {g}'s metrics in shapes other than [runs, updates, ...]")
    return ordered


def load_group_metrics(run_dir: str | Path, group: int) -> dict[str, np.ndarray]:
    """Per-update metrics of one group's runs: name -> [R, U, ...] array (plus "seeds" [R]).

    Raises:
      ValueError: as `check_run_dir`; metrics.npz is damaged (one line naming it).
      IndexError: the run has no such group.
    """
    groups = _metrics_groups(check_run_dir(run_dir) / METRICS_FILE)
    if not 0 <= group < len(groups):
        raise IndexError(f"{run_dir} has no group {group}")
    return groups[group]


def load_metrics(run_dir: str | Path) -> list[dict[str, np.ndarray]]:
    """Per-update metrics of every group of a run folder, in group order (see `load_group_metrics`).

    Raises:
      ValueError: as `load_group_metrics`.
    """
    return _metrics_groups(check_run_dir(run_dir) / METRICS_FILE)


def load_run_metrics(run_dir: str | Path, summary: dict) -> list[dict[str, np.ndarray]]:
    """`load_metrics`, checked against the folder's summary: one entry per group, [R, ...] for its R runs.

    Raises:
      ValueError: as `load_metrics`; metrics.npz does not match summary.json (naming both).
    """
    path = Path(run_dir) / METRICS_FILE
    groups = load_metrics(run_dir)
    if len(groups) != len(summary["groups"]):
        raise damaged(path, f"holds {len(groups)} groups and {SUMMARY_FILE} {len(summary['groups'])}")
    for g, (metrics, group) in enumerate(zip(groups, summary["groups"])):
        if metrics["seeds"].size != len(group["runs"]):
            raise damaged(path, f"holds {metrics['seeds'].size} runs of group {g} and {SUMMARY_FILE} "
                                f"{len(group['runs'])}")
    return groups


def _locate(summary: dict, run: int, run_dir: str | Path) -> tuple[int, int]:
    """(group, position within the group) of a run index (of a summary `validate_summary` checked)."""
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
      ValueError: as `load_summary`; params.msgpack is damaged or does not hold
        every group's runs (one line naming it). IndexError: `run` is out of range.
    """
    summary = load_summary(run_dir)
    path = Path(run_dir) / PARAMS_FILE
    try:
        params = serialization.msgpack_restore(path.read_bytes())
    except FileNotFoundError as error:
        raise damaged(path, "is missing") from error
    except Exception as error:  # msgpack's errors on damaged bytes are of many kinds, not all ValueErrors
        raise damaged(path, f"cannot be read ({type(error).__name__}: {error})") from error
    names = [f"group{g}" for g in range(len(summary["groups"]))]
    if not isinstance(params, dict) or sorted(params) != sorted(names):
        raise damaged(path, f"does not hold the parameters of groups {', '.join(names)}")
    for name, group in zip(names, summary["groups"]):
        try:
            leaves = jax.tree.leaves(params[name])
        except Exception as error:  # not a tree of arrays
            raise damaged(path, f"holds {name} in no form of parameters ({error})") from error
        if not leaves or any(not isinstance(x, np.ndarray) or x.ndim < 1 or x.shape[0] != len(group["runs"])
                             for x in leaves):
            raise damaged(path, f"does not hold {name}'s {len(group['runs'])} runs' parameters")
    if run is None:
        return params
    group, position = _locate(summary, run, run_dir)
    return jax.tree.map(lambda x: x[position], params[f"group{group}"])


def load_run_config(run_dir: str | Path, run: int) -> Config:
    """The settings (static and numeric) that run `run` of a run folder trained with.

    Raises:
      ValueError: as `load_summary`; the run's hyperparameters are no pgjax
        settings (one line naming summary.json). IndexError: `run` is out of range.
    """
    summary = load_summary(run_dir)
    _locate(summary, run, run_dir)
    settings = summary["runs"][run]["hyperparameters"]
    static_names = {f.name for f in dataclasses.fields(StaticConfig)}
    try:
        return Config.from_dict({"static": {k: v for k, v in settings.items() if k in static_names},
                                 "hparams": {k: v for k, v in settings.items() if k not in static_names}})
    except (ValueError, TypeError, KeyError) as error:
        raise damaged(Path(run_dir) / SUMMARY_FILE, f"holds settings of run {run} that pgjax does not know "
                                                    f"({error})") from error


def default_out_dir(env: str, preset: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path("runs") / f"{env}_{preset}_{stamp}"
    out, n = base, 1
    while out.exists():
        out, n = base.with_name(f"{base.name}-{n}"), n + 1
    return out


def prepare_out_dir(out: Path, overwrite: bool) -> None:
    """Make `out` a run folder for a new run: its marker written first, before any other file.

    A folder holds a run only if it has the marker (`MARKER_FILE`). Refused:
    a folder with a run, unless `overwrite` (then what the marker lists goes,
    `remove_run_files`); and any folder with a file named as a run's file
    (`CLASH_NAMES`) that no marker lists: pgjax did not write it (or pgjax
    0.2 did, which kept no list), so it is neither replaced nor deleted. Other
    files (a user's notes.txt, a tensorboard/ of the user's) stay.

    Raises:
      ValueError: `out` is a file; it holds files named as a run's that pgjax did
        not write (the message names them); its marker is damaged; it cannot be written.
      FileExistsError: `out` holds a run and `overwrite` is False.
    """
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder")
    marker = read_marker(out) if out.is_dir() else None
    if marker is not None and not overwrite:
        raise FileExistsError(
            f"{out} already holds a run; continue it with --resume {out}, replace it with --overwrite, "
            "or choose another --out"
        )
    listed = set(marker["files"]) if marker else set()
    if marker is not None:
        listed.add(CHECKPOINT_DIR)  # pgjax's: a folder without a marker cannot have had one
    clashes = [name + "/" * (out / name).is_dir() for name in CLASH_NAMES
               if ((out / name).exists() or (out / name).is_symlink()) and name not in listed]
    if clashes:
        names = ", ".join(clashes)
        raise ValueError(
            f"--out {out} holds {names}, which pgjax did not write (no {MARKER_FILE} lists "
            f"{'them' if len(clashes) > 1 else 'it'}): choose another --out (with or without --overwrite); "
            "pgjax neither replaces nor deletes them")
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"cannot write to --out {out}: {error.strerror or error}") from None
    if marker is not None:
        remove_run_files(out)
    fresh = {"files": [], "user_folders": [name for name in TRACKER_DIRS if (out / name).exists()],
             "folder_files": {}}
    try:
        write_marker(out, fresh)
    except ValueError as error:
        if created:
            with contextlib.suppress(OSError):
                out.rmdir()
        cause = error.__cause__
        if isinstance(cause, OSError) and cause.errno not in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
            raise ValueError(f"cannot write to --out {out}: {cause.strerror or cause}") from None
        raise
