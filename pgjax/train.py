"""`python -m pgjax.train`: train many seeds of REINFORCE in one call and report on them.

    python -m pgjax.train                                # 64 seeds, CartPole-v1, preset "default"
    python -m pgjax.train --preset seed-a --num-seeds 8 --num-updates 2000
    python -m pgjax.train --help                         # every flag

Flags left out take the preset's value. Results go to `--out` (default: a new
folder under runs/); `pgjax.outputs` describes the files.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()  # so that wall_seconds counts the imports too

from pgjax.parallel import configure_cpu

if __name__ == "__main__":
    configure_cpu()  # before gymnax starts JAX's backends

import dataclasses
import math
import shutil
import sys
from datetime import datetime
from pathlib import Path
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
import tyro
from rich.console import Console
from rich.table import Table

from pgjax import outputs, report
from pgjax.config import PRESETS, Activation, Baseline, Config, Reduction, Returns
from pgjax.envs import make_env
from pgjax.parallel import train_runs
from pgjax.trainer import make_train


@dataclasses.dataclass
class Args:
    """Train many seeds of REINFORCE on a gymnax environment in one compiled call."""

    preset: Literal["default", "seed-a", "seed-b"] = "default"
    """Starting point for every setting below: "seed-a" and "seed-b" reproduce the two
    tutorials, "default" is pgjax's recommendation."""
    env: str | None = None
    """gymnax environment id (preset: CartPole-v1)."""
    num_seeds: int = 64
    """Number of independent runs, trained together."""
    seed: int = 0
    """Run k uses PRNG seed `seed + k`."""
    lr: float | None = None
    """Adam learning rate."""
    gamma: float | None = None
    """Discount factor in [0, 1]."""
    hidden: tuple[int, ...] | None = None
    """Hidden layer widths of the policy MLP, e.g. `--hidden 64 64`."""
    activation: Activation | None = None
    """Hidden-layer nonlinearity."""
    episodes_per_update: int | None = None
    """Complete episodes collected per run for each policy update."""
    num_updates: int | None = None
    """Policy updates per run (the training budget)."""
    num_episodes: int | None = None
    """Training budget in episodes per run instead: num_updates = ceil(num_episodes / episodes_per_update)."""
    returns: Returns | None = None
    """What weights log pi(a_t|s_t): "episode", the episode's discounted total;
    "reward_to_go", the discounted return from step t on."""
    baseline: Baseline | None = None
    """What is done to the returns: none, constant (subtract --baseline-constant),
    batch_mean, episode_norm or batch_norm (standardise)."""
    baseline_constant: float | None = None
    """Subtracted from the returns when --baseline constant."""
    reduction: Reduction | None = None
    """Per-step losses -> one number: episode_mean, episode_sum or step_mean."""
    entropy_coef: float | None = None
    """Weight of the entropy bonus."""
    max_grad_norm: float | None = None
    """Clip gradients to this global norm (inf: no clipping)."""
    out: Path | None = None
    """Run folder to write; default runs/<env>_<preset>_<time>."""


def resolve_config(args: Args) -> Config:
    """The preset with every flag that was given put over it."""
    preset = PRESETS[args.preset]
    static_overrides = {
        "env": args.env, "hidden": args.hidden, "activation": args.activation,
        "episodes_per_update": args.episodes_per_update, "num_updates": args.num_updates,
        "returns": args.returns, "baseline": args.baseline, "reduction": args.reduction,
    }
    static = dataclasses.replace(preset.static, **{k: v for k, v in static_overrides.items() if v is not None})
    if args.num_episodes is not None:
        if args.num_updates is not None:
            raise ValueError("give --num-updates or --num-episodes, not both")
        if args.num_episodes < 1:
            raise ValueError(f"--num-episodes must be >= 1, got {args.num_episodes}")
        static = dataclasses.replace(static, num_updates=math.ceil(args.num_episodes / static.episodes_per_update))
    numeric_overrides = {
        "learning_rate": args.lr, "gamma": args.gamma, "baseline_constant": args.baseline_constant,
        "entropy_coef": args.entropy_coef, "max_grad_norm": args.max_grad_norm,
    }
    hparams = preset.hparams.replace(**{k: v for k, v in numeric_overrides.items() if v is not None})
    config = Config(static, hparams)
    config.validate()
    if args.num_seeds < 1:
        raise ValueError(f"--num-seeds must be >= 1, got {args.num_seeds}")
    return config


