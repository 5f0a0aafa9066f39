"""Trained policies in use: a NumPy-in, action-out callable, and returns of fresh episodes in JAX or Gymnasium.

    python -m pgjax.evaluate runs/DIR                   # greedy and sampling returns of every run
    python -m pgjax.evaluate runs/DIR --gymnasium --render run0.gif

    act = load_policy("runs/DIR", run=0)                # obs [4] -> int; obs [B, 4] -> int32 [B]

Greedy takes the most probable action (a Gaussian policy's mean, clipped or
squashed to the action space); sampling draws from the policy as training did.
The JAX evaluation steps the gymnax environment the runs trained on
(`pgjax.rollout`, all runs at once); the Gymnasium one steps Gymnasium's
reference implementation of the same environment, one episode after another.
"""

from __future__ import annotations

from pgjax.parallel import configure_cpu

if __name__ == "__main__":
    configure_cpu()  # before gymnax starts JAX's backends

import dataclasses
import functools
import importlib.util
import itertools
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import tyro
from rich.console import Console
from rich.table import Table

from pgjax import outputs, stats
from pgjax.config import Config, StaticConfig
from pgjax.envs import make_env
from pgjax.rollout import make_collect
from pgjax.trainer import make_apply_fn, make_distribution, make_policy

EVALUATION_FILE = "evaluation.json"
GYMNASIUM_HINT = "pip install 'gymnasium[classic-control]>=1.0'"

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
      action space's units and bounds.
    """
    spec = make_env(config.static.env)
    apply_fn = make_apply_fn(make_policy(spec, config))
    dist = make_distribution(spec, config)
    params = jax.tree.map(jnp.asarray, params)
    greedy_act = jax.jit(lambda p, obs: dist.to_env(dist.greedy(apply_fn(p, obs))))
    sample_act = jax.jit(lambda p, obs, key: dist.to_env(dist.sample(key, apply_fn(p, obs))))
    base_key, calls = jax.random.key(seed), itertools.count()
    obs_dims = len(spec.obs_shape)

    def act(obs: np.ndarray) -> int | np.ndarray:
        obs = np.asarray(obs, np.float32)
        if obs.ndim not in (obs_dims, obs_dims + 1) or obs.shape[obs.ndim - obs_dims:] != spec.obs_shape:
            raise ValueError(f"observations must be {spec.obs_shape} or [B, *{spec.obs_shape}], got {obs.shape}")
        if greedy:
            action = greedy_act(params, obs)
        else:
            action = sample_act(params, obs, jax.random.fold_in(base_key, next(calls)))
        if spec.action_kind == "continuous":
            return np.asarray(action, np.float32)
        action = np.asarray(action, np.int32)
        return int(action) if action.ndim == 0 else action

    return act


def load_policy(run_dir: str | Path, run: int = 0, *, greedy: bool = True, seed: int = 0) -> Policy:
    """Run `run` of a run folder as `act(obs) -> action` (see `policy_callable`)."""
    return policy_callable(
        outputs.load_run_config(run_dir, run), outputs.load_params(run_dir, run), greedy=greedy, seed=seed
    )


@functools.lru_cache(maxsize=32)
def _returns_fn(network: StaticConfig, episodes: int, greedy: bool) -> Callable:
    """Jitted `(params [R, ...], keys [R]) -> returns [R, episodes]`, one compile per network and setting.

    Greedy episodes take `Distribution.greedy` (the argmax, ties to the first action;
    the Gaussian's mean), with the same environment keys.
    """
    spec = make_env(network.env)
    config = Config(network)
    apply_fn = make_apply_fn(make_policy(spec, config))
    collect = make_collect(spec, apply_fn, episodes, make_distribution(spec, config), greedy=greedy)

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
    network = StaticConfig(env=static.env, hidden=tuple(static.hidden), activation=static.activation,
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


def _make_gymnasium_env(env_id: str, **kwargs):
    gym = _gymnasium()
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")  # pygame's renderer needs no sound card
    headless = not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if kwargs.get("render_mode") == "rgb_array" and headless:
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # headless: no window system to ask for
    try:
        return gym.make(env_id, **kwargs)
    except gym.error.DependencyNotInstalled as error:
        raise ImportError(f"Gymnasium's {env_id} needs more packages ({error}): {GYMNASIUM_HINT}") from None
    except gym.error.Error as error:
        raise ValueError(f"Gymnasium cannot make {env_id!r}: {error}") from None


def evaluate_gymnasium(policy_fn: Policy, env_id: str = "CartPole-v1", episodes: int = 10, seed: int = 0) -> np.ndarray:
    """Undiscounted returns [episodes] of `policy_fn` on Gymnasium's `env_id`; episode i resets with seed + i."""
    env = _make_gymnasium_env(env_id)
    returns = np.zeros(episodes)
    try:
        for i in range(episodes):
            obs, _ = env.reset(seed=seed + i)
            done = False
            while not done:
                obs, reward, terminated, truncated, _ = env.step(policy_fn(obs))
                returns[i] += float(reward)
                done = terminated or truncated
    finally:
        env.close()
    return returns


def render_episode(
    policy_fn: Policy, path: str | Path, env_id: str = "CartPole-v1", *, seed: int = 0, frame_step: int = 2
) -> tuple[Path, float]:
    """Write one Gymnasium episode of `policy_fn` as an animated GIF (Pillow); returns (path, return).

    Every `frame_step`-th frame is kept and shown for `frame_step` frames of the
    environment's render rate (50 fps for CartPole-v1), so the GIF plays in real time.
    """
    from PIL import Image

    env = _make_gymnasium_env(env_id, render_mode="rgb_array")
    total, frames = 0.0, []
    try:
        obs, _ = env.reset(seed=seed)
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
    # One 32-colour palette from the first frame (it shows every part) for all: 5x faster than one per frame.
    palette = Image.fromarray(frames[0]).quantize(colors=32, method=Image.Quantize.MEDIANCUT)
    images = [Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE) for f in frames[::frame_step]]
    path = Path(path)
    images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000 * frame_step / fps), loop=0)
    return path, total


