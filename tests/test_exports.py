"""Tidy exports: runs.csv, the per-update curves (Parquet or CSV) and `pgjax.load_results`."""

from __future__ import annotations

import shutil
import sys

import numpy as np
import pytest

import pgjax
from pgjax.algo.trainer import Metrics
from pgjax.commands.train import main
from pgjax.results import exports
from pgjax.running.run_folder import loading
from pgjax.running.run_folder.files import (
    CHECKPOINT_DIR,
    CURVES_CSV,
    CURVES_PARQUET,
    MARKER_FILE,
    RUNS_FILE,
    prepare_out_dir,
    read_marker,
)

pd = pytest.importorskip("pandas")

NUM_SEEDS, NUM_UPDATES = 3, 4
SMALL = ["--num-seeds", str(NUM_SEEDS), "--seed", "5", "--num-updates", str(NUM_UPDATES), "--episodes-per-update",
         "2", "--hidden", "8", "--lr", "0.01", "0.02", "--quiet"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("exports") / "run"
    assert main([*SMALL, "--out", str(out)]) == 0
    return out


@pytest.fixture
def copy_of(run_dir, tmp_path):
    """A copy of the run folder that a test may change."""
    def copy():
        target = tmp_path / "copy"
        shutil.copytree(run_dir, target, ignore=shutil.ignore_patterns(CHECKPOINT_DIR))
        return target
    return copy


def test_runs_csv_has_one_row_per_run_with_every_setting(run_dir):
    summary = loading.load_summary(run_dir)
    runs = pd.read_csv(run_dir / RUNS_FILE)
    assert len(runs) == summary["num_runs"] == 2 * NUM_SEEDS
    settings = list(summary["runs"][0]["hyperparameters"])
    assert list(runs.columns) == ["run", "group", "seed", *settings, *exports.RUN_RESULTS]
    assert runs["run"].tolist() == list(range(2 * NUM_SEEDS))
    assert runs["group"].tolist() == [r["group"] for r in summary["runs"]]
    assert runs["seed"].tolist() == [5, 6, 7, 5, 6, 7]
    assert runs["learning_rate"].tolist() == [0.01] * NUM_SEEDS + [0.02] * NUM_SEEDS
    assert (runs["hidden"] == 8).all() and (runs["env"] == "CartPole-v1").all()
    assert np.isinf(runs["max_grad_norm"]).all()  # summary.json writes it null; runs.csv keeps the setting's inf
    np.testing.assert_array_equal(runs["final_return"], [r["final_return"] for r in summary["runs"]])
    np.testing.assert_array_equal(runs["env_steps"], [r["env_steps"] for r in summary["runs"]])
    assert not runs["solved"].any() and runs["solved_at_env_steps"].isna().all() and not runs["diverged"].any()


def test_load_results_round_trips_summary_and_metrics(run_dir):
    summary = loading.load_summary(run_dir)
    results = pgjax.load_results(run_dir)
    assert (run_dir / CURVES_PARQUET).is_file() and not (run_dir / CURVES_CSV).exists()
    runs, curves = results
    assert len(runs) == summary["num_runs"]
    assert runs["hidden"].tolist() == ["8"] * len(runs)  # a width, read as text
    np.testing.assert_array_equal(runs["final_return"], [r["final_return"] for r in summary["runs"]])
    assert len(curves) == summary["num_runs"] * NUM_UPDATES
    assert list(curves.columns) == list(exports.curve_dtypes())
    assert dict(curves.dtypes) == exports.curve_dtypes()
    for group in summary["groups"]:
        metrics = loading.load_group_metrics(run_dir, group["index"])
        rows = curves[curves["group"] == group["index"]]
        shape = (NUM_SEEDS, NUM_UPDATES)
        np.testing.assert_array_equal(rows["run"].to_numpy().reshape(shape)[:, 0], group["runs"])
        np.testing.assert_array_equal(rows["seed"].to_numpy().reshape(shape)[:, 0], metrics["seeds"])
        np.testing.assert_array_equal(rows["update"].to_numpy().reshape(shape)[0], np.arange(1, NUM_UPDATES + 1))
        np.testing.assert_array_equal(rows["return"].to_numpy().reshape(shape), metrics["episode_return"])
        np.testing.assert_array_equal(rows["length"].to_numpy().reshape(shape), metrics["episode_length"])
        for name in ("env_steps", "loss", "entropy", "grad_norm", "diverged", "loop_steps", "episodes"):
            np.testing.assert_array_equal(rows[name].to_numpy().reshape(shape), metrics[name])


def test_a_folder_without_the_files_gives_the_same_tables(run_dir, copy_of):
    old = copy_of()
    for name in (RUNS_FILE, CURVES_PARQUET):
        (old / name).unlink()
    expected, rebuilt = pgjax.load_results(run_dir), pgjax.load_results(old)
    pd.testing.assert_frame_equal(rebuilt.runs, expected.runs)
    pd.testing.assert_frame_equal(rebuilt.curves, expected.curves)


def test_csv_curves_read_back_as_the_parquet_ones(run_dir, copy_of):
    folder = copy_of()
    summary = loading.load_summary(folder)
    written = exports.write_exports(folder, summary, loading.load_metrics(folder), parquet=False)
    assert written == [folder / RUNS_FILE, folder / CURVES_CSV]
    assert not (folder / CURVES_PARQUET).exists()  # the other format's file is not left behind
    assert (folder / RUNS_FILE).read_text() == (run_dir / RUNS_FILE).read_text()
    pd.testing.assert_frame_equal(pgjax.load_results(folder).curves, pgjax.load_results(run_dir).curves)


def test_groups_of_different_lengths(run_dir, tmp_path):
    """A group stopped early (successive halving) has fewer updates: fewer curve rows, and its rung in runs.csv."""
    summary = loading.load_summary(run_dir)
    summary["groups"][1].update(rung=0, stopped_early=True)
    summary["groups"][0].update(rung=1, stopped_early=False)
    metrics = loading.load_metrics(run_dir)
    metrics[1] = {name: value[:, :2] if value.ndim > 1 else value for name, value in metrics[1].items()}
    exports.write_exports(tmp_path, summary, metrics, parquet=False)
    runs = pd.read_csv(tmp_path / RUNS_FILE)
    assert runs["stopped_early"].tolist() == [False] * NUM_SEEDS + [True] * NUM_SEEDS
    assert runs["rung"].tolist() == [1] * NUM_SEEDS + [0] * NUM_SEEDS
    curves = pd.read_csv(tmp_path / CURVES_CSV)
    assert curves.groupby("group").size().tolist() == [NUM_SEEDS * NUM_UPDATES, NUM_SEEDS * 2]
    assert curves[curves["group"] == 1]["update"].max() == 2


def test_curves_columns_take_a_metrics_value(run_dir):
    """`write_exports` takes the trainer's `Metrics` (what train.py passes) as well as loaded dicts."""
    summary = loading.load_summary(run_dir)
    loaded = loading.load_metrics(run_dir)
    as_metrics = [Metrics(**{name: m[name] for name in Metrics.names()}) for m in loaded]
    a, b = exports.curves_columns(summary, loaded), exports.curves_columns(summary, as_metrics)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])


