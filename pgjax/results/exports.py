"""Tidy exports of a run folder: `runs.csv` (one row per run) and the per-update curves (one row per run and update).

    write_exports(run_dir, summary, group_metrics)       # what `python -m pgjax.train` does
    runs, curves = load_results("runs/DIR")              # pandas DataFrames (`pgjax.load_results`)

`runs.csv` holds one row per run: `run`, `group`, `seed`, every setting of the
run's group (`GridPoint.hyperparameters()`, one column each, widths written as
the flag takes them: "64,64"), then `final_return`, `solved`,
`solved_at_env_steps`, `env_steps`, `episodes`, `diverged`,
`diverged_at_update` (summary.json's run entry), and the group's `rung` and
`stopped_early` where summary.json's groups carry them (successive halving).

The curves hold one row per run and update: `run`, `group`, `seed`, `update`
(1 for the first), then every per-update scalar of `pgjax.Metrics`: `env_steps`,
`return` (`episode_return`), `length` (`episode_length`), `episodes`, `loss`,
`entropy`, `grad_norm`, `loop_steps`, `diverged`, `value_loss`,
`explained_variance`, and with `--gradient-stats` `gradient_variance`,
`gradient_snr`, `gradient_cosine` (runs.csv then also holds each run's
`gradient_variance_median`, `gradient_snr_median` and `gradient_cosine_mean`,
summary.json's run entries). Groups may hold different numbers of updates (a group
stopped early by successive halving has fewer rows per run). They go to
`curves.parquet` when pyarrow is importable, else `curves.csv`.

Writing needs neither pandas nor pyarrow (CSV through the `csv` module, every
float as the shortest text that reads back to the same float32 or float64);
`load_results` needs pandas (the `results` extra), and pyarrow for a Parquet
file. A folder written before these files existed is read from summary.json
and metrics.npz instead.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import importlib.util
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from pgjax.algo.config import HYPERPARAMS_FIELDS, STATIC_FIELDS, setting_kind
from pgjax.algo.trainer import GRADIENT_STATS, Metrics
from pgjax.results.tables import format_setting
from pgjax.running.memory import format_bytes
from pgjax.running.run_folder import loading
from pgjax.running.run_folder.files import CURVES_CSV, CURVES_PARQUET, RUNS_FILE, remove_written, write_atomic

# summary.json run entries, in the columns' order after the settings
RUN_RESULTS = ("final_return", "solved", "solved_at_env_steps", "env_steps", "episodes", "diverged",
               "diverged_at_update")
# summary.json run entries of `--gradient-stats`, columns after RUN_RESULTS where the runs carry them
GRADIENT_RESULTS = ("gradient_variance_median", "gradient_snr_median", "gradient_cosine_mean")
# summary.json group entries copied to their runs' rows where present (successive halving)
GROUP_RESULTS = ("rung", "stopped_early")
# curve columns named otherwise than their Metrics field
CURVE_NAMES = {"episode_return": "return", "episode_length": "length"}
RESULTS_EXTRA = "pip install 'pgjax[results]'"


def curve_fields(gradient_stats: bool = False) -> list[str]:
    """The `Metrics` fields with one value per update (every field but `episode_returns`), env_steps first;
    the gradient statistics (`GRADIENT_STATS`) only with `gradient_stats`."""
    shapes = Metrics.shapes(1, gradient_stats)
    scalar = [name for name in Metrics.names(gradient_stats) if getattr(shapes, name).shape == ()]
    return ["env_steps", *(name for name in scalar if name != "env_steps")]


def curve_dtypes(gradient_stats: bool = False) -> dict[str, np.dtype]:
    """Column name -> NumPy dtype of the curves table (the CSV is read back into these)."""
    shapes = Metrics.shapes(1, gradient_stats)
    return {"run": np.dtype(np.int64), "group": np.dtype(np.int64), "seed": np.dtype(np.int64),
            "update": np.dtype(np.int64),
            **{CURVE_NAMES.get(name, name): np.dtype(getattr(shapes, name).dtype)
               for name in curve_fields(gradient_stats)}}


def has_parquet() -> bool:
    return importlib.util.find_spec("pyarrow") is not None


def runs_table(summary: dict) -> tuple[list[str], list[list[Any]]]:
    """runs.csv's columns and rows (one per run, in run order) from a summary.json dict.

    Settings keep their summary.json values but widths (lists), which become "64,64".
    """
    settings = list(dict.fromkeys(name for run in summary["runs"] for name in run["hyperparameters"]))
    group_results = [name for name in GROUP_RESULTS if any(name in g for g in summary["groups"])]
    run_results = [*RUN_RESULTS, *(name for name in GRADIENT_RESULTS if any(name in r for r in summary["runs"]))]
    columns = ["run", "group", "seed", *settings, *run_results, *group_results]
    rows = []
    for index, run in enumerate(summary["runs"]):
        group = summary["groups"][run["group"]]
        values = [_setting_value(name, run["hyperparameters"].get(name)) for name in settings]
        rows.append([index, run["group"], run["seed"], *values, *(run.get(name) for name in run_results),
                     *(group.get(name) for name in group_results)])
    return columns, rows


def _setting_value(name: str, value: Any) -> Any:
    """A setting as runs.csv holds it: widths as text, and infinity where summary.json's null stands for it."""
    if isinstance(value, (list, tuple)):
        return format_setting(value)
    if value is None and name in _float_settings():
        return math.inf  # `outputs.jsonable` writes inf as null (`Config.from_dict` reads it back so too)
    return value


