"""A short chain MDP whose policy gradient and estimator moments are known exactly (tests/test_chain_gradients.py).

`SlipChain`: states 0, 1, 2 (`NUM_STATES`), observed one-hot (float32 [3]); every episode starts in state 0.
Two actions:

* 0, exit: reward `EXIT_REWARDS[s]` (1, 0.5, 0) and the episode terminates;
* 1, advance: from states 0 and 1, with probability 1 - `SLIP` the walk moves on to s + 1 and pays
  `ADVANCE_REWARD` (1); with probability `SLIP` (0.3) it slips, stays in s and pays `SLIP_REWARD` (-1).
  From the last state, 2, advancing reaches the goal: reward `GOAL_REWARD` (3), and the episode terminates.

Episodes are cut off after `MAX_STEPS` (4) steps: two slips leave too few steps to reach the goal (a
truncation). Exiting at once pays 1; advancing to the goal pays 1 + 1 + 3 = 5 without a slip: the small reward
now against a larger delayed one, and the slips make the rewards of earlier steps random, which is what the
reward-to-go leaves out of a step's weight.

`table_network`: the tabular softmax policy, logits(s) = one_hot(s) @ table, its only parameter the table
[3, 2] (`TABLE` at initialisation); `flatten_gradient` orders its P = 6 numbers as table[s, a] at s * 2 + a.

The exact computations, on every episode the chain can give (`all_episodes`: 24 of them, with at most 4 steps):
`episode_probabilities`, `expected_return` J(table) (a JAX function: `jax.grad` of it is the exact gradient),
`dynamic_programming_return` (the same J by backward induction, a check of the enumeration), and
`estimator_moments`, the exact moments of one episode's estimate g_e for a weighting (derived in
tests/test_chain_gradients.py's docstring).
"""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

from pgjax.algo.config import Config, Hyperparams, StaticConfig

NUM_STATES = 3
NUM_ACTIONS = 2  # 0: exit, 1: advance
EXIT, ADVANCE = 0, 1
EXIT_REWARDS = np.array([1.0, 0.5, 0.0])
ADVANCE_REWARD = 1.0
SLIP_REWARD = -1.0
GOAL_REWARD = 3.0
SLIP = 0.3
MAX_STEPS = 4
TABLE = np.array([[0.0, 0.5], [0.3, 0.0], [-0.2, 0.4]])  # the policy's logits [state, action] at initialisation


@struct.dataclass
class SlipChainState(environment.EnvState):
    position: jax.Array


class SlipChain(environment.Environment):
    """The chain of the module's docstring, in gymnax's shape."""

    @property
    def default_params(self) -> environment.EnvParams:
        return environment.EnvParams(max_steps_in_episode=MAX_STEPS)

    def reset_env(self, key, params):
        state = SlipChainState(time=0, position=jnp.int32(0))
        return jax.nn.one_hot(state.position, NUM_STATES, dtype=jnp.float32), state

    def step_env(self, key, state, action, params):
        at_goal = state.position == NUM_STATES - 1
        slipped = jax.random.bernoulli(key, SLIP)
        advance_reward = jnp.where(at_goal, GOAL_REWARD, jnp.where(slipped, SLIP_REWARD, ADVANCE_REWARD))
        reward = jnp.where(action == EXIT, jnp.asarray(EXIT_REWARDS, jnp.float32)[state.position], advance_reward)
        moves = (action == ADVANCE) & ~at_goal & ~slipped
        position = (state.position + moves).astype(jnp.int32)
        terminated = (action == EXIT) | at_goal
        state = SlipChainState(time=state.time + 1, position=position)
        obs = jax.nn.one_hot(position, NUM_STATES, dtype=jnp.float32)
        return obs, state, reward.astype(jnp.float32), terminated, {}

    def observation_space(self, params):
        return spaces.Box(0.0, 1.0, (NUM_STATES,), jnp.float32)

    def action_space(self, params):
        return spaces.Discrete(NUM_ACTIONS)


class Table(nn.Module):
    """A tabular softmax policy: logits = obs @ table, the parameter "table" [S, A] (initialised to `TABLE`)."""

    num_outputs: int

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        table = self.param("table", lambda key, shape: jnp.asarray(TABLE, jnp.float32), (NUM_STATES, self.num_outputs))
        return obs @ table


