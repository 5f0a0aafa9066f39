"""Statistics over runs: IQM, bootstrap intervals, Wilson solve-rate interval, solve-step quartiles."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from pgjax.results import plots
from pgjax.results.stats import (
    bootstrap_interval,
    group_statistics,
    iqm,
    mean_median_iqm,
    solve_steps,
    wilson_interval,
)


def test_iqm_is_the_mean_of_the_middle_half():
    values = np.array([100.0, 1, 2, 3, 4, 5, 6, -50])  # sorted: -50 1 | 2 3 4 5 | 6 100
    assert iqm(values) == pytest.approx(3.5)
    rng = np.random.default_rng(0)
    for n in (4, 5, 9, 37, 64):
        x = rng.normal(size=n)
        assert iqm(x) == pytest.approx(scipy_stats.trim_mean(x, 0.25))  # = rliable.metrics.aggregate_iqm
    curves = rng.normal(size=(8, 3))
    np.testing.assert_allclose(iqm(curves, axis=0), [iqm(curves[:, g]) for g in range(3)])


def test_point_estimates_and_intervals_of_a_group():
    finals = np.array([10.0, 20, 30, 40, 50, 60, 70, 1000])
    out = group_statistics(finals, None, np.full(8, np.nan))
    assert out["mean"] == pytest.approx(160.0)
    assert out["median"] == pytest.approx(45.0)
    assert out["iqm"] == pytest.approx(45.0)  # mean of 30, 40, 50, 60: the outlier is trimmed
    for name in ("mean", "median", "iqm"):
        low, high = out[f"{name}_ci95"]
        assert low <= out[name] <= high and low < high
    assert out["mean_ci95"][1] > out["iqm_ci95"][1]  # the 1000 widens the mean's interval, not the IQM's
    assert out["solve_rate"] is None and out["solve_rate_ci95"] is None
    json.dumps(out, allow_nan=False)


def test_bootstrap_is_deterministic_given_the_seed():
    finals = np.random.default_rng(1).normal(200, 50, size=16)
    a = group_statistics(finals, finals > 200, np.full(16, np.nan), seed=3)
    assert a == group_statistics(finals, finals > 200, np.full(16, np.nan), seed=3)
    assert a["mean_ci95"] != group_statistics(finals, finals > 200, np.full(16, np.nan), seed=4)["mean_ci95"]


def test_bootstrap_interval_of_the_mean_agrees_with_students_t_on_normal_data():
    finals = np.random.default_rng(2).normal(0.0, 1.0, size=64)
    out = group_statistics(finals, None, np.full(64, np.nan), reps=5000)
    t_low, t_high = scipy_stats.t.interval(0.95, 63, loc=finals.mean(), scale=scipy_stats.sem(finals))
    boot_width = out["mean_ci95"][1] - out["mean_ci95"][0]
    assert boot_width == pytest.approx(t_high - t_low, rel=0.15)
    assert out["mean_ci95"][0] == pytest.approx(t_low, abs=0.05)


def _within(values, interval) -> bool:
    low, high = interval
    return values.min() <= low <= high <= values.max()


def test_intervals_never_leave_the_range_of_the_runs():
    rng = np.random.default_rng(4)
    # CartPole-v1-like: final returns at or just under the 500 cap; a Student t interval reached 500.1
    finals = np.minimum(500.0, rng.normal(499.9, 0.4, 64))
    out = mean_median_iqm(finals)
    for name in ("mean", "median", "iqm"):
        assert _within(finals, out[f"{name}_ci95"]) and out[f"{name}_ci95"][1] <= 500.0
    # few skewed runs: the t interval of the mean goes below the smallest run, the bootstrap's does not
    finals = np.array([0.0, 0.0, 0.0, 1.0, 2.0, 130.0])
    t_low, _ = scipy_stats.t.interval(0.95, finals.size - 1, loc=finals.mean(), scale=scipy_stats.sem(finals))
    assert t_low < 0.0
    out = mean_median_iqm(finals)
    for name in ("mean", "median", "iqm"):
        assert _within(finals, out[f"{name}_ci95"])
    for _ in range(20):
        values = rng.exponential(100.0, size=rng.integers(2, 20))
        out = mean_median_iqm(values, reps=200)
        assert all(_within(values, out[f"{name}_ci95"]) for name in ("mean", "median", "iqm"))
    # the plots' bands: the same method, per point
    curves = np.minimum(500.0, rng.normal(499.0, 2.0, (16, 5)))
    _, low, high = plots.curve_band(curves, "mean")
    assert np.all(curves.min(axis=0) <= low) and np.all(high <= curves.max(axis=0))


def test_constant_data_gives_zero_width_intervals():
    out = group_statistics(np.full(8, 500.0), np.ones(8, bool), np.full(8, 1000.0))
    for name in ("mean", "median", "iqm"):
        assert out[name] == 500.0 and out[f"{name}_ci95"] == [500.0, 500.0]


def test_one_run_has_points_but_no_intervals():
    out = group_statistics(np.array([123.0]), np.array([False]), np.array([np.nan]))
    assert out["mean"] == out["median"] == out["iqm"] == 123.0
    assert out["mean_ci95"] is None and out["median_ci95"] is None and out["iqm_ci95"] is None
    assert out["solve_rate"] == 0.0
    low, high = out["solve_rate_ci95"]
    assert low == 0.0 and 0.7 < high < 0.9  # Wilson for 0/1: z^2 / (1 + z^2) = 0.793
    with pytest.raises(ValueError):
        bootstrap_interval(np.array([1.0]), np.mean)


def test_solve_rate_and_its_wilson_interval():
    out = group_statistics(np.arange(4.0), np.array([True, True, True, False]), np.array([1.0, 2.0, 3.0, np.nan]))
    assert out["solve_rate"] == 0.75
    z, n, p = scipy_stats.norm.ppf(0.975), 4, 0.75
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    assert out["solve_rate_ci95"] == pytest.approx([centre - half, centre + half])
    low, high = wilson_interval(64, 64)
    assert high == pytest.approx(1.0) and 0.93 < low < 0.95  # all solved still leaves doubt


def test_solve_step_quartiles_over_runs_that_reached_the_threshold():
    out = solve_steps(np.array([400.0, np.nan, 100.0, 300.0, 200.0]))
    assert out == {"count": 4, "median": 250.0, "quartiles": [175.0, 325.0], "min": 100.0, "max": 400.0}
    group = group_statistics(np.zeros(3), np.array([True, False, True]), [5000, None, 7000])
    assert group["solve_steps"]["count"] == 2 and group["solve_steps"]["median"] == 6000.0
    none = solve_steps(np.full(3, np.nan))
    assert none == {"count": 0, "median": None, "quartiles": [None, None], "min": None, "max": None}


def test_non_finite_returns_give_no_return_statistics():
    out = group_statistics(np.array([1.0, np.nan, 3.0]), np.array([False] * 3), np.full(3, np.nan))
    assert out["mean"] is None and out["iqm_ci95"] is None
    assert out["solve_rate"] == 0.0
    with pytest.raises(ValueError):
        group_statistics(np.zeros(3), np.zeros(2, bool), np.zeros(3))


def test_nan_among_the_values_gives_nan_bounds_and_no_warning():
    import warnings

    values = np.ones((3, 4))
    values[0, 2] = np.nan  # a run that diverged to NaN at one point of a curve
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        low, high = bootstrap_interval(values, np.mean, axis=0, reps=100)
        everywhere = bootstrap_interval(np.full((3, 4), np.nan), iqm, axis=0, reps=100)
    assert caught == []  # scipy's DegenerateDataWarning (and its source line) is not printed
    np.testing.assert_array_equal(low, [1.0, 1.0, np.nan, 1.0])
    np.testing.assert_array_equal(high, [1.0, 1.0, np.nan, 1.0])
    assert np.isnan(everywhere).all()
