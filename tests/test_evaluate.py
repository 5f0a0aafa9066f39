"""Trained policies in use: the NumPy callable, greedy JAX evaluation, Gymnasium, the GIF and the CLI."""

from __future__ import annotations

import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pgjax.algo.envs import make_env
from pgjax.algo.policy import MLPPolicy, categorical, make_apply_fn, make_policy
from pgjax.algo.presets import PRESETS
from pgjax.algo.trainer import make_train
from pgjax.commands import evaluate
from pgjax.results import evaluation, summary
from pgjax.running.run_folder import loading
from pgjax.running.run_folder.files import CONFIG_FILE

from .test_plot import small_run_folder

DEFAULT = PRESETS["default"]


@pytest.fixture(scope="session")
def solved_params():
    """Final parameters of one seed of the default preset (NumPy leaves); it solves CartPole-v1."""
    state, metrics = jax.jit(make_train(DEFAULT))(jax.random.key(0))
    result = summary.run_result(np.asarray(metrics.episode_returns), np.asarray(metrics.env_steps), 475.0)
    assert result["solved"], result
    return jax.tree.map(np.asarray, state.params)


@pytest.fixture(scope="session")
def run_folder(tmp_path_factory):
    """The training command's folder of `test_plot`: 2 learning rates x 2 seeds of a small network."""
    return small_run_folder(tmp_path_factory)


def _untrained_params(seed: int):
    return MLPPolicy(2, DEFAULT.static.hidden).init(jax.random.key(seed), jnp.zeros(4))["params"]


def test_callable_takes_the_argmax_of_the_logits(solved_params):
    act = evaluation.policy_callable(DEFAULT, solved_params)
    apply_fn = make_apply_fn(make_policy(make_env("CartPole-v1"), DEFAULT))
    obs = np.random.default_rng(0).normal(0.0, [1.0, 1.0, 0.1, 1.0], size=(64, 4)).astype(np.float32)
    expected = np.asarray(jnp.argmax(apply_fn(solved_params, obs), axis=-1))
    assert 0 < expected.sum() < 64  # both actions occur, so the check can fail
    batch = act(obs)
    assert batch.shape == (64,) and batch.dtype == np.int32
    np.testing.assert_array_equal(batch, expected)
    singles = [act(o) for o in obs]
    assert all(type(a) is int for a in singles) and singles == expected.tolist()
    with pytest.raises(ValueError):
        act(np.zeros(3))


def test_sampling_callable_draws_with_the_policy_probabilities(solved_params):
    apply_fn = make_apply_fn(make_policy(make_env("CartPole-v1"), DEFAULT))
    candidates = np.random.default_rng(1).normal(0.0, [1.0, 1.0, 0.1, 1.0], size=(256, 4)).astype(np.float32)
    probs = np.asarray(jax.nn.softmax(apply_fn(solved_params, candidates)))[:, 1]
    obs = candidates[np.argmin(np.abs(probs - 0.5))]  # an undecided state, where sampling differs from argmax
    p1 = float(jax.nn.softmax(apply_fn(solved_params, obs))[1])
    assert 0.2 < p1 < 0.8
    act = evaluation.policy_callable(DEFAULT, solved_params, greedy=False, seed=3)
    draws = act(np.tile(obs, (4000, 1)))
    assert abs(draws.mean() - p1) < 0.03
    again = evaluation.policy_callable(DEFAULT, solved_params, greedy=False, seed=3)(np.tile(obs, (4000, 1)))
    np.testing.assert_array_equal(draws, again)  # deterministic given the seed
    assert not np.array_equal(draws, act(np.tile(obs, (4000, 1))))  # each call draws anew


def test_greedy_actions_are_the_argmax():
    """What greedy evaluation takes (`make_collect(greedy=True)` calls `Distribution.greedy`)."""
    logits = jnp.array([[1.0, 3.0, 2.0], [5.0, 5.0, 0.0], [-1.0, -2.0, -0.5]])
    np.testing.assert_array_equal(categorical().greedy(logits), [1, 0, 2])  # ties: the first