def table_network(spec, static, num_outputs: int, gaussian: bool) -> Table:
    """A `NetworkFactory` (`--network tests.chain_mdp:table_network`): `Table`."""
    return Table(num_outputs)


def chain_config(episodes: int, **static) -> Config:
    """The chain's config: `episodes` episodes a batch, reward-to-go, no baseline, episode_sum, gamma 1, but for
    `static`."""
    fields = dict(env="tests.chain_mdp:SlipChain", network="tests.chain_mdp:table_network",
                  episodes_per_update=episodes, returns="reward_to_go", baseline="none", reduction="episode_sum")
    return Config(StaticConfig(**{**fields, **static}), Hyperparams(gamma=1.0))


class Episodes(NamedTuple):
    """Every episode the chain can give, padded to `MAX_STEPS` rows (numpy; N episodes).

    Attributes:
      state, action: [N, T] int, zero past the episode's end.
      reward: [N, T] float64, zero past the end.
      valid: [N, T] bool, True on the episode's steps.
      transition: [N] float64, the environment's probability of the episode's transitions given its actions
        (SLIP or 1 - SLIP for each advance from states 0 and 1, 1 for the others).
    """

    state: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    valid: np.ndarray
    transition: np.ndarray


def all_episodes() -> Episodes:
    """Every episode (`Episodes`), by enumerating exit, advance-and-move and advance-and-slip at each step."""
    episodes = []

    def extend(steps, position, probability):
        if len(steps) == MAX_STEPS:  # cut off by the step limit
            episodes.append((steps, probability))
            return
        episodes.append((steps + [(position, EXIT, EXIT_REWARDS[position])], probability))
        if position == NUM_STATES - 1:
            episodes.append((steps + [(position, ADVANCE, GOAL_REWARD)], probability))
            return
        extend(steps + [(position, ADVANCE, ADVANCE_REWARD)], position + 1, probability * (1 - SLIP))
        extend(steps + [(position, ADVANCE, SLIP_REWARD)], position, probability * SLIP)

    extend([], 0, 1.0)
    shape = (len(episodes), MAX_STEPS)
    state, action, reward, valid = np.zeros(shape, int), np.zeros(shape, int), np.zeros(shape), np.zeros(shape, bool)
    for n, (steps, _) in enumerate(episodes):
        for t, (s, a, r) in enumerate(steps):
            state[n, t], action[n, t], reward[n, t], valid[n, t] = s, a, r, True
    return Episodes(state, action, reward, valid, np.array([p for _, p in episodes]))


def episode_probabilities(table: jax.Array, episodes: Episodes) -> jax.Array:
    """[N] the probability of each episode under the tabular softmax policy `table` [S, A]: its transitions'
    probability times prod_t pi(a_t | s_t) over its steps."""
    log_pi = jax.nn.log_softmax(table, axis=-1)[episodes.state, episodes.action]  # [N, T]
    return episodes.transition * jnp.exp(jnp.sum(jnp.where(episodes.valid, log_pi, 0.0), axis=-1))


def expected_return(table: jax.Array, episodes: Episodes) -> jax.Array:
    """J(table) = E[sum_t r_t] = sum over episodes of probability * return (gamma 1), []."""
    return episode_probabilities(table, episodes) @ episodes.reward.sum(axis=-1)


def dynamic_programming_return(table: jax.Array) -> jax.Array:
    """J(table) by backward induction over the steps left: V_k(s), the expected return from s with k steps
    left, V_0 = 0; J = V_T(0)."""
    pi = jax.nn.softmax(table, axis=-1)
    value = jnp.zeros(NUM_STATES)
    for _ in range(MAX_STEPS):
        moved = jnp.concatenate([value[1:], jnp.zeros(1)])  # V(s + 1); unused at the last state
        advance = (1 - SLIP) * (ADVANCE_REWARD + moved) + SLIP * (SLIP_REWARD + value)
        advance = advance.at[NUM_STATES - 1].set(GOAL_REWARD)
        value = pi[:, EXIT] * EXIT_REWARDS + pi[:, ADVANCE] * advance
    return value[0]


