"""What resuming an interrupted run reads back from its folder, checked as untrusted data.

A run folder's config.json records the grid, the run options and the chunk plan
(`chunk_plan`; `chunks_of` reverses it). Before `--resume` trains anything,
`check_saved_config` checks every field it reads (types, ranges, unknown keys),
`resumed_chunks` checks the plan against the grid, the seeds and the devices, and
`hold_resumed_folder` refuses links leading out of the folder (`pgjax.running.run_folder.links`),
holds it (`pgjax.running.run_folder.lock`), checks it can be written and removes what saves
cut short left (`pgjax.running.run_folder.checkpoints`).
"""

from __future__ import annotations

import json
import types
import typing
from pathlib import Path
from typing import Any

import numpy as np

from pgjax.algo.config import Config, Hyperparams, StaticConfig
from pgjax.algo.validation import validate_config
from pgjax.running.grid import GridPoint
from pgjax.running.run_folder.checkpoints import remove_incomplete_saves
from pgjax.running.run_folder.files import CHECKPOINT_DIR, CONFIG_FILE
from pgjax.running.run_folder.links import inside, tree_inside
from pgjax.running.run_folder.lock import FolderLock, check_writable
from pgjax.running.segments import Chunk, split_into_chunks


def chunk_plan(chunks: list[Chunk]) -> list[dict]:
    """The chunk plan, one entry per compile group (config.json): {"group", "chunk_size", "num_runs"}."""
    plan: dict[int, dict] = {}
    for chunk in chunks:
        entry = plan.setdefault(chunk.group, {"group": chunk.group, "chunk_size": chunk.size, "num_runs": 0})
        entry["num_runs"] += chunk.positions.size
    return list(plan.values())


def chunks_of(plan: list[dict]) -> list[Chunk]:
    """The chunks `chunk_plan` describes: each group's runs in order, `chunk_size` at a time."""
    chunks = []
    for entry in plan:
        chunks += split_into_chunks(entry["group"], np.arange(entry["num_runs"]), entry["chunk_size"], len(chunks))
    return chunks


def _peek_distributed(folder: Path) -> bool:
    """Whether `folder`'s config.json says its run spans several processes (False where it cannot be read)."""
    try:
        run = json.loads((folder / CONFIG_FILE).read_text()).get("run")
        return isinstance(run, dict) and run.get("distributed") is True
    except (OSError, ValueError, AttributeError):
        return False


def hold_resumed_folder(folder: Path | None, hold: FolderLock, distributed: bool = False) -> None:
    """With --resume: hold the folder (before its config.json is read), check it can be written and remove
    what saves cut short left in its checkpoints (`remove_incomplete_saves`).

    A multi-process run's folder is held later, by process 0 only, once the
    processes know their index (`distributed=True`, called again by `run`).

    Raises:
      FolderInUse: another process holds it. ValueError: it cannot be written,
        or its name cannot be a folder's (too long); its config.json, checkpoints/
        or a file under it is a link leading outside it (`pgjax.running.run_folder.links`).
    """
    if folder is None or hold.folder is not None:
        return
    try:
        if not folder.is_dir():
            return  # `resumed_sweep` says what is wrong
    except OSError as error:
        raise ValueError(f"--resume {folder}: {error.strerror or error}") from None
    inside(folder, folder / CONFIG_FILE)  # read below and by every process; checkpoints/ is read and cleared
    tree_inside(folder, folder / CHECKPOINT_DIR)
    if _peek_distributed(folder) and not distributed:
        return
    hold.take(folder)
    check_writable(folder)
    remove_incomplete_saves(folder)


def _is_int(value: Any, least: int | None = None) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and (least is None or value >= least)


