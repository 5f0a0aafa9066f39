"""Environments with legal-action masks, defined outside pgjax as a user (or jumanji, pgx) would.

`Doors`: each step a random set of the `num_doors` doors is open (at least one); the
observation is a Dict of the step count one-hot ("time") and the open doors
("action_mask", bool [num_doors], True = legal). Opening the highest open door
earns 1, another open door 0, a closed one -1 and ends the episode
(`illegal` counts them). Episodes last `max_steps_in_episode` steps. A policy
uniform over the open doors earns the mean over steps of 1/#open; one that has
learned earns 1 a step.

`multi=True` makes the actions MultiDiscrete (two entries of `num_doors`), each
entry with its own mask: the mask is bool [2 * num_doors], and the reward is the
sum over the entries.

Named on the command line as `--env tests.masked:make_doors`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

CLOCK = 8  # the observation's one-hot step count saturates here


@struct.dataclass
class DoorsState(environment.EnvState):
    mask: jax.Array  # bool [M], the doors open now
    illegal: jax.Array  # int32 [], closed doors chosen so far


@struct.dataclass
class DoorsParams(environment.EnvParams):
    max_steps_in_episode: int = 6


class Doors(environment.Environment):
    """Choose the highest open door (see the module)."""

    def __init__(self, num_doors: int = 5, multi: bool = False):
        super().__init__()
        self.num_doors, self.multi = num_doors, multi
        self.entries = 2 if multi else 1

    @property
    def default_params(self) -> DoorsParams:
        return DoorsParams()

    def _mask(self, key):
        mask = jax.random.bernoulli(key, 0.5, (self.entries, self.num_doors))
        mask = mask.at[:, 0].set(mask[:, 0] | ~mask.any(axis=1))  # at least one open door per entry
        return mask.reshape(-1)

    def _obs(self, state, params):
        time = jax.nn.one_hot(jnp.minimum(state.time, CLOCK - 1), CLOCK, dtype=jnp.float32)
        return {"time": time, "action_mask": state.mask}

    def reset_env(self, key, params):
        state = DoorsState(time=0, mask=self._mask(key), illegal=jnp.int32(0))
        return self._obs(state, params), state

    def step_env(self, key, state, action, params):
        mask = state.mask.reshape(self.entries, self.num_doors)
        chosen = jnp.reshape(action, (self.entries,))
        legal = mask[jnp.arange(self.entries), chosen]
        best = self.num_doors - 1 - jnp.argmax(mask[:, ::-1], axis=1)
        reward = jnp.where(legal, (chosen == best).astype(jnp.float32), -1.0).sum()
        illegal = state.illegal + (~legal).sum()
        state = DoorsState(time=state.time + 1, mask=self._mask(key), illegal=illegal)
        terminated = ~legal.all()
        truncated = state.time >= params.max_steps_in_episode
        return self._obs(state, params), state, reward, terminated | truncated, {}

    def observation_space(self, params):
        return spaces.Dict({
            "time": spaces.Box(0.0, 1.0, (CLOCK,), jnp.float32),
            "action_mask": spaces.Box(0, 1, (self.entries * self.num_doors,), jnp.bool_),
        })

    def action_space(self, params):
        if self.multi:
            return MultiDiscrete((self.num_doors,) * self.entries)
        return spaces.Discrete(self.num_doors)


class MultiDiscrete:
    """A MultiDiscrete space as pgjax recognises one (`nvec`)."""

    def __init__(self, nvec):
        self.nvec = jnp.asarray(nvec)
        self.shape = (len(nvec),)


def make_doors(num_doors: int = 5, multi: bool = False) -> Doors:
    """The factory `--env tests.masked:make_doors` calls."""
    return Doors(num_doors, multi)


class DoorsPush(Doors):
    """Doors with a Box action: a mask there is refused."""

    def action_space(self, params):
        return spaces.Box(-1.0, 1.0, (self.num_doors,), jnp.float32)


def make_doors_push() -> DoorsPush:
    return DoorsPush()
