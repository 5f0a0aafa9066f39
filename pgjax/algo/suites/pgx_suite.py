"""pgx's games by name: `--env pgx/2048`, `--env pgx/tic_tac_toe` (`pgjax.algo.suites`).

pgx (Koyamada et al.) gives `init(key) -> State` and `step(state, action, key) -> State`; its `State` holds the
`observation` (of the player to move), `current_player`, `rewards` [num_players], `terminated`, `truncated` and
`legal_action_mask` [A]. `PgxEnv` gives a game gymnax's shape:

* one-player games (2048, the minatar-* games) are stepped directly;
* games of two or more players are played by the learner, one seat, against fixed opponents in the other seats
  that choose uniformly among their legal moves. The opponents' moves happen inside `step`: after the learner's
  move, each opponent to move plays, until it is the learner's turn again or the game ends (and at reset, when an
  opponent moves first). The learner's reward is its own seat's reward, summed over its move and the opponents'
  replies (a loss by the opponent's winning move is the learner's -1);
* `--env-kwargs first=random|learner|opponent` (games of two or more players) chooses who moves first: "random"
  (the default) draws the learner's seat uniformly at each reset; "learner" gives the learner the first move;
  "opponent" the seat after the first mover's. Other keys reach the game's constructor (`Go(size, komi, ...)`,
  `Hex(size)`, the minatar games' `sticky_action_prob`, ...), typed by its signature;
* termination is pgx's `terminated`, truncation its `truncated` (no game of pgx 2.6 truncates); pgx never
  resets by itself (stepping a finished game changes nothing);
* observations: a gymnax `Dict` of `observation` (pgx's array, a Box of its shape and dtype: bool 0..1) and
  `action_mask`, pgx's `legal_action_mask` (bool [A], True = legal): the learner's legal moves, as it is the
  learner's turn in every observation it acts on. pgx ends a game at once, with reward -1 to the player who
  moved, on an illegal move;
* actions: `Discrete(A)`;
* step limit: pgx declares none. Where a board bounds the learner's moves (`MOVE_BOUNDS`: tic_tac_toe 5,
  connect_four 21, each the cells divided between two players) it is `max_steps_in_episode`, never reached;
  other games need --max-episode-steps (2048's preset gives one).
"""

from __future__ import annotations

import inspect
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from gymnax.environments import spaces

from pgjax.algo.config import Config, Hyperparams, StaticConfig
from pgjax.algo.envs import error_line, typed_kwargs

# The most moves the learner can make in a game where every move fills one cell, two players alternate and the
# learner may move first: ceil(cells / 2).
MOVE_BOUNDS: dict[str, int] = {"tic_tac_toe": math.ceil(9 / 2), "connect_four": math.ceil(42 / 2)}

# What pgx.make passes to a game's constructor for these names (pgx 2.6's `make`): --env-kwargs start from them.
_MADE_WITH: dict[str, dict[str, Any]] = {"go_9x9": {"size": 9, "komi": 7.5}, "go_19x19": {"size": 19, "komi": 7.5}}

FIRST_MOVERS = ("random", "learner", "opponent")

# What preset "default" means for a pgx game (`pgjax.algo.suites.suite_preset`), measured with the legal-action
# masks on, 8 seeds (`python -m pgjax.train --env pgx/... --num-seeds 8`; IQM of the final return [95% CI]):
# * tic_tac_toe (the learner's seat drawn at random, a random legal policy scores about 0.0): CartPole's settings at
#   lr 0.01 (the unpreset default) 0.5 [0.5, 0.6] after 300 updates, at lr 0.03 0.5 [0.4, 0.6]; these settings
#   0.6 [0.6, 0.7] after 300 updates and 0.7 [0.7, 0.8] after 1000 (0.7 [0.6, 0.8] at lr 0.003);
# * 2048 (capped at 1000 moves, which trained games do not reach in this budget): CartPole's settings at lr 0.01
#   1199 [1120, 1308] after 50 updates; these settings 3430 [1982, 4027] after 150 updates at lr 0.01, 1110
#   [1051, 1127] at lr 0.003.
PRESETS: dict[str, Config] = {
    "tic_tac_toe": Config(
        StaticConfig(env="pgx/tic_tac_toe", hidden=(64,), episodes_per_update=16, num_updates=1000),
        Hyperparams(learning_rate=0.01, gamma=1.0, entropy_coef=0.01),
    ),
    "2048": Config(
        StaticConfig(env="pgx/2048", max_episode_steps=1000, hidden=(64,), episodes_per_update=16, num_updates=150,
                     returns="reward_to_go"),
        Hyperparams(learning_rate=0.01, gamma=0.99, entropy_coef=0.01),
    ),
}


