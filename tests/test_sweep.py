"""Sweeps: grid expansion, seed pairing, chunking, resuming, divergence, memory estimate, progress."""

from __future__ import annotations

import io

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from rich.console import Console

from pgjax.algo.trainer import make_train
from pgjax.results import summary, tables
from pgjax.running import grid, memory, sweep
from pgjax.running.progress import SweepProgress

from .conftest import small_config
from .test_memory import XLA_FACTOR

NUM_SEEDS = 3
NUM_UPDATES = 6


def _groups(lrs=(0.01, 0.03), **static):
    base = small_config(num_updates=NUM_UPDATES, **static)
    return grid.compile_groups(grid.expand_grid(base, {}, {"learning_rate": list(lrs)}))


def _same(a, b) -> bool:
    return all(jax.tree.leaves(jax.tree.map(np.array_equal, a, b)))


@pytest.fixture(scope="module")
def whole():
    """2 learning rates x 3 seeds in one chunk, segments of 4 updates (4 + 2)."""
    results, info = sweep.train_sweep(_groups(), NUM_SEEDS, 10, segment_updates=4)
    return results[0], info


def test_grid_expands_every_combination_and_groups_static_settings():
    base = small_config()
    points = grid.expand_grid(base, {"hidden": [(8,), (16, 16)]}, {"learning_rate": [0.1, 0.2, 0.3], "gamma": [1.0]})
    assert len(points) == 6 and [p.index for p in points] == list(range(6))
    assert [p.config.static.hidden for p in points] == [(8,)] * 3 + [(16, 16)] * 3
    assert [p.config.hparams.learning_rate for p in points] == [0.1, 0.2, 0.3] * 2
    groups = grid.compile_groups(points)
    assert [[p.index for p in g] for g in groups] == [[0, 1, 2], [3, 4, 5]]
    assert grid.varied_settings([p.hyperparameters() for p in points]) == ["hidden", "learning_rate"]
    with pytest.raises(ValueError, match="learning_rate must be > 0"):
        grid.expand_grid(base, {}, {"learning_rate": [0.1, -1.0]})


def test_seeds_are_paired_across_grid_points():
    points = grid.expand_grid(small_config(), {}, {"learning_rate": [0.1, 0.2]})
    runs, seeds, hparams = grid.group_runs(points, 3, first_seed=7)
    np.testing.assert_array_equal(runs, [0, 1, 2, 3, 4, 5])
    np.testing.assert_array_equal(seeds, [7, 8, 9, 7, 8, 9])
    np.testing.assert_allclose(hparams.learning_rate, [0.1] * 3 + [0.2] * 3)


def test_sweep_trains_what_the_plain_vmapped_function_trains(whole):
    result, info = whole
    assert info["chunks"] == 1 and info["devices"] == 2 and info["compile_seconds"] > 0
    points = [p for g in _groups() for p in g]
    _, seeds, hparams = grid.group_runs(points, NUM_SEEDS, 10)
    keys = jax.vmap(jax.random.key)(jnp.asarray(seeds))
    state, metrics = jax.jit(jax.vmap(make_train(points[0].config)))(keys, jax.tree.map(jnp.asarray, hparams))
    assert result.metrics.episode_returns.shape == (6, NUM_UPDATES, 4)
    np.testing.assert_array_equal(result.metrics.episode_returns, np.asarray(metrics.episode_returns))
    # 3 runs per device here, 6 on one device there: the same up to float summation order
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), result.state.params,
                 jax.tree.map(np.asarray, state.params))


def test_chunks_give_the_runs_of_one_big_batch(whole):
    result, _ = whole
    chunked, info = sweep.train_sweep(_groups(), NUM_SEEDS, 10, segment_updates=4, max_parallel=2)
    assert info["chunks"] == 3 and info["chunk_sizes"] == [2]
    np.testing.assert_array_equal(chunked[0].runs, result.runs)
    np.testing.assert_array_equal(chunked[0].metrics.episode_returns, result.metrics.episode_returns)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                 chunked[0].state.params, result.state.params)


