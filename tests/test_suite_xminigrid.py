"""xminigrid by name (`--env xminigrid/NAME`): building, stepping, termination vs truncation, --env-kwargs,
training."""

from __future__ import annotations

import re

import pytest

xminigrid = pytest.importorskip("xminigrid")

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from pgjax.algo.envs import action_codec, make_env, observation_codec  # noqa: E402
from pgjax.algo.suites import suite_preset, xminigrid_suite  # noqa: E402
from tests import suite_checks  # noqa: E402
from tests.suite_checks import shortened_preset  # noqa: E402

EMPTY = "xminigrid/MiniGrid-Empty-5x5"
# xminigrid's actions: 0 forward, 1 turn clockwise, 2 turn counter-clockwise
FORWARD, CW, CCW = 0, 1, 2
# From (1, 1) facing east to the goal at (3, 3): two forward, turn south, two forward.
TO_GOAL = (FORWARD, FORWARD, CW, FORWARD, FORWARD)


def play(env: str, actions, env_kwargs=()):
    """`tests.suite_checks.play`, rewards to 4 decimals."""
    return suite_checks.play(env, actions, env_kwargs, digits=4)


def test_every_minigrid_task_builds_with_gymnax_spaces():
    assert "MiniGrid-Empty-5x5" in xminigrid_suite.names()
    for name in xminigrid_suite.names():
        if name.startswith("XLand-"):
            continue
        env, params = xminigrid_suite.make(name)
        obs = observation_codec(env.observation_space(params), name)
        assert action_codec(env.action_space(params), name).num_actions == 6
        assert obs.shape == (params.view_size, params.view_size, 2) and obs.dtype == "float32"
        assert env.max_steps_in_episode == params.max_steps >= 1


@pytest.mark.parametrize("name", ["MiniGrid-Empty-5x5", "MiniGrid-DoorKey-5x5", "MiniGrid-FourRooms",
                                  "MiniGrid-MemoryS8"])
def test_tasks_build_by_name(name):
    spec = make_env(f"xminigrid/{name}")
    _, params = xminigrid.make(name)
    assert spec.route == "step" and spec.action_kind == "discrete" and spec.num_actions == 6
    assert spec.max_steps == params.max_steps and spec.obs_shape == (params.view_size, params.view_size, 2)


def test_reaching_the_goal_terminates():
    steps = play(EMPTY, TO_GOAL)
    assert steps[:-1] == [(0.0, False, False)] * 4
    assert steps[-1] == (round(1 - 0.9 * 5 / 100, 4), True, False)  # xminigrid pays 1 - 0.9 * steps / max_steps


def test_the_time_limit_truncates_and_is_not_a_termination():
    steps = play(EMPTY, (CW, CW, CW), env_kwargs=("max_steps=3",))
    assert steps == [(0.0, False, False), (0.0, False, False), (0.0, False, True)]


def test_reaching_the_goal_at_the_time_limit_is_a_termination():
    steps = play(EMPTY, TO_GOAL, env_kwargs=(f"max_steps={len(TO_GOAL)}",))
    assert steps[-1] == (0.1, True, False)


def test_env_kwargs_reach_the_params_and_the_step_limit_follows_the_size():
    spec = make_env(EMPTY, env_kwargs=("height=7", "view_size=3"))
    assert (spec.params.height, spec.params.width, spec.params.view_size) == (7, 5, 3)
    assert spec.max_steps == 4 * 7 * 5  # Empty's default_params: 4 * height * width
    assert spec.obs_shape == (3, 3, 2)
    assert make_env(EMPTY, env_kwargs=("max_steps=20",)).max_steps == 20


def test_wrong_env_kwargs_are_one_line():
    with pytest.raises(ValueError, match=re.escape("takes no argument 'size' (it takes height, width, view_size")):
        make_env(EMPTY, env_kwargs=("size=7",))
    with pytest.raises(ValueError, match="plays the rules of a benchmark: give --env-kwargs benchmark=NAME"):
        make_env("xminigrid/XLand-MiniGrid-R1-9x9")
    with pytest.raises(ValueError, match="benchmark=tiny: xminigrid's benchmarks are trivial-21k"):
        make_env("xminigrid/XLand-MiniGrid-R1-9x9", env_kwargs=("benchmark=tiny",))


def test_an_unknown_task_gets_a_suggestion():
    with pytest.raises(ValueError, match="xminigrid has no task 'MiniGrid-Empty-5x5-v0'; did you mean "
                                         "xminigrid/MiniGrid-Empty-5x5"):
        make_env("xminigrid/MiniGrid-Empty-5x5-v0")


def test_the_preset_learns_above_a_random_policy():
    """The adapter's preset, shortened: a random policy returns about 0.24."""
    preset = suite_preset(EMPTY)
    assert preset is xminigrid_suite.PRESETS["MiniGrid-Empty-5x5"]
    returns, loss = shortened_preset(preset, num_updates=40, seeds=4)
    assert np.all(np.isfinite(loss))
    assert returns[:, -5:].mean() > 0.8, returns[:, -5:].mean(axis=1)


def test_an_xland_task_plays_the_ruleset_of_the_benchmark_named(monkeypatch):
    """xminigrid.load_benchmark downloads its data; here it gives a benchmark of two rulesets made in place."""
    from xminigrid.benchmarks import Benchmark
    from xminigrid.core.constants import TILES_REGISTRY, Colors, Tiles
    from xminigrid.core.goals import AgentOnTileGoal
    from xminigrid.core.rules import EmptyRule

    tiles = (TILES_REGISTRY[Tiles.BALL, Colors.RED], TILES_REGISTRY[Tiles.SQUARE, Colors.BLUE])
    benchmark = Benchmark(goals=jnp.stack([AgentOnTileGoal(tile=tile).encode() for tile in tiles]),
                          rules=jnp.stack([EmptyRule().encode()[None]] * 2),
                          init_tiles=jnp.stack([tile[None] for tile in tiles]), num_rules=jnp.zeros(2, jnp.int32))
    named = []
    monkeypatch.setattr(xminigrid, "load_benchmark", lambda name: named.append(name) or benchmark)
    spec = make_env("xminigrid/XLand-MiniGrid-R1-9x9", env_kwargs=("benchmark=trivial-21k", "ruleset=1"))
    assert named == ["trivial-21k"]
    np.testing.assert_array_equal(spec.params.ruleset.goal, benchmark.goals[1])
    np.testing.assert_array_equal(spec.params.ruleset.init_tiles, benchmark.init_tiles[1])
    assert spec.max_steps == 3 * 9 * 9 and spec.obs_shape == (5, 5, 2)  # XLand's default_params
    with pytest.raises(ValueError, match="ruleset=2: the benchmark trivial-21k has rulesets 0 to 1"):
        make_env("xminigrid/XLand-MiniGrid-R1-9x9", env_kwargs=("benchmark=trivial-21k", "ruleset=2"))
