"""Which learning rate should an environment without a preset of its own train with?

    python experiments/unpreset_defaults.py        # experiments/results/unpreset_defaults.json and .md

For every gymnax environment without a preset (`pgjax.algo.presets.ENV_PRESETS`)
that pgjax can build and train here, the default preset (CartPole-v1's
settings) trains 16 seeds at each learning rate of `--lrs` (one compile per
environment, seeds and learning rates vmapped), for `--num-updates` updates. A
run's final return is the mean return of its last 10 updates' episodes; the
table gives the IQM over the 16 seeds (`pgjax.results.stats.iqm`) and, per
learning rate, the mean over environments of the score normalised between a
uniformly random policy's mean return (0, 1,000 episodes) and the best IQM any
learning rate reached on that environment (1). Environments that fail to build
or train are listed with their one-line reason.
"""

from __future__ import annotations

from pgjax.running.devices import configure_cpu

if __name__ == "__main__":
    configure_cpu()

import dataclasses
import sys
import time
from pathlib import Path

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import tyro

from pgjax.algo.presets import ENV_PRESETS, PRESETS
from pgjax.algo.trainer import make_train
from pgjax.commands.options import UNTRAINABLE_ENVS
from pgjax.results.random_policy import random_policy_return
from pgjax.results.stats import iqm
from pgjax.results.throughput import device_description
from pgjax.running.run_folder import files


@dataclasses.dataclass
class Args:
    lrs: tuple[float, ...] = (0.03, 0.01, 0.003)
    """Learning rates to compare (the first is the current default's)."""
    seeds: int = 16
    """Seeds per learning rate."""
    num_updates: int = 100
    """Updates per run."""
    envs: tuple[str, ...] = ()
    """Environments (default: every gymnax one without a preset)."""
    out: Path = Path("experiments/results/unpreset_defaults.json")
    """JSON output; a Markdown table is written next to it."""


def train_env(env: str, args: Args) -> dict:
    """IQM of the final return per learning rate, and the random policy's mean, for one environment."""
    config = PRESETS["default"]
    config = dataclasses.replace(config, static=dataclasses.replace(config.static, env=env,
                                                                   num_updates=args.num_updates))
    lrs = jnp.repeat(jnp.asarray(args.lrs, jnp.float32), args.seeds)
    hparams = config.hparams.broadcast(len(lrs)).replace(learning_rate=lrs)
    keys = jax.vmap(jax.random.key)(jnp.tile(jnp.arange(args.seeds), len(args.lrs)))
    start = time.perf_counter()
    _, metrics = jax.jit(jax.vmap(make_train(config)))(keys, hparams)
    returns = np.asarray(metrics.episode_return)[:, -10:].mean(axis=1).reshape(len(args.lrs), args.seeds)
    entropy = np.asarray(metrics.entropy)[:, -10:].mean(axis=1).reshape(len(args.lrs), args.seeds)
    return {
        "iqm": {str(lr): float(iqm(r)) for lr, r in zip(args.lrs, returns, strict=True)},
        "final_entropy_mean": {str(lr): float(e.mean()) for lr, e in zip(args.lrs, entropy, strict=True)},
        "random_mean": random_policy_return(env, episodes=1000),
        "seconds": time.perf_counter() - start,
    }


def main() -> int:
    args = tyro.cli(Args)
    envs = args.envs or tuple(e for e in gymnax.registered_envs if e not in ENV_PRESETS and e not in UNTRAINABLE_ENVS)
    rows, failed = {}, {}
    for env in envs:
        try:
            rows[env] = train_env(env, args)
        except Exception as error:  # an environment pgjax cannot train here: say why, go on
            failed[env] = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
            print(f"{env}: {failed[env]}", flush=True)
            continue
        print(env, {lr: round(v, 3) for lr, v in rows[env]["iqm"].items()}, f"random {rows[env]['random_mean']:.3f}",
              f"{rows[env]['seconds']:.0f} s", flush=True)
    normalised = {}
    for lr in map(str, args.lrs):
        scores = []
        for row in rows.values():
            best, low = max(row["iqm"].values()), row["random_mean"]
            scores.append((row["iqm"][lr] - low) / (best - low) if best > low else 0.0)
        normalised[lr] = float(np.mean(scores)) if scores else float("nan")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    files.write_json(args.out, {"device": device_description(), "versions": files.package_versions(),
                                  "command": sys.argv, "settings": dataclasses.asdict(args), "envs": rows,
                                  "failed": failed, "normalised_mean": normalised})
    head = " | ".join(f"lr {lr}" for lr in args.lrs)
    lines = [f"Default preset on gymnax environments without a preset: IQM of the final return over "
             f"{args.seeds} seeds, {args.num_updates} updates, per learning rate "
             f"(device: {device_description()['cpu']}).", "", f"| environment | random | {head} |",
             "|---|---:|" + "---:|" * len(args.lrs)]
    for env, row in rows.items():
        lines.append(f"| {env} | {row['random_mean']:.3f} | "
                     + " | ".join(f"{row['iqm'][str(lr)]:.3f}" for lr in args.lrs) + " |")
    lines.append("| normalised mean (random 0, best 1) | | "
                 + " | ".join(f"{normalised[str(lr)]:.2f}" for lr in args.lrs) + " |")
    lines += ["", *(f"- {env}: not trained ({why})" for env, why in failed.items())]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}; normalised mean {normalised}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
