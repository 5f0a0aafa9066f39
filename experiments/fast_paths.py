"""What each fast path of the training path is worth: every fast path on, each one off, and all off.

    python experiments/fast_paths.py                       # experiments/results/fast_paths.json and .md
    python experiments/fast_paths.py --runs 16 --repeats 2 --num-updates 30   # a reduced reading

The fast paths are the switches of `pgjax.algo.config.FastPaths`. For the preset
(default: "default" on CartPole-v1) the training function (`jax.vmap(make_train(config,
fast=...))` over every CPU device, as `python -m pgjax.bench` runs it)
is compiled once per variant: every fast path on (pgjax's default), each one
off alone, and every one off (`FastPaths.reference()`). Then each compiled
executable runs once untimed, and then alternately, `--repeats` times each, on
the same seeds.
Compiles alternate the same way, `--compile-repeats` times each.
Reported per variant: median compile seconds (tracing and XLA), the median training
seconds, its ratio to every fast path on (above 1: turning the fast path off costs
that much), the useful env steps and the mean final return (equal up to the
order of float sums).
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
from pgjax.algo.presets import preset_config
from pgjax.algo.trainer import make_train
from pgjax.results.throughput import device_description
from pgjax.running.run_folder import files
from pgjax.running.sharding import compile_sharded


@dataclasses.dataclass
class Args:
    preset: str = "default"
    """Preset to train (`pgjax.algo.presets`)."""
    env: str = "CartPole-v1"
    """Environment of the preset."""
    runs: int = 64
    """Seeds trained at once per measurement."""
    num_updates: int | None = None
    """Updates per run (default: the preset's)."""
    network: str | None = None
    """Policy network (default: the preset's; "cnn" measures the convolution's fast path)."""
    repeats: int = 3
    """Alternating timed runs of each variant."""
    compile_repeats: int = 2
    """Alternating compiles of each variant (each from a freshly built `make_train`)."""
    paths: tuple[str, ...] = FastPaths.names()
    """Fast paths to turn off one at a time."""
    all_off: bool = True
    """Also measure every fast path off (the reference path; with image observations its plain-vmap rollout
    takes many times longer)."""
    out: Path = Path("experiments/results/fast_paths.json")
    """JSON output; a Markdown table is written next to it."""


def variants(paths: tuple[str, ...], all_off: bool = True) -> dict[str, FastPaths]:
    """{"all on": default, "<path> off": that fast path off alone, ..., "all off": the reference}."""
    out = {"all on": FastPaths()}
    for name in paths:
        out[f"{name} off"] = dataclasses.replace(FastPaths(), **{name: False})
    if all_off:
        out["all off"] = FastPaths.reference()
    return out


def main() -> int:
    args = tyro.cli(Args)
    config = preset_config(args.preset, args.env)
    if args.num_updates is not None:
        config = Config(dataclasses.replace(config.static, num_updates=args.num_updates), config.hparams)
    if args.network is not None:
        config = Config(dataclasses.replace(config.static, network=args.network), config.hparams)
    keys = jax.vmap(jax.random.key)(jnp.arange(args.runs))
    hparams = config.hparams.broadcast(args.runs)
    entropy_bonus = config.hparams.entropy_coef != 0
    compiled = {}
    rows = {name: {"fast_paths": dataclasses.asdict(paths), "compile_seconds_each": [], "seconds": []}
            for name, paths in variants(args.paths, args.all_off).items()}
    for _ in range(args.compile_repeats):
        for name, paths in variants(args.paths, args.all_off).items():
            train = make_train(config, fast=dataclasses.replace(paths, entropy_bonus=entropy_bonus))
            executable, placed, compile_seconds = compile_sharded(jax.vmap(train), keys, hparams)
            compiled[name] = (executable, placed)
            rows[name]["compile_seconds_each"].append(compile_seconds)
            print(f"compiled {name:32s} {compile_seconds:6.2f} s", flush=True)
    for executable, placed in compiled.values():  # one untimed run each: first-call costs out of the timing
        jax.block_until_ready(executable(*placed))
    for _ in range(args.repeats):
        for name, (executable, placed) in compiled.items():
            start = time.perf_counter()
            _, metrics = jax.block_until_ready(executable(*placed))
            rows[name]["seconds"].append(time.perf_counter() - start)
            rows[name]["useful_env_steps"] = int(np.asarray(metrics.env_steps)[: args.runs, -1].sum())
            rows[name]["final_return_mean"] = float(np.asarray(metrics.episode_returns)[: args.runs, -1].mean())
    base = statistics.median(rows["all on"]["seconds"])
    for name, row in rows.items():
        row["median_seconds"] = statistics.median(row["seconds"])
        row["compile_seconds"] = statistics.median(row["compile_seconds_each"])
        row["ratio_to_all_on"] = row["median_seconds"] / base
        print(f"{name:32s} train {row['median_seconds']:7.3f} s  x{row['ratio_to_all_on']:.2f}  "
              f"compile {row['compile_seconds']:6.2f} s", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    files.write_json(args.out, {
        "device": device_description(), "versions": files.package_versions(), "command": sys.argv,
        "settings": {**dataclasses.asdict(args), "num_updates": config.static.num_updates},
        "variants": rows,
    })
    lines = [
        f"Preset {args.preset} on {args.env} (network {config.static.network}), {args.runs} seeds x "
        f"{config.static.num_updates} updates: training "
        f"seconds (median of {args.repeats} alternating runs) and compile seconds (median of {args.compile_repeats}) "
        "per variant; x: training time "
        "over every fast path on (above 1: the fast path off costs that much).",
        "",
        "| variant | train s | x | compile s | useful env steps | final return |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['median_seconds']:.3f} | {r['ratio_to_all_on']:.2f} | {r['compile_seconds']:.2f} |"
                     f" {r['useful_env_steps']:,} | {r['final_return_mean']:.1f} |")
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