@dataclasses.dataclass
class Args:
    """Evaluate the trained policies of a run folder on fresh episodes, greedy and sampling."""

    dir: tyro.conf.Positional[Path]
    """Run folder written by `python -m pgjax.train`."""
    episodes: int = 20
    """Fresh episodes per run and policy."""
    gymnasium: bool = False
    """Also evaluate every run's greedy policy on Gymnasium's reference environment (slow: Python steps)."""
    render: Path | None = None
    """Write a GIF of one greedy Gymnasium episode of run --run."""
    run: int = 0
    """Run whose episode --render draws."""
    seed: int = 0
    """PRNG seed: run k's JAX episodes use fold_in(key(seed), k); Gymnasium episode i resets with seed + i."""


def evaluate_folder(args: Args, console: Console) -> dict:
    """Evaluate every run of `args.dir`, print the table and write evaluation.json; returns its content."""
    run_dir = args.dir
    if not run_dir.is_dir():
        raise ValueError(f"no such folder: {run_dir}")
    if not (run_dir / outputs.SUMMARY_FILE).is_file():
        raise ValueError(f"{run_dir} holds no run (no {outputs.SUMMARY_FILE})")
    if args.episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {args.episodes}")
    summary = outputs.load_summary(run_dir)
    num_runs = len(summary["runs"])
    if not 0 <= args.run < num_runs:
        raise ValueError(f"--run {args.run} out of range: {run_dir} holds {num_runs} runs")
    if args.gymnasium or args.render:
        _gymnasium()
    if args.render:
        if importlib.util.find_spec("pygame") is None:
            raise ImportError(f"--render needs pygame, Gymnasium's renderer: {GYMNASIUM_HINT}")
        if not args.render.parent.is_dir():
            raise ValueError(f"no such folder for --render: {args.render.parent}")
    all_params = outputs.load_params(run_dir)  # {"group<g>": leaves [R_g, ...]}, in the order of the group's runs
    configs, params = [None] * num_runs, [None] * num_runs
    greedy, sampling = np.zeros((num_runs, args.episodes)), np.zeros((num_runs, args.episodes))
    base_key = jax.random.key(args.seed)
    for group in summary["groups"]:  # groups with the same network share one compile (`_returns_fn`)
        runs = list(group["runs"])
        config, stacked = outputs.load_run_config(run_dir, runs[0]), all_params[f"group{group['index']}"]
        keys = jax.vmap(lambda k: jax.random.fold_in(base_key, k))(jnp.asarray(runs))
        greedy[runs] = evaluate_runs(config, stacked, keys, episodes=args.episodes, greedy=True)
        sampling[runs] = evaluate_runs(config, stacked, keys, episodes=args.episodes, greedy=False)
        for position, k in enumerate(runs):
            configs[k], params[k] = config, jax.tree.map(lambda x: x[position], stacked)
    gym_returns = None
    if args.gymnasium:
        gym_returns = np.stack([
            evaluate_gymnasium(policy_callable(configs[k], params[k]), configs[k].static.env, args.episodes, args.seed)
            for k in range(num_runs)
        ])
    result = {"env": summary["env"], "episodes": args.episodes, "seed": args.seed, "runs": [], "groups": []}
    for k, run in enumerate(summary["runs"]):
        entry = {
            "run": k, "seed": run["seed"], "group": run["group"],
            "greedy_mean": greedy[k].mean(), "sampling_mean": sampling[k].mean(),
            "greedy_returns": greedy[k], "sampling_returns": sampling[k],
        }
        if gym_returns is not None:
            entry["gymnasium_greedy_mean"] = gym_returns[k].mean()
            entry["gymnasium_greedy_returns"] = gym_returns[k]
        result["runs"].append(entry)
    for group in summary["groups"]:
        runs = list(group["runs"])
        result["groups"].append({
            "index": group["index"], "runs": runs, "varied": group.get("varied", {}),
            "greedy": stats.aggregate(greedy[runs].mean(axis=1)),
            "sampling": stats.aggregate(sampling[runs].mean(axis=1)),
            "gymnasium_greedy": None if gym_returns is None else stats.aggregate(gym_returns[runs].mean(axis=1)),
        })
    if args.render:
        path, total = render_episode(policy_callable(configs[args.run], params[args.run]), args.render,
                                     configs[args.run].static.env, seed=args.seed)
        result["render"] = {"path": path, "run": args.run, "return": total}
    outputs.write_json(run_dir / EVALUATION_FILE, result)
    print_evaluation(result, console)
    return result