def _matches(value: Any, kind: Any) -> bool:
    """Whether a JSON value can stand for a field of type `kind` (int, float, str, bool, Path, Literal, X | None)."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, k) for k in typing.get_args(kind))
    if origin is typing.Literal:
        return value in typing.get_args(kind)
    if kind is type(None):
        return value is None
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return _is_int(value)
    if kind is float:
        return _is_int(value) or isinstance(value, float) or value is None  # null: how inf is written
    if kind in (str, Path):
        return isinstance(value, str)
    if origin is tuple:  # tuple[T, ...] (JSON: a list)
        return isinstance(value, (list, tuple)) and all(_matches(v, typing.get_args(kind)[0]) for v in value)
    return True


def _damaged(config_file: Path):
    """`bad(what)`: the ValueError that says `config_file` cannot be resumed, and why."""
    def bad(what: str) -> ValueError:
        return ValueError(f"{config_file} {what}; the folder was edited or damaged and cannot be resumed")
    return bad


def check_saved_config(config_file: Path, saved: Any, run_fields: dict[str, Any]) -> None:
    """Check the fields of a run folder's config.json that resuming reads (untrusted: it may be edited).

    Args:
      config_file: the file, for the messages; saved: its parsed JSON;
      run_fields: the type of each run option (`typing.get_type_hints` of `pgjax.commands.options.RunOptions`).

    Raises:
      ValueError: one line naming the file: a missing field, an unknown run
        option, a value of the wrong type or out of range, or grid settings
        that do not make a configuration.
    """
    bad = _damaged(config_file)
    if not isinstance(saved, dict):
        raise bad("is not a JSON object")
    missing = [key for key in ("preset", "run", "grid", "chunks", "num_devices") if key not in saved]
    if missing:
        raise bad(f"lacks {', '.join(missing)}")
    if not isinstance(saved["preset"], str):
        raise bad(f"has preset {saved['preset']!r}, not a name")
    if not isinstance(saved["run"], dict):
        raise bad("has a run that is not an object of run options")
    fields = run_fields
    for key, value in saved["run"].items():
        if key not in fields:
            raise bad(f"has an unknown run option {key!r}")
        if not _matches(value, fields[key]):
            raise bad(f"has run.{key} = {value!r}, which is not a valid --{key.replace('_', '-')}")
    run = saved["run"]
    for key, least in (("num_seeds", 1), ("max_parallel", 1), ("checkpoint_every", 1), ("gradient_block_rows", 1),
                       ("seed", 0),
                       ("halving", 2), ("rungs", 1)):
        if key in run and run[key] is not None and not _is_int(run[key], least):
            raise bad(f"has run.{key} = {run[key]!r}; it must be a whole number >= {least}")
    if not isinstance(saved["grid"], list) or not saved["grid"]:
        raise bad("has no grid points")
    for i, point in enumerate(saved["grid"]):
        if not isinstance(point, dict) or point.get("index") != i or not isinstance(point.get("config"), dict):
            raise bad(f"has a grid[{i}] that is not {{\"index\": {i}, \"config\": {{...}}}}")
        for part, cls in (("static", StaticConfig), ("hparams", Hyperparams)):
            values = point["config"].get(part, {})
            kinds = typing.get_type_hints(cls)
            if not isinstance(values, dict):
                raise bad(f"has grid[{i}].config.{part} that is not an object")
            for key, value in values.items():
                if key in kinds and not _matches(value, kinds[key]):
                    raise bad(f"has grid[{i}].config.{part}.{key} = {value!r}, which is not a valid "
                              f"--{key.replace('_', '-')}")
        try:
            validate_config(Config.from_dict(point["config"]))
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            raise bad(f"has grid[{i}] settings that do not make a configuration ({type(error).__name__}: "
                      f"{(str(error).splitlines() or [''])[0]})") from None
    if not _is_int(saved["num_devices"], 1):
        raise bad(f"has num_devices {saved['num_devices']!r}, not a whole number >= 1")
    if saved.get("search") is not None and not isinstance(saved["search"], dict):
        raise bad("has a search that is not an object")


def resumed_chunks(config_file: Path, saved: dict, groups: list[list[GridPoint]], num_seeds: int,
                   devices: list) -> list[Chunk]:
    """The chunk plan of a resumed run's config.json, checked against its grid, seeds and this process's devices.

    Raises:
      ValueError: one line: chunk entries of the wrong form, a plan that does
        not hold each group's runs, or another number of devices.
    """
    out, bad = config_file.parent, _damaged(config_file)
    entries = saved["chunks"]
    if not isinstance(entries, list) or not entries:
        raise bad("has no chunk plan")
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or set(entry) != {"group", "chunk_size", "num_runs"} or not all(
                _is_int(entry[k], 1 if k != "group" else 0) for k in entry):
            raise bad(f"has a chunks[{i}] that is not {{\"group\", \"chunk_size\", \"num_runs\"}} of whole "
                      "numbers")
    if [e["group"] for e in entries] != list(range(len(groups))):
        raise bad(f"has a chunk plan for groups {[e['group'] for e in entries]}, and its grid makes "
                  f"{len(groups)} compile group{'s' * (len(groups) != 1)}")
    for entry, group in zip(entries, groups):
        if entry["num_runs"] != len(group) * num_seeds:
            raise bad(f"plans {entry['num_runs']} runs for group {entry['group']}, and its grid and "
                      f"run.num_seeds make {len(group) * num_seeds}")
    if saved["num_devices"] != len(devices):
        raise ValueError(f"{out} was trained on {saved['num_devices']} devices and this process has "
                         f"{len(devices)}; resume it with the same number")
    if any(e["chunk_size"] % len(devices) for e in entries):
        raise bad(f"has chunk sizes {[e['chunk_size'] for e in entries]} that {len(devices)} devices cannot share")
    return chunks_of(entries)
