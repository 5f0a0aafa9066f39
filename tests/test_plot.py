"""Learning curves: the shared env-steps grid, the bands, the PNG, run folders and the CLI."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pgjax.commands import plot
from pgjax.commands.train import main as train_main
from pgjax.results import plots
from pgjax.results.stats import iqm
from pgjax.running import grid
from pgjax.running.run_folder import files, loading
from pgjax.running.run_folder.files import CONFIG_FILE, SUMMARY_FILE

SMALL_SWEEP = ["--num-seeds", "2", "--lr", "0.01", "0.03", "--num-updates", "10", "--episodes-per-update", "2",
               "--hidden", "8", "--quiet"]


def small_run_folder(tmp_path_factory) -> Path:
    """A run folder of the training command, made once per session: 2 learning rates x 2 seeds, 10 updates."""
    out = tmp_path_factory.getbasetemp() / "small_sweep"
    if not (out / SUMMARY_FILE).exists():
        assert train_main([*SMALL_SWEEP, "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def run_folder(tmp_path_factory):
    return small_run_folder(tmp_path_factory)


def synthetic_curve(runs: int, updates: int, seed: int) -> dict:
    """Runs that learn CartPole-like: returns rise from ~20 to ~500, env steps add up 8 episodes per update."""
    rng = np.random.default_rng(seed)
    onset = rng.uniform(20, 50, (runs, 1))
    returns = np.clip(20 + 480 / (1 + np.exp(-(np.arange(updates) - onset) / 5)) + rng.normal(0, 25, (runs, updates)),
                      9, 500)
    return {"env_steps": np.cumsum(8 * returns, axis=1), "returns": returns}


def test_runs_are_interpolated_onto_a_shared_grid_without_extrapolation():
    env_steps = np.array([[10.0, 20, 30], [15, 25, 40]])
    returns = np.array([[1.0, 2, 3], [0, 10, 25]])
    grid, values = plots.curve_on_grid(env_steps, returns, points=4)
    np.testing.assert_allclose(grid, [15, 20, 25, 30])  # from the latest first update to the earliest end
    np.testing.assert_allclose(values, [[1.5, 2, 2.5, 3], [0, 5, 10, 15]])
    grid, values = plots.curve_on_grid(np.array([[5.0], [7.0]]), np.array([[1.0], [3.0]]))
    assert grid.tolist() == [5.0] and values.tolist() == [[1.0], [3.0]]  # one update each: one point
    with pytest.raises(ValueError):
        plots.curve_on_grid(env_steps, returns[:, :2])


def test_band_is_the_statistic_over_runs_with_a_bootstrap_interval():
    values = np.random.default_rng(0).normal(size=(16, 5)) + np.arange(5)
    centre, low, high = plots.curve_band(values, "iqm")
    np.testing.assert_allclose(centre, [iqm(values[:, g]) for g in range(5)])
    assert np.all(low < centre) and np.all(centre < high) and np.all(high - low < 2)
    centre, low, high = plots.curve_band(values, "mean")
    np.testing.assert_allclose(centre, values.mean(axis=0))
    assert plots.curve_band(values[:1], "iqm")[1:] == (None, None)


def test_plot_curves_writes_a_png(tmp_path):
    curves = [
        {"label": "lr=0.03", **synthetic_curve(32, 60, 0)},
        {"label": "lr=0.01", **synthetic_curve(8, 60, 1)},
        {"label": "one run", **synthetic_curve(1, 60, 2)},
    ]
    path = plots.plot_curves(curves, tmp_path / "curves.png", threshold=475.0, title="synthetic", statistic="iqm")
    assert path == tmp_path / "curves.png" and path.stat().st_size > 20_000
    with Image.open(path) as image:
        width, height = image.size
        assert 600 < width <= 800 and 400 < height <= 500  # 8 x 5 inches at 100 dpi, cropped to content
        colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
    assert colours is not None and len(colours) > 50  # lines, bands and text, not a blank canvas
    with pytest.raises(ValueError):
        plots.plot_curves([], tmp_path / "none.png")


def test_labels_name_the_settings_that_differ():
    settings = [{"lr": 0.01, "gamma": 1.0, "hidden": [32]}, {"lr": 0.03, "gamma": 1.0, "hidden": [32, 32]}]
    assert grid.varied_settings(settings) == ["lr", "hidden"]
    assert grid.varied_settings(settings[:1]) == []
    # a tuple equals the list JSON makes of it; a setting one dict lacks differs
    assert grid.varied_settings([{"hidden": (32,)}, {"hidden": [32]}]) == []
    assert grid.varied_settings([{"lr": 0.1}, {"lr": 0.1, "gamma": 0.9}]) == ["gamma"]


def test_runs_of_different_environments_are_not_overlaid(run_folder, tmp_path):
    other = tmp_path / "other_env"
    shutil.copytree(run_folder, other)
    summary = loading.load_summary(other)
    files.write_json(other / SUMMARY_FILE, {**summary, "env": "Acrobot-v1"})
    with pytest.raises(ValueError, match="different environments: CartPole-v1 .*, Acrobot-v1 ") as error:
        plots.plot_folders([run_folder, other], tmp_path / "mixed.png")
    assert "\n" not in str(error.value) and not (tmp_path / "mixed.png").exists()


def test_an_interrupted_or_missing_folder_says_what_to_do(run_folder, tmp_path, capsys):
    interrupted = tmp_path / "interrupted"
    interrupted.mkdir()
    shutil.copy(run_folder / CONFIG_FILE, interrupted)
    (interrupted / "checkpoints").mkdir()
    loaders = (loading.load_summary, loading.load_metrics, loading.load_params, lambda d: plots.group_curves([d]))
    for load in loaders:
        with pytest.raises(ValueError, match=f"interrupted run .*python -m pgjax.train --resume {interrupted}$"):
            load(interrupted)
        with pytest.raises(ValueError, match="missing"):
            load(tmp_path / "no_such_run")
    with pytest.raises(ValueError, match="holds no run"):
        loading.load_summary(tmp_path)
    assert plot.main([str(tmp_path / "no_such_run")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'no_such_run'} is missing: no such folder\n"
    assert plot.main([str(interrupted)]) == 2
    assert f"--resume {interrupted}\n" in capsys.readouterr().err


def test_plot_run_draws_every_group_of_a_folder_best_first(run_folder):
    curves, thresholds = plots.group_curves([run_folder])
    ranking = loading.load_summary(run_folder)["ranking"]["groups"]
    labels = {0: "learning_rate=0.01", 1: "learning_rate=0.03"}
    assert [c["label"] for c in curves] == [labels[g] for g in ranking]
    assert thresholds == {"CartPole-v1": 475.0}
    group = loading.load_group_metrics(run_folder, 1)
    np.testing.assert_array_equal(curves[ranking.index(1)]["returns"], group["episode_return"])
    assert curves[ranking.index(1)]["env_steps"].shape == (2, 10)
    path = plots.plot_run(run_folder)
    assert path == run_folder / "learning_curves.png" and path.stat().st_size > 20_000
    curves, _ = plots.group_curves([run_folder, run_folder])
    # several folders: named, the folders' best first in turn
    assert [c["label"] for c in curves] == [f"{run_folder.name}: {labels[g]}" for g in ranking for _ in range(2)]


def test_labels_across_folders_name_what_differs_between_them():
    a, b = Path("runs/a"), Path("runs/b")
    curves = plots.label_curves([{"run_dir": a, "hyperparameters": {"learning_rate": 0.01, "gamma": 1.0}},
                                 {"run_dir": b, "hyperparameters": {"learning_rate": 0.03, "gamma": 1.0}}], True)
    assert [c["label"] for c in curves] == ["a: learning_rate=0.01", "b: learning_rate=0.03"]


def test_many_curves_draw_the_best_few_and_the_envelope_of_the_others(tmp_path, monkeypatch):
    curves = [{"label": f"lr={k}", **synthetic_curve(4, 30, k)} for k in range(12)]
    drawn = []
    monkeypatch.setattr(plots, "_draw_envelope", lambda ax, others, *args: drawn.append(len(others)))
    plots.plot_curves(curves, tmp_path / "many.png", top=3)
    assert drawn == [9]
    monkeypatch.undo()
    path = plots.plot_curves(curves, tmp_path / "many.png", top=3)
    assert path.stat().st_size > 20_000


def test_cli_overlays_folders(run_folder, tmp_path, capsys):
    out = tmp_path / "both.png"
    assert plot.main([str(run_folder), str(run_folder), "--out", str(out), "--statistic", "mean"]) == 0
    assert out.stat().st_size > 20_000 and str(out) in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["/no/such/folder"], ["{tmp}"], ["{run}", "--out", "/no/such/dir/x.png"], []])
def test_cli_bad_input_is_one_line_and_exit_2(argv, run_folder, tmp_path, capsys):
    assert plot.main([a.format(tmp=tmp_path, run=run_folder) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_cli_bad_input_has_no_traceback(tmp_path):
    done = subprocess.run([sys.executable, "-m", "pgjax.plot", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr == f"error: {tmp_path} holds no run (no summary.json)\n"


def test_the_envelope_runs_from_the_lowest_to_the_highest_curve_where_each_has_data():
    class Axes:
        def fill_between(self, x, low, high, **kwargs):
            self.drawn = (x, low, high)

    steps = np.array([[0.0, 10.0, 20.0]])
    curves = [{"env_steps": steps, "returns": np.ones((1, 3))},
              {"env_steps": steps, "returns": np.full((1, 3), 3.0)},
              {"env_steps": steps / 2, "returns": np.full((1, 3), 5.0)}]  # a shorter curve: up to 10 steps
    ax = Axes()
    plots._draw_envelope(ax, curves, "iqm", 11, "others")
    x, low, high = ax.drawn
    np.testing.assert_array_equal(low, np.ones_like(x))
    np.testing.assert_array_equal(high, np.where(x <= 10.0, 5.0, 3.0))
