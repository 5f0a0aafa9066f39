"""Warnings of training that cannot learn (`pgjax.results.health`): each detector, and through the command."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from pgjax.algo.envs import make_env
from pgjax.commands.train import main as train_main
from pgjax.results import health

RUNS, UPDATES = 3, 5
HEALTHY = dict(episode_length=np.full((RUNS, UPDATES), 20.0), entropy=np.full((RUNS, UPDATES), 0.69),
               grad_norm=np.full((RUNS, UPDATES), 0.5))


def spec(max_steps=500, action_kind="discrete", num_actions=2):
    return SimpleNamespace(max_steps=max_steps, action_kind=action_kind, num_actions=num_actions)


def test_a_healthy_start_gives_no_warning():
    assert health.training_warnings(**HEALTHY, spec=spec(), observations=np.float32([[0.1, -2.5]])) == []


def test_a_step_limit_of_one_asks_for_a_larger_max_steps_in_episode():
    line = health.step_limit_of_one(1)
    assert "step limit is 1" in line and "max_steps_in_episode" in line and "\n" not in line
    assert health.step_limit_of_one(2) is None
    lengths = np.ones((RUNS, UPDATES))  # what such a limit gives: said once, as the step limit
    assert health.training_warnings(**{**HEALTHY, "episode_length": lengths}, spec=spec(max_steps=1)) == [line]


def test_episodes_that_all_end_at_their_first_step_are_named():
    lengths = np.ones((RUNS, UPDATES))
    line = health.one_step_episodes(lengths, max_steps=500)
    assert line.startswith(f"every episode of the first {UPDATES} updates ended at its first step (all {RUNS} runs)")
    lengths[2, 4] = 1.5  # one update of one run had a longer episode: not every episode
    assert health.one_step_episodes(lengths, max_steps=500) is None


@pytest.mark.parametrize("observations, low, high, warned", [
    (np.float32([[0, 17, 255], [3, 0, 128]]), None, None, True),  # raw pixel values
    (np.float32([[0, 0, 0]]), 0.0, 255.0, True),  # a black first frame of a 0..255 float Box
    (np.float32([[0, 1, 1]]), 0.0, 1.0, False),  # a 0/1 map (MinAtar)
    (np.float32([[0.5, 3.25]]), None, None, False),  # not integral: a physical state
    (np.float32([[0, 300]]), None, None, False),  # past 255: not pixels
    (np.float32([[-1, 4]]), None, None, False),  # negative
    (np.int32([[1, 9]]), None, None, False),  # integer observations (a grid position) are the env's own
    (None, 0.0, 255.0, False),  # not sampled
])
def test_unscaled_observations_are_those_of_0_to_255_floats(observations, low, high, warned):
    line = health.unscaled_observations(observations, low, high)
    assert (line is not None) is warned
    if warned:
        assert line.startswith("the observations look unscaled") and "divide by 255" in line


def test_an_entropy_that_collapses_at_once_is_named_for_discrete_policies_only():
    entropy = np.full((RUNS, UPDATES), 0.6)
    entropy[:, 2:] = 0.001
    line = health.collapsed_entropy(entropy, "discrete", 2)
    assert "fell to 0.001 nats by update 3 (mean over 3 runs" in line and "--entropy-coef" in line
    entropy[0, 2:] = 0.5  # one run still explores: the mean over runs is above the floor
    assert health.collapsed_entropy(entropy, "discrete", 2) is None
    low = np.full((RUNS, UPDATES), -1.0)  # a Gaussian policy's differential entropy may be negative
    assert health.collapsed_entropy(low, "continuous", 1) is None
    assert health.collapsed_entropy(np.zeros((RUNS, UPDATES)), "discrete", 1) is None  # one action: 0 by right


def test_a_gradient_exactly_zero_in_every_run_is_named():
    norms = np.zeros((RUNS, UPDATES))
    assert health.zero_gradients(norms).startswith(f"the policy gradient was exactly 0 in all {RUNS} runs")
    norms[1, 3] = 1e-9
    assert health.zero_gradients(norms) is None


def test_run_warnings_reads_the_first_updates_of_every_grid_point():
    cartpole = make_env("CartPole-v1")
    healthy = SimpleNamespace(**{k: np.concatenate([v, v], axis=1) for k, v in HEALTHY.items()})  # 10 updates
    assert health.run_warnings([healthy, healthy], cartpole) == []
    late = SimpleNamespace(**{**vars(healthy), "grad_norm": np.zeros((RUNS, 2 * UPDATES))})
    late.grad_norm[:, health.FIRST_UPDATES] = 1.0  # nonzero only after the first updates: still none in them
    assert health.run_warnings([late], cartpole)[0].startswith("the policy gradient was exactly 0")
    assert health.run_warnings([late, healthy], cartpole) == []  # a point whose runs had gradients


def test_a_step_limit_of_one_is_warned_of_in_summary_json_and_the_report(tmp_path, capsys):
    out = tmp_path / "one-step"
    argv = ["--env", "tests.custom:make_one_step_chain", "--num-seeds", "2", "--num-updates", "2",
            "--episodes-per-update", "2", "--hidden", "8", "--out", str(out)]
    assert train_main(argv) == 0
    warnings = json.loads((out / "summary.json").read_text())["warnings"]
    assert warnings[0] == health.step_limit_of_one(1)
    shown = capsys.readouterr().out
    assert all(f"\nwarning: {line}\n" in shown for line in warnings), shown