class PgxState(NamedTuple):
    """The state `PgxEnv` threads through reset and step.

    Attributes:
      game: pgx's State (its player to move is the learner's seat, or the game is over).
      learner: int32 [], the learner's seat (pgx's player id) for this game.
    """

    game: Any
    learner: jax.Array


def names() -> tuple[str, ...]:
    """The game names pgx lists (`pgx.available_envs()`): e.g. "2048", "tic_tac_toe"."""
    import pgx

    return tuple(pgx.available_envs())


def _box(struct: Any) -> spaces.Box:
    """A gymnax Box of a pgx observation's shape and dtype: bool 0..1, an integer dtype's range, floats
    unbounded."""
    dtype = np.dtype(struct.dtype)
    if dtype == np.bool_:
        low, high = 0, 1
    elif np.issubdtype(dtype, np.integer):
        low, high = int(np.iinfo(dtype).min), int(np.iinfo(dtype).max)
    else:
        low, high = -np.inf, np.inf
    return spaces.Box(low=low, high=high, shape=tuple(struct.shape), dtype=dtype)


class PgxEnv:
    """One pgx game with gymnax's shape, played by the learner against random legal opponents (the module's
    docstring). Pure and jit/vmap-safe: all state is in `PgxState`.

    Attributes:
      game: the pgx environment.
      name: "pgx/<game>".
      first: who moves first: "random", "learner" or "opponent" (`FIRST_MOVERS`; games of 2+ players).
      max_steps_in_episode: `MOVE_BOUNDS`' bound of the learner's moves, or None (pgjax asks --max-episode-steps).
      default_params: None.
    """

    default_params = None

    def __init__(self, game: Any, task: str, first: str = "random"):
        self.game = game
        self.name = f"pgx/{task}"
        self.first = first
        self.num_players = int(game.num_players)
        self.max_steps_in_episode = MOVE_BOUNDS.get(task)
        state = jax.eval_shape(game.init, jax.random.key(0))
        self._num_actions = int(state.legal_action_mask.shape[0])
        self._observation_space = spaces.Dict({
            "observation": _box(state.observation),
            "action_mask": spaces.Box(low=0, high=1, shape=(self._num_actions,), dtype=jnp.bool_),
        })

    def observation_space(self, params: Any = None) -> spaces.Dict:
        """Dict of `observation` (pgx's array, the learner's view) and `action_mask` (bool [A])."""
        return self._observation_space

    def action_space(self, params: Any = None) -> spaces.Discrete:
        """Discrete(A): pgx's action ids."""
        return spaces.Discrete(self._num_actions)

    @staticmethod
    def _observation(game: Any) -> dict[str, jax.Array]:
        return {"observation": game.observation, "action_mask": game.legal_action_mask}

    def _opponents_play(self, game: Any, learner: jax.Array, key: jax.Array) -> tuple[Any, jax.Array]:
        """(game, the learner's reward float32 [] over these moves): the opponents move, each choosing uniformly
        among its legal moves, until it is the learner's turn or the game is over."""
        if self.num_players == 1:
            return game, jnp.zeros((), jnp.float32)

        def opponent_to_move(carry):
            game, _, _ = carry
            return ~(game.terminated | game.truncated) & (game.current_player != learner)

        def opponent_moves(carry):
            game, reward, key = carry
            key, choose, chance = jax.random.split(key, 3)
            action = jax.random.categorical(choose, jnp.where(game.legal_action_mask, 0.0, -jnp.inf))
            game = self.game.step(game, action, chance)
            return game, reward + game.rewards[learner].astype(jnp.float32), key

        game, reward, _ = jax.lax.while_loop(opponent_to_move, opponent_moves,
                                             (game, jnp.zeros((), jnp.float32), key))
        return game, reward

    def _learner_seat(self, game: Any, key: jax.Array) -> jax.Array:
        """The learner's seat (int32 []) for a new game, as `first` says."""
        if self.num_players == 1:
            return jnp.zeros((), jnp.int32)
        if self.first == "learner":
            return jnp.asarray(game.current_player, jnp.int32)
        if self.first == "opponent":
            return jnp.asarray((game.current_player + 1) % self.num_players, jnp.int32)
        return jax.random.randint(key, (), 0, self.num_players, jnp.int32)

    def reset(self, key: jax.Array, params: Any = None) -> tuple[dict[str, jax.Array], PgxState]:
        """(observation, state) of a new game, the opponents' opening moves made: the learner is to move."""
        init_key, seat_key, opening_key = jax.random.split(key, 3)
        game = self.game.init(init_key)
        learner = self._learner_seat(game, seat_key)
        game, _ = self._opponents_play(game, learner, opening_key)
        return self._observation(game), PgxState(game, learner)

    def step(self, key: jax.Array, state: PgxState, action: jax.Array, params: Any = None) -> tuple:
        """gymnax 1.0's six values of the learner's move and the opponents' replies: (obs, state, reward float32
        [] (the learner's), terminated bool [], truncated bool [], info {})."""
        move_key, replies_key = jax.random.split(key)
        game = self.game.step(state.game, jnp.asarray(action, jnp.int32), move_key)
        reward = game.rewards[state.learner].astype(jnp.float32)
        game, replies_reward = self._opponents_play(game, state.learner, replies_key)
        terminated = jnp.asarray(game.terminated, jnp.bool_)
        truncated = jnp.asarray(game.truncated, jnp.bool_) & ~terminated
        return self._observation(game), PgxState(game, state.learner), reward + replies_reward, terminated, \
            truncated, {}