def test_a_stopped_sweep_resumes_to_the_uninterrupted_result(whole, tmp_path):
    result, _ = whole
    polls = []

    def stop_at_third_segment():
        polls.append(1)
        return len(polls) == 3

    with pytest.raises(sweep.Interrupted):
        sweep.train_sweep(_groups(), NUM_SEEDS, 10, segment_updates=4, max_parallel=2, run_dir=tmp_path,
                          checkpoint_every=3, should_stop=stop_at_third_segment)
    # chunk 0 finished (segments 3 + 3), chunk 1 stopped after 3 updates; chunk 2 never started
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["chunk-0000", "chunk-0001"]
    resumed, info = sweep.train_sweep(_groups(), NUM_SEEDS, 10, segment_updates=4, max_parallel=2, run_dir=tmp_path)
    assert info["resumed_updates"] == NUM_UPDATES + 3
    # chunk 0 (runs 0, 1) was restored whole, chunk 1 (runs 2, 3) after 3 of its updates
    restored_steps = result.metrics.env_steps[:2, -1].sum() + result.metrics.env_steps[2:4, 2].sum()
    assert info["resumed_env_steps"] == restored_steps > 0
    # env steps per second counts only the steps trained in this process
    points = [p for g in _groups() for p in g]
    resumed_summary = summary.summarise(points, NUM_SEEDS, "default", resumed, {**info, "wall_seconds": 1.0}, 475.0)
    assert resumed_summary["env_steps_total"] == result.metrics.env_steps[:, -1].sum()
    assert resumed_summary["env_steps_trained"] == resumed_summary["env_steps_total"] - restored_steps
    assert resumed_summary["env_steps_per_second"] == pytest.approx(
        resumed_summary["env_steps_trained"] / info["run_seconds"])
    shown = io.StringIO()
    tables.print_report(resumed_summary, Console(file=shown, width=300))
    assert f"{resumed_summary['env_steps_trained']:,} env steps in" in shown.getvalue()
    assert f"and {restored_steps:,} restored from checkpoints" in shown.getvalue()
    assert "percentile bootstrap over runs" in shown.getvalue()
    # resumed with chunks of 2 against a single chunk of 6: the episodes are the same
    np.testing.assert_array_equal(resumed[0].metrics.episode_returns, result.metrics.episode_returns)
    uninterrupted, _ = sweep.train_sweep(_groups(), NUM_SEEDS, 10, segment_updates=4, max_parallel=2)
    assert _same((resumed[0].state, resumed[0].metrics), (uninterrupted[0].state, uninterrupted[0].metrics))


def test_a_divergent_run_is_frozen_flagged_and_leaves_the_others_alone(whole):
    result, _ = whole
    diverging, _ = sweep.train_sweep(_groups(lrs=(0.01, 1000.0)), NUM_SEEDS, 10, segment_updates=4)
    metrics = diverging[0].metrics
    assert not metrics.diverged[:NUM_SEEDS].any() and metrics.diverged[NUM_SEEDS:, -1].all()
    # the lr=0.01 runs are bitwise those of the sweep with lr 0.01 and 0.03 (same batch shape)
    sane = slice(0, NUM_SEEDS)
    assert _same(jax.tree.map(lambda x: x[sane], (diverging[0].state, metrics)),
                 jax.tree.map(lambda x: x[sane], (result.state, result.metrics)))
    # frozen: the diverged runs' parameters stay finite and within the limit
    for leaf in jax.tree.leaves(diverging[0].state.params):
        assert np.all(np.abs(leaf[NUM_SEEDS:]) <= 1e3)


def test_memory_estimate_covers_what_xla_allocates(whole):
    _, info = whole
    (estimate,) = info["memory_estimate"]
    planned = estimate["chunk_size"] * estimate["run_bytes"] + info["devices"] * estimate["device_bytes"]
    assert info["memory_bytes"] <= planned <= XLA_FACTOR * info["memory_bytes"], (info["memory_bytes"], planned)


def test_chunk_size_fits_memory_and_says_what_to_set():
    assert memory.chunk_size(100, per_run=10, per_device=0, num_devices=2, available=None) == 100
    assert memory.chunk_size(101, per_run=10, per_device=0, num_devices=2, available=None) == 102
    assert memory.chunk_size(100, per_run=10, per_device=0, num_devices=2, available=400) == 20
    assert memory.chunk_size(100, per_run=10, per_device=0, num_devices=2, available=None, max_parallel=7) == 8
    with pytest.raises(ValueError, match="set --max-parallel 20 or less"):
        memory.chunk_size(100, per_run=10, per_device=0, num_devices=2, available=400, max_parallel=50)
    with pytest.raises(ValueError, match="one run per device needs 2.0 KiB but only 400 B is free"):
        memory.chunk_size(100, per_run=1000, per_device=0, num_devices=2, available=400)
    with pytest.raises(ValueError, match="at least 2"):
        memory.chunk_size(100, per_run=10, per_device=0, num_devices=2, available=None, max_parallel=1)


def _report(updates_done: int) -> sweep.SegmentReport:
    chunk = sweep.Chunk(0, 0, np.arange(4), 4)
    return sweep.SegmentReport(chunk, 1, updates_done, 10, 5, 12345, 0.5, 42.0)


def test_progress_bar_draws_on_a_terminal_and_is_silent_when_off():
    shown = io.StringIO()
    with SweepProgress(40, Console(file=shown, force_terminal=True, width=150), enabled=True) as progress:
        progress.report(_report(5))  # 4 runs x 5 updates of 4 runs x 10: half the work
        assert progress.done == 20 and progress.seconds_left() == pytest.approx(0.5)
        progress.report(_report(10))
    text = shown.getvalue()
    assert "100%" in text and "return 42.0" in text and "steps/s" in text
    silent = io.StringIO()
    with SweepProgress(10, Console(file=silent, force_terminal=True), enabled=False) as progress:
        progress.report(_report(5))
    assert silent.getvalue() == ""


def test_cpu_devices_train_at_most_64_runs_each_by_default():
    devices = jax.devices()
    assert memory.default_max_parallel(devices) == 64 * len(devices)
    chunks, estimates = sweep.plan_chunks(_groups(), 150, devices, max_parallel=None)
    assert [c.positions.size for c in chunks] == [128, 128, 44] and {c.size for c in chunks} == {128}
    chunks, _ = sweep.plan_chunks(_groups(), 150, devices, max_parallel=300)
    assert [c.positions.size for c in chunks] == [300]