def _with_interval(agg: dict) -> str:
    ci = agg["iqm_ci95"]
    interval = "" if ci is None else f" (95% CI {ci[0]:.1f} to {ci[1]:.1f})"
    return f"IQM {agg['iqm']:.1f}{interval}, mean {agg['mean']:.1f}"


def print_evaluation(result: dict, console: Console) -> None:
    """One table row per run and one aggregate line per group."""
    with_gym = any("gymnasium_greedy_mean" in r for r in result["runs"])
    table = Table(title=f"{result['env']}: mean return over {result['episodes']} fresh episodes per run")
    columns = ["run", "seed", "group", "greedy", "sampling", *(["Gymnasium greedy"] if with_gym else [])]
    for column in columns:
        table.add_column(column, justify="right")
    for run in result["runs"]:
        row = [str(run["run"]), str(run["seed"]), str(run["group"]),
               f"{run['greedy_mean']:.1f}", f"{run['sampling_mean']:.1f}"]
        if with_gym:
            row.append(f"{run['gymnasium_greedy_mean']:.1f}")
        table.add_row(*row)
    console.print(table)
    for group in result["groups"]:
        varied = "".join(f"{name}={value}, " for name, value in group["varied"].items())
        line = (f"group {group['index']} ({varied}{len(group['runs'])} runs) | "
                f"greedy {_with_interval(group['greedy'])} | sampling {_with_interval(group['sampling'])}")
        if group["gymnasium_greedy"] is not None:
            line += f" | Gymnasium greedy {_with_interval(group['gymnasium_greedy'])}"
        console.print(line)
    if "render" in result:
        render = result["render"]
        console.print(f"greedy episode of run {render['run']} (return {render['return']:.0f}) in {render['path']}")


def main(argv: list[str] | None = None) -> int:
    args = tyro.cli(Args, args=argv, description=__doc__.split("\n")[0])
    console = Console(width=shutil.get_terminal_size((120, 24)).columns)
    try:
        evaluate_folder(args, console)
    except (ValueError, IndexError, ImportError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyError as error:
        print(f"error: {args.dir} lacks {error} (written by another pgjax version?)", file=sys.stderr)
        return 2
    console.print(f"evaluation in {args.dir / EVALUATION_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
