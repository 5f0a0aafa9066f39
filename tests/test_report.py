"""Per-run results and intervals against hand-checked cases."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

from pgjax.results.stats import INTERVAL_METHOD
from pgjax.results.summary import run_result, statistics_over_runs, trailing_mean_returns
from pgjax.results.tables import format_setting


def test_trailing_mean_needs_a_full_window():
    returns = np.arange(1, 7, dtype=float).reshape(3, 2)  # episodes 1..6 in order
    got = trailing_mean_returns(returns, window=4)
    assert np.all(np.isnan(got[:3]))
    np.testing.assert_allclose(got[3:], [2.5, 3.5, 4.5])


def test_solved_at_is_the_end_of_the_update_where_the_trailing_mean_first_reaches_the_threshold():
    # 2 episodes per update: 50 episodes of 400, then 150 of 500. The mean of the 100
    # episodes up to episode i (0-based) holds c = 149 - i of the 400s, and reaches 475 when
    # 500 - c >= 475, i.e. first at episode 124, in update 62, after 63,000 env steps.
    returns = np.concatenate([np.full(50, 400.0), np.full(150, 500.0)]).reshape(100, 2)
    env_steps = np.arange(1, 101) * 1000  # cumulative env steps after each update
    result = run_result(returns, env_steps, 475.0)
    assert result["solved_at_env_steps"] == 63_000
    assert result["solved"] and result["final_return"] == 500.0


def test_unsolved_and_thresholdless_runs():
    returns = np.full((10, 20), 100.0)
    assert run_result(returns, np.arange(10), 475.0) == {
        "final_return": 100.0, "solved": False, "solved_at_env_steps": None,
    }
    assert run_result(returns, np.arange(10), None)["solved"] is False
    # fewer than 100 episodes never count as solved, however good
    assert run_result(np.full((2, 4), 500.0), np.arange(2), 475.0)["solved"] is False


def test_statistics_over_runs_give_one_interval_per_statistic_and_leave_diverged_runs_out():
    runs = [{"final_return": r, "solved": r >= 475, "solved_at_env_steps": 1000 if r >= 475 else None,
             "diverged": False} for r in (500.0, 499.0, 480.0, 300.0)]
    runs.append({"final_return": float("nan"), "solved": False, "solved_at_env_steps": None, "diverged": True})
    out = statistics_over_runs(runs, 475.0)
    assert out["num_diverged"] == 1 and out["solved_fraction"] == 0.75
    assert out["final_return_mean"] == out["statistics"]["mean"] == (500 + 499 + 480 + 300) / 4
    assert "final_return_ci95" not in out  # the mean's interval is statistics["mean_ci95"], and only there
    low, high = out["statistics"]["mean_ci95"]
    assert 300.0 <= low < high <= 500.0
    assert "bootstrap" in INTERVAL_METHOD["returns"] and INTERVAL_METHOD["confidence"] == 0.95
    everything_diverged = statistics_over_runs(runs[-1:], 475.0)
    assert everything_diverged["statistics"] is None and everything_diverged["solved_fraction"] is None


def test_settings_are_written_one_way():
    assert [format_setting(v) for v in (0.01, 1e-4, "relu", (64, 64), [8], 3)] == [
        "0.01", "0.0001", "relu", "64,64", "8", "3"]


def test_configure_cpu_gives_one_device_per_core_before_jax_starts():
    code = (
        "from pgjax.running.devices import configure_cpu\n"
        "added = configure_cpu(3)\n"
        "import jax\n"
        "print(len(jax.devices('cpu')), added)\n"
        "print(configure_cpu(5))\n"  # too late: the backend has started
    )
    env = {**os.environ, "XLA_FLAGS": ""}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    first, second = out.strip().splitlines()
    assert first.startswith("3 ") and "--xla_force_host_platform_device_count=3" in first
    assert "--xla_backend_extra_options=xla_cpu_small_while_loop_byte_threshold=65536" in first
    assert second == "[]"
    # flags the user set stay theirs
    env = {**os.environ, "XLA_FLAGS": "--xla_backend_extra_options=xla_cpu_small_while_loop_byte_threshold=1024"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert "xla_backend_extra_options" not in out.strip().splitlines()[0]


def test_a_slow_rate_is_shown_in_a_unit_that_shows_it():
    from pgjax.running.progress import format_rate

    assert format_rate(19_430_000) == "19.43 M steps/s"
    assert format_rate(4_321) == "4.3 k steps/s"  # 0.2 printed "0.00 M steps/s" below 5k steps/s
    assert format_rate(500) == "500 steps/s"
    assert format_rate(float("nan")) == "? steps/s"
