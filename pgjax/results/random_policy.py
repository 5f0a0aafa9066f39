"""A uniformly random policy's score: the 0 of the normalised scores across environments.

Normalised scores put a uniformly random policy at 0 and the reference score at 1
(`pgjax.results.aggregates.normalise`). The reference is the environment's solve threshold
(`pgjax.algo.envs.SOLVE_THRESHOLDS`, or a custom environment's `solve_threshold`); where there is
none (Pendulum-v1, MinAtar), the best final return among the runs compared, which the caller
passes. The random policy's score is measured here: the mean return of episodes played with
uniformly random actions (every discrete action equally likely, every legal one where the environment
gives a legal-action mask, each entry of a MultiDiscrete action on its own; a continuous action uniform
within its bounds) by the rollout of training (`pgjax.algo.rollout.make_collect`), in the environment
as the run built it (its `--env-kwargs` and `--max-episode-steps`), computed once per environment and
process. Train prints it beside its table and warns of a policy at or below it (`pgjax.results.health`).
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pgjax.algo.envs import EnvSpec, legal_actions, make_env
from pgjax.algo.policy import Distribution, categorical, gaussian, masked_logits, multi_categorical
from pgjax.algo.rollout import make_collect

RANDOM_EPISODES = 1000  # episodes behind a random-policy score
RANDOM_SEED = 0
RANDOM_BATCH = 100  # most episodes played at once (the rollout keeps every step of them: memory stays bounded)


def uniform_distribution(spec: EnvSpec) -> Distribution:
    """The action distribution of a uniformly random policy, for `pgjax.algo.rollout.make_collect`.

    Discrete actions: the categorical of training (`categorical`), which
    draws every action with equal probability from the zero logits of `zero_policy`. Box
    actions: the stored action uniform in [-1, 1] per dimension, which the Gaussian's
    `to_env` maps to uniform within the bounds (a Gaussian of zero mean and log std
    would not be uniform). Only `sample` and `to_env` are a collect's; the Box one's
    `log_prob`, `entropy` and `greedy` stay the Gaussian's and mean nothing here.

    Args:
      spec: the environment (`pgjax.algo.envs.make_env`).

    Returns:
      A `Distribution` over the environment's actions.
    """
    if spec.action_kind == "discrete":
        return categorical()
    if spec.action_kind == "multi_discrete":  # zero logits: every entry uniform
        return multi_categorical(spec.action_nvec)
    box = gaussian(spec.action_low, spec.action_high, "clip")
    size = box.action_shape
    return box._replace(sample=lambda key, out: jax.random.uniform(key, out.shape[:-1] + size, jnp.float32,
                                                                   -1.0, 1.0))


def zero_policy(spec: EnvSpec):
    """A stand-in policy network for `make_collect`: `(params, obs [E, F]) -> logits [E, K]`, params unused:
    zeros, with the illegal actions' logits masked (`pgjax.algo.policy.masked_logits`) where the environment
    gives a legal-action mask (`pgjax.algo.envs.legal_actions`): uniform over the legal actions (per entry of a
    MultiDiscrete action).

    Args:
      spec: the environment; K is its number of actions (logits) or twice its action
        dimensions (a Gaussian's mean and log std).

    Returns:
      The apply function.
    """
    outputs = 2 * spec.num_actions if spec.action_kind == "continuous" else spec.num_actions

    def logits(params, obs):
        zeros = jnp.zeros((obs.shape[0], outputs), jnp.float32)
        legal = legal_actions(spec, obs)
        return zeros if legal is None else masked_logits(zeros, legal)
    return logits


class RandomScore(NamedTuple):
    """A uniformly random policy's score: the mean return of `episodes` episodes and its standard error
    (the episodes' standard deviation / sqrt(episodes)), in the environment's return units."""

    mean: float
    stderr: float
    episodes: int

    def to_dict(self) -> dict:
        return {"mean": self.mean, "stderr": self.stderr, "episodes": self.episodes}


def random_policy_return(spec: EnvSpec, episodes: int = RANDOM_EPISODES, seed: int = RANDOM_SEED) -> RandomScore:
    """The return of a uniformly random policy over `episodes` fresh episodes of `spec`, each to its end.

    The episodes are played by the rollout of training (`pgjax.algo.rollout.make_collect`,
    with `zero_policy` and `uniform_distribution`), `RANDOM_BATCH` at a time, under the spec's step cap
    (`EnvSpec.max_steps`, `--max-episode-steps`) and with the arguments it was built with.

    Args:
      spec: the environment (`pgjax.algo.envs.make_env`; `pgjax.algo.envs.env_for` of a run's settings).
      episodes: the episodes played.
      seed: the PRNG seed; the result is a function of the environment, `episodes` and it.

    Returns:
      The mean episode return (an episode ends at its first terminated or truncated step, as in training)
      and its standard error.

    Raises:
      ValueError: `episodes` < 1.
    """
    if episodes < 1:
        raise ValueError(f"a random-policy score needs at least 1 episode, got {episodes}")
    batches = math.ceil(episodes / RANDOM_BATCH)
    per_batch = math.ceil(episodes / batches)
    # stepped as training's default path steps it (`FastPaths.skip_auto_reset`)
    collect = make_collect(spec, zero_policy(spec), per_batch, uniform_distribution(spec), skip_auto_reset=True)
    returns = jax.jit(lambda key: collect(None, key).reward.sum(axis=0))
    totals = [np.asarray(returns(key), np.float64) for key in jax.random.split(jax.random.key(seed), batches)]
    played = np.concatenate(totals)[:episodes]
    stderr = float(played.std(ddof=1) / math.sqrt(episodes)) if episodes > 1 else math.inf
    return RandomScore(float(played.mean()), stderr, episodes)


def random_policy_of(static: Any, episodes: int = RANDOM_EPISODES, seed: int = RANDOM_SEED) -> RandomScore:
    """`random_policy_return` of a run's environment: its `--env`, `--env-kwargs` and `--max-episode-steps`
    (a `pgjax.algo.config.StaticConfig`'s env, env_kwargs, max_episode_steps), computed once per process
    for each.

    Raises:
      ValueError: as `pgjax.algo.envs.make_env`; `episodes` < 1.
    """
    return _random_policy_cached(static.env, tuple(static.env_kwargs), static.max_episode_steps, episodes, seed)


@functools.lru_cache(maxsize=None)
def _random_policy_cached(env: str, env_kwargs: tuple[str, ...], max_episode_steps: int, episodes: int,
                          seed: int) -> RandomScore:
    spec = make_env(env, max_episode_steps=max_episode_steps, env_kwargs=env_kwargs)
    return random_policy_return(spec, episodes, seed)
