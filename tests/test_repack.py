"""Repacking successive halving's survivors into smaller chunks: the cost model, the plain path's results, resumes."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from pgjax.results import summary
from pgjax.running import grid, sweep
from pgjax.running.halving import HalvingPlan, train_halving
from pgjax.running.repack import RungCost, choose_chunk_size, fitted_size, read_sizes, sizes_file, write_sizes
from pgjax.running.run_folder.checkpoints import CheckpointMismatch

from .conftest import small_config

NUM_SEEDS = 2
LRS = (0.003, 0.01, 0.03, 0.1, 0.3, 0.5)
PLAN = HalvingPlan.make(6, 3, 2)  # rungs at 2 and 6 updates: 6 -> 2 configurations


def test_the_fitted_size_is_the_fewest_chunks_each_as_small_as_they_can_be():
    assert fitted_size(36, 108, 2) == 36
    assert fitted_size(35, 108, 2) == 36  # a multiple of the devices
    assert fitted_size(200, 128, 2) == 100  # two chunks of 100, not 128 + 72
    assert fitted_size(256, 128, 2) == 128
    assert fitted_size(3, 4, 4) == 4


def test_the_cost_model_repacks_when_the_padding_it_saves_outweighs_a_compile():
    cost = RungCost(seconds_per_slot_step=1e-5, compile_seconds=3.0)
    # 72 padded slots x 22 updates x 100 loop steps x 1e-5 s = 1.6 s < 3 s: kept
    kept = choose_chunk_size(36, 108, 2, 22 * 100, cost)
    assert kept.size == 108 and not kept.repacked and kept.seconds_saved == pytest.approx(72 * 2200 * 1e-5)
    assert kept.text() == "36 runs in 1 chunk of 108, padding of 72 kept (a compile, about 3.0 s, for about 1.6 s of " \
                          "padding)"
    repacked = choose_chunk_size(36, 108, 2, 67 * 500, cost)  # 24 s of padding
    assert repacked.size == 36 and repacked.padded_runs_saved == 72
    assert repacked.text().startswith("36 runs in 1 chunk of 36, repacked from 108 (a compile, about 3.0 s")
    assert choose_chunk_size(36, 108, 2, 22 * 100, cost, compiled=True).size == 36  # no compile to pay
    assert choose_chunk_size(36, 108, 2, 67 * 500, cost, mode="off").size == 108
    assert choose_chunk_size(36, 108, 2, 1, cost, mode="always").size == 36
    assert choose_chunk_size(36, 108, 2, 1, None).size == 36  # nothing measured: whenever it saves padding
    assert choose_chunk_size(108, 108, 2, 1e9, cost).text() == "108 runs in 1 chunk of 108"
    with pytest.raises(ValueError, match="repack mode must be one of auto, off, always"):
        choose_chunk_size(36, 108, 2, 1, cost, mode="sometimes")


def _groups():
    return grid.compile_groups(grid.expand_grid(small_config(num_updates=6), {}, {"learning_rate": list(LRS)}))


def _halve(repack: str, **kwargs):
    chunks, _ = sweep.plan_chunks(_groups(), NUM_SEEDS, jax.devices(), max_parallel=None, segment_updates=3)
    assert [c.size for c in chunks] == [12]  # one chunk: the survivors' 4 runs are padded to 12 without repacking
    return train_halving(_groups(), NUM_SEEDS, 0, PLAN, chunks, summary.halving_score, segment_updates=3,
                         repack=repack, **kwargs)


@pytest.fixture(scope="module")
def padded():
    return _halve("off")


def test_repacked_survivors_train_the_same_runs_in_a_fitted_chunk(padded, tmp_path):
    """The plain path (--repack off) against the fast one: the same selection and seeds; the first rung bitwise;
    the last rung in a chunk of 4 runs, each run's metrics those of the padded chunk's but for float rounding."""
    plain_results, plain_info, plain_outcome = padded
    results, info, outcome = _halve("always", run_dir=tmp_path)
    assert plain_outcome.chunk_sizes == [{0: 12}, {0: 12}] and outcome.chunk_sizes == [{0: 12}, {0: 4}]
    assert outcome.survivors == plain_outcome.survivors and outcome.rung == plain_outcome.rung
    assert outcome.choices[1][0].repacked and outcome.choices[1][0].padded_runs_saved == 8
    assert info["chunk_sizes"] == [4, 12] and plain_info["chunk_sizes"] == [12]
    assert json.loads(sizes_file(tmp_path, 1).read_text()) == {"0": 4}
    for fast, plain in zip(results, plain_results):
        np.testing.assert_array_equal(fast.seeds, plain.seeds)
        first = PLAN.rung_updates[0]
        for name in ("episode_return", "env_steps", "loss"):
            a, b = getattr(fast.metrics, name), getattr(plain.metrics, name)
            np.testing.assert_array_equal(a[:, :first], b[:, :first], err_msg=name)
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4, err_msg=name)
    # resumed (every chunk restored) under --repack off, it trains the recorded sizes: the same chunks
    _, resumed_info, resumed = _halve("off", run_dir=tmp_path)
    assert resumed.chunk_sizes == outcome.chunk_sizes and resumed.choices[1] == {}
    assert resumed_info["resumed_updates"] == 2 + (6 - 2)  # per chunk: rung 0 to update 2, rung 1 on to 6


def test_a_resumed_halving_reads_its_rung_sizes_back_and_refuses_edited_ones(tmp_path):
    write_sizes(tmp_path, 1, {0: 4})
    assert read_sizes(tmp_path, 1, {0: 12}, 2) == {0: 4}
    assert read_sizes(tmp_path, 2, {0: 12}, 2) is None  # not planned yet
    for edited in ('{"0": 5}', '{"0": 14}', '{"1": 4}', '{"0": 4.0}', '[4]', 'not json'):
        sizes_file(tmp_path, 1).write_text(edited)
        with pytest.raises(CheckpointMismatch, match=r"rung-1/chunk_sizes.json is not the chunk sizes of rung 2"):
            read_sizes(tmp_path, 1, {0: 12}, 2)
