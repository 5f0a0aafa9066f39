"""Successive halving: rungs, selection, pairing, the survivor property, stops and resumes, the run folder."""

from __future__ import annotations

import io
import json

import jax
import numpy as np
import pytest
from rich.console import Console

from pgjax.commands.train import main, parse_args, run
from pgjax.results import summary, tables
from pgjax.running import grid, segments, sweep
from pgjax.running.halving import HalvingPlan, rank, train_halving
from pgjax.running.run_folder import files, loading

from .conftest import StopAt, small_config

NUM_SEEDS = 2
NUM_UPDATES = 8
LRS = (0.003, 0.01, 0.03, 0.1, 0.3)
PLAN = HalvingPlan.make(NUM_UPDATES, 2, 3)  # rungs at 2, 4, 8 updates; 5 -> 3 -> 2 configurations
SEGMENT = 3  # segments end elsewhere than the rungs do


def _groups():
    return grid.compile_groups(grid.expand_grid(small_config(num_updates=NUM_UPDATES), {},
                                                {"learning_rate": list(LRS)}))


def _chunks():
    # chunks of 2 = one grid point's seeds: a chunk holds the same runs with and without halving
    chunks, _ = sweep.plan_chunks(_groups(), NUM_SEEDS, jax.devices(), max_parallel=2, segment_updates=SEGMENT)
    return chunks


def _halve(**kwargs):
    return train_halving(_groups(), NUM_SEEDS, 10, PLAN, _chunks(), summary.halving_score, segment_updates=SEGMENT,
                         **kwargs)


def _same(a, b) -> bool:
    return all(jax.tree.leaves(jax.tree.map(np.array_equal, a, b)))


@pytest.fixture(scope="module")
def plain():
    """The full sweep: every configuration to the end, with the chunks the halving uses."""
    results, _ = sweep.train_sweep(_groups(), NUM_SEEDS, 10, segment_updates=SEGMENT, chunks=_chunks())
    return results[0]


REPORTS: list[sweep.SegmentReport] = []  # the segment reports of `halved`


@pytest.fixture(scope="module")
def halved():
    return _halve(on_segment=REPORTS.append)


def _rows(result, point: int):
    rows = slice(point * NUM_SEEDS, (point + 1) * NUM_SEEDS)
    return jax.tree.map(lambda x: x[rows], (result.state, result.metrics))


def test_rungs_are_the_standard_ones_and_bad_ones_are_refused():
    assert HalvingPlan.make(100, 3, 3).rung_updates == (11, 33, 100)
    assert PLAN.rung_updates == (2, 4, 8) and PLAN.rungs == 3
    assert HalvingPlan.make(5, 2, 3).rung_updates == (1, 3, 5)  # 1.25, 2.5 rounded half up
    assert HalvingPlan.make(9, 3, 1).rung_updates == (9,)
    assert HalvingPlan.make(100, 3).rung_updates == (11, 33, 100)  # 3 rungs by default
    assert [PLAN.survivors(n) for n in (1, 2, 3, 5, 6)] == [1, 1, 2, 3, 3]
    with pytest.raises(ValueError, match=r"--halving must be >= 2"):
        HalvingPlan.make(100, 1, 3)
    with pytest.raises(ValueError, match=r"--rungs must be >= 1, got 0"):
        HalvingPlan.make(100, 3, 0)
    with pytest.raises(ValueError, match=r"--halving 2 --rungs 4 with --num-updates 4 puts the rungs at 1, 1, 2, 4"):
        HalvingPlan.make(4, 2, 4)
    with pytest.raises(ValueError, match=r"give fewer --rungs"):
        HalvingPlan.make(10, 3, 4)  # the first rung would be 0 updates


def test_ranking_puts_nan_last_and_breaks_ties_by_index():
    # 3.0 twice: index 1 before 2; NaN is as bad as -inf: index 0 before 3
    assert rank([1.0, 3.0, np.nan, 3.0, -np.inf], [4, 2, 0, 1, 3]) == [1, 2, 4, 0, 3]


def test_each_rung_keeps_the_best_half_by_iqm_of_the_final_return_on_the_same_seeds(plain, halved):
    results, _, outcome = halved
    assert [len(s) for s in outcome.survivors] == [5, 3, 2]
    for k, until in enumerate(PLAN.rung_updates):
        # the scores are the IQM over the seeds of the final return after `until` updates of the full sweep's runs
        # (the same seeds: paired), so the halving ranks what the full sweep had at that update
        for point in outcome.survivors[k]:
            metrics = jax.tree.map(lambda x: x[:, :until], _rows(plain, point)[1])
            assert outcome.scores[k][point] == summary.halving_score(metrics)
        assert outcome.survivors[k] == rank([outcome.scores[k][p] for p in sorted(outcome.scores[k])],
                                            sorted(outcome.scores[k]))
        if k:
            before = outcome.survivors[k - 1]
            assert set(outcome.survivors[k]) == set(before[:PLAN.survivors(len(before))])
    assert {p: outcome.rung[p] for p in range(len(LRS))} == {
        p: max(k for k in range(PLAN.rungs) if p in outcome.survivors[k]) for p in range(len(LRS))}
    for result in results:
        np.testing.assert_array_equal(result.seeds, [10, 11])


