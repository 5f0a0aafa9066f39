"""Confirmation on fresh seeds: the search's best and the reference trained again on seeds it did not tune on."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from rich.console import Console

from pgjax.algo.presets import PRESETS
from pgjax.commands import compare
from pgjax.commands.train import main, parse_args, run, sweep_of
from pgjax.results.comparison import paired_improvement
from pgjax.results.stats import iqm
from pgjax.running.confirm import PLAN_FILE, confirm_dir, confirmation_points, reference_config
from pgjax.running.grid import GridPoint
from pgjax.running.run_folder import loading
from pgjax.running.run_folder.files import CONFIG_FILE, MARKER_FILE, METRICS_FILE, SUMMARY_FILE
from pgjax.running.sweep import Interrupted

from .conftest import StopAt

SMALL = ["--num-seeds", "2", "--num-updates", "25", "--episodes-per-update", "2", "--hidden", "8"]
RANGES = ["--lr", "1e-3:1e-1:log", "--num-samples", "4"]
SEARCH = [*RANGES, "--confirm-top", "2"]  # --confirm-seeds: 16 by default


@pytest.fixture(scope="module")
def confirmed(tmp_path_factory):
    out = tmp_path_factory.mktemp("confirm") / "out"
    printed = io.StringIO()
    run(parse_args([*SMALL, *SEARCH, "--out", str(out)]), console=Console(file=printed, width=300))
    return out, printed.getvalue()


def test_the_best_and_the_reference_train_again_on_seeds_disjoint_from_the_tuning_seeds(confirmed):
    out, printed = confirmed
    summary = loading.load_summary(out)
    confirmation = summary["confirmation"]
    assert confirmation["tuning_seeds"] == [0, 1] and confirmation["seeds"] == [2, 17]
    configurations = confirmation["configurations"]
    ranked = summary["ranking"]["groups"]
    assert [c["tuning_group"] for c in configurations] == [ranked[0], ranked[1], None]
    assert [c["role"] for c in configurations] == ["winner", "runner-up", "reference"]
    assert configurations[2]["varied"] == {"learning_rate": PRESETS["default"].hparams.learning_rate}
    tuning_seeds = {r["seed"] for r in summary["runs"]}
    for c in configurations:
        seeds = [r["seed"] for r in c["runs"]]
        assert seeds == list(range(2, 18)) and not tuning_seeds & set(seeds)
        assert c["hyperparameters"]["hidden"] == [8] and c["hyperparameters"]["num_updates"] == 25
    winner = confirmation["winner"]
    finals = np.array([r["final_return"] for r in configurations[0]["runs"]])
    reference = np.array([r["final_return"] for r in configurations[2]["runs"]])
    assert winner["tuning_group"] == ranked[0] and winner["iqm"] == pytest.approx(iqm(finals))
    assert winner["tuning_iqm"] == summary["groups"][ranked[0]]["statistics"]["iqm"]
    wins = np.mean((finals > reference) + 0.5 * (finals == reference))
    assert winner["probability_of_improvement"]["probability"] == pytest.approx(wins)
    assert winner["probability_of_improvement"]["pairs"] == 16
    assert winner["difference"]["mean"] == pytest.approx(np.mean(finals - reference))
    assert (confirm_dir(out) / PLAN_FILE).is_file()
    # the command's lines: the plan before, the tables after, the tuning figures marked as such
    assert "confirmation: the best 2 configurations (groups " in printed and "x 16 fresh seeds (2-17; tuning " \
                                                                              "seeds 0-1)" in printed
    assert "- tuning seeds 0-1" in printed and "confirmation - fresh seeds 2-17" in printed
    assert f"confirmed: group {ranked[0]} (the tuning's best) IQM " in printed and "P(better) " in printed


def test_compare_reports_the_confirmation_from_its_runs_and_refuses_a_damaged_one(confirmed, tmp_path, capsys):
    out, _ = confirmed
    assert compare.main([str(out), "--out", str(tmp_path / "cmp")]) == 0
    assert "confirmation - fresh seeds 2-17" in capsys.readouterr().out
    written = json.loads((tmp_path / "cmp" / "comparison.json").read_text())["confirmation"][str(out)]
    assert written == loading.load_summary(out)["confirmation"]["winner"]
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for name in (MARKER_FILE, CONFIG_FILE, METRICS_FILE):
        (damaged / name).write_bytes((out / name).read_bytes())
    summary = json.loads((out / SUMMARY_FILE).read_text())
    summary["confirmation"]["configurations"][0]["runs"][0]["seed"] = "two"
    (damaged / SUMMARY_FILE).write_text(json.dumps(summary))
    assert compare.main([str(damaged), "--out", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err.strip()
    assert 'holds a "confirmation" that is not one pgjax writes' in err and len(err.splitlines()) == 1
    assert not (tmp_path / "none").exists()


def test_a_stop_during_the_confirmation_resumes_to_the_uninterrupted_result(confirmed, tmp_path, capsys):
    out, _ = confirmed
    stopped = tmp_path / "stopped"
    # the search is one chunk of 8 runs, 2 segments of 20 updates: poll 3 ends the confirmation's first segment
    with pytest.raises(Interrupted, match="stopped after 20 of 25 updates of chunk 0"):
        run(parse_args([*SMALL, *SEARCH, "--out", str(stopped), "--quiet"]), console=Console(quiet=True),
            stop=StopAt(3))
    assert not (stopped / SUMMARY_FILE).exists() and (confirm_dir(stopped) / "chunk-0000").is_dir()
    plan = confirm_dir(stopped) / PLAN_FILE
    saved = plan.read_text()
    plan.write_text(saved.replace('"first_seed": 2', '"first_seed": 3'))
    assert main(["--resume", str(stopped), "--quiet"]) == 2
    assert "plans another confirmation than the search's results give" in capsys.readouterr().err
    plan.write_text(saved)
    assert main(["--resume", str(stopped), "--quiet"]) == 0
    resumed, whole = loading.load_summary(stopped)["confirmation"], loading.load_summary(out)["confirmation"]
    assert [c["runs"] for c in resumed["configurations"]] == [c["runs"] for c in whole["configurations"]]


def test_the_reference_is_the_preset_where_the_grid_varies_and_is_not_trained_twice():
    default = PRESETS["default"]
    points = sweep_of(parse_args(["--lr", "0.01", "0.02", "--gamma", "0.9", "--hidden", "8", "16"])).points
    reference = reference_config("default", points)
    assert reference.hparams.learning_rate == default.hparams.learning_rate and reference.hparams.gamma == 0.9
    assert reference.static.hidden == default.static.hidden
    confirmation = confirmation_points(points, [3, 1, 0], 2, reference, 100, 4)
    assert confirmation.tuned == [3, 1, None] and confirmation.reference == 2
    assert [p.config for p in confirmation.points] == [points[3].config, points[1].config, reference]
    # a grid holding the preset's own learning rate: that point is the reference, nothing trains twice
    points = sweep_of(parse_args(["--lr", "0.01", str(default.hparams.learning_rate)])).points
    reference = reference_config("default", points)
    assert reference == points[1].config
    confirmation = confirmation_points(points, [1, 0], 2, reference, 100, 4)
    assert confirmation.tuned == [1, 0] and confirmation.reference == 0
    assert [p.index for p in confirmation.points] == [0, 1] and all(isinstance(p, GridPoint)
                                                                    for p in confirmation.points)
    with pytest.raises(ValueError, match="nothing to confirm"):
        confirmation_points(points, [], 2, reference, 100, 4)


def test_paired_improvement_counts_the_seeds_won_ties_half():
    found = paired_improvement(np.array([3.0, 1.0, 2.0, 5.0]), np.array([1.0, 2.0, 2.0, 4.0]))
    assert found["probability"] == pytest.approx((1 + 0 + 0.5 + 1) / 4) and found["pairs"] == 4
    low, high = found["ci95"]
    assert 0 <= low <= found["probability"] <= high <= 1
    assert paired_improvement(np.array([]), np.array([]))["probability"] is None


@pytest.mark.parametrize("argv, message", [
    (["--confirm-seeds", "-1"], "--confirm-seeds must be >= 0 (0: no confirmation), got -1"),
    (["--confirm-top", "0"], "--confirm-top must be >= 1, got 0"),
    (["--seed", "4294967280", "--num-seeds", "8", "--confirm-seeds", "16"],
     "--seed 4294967280 with --num-seeds + --confirm-seeds 24 uses seeds up to"),
])
def test_bad_confirmation_settings_exit_2_with_one_line(argv, message, tmp_path, capsys):
    assert main([*argv, *RANGES, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "x").exists()
