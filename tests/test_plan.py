"""One plan, one run: `pgjax.running.plan` makes the plan and runs its stages; the train command stays thin."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import jax
import numpy as np
import pytest

from pgjax.commands.options import RunOptions, with_flag_names
from pgjax.running import grid, plan, strategy, sweep
from pgjax.running.confirm import Confirm
from pgjax.running.halving import Halving
from pgjax.running.tpe import TpeSearch

from .conftest import small_config

TRAIN = Path(__file__).resolve().parent.parent / "pgjax" / "commands" / "train.py"


def _points(lrs=(0.01, 0.03), **static):
    return grid.expand_grid(small_config(num_updates=4, **static), {}, {"learning_rate": list(lrs)})


def test_every_stage_has_the_strategy_interface():
    methods = [name for name, _ in inspect.getmembers(strategy.Strategy, inspect.isfunction)
               if not name.startswith("_")]
    assert sorted(methods) == ["fit_chunks", "notes", "train", "work"]
    for stage in (sweep.PlainSweep, Halving, TpeSearch, Confirm):
        for name in methods:
            wanted = inspect.signature(getattr(strategy.Strategy, name)).parameters
            assert list(inspect.signature(getattr(stage, name)).parameters) == list(wanted), (stage, name)


def test_the_stages_follow_the_run_options():
    points = _points()
    stages, seeds = plan.stages_of(points, None, RunOptions(num_seeds=2))
    assert stages == (sweep.PlainSweep(),) and seeds == 0
    stages, seeds = plan.stages_of(points, None, RunOptions(num_seeds=2, halving=2, rungs=2))
    assert [type(s) for s in stages] == [Halving, Confirm] and seeds == 16  # a halving is confirmed by default
    assert stages[0].rungs.rung_updates == (2, 4) and stages[1] == Confirm(16, 3)
    stages, seeds = plan.stages_of(points[:1], None, RunOptions(num_seeds=2, confirm_seeds=4))
    assert stages == (sweep.PlainSweep(),) and seeds == 0  # one point: nothing was chosen
    record = {"sampler": "tpe", "num_samples": 2, "ranges": {"learning_rate": {"low": 0.001, "high": 0.1,
                                                                               "scale": "log"}},
              "asked_points": 1}
    stages, seeds = plan.stages_of(points, record, RunOptions(num_seeds=2, seed=5, confirm_seeds=0))
    assert stages == (TpeSearch(stages[0].ranges, 5, (1, 1), recorded=1),) and seeds == 0
    with pytest.raises(ValueError, match="is damaged: its search has asked_points 3"):
        plan.stages_of(points, {**record, "asked_points": 3}, RunOptions(), Path("x/config.json"))


def test_a_plan_runs_as_the_sweep_it_plans():
    """`run_plan` of a plain sweep's plan trains what `train_sweep` trains with the plan's chunks, bitwise."""
    points, options = _points(), RunOptions(num_seeds=2, seed=3, max_parallel=2)
    stages, _ = plan.stages_of(points, None, options)
    made = plan.make_plan("default", points, stages, options, jax.devices())
    assert made.num_runs == 4 and len(made.groups) == 1 and [c.size for c in made.chunks] == [2, 2]
    assert made.estimates[0]["chunk_size"] == 2 and made.env_has_preset and not made.resuming
    lines = plan.describe(made)
    assert lines[-1].startswith("plan: 4 runs (2 grid points x 2 seeds) | 1 compile group | 2 chunks x 2 runs")
    trained = plan.run_plan(made, strategy.Hooks())
    results, _ = sweep.train_sweep(made.groups, 2, 3, chunks=made.chunks)
    assert trained.points == points and trained.outcome is None and trained.confirmed is None
    for name in ("state", "metrics"):
        same = jax.tree.map(np.array_equal, getattr(trained.results[0], name), getattr(results[0], name))
        assert all(jax.tree.leaves(same)), name


def test_a_network_the_environment_cannot_take_is_refused_with_its_flags():
    points = _points(network="cnn")
    options = RunOptions(num_seeds=1)
    with pytest.raises(ValueError, match="--network 'cnn' needs image observations"):
        plan.make_plan("default", points, (sweep.PlainSweep(),), options, jax.devices(), flag_names=with_flag_names)


def test_the_train_command_imports_at_most_eight_pgjax_modules():
    """The command parses, plans, prints, runs and prints: the layers do the rest (import statements anywhere
    in it, lazy ones too; the packages `from pgjax.x import module` names are not counted)."""
    imported = set()
    for node in ast.walk(ast.parse(TRAIN.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pgjax"):
            package = node.module in ("pgjax.commands", "pgjax.results", "pgjax.running", "pgjax.algo")
            imported |= {f"{node.module}.{a.name}" for a in node.names} if package else {node.module}
        elif isinstance(node, ast.Import):
            imported |= {a.name for a in node.names if a.name.startswith("pgjax")}
    assert len(imported) <= 8, sorted(imported)
    assert not any(name.startswith("pgjax.commands.train_") for name in imported)