def test_a_survivor_computes_bitwise_what_it_computes_without_halving(plain, halved):
    results, info, outcome = halved
    assert info["chunks"] == 5 + 3 + 2 and info["chunk_sizes"] == [2]
    # every chunk's updates of every rung are reported: 5 chunks x 2, 3 x 2 (updates 3-4), 2 x 4 (updates 5-8)
    assert sum(r.new_updates for r in REPORTS) == 5 * 2 + 3 * 2 + 2 * 4
    assert {r.num_chunks for r in REPORTS} == {5, 3, 2}
    for point, result in enumerate(results):
        np.testing.assert_array_equal(result.runs, np.arange(point * NUM_SEEDS, (point + 1) * NUM_SEEDS))
        state, metrics = _rows(plain, point)
        trained = PLAN.rung_updates[outcome.rung[point]]
        assert result.metrics.episode_returns.shape == (NUM_SEEDS, trained, 4)
        # a dropped configuration's updates are the full sweep's first ones, bitwise
        assert _same(result.metrics, jax.tree.map(lambda x, u=trained: x[:, :u], metrics))
        if outcome.rung[point] == PLAN.rungs - 1:  # a survivor: its final state too
            assert _same(result.state, state)


def test_survivors_in_chunks_that_straddle_grid_points_differ_only_in_loop_steps(monkeypatch):
    """3 seeds in chunks of 4: a rung's chunks hold other runs than the full sweep's; each run's own numbers do not."""
    compiles = []
    counted = segments.count_cache_hits  # entered once per compile of a group's executables

    def counting():
        compiles.append(1)
        return counted()

    monkeypatch.setattr(segments, "count_cache_hits", counting)
    groups = grid.compile_groups(grid.expand_grid(small_config(num_updates=NUM_UPDATES), {},
                                                  {"learning_rate": [0.01, 0.03, 0.1]}))
    chunks, _ = sweep.plan_chunks(groups, 3, jax.devices(), max_parallel=4, segment_updates=SEGMENT)
    assert [c.positions.tolist() for c in chunks] == [[0, 1, 2, 3], [4, 5, 6, 7], [8]]
    (full,), _ = sweep.train_sweep(groups, 3, 0, segment_updates=SEGMENT, chunks=chunks)
    compiles.clear()
    results, _, outcome = train_halving(groups, 3, 0, PLAN, chunks, summary.halving_score, segment_updates=SEGMENT)
    assert [len(s) for s in outcome.survivors] == [3, 2, 1]
    assert len(compiles) == 1  # one compile for the three rungs' 3 + 2 + 1 chunks
    for point, result in enumerate(results):
        rows = slice(3 * point, 3 * point + 3)
        trained = result.metrics.env_steps.shape[1]
        for name in result.metrics.names():
            if name != "loop_steps":
                expected = getattr(full.metrics, name)[rows, :trained]
                np.testing.assert_array_equal(getattr(result.metrics, name), expected, err_msg=name)
        if trained == NUM_UPDATES:
            assert _same(result.state, jax.tree.map(lambda x: x[rows], full.state))


