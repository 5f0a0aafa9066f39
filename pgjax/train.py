"""`python -m pgjax.train`: train a grid of settings x many seeds of REINFORCE in one call.

    python -m pgjax.train                                # 64 seeds, CartPole-v1, preset "default"
    python -m pgjax.train --num-seeds 32 --lr 0.001 0.003 0.01 0.03    # 4 x 32 runs, one compile
    python -m pgjax.train --hidden 32 128 --lr 0.01 0.03 # 2 compile groups x 2 learning rates
    python -m pgjax.train --resume runs/<folder>         # continue an interrupted run
    python -m pgjax.train --help                         # every flag

Flags left out take the preset's value; a flag given several values sweeps them
(every combination, each with the same `--num-seeds` seeds). Results go to
`--out` (default: a new folder under runs/); `pgjax.results.outputs` describes the files.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()  # so that wall_seconds counts the imports too

import sys

from pgjax.cli import StopRequest, exit_now, prepare_process
from pgjax.running.devices import DEFAULT_COMPILE_CACHE, start_distributed, use_compile_cache

if __name__ == "__main__":
    prepare_process(sys.argv)  # before gymnax starts JAX's backends

import contextlib
import dataclasses
import io
import math
import os
import shutil
import signal
from pathlib import Path
from typing import Literal

import jax
import numpy as np
import tyro
from rich.console import Console

from pgjax.algo.config import Activation, Advantage, Baseline, Config, Network, Reduction, Returns, Squash
from pgjax.algo.envs import make_env
from pgjax.algo.networks import make_policy
from pgjax.algo.presets import preset_config
from pgjax.results import outputs
from pgjax.results.outputs import default_out_dir, prepare_out_dir
from pgjax.results.summary import summarise
from pgjax.results.tables import print_report
from pgjax.running import grid
from pgjax.running.progress import SweepProgress
from pgjax.running.sweep import Chunk, Interrupted, plan_chunks, train_sweep


@dataclasses.dataclass
class Args:
    """Train a grid of settings x many seeds of REINFORCE on a gymnax environment in one call."""

    preset: Literal["default", "seed-a", "seed-b"] = "default"
    """Starting point for every setting below: "seed-a" and "seed-b" reproduce the two
    tutorials (on --env if given), "default" is pgjax's recommendation for --env: its own
    preset where pgjax has one (CartPole-v1, Pendulum-v1, MountainCarContinuous-v0, Acrobot-v1,
    MountainCar-v0, the MinAtar games, Catch-bsuite; pgjax.config.ENV_PRESETS), else CartPole-v1's."""
    env: str | None = None
    """gymnax environment id (default: CartPole-v1). The policy follows its action space:
    categorical for Discrete actions, Gaussian for Box actions."""
    num_seeds: int = 64
    """Runs per grid point; run k of every grid point uses the same seed (paired comparisons)."""
    seed: int = 0
    """Run k of each grid point uses PRNG seed `seed + k`."""
    lr: tuple[float, ...] | None = None
    """Adam learning rate; several values sweep them (vmapped, one compile)."""
    gamma: tuple[float, ...] | None = None
    """Discount factor in [0, 1]; several values sweep them."""
    hidden: tuple[str, ...] | None = None
    """Hidden layer widths of the policy (and value) network, "64,64" for two layers; several
    values sweep them (one compile each), e.g. `--hidden 32 128`."""
    network: tuple[Network, ...] | None = None
    """"mlp" (observations flattened) or "cnn" (3x3 convolutions over image observations such
    as MinAtar's, then the --hidden layers); several values sweep them."""
    conv: tuple[str, ...] | None = None
    """Channels of the CNN's 3x3 convolutions, "16,32" for two layers (--network cnn)."""
    activation: tuple[Activation, ...] | None = None
    """Hidden-layer nonlinearity; several values sweep them."""
    squash: tuple[Squash, ...] | None = None
    """Box actions: "clip" the Gaussian's sample to the bounds (log-probability of the
    clipped Gaussian) or "tanh"-squash it (log-probability with the tanh Jacobian)."""
    episodes_per_update: tuple[int, ...] | None = None
    """Complete episodes collected per run for each policy update; several values sweep them."""
    num_updates: int | None = None
    """Policy updates per run (the training budget)."""
    num_episodes: int | None = None
    """Training budget in episodes per run instead: num_updates = ceil(num_episodes / episodes_per_update)."""
    returns: tuple[Returns, ...] | None = None
    """What weights log pi(a_t|s_t): "episode", the episode's discounted total;
    "reward_to_go", the discounted return from step t on."""
    baseline: tuple[Baseline, ...] | None = None
    """What is done to the returns: none, constant (subtract --baseline-constant),
    batch_mean, episode_norm or batch_norm (standardise), value (subtract a learned V(s):
    REINFORCE with baseline; needs --returns reward_to_go) or value_norm (the same,
    advantages standardised over the update's steps)."""
    advantage: tuple[Advantage, ...] | None = None
    """With a value baseline: "return" (G_t - V(s_t)) or "gae" (GAE with --gae-lambda)."""
    baseline_constant: tuple[float, ...] | None = None
    """Subtracted from the returns when --baseline constant."""
    reduction: tuple[Reduction, ...] | None = None
    """Per-step losses -> one number: episode_mean, episode_sum or step_mean."""
    entropy_coef: tuple[float, ...] | None = None
    """Weight of the entropy bonus."""
    max_grad_norm: tuple[float, ...] | None = None
    """Clip gradients to this global norm (inf: no clipping)."""
    divergence_limit: tuple[float, ...] | None = None
    """A run whose loss or parameters stop being finite, or one of whose parameters grows past
    this magnitude, is frozen and flagged diverged (default 1000)."""
    value_lr: tuple[float, ...] | None = None
    """Adam learning rate of the value network (value baselines)."""
    gae_lambda: tuple[float, ...] | None = None
    """GAE's lambda in [0, 1] (--advantage gae)."""
    value_scale: tuple[float, ...] | None = None
    """The value network's output is multiplied by this, to fit returns of about that magnitude."""
    init_log_std: tuple[float, ...] | None = None
    """Initial log standard deviation of a Gaussian policy, in units of half the action range."""
    max_parallel: int | None = None
    """Most runs trained at once; more are trained in chunks, one after another, with one
    compile (default: as many as half the free memory holds, and at most 64 per CPU device)."""
    checkpoint_every: int | None = None
    """Also checkpoint every this many updates (checkpoints are always written at the end
    of each chunk and when training is stopped)."""
    out: Path | None = None
    """Run folder to write; default runs/<env>_<preset>_<time>."""
    overwrite: bool = False
    """Replace the run already in --out."""
    resume: Path | None = None
    """Continue the interrupted run in this folder with its own settings."""
    quiet: bool = False
    """No progress bar (it is also off when stdout is not a terminal)."""
    compile_cache: str = os.environ.get("PGJAX_COMPILE_CACHE", DEFAULT_COMPILE_CACHE)
    """Folder where XLA's compiled programs are kept for later runs (JAX's persistent compilation
    cache, at most 1 GiB): a run whose programs were compiled before (same shapes and static
    settings; seeds and numeric settings do not matter) loads them instead; "off" disables it.
    The environment variable PGJAX_COMPILE_CACHE sets the default."""
    distributed: bool = False
    """Spread the runs over the devices of several processes (one per host): calls
    jax.distributed.initialize(), which finds its peers on SLURM, Open MPI, Kubernetes and Cloud
    TPU, or from JAX_COORDINATOR_ADDRESS, PGJAX_NUM_PROCESSES and PGJAX_PROCESS_ID (see the README)."""