@functools.cache
def _float_settings() -> frozenset[str]:
    return frozenset(name for name in STATIC_FIELDS | HYPERPARAMS_FIELDS if setting_kind(name) == (float, False))


def curves_columns(summary: dict, group_metrics: Sequence[Mapping[str, np.ndarray] | Metrics]) -> dict[str, np.ndarray]:
    """The curves table as columns (name -> [rows] array), groups in order, each run's updates in order.

    Args:
      summary: the summary.json dict (which runs, seeds, of which group).
      group_metrics: per group, its metrics (a `Metrics` or `loading.load_group_metrics`'s dict), leaves
        [R, U_g, ...]; U_g may differ between groups. The gradient statistics are columns where every group
        holds them (`--gradient-stats`, one value for every grid point).
    """
    group_metrics = [_as_dict(metrics) for metrics in group_metrics]
    gradient_stats = bool(group_metrics) and all(GRADIENT_STATS[0] in metrics for metrics in group_metrics)
    dtypes = curve_dtypes(gradient_stats)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in dtypes}
    for group, metrics in zip(summary["groups"], group_metrics):
        runs = np.asarray(group["runs"], np.int64)
        num_runs, num_updates = np.shape(metrics["env_steps"])[:2]
        if num_runs != runs.size:
            raise ValueError(f"group {group['index']} has {runs.size} runs in summary.json and {num_runs} in its "
                             "metrics")
        parts["run"].append(np.repeat(runs, num_updates))
        parts["group"].append(np.full(runs.size * num_updates, group["index"], np.int64))
        parts["seed"].append(np.repeat([summary["runs"][r]["seed"] for r in runs], num_updates).astype(np.int64))
        parts["update"].append(np.tile(np.arange(1, num_updates + 1, dtype=np.int64), runs.size))
        for name in curve_fields(gradient_stats):
            parts[CURVE_NAMES.get(name, name)].append(np.asarray(metrics[name]).reshape(-1))
    return {name: np.concatenate(p).astype(dtypes[name], copy=False) if p else np.zeros(0, dtypes[name])
            for name, p in parts.items()}


def _as_dict(metrics: Mapping[str, np.ndarray] | Metrics) -> Mapping[str, np.ndarray]:
    if isinstance(metrics, Metrics):
        return {f.name: getattr(metrics, f.name) for f in dataclasses.fields(Metrics)
                if getattr(metrics, f.name) is not None}
    return metrics


def write_csv(path: Path, columns: Sequence[str], rows_or_columns: Sequence[Sequence[Any]] | dict[str, np.ndarray],
              ) -> None:
    """Write a CSV atomically (`write_atomic`): from rows (lists of values; None is an empty cell) or columns.

    Floats are written as the shortest text that reads back to the same value of their own precision.

    Raises:
      ValueError: the write failed (one line naming the file; no temporary file is left).
    """
    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as file:
            if isinstance(rows_or_columns, dict):
                writer = csv.writer(file)
                writer.writerow(columns)
                texts = [np.asarray(rows_or_columns[name]).astype(str) for name in columns]
                writer.writerows(zip(*texts))
            else:
                file.write(csv_text(columns, rows_or_columns))

    write_atomic(path, write)


