"""Run folders written by earlier versions still load, evaluate and resume: 0.2's, whose static settings hold the
fast-path knobs `gradient_block_rows` and `feature_major_backward` (now `pgjax.algo.config.FastPaths`), and 1.0's
interrupted --distributed runs, whose checkpoints hold every run once per process."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from pgjax.algo.config import LEGACY_STATIC, Config, StaticConfig
from pgjax.commands import evaluate, train
from pgjax.running.run_folder import files, loading

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


def _checkpoint_copied(folder, copies: int, change=None) -> None:
    """Rewrite chunk 0's checkpoint with every run `copies` times, as pgjax 1.0's --distributed processes wrote
    it (`change(array)` alters the last copy)."""
    import jax

    from pgjax.running.run_folder.checkpoints import ChunkCheckpoints

    chunk = folder / "checkpoints" / "chunk-0000"
    saved = ChunkCheckpoints(chunk)
    step = saved.latest()
    raw = saved._manager.restore(step, args=saved._ocp.args.StandardRestore())
    saved.close()
    shutil.rmtree(chunk / str(step))

    def copied(x):
        x = np.asarray(x)
        last = change(x.copy()) if change is not None else x
        return np.concatenate([x] * (copies - 1) + [last])

    again = ChunkCheckpoints(chunk)
    again.save(step, jax.tree.map(copied, raw["state"]), jax.tree.map(copied, raw["metrics"]))
    again.close()


def test_a_1_0_distributed_checkpoint_of_every_run_twice_resumes_and_differing_copies_are_refused(finished, tmp_path,
                                                                                                   capsys):
    """pgjax 1.0's --distributed runs saved every run once per process (each gathered a NumPy copy again): an
    interrupted one resumes from the first copy, to the same results; copies that differ are a damaged folder."""
    folder = tmp_path / "run"
    shutil.copytree(finished, folder)
    for name in ("summary.json", "metrics.npz", "params.msgpack"):
        (folder / name).unlink()
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    _checkpoint_copied(folder, 2)
    assert train.main(["--resume", str(folder), "--quiet"]) == 0
    want, got = loading.load_metrics(finished), loading.load_metrics(folder)
    for a, b in zip(want, got):
        for name in a:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert files.jsonable(loading.load_params(folder)) == files.jsonable(loading.load_params(finished))

    def perturb(x):
        x.flat[0] = not x.flat[0] if x.dtype == bool else (x.flat[0] + 1 if x.flat[0] == 0 else 0)
        return x

    _checkpoint_copied(broken, 2, perturb)
    capsys.readouterr()
    assert train.main(["--resume", str(broken), "--quiet"]) == 2
    assert capsys.readouterr().err == (f"error: {broken}/config.json does not match its checkpoints (chunk 0 has 4 "
                                       "runs, the plan 2); the folder was edited or damaged\n")
    assert not (broken / "summary.json").exists()