def parse_hidden(value: str, flag: str = "--hidden") -> tuple[int, ...]:
    """ "64,64" or "64x64" -> (64, 64)."""
    try:
        widths = tuple(int(w) for w in value.replace("x", ",").split(","))
    except ValueError:
        raise ValueError(f"{flag} takes widths like 32 or 64,64, got '{value}'") from None
    if not widths or min(widths) < 1:
        raise ValueError(f"{flag} takes positive widths like 32 or 64,64, got '{value}'")
    return widths


def resolve_grid(args: Args) -> list[grid.GridPoint]:
    """The grid points: the preset with every flag put over it, one point per combination."""
    if args.num_seeds < 1:
        raise ValueError(f"--num-seeds must be >= 1, got {args.num_seeds}")
    if args.max_parallel is not None and args.max_parallel < 1:
        raise ValueError(f"--max-parallel must be >= 1, got {args.max_parallel}")
    if args.checkpoint_every is not None and args.checkpoint_every < 1:
        raise ValueError(f"--checkpoint-every must be >= 1, got {args.checkpoint_every}")
    preset = preset_config(args.preset, args.env)
    base_static = {"num_updates": args.num_updates}
    static = dataclasses.replace(preset.static, **{k: v for k, v in base_static.items() if v is not None})
    static_values = {
        "hidden": None if args.hidden is None else [parse_hidden(h) for h in args.hidden],
        "network": args.network, "conv": None if args.conv is None else [parse_hidden(c, "--conv") for c in args.conv],
        "activation": args.activation, "episodes_per_update": args.episodes_per_update,
        "returns": args.returns, "baseline": args.baseline, "reduction": args.reduction,
        "squash": args.squash, "advantage": args.advantage,
    }
    static_values = {k: v for k, v in static_values.items() if v is not None}
    numeric_values = {
        "learning_rate": args.lr, "gamma": args.gamma, "baseline_constant": args.baseline_constant,
        "entropy_coef": args.entropy_coef, "max_grad_norm": args.max_grad_norm,
        "divergence_limit": args.divergence_limit, "value_learning_rate": args.value_lr,
        "gae_lambda": args.gae_lambda, "value_scale": args.value_scale, "init_log_std": args.init_log_std,
    }
    numeric_values = {k: v for k, v in numeric_values.items() if v is not None}
    points = grid.expand_grid(Config(static, preset.hparams), static_values, numeric_values)
    if args.num_episodes is not None:
        if args.num_updates is not None:
            raise ValueError("give --num-updates or --num-episodes, not both")
        if args.num_episodes < 1:
            raise ValueError(f"--num-episodes must be >= 1, got {args.num_episodes}")
        points = [
            dataclasses.replace(p, config=dataclasses.replace(p.config, static=dataclasses.replace(
                p.config.static, num_updates=math.ceil(args.num_episodes / p.config.static.episodes_per_update))))
            for p in points
        ]
    return points