def csv_text(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """CSV text of a header and rows (lists of values; None is an empty cell)."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(columns)
    writer.writerows([_cell(v) for v in row] for row in rows)
    return buffer.getvalue()


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return value


def write_parquet(path: Path, columns: dict[str, np.ndarray]) -> None:
    """Write columns (name -> array) as one Parquet table, atomically (pyarrow; `write_atomic`).

    Raises:
      ValueError: the write failed (one line naming the file; no temporary file is left).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(columns)
    write_atomic(path, lambda tmp: pq.write_table(table, str(tmp)), f"up to {format_bytes(table.nbytes)}")


def write_exports(run_dir: str | Path, summary: dict, group_metrics: Sequence[Mapping[str, np.ndarray] | Metrics],
                  parquet: bool | None = None) -> list[Path]:
    """Write runs.csv and the curves (curves.parquet, or curves.csv without pyarrow) into `run_dir`.

    Args:
      run_dir: the run folder; summary: its summary.json dict (written or not yet);
      group_metrics: per group, its metrics (see `curves_columns`).
      parquet: write Parquet (True) or CSV (False) curves; None: Parquet when pyarrow is importable.

    Returns:
      The paths written. A curves file of the other format that pgjax wrote before is removed.

    Raises:
      ValueError: a write failed (`write_atomic`).
    """
    run_dir = Path(run_dir)
    parquet = has_parquet() if parquet is None else parquet
    columns, rows = runs_table(summary)
    write_csv(run_dir / RUNS_FILE, columns, rows)
    curves = curves_columns(summary, group_metrics)
    curves_path, other = (CURVES_PARQUET, CURVES_CSV) if parquet else (CURVES_CSV, CURVES_PARQUET)
    if parquet:
        write_parquet(run_dir / curves_path, curves)
    else:
        write_csv(run_dir / curves_path, list(curves), curves)
    remove_written(run_dir / other)  # only a file of pgjax's: the run folder's marker lists it
    return [run_dir / RUNS_FILE, run_dir / curves_path]


class Results(NamedTuple):
    """A run folder's tidy tables (`load_results`): pandas DataFrames."""

    runs: Any  # one row per run (runs.csv's columns)
    curves: Any  # one row per run and update (the curves' columns)


def import_pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise ImportError(f"pgjax.load_results needs pandas: {RESULTS_EXTRA}") from None
    return pandas


def load_results(run_dir: str | Path) -> Results:
    """A finished run folder's runs and per-update curves as pandas DataFrames.

    Reads runs.csv and curves.parquet (or curves.csv); a folder without them
    (written before pgjax wrote them) is read from summary.json and metrics.npz,
    giving the same tables. Curve columns take their `Metrics` dtypes (int32,
    float32, bool; run, group, seed and update int64) whichever file they come from.

    Raises:
      ImportError: pandas is missing (one line naming the `results` extra), or
        pyarrow for a folder whose curves are Parquet.
      ValueError: as `pgjax.running.run_folder.loading.load_summary`; a file is damaged (one
        line naming it, the cause chained) or a link leading outside the folder (`loading.run_file`).
    """
    pd = import_pandas()
    summary = None
    runs_path, parquet, csv = (loading.run_file(run_dir, name) for name in (RUNS_FILE, CURVES_PARQUET, CURVES_CSV))
    if runs_path.is_file():
        runs = _read_table(runs_path, lambda: _read_runs(pd, runs_path.read_text()))
    else:
        summary = loading.load_summary(run_dir)
        runs = _read_runs(pd, csv_text(*runs_table(summary)))
    if parquet.is_file():
        if not has_parquet():
            raise ImportError(f"{parquet} needs pyarrow: {RESULTS_EXTRA}")
        curves = _read_table(parquet, lambda: _typed_curves(pd.read_parquet(parquet)))
    elif csv.is_file():
        curves = _read_table(csv, lambda: _typed_curves(pd.read_csv(csv)))
    else:
        summary = summary or loading.load_summary(run_dir)
        group_metrics = loading.load_run_metrics(run_dir, summary)
        curves = _typed_curves(pd.DataFrame(curves_columns(summary, group_metrics)))
    return Results(runs, curves)


def _read_table(path: Path, read: Any) -> Any:
    """`read()`, whose errors on a damaged file (pandas', pyarrow's, a missing column) become one ValueError."""
    try:
        return read()
    except (ValueError, KeyError, TypeError, IndexError, OSError, NotImplementedError, UnicodeDecodeError) as error:
        raise loading.damaged(path, f"cannot be read ({type(error).__name__}: {error})") from error


def _typed_curves(curves: Any) -> Any:
    """The curves with their dtypes (`curve_dtypes`, the gradient statistics' where the file has them); KeyError
    naming a column the file lacks."""
    dtypes = curve_dtypes(GRADIENT_STATS[0] in curves)
    missing = [name for name in dtypes if name not in curves]
    if missing:
        raise KeyError(f"no column {', '.join(missing)}")
    return curves.astype(dtypes)


def _read_runs(pd: Any, text: str) -> Any:
    """runs.csv's text as a DataFrame: widths stay text ("64" is a width, not a number)."""
    widths = [name for name in sorted(STATIC_FIELDS) if setting_kind(name)[1]]
    runs = pd.read_csv(io.StringIO(text), dtype={name: str for name in widths})
    missing = [name for name in ("run", "group", "seed", "solved_at_env_steps", "diverged_at_update")
               if name not in runs]
    if missing:
        raise KeyError(f"no column {', '.join(missing)}")
    return runs.astype({"solved_at_env_steps": "float64", "diverged_at_update": "float64"})
