"""How the `default` preset was chosen: candidate settings x learning rates x seed blocks.

    python experiments/tune_default.py                 # the table in the README
    python experiments/tune_default.py --blocks 0 1    # fewer seed blocks

Every candidate gets the same training budget (800 episodes per run) and is
trained on 64 seeds per block; a candidate is only as good as its worst block.
Prints one row per candidate and learning rate: runs solved (mean return of the
last 100 training episodes >= 475), the median and largest env steps at which a
run first solved, and the env steps a run used in all.
"""

from __future__ import annotations

from pgjax.running.devices import configure_cpu

if __name__ == "__main__":
    configure_cpu()

import dataclasses
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import tyro

from pgjax.algo.config import Config
from pgjax.algo.presets import PRESETS
from pgjax.algo.trainer import make_train
from pgjax.results.summary import run_result
from pgjax.running.run_folder import files
from pgjax.running.sharding import train_runs

BUDGET_EPISODES = 800
CANDIDATES = {
    "default": {},
    "reward-to-go, gamma 1": {"returns": "reward_to_go"},
    "reward-to-go, gamma 0.99": {"returns": "reward_to_go", "gamma": 0.99},
    "4 episodes per update": {"episodes_per_update": 4},
    "16 episodes per update": {"episodes_per_update": 16},
    "hidden 16": {"hidden": (16,)},
    "episode_sum reduction": {"reduction": "episode_sum"},
}


@dataclasses.dataclass
class Args:
    blocks: tuple[int, ...] = (0, 1, 2)
    """Seed blocks to train: block b is seeds 64b .. 64b+63."""
    lrs: tuple[float, ...] = (0.01, 0.03, 0.05)
    """Learning rates tried for every candidate (vmapped: one compile per candidate)."""
    out: Path = Path("experiments/results/tune_default.json")


def evaluate(overrides: dict, lrs: tuple[float, ...], block: int) -> list[dict]:
    base = PRESETS["default"]
    gamma = overrides.pop("gamma", base.hparams.gamma)
    static = dataclasses.replace(base.static, **overrides)
    static = dataclasses.replace(static, num_updates=BUDGET_EPISODES // static.episodes_per_update)
    config = Config(static, base.hparams.replace(gamma=gamma))
    seeds = np.arange(64 * block, 64 * block + 64)
    keys = jax.vmap(jax.random.key)(jnp.tile(jnp.asarray(seeds), len(lrs)))
    hparams = config.hparams.broadcast(keys.shape[0])
    hparams = hparams.replace(learning_rate=jnp.repeat(jnp.asarray(lrs, jnp.float32), len(seeds)))
    _, metrics, info = train_runs(make_train(config), keys, hparams)
    returns, steps = np.asarray(metrics.episode_returns), np.asarray(metrics.env_steps)
    rows = []
    for i, lr in enumerate(lrs):
        runs = [run_result(returns[k], steps[k], 475.0) for k in range(i * 64, (i + 1) * 64)]
        solved_at = [r["solved_at_env_steps"] for r in runs if r["solved_at_env_steps"] is not None]
        rows.append({
            "lr": lr, "block": block, "solved": sum(r["solved"] for r in runs),
            "final_return_min": min(r["final_return"] for r in runs),
            "solved_at_median": float(np.median(solved_at)) if solved_at else None,
            "solved_at_max": max(solved_at) if len(solved_at) == 64 else None,
            "env_steps_per_run": float(steps[i * 64 : (i + 1) * 64, -1].mean()),
            "train_seconds": info["run_seconds"],
        })
    return rows


def main() -> int:
    args = tyro.cli(Args)
    results = {}
    start = time.perf_counter()
    print(f"devices: {jax.devices()}; budget {BUDGET_EPISODES} episodes per run; 64 seeds per block")
    print("| candidate | lr | solved per block | worst final return | median of the blocks' median env steps "
          "to first solve | max env steps to first solve | env steps per run |")
    print("|---|---|---|---|---|---|---|")
    for name, overrides in CANDIDATES.items():
        rows = [r for b in args.blocks for r in evaluate(dict(overrides), args.lrs, b)]
        results[name] = rows
        for lr in args.lrs:
            mine = [r for r in rows if r["lr"] == lr]
            medians = [r["solved_at_median"] for r in mine if r["solved_at_median"] is not None]
            maxes = [r["solved_at_max"] for r in mine]
            print(
                f"| {name} | {lr:g} | {' / '.join(str(r['solved']) for r in mine)} | "
                f"{min(r['final_return_min'] for r in mine):.1f} | "
                f"{np.median(medians) if medians else float('nan'):,.0f} | "
                f"{f'{max(maxes):,}' if None not in maxes else 'not all solved'} | "
                f"{np.mean([r['env_steps_per_run'] for r in mine]):,.0f} |",
                flush=True,
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    files.write_json(args.out, {"command": sys.argv, "budget_episodes": BUDGET_EPISODES,
                                  "devices": [str(d) for d in jax.devices()], "results": results,
                                  "versions": files.package_versions()})
    print(f"wrote {args.out} in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