def resumed_args(args: Args) -> Args:
    """The arguments of the run in `args.resume`, with this invocation's --quiet."""
    config_file = args.resume / outputs.CONFIG_FILE
    if not config_file.exists():
        raise ValueError(f"{args.resume} holds no run to resume (no {outputs.CONFIG_FILE})")
    if (args.resume / outputs.SUMMARY_FILE).exists():
        raise ValueError(f"{args.resume} holds a finished run; there is nothing to resume")
    if dataclasses.replace(args, resume=None, quiet=False, compile_cache=Args.compile_cache) != Args():
        raise ValueError("--resume continues a run with its own settings; give only --resume DIR (and --quiet, "
                         "--compile-cache)")
    saved = outputs.load_json(config_file)["args"]
    saved = {k: tuple(v) if isinstance(v, list) else v for k, v in saved.items()}
    fields = {f.name for f in dataclasses.fields(Args)}
    return dataclasses.replace(
        Args(**{k: v for k, v in saved.items() if k in fields}), out=args.resume, resume=args.resume, quiet=args.quiet,
        compile_cache=args.compile_cache,
    )


def run(args: Args, console: Console | None = None, started: float | None = None,
        stop: StopRequest | None = None) -> Path:
    """Train, write the run folder and print the report; returns the folder.

    `started` is the `time.perf_counter()` from which wall_seconds counts (default: now).
    Raises `Interrupted` (after checkpointing) if `stop` was triggered.
    """
    start = time.perf_counter() if started is None else started
    console = console or Console(width=shutil.get_terminal_size((120, 24)).columns)
    if args.distributed and not jax.distributed.is_initialized():
        try:
            start_distributed()
        except RuntimeError as error:
            raise ValueError(f"--distributed: {error}") from None
    if use_compile_cache(args.compile_cache) is None and args.compile_cache != "off":
        console.print(f"compile cache off: cannot write {args.compile_cache}", soft_wrap=True)
    is_main = jax.process_index() == 0
    resuming = args.resume is not None
    if resuming:
        args = resumed_args(args)
    points = resolve_grid(args)
    groups = grid.compile_groups(points)
    spec = make_env(points[0].config.static.env)
    for compile_group in groups:  # an unsupported network for the environment fails here, before any file
        make_policy(spec, compile_group[0].config)
    out = args.out or default_out_dir(points[0].config.static.env, args.preset)
    devices = jax.devices()
    if resuming:
        saved = outputs.load_json(out / outputs.CONFIG_FILE)
        chunks = [Chunk(c["index"], c["group"], np.arange(c["start"], c["stop"]), c["size"]) for c in saved["chunks"]]
        if saved["num_devices"] != len(devices):
            raise ValueError(f"{out} was trained on {saved['num_devices']} devices and this process has "
                             f"{len(devices)}; resume it with the same number")
    else:
        chunks, estimates = plan_chunks(groups, args.num_seeds, devices, args.max_parallel)
        if is_main:
            prepare_out_dir(out, args.overwrite)
            outputs.write_json(out / outputs.CONFIG_FILE, {
                "command": sys.argv, "args": dataclasses.asdict(args),
                "grid": [{"index": p.index, "config": p.config.to_dict()} for p in points],
                "seeds": np.arange(args.seed, args.seed + args.num_seeds),
                "chunks": [{"index": c.index, "group": c.group, "start": int(c.positions[0]),
                            "stop": int(c.positions[-1]) + 1, "size": c.size} for c in chunks],
                "memory_estimate": estimates, "num_devices": len(devices),
                "versions": outputs.package_versions(), "devices": [str(d) for d in devices],
            })
    total_updates = sum(groups[c.group][0].config.static.num_updates for c in chunks)
    interactive = is_main and not args.quiet and console.is_terminal
    try:
        with SweepProgress(total_updates, console, enabled=interactive) as progress:
            results, timings = train_sweep(
                groups, args.num_seeds, args.seed, devices=devices, run_dir=out, chunks=chunks,
                checkpoint_every=args.checkpoint_every, on_segment=progress.report, should_stop=stop,
            )
    except Interrupted as stopped:
        stopped.run_dir = out
        raise
    if not is_main:
        return out
    by_point = {}
    for result, compile_group in zip(results, groups):
        for i, point in enumerate(compile_group):
            rows = slice(i * args.num_seeds, (i + 1) * args.num_seeds)
            by_point[point.index] = (jax.tree.map(lambda x: x[rows], result.metrics),
                                     jax.tree.map(lambda x: x[rows], result.state.params), result.seeds[rows])
    ordered = [by_point[i] for i in range(len(points))]
    outputs.write_metrics(out / outputs.METRICS_FILE, [m for m, _, _ in ordered], [s for _, _, s in ordered])
    outputs.write_params(out / outputs.PARAMS_FILE, [p for _, p, _ in ordered])
    timings["wall_seconds"] = time.perf_counter() - start  # summary.json, written last, is all that is left
    summary = summarise(points, args.num_seeds, args.preset, results, timings, spec.solve_threshold)
    outputs.write_json(out / outputs.SUMMARY_FILE, summary)
    print_report(summary, console)
    from pgjax.results.plots import plot_run

    plot_run(out)
    console.print(f"results in {out}/ (learning curves: {out / outputs.PLOT_FILE})")
    return out


