"""The run folder's files: their names, the marker, atomic writes, the writers, and preparing and clearing --out.

    .pgjax-run.json the marker: written first, it lists what pgjax wrote into the folder
                    (`pgjax.running.run_folder.files.MARKER_FILE`; a folder "holds a run" only with it)
    config.json     the command line, its arguments, every grid point's settings,
                    the chunk plan, versions and devices
    summary.json    per-run, per-group and aggregate results (the contract other tools read);
                    written last: a folder is a finished run only with it
    metrics.npz     per-update metrics of every group (grid point): arrays
                    "group<g>/<name>" of shape [R runs of the group, U updates, ...]
                    and "group<g>/seeds" [R]
    params.msgpack  final policy parameters, {"group<g>": params stacked on a leading [R] axis}
    checkpoints/    orbax checkpoints of every chunk of runs (`pgjax.running.run_folder.checkpoints`)
    learning_curves.png  return against env steps, one curve per group (`pgjax.results.plots`)
    runs.csv        one row per run: group, seed, settings, final results (`pgjax.results.exports`)
    curves.parquet  one row per run and update: the per-update metrics (curves.csv without pyarrow)
    tensorboard/    TensorBoard event files, with `--tensorboard` (`pgjax.results.tracking`)
    wandb/          Weights & Biases' local run files, with `--wandb`

A group is one grid point; its runs are its seeds, listed in summary.json's
`groups[g]["runs"]` (indices into `runs`).

Every file is written through a
temporary file beside it (`write_atomic`): a reader never sees half a file, a
failed write leaves no temporary file, and a full disk is a one-line ValueError
naming the file. The loaders validate what they read and raise ValueError
naming the damaged file and its folder.


A folder holds a run only if it has pgjax's marker (`MARKER_FILE`), written
first and listing every file pgjax writes there (`note_written`, called by
`write_atomic` before each write); --overwrite deletes only what it lists
(`remove_run_files`). `pgjax.running.run_folder.loading` reads them back.
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
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import serialization

from pgjax.running.footprint import format_bytes

CONFIG_FILE = "config.json"  # the command line, every grid point's settings, the chunk plan (see above)
CHECKPOINT_DIR = "checkpoints"  # orbax checkpoints of every chunk (`pgjax.running.run_folder.checkpoints`)
MARKER_FILE = ".pgjax-run.json"
MARKER_FORMAT = "pgjax run folder"
SUMMARY_FILE = "summary.json"
METRICS_FILE = "metrics.npz"
PARAMS_FILE = "params.msgpack"
VALUE_PARAMS_FILE = "value_params.msgpack"  # the learned baseline's final parameters (value baselines only)
PLOT_FILE = "learning_curves.png"
RUNS_FILE = "runs.csv"
FAILURE_LOG = "failure.log"  # a failure while training: its traceback and what libraries printed (appended)
CURVES_PARQUET = "curves.parquet"
CURVES_CSV = "curves.csv"
TENSORBOARD_DIR = "tensorboard"  # --tensorboard's default folder
WANDB_DIR = "wandb"  # where --wandb's local files go
TMP_SUFFIX = ".tmp"  # `write_atomic`'s temporary file: <name>.tmp beside <name>
RUN_FILES = (CONFIG_FILE, SUMMARY_FILE, METRICS_FILE, PARAMS_FILE, VALUE_PARAMS_FILE, CHECKPOINT_DIR, PLOT_FILE,
             RUNS_FILE, CURVES_PARQUET, CURVES_CSV, TENSORBOARD_DIR, WANDB_DIR, FAILURE_LOG)
# What the training command writes into --out: in a folder without the marker, any of these is a clash
# (pgjax would replace or mix with them), never replaced or deleted.
CLASH_NAMES = (CONFIG_FILE, SUMMARY_FILE, METRICS_FILE, PARAMS_FILE, VALUE_PARAMS_FILE, PLOT_FILE, RUNS_FILE,
               CURVES_PARQUET, CURVES_CSV, CHECKPOINT_DIR, FAILURE_LOG)
# Folders the trackers write into; a user's own (there before the run) is left alone and is no clash.
TRACKER_DIRS = (TENSORBOARD_DIR, WANDB_DIR)
# The entries pgjax's checkpoints make under checkpoints/ (`checkpoints`, `pgjax.running.halving`)
CHECKPOINT_ENTRY = re.compile(r"chunk-\d{4}|rung-\d+|confirmation")  # pgjax.running.confirm.CONFIRM_DIR too
# The errors of a full disk or quota: their message says the space needed and free.
FULL_DISK = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


class WriteFailed(ValueError):
    """A file of pgjax's could not be written (a full disk, a quota, a folder made read-only): one line.

    A ValueError, so that a command refuses an output it cannot write before it starts in one line (exit
    status 2); once a run trains, it is a failure while running (`pgjax.commands.process`, exit status 1).
    """


def write_error(path: Path, error: OSError, needed: str | None = None) -> WriteFailed:
    """The one-line `WriteFailed` for an OSError writing `path`: a full disk says the space needed and free.

    Args:
      path: the file being written; error: what the write raised;
      needed: the space the file needs, in words ("about 1.2 MiB"), where known.
    """
    if error.errno in FULL_DISK:
        what = "no space left on device" if error.errno == errno.ENOSPC else "disk quota exceeded"
        sizes = [f"{needed} needed"] if needed else []
        with contextlib.suppress(OSError):
            sizes.append(f"{format_bytes(shutil.disk_usage(path.parent).free)} free")
        return WriteFailed(f"{what} writing {path}" + (f" ({', '.join(sizes)})" if sizes else ""))
    return WriteFailed(f"cannot write {path}: {error.strerror or error}")


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
    note_written(path)
    _replace(path, write, needed)
    return path


def _replace(path: Path, write: Callable[[Path], Any], needed: str | None) -> None:
    """`write(<path>.tmp)`, then rename it over `path`; the temporary file goes on any error (`write_atomic`)."""
    tmp = path.with_name(path.name + TMP_SUFFIX)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise write_error(path, error, needed) from error
        raise


def write_bytes(path: Path, data: bytes) -> None:
    """The low-level write of `write_atomic`'s callers that have the whole content in memory."""
    with open(path, "wb") as file:
        file.write(data)


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
    _replace(Path(out) / MARKER_FILE, lambda tmp: write_bytes(tmp, data), f"about {format_bytes(len(data))}")


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
        if isinstance(cause, OSError) and cause.errno not in FULL_DISK:
            raise ValueError(f"cannot write to --out {out}: {cause.strerror or cause}") from None
        raise


# The files' content: JSON, metrics and parameters.
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
            if getattr(metrics, f.name) is not None:  # a field a setting leaves out (`Metrics.names`)
                arrays[f"group{g}/{f.name}"] = np.asarray(getattr(metrics, f.name))

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as file:  # a file object: NumPy adds no ".npz" to the name
            np.savez_compressed(file, **arrays)

    write_atomic(path, write, f"up to {format_bytes(sum(a.nbytes for a in arrays.values()))}")


def write_params(path: Path, group_params: list[Any]) -> None:
    """Save each group's stacked final parameters (leaves [R, ...]) as msgpack, atomically, as "group<g>"; a
    group whose parameters are None (a value network's, where the group learns none) is left out.

    Raises:
      ValueError: the write failed (`write_atomic`).
    """
    state_dict = {
        f"group{g}": serialization.to_state_dict(jax.tree.map(np.asarray, params))
        for g, params in enumerate(group_params) if params is not None
    }
    data = serialization.msgpack_serialize(state_dict)
    write_atomic(path, lambda tmp: write_bytes(tmp, data), f"about {format_bytes(len(data))}")