def test_the_summary_says_where_each_group_stopped_and_what_halving_saved(plain, halved):
    results, info, outcome = halved
    points = [p for g in _groups() for p in g]
    made = summary.summarise(points, NUM_SEEDS, "default", results, {**info, "wall_seconds": 1.0}, 475.0,
                             halving=outcome)
    entry = made["halving"]
    assert entry["eta"] == 2 and entry["rungs"] == 3 and entry["rung_updates"] == [2, 4, 8]
    assert entry["survivors"] == outcome.survivors and entry["winner"] == outcome.survivors[-1][0]
    assert made["compile_groups"] == 1 and made["num_runs"] == len(LRS) * NUM_SEEDS
    for group in made["groups"]:
        rung = outcome.rung[group["index"]]
        assert group["rung"] == rung and group["stopped_early"] == (rung < 2)
        assert group["num_updates_trained"] == PLAN.rung_updates[rung] and len(group["rung_scores"]) == rung + 1
        assert group["statistics"] is not None
    # the comparison in summary.json leaves out the groups that stopped early, and says why
    finalists = {g["index"] for g in made["groups"] if not g["stopped_early"]}
    left_out = {entry["group"] for entry in made["comparison"]["left_out"]} if "comparison" in made else set()
    assert left_out == {g["index"] for g in made["groups"]} - finalists
    if "comparison" in made:
        assert made["comparison"]["baseline"] in finalists
    spent = sum(int(r.metrics.env_steps[:, -1].sum()) for r in results)
    assert entry["env_steps"] == spent == made["env_steps_total"]
    # the lower estimate: each stopped run goes on at its env steps per update over its last rung
    estimate = 0.0
    for point, result in enumerate(results):
        rung = outcome.rung[point]
        for steps in result.metrics.env_steps.astype(np.int64):
            estimate += steps[-1]
            if rung < 2:
                before = 0 if rung == 0 else steps[PLAN.rung_updates[rung - 1] - 1]
                per_update = (steps[-1] - before) / (PLAN.rung_updates[rung] - ([0, 2, 4][rung]))
                estimate += per_update * (NUM_UPDATES - PLAN.rung_updates[rung])
    assert entry["env_steps_full_sweep_own_rate"] == round(estimate)
    assert entry["env_steps_full_sweep"] == summary.full_sweep_env_steps(
        PLAN.rung_updates, [r.metrics.env_steps.astype(np.int64) for r in results],
        np.concatenate([results[p].metrics.env_steps for p in outcome.survivors[-1]]).astype(np.int64))[0]
    assert entry["env_steps_saved"] == entry["env_steps_full_sweep"] - spent > 0
    assert spent < plain.metrics.env_steps[:, -1].sum()  # what the full sweep did spend
    shown = io.StringIO()
    tables.print_report(json.loads(json.dumps(files.jsonable(made))), Console(file=shown, width=300))
    assert "configurations per rung 5 -> 3 -> 2" in shown.getvalue()
    assert f"{entry['env_steps_saved']:,} saved" in shown.getvalue()


def test_the_full_sweep_estimate_grows_stopped_runs_as_the_finalists_grew():
    finalists = np.array([[10, 20, 40, 60]])  # 10 env steps per update over rung 0 (updates 1-2), then 20
    stopped = np.array([[5, 10]])  # 5 per update over rung 0: taken to go on at 10 for updates 3-4
    assert summary.full_sweep_env_steps((2, 4), [stopped, finalists], finalists) == (60 + 10 + 2 * 10, 60 + 10 + 2 * 5)
    stopped_later = np.array([[5, 15, 25]])  # stopped at rung 1 of (1, 3, 4): 10 per update over updates 2-3
    finalists = np.array([[10, 20, 40, 100]])  # 15 per update over updates 2-3, then 60: 4 times as many
    assert summary.full_sweep_env_steps((1, 3, 4), [stopped_later, finalists], finalists) == (100 + 25 + 40,
                                                                                               100 + 25 + 10)


def test_a_stopped_halving_resumes_to_the_uninterrupted_result(halved, tmp_path):
    results, _, outcome = halved
    polls = []

    def stop_from_the_seventh_segment():
        polls.append(1)
        return len(polls) >= 7

    # --checkpoint-every 3: rung 0 is 5 chunks x 1 segment, rung 1 (updates 2..4) 3 chunks x 2 segments (2..3,
    # 3..4); polls 6 and 7 end rung 1's chunk 0, poll 8 stops rung 1's chunk 1 after 3 updates
    with pytest.raises(sweep.Interrupted, match="stopped after 3 of 4 updates of chunk 1"):
        _halve(run_dir=tmp_path, checkpoint_every=3, should_stop=stop_from_the_seventh_segment)
    folders = tmp_path / "checkpoints"
    assert sorted(p.name for p in (folders / "rung-0").iterdir()) == [f"chunk-{c:04d}" for c in range(5)]
    assert sorted(p.name for p in (folders / "rung-1").iterdir()) == ["chunk-0000", "chunk-0001", "chunk_sizes.json"]
    assert json.loads((folders / "rung-1" / "chunk_sizes.json").read_text()) == {"0": 2}  # chunks of 2 are fitted
    assert not (folders / "rung-2").exists()
    resumed, info, resumed_outcome = _halve(run_dir=tmp_path, checkpoint_every=3)
    assert info["resumed_updates"] == 5 * 2 + 2 + 1
    assert resumed_outcome.survivors == outcome.survivors and resumed_outcome.rung == outcome.rung
    for a, b in zip(resumed, results):
        assert _same((a.state, a.metrics), (b.state, b.metrics))
    rung1 = outcome.survivors[1]
    first, second = sorted(rung1)[:2]  # rung 1's chunks 0 and 1: its first two grid points
    restored = sum(int(results[p].metrics.env_steps[:, PLAN.rung_updates[0] - 1].sum()) for p in range(5))
    restored += int((results[first].metrics.env_steps[:, 3] - results[first].metrics.env_steps[:, 1]).sum())
    restored += int((results[second].metrics.env_steps[:, 2] - results[second].metrics.env_steps[:, 1]).sum())
    assert info["resumed_env_steps"] == restored