def parse_args(argv: list[str] | None = None) -> Args:
    """tyro's parse of the command line, its usage errors cut to one line ("error: ...", exit status 2)."""
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            return tyro.cli(Args, args=argv, description=__doc__.split("\n")[0])
    except SystemExit as exit_:
        if exit_.code != 2:
            raise
        lines = [line.strip(" │╭╮╰╯─\t") for line in captured.getvalue().splitlines()]
        title, *body = [line for line in lines if line] or ["invalid arguments"]
        message = []
        for line in body:
            if line.startswith(("For full helptext", "Argument helptext", "Got errors")) or set(line) <= {"─", " "}:
                break
            message.append(line)
        print(f"error: {' '.join(message) or title}", file=sys.stderr)
        raise


def main(argv: list[str] | None = None, started: float | None = None) -> int:
    try:
        args = parse_args(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 2
    console = Console(width=shutil.get_terminal_size((120, 24)).columns)
    with StopRequest(console) as stop:
        try:
            run(args, console=console, started=started, stop=stop)
        except (ValueError, FileExistsError, ImportError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        except Interrupted as stopped:
            console.print(f"{stopped}; every finished chunk and the current one are checkpointed.")
            console.print(f"resume with: python -m pgjax.train --resume {stopped.run_dir}", soft_wrap=True)
            return 128 + (stop.signal or signal.SIGINT)
    return 0


if __name__ == "__main__":
    exit_now(main(started=STARTED))
