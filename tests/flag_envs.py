"""Environments of a user's own for the environment-flag tests (issue 40), named as `tests.flag_envs:NAME`.

`make_unlimited_chain(length)`: a factory with a required argument whose environment declares no step limit of
its own (it needs `--max-episode-steps`): the chain walk of `tests.custom.Chain`, its params without
`max_steps_in_episode`, stepped by a six-value `step` that never truncates.

`ConstantReward`: an environment whose reward is always 1 and whose dynamics (a state vector mixed by a matrix
each step) do not reach the reward: what `pgjax.bench`'s environment limit must not drop.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import spaces


@struct.dataclass
class NoLimitParams:
    """Params without a step limit: `pgjax.algo.envs.make_env` asks for --max-episode-steps."""

    width: int = 1


class UnlimitedChain:
    """A walk on 0..length-1 from 0 (action 1 right, 0 left); reaching the end gives 1 and ends the episode.
    Observations: the position one-hot, float32 [length]. No step limit: episodes end only at the end."""

    def __init__(self, length: int):
        self.length = length

    @property
    def default_params(self) -> NoLimitParams:
        return NoLimitParams()

    def reset(self, key, params=None):
        position = jnp.int32(0)
        return jax.nn.one_hot(position, self.length, dtype=jnp.float32), position

    def step(self, key, state, action, params=None):
        position = jnp.clip(state + 2 * action - 1, 0, self.length - 1).astype(jnp.int32)
        terminated = position == self.length - 1
        obs = jax.nn.one_hot(position, self.length, dtype=jnp.float32)
        return obs, position, terminated.astype(jnp.float32), terminated, jnp.bool_(False), {}

    def observation_space(self, params):
        return spaces.Box(0.0, 1.0, (self.length,), jnp.float32)

    def action_space(self, params):
        return spaces.Discrete(2)


def make_unlimited_chain(length: int) -> UnlimitedChain:
    """`--env tests.flag_envs:make_unlimited_chain --env-kwargs length=N --max-episode-steps M`."""
    return UnlimitedChain(length)


@struct.dataclass
class MixParams:
    max_steps_in_episode: int = 200


class ConstantReward:
    """Reward 1 every step, never terminated (truncated at `max_steps_in_episode`); the state is a float32 [SIZE]
    vector mixed by a fixed SIZE x SIZE matrix and a tanh each step, observed whole. A benchmark that keeps only
    the reward keeps none of this work."""

    SIZE = 256

    def __init__(self):
        self.matrix = jax.random.normal(jax.random.key(0), (self.SIZE, self.SIZE)) / self.SIZE ** 0.5

    @property
    def default_params(self) -> MixParams:
        return MixParams()

    def reset(self, key, params=None):
        state = (jax.random.normal(key, (self.SIZE,)), jnp.int32(0))
        return state[0], state

    def step(self, key, state, action, params=None):
        params = params or self.default_params
        vector, time = state
        vector = jnp.tanh(self.matrix @ vector + action.astype(jnp.float32))
        time = time + 1
        truncated = time >= params.max_steps_in_episode
        return vector, (vector, time), jnp.float32(1.0), jnp.bool_(False), truncated, {}

    def observation_space(self, params):
        return spaces.Box(-1.0, 1.0, (self.SIZE,), jnp.float32)

    def action_space(self, params):
        return spaces.Discrete(2)