def _builder_signature(game_class: type) -> inspect.Signature:
    """The arguments `make` takes for a game: `first` and the game's constructor's."""
    own = [p for p in inspect.signature(game_class).parameters.values()
           if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]
    first = inspect.Parameter("first", inspect.Parameter.KEYWORD_ONLY, default="random", annotation=str)
    return inspect.Signature([first, *(p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own)])


def make(name: str, pairs: tuple[str, ...] = ()) -> tuple[PgxEnv, None]:
    """(PgxEnv, None) for the pgx game `name` built with the `--env-kwargs` `pairs`.

    Args:
      name: a game pgx lists (`names()`), e.g. "tic_tac_toe".
      pairs: "key=value": `first` (random, learner or opponent: who moves first, games of 2+ players) and the
        game constructor's arguments, typed by its signature.

    Returns:
      The game with gymnax's shape, and None for its params.

    Raises:
      ValueError: one line: an argument neither `first` nor the constructor's (those named), a `first` not in
        `FIRST_MOVERS` or given for a one-player game, a constructor that fails.
    """
    import pgx

    label = f"pgx/{name}"
    game = pgx.make(name)
    kwargs: dict[str, Any] = {}
    if pairs:
        def build(**arguments: Any) -> dict[str, Any]:
            return arguments

        build.__signature__ = _builder_signature(type(game))
        kwargs = typed_kwargs(build, pairs, label)
    given_first = "first" in kwargs
    first = kwargs.pop("first", "random")
    if first not in FIRST_MOVERS:
        raise ValueError(f"--env-kwargs first={first}: {label} takes first as one of {', '.join(FIRST_MOVERS)}")
    if given_first and game.num_players == 1:
        raise ValueError(f"--env-kwargs first={first}: {label} is a one-player game; first applies to games of "
                         "two or more players")
    if kwargs:
        arguments = {**_MADE_WITH.get(name, {}), **kwargs}
        shown = ", ".join(f"{key}={value!r}" for key, value in arguments.items())
        try:
            game = type(game)(**arguments)
        except Exception as error:
            raise ValueError(f"building {label} ({type(game).__name__}({shown})) failed: "
                             f"{error_line(error)}") from error
    return PgxEnv(game, name, first), None