def test_greedy_jax_evaluation(solved_params):
    stacked = jax.tree.map(lambda a, b: np.stack([a, b]), solved_params, _untrained_params(1))
    greedy = evaluation.evaluate_jax(DEFAULT, stacked, episodes=6, greedy=True, key=jax.random.key(0))
    assert greedy.shape == (2, 6)
    assert np.all(greedy[0] >= 475) and greedy[1].mean() < 200  # the trained policy balances, a fresh one cannot
    again = evaluation.evaluate_jax(DEFAULT, stacked, episodes=6, greedy=True, key=jax.random.key(0))
    np.testing.assert_array_equal(greedy, again)
    sampling = evaluation.evaluate_jax(DEFAULT, stacked, episodes=6, greedy=False, key=jax.random.key(0))
    assert sampling.shape == (2, 6) and np.all((sampling >= 1) & (sampling <= 500))


def test_gymnasium_evaluation_of_a_solved_policy(solved_params):
    pytest.importorskip("gymnasium")
    act = evaluation.policy_callable(DEFAULT, solved_params)
    returns = evaluation.evaluate_gymnasium(act, "CartPole-v1", episodes=10, seed=0)
    assert returns.shape == (10,) and returns.mean() >= 475
    untrained = evaluation.policy_callable(DEFAULT, _untrained_params(1))
    assert evaluation.evaluate_gymnasium(untrained, "CartPole-v1", episodes=3).mean() < 200
    with pytest.raises(ValueError):
        evaluation.evaluate_gymnasium(act, "NoSuchEnv-v9", episodes=1)
    # the run's --max-episode-steps cuts Gymnasium's episodes too (the sooner of it and Gymnasium's own 500);
    # the gymnax suite's spelling names the same environment
    capped = evaluation.evaluate_gymnasium(act, "gymnax/CartPole-v1", episodes=2, seed=0, max_episode_steps=30)
    assert np.array_equal(capped, [30.0, 30.0])
    assert evaluation.evaluate_gymnasium(act, "CartPole-v1", episodes=1, max_episode_steps=10_000).mean() <= 500


def test_render_writes_an_animated_gif(solved_params, tmp_path):
    pytest.importorskip("gymnasium")
    pytest.importorskip("pygame")  # gymnasium[classic-control]: CartPole's renderer
    from PIL import Image

    act = evaluation.policy_callable(DEFAULT, solved_params)
    path, total = evaluation.render_episode(act, tmp_path / "episode.gif", seed=0)
    assert total == 500.0 and path.stat().st_size > 10_000
    with Image.open(path) as gif:
        assert gif.format == "GIF" and gif.size == (600, 400) and gif.n_frames > 50


def test_loaded_policy_is_the_saved_network(run_folder):
    params = loading.load_params(run_folder, 1)
    config = loading.load_run_config(run_folder, 1)
    apply_fn = make_apply_fn(make_policy(make_env(config.static.env), config))
    obs = np.random.default_rng(1).normal(size=(32, 4)).astype(np.float32)
    expected = np.asarray(jnp.argmax(apply_fn(params, obs), axis=-1))
    np.testing.assert_array_equal(evaluation.load_policy(run_folder, run=1)(obs), expected)


def test_cli_writes_evaluation_json(run_folder, capsys):
    pytest.importorskip("gymnasium")
    assert evaluate.main([str(run_folder), "--episodes", "3", "--gymnasium", "--seed", "2"]) == 0
    out = capsys.readouterr().out
    assert "Gymnasium greedy" in out and "group 1 (learning_rate=0.03, 2 runs) | greedy IQM" in out
    result = json.loads((run_folder / "evaluation.json").read_text())
    assert [r["run"] for r in result["runs"]] == [0, 1, 2, 3] and result["episodes"] == 3
    for run in result["runs"]:
        assert len(run["greedy_returns"]) == len(run["sampling_returns"]) == len(run["gymnasium_greedy_returns"]) == 3
        assert run["greedy_mean"] == pytest.approx(np.mean(run["greedy_returns"]))
    assert [g["runs"] for g in result["groups"]] == [[0, 1], [2, 3]]
    group = result["groups"][1]
    assert group["varied"] == {"learning_rate": 0.03}
    assert group["greedy"]["mean"] == pytest.approx(np.mean([result["runs"][k]["greedy_mean"] for k in (2, 3)]))
    # run k's episodes depend on the seed and k only, not on the runs evaluated beside it
    config, params = loading.load_run_config(run_folder, 3), loading.load_params(run_folder, 3)
    stacked = jax.tree.map(lambda x: x[None], params)
    alone = evaluation.evaluate_runs(config, stacked, jax.random.fold_in(jax.random.key(2), 3)[None], episodes=3)
    np.testing.assert_array_equal(alone[0], result["runs"][3]["greedy_returns"])


