"""Trained policies in use: a NumPy-in, action-out callable, and returns of fresh episodes in JAX or Gymnasium.

    act = load_policy("runs/DIR", run=0)                # obs [4] -> int; obs [B, 4] -> int32 [B]

Greedy takes the most probable action (a Gaussian policy's mean, clipped or
squashed to the action space); sampling draws from the policy as training did.
The JAX evaluation steps the gymnax environment the runs trained on
(`pgjax.algo.rollout`, all runs at once); the Gymnasium one steps Gymnasium's
reference implementation of the same environment, one episode after another.
"""

from __future__ import annotations

import functools
import itertools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from pgjax.algo.config import Config, StaticConfig
from pgjax.algo.envs import env_for
from pgjax.algo.imports import names_code
from pgjax.algo.pieces import choose_collect, choose_network
from pgjax.algo.policy import make_apply_fn, make_distribution, make_policy, recurrence
from pgjax.algo.suites import split_suite_name
from pgjax.running.run_folder import loading, trust
from pgjax.running.run_folder.files import SUMMARY_FILE, write_atomic

EVALUATION_FILE = "evaluation.json"
GYMNASIUM_HINT = "pip install 'gymnasium[classic-control]>=1.1'"

Policy = Callable[[np.ndarray], "int | np.ndarray"]


def policy_callable(config: Config, params: Any, *, greedy: bool = True, seed: int = 0) -> Policy:
    """A trained policy as `act(obs) -> action`, NumPy in and out (the network's apply is jitted).

    Args:
      config: the run's configuration (environment, network, activation, squash).
      params: one run's Flax params pytree (NumPy or JAX leaves).
      greedy: take the most probable action (argmax of the logits, or the
        Gaussian's mean); False samples a ~ pi(.|obs) as training did.
      seed: PRNG seed of the sampling; the i-th call uses `fold_in(key(seed), i)`.

    Returns:
      `act(obs)`: for Discrete actions obs [*obs_shape] -> int, or [B, *obs_shape]
      -> int32 array [B]; for Box actions float32 arrays [A] or [B, A] in the
      action space's units and bounds. A recurrent policy's `act` carries its
      state from call to call (one state per row of a batch): call `act.reset()`
      at each episode's start (`act.recurrent` says whether it has a state).
    """
    spec = env_for(config.static)
    policy = choose_network(make_policy(spec, config), spec)  # the network training's rollout ran
    policy_recurrence = recurrence(policy)
    dist = make_distribution(spec, config.static.squash)
    params = jax.tree.map(jnp.asarray, params)
    if policy_recurrence is None:
        apply_fn = make_apply_fn(policy)

        def network_step(p, carry, obs):
            return carry, apply_fn(p, obs)
    else:
        network_step = policy_recurrence.step

    def choose(p, carry, obs, key):
        carry, out = network_step(p, carry, obs)
        return carry, dist.to_env(dist.greedy(out) if key is None else dist.sample(key, out))

    choose = jax.jit(choose)
    base_key, calls = jax.random.key(seed), itertools.count()
    obs_dims = len(spec.obs_shape)
    state = {"carry": None}  # a recurrent policy's state, from the zero state at the first call after reset()

    def act(obs: np.ndarray) -> int | np.ndarray:
        obs = np.asarray(obs, np.float32)
        if obs.ndim not in (obs_dims, obs_dims + 1) or obs.shape[obs.ndim - obs_dims:] != spec.obs_shape:
            raise ValueError(f"observations must be {spec.obs_shape} or [B, *{spec.obs_shape}], got {obs.shape}")
        carry = state["carry"]
        if policy_recurrence is not None and carry is None:
            carry = policy_recurrence.initial_carry(obs.shape[:obs.ndim - obs_dims])
        key = None if greedy else jax.random.fold_in(base_key, next(calls))
        carry, action = choose(params, carry, obs, key)
        state["carry"] = None if policy_recurrence is None else carry
        if spec.action_kind == "continuous":
            return np.asarray(action, np.float32)
        action = np.asarray(action, np.int32)
        return int(action) if action.ndim == 0 else action

    def reset() -> None:
        """Start a new episode: a recurrent policy's next call starts from the zero state."""
        state["carry"] = None

    act.reset = reset
    act.recurrent = policy_recurrence is not None
    return act


