"""navix by name (`--env navix/NAME`): building, stepping, termination vs truncation, --env-kwargs, training."""

from __future__ import annotations

import re

import pytest

navix = pytest.importorskip("navix")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from pgjax.algo.envs import action_codec, make_env, observation_codec, step_function  # noqa: E402
from pgjax.algo.suites import navix_suite, suite_preset  # noqa: E402
from tests.suite_checks import play, shortened_preset  # noqa: E402

EMPTY = "navix/Navix-Empty-5x5-v0"
# navix's MiniGrid action set: 0 rotate counter-clockwise, 1 rotate clockwise, 2 forward
CCW, CW, FORWARD = 0, 1, 2
# From (1, 1) facing east to the goal at (3, 3): two forward, turn south, two forward.
TO_GOAL = (FORWARD, FORWARD, CW, FORWARD, FORWARD)


def test_every_task_builds_with_gymnax_spaces():
    assert "Navix-Empty-5x5-v0" in navix_suite.names()
    for name in navix_suite.names():
        env, params = navix_suite.make(name)
        obs = observation_codec(env.observation_space(params), name)
        actions = action_codec(env.action_space(params), name)
        assert actions.kind == "discrete" and actions.num_actions == len(env.env.action_set)
        assert obs.shape == tuple(env.env.observation_space.shape) and env.max_steps_in_episode >= 1


@pytest.mark.parametrize("name", ["Navix-Empty-5x5-v0", "Navix-DoorKey-5x5-v0", "Navix-LavaGapS5-v0",
                                  "Navix-Dynamic-Obstacles-5x5-v0"])
def test_tasks_build_by_name(name):
    spec = make_env(f"navix/{name}")
    assert spec.route == "step" and spec.action_kind == "discrete" and spec.num_actions == 7
    assert spec.max_steps == navix.make(name).max_steps
    assert spec.obs_shape == (5, 5, 3) and spec.obs_dtype == "float32" and spec.obs_scale == 1.0


def test_reaching_the_goal_terminates():
    steps = play(EMPTY, TO_GOAL)
    assert steps[:-1] == [(0.0, False, False)] * 4
    assert steps[-1] == (1.0, True, False)


def test_the_time_limit_truncates_and_is_not_a_termination():
    steps = play(EMPTY, (CCW, CCW, CCW), env_kwargs=("max_steps=3",))
    assert steps == [(0.0, False, False), (0.0, False, False), (0.0, False, True)]


def test_no_auto_reset_after_an_episode_ends():
    spec = make_env(EMPTY)
    step = jax.jit(step_function(spec.env, spec.route))
    _, state = spec.env.reset(jax.random.key(0), spec.params)
    for action in (*TO_GOAL, CCW):
        _, state, *_ = step(jax.random.key(1), state, jnp.int32(action), spec.params)
    assert int(state.t) == len(TO_GOAL) + 1  # a reset would have put t back to 0


def test_env_kwargs_reach_navix():
    spec = make_env(EMPTY, env_kwargs=("max_steps=7", "observation_fn=rgb"))
    assert spec.max_steps == 7 and spec.env.env.max_steps == 7
    assert spec.env.env.observation_fn is navix.observations.rgb
    assert spec.obs_dtype == "uint8" and spec.obs_scale == pytest.approx(1 / 255) and spec.obs_shape[-1] == 3


@pytest.mark.parametrize("pairs, words", [
    (("colour=1",), "takes no argument 'colour' (it takes max_steps"),
    (("observation_fn=pixels",), "observation_fn=pixels: navix/Navix-Empty-5x5-v0 takes one of"),
    (("max_steps=many",), "takes max_steps as int"),
])
def test_wrong_env_kwargs_are_one_line(pairs, words):
    with pytest.raises(ValueError, match=re.escape(words)) as caught:
        make_env(EMPTY, env_kwargs=pairs)
    assert "\n" not in str(caught.value)


def test_an_unknown_task_gets_a_suggestion():
    with pytest.raises(ValueError, match="navix has no task 'Navix-Empty-5x5'; did you mean navix/Navix-Empty-5x5-v0"):
        make_env("navix/Navix-Empty-5x5")


def test_the_preset_learns_above_a_random_policy():
    """The adapter's preset, shortened: a random policy reaches the goal in about half the episodes (0.51)."""
    preset = suite_preset(EMPTY)
    assert preset is navix_suite.PRESETS["Navix-Empty-5x5-v0"]
    returns, loss = shortened_preset(preset, num_updates=40, seeds=4)
    assert np.all(np.isfinite(loss))
    assert returns[:, -5:].mean() > 0.8, returns[:, -5:].mean(axis=1)
