"""A small environment and network defined outside pgjax, as a user would write them.

`Chain`: a walk on positions 0..length-1 starting at 0; action 0 steps left,
1 steps right; reaching the last position ends the episode with reward 1, every
other step gives 0; episodes are cut off after `max_steps_in_episode` steps.
The observation is the position one-hot, float32 [length]. Always stepping
right earns 1 in length-1 steps; a uniform random policy reaches the end less
often within the step limit.

`linear_network`: a `pgjax.algo.policy.NetworkFactory` building `LinearPolicy`,
one dense layer from the flattened observation to the outputs.

Named on the command line as `--env tests.custom:make_chain` and
`--network tests.custom:linear_network` (run from the repository root).
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

LENGTH = 4


@struct.dataclass
class ChainState(environment.EnvState):
    position: jax.Array


@struct.dataclass
class ChainParams(environment.EnvParams):
    max_steps_in_episode: int = 8


class Chain(environment.Environment):
    """The chain walk; `solve_threshold` (read by `pgjax.algo.envs.make_env`) is a return of 0.9."""

    solve_threshold = 0.9

    def __init__(self, length: int = LENGTH):
        super().__init__()
        self.length = length

    @property
    def default_params(self) -> ChainParams:
        return ChainParams()

    def _obs(self, state: ChainState) -> jax.Array:
        return jax.nn.one_hot(state.position, self.length, dtype=jnp.float32)

    def reset_env(self, key, params):
        state = ChainState(time=0, position=jnp.int32(0))
        return self._obs(state), state

    def step_env(self, key, state, action, params):
        position = jnp.clip(state.position + 2 * action - 1, 0, self.length - 1).astype(jnp.int32)
        state = ChainState(time=state.time + 1, position=position)
        terminated = position == self.length - 1
        return self._obs(state), state, terminated.astype(jnp.float32), terminated, {}

    def observation_space(self, params):
        return spaces.Box(0.0, 1.0, (self.length,), jnp.float32)

    def action_space(self, params):
        return spaces.Discrete(2)


def make_chain() -> Chain:
    """The factory `--env tests.custom:make_chain` calls: an environment (params from its defaults)."""
    return Chain()


def make_long_chain() -> tuple[Chain, ChainParams]:
    """A factory returning an (environment, env_params) pair: 6 positions, 12 steps."""
    return Chain(6), ChainParams(max_steps_in_episode=12)


def make_long_cartpole(max_steps: int = 10_000):
    """gymnax's CartPole-v1 under a 10,000-step limit: trajectory buffers that dwarf the rest of a run."""
    import gymnax

    env, params = gymnax.make("CartPole-v1")
    return env, params.replace(max_steps_in_episode=max_steps)


def make_one_step_chain() -> tuple[Chain, environment.EnvParams]:
    """The chain under gymnax's own `EnvParams()`, whose `max_steps_in_episode` default is 1: every
    episode is cut after one step (what `pgjax.results.health` warns of)."""
    return Chain(), environment.EnvParams()


class LinearPolicy(nn.Module):
    """obs [..., *obs_shape] -> out [..., K] (or [..., 2K], mean then log std, if `gaussian`)."""

    num_outputs: int
    obs_dims: int
    gaussian: bool = False

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = obs.reshape(obs.shape[: obs.ndim - self.obs_dims] + (-1,))
        bound = 1.0 / math.sqrt(x.shape[-1])  # PyTorch's nn.Linear initialisation

        def init(key, shape, dtype=jnp.float32):
            return jax.random.uniform(key, shape, dtype, -bound, bound)

        out = nn.Dense(self.num_outputs, kernel_init=init, bias_init=init, name="linear")(x)
        if not self.gaussian:
            return out
        log_std = self.param("log_std", nn.initializers.zeros, (self.num_outputs,))  # set by the trainer
        return jnp.concatenate([out, jnp.broadcast_to(log_std, out.shape)], axis=-1)


def linear_network(spec, static, num_outputs: int, gaussian: bool) -> LinearPolicy:
    """A `NetworkFactory`: ignores `static.hidden`."""
    return LinearPolicy(num_outputs, len(spec.obs_shape), gaussian)


class NoActions(Chain):
    """The chain with a degenerate space: `what` is "discrete" (Discrete(0)), "box" (a Box of shape (0,)) or
    "observation" (observations of shape (0,)), each refused by `pgjax.algo.envs.make_env`."""

    def __init__(self, what: str):
        super().__init__()
        self.what = what

    def observation_space(self, params):
        return spaces.Box(0.0, 1.0, (0,) if self.what == "observation" else (self.length,), jnp.float32)

    def action_space(self, params):
        if self.what == "discrete":
            return spaces.Discrete(0)
        if self.what == "box":
            return spaces.Box(-1.0, 1.0, (0,), jnp.float32)
        return spaces.Discrete(2)


def make_no_actions() -> NoActions:
    """`--env tests.custom:make_no_actions`: a Discrete(0) action space."""
    return NoActions("discrete")


def make_no_box_actions() -> NoActions:
    """`--env tests.custom:make_no_box_actions`: a Box action space of no dimensions."""
    return NoActions("box")


def make_empty_observations() -> NoActions:
    """`--env tests.custom:make_empty_observations`: observations of shape (0,)."""
    return NoActions("observation")


def returns_to_go(traj, hparams):
    """A step weighting of one's own (`--weighting tests.custom:returns_to_go`): the reward-to-go as it is."""
    from pgjax.algo.weights import discounted_returns

    return discounted_returns(traj.reward, hparams.gamma)
