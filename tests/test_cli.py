"""`python -m pgjax.train`: the run folder contract, determinism and bad input."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest

from pgjax import outputs
from pgjax.policy import MLPPolicy
from pgjax.train import Args, main

SMALL = ["--num-seeds", "3", "--seed", "5", "--num-updates", "4", "--episodes-per-update", "2", "--hidden", "8"]
RUN_KEYS = {"seed", "group", "hyperparameters", "final_return", "solved", "solved_at_env_steps", "diverged"}
SUMMARY_KEYS = {
    "env", "preset", "num_runs", "num_diverged", "solved_fraction", "final_return_mean", "final_return_ci95",
    "env_steps_total", "wall_seconds", "compile_seconds", "env_steps_per_second", "groups", "runs",
}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    dirs = [tmp_path_factory.mktemp("run") / "out" for _ in range(2)]
    for d in dirs:
        assert main([*SMALL, "--lr", "0.02", "--out", str(d)]) == 0
    return dirs


def test_run_folder_holds_the_contract(two_runs):
    out = two_runs[0]
    summary = json.loads((out / "summary.json").read_text())
    assert SUMMARY_KEYS <= summary.keys()
    assert summary["env"] == "CartPole-v1" and summary["preset"] == "default" and summary["num_runs"] == 3
    assert [r["seed"] for r in summary["runs"]] == [5, 6, 7]
    for run in summary["runs"]:
        assert RUN_KEYS <= run.keys()
        assert run["hyperparameters"]["learning_rate"] == pytest.approx(0.02)
        assert run["hyperparameters"]["hidden"] == [8]
        assert run["solved"] is False and run["solved_at_env_steps"] is None  # 8 episodes cannot solve
    assert summary["solved_fraction"] == 0.0
    assert summary["env_steps_total"] == sum(r["env_steps"] for r in summary["runs"])
    assert len(summary["groups"]) == 1 and summary["groups"][0]["runs"] == [0, 1, 2]
    config = json.loads((out / "config.json").read_text())
    assert config["grid"][0]["config"]["static"]["num_updates"] == 4
    metrics = outputs.load_group_metrics(out, 0)
    assert metrics["episode_returns"].shape == (3, 4, 2)
    np.testing.assert_array_equal(metrics["seeds"], [5, 6, 7])
    np.testing.assert_allclose(
        [r["final_return"] for r in summary["runs"]], metrics["episode_returns"].reshape(3, -1).mean(axis=1)
    )


def test_saved_parameters_load_back_into_the_policy(two_runs):
    params = outputs.load_params(two_runs[0], run=1)
    logits = MLPPolicy(num_actions=2, hidden=(8,)).apply({"params": params}, jnp.zeros(4))
    assert logits.shape == (2,) and np.all(np.isfinite(logits))
    with pytest.raises(IndexError):
        outputs.load_params(two_runs[0], run=3)


def test_the_same_command_gives_bitwise_identical_results(two_runs):
    (a,), (b,) = (outputs.load_metrics(d) for d in two_runs)
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    pa, pb = (outputs.load_params(d) for d in two_runs)
    assert outputs.jsonable(pa) == outputs.jsonable(pb)


def test_flags_override_the_preset(tmp_path):
    out = tmp_path / "a"
    assert main(["--preset", "seed-a", "--num-seeds", "2", "--num-episodes", "3", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    hp = summary["runs"][0]["hyperparameters"]
    chosen = (hp["hidden"], hp["learning_rate"], hp["baseline_constant"], hp["episodes_per_update"])
    assert chosen == ([32], 0.01, 15.0, 1)
    assert hp["num_updates"] == 3


def test_every_algorithm_flag_overrides_the_preset(tmp_path):
    out = tmp_path / "b"
    argv = [
        "--num-seeds", "2", "--episodes-per-update", "8", "--num-episodes", "9", "--hidden", "8,4",
        "--activation", "tanh", "--returns", "reward_to_go", "--baseline", "batch_mean", "--reduction",
        "episode_sum", "--gamma", "0.9", "--baseline-constant", "3", "--entropy-coef", "0.01",
        "--max-grad-norm", "0.5", "--lr", "0.002", "--out", str(out),
    ]
    assert main(argv) == 0
    hp = json.loads((out / "summary.json").read_text())["runs"][0]["hyperparameters"]
    assert hp == hp | {
        "hidden": [8, 4], "activation": "tanh", "returns": "reward_to_go", "baseline": "batch_mean",
        "reduction": "episode_sum", "episodes_per_update": 8, "num_updates": 2,  # ceil(9 / 8)
        "gamma": pytest.approx(0.9), "baseline_constant": 3.0, "entropy_coef": pytest.approx(0.01),
        "max_grad_norm": 0.5, "learning_rate": pytest.approx(0.002),
    }
    assert outputs.load_group_metrics(out, 0)["episode_returns"].shape == (2, 2, 8)
    assert outputs.load_run_config(out, 1).static.hidden == (8, 4)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--env", "CartPol-v1"], "did you mean CartPole-v1"),
        (["--lr", "-1"], "learning rate must be > 0"),
        (["--gamma", "1.5"], "gamma must be in [0, 1]"),
        (["--num-seeds", "0"], "--num-seeds must be >= 1"),
        (["--env", "Pendulum-v1"], "Discrete"),
    ],
)
def test_bad_input_exits_2_with_one_line(argv, message, tmp_path, capsys):
    assert main([*argv, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_help_explains_every_flag():
    command = [sys.executable, "-m", "pgjax.train", "--help"]
    text = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    for field in dataclasses.fields(Args):
        assert "--" + field.name.replace("_", "-") in text, field.name
