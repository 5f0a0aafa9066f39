"""Reading a run folder back: every file checked as untrusted data, a damaged one named in one line.

The files are those `pgjax.running.run_folder.files` describes, each read inside the
folder (`run_file`: a symbolic link leading outside is refused, `pgjax.running.run_folder.links`).
Each loader validates what it reads and raises ValueError naming the damaged file
(and so its folder), with the cause chained: never a KeyError, TypeError or a zip
or msgpack error.
"""

from __future__ import annotations

import json
import re
import zipfile
import zlib
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import serialization

from pgjax.algo.config import LEGACY_STATIC, Config, is_static
from pgjax.running.run_folder.files import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    METRICS_FILE,
    PARAMS_FILE,
    SUMMARY_FILE,
    VALUE_PARAMS_FILE,
)
from pgjax.running.run_folder.links import inside


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
      ValueError: the folder is missing or a file; its summary.json is a link leading outside it
        (`pgjax.running.run_folder.links.inside`); it holds an interrupted run
        (config.json or checkpoints/ but no summary.json: the message says how
        to continue it); or it holds no run.
    """
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise ValueError(f"{run_dir} is missing: no such folder")
    if not run_dir.is_dir():
        raise ValueError(f"{run_dir} is a file, not a run folder")
    if not inside(run_dir, run_dir / SUMMARY_FILE).is_file():
        if (run_dir / CONFIG_FILE).is_file() or (run_dir / CHECKPOINT_DIR).is_dir():
            raise ValueError(
                f"{run_dir} holds an interrupted run (no {SUMMARY_FILE} yet); "
                f"continue it with: python -m pgjax.train --resume {run_dir}"
            )
        raise ValueError(f"{run_dir} holds no run (no {SUMMARY_FILE})")
    return run_dir


def run_file(run_dir: str | Path, name: str) -> Path:
    """The file `name` of the finished run in `run_dir`, to be read: `run_dir / name` once `check_run_dir`
    passes and no link on the way leads outside the folder (`pgjax.running.run_folder.links.inside`).

    Raises:
      ValueError: as `check_run_dir`; the file is a symbolic link leading outside the folder (one line naming it).
    """
    run_dir = check_run_dir(run_dir)
    return inside(run_dir, run_dir / name)


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
    runs_of = [[] for _ in groups]  # each group's runs, from the runs' "group" (one pass over the runs)
    for k, run in enumerate(runs):
        runs_of[run["group"]].append(k)
    for g, group in enumerate(groups):
        if group.get("index") != g or not _is_int(group["index"]):
            raise problem(f'group {g} has "index" {group.get("index")!r}')
        if not isinstance(group.get("hyperparameters"), dict) or not isinstance(group.get("varied", {}), dict):
            raise problem(f'group {g} lacks "hyperparameters"')
        members = group.get("runs")
        if not isinstance(members, list) or not members or not all(_is_int(r) for r in members) or \
                sorted(members) != runs_of[g]:
            raise problem(f'group {g}\'s "runs" are not the runs of the group')
    return summary


def load_summary(run_dir: str | Path) -> dict:
    """summary.json of a finished run (`pgjax.results.summary.summarise`), its structure checked.

    Raises:
      ValueError: as `check_run_dir`; summary.json is damaged (`load_json`, `validate_summary`).
    """
    path = run_file(run_dir, SUMMARY_FILE)
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
    groups = _metrics_groups(run_file(run_dir, METRICS_FILE))
    if not 0 <= group < len(groups):
        raise IndexError(f"{run_dir} has no group {group}")
    return groups[group]


def load_metrics(run_dir: str | Path) -> list[dict[str, np.ndarray]]:
    """Per-update metrics of every group of a run folder, in group order (see `load_group_metrics`).

    Raises:
      ValueError: as `load_group_metrics`.
    """
    return _metrics_groups(run_file(run_dir, METRICS_FILE))


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
    params = _read_group_params(run_file(run_dir, PARAMS_FILE), summary, range(len(summary["groups"])))
    if run is None:
        return params
    group, position = _locate(summary, run, run_dir)
    return jax.tree.map(lambda x: x[position], params[f"group{group}"])


def load_value_params(run_dir: str | Path, run: int) -> Any:
    """The final parameters of run `run`'s learned value baseline, from value_params.msgpack.

    Returns:
      A Flax params pytree of NumPy arrays, or None where the folder keeps none for the run's group (it learns
      no value, or pgjax 1.0 trained it: it wrote no value_params.msgpack).

    Raises:
      ValueError: as `load_summary`; value_params.msgpack is damaged (one line naming it). IndexError: `run`
        is out of range.
    """
    summary = load_summary(run_dir)
    group, position = _locate(summary, run, run_dir)
    path = run_file(run_dir, VALUE_PARAMS_FILE)
    if not path.is_file():
        return None
    params = _read_group_params(path, summary, None)  # every group it holds checked
    if f"group{group}" not in params:
        return None
    return jax.tree.map(lambda x: x[position], params[f"group{group}"])


def _read_group_params(path: Path, summary: dict, groups: Any) -> dict:
    """The stacked parameters {"group<g>": leaves [R_g, ...]} of a msgpack file of `files.write_params`, checked.

    Args:
      path: the file; summary: the folder's (`load_summary`).
      groups: the groups the file must hold, exactly; None: any of the summary's groups.

    Raises:
      ValueError: the file is missing, cannot be read, or does not hold those groups' runs (one line naming it).
    """
    try:
        params = serialization.msgpack_restore(path.read_bytes())
    except FileNotFoundError as error:
        raise damaged(path, "is missing") from error
    except Exception as error:  # msgpack's errors on damaged bytes are of many kinds, not all ValueErrors
        raise damaged(path, f"cannot be read ({type(error).__name__}: {error})") from error
    known = {f"group{g}": g for g in range(len(summary["groups"]))}
    names = list(known) if groups is None else [f"group{g}" for g in groups]
    if groups is None and not (isinstance(params, dict) and set(params) <= set(names)):
        raise damaged(path, f"holds more than parameters of groups {', '.join(names)}")
    if groups is not None and not (isinstance(params, dict) and sorted(params) == sorted(names)):
        raise damaged(path, f"does not hold the parameters of groups {', '.join(names)}")
    for name in params if groups is None else names:
        size = len(summary["groups"][known[name]]["runs"])
        try:
            leaves = jax.tree.leaves(params[name])
        except Exception as error:  # not a tree of arrays
            raise damaged(path, f"holds {name} in no form of parameters ({error})") from error
        if not leaves or any(not isinstance(x, np.ndarray) or x.ndim < 1 or x.shape[0] != size for x in leaves):
            raise damaged(path, f"does not hold {name}'s {size} runs' parameters")
    return params


def load_run_config(run_dir: str | Path, run: int) -> Config:
    """The settings (static and numeric) that run `run` of a run folder trained with.

    Raises:
      ValueError: as `load_summary`; the run's hyperparameters are no pgjax
        settings (one line naming summary.json). IndexError: `run` is out of range.
    """
    return run_config(load_summary(run_dir), run, run_dir)


def run_config(summary: dict, run: int, run_dir: str | Path) -> Config:
    """`load_run_config` from a summary already loaded (`load_summary`): one read of summary.json for many runs.

    Raises:
      ValueError, IndexError: as `load_run_config`.
    """
    _locate(summary, run, run_dir)
    # pgjax 0.2's fast-path knobs among the static settings: dropped (`Config.from_dict`)
    settings = {k: v for k, v in summary["runs"][run]["hyperparameters"].items() if k not in LEGACY_STATIC}
    try:
        return Config.from_dict({"static": {k: v for k, v in settings.items() if is_static(k)},
                                 "hparams": {k: v for k, v in settings.items() if not is_static(k)}})
    except (ValueError, TypeError, KeyError) as error:
        raise damaged(Path(run_dir) / SUMMARY_FILE, f"holds settings of run {run} that pgjax does not know "
                                                    f"({error})") from error