def load_policy(run_dir: str | Path, run: int = 0, *, greedy: bool = True, seed: int = 0, env: str | None = None,
                network: str | None = None) -> Policy:
    """Run `run` of a run folder as `act(obs) -> action` (see `policy_callable`).

    Args:
      run_dir: a folder written by `python -m pgjax.train`.
      run: index of the run (into summary.json's `runs`).
      greedy, seed: as `policy_callable`.
      env, network: for a run trained with an environment or network factory
        ("package.module:factory"), that factory named again: a run folder is data,
        and pgjax imports no module that it names (`pgjax.running.run_folder.trust`).

    Raises:
      ValueError: as `pgjax.running.run_folder.loading.load_summary`; the folder names a
        factory that `env`/`network` do not name again, or they name another.
      IndexError: `run` is out of range.
    """
    config = loading.load_run_config(run_dir, run)
    trust.confirm_configs([config], str(Path(run_dir) / SUMMARY_FILE), env,
                          () if network is None else (network,))
    return policy_callable(config, loading.load_params(run_dir, run), greedy=greedy, seed=seed)


@functools.lru_cache(maxsize=32)
def _returns_fn(network: StaticConfig, episodes: int, greedy: bool) -> Callable:
    """Jitted `(params [R, ...], keys [R]) -> returns [R, episodes]`, one compile per network and setting.

    Greedy episodes take `Distribution.greedy` (the argmax, ties to the first action;
    the Gaussian's mean), with the same environment keys.
    """
    spec = env_for(network)
    config = Config(network)
    policy = choose_network(make_policy(spec, config), spec)
    # the folded rollout: the runs' episodes in one loop (a recurrent policy's state carried through each)
    collect = choose_collect(spec, make_apply_fn(policy), episodes, make_distribution(spec, network.squash),
                           greedy=greedy, recurrence=recurrence(policy))

    def returns(params, key):
        return collect(params, key).reward.sum(axis=0)  # [T, E] -> [E]

    return jax.jit(jax.vmap(returns))


def evaluate_runs(
    config: Config, params_stacked: Any, keys: jax.Array, *, episodes: int = 20, greedy: bool = True
) -> np.ndarray:
    """`evaluate_jax` with one PRNG key per run: keys [R] -> returns [R, episodes]."""
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    static = config.static  # only the environment and the network matter here, not how they were trained
    network = StaticConfig(env=static.env, env_kwargs=tuple(static.env_kwargs),
                           max_episode_steps=static.max_episode_steps, hidden=tuple(static.hidden),
                           activation=static.activation,
                           network=static.network, conv=tuple(static.conv), squash=static.squash)
    return np.asarray(_returns_fn(network, episodes, greedy)(params_stacked, keys))


def evaluate_jax(
    config: Config, params_stacked: Any, *, episodes: int = 20, greedy: bool = True, key: jax.Array
) -> np.ndarray:
    """Undiscounted returns of fresh episodes of R runs on the gymnax environment, all runs in one call.

    Args:
      config: the runs' configuration (they share its static part).
      params_stacked: Flax params with a leading [R] axis on every leaf.
      episodes: fresh episodes per run, each played to its end or the step limit.
      greedy: argmax actions; False samples as training did.
      key: PRNG key, split into one per run; a run's episodes start from the
        same states whether greedy or not.

    Returns:
      float32 [R, episodes].
    """
    num_runs = jax.tree.leaves(params_stacked)[0].shape[0]
    return evaluate_runs(config, params_stacked, jax.random.split(key, num_runs), episodes=episodes, greedy=greedy)


def _gymnasium():
    try:
        import gymnasium
    except ImportError:
        raise ImportError(f"Gymnasium is not installed: {GYMNASIUM_HINT}") from None
    return gymnasium


