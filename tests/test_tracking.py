"""Experiment tracking: per-group curves from segment reports, TensorBoard event files, W&B offline runs."""

from __future__ import annotations

import dataclasses
import glob
import importlib.util
import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from pgjax.algo.trainer import Metrics
from pgjax.commands import options
from pgjax.commands.train import main, parse_args
from pgjax.results import trackers, tracking
from pgjax.results.stats import iqm
from pgjax.running import grid
from pgjax.running.run_folder import loading
from pgjax.running.run_folder.files import CONFIG_FILE, MARKER_FILE, prepare_out_dir, read_marker
from pgjax.running.sweep import Chunk, SegmentReport

from .conftest import small_config

NUM_SEEDS, NUM_UPDATES = 3, 6
# 2 groups x 3 seeds in chunks of 2 runs: each group spans two chunks; 2 segments per chunk
SMALL = ["--num-seeds", str(NUM_SEEDS), "--num-updates", str(NUM_UPDATES), "--episodes-per-update", "2",
         "--hidden", "8", "--lr", "0.01", "0.02", "--max-parallel", "2", "--checkpoint-every", "3", "--quiet"]


def fake_metrics(rng: np.random.Generator, runs: int, updates: int) -> Metrics:
    """Metrics [runs, updates] with distinct values (episodes of 10 to 30 steps, 2 per update)."""
    lengths = rng.integers(10, 30, (runs, updates, 2))
    return Metrics(
        episode_return=lengths.mean(-1).astype(np.float32), episode_length=lengths.mean(-1).astype(np.float32),
        episodes=np.full((runs, updates), 2, np.int32), env_steps=np.cumsum(lengths.sum(-1), 1).astype(np.int32),
        loss=rng.normal(size=(runs, updates)).astype(np.float32),
        entropy=rng.uniform(0, 0.7, (runs, updates)).astype(np.float32),
        grad_norm=np.ones((runs, updates), np.float32), episode_returns=lengths.astype(np.float32),
        loop_steps=lengths.max(-1).astype(np.int32), diverged=rng.uniform(size=(runs, updates)) < 0.2,
        value_loss=np.zeros((runs, updates), np.float32), explained_variance=np.zeros((runs, updates), np.float32))


