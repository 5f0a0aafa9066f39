"""Run folders written by pgjax 0.2, whose static settings hold the fast-path knobs `gradient_block_rows` and
`feature_major_backward` (now `pgjax.algo.config.FastPaths`), still load, evaluate and resume."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from pgjax.algo.config import LEGACY_STATIC, Config, StaticConfig
from pgjax.commands import evaluate, train
from pgjax.running.run_folder import loading

SMALL = ["--num-seeds", "2", "--num-updates", "4", "--episodes-per-update", "2", "--hidden", "8", "--quiet"]
LEGACY = {"gradient_block_rows": None, "feature_major_backward": None}


def _as_written_by_0_2(folder):
    """Put the 0.2 knobs into config.json's grid and summary.json's runs, as 0.2 wrote them."""
    config = json.loads((folder / "config.json").read_text())
    for point in config["grid"]:
        point["config"]["static"].update(LEGACY)
    (folder / "config.json").write_text(json.dumps(config))
    summary_file = folder / "summary.json"
    if summary_file.exists():
        summary = json.loads(summary_file.read_text())
        for run in summary["runs"]:
            run["hyperparameters"].update(LEGACY)
        summary_file.write_text(json.dumps(summary))


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    folder = tmp_path_factory.mktemp("legacy") / "run"
    assert train.main([*SMALL, "--checkpoint-every", "2", "--out", str(folder)]) == 0
    return folder


def test_the_knobs_left_the_config_and_are_dropped_where_a_config_is_read():
    assert set(LEGACY_STATIC) == set(LEGACY) and not set(LEGACY) & {f for f in StaticConfig.__dataclass_fields__}
    data = Config().to_dict()
    data["static"].update({"gradient_block_rows": 256, "feature_major_backward": True})
    assert Config.from_dict(data) == Config()


def test_a_0_2_folder_loads_and_evaluates(finished, tmp_path, capsys):
    folder = tmp_path / "run"
    shutil.copytree(finished, folder)
    _as_written_by_0_2(folder)
    assert loading.load_run_config(folder, 1) == loading.load_run_config(finished, 1)
    capsys.readouterr()
    assert evaluate.main([str(folder), "--episodes", "2"]) == 0


def test_a_0_2_folder_resumes_to_the_same_results(finished, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(finished, folder)
    for name in ("summary.json", "metrics.npz", "params.msgpack"):
        (folder / name).unlink()
    _as_written_by_0_2(folder)
    assert train.main(["--resume", str(folder), "--quiet"]) == 0
    want, got = loading.load_metrics(finished), loading.load_metrics(folder)
    for a, b in zip(want, got):
        for name in a:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)
