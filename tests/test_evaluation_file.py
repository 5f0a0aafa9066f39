"""`python -m pgjax.evaluate` keeps what an earlier call computed and this one did not (evaluation.json)."""

from __future__ import annotations

import json

from pgjax.commands.evaluate import keep_earlier_results
from pgjax.running.run_folder import files


def _result(gymnasium: bool, episodes: int = 3, render: bool = False) -> dict:
    runs = [{"run": k, "greedy_mean": 9.0 + k} for k in range(2)]
    groups = [{"index": 0, "runs": [0, 1], "gymnasium_greedy": {"mean": 7.0} if gymnasium else None}]
    if gymnasium:
        for run in runs:
            run.update(gymnasium_greedy_mean=7.0, gymnasium_greedy_returns=[7.0] * episodes)
    result = {"env": "CartPole-v1", "episodes": episodes, "seed": 0, "runs": runs, "groups": groups}
    if render:
        result["render"] = {"path": "run0.gif", "run": 0, "return": 500.0}
    return result


def test_render_after_gymnasium_keeps_the_gymnasium_results(tmp_path):
    path = tmp_path / "evaluation.json"
    files.write_json(path, _result(gymnasium=True))
    later = _result(gymnasium=False, render=True)
    assert keep_earlier_results(later, path) == ["Gymnasium returns"]
    assert [r["gymnasium_greedy_mean"] for r in later["runs"]] == [7.0, 7.0]
    assert later["groups"][0]["gymnasium_greedy"] == {"mean": 7.0} and later["render"]["path"] == "run0.gif"
    files.write_json(path, later)
    again = _result(gymnasium=False)
    assert keep_earlier_results(again, path) == ["Gymnasium returns", "render"]
    assert json.loads(json.dumps(files.jsonable(again))) == json.loads(path.read_text())


def test_results_of_other_episodes_or_seeds_are_not_kept(tmp_path):
    path = tmp_path / "evaluation.json"
    assert keep_earlier_results(_result(gymnasium=False), path) == []  # no earlier file
    files.write_json(path, _result(gymnasium=True, episodes=5))
    later = _result(gymnasium=False)
    assert keep_earlier_results(later, path) == [] and "gymnasium_greedy_mean" not in later["runs"][0]
