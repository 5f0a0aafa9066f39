"""Rollouts: collect E complete episodes per run with the current policy.

Every update starts E fresh episodes, one per environment slot, and steps all
slots together until each episode has ended, or the environment's step limit is
reached: a `lax.while_loop` over one run's steps (`make_collect`). Its fast path,
`pgjax.algo.fast.rollout`, runs the same steps (`make_rollout_steps`) for a
whole batch of runs in one loop that stops when the batch's longest episode ends.

Truncation: gymnax 1.0 reports `terminated` (the pole fell) and `truncated` (the
500-step limit of CartPole-v1) apart. Both end the episode; a truncated episode
is no failure. Without a critic there is no value to bootstrap from, so its
returns simply stop at the last reward received; with a value baseline
(`keep_last_obs`) the rollout also keeps the observation each episode ended in,
and `pgjax.algo.weights` bootstraps a truncated episode's return with its value.

Actions: the policy's `Distribution` (`pgjax.algo.policy`) samples what is stored
(int32 [E] for categorical policies, float32 [E, A] for Gaussian ones) and
maps it to what the environment is given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from pgjax.algo.envs import EnvSpec, encode_batch, reset_function, step_function
from pgjax.algo.policy import Distribution, Recurrence, categorical

# (params, obs [..., *obs_shape]) -> out [..., K] (`pgjax.algo.policy`)
ApplyFn = Callable[[Any, jax.Array], jax.Array]


@struct.dataclass
class Trajectory:
    """E episodes of one run, time-major; step t of every episode sits at row t.

    Steps after an episode's end are padding: `valid` is False there and every
    other field is zero.

    Attributes:
      obs: [T, E, *obs_shape] observation the action was chosen on, in
        `EnvSpec.obs_dtype` (float32, or uint8 for 0/1 maps).
      action: [T, E, *action_shape] action taken, as the policy stored it:
        int32 [T, E] (categorical) or float32 [T, E, A] (Gaussian, `pgjax.algo.policy`).
      reward: [T, E] float32 reward received for it.
      valid: [T, E] bool, True for steps inside an episode.
      truncated: [E] bool, True for episodes cut off by the step limit rather
        than ended in a terminal state.
      loop_steps: [] int32, loop iterations the batch of runs actually ran
        (>= the longest episode of this run).
      last_obs: [E, *obs_shape] float32 observation after each episode's last
        step (where a truncated episode was cut off); None unless asked for.
    """

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    valid: jax.Array
    truncated: jax.Array
    loop_steps: jax.Array
    last_obs: jax.Array | None = None

    @property
    def lengths(self) -> jax.Array:
        """[E] int32 episode lengths in env steps."""
        return self.valid.sum(axis=-2, dtype=jnp.int32)


class RolloutSteps(NamedTuple):
    """One run's rollout, step by step (what `make_collect` and its fast path loop over).

    Attributes:
      start: `(key) -> (env obs [E, ...], env state, step key)`, E fresh episodes.
      step: `(params, env state, obs, alive [E], step key, t) -> (env state, next obs,
        still alive [E], cut off [E], record)`, where record = (obs, action, reward,
        alive) of step t, zero for episodes that had ended.
      alive_like: `(alive [E], x) -> alive` reshaped to broadcast against x [E, ...].
    """

    start: Callable
    step: Callable
    alive_like: Callable


def make_rollout_steps(
    spec: EnvSpec, apply_fn: ApplyFn, num_episodes: int, dist: Distribution, greedy: bool = False,
    skip_auto_reset: bool = False, recurrence: Recurrence | None = None,
) -> RolloutSteps:
    """The steps of one run's rollout of `num_episodes` episodes (arguments as `make_collect`'s).

    With a `recurrence` the state the steps pass on is the pair (environment
    state, policy state), the policy state starting from its zero state with
    each episode; otherwise it is the environment state alone.
    """
    if recurrence is not None:
        return _recurrent_steps(make_rollout_steps(spec, apply_fn, num_episodes, dist, greedy, skip_auto_reset),
                                recurrence, num_episodes)
    choose = (lambda key, out: dist.greedy(out)) if greedy else dist.sample
    env_params, max_steps = spec.params, spec.max_steps
    env_reset = jax.vmap(reset_function(spec.env), in_axes=(0, None))
    encode = encode_batch(spec)  # raw observations -> [E, *obs_shape]; the identity for Box spaces
    # The environment's step by its route (`pgjax.algo.envs`), its auto-reset thrown away:
    # (obs, state, reward, terminated, truncated by its own limit).
    env_step = jax.vmap(step_function(spec.env, spec.route, skip_auto_reset), in_axes=(0, 0, 0, None))

    def start(key):
        reset_key, step_key = jax.random.split(key)
        obs, state = env_reset(jax.random.split(reset_key, num_episodes), env_params)
        return encode(obs), state, step_key

    def alive_like(alive, x):
        return alive.reshape(alive.shape + (1,) * (x.ndim - alive.ndim))

    def step(params, state, obs, alive, step_key, t, out=None):
        action_key, env_key = jax.random.split(jax.random.fold_in(step_key, t))
        obs = obs.astype(jnp.float32)
        action = choose(action_key, apply_fn(params, obs) if out is None else out)
        next_obs, state, reward, terminated, truncated = env_step(
            jax.random.split(env_key, num_episodes), state, dist.to_env(action), env_params
        )
        truncated = truncated | (t + 1 >= max_steps)  # pgjax's own step limit: step t is the (t+1)-th
        record = (
            jnp.where(alive_like(alive, obs), obs, 0.0).astype(spec.obs_dtype),
            jnp.where(alive_like(alive, action), action, 0),
            jnp.where(alive, reward, 0.0).astype(jnp.float32),
            alive,
        )
        cut_off = alive & truncated & ~terminated
        return state, encode(next_obs), alive & ~(terminated | truncated), cut_off, record

    return RolloutSteps(start, step, alive_like)


def _recurrent_steps(steps: RolloutSteps, recurrence: Recurrence, num_episodes: int) -> RolloutSteps:
    """`steps` with the policy's state carried beside the environment's: `(env state, policy state)`."""

    def start(key):
        obs, state, step_key = steps.start(key)
        return obs, (state, recurrence.initial_carry((num_episodes,))), step_key

    def step(params, state, obs, alive, step_key, t):
        env_state, carry = state
        carry, out = recurrence.step(params, carry, obs)
        env_state, next_obs, still, cut_off, record = steps.step(params, env_state, obs, alive, step_key, t, out)
        return (env_state, carry), next_obs, still, cut_off, record

    return RolloutSteps(start, step, steps.alive_like)


def empty_buffers(spec: EnvSpec, dist: Distribution, shape: tuple[int, ...]) -> tuple:
    """Zeroed (obs, action, reward, valid) buffers of leading shape `shape`: [T, E] for one run (the fast
    rollout's [R, T, E] or [T, R, E] for a batch), then the observation's or action's own shape."""
    return (
        jnp.zeros(shape + spec.obs_shape, spec.obs_dtype),
        jnp.zeros(shape + dist.action_shape, dist.action_dtype),
        jnp.zeros(shape, jnp.float32),
        jnp.zeros(shape, bool),
    )


def make_collect(
    spec: EnvSpec,
    apply_fn: ApplyFn,
    num_episodes: int,
    dist: Distribution | None = None,
    *,
    greedy: bool = False,
    keep_last_obs: bool = False,
    skip_auto_reset: bool = False,
    recurrence: Recurrence | None = None,
) -> Callable[[Any, jax.Array], Trajectory]:
    """Build `collect(params, key) -> Trajectory` of one run's E = `num_episodes` episodes, vmappable over runs.

    Args:
      apply_fn: the policy network, `(params, obs [E, *obs_shape]) -> out [E, K]`; `dist`: the
        distribution `out` parameterises (default categorical); `greedy`: its `greedy` actions.
      keep_last_obs: also return `Trajectory.last_obs`.
      skip_auto_reset: the environment's route (`pgjax.algo.envs.step_function`).
      recurrence: a recurrent policy's state and step, zero at each episode's start (None: feed-forward).
    """
    dist = dist or categorical()
    steps = make_rollout_steps(spec, apply_fn, num_episodes, dist, greedy, skip_auto_reset, recurrence)
    max_steps, shape = spec.max_steps, (spec.max_steps, num_episodes)

    def collect(params, key):
        obs, state, step_key = steps.start(key)
        buffers = empty_buffers(spec, dist, shape)
        # The observation each episode ended in (kept only when asked for).
        last_obs = jnp.zeros((num_episodes,) + spec.obs_shape, jnp.float32) if keep_last_obs else None

        def not_finished(carry):
            t, _, _, alive, _, _, _ = carry
            return (t < max_steps) & alive.any()

        def step(carry):
            t, state, obs, alive, truncated, buffers, last_obs = carry
            state, next_obs, still, cut_off, record = steps.step(params, state, obs, alive, step_key, t)
            buffers = jax.tree.map(lambda b, r: b.at[t].set(r), buffers, record)
            if last_obs is not None:
                ended = alive & ~still
                last_obs = jnp.where(steps.alive_like(ended, last_obs), next_obs.astype(jnp.float32), last_obs)
            return t + 1, state, next_obs, still, truncated | cut_off, buffers, last_obs

        alive, truncated = jnp.ones(num_episodes, bool), jnp.zeros(num_episodes, bool)
        t, _, _, _, truncated, (obs, action, reward, valid), last_obs = jax.lax.while_loop(
            not_finished, step, (jnp.int32(0), state, obs, alive, truncated, buffers, last_obs)
        )
        return Trajectory(obs=obs, action=action, reward=reward, valid=valid, truncated=truncated,
                          loop_steps=t, last_obs=last_obs)

    return collect
