"""jumanji's environments by name (`--env jumanji/NAME`, pgjax.algo.suites.jumanji_suite), against the real package."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("jumanji")

from pgjax.algo.envs import make_env  # noqa: E402
from pgjax.algo.suites import suite_names, suite_preset  # noqa: E402
from pgjax.algo.trainer import make_train  # noqa: E402
from tests.conftest import small_config  # noqa: E402
from tests.suite_checks import untrained_moves  # noqa: E402

SMALL_SNAKE = ("num_rows=5", "num_cols=5", "time_limit=30")
UP, RIGHT, DOWN, LEFT = range(4)


def snake(*pairs: str):
    return make_env("jumanji/Snake-v1", env_kwargs=pairs or SMALL_SNAKE)


def test_names_are_jumanjis_registered_ids():
    import jumanji

    assert set(suite_names("jumanji")) == set(jumanji.registered_environments())
    assert "Snake-v1" in suite_names("jumanji")


@pytest.mark.parametrize("name, kind, mask", [
    ("Snake-v1", "discrete", 4),
    ("Game2048-v1", "discrete", 4),
    ("Maze-v0", "discrete", 4),
    ("Cleaner-v0", "multi_discrete", 12),  # 3 agents x 4 moves: a mask per entry
    ("Tetris-v0", "multi_discrete", 0),  # a joint [4, 10] mask of (rotation, column): features, not a mask
])
def test_tasks_build_by_name(name, kind, mask):
    spec = make_env(f"jumanji/{name}", max_episode_steps=50)
    assert (spec.action_kind, spec.mask_size, spec.name) == (kind, mask, f"jumanji/{name}")
    obs, _ = spec.env.reset(jax.random.key(0), spec.params)
    assert spec.encode_obs(obs).shape == spec.obs_shape
    if not mask:
        assert "joint_action_mask" in obs and "action_mask" not in obs


def test_the_time_limit_is_the_step_limit_and_a_cap_lowers_it():
    assert snake().max_steps == 30
    assert make_env("jumanji/Snake-v1", env_kwargs=SMALL_SNAKE, max_episode_steps=10).max_steps == 10
    with pytest.raises(ValueError, match="max-episode-steps"):
        make_env("jumanji/Game2048-v1")  # 2048 has no time limit


def run(spec, first_obs, state, choose, steps):
    """[(action, reward, terminated, truncated)] of up to `steps` steps, `choose(obs)` picking each action."""
    obs, out, step = first_obs, [], jax.jit(spec.env.step)
    for _ in range(steps):
        action = choose(obs)
        obs, state, reward, terminated, truncated, _ = step(jax.random.key(0), state, action, None)
        out.append((int(action), float(reward), bool(terminated), bool(truncated)))
        if terminated or truncated:
            break
    return out


def test_snake_reaching_its_time_limit_is_a_truncation_not_a_termination():
    """jumanji's Snake reports its own time limit as a termination (discount 0, as a crash): the adapter says
    truncation, and a crash into the wall stays a termination."""
    spec = snake("num_rows=6", "num_cols=6", "time_limit=4")
    obs, state = spec.env.reset(jax.random.key(0), None)
    legal_moves = run(spec, obs, state, lambda obs: jnp.argmax(obs["action_mask"]), 10)
    assert [step[2:] for step in legal_moves] == [(False, False)] * 3 + [(False, True)]
    obs, state = spec.env.reset(jax.random.key(0), None)
    up_into_the_wall = run(spec, obs, state, lambda obs: jnp.int32(UP), 10)
    assert up_into_the_wall[-1][2:] == (True, False) and len(up_into_the_wall) < 4


def test_a_discount_above_zero_on_the_last_step_is_a_truncation(monkeypatch):
    """Connector-v3 gives jumanji's own `truncation` (discount 1) at its time limit; it is multi-agent, so the
    reading is checked on the adapter's step with a TimeStep of that kind in place of Snake's."""
    from jumanji.types import truncation

    env = snake().env
    obs, state = env.reset(jax.random.key(0), None)
    real_step = env._stepper.step

    class Truncating:
        @staticmethod
        def step(env_state, action):
            next_state, timestep = real_step(env_state, action)
            return next_state, truncation(reward=timestep.reward, observation=timestep.observation)

    monkeypatch.setattr(env, "_stepper", Truncating())
    _, _, _, terminated, truncated, _ = env.step(jax.random.key(0), state, jnp.argmax(obs["action_mask"]), None)
    assert (bool(terminated), bool(truncated)) == (False, True)


def test_env_kwargs_reach_the_constructor_and_a_wrong_one_names_what_it_takes():
    spec = snake("num_rows=7", "num_cols=5", "time_limit=30")
    obs, _ = spec.env.reset(jax.random.key(0), None)
    assert obs["grid"].shape == (7, 5, 5)
    assert spec.env.env.num_rows == 7
    with pytest.raises(ValueError, match=r"takes no argument 'rows' \(it takes num_rows, num_cols, time_limit"):
        snake("rows=6")
    with pytest.raises(ValueError, match="num_rows=six: the factory takes num_rows as int"):
        snake("num_rows=six")


def test_an_unknown_task_gets_a_suggestion():
    with pytest.raises(ValueError, match="jumanji has no task 'Snake-v2'; did you mean jumanji/Snake-v1"):
        make_env("jumanji/Snake-v2")


def test_a_reward_per_agent_is_refused_in_one_line():
    with pytest.raises(ValueError, match="reward per agent"):
        make_env("jumanji/LevelBasedForaging-v0")


def test_the_preset_is_the_measured_one():
    preset = suite_preset("jumanji/Snake-v1")
    assert preset.static.env == "jumanji/Snake-v1" and "num_rows=6" in preset.static.env_kwargs


def test_no_illegal_action_is_ever_taken_from_the_first_update():
    """Untrained policies on a 5x5 grid, 128 episodes: every move is one the mask allows (an illegal move would
    end the episode with discount 0 the step it is taken)."""
    spec = snake()
    config = small_config(env="jumanji/Snake-v1", env_kwargs=SMALL_SNAKE)
    taken, valid, reward = untrained_moves(spec, config)
    assert valid.sum() > 128 * 5 and taken[valid].all()


def test_a_short_run_trains():
    config = small_config(env="jumanji/Snake-v1", env_kwargs=SMALL_SNAKE, num_updates=6, episodes_per_update=8)
    _, metrics = jax.jit(jax.vmap(make_train(config)))(jax.vmap(jax.random.key)(jnp.arange(2)))
    assert np.all(np.isfinite(np.asarray(metrics.loss)))
    assert np.all(np.asarray(metrics.episodes) == 8)
    assert np.all(np.asarray(metrics.grad_norm) > 0)