def step_weights(episodes: Episodes, returns: str, constant: float = 0.0, gamma: float = 1.0) -> np.ndarray:
    """[N, T] the weight w_t of each step (zero past the end): returns "episode" (sum_t gamma^t r_t on every
    step) or "reward_to_go" (sum_{t' >= t} gamma^(t' - t) r_t'), minus the constant baseline `constant`."""
    togo = np.zeros_like(episodes.reward)
    following = np.zeros(len(episodes.reward))
    for t in reversed(range(MAX_STEPS)):
        following = episodes.reward[:, t] + gamma * following
        togo[:, t] = following
    weight = togo if returns == "reward_to_go" else np.broadcast_to(togo[:, :1], togo.shape)
    return np.where(episodes.valid, weight - constant, 0.0)


def per_episode_estimates(table: np.ndarray, episodes: Episodes, weight: np.ndarray, coef: np.ndarray
                          ) -> np.ndarray:
    """[N, P] each episode's estimate g = -sum_t k_t w_t grad log pi(a_t | s_t), k = E * c the reduction's
    coefficient times E ([N, T]), with the softmax's score grad_{table[s', b]} log pi(a | s) =
    1[s' = s] (1[a = b] - pi(b | s)); columns table[s, b] at s * A + b (`flatten_gradient`'s order)."""
    pi = np.exp(table) / np.exp(table).sum(axis=-1, keepdims=True)
    score = np.eye(NUM_ACTIONS)[episodes.action] - pi[episodes.state]  # [N, T, A]: d log pi / d table[s_t, :]
    grads = np.zeros((len(weight), NUM_STATES, NUM_ACTIONS))
    for t in range(MAX_STEPS):
        rows = -(coef[:, t] * weight[:, t])[:, None] * score[:, t]
        np.add.at(grads, (np.arange(len(weight)), episodes.state[:, t]), rows)
    return grads.reshape(len(weight), -1)


class Moments(NamedTuple):
    """Exact moments of one episode's estimate g [P] (float64).

    Attributes:
      mean: [P] E[g].
      variance: [P] Var(g_p).
      fourth: [P] E[(g_p - mean_p)^4].
      trace: tr Cov(g) = sum_p Var(g_p).
      trace_square: tr(Cov(g)^2).
      trace_fourth: E[|g - mean|^4].
    """

    mean: np.ndarray
    variance: np.ndarray
    fourth: np.ndarray
    trace: float
    trace_square: float
    trace_fourth: float


def moments(probabilities: np.ndarray, values: np.ndarray) -> Moments:
    """The `Moments` of a discrete random vector taking `values` [N, P] with `probabilities` [N]."""
    mean = probabilities @ values
    deviation = values - mean
    covariance = (probabilities[:, None] * deviation).T @ deviation
    squared = np.sum(deviation**2, axis=-1)
    return Moments(mean, np.diag(covariance).copy(), probabilities @ deviation**4, float(np.trace(covariance)),
                   float(np.sum(covariance * covariance)), float(probabilities @ squared**2))


def estimator_moments(returns: str, constant: float = 0.0, reduction: str = "episode_sum", gamma: float = 1.0,
                      table: np.ndarray = TABLE) -> Moments:
    """Exact `Moments` of one episode's estimate g_e (independent episodes: a constant baseline at most) under
    the policy `table`: returns and `constant` as `step_weights`, `reduction` "episode_sum" (k = 1) or
    "episode_mean" (k = 1 / len_e).

    Raises:
      ValueError: another reduction (its episodes' estimates are not independent).
    """
    episodes = all_episodes()
    if reduction == "episode_sum":
        coef = episodes.valid.astype(float)
    elif reduction == "episode_mean":
        coef = episodes.valid / episodes.valid.sum(axis=-1, keepdims=True)
    else:
        raise ValueError(f"reduction {reduction!r} couples the episodes; exact moments of episode_sum or episode_mean")
    probabilities = numpy_probabilities(table, episodes)
    grads = per_episode_estimates(table, episodes, step_weights(episodes, returns, constant, gamma), coef)
    return moments(probabilities, grads)


def numpy_probabilities(table: np.ndarray, episodes: Episodes) -> np.ndarray:
    """`episode_probabilities` in float64 numpy (JAX computes in float32 here)."""
    log_pi = table - np.log(np.exp(table).sum(axis=-1, keepdims=True))
    return episodes.transition * np.exp(np.where(episodes.valid, log_pi[episodes.state, episodes.action], 0.0).sum(-1))