def test_load_results_without_pandas_names_the_extra(run_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r"pgjax\[results\]") as error:
        pgjax.load_results(run_dir)
    assert "\n" not in str(error.value)


def test_overwrite_knows_the_new_files(run_dir, tmp_path):
    out = tmp_path / "only_exports"
    out.mkdir()
    (out / RUNS_FILE).write_text("run\n")  # not pgjax's: no marker lists it
    for overwrite in (False, True):
        with pytest.raises(ValueError, match="holds runs.csv, which pgjax did not write"):
            prepare_out_dir(out, overwrite=overwrite)
    assert (out / RUNS_FILE).read_text() == "run\n"
    marked = tmp_path / "marked"
    prepare_out_dir(marked, overwrite=False)
    exports.write_exports(marked, loading.load_summary(run_dir), loading.load_metrics(run_dir), parquet=False)
    with pytest.raises(FileExistsError):
        prepare_out_dir(marked, overwrite=False)
    prepare_out_dir(marked, overwrite=True)
    assert sorted(p.name for p in marked.iterdir()) == [MARKER_FILE]


def test_the_other_curves_file_goes_only_if_pgjax_wrote_it(run_dir, tmp_path):
    pytest.importorskip("pyarrow")
    summary, metrics = loading.load_summary(run_dir), loading.load_metrics(run_dir)
    (tmp_path / CURVES_CSV).write_text("the user's\n")  # no marker: not pgjax's
    exports.write_exports(tmp_path, summary, metrics, parquet=True)
    assert (tmp_path / CURVES_CSV).read_text() == "the user's\n"
    marked = tmp_path / "marked"
    prepare_out_dir(marked, overwrite=False)
    exports.write_exports(marked, summary, metrics, parquet=False)
    exports.write_exports(marked, summary, metrics, parquet=True)
    assert not (marked / CURVES_CSV).exists()
    assert CURVES_CSV not in read_marker(marked)["files"]
