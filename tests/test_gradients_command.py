"""`python -m pgjax.gradients`: a run's estimators on the same episodes, the paired bootstrap, refusals."""

from __future__ import annotations

import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pgjax.algo.gradients import compared_weightings, estimator_statistics
from pgjax.commands import gradients
from pgjax.commands.train import main as train_main
from pgjax.results import gradient_stats
from pgjax.running.run_folder import loading
from pgjax.running.run_folder.files import SUMMARY_FILE

from .test_startup import _run

TINY_RUN = ["--num-seeds", "1", "--num-updates", "5", "--episodes-per-update", "2", "--hidden", "8", "--quiet"]
SMALL = ["--episodes", "16", "--reference-batches", "2", "--resamples", "300", "--seed", "3"]


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A tiny CartPole run folder: one seed of 5 updates of a network of 8 units."""
    out = tmp_path_factory.mktemp("gradients") / "run"
    assert train_main([*TINY_RUN, "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def measured(run_folder):
    """The command's gradients.json on the tiny run (--episodes 16, --reference-batches 2)."""
    assert gradients.main([str(run_folder), *SMALL]) == 0
    return json.loads((run_folder / "gradients.json").read_text())


def test_json_holds_every_weighting_with_its_statistics(run_folder, measured):
    config = loading.load_run_config(run_folder, 0)
    names = [entry["name"] for entry in measured["weightings"]]
    assert names == list(compared_weightings(config, learned=False)) and names[0] == "run"
    assert {k: measured[k] for k in ("env", "run", "seed", "episodes", "baseline_weighting")} == {
        "env": "CartPole-v1", "run": 0, "seed": 3, "episodes": 16, "baseline_weighting": "run"}
    assert measured["reference"] == {"weighting": "reward_to_go", "batches": 2, "episodes": 32}
    assert measured["bootstrap"]["resamples"] == 300 and measured["bootstrap"]["confidence"] == 0.95
    for entry in measured["weightings"]:
        assert set(entry) == {"name", *gradient_stats.STATISTICS}
        for statistic in gradient_stats.STATISTICS:
            assert set(entry[statistic]) == {"point", "ci95"} and len(entry[statistic]["ci95"]) == 2
        assert entry["episode_variance"]["point"] > 0 and -1 <= entry["cosine"]["point"] <= 1
    run = measured["weightings"][0]
    assert run["variance_ratio"] == {"point": 1.0, "ci95": [1.0, 1.0]}
    assert run["variance_difference"] == {"point": 0.0, "ci95": [0.0, 0.0]}
    assert (run_folder / "gradients.png").read_bytes().startswith(b"\x89PNG")


def test_intervals_contain_their_point_estimates(measured):
    for entry in measured["weightings"]:
        for statistic in ("episode_variance", "variance_difference", "variance_ratio"):
            low, high = entry[statistic]["ci95"]
            point = entry[statistic]["point"]
            assert low - 1e-9 * abs(point) <= point <= high + 1e-9 * abs(point), (entry["name"], statistic)
        # the squared error's and cosine's percentile intervals are shifted by the resampling's noise
        # (`paired_statistics`' docstring): ordered and in range, not necessarily around the point
        assert -1 <= entry["cosine"]["ci95"][0] <= entry["cosine"]["ci95"][1] <= 1
        assert 0 <= entry["squared_error"]["ci95"][0] <= entry["squared_error"]["ci95"][1]


def test_points_are_the_estimators_statistics_of_those_episodes(run_folder, measured):
    config = loading.load_run_config(run_folder, 0)
    key = jax.random.key(3)
    names, grads, reference, returns = gradient_stats.measure_gradients(
        config, loading.load_params(run_folder, 0), jax.random.fold_in(key, 0), jax.random.fold_in(key, 1), 16, 2)
    assert grads.shape == (len(names), 16, measured["parameters"]) and returns.shape == (16,)
    assert measured["mean_return"] == pytest.approx(returns.mean())
    assert not np.allclose(grads[1], grads[2])  # the weightings differ on the same episodes
    for w, entry in enumerate(measured["weightings"]):
        stats = estimator_statistics(jnp.asarray(grads[w]), jnp.asarray(reference))
        assert entry["episode_variance"]["point"] == pytest.approx(float(stats.episode_variance), rel=1e-4)
        assert entry["cosine"]["point"] == pytest.approx(float(stats.cosine), rel=1e-4, abs=1e-6)
        assert entry["squared_error"]["point"] == pytest.approx(float(stats.squared_error), rel=1e-4)


