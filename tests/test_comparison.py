"""Paired comparisons: hand-made cases, rliable's figures on fixed data, summary.json's entry and the command."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import stats

from pgjax.commands import compare
from pgjax.commands.train import main as train_main
from pgjax.results import aggregates
from pgjax.results import comparison as cmp
from pgjax.results.comparison_plots import IMPROVEMENT_FILE, PROFILE_FILE
from pgjax.running.run_folder import files, loading
from pgjax.running.run_folder.files import SUMMARY_FILE

REFERENCE = json.loads((Path(__file__).parent / "data" / "rliable_reference.json").read_text())
TWO_RATES = ["--lr", "0.003", "0.03", "--num-seeds", "3", "--num-updates", "6", "--episodes-per-update", "2",
             "--hidden", "8", "--quiet"]


def runs(name, finals, seeds=None, diverged=None, solved_at=None) -> cmp.GroupRuns:
    finals = np.asarray(finals, np.float64)
    return cmp.GroupRuns(
        name=name, seeds=np.arange(finals.size) if seeds is None else np.asarray(seeds),
        final_returns=finals, diverged=np.zeros(finals.size, bool) if diverged is None else np.asarray(diverged),
        solved_at_env_steps=None if solved_at is None else np.asarray(solved_at, np.float64), label=f"g{name}",
    )


# ---------------------------------------------------------------- hand-made cases


def test_identical_groups_differ_by_zero_and_improve_with_probability_one_half():
    finals = np.array([20.0, 35.0, 35.0, 80.0, 120.0])
    found = cmp.compare_to_baseline(runs(1, finals), runs(0, finals))["final_return"]
    assert found["difference"]["mean"] == 0 and found["difference"]["ci95"] == [0.0, 0.0]
    assert found["probability_of_improvement"]["probability"] == 0.5


def test_a_strictly_better_group_improves_with_probability_one():
    found = cmp.improvement([5.0, 6.0, 7.0], [1.0, 2.0, 4.9])
    assert found["probability"] == 1.0 and found["ci95"] == [1.0, 1.0]
    assert cmp.improvement([1.0, 2.0, 4.9], [5.0, 6.0, 7.0])["probability"] == 0.0


def test_ties_count_one_half_as_rliable_and_mann_whitney_do():
    x, y = np.array([1.0, 2.0, 2.0]), np.array([2.0, 3.0])
    # pairs: 1 vs 2, 1 vs 3: 0; 2 vs 2: 1/2 (twice); 2 vs 3: 0 (twice) -> 1 / 6
    assert cmp.probability_of_improvement(x, y) == pytest.approx(1 / 6)
    assert cmp.probability_of_improvement(x, y) == pytest.approx(stats.mannwhitneyu(x, y).statistic / 6)
    assert cmp.probability_of_improvement(x, y) + cmp.probability_of_improvement(y, x) == pytest.approx(1.0)


def test_runs_are_paired_by_seed_not_by_position():
    rng = np.random.default_rng(0)
    seed_effect = rng.normal(0, 50, 8)  # large between seeds: unpaired, the difference would be uncertain
    baseline = runs(0, 100 + seed_effect, seeds=np.arange(8) + 10)
    order = rng.permutation(8)
    shuffled = runs(1, (103 + seed_effect)[order], seeds=(np.arange(8) + 10)[order])
    difference = cmp.compare_to_baseline(shuffled, baseline)["final_return"]["difference"]
    assert difference["mean"] == pytest.approx(3.0) and difference["ci95"] == pytest.approx([3.0, 3.0])
    assert difference["pairs"] == 8
    in_order = cmp.compare_to_baseline(runs(1, 103 + seed_effect, seeds=np.arange(8) + 10), baseline)
    assert in_order["final_return"] == cmp.compare_to_baseline(shuffled, baseline)["final_return"]


def test_a_diverged_run_drops_its_seed_pair_and_leaves_the_probability():
    group = runs(1, [10.0, np.nan, 30.0, 40.0], diverged=[False, True, False, False])
    baseline = runs(0, [9.0, 19.0, 29.0, 39.0])
    found = cmp.compare_to_baseline(group, baseline)["final_return"]
    assert found["difference"]["pairs"] == 3 and found["difference"]["dropped_seeds"] == [1]
    assert found["difference"]["mean"] == pytest.approx(1.0)
    assert found["probability_of_improvement"]["runs"] == [3, 4]
    assert found["probability_of_improvement"]["probability"] == pytest.approx(cmp.probability_of_improvement(
        [10.0, 30.0, 40.0], [9.0, 19.0, 29.0, 39.0]))


def test_env_steps_to_solve_pair_runs_that_reached_it_and_count_the_others_as_slower():
    group = runs(1, [1, 1, 1, 1], solved_at=[100, 200, np.nan, 300])
    baseline = runs(0, [1, 1, 1, 1], solved_at=[200, np.nan, np.nan, 100])
    found = cmp.compare_to_baseline(group, baseline)["env_steps_to_solve"]
    # seeds 0 and 3 reached it in both: (100 - 200 + 300 - 100) / 2
    assert found["difference"]["mean"] == 50 and found["difference"]["pairs"] == 2
    assert found["reached"] == [3, 2]
    # fewer steps wins; never reached loses to any reach, ties with another never: 9 of 16 pairs
    assert found["probability_of_fewer"]["probability"] == pytest.approx(9 / 16)
    assert cmp.compare_to_baseline(runs(1, [1, 2]), runs(0, [1, 2]))["env_steps_to_solve"] is None
    never = runs(1, [1, 2], solved_at=[np.nan, np.nan])
    assert cmp.compare_to_baseline(never, never)["env_steps_to_solve"] is None


def test_groups_tied_on_iqm_rank_by_steps_to_solve_then_by_the_mean():
    """Three groups solve on every seed (IQM 500): the one that got there in fewer steps is best."""
    slow = runs(0, [500, 500, 500, 500], solved_at=[9e4, 8e4, 9e4, 7e4])
    fast = runs(1, [500, 500, 500, 500], solved_at=[3e4, 4e4, 2e4, 5e4])
    half = runs(2, [500, 500, 500, 500], solved_at=[1e4, np.nan, 1e4, np.nan])  # never counts as never
    assert [g.name for g in cmp.ranked_groups([slow, fast, half])] == [1, 0, 2]
    assert cmp.best_group([slow, fast, half]).name == 1
    # no threshold: the mean separates what the IQM ties (the IQM drops the top and bottom quarter)
    low, high = runs(0, [1, 5, 5, 6]), runs(1, [4, 5, 5, 9])
    assert cmp.rank_key(low)[0] == cmp.rank_key(high)[0]
    assert [g.name for g in cmp.ranked_groups([low, high])] == [1, 0]


def test_the_default_baseline_is_the_best_group_by_iqm():
    groups = [runs(0, [1, 2, 3, 100]), runs(1, [4, 5, 6, 7]), runs(2, [0, 0, 1, 1])]  # mean picks 0, IQM picks 1
    found = cmp.compare_groups(groups)
    assert found["baseline"] == 1 and found["baseline_rule"] == cmp.RANKING_RULE
    assert [entry["group"] for entry in found["groups"]] == [0, 2]
    assert cmp.compare_groups(groups, baseline="2")["baseline"] == 2
    with pytest.raises(ValueError, match="no group '7'"):
        cmp.compare_groups(groups, baseline="7")
    with pytest.raises(ValueError, match="at least two groups"):
        cmp.compare_groups(groups[:1])


def test_summary_groups_leave_out_early_stopped_and_all_diverged_groups():
    run = lambda seed, group, diverged=False: {"seed": seed, "group": group, "final_return": 1.0 + group,
                                               "diverged": diverged, "solved_at_env_steps": None}
    summary = {
        "solve_threshold": 475.0,
        "runs": [run(0, 0), run(1, 0), run(0, 1), run(1, 1), run(0, 2, True), run(1, 2, True)],
        "groups": [{"index": 0, "runs": [0, 1], "varied": {"learning_rate": 0.01}},
                   {"index": 1, "runs": [2, 3], "varied": {"learning_rate": 0.1}, "stopped_early": True, "rung": 1},
                   {"index": 2, "runs": [4, 5], "varied": {"learning_rate": 1.0}}],
    }
    kept, left_out = cmp.summary_groups(summary)
    assert [g.name for g in kept] == [0] and kept[0].label == "learning_rate=0.01"
    assert left_out == [{"group": 1, "reason": "stopped early (successive halving, rung 1)"},
                        {"group": 2, "reason": "every run diverged"}]
    assert cmp.summary_comparison(summary) is None  # one group left: nothing to compare


def test_profile_normalise_and_optimality_gap_on_hand_made_scores():
    profile = cmp.performance_profile(np.array([1.0, 2.0, 3.0, 4.0]), np.array([0.0, 2.0, 4.0]))
    assert profile["fraction"].tolist() == [1.0, 0.5, 0.0]
    assert profile["low"][0] == profile["high"][0] == 1.0 and profile["low"][1] < 0.5 < profile["high"][1]
    assert aggregates.normalise([22.0, 475.0], 22.0, 475.0).tolist() == [0.0, 1.0]
    assert aggregates.optimality_gap(np.array([0.5, 1.0, 1.5, -1.0])) == pytest.approx((0.5 + 0 + 0 + 2.0) / 4)
    aggregate = aggregates.aggregate_scores([np.array([0.0, 1.0, 2.0, 3.0]), np.array([1.0, 1.0])])
    assert aggregate["iqm"] == pytest.approx((1 + 1 + 1 + 2) / 4) and aggregate["runs"] == [4, 2]  # 0 1 1 1 2 3


# ---------------------------------------------------------------- against rliable (tests/data/rliable_reference.json)
# The fixture's intervals come from rliable's percentile bootstrap with B_r resamples, pgjax's
# from B_p = 20000. The Monte Carlo standard error of a percentile-bootstrap end at level q is
# about sigma * sqrt(q (1 - q) / B) / phi(z_q) (sigma: the bootstrap distribution's spread,
# taken as the reference interval's width / (2 * 1.96)): 0.012 sigma for B = 50000, 0.019 sigma
# for 20000. The ends may differ by 5 combined standard errors (0.11 sigma) plus one step of the
# statistic's lattice where it is discrete (P: multiples of 1 / (2 m n); a profile: 1 / R).
PGJAX_REPS = 20_000


def tolerance(reference: dict, reps: int, lattice: float = 0.0) -> np.ndarray:
    sigma = (np.asarray(reference["high"]) - np.asarray(reference["low"])) / (2 * 1.959964)
    standard_error = lambda b: math.sqrt(0.025 * 0.975 / b) / stats.norm.pdf(1.959964)
    return 5 * sigma * math.hypot(standard_error(reps), standard_error(PGJAX_REPS)) + lattice + 1e-12


@pytest.mark.parametrize("case", ["x_vs_y", "y_vs_x", "x_vs_x"])
def test_probability_of_improvement_matches_rliable(case):
    x, y = np.array(REFERENCE["data"]["x"]), np.array(REFERENCE["data"]["y"])
    first, second = {"x_vs_y": (x, y), "y_vs_x": (y, x), "x_vs_x": (x, x)}[case]
    reference = REFERENCE["probability_of_improvement"][case]
    found = cmp.improvement(first, second, reps=PGJAX_REPS)
    assert found["probability"] == pytest.approx(reference["point"], abs=1e-12)
    allowed = tolerance(reference, REFERENCE["probability_of_improvement"]["reps"], 1 / (2 * x.size * y.size))
    assert np.abs(np.array(found["ci95"]) - [reference["low"], reference["high"]]).max() <= allowed


def test_aggregate_iqm_and_optimality_gap_match_rliable():
    scores = np.array(REFERENCE["data"]["scores"])  # [runs, tasks]
    found = aggregates.aggregate_scores(list(scores.T), reps=PGJAX_REPS)
    for name in ("iqm", "optimality_gap"):
        reference = REFERENCE["aggregate"][name]
        assert found[name] == pytest.approx(reference["point"], abs=1e-12)
        allowed = tolerance(reference, REFERENCE["aggregate"]["reps"])
        assert np.abs(np.array(found[f"{name}_ci95"]) - [reference["low"], reference["high"]]).max() <= allowed


def test_performance_profile_matches_rliable():
    x = np.array(REFERENCE["data"]["x"])
    reference = REFERENCE["performance_profile"]
    found = cmp.performance_profile(x, np.array(reference["tau"]), reps=PGJAX_REPS)
    np.testing.assert_allclose(found["fraction"], reference["point"], atol=1e-12)
    allowed = tolerance(reference, reference["reps"], 1 / x.size)
    assert np.abs(found["low"] - reference["low"]).max() <= allowed.max()
    assert np.abs(found["high"] - reference["high"]).max() <= allowed.max()


def test_random_policy_scores_cartpole_as_known():
    from pgjax.algo.envs import make_env
    from pgjax.results.random_policy import random_policy_return

    score = random_policy_return(make_env("CartPole-v1"), episodes=200)
    assert 18 < score.mean < 27  # a random CartPole policy lasts ~22 steps
    assert 0.3 < score.stderr < 2.5 and score.episodes == 200  # its episodes' spread (sd ~12) / sqrt(200)
    capped = random_policy_return(make_env("CartPole-v1", max_episode_steps=5), episodes=200)
    assert capped.mean == 5.0 and capped.stderr == 0.0  # no random episode ends before 5 steps: every one is cut


# ---------------------------------------------------------------- summary.json and the command


@pytest.fixture(scope="module")
def two_rates(tmp_path_factory) -> Path:
    """A trained folder of two learning rates x 3 seeds (one compile for the module)."""
    out = tmp_path_factory.mktemp("compare") / "two_rates"
    assert train_main([*TWO_RATES, "--out", str(out)]) == 0
    return out


def test_summary_compares_every_group_with_the_best(two_rates):
    summary = loading.load_summary(two_rates)
    best = max(summary["groups"], key=lambda g: g["statistics"]["iqm"])
    entry = summary["comparison"]
    assert entry["baseline"] == best["index"] and entry["left_out"] == []
    assert [g["group"] for g in entry["groups"]] == [1 - best["index"]]
    assert entry["groups"][0]["final_return"]["difference"]["pairs"] == 3


def test_compare_prints_writes_and_plots(two_rates, tmp_path, capsys):
    assert compare.main([str(two_rates), "--baseline", "0", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "P(improvement)" in printed and "learning_rate=0.03" in printed
    written = json.loads((tmp_path / compare.COMPARISON_FILE).read_text())
    assert written["comparison"]["baseline"] == 0 and written["comparison"]["baseline_rule"] == "given"
    (entry,) = written["comparison"]["groups"]
    assert entry["group"] == 1 and 0 <= entry["final_return"]["probability_of_improvement"]["probability"] <= 1
    assert len(written["performance_profile"]["groups"]) == 2
    for name in (PROFILE_FILE, IMPROVEMENT_FILE):
        assert Image.open(tmp_path / name).size[0] > 300


def test_compare_names_groups_of_several_folders_by_folder(two_rates, tmp_path, capsys):
    other = tmp_path / "again"
    shutil.copytree(two_rates, other)
    assert compare.main([str(two_rates), str(other), "--baseline", f"{other}:1", "--out", str(tmp_path)]) == 0
    written = json.loads((tmp_path / compare.COMPARISON_FILE).read_text())["comparison"]
    assert written["baseline"] == f"{other}:1"
    same = {g["group"]: g for g in written["groups"]}[f"{two_rates}:1"]  # a copy: every seed pair differs by 0
    assert same["final_return"]["difference"]["mean"] == 0 and same["final_return"]["difference"]["pairs"] == 3


def test_compare_aggregates_folders_of_different_environments(two_rates, tmp_path, capsys):
    acrobot = tmp_path / "acrobot"  # the same runs relabelled: the aggregation, not the training, is tested here
    shutil.copytree(two_rates, acrobot)
    summary = loading.load_summary(acrobot)
    summary.update(env="Acrobot-v1", solve_threshold=-100.0)
    for run in summary["runs"]:
        run["final_return"] -= 500.0
    files.write_json(acrobot / SUMMARY_FILE, summary)
    assert compare.main([str(two_rates), str(acrobot), "--out", str(tmp_path)]) == 0
    assert "optimality gap" in capsys.readouterr().out
    written = json.loads((tmp_path / compare.COMPARISON_FILE).read_text())
    assert [e["reference_score"] for e in written["environments"]] == [475.0, -100.0]
    assert [row["group"] for row in written["aggregate"]] == [0, 1]
    assert all(row["runs"] == [3, 3] and math.isfinite(row["iqm"]) for row in written["aggregate"])


@pytest.mark.parametrize("argv", [
    ["/no/such/folder"], ["{tmp}"], ["{run}", "--baseline", "7"], ["{run}", "{run}"], ["{run}", "--out", "/no/such"],
    ["{run}", "--resamples", "5"], ["{run}", "--resamples", "many"], [],
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(argv, two_rates, tmp_path, capsys):
    before = sorted(p.name for p in two_rates.iterdir())
    assert compare.main([a.format(tmp=tmp_path, run=two_rates) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert sorted(p.name for p in two_rates.iterdir()) == before and not any(tmp_path.iterdir())


def test_mixed_environments_are_refused(two_rates, tmp_path, capsys):
    other = tmp_path / "other"
    shutil.copytree(two_rates, other)
    summary = loading.load_summary(other)
    summary["env"] = "Acrobot-v1"
    files.write_json(other / SUMMARY_FILE, summary)
    third = tmp_path / "third"
    shutil.copytree(two_rates, third)
    assert compare.main([str(two_rates), str(third), str(other), "--out", str(tmp_path)]) == 2
    assert "one folder per environment" in capsys.readouterr().err
    assert not (tmp_path / compare.COMPARISON_FILE).exists()


def test_version_and_console_script_name():
    done = subprocess.run([sys.executable, "-m", "pgjax.compare", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("pgjax ")
    from pgjax.commands import scripts

    assert callable(scripts.compare)


def test_groups_of_several_folders_are_labelled_by_the_settings_that_differ_between_all_of_them(two_rates, tmp_path):
    """Two folders of one group each (a folder's own groups share everything): the label names the learning rate,
    not "group 0"."""
    from pgjax.commands.compare import _groups_of_one_environment

    summary = loading.load_summary(two_rates)
    folders = [tmp_path / "slow", tmp_path / "fast"]
    singles = []
    for k, folder in enumerate(folders):
        group = {**summary["groups"][k], "index": 0, "varied": {}}
        runs = [{**summary["runs"][r], "group": 0} for r in group["runs"]]
        singles.append({**summary, "groups": [{**group, "runs": list(range(len(runs)))}], "runs": runs})
    groups, _ = _groups_of_one_environment(folders, singles)
    assert [g.label for g in groups] == ["slow: learning_rate=0.003", "fast: learning_rate=0.03"]  # TWO_RATES