def reports(metrics: Metrics, chunk_size: int, segment: int) -> list[SegmentReport]:
    """The reports of training `metrics`' runs in chunks of `chunk_size`, `segment` updates at a time."""
    runs, updates = metrics.env_steps.shape
    out = []
    for index, start in enumerate(range(0, runs, chunk_size)):
        chunk = Chunk(index, 0, np.arange(start, min(start + chunk_size, runs)), chunk_size)
        for first in range(0, updates, segment):
            last = min(first + segment, updates)
            part = Metrics(**{name: np.asarray(getattr(metrics, name))[chunk.positions, first:last]
                              for name in Metrics.names(metrics.gradient_snr is not None)})
            out.append(SegmentReport(chunk, -(-runs // chunk_size), last, updates, last - first, 100, 0.5, 0.0,
                                     metrics=part))
    return out


@pytest.fixture(scope="module")
def two_points():
    return grid.expand_grid(small_config(), numeric_values={"learning_rate": [0.01, 0.02]})


def collect(points, metrics, chunk_size, segment) -> dict[int, list[tuple[int, trackers.GroupCurve]]]:
    """Each group's curves, with the index of the report that completed each."""
    curves = tracking.GroupCurves(points, num_seeds=4)
    found: dict[int, list] = {0: [], 1: []}
    for k, report in enumerate(reports(metrics, chunk_size, segment)):
        for group, curve in curves.add(report):
            found[group].append((k, curve))
    return found


def joined(curves: list[tuple[int, trackers.GroupCurve]], tag: str) -> np.ndarray:
    return np.concatenate([c.values[tag] for _, c in curves])


def test_group_curves_are_statistics_over_the_groups_runs(two_points):
    metrics = fake_metrics(np.random.default_rng(0), 8, 7)
    found = collect(two_points, metrics, chunk_size=8, segment=3)
    for group in (0, 1):
        rows = slice(4 * group, 4 * group + 4)
        returns = metrics.episode_return[rows].astype(np.float64)
        assert [k for k, _ in found[group]] == [0, 1, 2]  # logged after every segment, while training
        np.testing.assert_array_equal(np.concatenate([c.update for _, c in found[group]]), np.arange(1, 8))
        np.testing.assert_allclose(joined(found[group], "return/iqm"), iqm(returns, axis=0))
        np.testing.assert_allclose(joined(found[group], "return/mean"), returns.mean(0))
        np.testing.assert_allclose(joined(found[group], "return/q25"), np.percentile(returns, 25, axis=0))
        np.testing.assert_allclose(joined(found[group], "return/q75"), np.percentile(returns, 75, axis=0))
        np.testing.assert_allclose(joined(found[group], "loss/mean"), metrics.loss[rows].astype(np.float64).mean(0))
        np.testing.assert_allclose(joined(found[group], "diverged/fraction"), metrics.diverged[rows].mean(0))
        np.testing.assert_allclose(np.concatenate([c.env_steps for _, c in found[group]]),
                                   metrics.env_steps[rows].mean(0))
        assert [list(c.speed) for _, c in found[group]] == [[3], [6], [7]]
        assert all(v == 200.0 for _, c in found[group] for v in c.speed.values())


def test_a_group_over_several_chunks_is_logged_when_its_last_runs_train(two_points):
    """Chunks of 3 runs: group 0 (runs 0-3) is complete once chunk 1 trains, group 1 (4-7) once chunk 2 does."""
    metrics = fake_metrics(np.random.default_rng(1), 8, 7)
    whole, split = collect(two_points, metrics, 8, 3), collect(two_points, metrics, 3, 3)
    assert [k for k, _ in split[0]] == [3, 4, 5]  # reports 3-5 are chunk 1's segments
    assert [k for k, _ in split[1]] == [6, 7, 8]  # reports 6-8 are chunk 2's
    for group in (0, 1):
        for tag in whole[group][0][1].values:
            np.testing.assert_allclose(joined(split[group], tag), joined(whole[group], tag))
        # two chunks trained the group's runs at 100 steps in 0.5 s each: still 200 steps per second
        assert all(v == 200.0 for _, c in split[group] for v in c.speed.values())


def test_gradient_statistics_are_logged_as_medians_over_the_groups_runs(two_points):
    """With --gradient-stats the curves carry each statistic's median over the group's runs (NaNs left out),
    also for a group spread over several chunks."""
    rng = np.random.default_rng(2)
    metrics = fake_metrics(rng, 8, 7)
    cosine = rng.uniform(-1, 1, (8, 7)).astype(np.float32)
    cosine[:, 0] = np.nan  # no previous update
    metrics = metrics.replace(gradient_variance=rng.uniform(0, 1, (8, 7)).astype(np.float32),
                              gradient_snr=rng.uniform(0, 5, (8, 7)).astype(np.float32), gradient_cosine=cosine)
    for chunk_size in (8, 2):
        found = collect(two_points, metrics, chunk_size=chunk_size, segment=3)
        for group in (0, 1):
            rows = slice(4 * group, 4 * group + 4)
            for name in ("gradient_variance", "gradient_snr"):
                np.testing.assert_allclose(joined(found[group], f"{name}/median"),
                                           np.median(getattr(metrics, name)[rows].astype(np.float64), axis=0))
            logged = joined(found[group], "gradient_cosine/median")
            assert np.isnan(logged[0])
            np.testing.assert_allclose(logged[1:], np.median(cosine[rows, 1:].astype(np.float64), axis=0))
    plain = collect(two_points, fake_metrics(rng, 8, 7), chunk_size=8, segment=3)
    assert not any(tag.startswith("gradient") for _, curve in plain[0] for tag in curve.values)


def test_a_failing_tracker_is_dropped_with_a_warning(two_points, capsys):
    class Failing:
        def log_segment(self, group, curve):
            raise RuntimeError("disk full")

        def log_final(self, summary):
            raise AssertionError("dropped trackers are not called again")

    state = tracking.Tracking([Failing()], two_points, 4)
    for report in reports(fake_metrics(np.random.default_rng(2), 8, 2), 8, 2):
        state.log_segment(report)
    state.log_final({})
    assert state.trackers == []
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Failing failed (RuntimeError: disk full)" in err[0]


def test_the_tensorboard_flag_takes_an_optional_folder():
    assert options.run_options(parse_args(["--tensorboard"])).tensorboard == ""
    assert options.run_options(parse_args(["--tensorboard", "tb", "--quiet"])).tensorboard == "tb"
    assert options.run_options(parse_args([])).tensorboard is None
    with pytest.raises(ValueError, match="at most one folder"):
        options.run_options(parse_args(["--tensorboard", "a", "b"]))
    assert options.run_options(parse_args(["--wandb", "proj"])).wandb == "proj"


@pytest.mark.parametrize("flag", [["--tensorboard"], ["--wandb", "proj"]])
def test_a_missing_package_is_one_line_naming_the_extra(flag, tmp_path, monkeypatch, capsys):
    option = flag[0][2:]
    monkeypatch.setitem(tracking.REQUIRED, option, (("pgjax_no_such_module",), option))
    out = tmp_path / "run"
    assert main([*SMALL, *flag, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: --{option} needs pgjax_no_such_module: pip install 'pgjax[{option}]'"]
    assert not out.exists()


def test_a_tracker_that_cannot_start_is_one_line_and_leaves_no_run_folder(tmp_path, capsys):
    """--tensorboard naming a file: the run folder made for the command is removed again, exit 2."""
    blocker = tmp_path / "events"
    blocker.write_text("a file where the folder should be")
    out = tmp_path / "run"
    assert main([*SMALL, "--tensorboard", str(blocker), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --tensorboard could not start: "), err
    assert not out.exists()
    deeper = tmp_path / "new" / "deeper" / "run"  # the parents the command made go too
    assert main([*SMALL, "--tensorboard", str(blocker), "--out", str(deeper)]) == 2
    assert not (tmp_path / "new").exists()
    kept = tmp_path / "mine"  # a folder of the user's: only what the command wrote goes
    kept.mkdir()
    (kept / "notes.txt").write_text("the user's")
    assert main([*SMALL, "--tensorboard", str(blocker), "--out", str(kept)]) == 2
    assert [p.name for p in kept.iterdir()] == ["notes.txt"]


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """One small sweep with --tensorboard (its default folder) and, where wandb is installed, --wandb offline."""
    pytest.importorskip("tensorboardX")
    pytest.importorskip("tensorboard")
    out = tmp_path_factory.mktemp("tracking") / "run"
    with_wandb = importlib.util.find_spec("wandb") is not None
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WANDB_MODE", "offline")
        patch.setenv("WANDB_SILENT", "true")
        flags = ["--wandb", "pgjax-tests"] if with_wandb else []
        assert main([*SMALL, "--tensorboard", *flags, "--out", str(out)]) == 0
    return out


def accumulator(path: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(path))
    events.Reload()
    return events


def test_tensorboard_curves_read_back(tracked):
    assert json.loads((tracked / CONFIG_FILE).read_text())["run"]["tensorboard"] == str(tracked / "tensorboard")
    summary = loading.load_summary(tracked)
    for group in summary["groups"]:
        events = accumulator(tracked / "tensorboard" / f"group{group['index']}")
        tags = events.Tags()["scalars"]
        assert {*trackers.RETURN_TAGS, "loss/mean", "entropy/mean", "diverged/fraction", trackers.SPEED_TAG,
                "final/return_iqm", "final/solved_fraction"} <= set(tags)
        metrics = loading.load_group_metrics(tracked, group["index"])
        mean = events.Scalars("return/mean")
        assert [s.step for s in mean] == np.rint(metrics["env_steps"].mean(0)).astype(int).tolist()
        np.testing.assert_allclose([s.value for s in mean], metrics["episode_return"].mean(0), rtol=1e-6)
        np.testing.assert_allclose([s.value for s in events.Scalars("return/iqm")],
                                   iqm(metrics["episode_return"], axis=0), rtol=1e-6)
        np.testing.assert_allclose([s.value for s in events.Scalars("entropy/mean")],
                                   metrics["entropy"].astype(np.float64).mean(0), rtol=1e-6)
        assert len(events.Scalars(trackers.SPEED_TAG)) == 2  # one per segment: updates 3 and 6
        final = events.Scalars("final/return_iqm")
        assert len(final) == 1 and final[0].value == pytest.approx(group["statistics"]["iqm"], rel=1e-6)


def test_tensorboard_hparams_hold_each_groups_settings(tracked):
    from tensorboard.plugins.hparams import plugin_data_pb2

    summary = loading.load_summary(tracked)
    for group in summary["groups"]:
        content = accumulator(tracked / "tensorboard" / f"group{group['index']}").PluginTagToContent("hparams")
        start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
        hparams = start.session_start_info.hparams
        assert hparams["learning_rate"].number_value == pytest.approx(group["hyperparameters"]["learning_rate"])
        assert hparams["hidden"].string_value == "8" and hparams["activation"].string_value == "relu"
    top = accumulator(tracked / "tensorboard").PluginTagToContent("hparams")
    experiment = plugin_data_pb2.HParamsPluginData.FromString(top["_hparams_/experiment"]).experiment
    assert "learning_rate" in {info.name for info in experiment.hparam_infos}
    assert {m.name.tag for m in experiment.metric_infos} >= {"final/return_iqm", "final/solved_fraction"}


def wandb_records(path: str) -> list:
    """The records of a .wandb file (a LevelDB-style log of `wandb_internal_pb2.Record`s after a 7-byte header)."""
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B"
    block, position, records, pending = 32768, 7, [], b""
    while position + 7 <= len(data):
        if block - position % block < 7:  # a block's tail too short for a header is padding
            position += block - position % block
            continue
        length, kind = struct.unpack("<HB", data[position + 4:position + 7])
        pending += data[position + 7:position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a whole record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def test_wandb_offline_runs_hold_config_summary_and_table(tracked):
    pytest.importorskip("wandb")
    summary = loading.load_summary(tracked)
    files = sorted(glob.glob(str(tracked / "wandb" / "offline-run-*" / "run-*.wandb")))
    assert len(files) == summary["num_groups"] + 1  # a run per group and the sweep's
    found = {}
    for path in files:
        records = wandb_records(path)
        run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
        config = {item.key: json.loads(item.value_json) for item in run.config.update}
        final = {}
        for record in records:
            if record.WhichOneof("record_type") == "summary":
                final.update({item.key: item.value_json for item in record.summary.update if item.key})
        history = [r for r in records if r.WhichOneof("record_type") == "history"]
        found[run.display_name] = (run, config, final, history, Path(path).parent)
    assert run.run_group == tracked.name
    for group in summary["groups"]:
        run, config, final, history, _ = found[f"{tracked.name}/group{group['index']}"]
        assert run.job_type == "group" and run.project == "pgjax-tests"
        assert config["learning_rate"] == pytest.approx(group["hyperparameters"]["learning_rate"])
        assert config["hidden"] == "8"
        assert json.loads(final["final/return_iqm"]) == pytest.approx(group["statistics"]["iqm"])
        assert len(history) == NUM_UPDATES
    _, config, final, _, folder = found[tracked.name]
    assert config["num_seeds"] == NUM_SEEDS and json.loads(final["num_runs"]) == summary["num_runs"]
    table = json.loads(next((folder / "files" / "media" / "table").glob("runs_*.table.json")).read_text())
    assert len(table["data"]) == summary["num_runs"] and "final_return" in table["columns"]


def test_a_resumed_chunk_logs_its_restored_updates_first(two_points):
    """After a resume the restored updates come in one report (no time): their curve, then the trained ones'."""
    metrics = fake_metrics(np.random.default_rng(3), 8, 7)
    trained = reports(metrics, 8, 3)
    restored = dataclasses.replace(trained[0], seconds=0.0, env_steps=0, restored=True)
    curves = tracking.GroupCurves(two_points, num_seeds=4)
    found = [curve for report in (restored, *trained[1:]) for group, curve in curves.add(report) if group == 0]
    np.testing.assert_array_equal(np.concatenate([c.update for c in found]), np.arange(1, 8))
    assert [list(c.speed) for c in found] == [[], [6], [7]]
    np.testing.assert_allclose(np.concatenate([c.values["return/mean"] for c in found]),
                               metrics.episode_return[:4].astype(np.float64).mean(0))


def test_overwrite_removes_the_trackers_files_and_keeps_the_users(tracked, tmp_path):
    """The marker lists what the trackers wrote; --overwrite deletes that and leaves a user's file beside it."""
    marker = read_marker(tracked)
    assert marker["user_folders"] == [] and marker["folder_files"]["tensorboard"]
    copy = tmp_path / "copy"
    shutil.copytree(tracked, copy, symlinks=True)
    (copy / "tensorboard" / "mine.txt").write_text("the user's")
    prepare_out_dir(copy, overwrite=True)
    left = sorted(p.relative_to(copy).as_posix() for p in copy.rglob("*"))
    assert left == [MARKER_FILE, "tensorboard", "tensorboard/mine.txt"]
