"""One chunk builder: `segments.split_into_chunks` makes the chunks the sweep, halving's rungs and --resume made."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from pgjax.running import grid, sweep
from pgjax.running.halving import _rung_chunks
from pgjax.running.run_folder import resume
from pgjax.running.segments import Chunk, split_into_chunks

from .conftest import small_config


# The three builders as they were before `split_into_chunks` (issue 22 item 5), kept to compare with.
def _old_plan_chunks(sizes: list[int], num_runs: list[int]) -> list[Chunk]:
    """`sweep.plan_chunks`' loop, given each group's chunk size and number of runs."""
    chunks = []
    for g, (size, runs) in enumerate(zip(sizes, num_runs)):
        for start in range(0, runs, size):
            positions = np.arange(start, min(start + size, runs))
            chunks.append(Chunk(len(chunks), g, positions, size))
    return chunks


def _old_rung_chunks(alive, group_of, chunk_size, num_seeds) -> list[Chunk]:
    """`halving._rung_chunks`."""
    chunks = []
    for g in sorted({group_of[index][0] for index in alive}):
        positions = np.array([group_of[index][1] * num_seeds + k for index in alive if group_of[index][0] == g
                              for k in range(num_seeds)], np.int64)
        size = chunk_size[g]
        for begin in range(0, positions.size, size):
            chunks.append(Chunk(len(chunks), g, positions[begin:begin + size], size))
    return chunks


def _old_chunks_of(plan: list[dict]) -> list[Chunk]:
    """`resume.chunks_of`."""
    chunks = []
    for entry in plan:
        size, num_runs = entry["chunk_size"], entry["num_runs"]
        for start in range(0, num_runs, size):
            chunks.append(Chunk(len(chunks), entry["group"], np.arange(start, min(start + size, num_runs)), size))
    return chunks


def _assert_same(new: list[Chunk], old: list[Chunk]) -> None:
    assert len(new) == len(old) > 0
    for a, b in zip(new, old):
        assert (type(a.index), a.index, type(a.group), a.group, a.size) == (
            type(b.index), b.index, type(b.group), b.group, b.size)
        assert a.positions.dtype == b.positions.dtype and a.positions.shape == b.positions.shape
        np.testing.assert_array_equal(a.positions, b.positions)


def test_split_into_chunks_cuts_in_order_with_a_shorter_last_chunk():
    chunks = split_into_chunks(2, np.array([5, 1, 7, 3, 9], np.int64), 2, first_index=4)
    assert [(c.index, c.group, c.positions.tolist(), c.size) for c in chunks] == [
        (4, 2, [5, 1], 2), (5, 2, [7, 3], 2), (6, 2, [9], 2)]
    assert split_into_chunks(0, np.arange(6), 3)[-1].positions.tolist() == [3, 4, 5]  # even: no short chunk
    assert split_into_chunks(0, np.arange(0), 3) == []
    with pytest.raises(ValueError, match="at least 1"):
        split_into_chunks(0, np.arange(4), 0)


@pytest.mark.parametrize("sizes, num_runs", [([4], [10]), ([3, 5], [7, 5]), ([1, 8, 2], [3, 8, 9]), ([16], [6])])
def test_resume_rebuilds_the_chunks_it_built_before(sizes, num_runs):
    plan = [{"group": g, "chunk_size": s, "num_runs": r} for g, (s, r) in enumerate(zip(sizes, num_runs))]
    _assert_same(resume.chunks_of(plan), _old_chunks_of(plan))
    _assert_same(resume.chunks_of(plan), _old_plan_chunks(sizes, num_runs))
    assert resume.chunk_plan(resume.chunks_of(plan)) == plan


@pytest.mark.parametrize("max_parallel", [2, 4, 5, 100])
def test_plan_chunks_builds_the_chunks_it_built_before(max_parallel):
    """Two compile groups (3 and 2 grid points) x 3 seeds: 9 and 6 runs, cut unevenly for most sizes."""
    points = grid.expand_grid(small_config(num_updates=6), {"hidden": [(8,), (16,)]},
                              {"learning_rate": [0.01, 0.02, 0.03]})
    groups = grid.compile_groups(points)
    groups[1] = groups[1][:2]
    chunks, estimates = sweep.plan_chunks(groups, 3, jax.devices(), max_parallel=max_parallel)
    sizes = [e["chunk_size"] for e in estimates]
    _assert_same(chunks, _old_plan_chunks(sizes, [9, 6]))
    assert {c.group for c in chunks} == {0, 1}


@pytest.mark.parametrize("alive, sizes", [
    ([0, 1, 2, 3, 4, 5, 6], {0: 4, 1: 2}),
    ([0, 2, 5, 6], {0: 4, 1: 2}),  # survivors: group 0 keeps points 0 and 2, group 1 points 1 and 2
    ([1, 6], {0: 3, 1: 5}),
    ([5], {0: 2, 1: 2}),  # only the second group left: its chunks still number from 0
])
def test_rung_chunks_builds_the_chunks_it_built_before(alive, sizes):
    """Grid points 0-3 in group 0 and 4-6 in group 1, 3 seeds each; positions of survivors skip the others'."""
    group_of = {index: (0, index) if index < 4 else (1, index - 4) for index in range(7)}
    new, old = _rung_chunks(alive, group_of, sizes, 3), _old_rung_chunks(alive, group_of, sizes, 3)
    _assert_same(new, old)
    if alive == [0, 2, 5, 6]:
        assert [c.positions.tolist() for c in new] == [[0, 1, 2, 6], [7, 8], [3, 4], [5, 6], [7, 8]]
        assert [c.index for c in new] == [0, 1, 2, 3, 4] and [c.group for c in new] == [0, 0, 1, 1, 1]