def _make_gymnasium_env(env_id: str, max_episode_steps: int = 0, **kwargs):
    """Gymnasium's `env_id` (a gymnax id, or "gymnax/ID"), its episodes cut off after `max_episode_steps` where
    sooner than its own limit (0: its own), as `pgjax.algo.envs.make_env` cuts the JAX environment's."""
    suite = split_suite_name(env_id)
    if suite is not None and suite[0] == "gymnax":
        env_id = suite[1]
    elif names_code(env_id) or suite is not None:  # Gymnasium's make would import the module before the id
        raise ValueError(f"Gymnasium has no reference implementation of the environment '{env_id}': "
                         "its cross-check and rendering take gymnax ids that Gymnasium also has (CartPole-v1)")
    gym = _gymnasium()
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")  # pygame's renderer needs no sound card
    headless = not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if kwargs.get("render_mode") == "rgb_array" and headless:
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # headless: no window system to ask for
    try:
        if max_episode_steps:
            own = gym.spec(env_id).max_episode_steps
            kwargs["max_episode_steps"] = min(max_episode_steps, own) if own else max_episode_steps
        return gym.make(env_id, **kwargs)
    except gym.error.DependencyNotInstalled as error:
        raise ImportError(f"Gymnasium's {env_id} needs more packages ({error}): {GYMNASIUM_HINT}") from None
    except gym.error.Error as error:
        raise ValueError(f"Gymnasium cannot make {env_id!r}: {error}") from None


def evaluate_gymnasium(policy_fn: Policy, env_id: str = "CartPole-v1", episodes: int = 10, seed: int = 0,
                       max_episode_steps: int = 0) -> np.ndarray:
    """Undiscounted returns [episodes] of `policy_fn` on Gymnasium's `env_id`; episode i resets with seed + i;
    episodes cut off after `max_episode_steps` (the run's --max-episode-steps; 0: Gymnasium's own limit)."""
    env = _make_gymnasium_env(env_id, max_episode_steps)
    returns = np.zeros(episodes)
    try:
        for i in range(episodes):
            obs, _ = env.reset(seed=seed + i)
            getattr(policy_fn, "reset", lambda: None)()  # a recurrent policy starts each episode afresh
            done = False
            while not done:
                obs, reward, terminated, truncated, _ = env.step(policy_fn(obs))
                returns[i] += float(reward)
                done = terminated or truncated
    finally:
        env.close()
    return returns


def render_episode(
    policy_fn: Policy, path: str | Path, env_id: str = "CartPole-v1", *, seed: int = 0, frame_step: int = 2,
    max_episode_steps: int = 0,
) -> tuple[Path, float]:
    """Write one Gymnasium episode of `policy_fn` as an animated GIF (Pillow) to exactly `path`, atomically
    (`write_atomic`); returns (path, return).

    Every `frame_step`-th frame is kept and shown for `frame_step` frames of the
    environment's render rate (50 fps for CartPole-v1), so the GIF plays in real time. The episode is cut off
    after `max_episode_steps` (the run's --max-episode-steps; 0: Gymnasium's own limit).
    """
    from PIL import Image

    env = _make_gymnasium_env(env_id, max_episode_steps, render_mode="rgb_array")
    total, frames = 0.0, []
    try:
        obs, _ = env.reset(seed=seed)
        getattr(policy_fn, "reset", lambda: None)()
        frames.append(env.render())
        done = False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(policy_fn(obs))
            total += float(reward)
            done = terminated or truncated
            frames.append(env.render())
        fps = env.metadata.get("render_fps") or 50
    except _gymnasium().error.DependencyNotInstalled as error:  # the renderer imports pygame on first use
        raise ImportError(f"rendering {env_id} needs more packages ({error}): {GYMNASIUM_HINT}") from None
    finally:
        env.close()
    # One 32-colour palette from the first frame (it shows every part) for all frames, not one per frame.
    palette = Image.fromarray(frames[0]).quantize(colors=32, method=Image.Quantize.MEDIANCUT)
    images = [Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE) for f in frames[::frame_step]]
    path = write_atomic(path, lambda tmp: images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                                                         duration=round(1000 * frame_step / fps), loop=0))
    return path, total
