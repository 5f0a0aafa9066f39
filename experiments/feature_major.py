"""Is the MLP's feature-major backward pass faster, per preset? The measurements behind its automatic setting.

    python experiments/feature_major.py       # experiments/results/feature_major.json and .md

For each preset below, the training function (`pgjax.results.throughput.bench_train`, as
`python -m pgjax.bench` runs it, over every CPU device) is compiled twice, with
`FastPaths.feature_major_dense` True and False; then the two executables
run alternately, `--repeats` times each, on the same seeds. Reported: the
median training seconds of each, their ratio (on / off: below 1 means the
feature-major pass is faster), the useful env steps and mean final return of
each (equal up to float-sum order), and what `feature_major_dense=None`
picks for the preset (`pgjax.algo.fast.networks.feature_major`).
"""

from __future__ import annotations

from pgjax.running.devices import configure_cpu

if __name__ == "__main__":
    configure_cpu()

import dataclasses
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import tyro

from pgjax.algo.config import Config, FastPaths
from pgjax.algo.envs import make_env
from pgjax.algo.fast.networks import feature_major
from pgjax.algo.policy import make_policy
from pgjax.algo.presets import preset_config
from pgjax.results.throughput import bench_train, device_description
from pgjax.running.run_folder import files
from pgjax.running.sharding import compile_sharded

# (preset, env, updates): every MLP preset pgjax ships (the tutorials' on CartPole), updates capped so
# that each measurement takes seconds; Breakout stands for the MinAtar presets (400 inputs into 64).
CASES = (
    ("default", "CartPole-v1", 100),
    ("seed-a", "CartPole-v1", 300),
    ("seed-b", "CartPole-v1", 300),
    ("default", "Acrobot-v1", 50),
    ("default", "MountainCar-v0", 30),
    ("default", "Pendulum-v1", 100),
    ("default", "MountainCarContinuous-v0", 30),
    ("default", "Catch-bsuite", 100),
    ("default", "Breakout-MinAtar", 30),
)


@dataclasses.dataclass
class Args:
    runs: int = 64
    """Seeds trained at once per measurement."""
    repeats: int = 3
    """Alternating timed runs of each executable."""
    out: Path = Path("experiments/results/feature_major.json")
    """JSON output; a Markdown table is written next to it."""


def measure(config: Config, runs: int, repeats: int) -> dict:
    """Compile with the feature-major backward on and off, then time the two alternately."""
    keys = jax.vmap(jax.random.key)(jnp.arange(runs))
    hparams = config.hparams.broadcast(runs)
    compiled = {}
    for setting in (True, False):
        train = bench_train(config, FastPaths(feature_major_dense=setting))
        compiled[setting] = compile_sharded(jax.vmap(train), keys, hparams)[:2]
    seconds = {True: [], False: []}
    results = {}
    for _ in range(repeats):
        for setting, (executable, placed) in compiled.items():
            start = time.perf_counter()
            state, metrics = jax.block_until_ready(executable(*placed))
            seconds[setting].append(time.perf_counter() - start)
            results[setting] = metrics
    summary = {}
    for setting, metrics in results.items():
        env_steps = np.asarray(metrics.env_steps)[:runs, -1]
        final = np.asarray(metrics.episode_returns)[:runs, -1].mean(axis=-1)
        summary["on" if setting else "off"] = {
            "seconds": seconds[setting], "median_seconds": statistics.median(seconds[setting]),
            "useful_env_steps": int(env_steps.sum()), "final_return_mean": float(final.mean()),
        }
    summary["ratio_on_off"] = summary["on"]["median_seconds"] / summary["off"]["median_seconds"]
    return summary


def main() -> int:
    args = tyro.cli(Args)
    rows = []
    for preset, env, updates in CASES:
        config = preset_config(preset, env)
        config = Config(dataclasses.replace(config.static, num_updates=updates), config.hparams)
        spec = make_env(env)
        row = {
            "preset": preset, "env": env, "updates": updates, "runs": args.runs,
            "inputs": int(np.prod(spec.obs_shape)), "hidden": list(config.static.hidden),
            "automatic": feature_major(make_policy(spec, config), spec),
            **measure(config, args.runs, args.repeats),
        }
        rows.append(row)
        print(f"{preset:8s} {env:26s} on {row['on']['median_seconds']:.3f} s, off {row['off']['median_seconds']:.3f} s,"
              f" ratio {row['ratio_on_off']:.2f}, automatic {'on' if row['automatic'] else 'off'}", flush=True)
    files.write_json(args.out, {
        "device": device_description(), "versions": files.package_versions(), "command": sys.argv,
        "settings": dataclasses.asdict(args), "rows": rows,
    })
    lines = [
        f"Training seconds (median of {args.repeats} alternating runs, {args.runs} seeds), feature-major backward on"
        " and off; ratio < 1: on is faster.",
        "",
        "| preset | env | inputs -> hidden | updates | on s | off s | on/off | automatic | env steps on / off |",
        "|---|---|---|---:|---:|---:|---:|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['preset']} | {r['env']} | {r['inputs']} -> {'x'.join(map(str, r['hidden']))} | {r['updates']} | "
            f"{r['on']['median_seconds']:.3f} | {r['off']['median_seconds']:.3f} | {r['ratio_on_off']:.2f} | "
            f"{'on' if r['automatic'] else 'off'} | "
            f"{r['on']['useful_env_steps']:,} / {r['off']['useful_env_steps']:,} |"
        )
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
