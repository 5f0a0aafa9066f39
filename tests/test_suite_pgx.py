"""pgx's games by name (`--env pgx/NAME`, pgjax.algo.suites.pgx_suite), against the real package."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("pgx")

from pgjax.algo.envs import legal_actions, make_env  # noqa: E402
from pgjax.algo.suites import suite_names, suite_preset  # noqa: E402
from pgjax.algo.trainer import make_train  # noqa: E402
from tests.conftest import small_config  # noqa: E402
from tests.suite_checks import untrained_moves  # noqa: E402


def test_names_are_the_games_pgx_lists():
    import pgx

    assert suite_names("pgx") == tuple(pgx.available_envs())


@pytest.mark.parametrize("name, actions, players", [
    ("2048", 4, 1), ("tic_tac_toe", 9, 2), ("connect_four", 7, 2), ("kuhn_poker", 2, 2),
])
def test_games_build_by_name_with_the_mask_as_a_leaf(name, actions, players):
    spec = make_env(f"pgx/{name}", max_episode_steps=40)
    assert (spec.num_actions, spec.mask_size, spec.env.num_players) == (actions, actions, players)
    obs, _ = spec.env.reset(jax.random.key(0), spec.params)
    assert spec.encode_obs(obs).shape == spec.obs_shape
    np.testing.assert_array_equal(np.asarray(legal_actions(spec, spec.encode_obs(obs))), obs["action_mask"])


def test_the_board_bounds_the_learners_moves_else_a_cap_is_needed():
    assert make_env("pgx/tic_tac_toe").max_steps == 5
    assert make_env("pgx/connect_four").max_steps == 21
    with pytest.raises(ValueError, match="max-episode-steps"):
        make_env("pgx/2048")


def play(reset, step, key, choose, moves=9):
    """The learner's moves of one game (`reset` and `step` the environment's, jitted), `choose(obs, key)` picking
    each: [(reward, terminated, truncated, the player to move after the opponents' replies, the learner's seat)]."""
    key, reset_key = jax.random.split(key)
    obs, state = reset(reset_key, None)
    out = []
    for move_key in jax.random.split(key, moves):
        choose_key, step_key = jax.random.split(move_key)
        obs, state, reward, terminated, truncated, _ = step(step_key, state, choose(obs, choose_key), None)
        out.append((float(reward), bool(terminated), bool(truncated), int(state.game.current_player),
                    int(state.learner)))
        if terminated or truncated:
            break
    return out


@jax.jit
def random_legal(obs, key):
    return jax.random.categorical(key, jnp.where(obs["action_mask"], 0.0, -jnp.inf))


def test_the_opponent_replies_inside_step_and_the_reward_is_the_learners():
    env = make_env("pgx/tic_tac_toe").env
    reset, step = jax.jit(env.reset), jax.jit(env.step)
    games = [play(reset, step, jax.random.key(seed), random_legal) for seed in range(40)]
    for game in games:
        *middle, last = game
        assert all(to_move == learner and not (te or tr) for _, te, tr, to_move, learner in middle)
        assert last[1] and not last[2] and last[0] in (-1.0, 0.0, 1.0)
    finals = {game[-1][0] for game in games}
    assert finals == {-1.0, 0.0, 1.0}  # wins, draws, and losses by the opponent's reply
    assert {game[0][4] for game in games} == {0, 1}  # first=random: the learner sits in either seat


def test_an_illegal_move_ends_the_game_with_minus_one_a_truncation_is_not_a_termination():
    env = make_env("pgx/tic_tac_toe").env
    obs, state = env.reset(jax.random.key(0), None)
    taken = jnp.argmin(obs["action_mask"])  # an occupied cell, where the opponent moved first
    if bool(obs["action_mask"][taken]):  # the learner moves first: play once so a cell is taken
        obs, state, *_ = env.step(jax.random.key(1), state, jnp.int32(4), None)
        taken = jnp.int32(4)
    _, _, reward, terminated, truncated, _ = env.step(jax.random.key(2), state, taken, None)
    assert (float(reward), bool(terminated), bool(truncated)) == (-1.0, True, False)
    obs, state = env.reset(jax.random.key(0), None)
    state = state._replace(game=state.game.replace(truncated=jnp.bool_(True)))
    _, _, _, terminated, truncated, _ = env.step(jax.random.key(3), state, jnp.argmax(obs["action_mask"]), None)
    assert (bool(terminated), bool(truncated)) == (False, True)


@pytest.mark.parametrize("first, opening_moves", [("learner", 0), ("opponent", 1)])
def test_env_kwargs_choose_who_moves_first(first, opening_moves):
    reset = jax.jit(make_env("pgx/tic_tac_toe", env_kwargs=(f"first={first}",)).env.reset)
    for seed in range(8):
        obs, state = reset(jax.random.key(seed), None)
        assert int(state.game._step_count) == opening_moves
        assert int(obs["action_mask"].sum()) == 9 - opening_moves


def test_env_kwargs_reach_the_games_constructor_and_wrong_ones_are_named():
    sticky = make_env("pgx/minatar-breakout", env_kwargs=("sticky_action_prob=0.0",), max_episode_steps=30)
    assert sticky.env.game.sticky_action_prob == 0.0 and make_env(
        "pgx/minatar-breakout", max_episode_steps=30).env.game.sticky_action_prob == 0.1
    with pytest.raises(ValueError, match=r"takes no argument 'size' \(it takes first\)"):
        make_env("pgx/tic_tac_toe", env_kwargs=("size=4",))
    with pytest.raises(ValueError, match="takes first as one of random, learner, opponent"):
        make_env("pgx/tic_tac_toe", env_kwargs=("first=second",))
    with pytest.raises(ValueError, match="one-player game"):
        make_env("pgx/2048", env_kwargs=("first=learner",), max_episode_steps=10)


def test_an_unknown_game_gets_a_suggestion():
    with pytest.raises(ValueError, match="pgx has no task 'tictactoe'; did you mean pgx/tic_tac_toe"):
        make_env("pgx/tictactoe")


def test_the_presets_are_the_measured_ones():
    assert suite_preset("pgx/tic_tac_toe").static.num_updates == 1000
    assert suite_preset("pgx/2048").static.max_episode_steps == 1000


@pytest.mark.parametrize("name", ["tic_tac_toe", "2048"])
def test_no_illegal_move_is_ever_taken_from_the_first_update(name):
    """Untrained policies, 128 games: every learner move is one the mask allows (an illegal one would end the
    game with -1 at once)."""
    spec = make_env(f"pgx/{name}", max_episode_steps=60)
    config = small_config(env=f"pgx/{name}", max_episode_steps=60)
    taken, valid, reward = untrained_moves(spec, config)
    assert valid.sum() >= 128 * 3 and taken[valid].all()
    if name == "2048":  # no reward below 0 but the illegal move's -1
        assert reward[valid].min() >= 0.0


def test_a_short_run_trains():
    config = small_config(env="pgx/tic_tac_toe", num_updates=6, episodes_per_update=8)
    _, metrics = jax.jit(jax.vmap(make_train(config)))(jax.vmap(jax.random.key)(jnp.arange(2)))
    assert np.all(np.isfinite(np.asarray(metrics.loss)))
    assert np.all(np.asarray(metrics.episodes) == 8)
    assert np.all(np.asarray(metrics.episode_length) <= 5)