def default_out_dir(config: Config, preset: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path("runs") / f"{config.static.env}_{preset}_{stamp}"
    out, n = base, 1
    while out.exists():
        out, n = base.with_name(f"{base.name}-{n}"), n + 1
    return out


def summarise(config: Config, preset: str, seeds: np.ndarray, metrics, timings: dict, threshold: float | None) -> dict:
    """The summary.json contract: aggregate numbers and one entry per run."""
    episode_returns = np.asarray(metrics.episode_returns)
    env_steps = np.asarray(metrics.env_steps)
    hyperparameters = {**dataclasses.asdict(config.static), **dataclasses.asdict(config.hparams)}
    runs = []
    for k, seed in enumerate(seeds):
        result = report.run_result(episode_returns[k], env_steps[k], threshold)
        runs.append({"seed": int(seed), "hyperparameters": hyperparameters, **result,
                     "env_steps": int(env_steps[k, -1]), "episodes": int(episode_returns[k].size)})
    finals = np.array([r["final_return"] for r in runs])
    mean, low, high = report.mean_interval(finals)
    steps_total = int(env_steps[:, -1].sum())
    return {
        "env": config.static.env,
        "preset": preset,
        "num_runs": len(runs),
        "solve_threshold": threshold,
        "solved_fraction": None if threshold is None else float(np.mean([r["solved"] for r in runs])),
        "final_return_mean": mean,
        "final_return_ci95": [low, high],
        "env_steps_total": steps_total,
        "wall_seconds": timings["wall_seconds"],
        "compile_seconds": timings["compile_seconds"],
        "train_seconds": timings["run_seconds"],
        "env_steps_per_second": steps_total / timings["run_seconds"],
        "devices": timings["devices"],
        "memory_bytes": timings["memory_bytes"],
        "device_kind": jax.devices()[0].device_kind,
        "runs": runs,
    }


def print_report(summary: dict, console: Console) -> None:
    table = Table(title=f"{summary['env']} - preset {summary['preset']} - {summary['num_runs']} runs")
    for column in ("run", "seed", "final return", "solved", "solved at env steps", "episodes", "env steps"):
        table.add_column(column, justify="right")
    for k, run in enumerate(summary["runs"]):
        solved_at = run["solved_at_env_steps"]
        table.add_row(
            str(k), str(run["seed"]), f"{run['final_return']:.1f}", "yes" if run["solved"] else "no",
            "-" if solved_at is None else f"{solved_at:,}", f"{run['episodes']:,}", f"{run['env_steps']:,}",
        )
    console.print(table)
    low, high = summary["final_return_ci95"]
    solved = sum(r["solved"] for r in summary["runs"])
    solved_text = (
        "no solve threshold" if summary["solve_threshold"] is None else f"solved {solved}/{summary['num_runs']}"
    )
    console.print(
        f"{solved_text} | final return {summary['final_return_mean']:.1f} (95% CI {low:.1f} to {high:.1f}) | "
        f"{summary['env_steps_total']:,} env steps in {summary['train_seconds']:.2f} s = "
        f"{summary['env_steps_per_second'] / 1e6:.2f} M steps/s | compile {summary['compile_seconds']:.2f} s | "
        f"wall {summary['wall_seconds']:.2f} s on {summary['devices']} x {summary['device_kind']}"
    )


def run(args: Args, console: Console | None = None, started: float | None = None) -> Path:
    """Train, write the run folder and print the report; returns the folder.

    `started` is the `time.perf_counter()` from which wall_seconds counts (default: now).
    """
    start = time.perf_counter() if started is None else started
    console = console or Console(width=shutil.get_terminal_size((120, 24)).columns)
    config = resolve_config(args)
    spec = make_env(config.static.env)
    out = args.out or default_out_dir(config, args.preset)
    if (out / outputs.SUMMARY_FILE).exists():
        raise FileExistsError(f"{out} already holds a run; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    seeds = np.arange(args.seed, args.seed + args.num_seeds)
    outputs.write_json(out / outputs.CONFIG_FILE, {
        "command": sys.argv, "args": dataclasses.asdict(args), "config": config.to_dict(),
        "seeds": seeds, "versions": outputs.package_versions(),
        "devices": [str(d) for d in jax.devices()],
    })
    keys = jax.vmap(jax.random.key)(jnp.asarray(seeds))
    hparams = config.hparams.broadcast(args.num_seeds)
    state, metrics, timings = train_runs(make_train(config), keys, hparams)
    outputs.write_metrics(out / outputs.METRICS_FILE, metrics, seeds)
    outputs.write_params(out / outputs.PARAMS_FILE, state.params)
    timings["wall_seconds"] = time.perf_counter() - start  # summary.json, written last, is all that is left
    summary = summarise(config, args.preset, seeds, metrics, timings, spec.solve_threshold)
    outputs.write_json(out / outputs.SUMMARY_FILE, summary)
    print_report(summary, console)
    console.print(f"results in {out}/")
    return out


def main(argv: list[str] | None = None, started: float | None = None) -> int:
    args = tyro.cli(Args, args=argv, description=__doc__.split("\n")[0])
    try:
        run(args, started=started)
    except (ValueError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(started=STARTED))