def test_cli_renders_a_run(run_folder, tmp_path):
    pytest.importorskip("gymnasium")
    pytest.importorskip("pygame")
    gif = tmp_path / "run1.gif"
    assert evaluate.main([str(run_folder), "--episodes", "3", "--render", str(gif), "--run", "1"]) == 0
    result = json.loads((run_folder / "evaluation.json").read_text())
    assert result["render"]["path"] == str(gif) and result["render"]["run"] == 1
    assert result["render"]["return"] >= 1 and gif.stat().st_size > 1000


@pytest.mark.parametrize("name, content, message", [
    ("episode", None, "--render {path} is no GIF's name: give a file ending in .gif, e.g. --render {path}.gif"),
    ("episode.png", None, "--render {path} is no GIF's name: give a file ending in .gif"),
    ("notes.gif", b"my notes", "--render {path} is an existing file, not a GIF image: pgjax writes neither over it "
                               "nor beside it"),
])
def test_render_goes_exactly_to_a_gif_path_and_over_no_users_file(name, content, message, run_folder, tmp_path,
                                                                  capsys):
    pytest.importorskip("pygame")
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    assert evaluate.main([str(run_folder), "--episodes", "1", "--render", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message.format(path=path)}") and err.count("\n") == 1
    assert [p.name for p in tmp_path.iterdir()] == ([name] if content is not None else [])
    assert content is None or path.read_bytes() == content


def test_an_evaluation_json_that_is_not_an_evaluation_is_not_written_over(run_folder, tmp_path, capsys):
    folder = tmp_path / "run"
    shutil.copytree(run_folder, folder)
    (folder / "evaluation.json").write_text('{"mine": 1}')
    assert evaluate.main([str(folder), "--episodes", "1"]) == 2
    assert capsys.readouterr().err.startswith(f"error: the run folder's {folder / 'evaluation.json'} is an existing "
                                              "file, not an evaluation.json of pgjax.evaluate")
    assert (folder / "evaluation.json").read_text() == '{"mine": 1}'


BAD_INPUT = [
    ["/no/such/folder"], ["{tmp}"], ["{run}", "--run", "5"], ["{run}", "--episodes", "0"],
    ["{run}", "--render", "/no/such/dir/x.gif"], [], ["--episodes", "3"], ["{run}", "--episodes"],
]


@pytest.mark.parametrize("argv", BAD_INPUT)
def test_cli_bad_input_is_one_line_and_exit_2(argv, run_folder, tmp_path, capsys):
    argv = [a.format(tmp=tmp_path, run=run_folder) for a in argv]
    assert evaluate.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    if not argv or argv[0].startswith("-"):  # the folder left out: named as --help's usage line names it
        assert err == "error: missing PATH: Run folder written by `python -m pgjax.train`. (required)\n"


def test_cli_on_an_interrupted_run_points_to_resume(run_folder, tmp_path, capsys):
    interrupted = tmp_path / "interrupted"
    interrupted.mkdir()
    shutil.copy(run_folder / CONFIG_FILE, interrupted)
    assert evaluate.main([str(interrupted)]) == 2
    assert capsys.readouterr().err == (
        f"error: {interrupted} holds an interrupted run (no summary.json yet); "
        f"continue it with: python -m pgjax.train --resume {interrupted}\n"
    )
    assert evaluate.main([str(tmp_path / "gone")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'gone'} is missing: no such folder\n"