def test_counts_resample_the_episodes_as_indices_do(monkeypatch):
    rng = np.random.default_rng(0)
    grads, reference = rng.normal(size=(2, 12, 5)), rng.normal(size=5)
    counts = gradient_stats.resample_counts(12, 50, seed=1)
    assert counts.shape == (50, 12) and np.all(counts.sum(axis=1) == 12)
    indices = np.repeat(np.arange(12), counts[7].astype(int))  # draw 7's episodes, as indices
    draws = gradient_stats.bootstrap_draws(grads, reference, counts)
    monkeypatch.setattr(gradient_stats, "DRAW_BLOCK_NUMBERS", 7)  # the draws a block at a time: the same
    blocked = gradient_stats.bootstrap_draws(grads, reference, counts)
    for name in gradient_stats.STATISTICS:
        np.testing.assert_allclose(blocked[name], draws[name], rtol=1e-12)
    for w in range(2):
        resampled = estimator_statistics(jnp.asarray(grads[w][indices]), jnp.asarray(reference))
        assert draws["episode_variance"][7, w] == pytest.approx(float(resampled.episode_variance), rel=1e-5)
        assert draws["squared_error"][7, w] == pytest.approx(float(resampled.squared_error), rel=1e-5)


def test_the_bootstrap_is_paired_by_episode():
    """Estimator 1 is twice estimator 0 episode by episode: on every paired draw its variance is exactly 4 times
    the other's, so the paired interval of the ratio is [4, 4]; drawn apart, the episodes' noise widens it."""
    rng = np.random.default_rng(0)
    base = rng.standard_t(3, size=(40, 6))
    grads, reference = np.stack([base, 2 * base]), rng.normal(size=6)
    paired = gradient_stats.paired_statistics(grads, reference, baseline=0, reps=500)
    np.testing.assert_allclose([paired["variance_ratio"]["low"][1], paired["variance_ratio"]["high"][1]], 4.0)
    np.testing.assert_allclose(paired["variance_difference"]["low"][1],
                               3 * paired["episode_variance"]["low"][0], rtol=1e-9)
    apart = [gradient_stats.bootstrap_draws(grads[[w]], reference, gradient_stats.resample_counts(40, 500, seed=w))
             for w in range(2)]
    ratio = apart[1]["episode_variance"][:, 0] / apart[0]["episode_variance"][:, 0]
    low, high = np.quantile(ratio, [0.025, 0.975])
    assert high - low > 1.0  # unpaired: far from one value


def test_out_writes_exactly_there_and_over_no_users_file(run_folder, tmp_path, capsys):
    out, figure = tmp_path / "mine.json", tmp_path / "mine.png"
    assert gradients.main([str(run_folder), "--episodes", "8", "--reference-batches", "1", "--resamples", "20",
                           "--out", str(out), "--figure", str(figure)]) == 0
    assert json.loads(out.read_text())["episodes"] == 8 and figure.stat().st_size > 0
    capsys.readouterr()
    users = tmp_path / "users.json"
    users.write_text('{"mine": 1}')
    assert gradients.main([str(run_folder), *SMALL, "--out", str(users)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --out {users} is an existing file") and err.count("\n") == 1
    assert users.read_text() == '{"mine": 1}'


BAD_INPUT = [
    ["/no/such/folder"], ["{run}", "--episodes", "1"], ["{run}", "--run", "5"], ["{run}", "--reference-batches", "0"],
    ["{run}", "--resamples", "0"], ["{run}", "--figure", "{tmp}/figure.txt"], ["{run}", "--out", "/no/such/dir/g.json"],
    ["{run}", "--out", "{tmp}/same.png", "--figure", "{tmp}/same.png"], [], ["{run}", "--episodes"],
]


@pytest.mark.parametrize("argv", BAD_INPUT)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(argv, run_folder, tmp_path, capsys):
    folder = tmp_path / "copy"
    shutil.copytree(run_folder, folder, ignore=shutil.ignore_patterns("gradients.*"))
    before = sorted(p.name for p in folder.iterdir())
    argv = [a.format(tmp=tmp_path, run=folder) for a in argv]
    assert gradients.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert sorted(p.name for p in folder.iterdir()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy"]


def test_episodes_beyond_the_free_memory_are_refused_before_any_work(run_folder, tmp_path, monkeypatch, capsys):
    from pgjax.running import devices

    folder = tmp_path / "copy"
    shutil.copytree(run_folder, folder, ignore=shutil.ignore_patterns("gradients.*"))
    monkeypatch.setattr(devices, "host_available_bytes", lambda: 10**6)
    assert gradients.main([str(folder), "--episodes", "1024"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --episodes 1,024 of a policy of 58 parameters would need about ") and \
        err.count("\n") == 1, err
    assert not (folder / "gradients.json").exists()


def test_a_learned_baseline_is_refused_in_one_line(run_folder, tmp_path, capsys):
    folder = tmp_path / "learned"
    shutil.copytree(run_folder, folder, ignore=shutil.ignore_patterns("gradients.*"))
    summary = json.loads((folder / SUMMARY_FILE).read_text())
    summary["runs"][0]["hyperparameters"]["baseline"] = "value"
    (folder / SUMMARY_FILE).write_text(json.dumps(summary))
    assert gradients.main([str(folder), *SMALL]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: run 0 weights by a learned value") and err.count("\n") == 1, err
    assert not (folder / "gradients.json").exists()


def test_help_answers_before_importing_jax():
    report, output = _run("pgjax.gradients", ["--help"])
    assert report == {"jax": False, "flax": False, "code": 0}, output
    assert "--reference-batches" in output