HALVING = ["--num-seeds", "2", "--seed", "10", "--num-updates", "8", "--episodes-per-update", "4", "--hidden", "16",
           "--lr", *map(str, LRS), "--max-parallel", "2", "--halving", "2", "--rungs", "3", "--quiet",
           "--confirm-seeds", "0"]


def test_the_command_writes_a_halving_run_folder_and_resumes_one(tmp_path, capsys):
    whole = tmp_path / "whole"
    assert main([*HALVING, "--out", str(whole)]) == 0
    printed = capsys.readouterr().out
    assert "successive halving (ETA 2): rungs at 2, 4, 8 updates | configurations per rung 5 -> 3 -> 2" in printed
    made = loading.load_summary(whole)
    assert made["halving"]["env_steps_saved"] > 0 and made["halving"]["rung_updates"] == [2, 4, 8]
    assert json.loads((whole / "config.json").read_text())["run"]["halving"] == 2
    for group in made["groups"]:
        metrics = loading.load_group_metrics(whole, group["index"])
        assert metrics["episode_return"].shape == (2, group["num_updates_trained"])
        assert [made["runs"][r]["env_steps"] for r in group["runs"]] == metrics["env_steps"][:, -1].tolist()
    assert {g["num_updates_trained"] for g in made["groups"]} == {2, 4, 8}
    assert (whole / "learning_curves.png").exists()
    # a stop during the second rung (segments end at every 3 updates, rungs at 2, 4, 8), then --resume: the same files
    stopped = tmp_path / "stopped"
    with pytest.raises(sweep.Interrupted, match="stopped after 3 of 4 updates of chunk 1"):
        run(parse_args([*HALVING, "--checkpoint-every", "3", "--out", str(stopped)]),
            console=Console(file=io.StringIO()), stop=StopAt(7))
    assert not (stopped / "summary.json").exists() and (stopped / "checkpoints" / "rung-1").is_dir()
    assert main(["--resume", str(stopped), "--quiet"]) == 0
    resumed = loading.load_summary(stopped)
    assert resumed["resumed_updates"] > 0 and resumed["halving"]["survivors"] == made["halving"]["survivors"]
    for a, b in zip(loading.load_metrics(stopped), loading.load_metrics(whole)):
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--halving", "1"], "--halving must be >= 2"),
        (["--halving", "3", "--rungs", "0"], "--rungs must be >= 1, got 0"),
        (["--rungs", "3"], "--rungs sets the rungs of successive halving: give --halving ETA with it"),
        (["--halving", "3", "--rungs", "4", "--num-updates", "10"], "give fewer --rungs, a smaller --halving"),
        (["--halving", "2", "--num-episodes", "8", "--episodes-per-update", "2", "4"],
         "--halving needs the same number of updates for every grid point"),
    ],
)
def test_bad_halving_settings_exit_2_with_one_line_naming_the_flags(argv, message, tmp_path, capsys):
    assert main([*argv, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and err.startswith("error: ")
    assert not (tmp_path / "x").exists()


def test_plan_only_prints_the_rungs_the_work_and_an_estimated_time_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "planned"
    assert main([*HALVING, "--plan-only", "--out", str(out)]) == 0  # printed despite --quiet: it is the output
    printed = capsys.readouterr().out
    assert "plan: 10 runs (5 grid points x 2 seeds) | 1 compile group | 5 chunks x 2 runs" in printed
    assert "rungs at 2, 4, 8 updates: 5 x 2 in 5 chunks of 2 -> 3 x 2 in 3 chunks of 2 -> 2 x 2 in 2 chunks of 2 " \
           "runs" in printed
    # run-updates: 10 runs x 2, then 6 x 2 (updates 3-4), then 4 x 4 (updates 5-8); CartPole's limit 500 steps
    assert f"work: {10 * 2 + 6 * 2 + 4 * 4} run-updates; at most {48 * 4 * 500:,} env steps" in printed
    assert "estimated training time: " in printed and "plan only: nothing was trained or written" in printed
    assert not out.exists()
    assert main(["--resume", str(tmp_path), "--plan-only"]) == 2
    assert "--plan-only plans a new command; give it without --resume" in capsys.readouterr().err
