"""pgjax's rollout (no update) against the raw environment's own steps, side by side, at the same parallelism.

    python experiments/rollout_speed.py --env Breakout-MinAtar
    PYTHONPATH=. python experiments/rollout_speed.py --env tests.custom:make_long_cartpole
    python experiments/rollout_speed.py --env my_envs:classic --max-episode-steps 1000   # Craftax, own venv

Writes (merging by environment and step limit) experiments/results/rollout_speed.{json,md}.

- raw: `jax.vmap` over R x E copies of the environment of a `lax.scan` of `env.step` (gymnax's, auto-reset)
  with uniformly random actions, `--raw-steps` steps: R E steps per scan step, every one a real step.
- pgjax: `jax.vmap` over R runs of one update's collect (`pgjax.algo.pieces.choose_collect`, as training builds
  it, the default preset's network at init), E episodes each, 10 collects in one program (as a training
  segment runs its updates: a program called once per collect would pay the fresh pages of its [T, R E]
  buffers, at the step limit, on every call). The loop runs until every episode has ended (or the step
  limit), so it computes (loop steps x R E) environment steps, of which the episodes' own are the "useful"
  ones; both rates are given.

Each is compiled first, then timed over `--repeats` calls (median).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import pgjax

pgjax.configure_cpu(1)  # one device: the same parallelism for both, no sharding

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from pgjax.algo.config import FastPaths
from pgjax.algo.envs import make_env  # noqa: E402
from pgjax.algo.pieces import choose_collect, choose_network  # noqa: E402
from pgjax.algo.policy import make_apply_fn, make_distribution, make_policy, recurrence  # noqa: E402
from pgjax.algo.presets import PRESETS  # noqa: E402
from pgjax.algo.trainer import make_trainer  # noqa: E402
from pgjax.running.devices import cpu_model  # noqa: E402

RESULTS = Path(__file__).parent / "results"
UPDATES = 10  # collects per timed program


def _median_seconds(fn, *args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def raw_steps_per_second(spec, copies: int, steps: int, repeats: int) -> float:
    """The environment's own `step` (auto-reset), `copies` in a vmap, `steps` steps: env steps per second."""
    env, params = spec.env, spec.params
    space = env.action_space(params)

    def one_copy(key):
        obs, state = env.reset(key, params)

        def step(carry, key):
            state, total = carry
            act_key, step_key = jax.random.split(key)
            _, state, reward, _, _ = env.step(step_key, state, space.sample(act_key), params)[:5]
            return (state, total + reward), None

        (_, total), _ = jax.lax.scan(step, (state, jnp.zeros(())), jax.random.split(key, steps))
        return total

    run = jax.jit(jax.vmap(one_copy))
    seconds = _median_seconds(run, jax.random.split(jax.random.key(0), copies), repeats=repeats)
    return copies * steps / seconds


def pgjax_steps_per_second(spec, config, runs: int, repeats: int) -> tuple[float, float]:
    """One update's collect of `runs` runs: (useful env steps per second, computed env steps per second)."""
    paths = FastPaths()
    policy = choose_network(make_policy(spec, config), spec, paths)
    collect = choose_collect(spec, make_apply_fn(policy), config.static.episodes_per_update,
                                make_distribution(spec, config.static.squash, paths.inverse_cdf_sampling), paths=paths,
                                recurrence=recurrence(policy))
    trainer = make_trainer(config, (spec.env, spec.params), fast=paths)
    keys = jax.random.split(jax.random.key(0), runs)
    params = jax.jit(jax.vmap(lambda k: trainer.init(k, config.hparams.as_arrays()).params))(keys)
    collect_runs = jax.vmap(collect)

    def updates(params, keys):  # UPDATES collects in one program, as training's segment runs them
        def one(i, totals):
            traj = collect_runs(params, jax.vmap(jax.random.fold_in, (0, None))(keys, i))
            return totals[0] + traj.valid.sum(), totals[1] + traj.loop_steps.max()

        return jax.lax.fori_loop(0, UPDATES, one, (jnp.int32(0), jnp.int32(0)))

    run = jax.jit(updates)
    seconds = _median_seconds(run, params, keys, repeats=repeats)
    useful, loop_steps = (int(x) for x in run(params, keys))
    computed = loop_steps * runs * config.static.episodes_per_update
    return useful / seconds, computed / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", required=True)
    parser.add_argument("--max-episode-steps", type=int, default=0)
    parser.add_argument("--runs", type=int, default=16)
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--raw-steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    spec = make_env(args.env, max_episode_steps=args.max_episode_steps)
    base = PRESETS["default"]
    config = dataclasses.replace(base, static=dataclasses.replace(
        base.static, env=args.env, episodes_per_update=args.episodes, max_episode_steps=args.max_episode_steps))
    copies = args.runs * args.episodes
    raw = raw_steps_per_second(spec, copies, args.raw_steps, args.repeats)
    useful, computed = pgjax_steps_per_second(spec, config, args.runs, args.repeats)
    row = {"env": args.env, "max_episode_steps": spec.max_steps, "obs_shape": list(spec.obs_shape),
           "obs_dtype": spec.obs_dtype, "parallel": copies, "raw_steps_per_second": raw,
           "pgjax_useful_steps_per_second": useful, "pgjax_computed_steps_per_second": computed,
           "computed_over_raw": computed / raw, "device": cpu_model(), "jax": jax.__version__}
    print(json.dumps(row), flush=True)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "rollout_speed.json"
    rows = {(r["env"], r["max_episode_steps"]): r for r in (json.loads(path.read_text()) if path.exists() else [])}
    rows[args.env, spec.max_steps] = row
    path.write_text(json.dumps(list(rows.values()), indent=1))
    lines = ["One XLA CPU device; R x E = parallel environments; steps per second, median of 5 calls.", "",
             "| env | T | obs | parallel | raw env | pgjax computed | pgjax useful | computed / raw | device |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows.values():
        lines.append(f"| {r['env']} | {r['max_episode_steps']:,} | {r['obs_dtype']} {r['obs_shape']} | {r['parallel']} "
                     f"| {r['raw_steps_per_second']:,.0f} | {r['pgjax_computed_steps_per_second']:,.0f} "
                     f"| {r['pgjax_useful_steps_per_second']:,.0f} | {r['computed_over_raw']:.2f} | {r['device']} |")
    (RESULTS / "rollout_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
