"""`python -m pgjax.bench`: training throughput against the environment's own limit.

For each number of runs in a ladder, on whatever device JAX has, in one process:

  env limit   gymnax `env.step` (auto-reset included) with uniformly random actions,
              `lax.scan` over steps and `vmap` over runs x episodes_per_update
              environments, the same parallelism as the training; every step counts.
  training    the real `make_train` function; only *useful* env steps count, the
              steps of episodes an update used (padding after an episode ended
              does not).
  rollout     the same episode collection with the trained policy and no update.

Each is spread over all local devices as `python -m pgjax.train` does. The table
gives compile time apart from run time, XLA's memory estimate, the process's
peak RSS and each throughput as a fraction of the environment limit; `--out`
writes it all as JSON with the device, versions, XLA flags, pgjax's backend
choices and settings, rewritten after every rung ("complete" false until the
end), so that a benchmark cut off keeps the rungs it finished.

The ladder stops climbing at the first rung whose runs would not fit in half
the devices' free memory (`pgjax.running.memory`'s estimate, as the training's
chunk plan makes it; each rung trains all its runs at once) or whose
measurement fails (an out-of-memory error, say); "stopped" in the JSON says at
which rung and why.
"""

from __future__ import annotations

import sys

from pgjax.commands.checks import check_output_file
from pgjax.commands.shared import make_console, parse, prepare_process, run_command, version

if __name__ == "__main__":
    prepare_process(sys.argv)  # before gymnax starts JAX's backends

import dataclasses
import os
import resource
from pathlib import Path
from typing import Annotated

import jax
import jax.numpy as jnp
import numpy as np
import tyro
from rich.console import Console
from rich.table import Table

from pgjax.algo.config import Config
from pgjax.algo.distributions import make_distribution
from pgjax.algo.envs import EnvSpec, make_env
from pgjax.algo.fast import FastPaths, make_collect
from pgjax.algo.fast.networks import feature_major
from pgjax.algo.networks import MLPPolicy, make_apply_fn, make_policy
from pgjax.algo.presets import PRESETS, preset_config
from pgjax.algo.trainer import make_train
from pgjax.algo.validation import validate_config
from pgjax.commands import options
from pgjax.results import outputs, summary
from pgjax.running import memory
from pgjax.running.devices import backend_choices, cpu_model, device_memory_stats
from pgjax.running.sharding import compile_sharded, run_sharded, train_runs


def bench_arguments(preset: str = "default", env: str | None = None) -> type:
    """The tyro dataclass of `python -m pgjax.bench`'s command line.

    --preset, --env and --num-updates are the training settings' own declarations
    (`pgjax.commands.options.setting_flags`, one value each), their help showing
    `preset` on `env`'s values; the rest are the benchmark's (--feature-major-backward
    sets the fast path `FastPaths.feature_major_dense`).
    """
    defaults = preset_config(preset if preset in PRESETS else "default", env)
    arg = lambda help, hint=None: tyro.conf.arg(help=help, help_behavior_hint=hint)
    return dataclasses.make_dataclass("BenchArguments", [
        options.preset_flag("Training configuration to measure."),
        *options.setting_flags(("env", "num_updates"), defaults, sweep=False),
        ("feature_major_backward", Annotated[bool | None, arg(
            "Whether the MLP takes the hand-written feature-major backward pass (default: where its first layer "
            "is at least as wide as the flattened observation).", "")], dataclasses.field(default=None)),
        ("runs", Annotated[tuple[int, ...], arg("Numbers of runs (seeds) to measure, one row each.")],
         dataclasses.field(default=(1, 16, 64, 256, 1024))),
        ("env_limit_steps", Annotated[int | None, arg("Steps of the random-action scan that measures the "
                                                      "environment limit (default: 20 million env steps, at least "
                                                      "1000).", "")], dataclasses.field(default=None)),
        ("compile_updates", Annotated[tuple[int, ...], arg("Update counts at which compile time is measured for "
                                                           "the middle rung.")],
         dataclasses.field(default=(10, 100, 1000))),
        ("quick", Annotated[bool, arg("Smoke test: runs 1 and 8, 5 updates, 100 env-limit steps, no compile "
                                      "ladder.")], dataclasses.field(default=False)),
        ("out", Annotated[Path | None, arg("Write the results as JSON here.", "")], dataclasses.field(default=None)),
    ], frozen=True)


def peak_rss_bytes() -> int:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def env_limit(spec: EnvSpec, num_envs: int, num_steps: int) -> dict:
    """Random-action steps per second of `num_envs` environments under scan and vmap."""
    env, params = spec.env, spec.params
    step = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def random_steps(keys):  # keys [n]: this device's environments
        n = keys.shape[0]
        _, state = jax.vmap(env.reset, in_axes=(0, None))(keys, params)

        def one_step(carry, _):
            state, key = carry
            key, action_key, step_key = jax.random.split(key, 3)
            if spec.action_kind == "continuous":  # uniform over the Box
                action = jax.random.uniform(action_key, (n, spec.num_actions), minval=jnp.asarray(spec.action_low),
                                            maxval=jnp.asarray(spec.action_high))
            else:
                action = jax.random.randint(action_key, (n,), 0, spec.num_actions)
            _, state, reward, _, _, _ = step(jax.random.split(step_key, n), state, action, params)
            return (state, key), reward.sum()

        _, rewards = jax.lax.scan(one_step, (state, keys[0]), None, num_steps)
        return jnp.broadcast_to(rewards.sum(), (n,))

    keys = jax.random.split(jax.random.key(0), num_envs)
    _, info = run_sharded(random_steps, keys)
    return {**info, "steps_per_second": num_envs * num_steps / info["run_seconds"]}


def bench_train(config: Config, paths: FastPaths = FastPaths()):
    """`make_train(config)` with the entropy bonus fixed when tracing: every benchmarked run has config's hparams."""
    return make_train(config, fast=dataclasses.replace(paths, entropy_bonus=config.hparams.entropy_coef != 0))


def training(config: Config, num_runs: int, paths: FastPaths = FastPaths()) -> tuple[dict, object]:
    """Useful env steps per second of the real training function for `num_runs` seeds."""
    keys = jax.vmap(jax.random.key)(jnp.arange(num_runs))
    hparams = config.hparams.broadcast(num_runs)
    state, metrics, info = train_runs(bench_train(config, paths), keys, hparams)
    useful = int(np.asarray(metrics.env_steps)[:, -1].sum())
    computed = int((np.asarray(metrics.loop_steps) * config.static.episodes_per_update).sum())
    threshold = make_env(config.static.env).solve_threshold
    runs = [summary.run_result(r, s, threshold) for r, s in zip(np.asarray(metrics.episode_returns),
                                                               np.asarray(metrics.env_steps))]
    result = {
        **info,
        "useful_env_steps": useful,
        "computed_env_steps": computed,
        "steps_per_second": useful / info["run_seconds"],
        "final_return_mean": float(np.mean([r["final_return"] for r in runs])),
    }
    if threshold is not None:
        result["solved"] = sum(r["solved"] for r in runs)
    return result, state.params


def rollout(config: Config, params, num_runs: int) -> dict:
    """Useful env steps per second of episode collection alone, with given policies."""
    spec = make_env(config.static.env)
    collect = make_collect(spec, make_apply_fn(make_policy(spec, config)), config.static.episodes_per_update,
                           make_distribution(spec, config.static.squash))

    def collect_many(params, key):
        def one(_, k):
            return None, collect(params, k).valid.sum()

        _, steps = jax.lax.scan(one, None, jax.random.split(key, config.static.num_updates))
        return steps.sum()

    keys = jax.vmap(jax.random.key)(jnp.arange(num_runs) + 10_000)
    steps, info = run_sharded(jax.vmap(collect_many), params, keys)
    useful = int(np.asarray(steps).sum())
    return {**info, "useful_env_steps": useful, "steps_per_second": useful / info["run_seconds"]}


def compile_seconds(config: Config, num_runs: int, num_updates: int, paths: FastPaths = FastPaths()) -> float:
    """Trace and compile time of the sharded training function alone."""
    config = dataclasses.replace(config, static=dataclasses.replace(config.static, num_updates=num_updates))
    keys = jax.vmap(jax.random.key)(jnp.arange(num_runs))
    return compile_sharded(jax.vmap(bench_train(config, paths)), keys, config.hparams.broadcast(num_runs))[2]


def device_description() -> dict:
    device = jax.devices()[0]
    return {
        "platform": device.platform,
        "device_kind": device.device_kind,
        "num_devices": len(jax.devices()),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_bytes_limit": (device_memory() or {}).get("bytes_limit"),
    }


def device_memory() -> dict | None:
    """The first device's own memory counters (`Device.memory_stats()`: "bytes_limit", "bytes_in_use",
    "peak_bytes_in_use", ... in bytes); None where the device keeps none (CPU)."""
    return device_memory_stats(jax.devices()[0])


def rung_fits(config: Config, num_runs: int) -> str | None:
    """Why `num_runs` runs trained at once would not fit in half the devices' free memory, or None if they fit.

    The estimate of `pgjax.running.memory` with the whole training as one segment
    (the benchmark keeps every update's metrics on the devices).
    """
    static = config.static
    devices = jax.devices()
    per_run = memory.run_bytes(static, static.num_updates)
    per_device = memory.device_bytes(static)
    available = memory.available_bytes(devices)
    try:
        fits = memory.chunk_size(num_runs, per_run, per_device, len(devices), available)
    except ValueError as error:
        return str(error)
    if fits < num_runs:
        return (f"{num_runs} runs need about {memory.format_bytes(num_runs * per_run)}; half of the "
                f"{memory.format_bytes(available)} free holds {fits}")
    return None


def measure_rung(config: Config, spec: EnvSpec, num_runs: int, env_steps: int | None,
                 paths: FastPaths = FastPaths()) -> dict:
    """One row of the ladder: the env limit, training and rollout of `num_runs` runs."""
    num_envs = num_runs * config.static.episodes_per_update
    limit = env_limit(spec, num_envs, max(1000, 20_000_000 // num_envs) if env_steps is None else env_steps)
    train_result, params = training(config, num_runs, paths)
    roll = rollout(config, params, num_runs)
    return {
        "runs": num_runs,
        "parallel_envs": num_envs,
        "env_limit": limit,
        "training": train_result,
        "rollout": roll,
        "training_fraction_of_env_limit": train_result["steps_per_second"] / limit["steps_per_second"],
        "rollout_fraction_of_env_limit": roll["steps_per_second"] / limit["steps_per_second"],
        "peak_rss_bytes": peak_rss_bytes(),
        "device_memory": device_memory(),
    }


def check_bench_args(args) -> None:
    """Refuse the benchmark's flags that cannot work, all of them before any benchmarking.

    Args:
      args: the parsed `bench_arguments`.

    Raises:
      ValueError: one line naming the flag: --runs, --compile-updates (each), --num-updates or
        --env-limit-steps < 1, --runs or --compile-updates given a value twice, or an --out that
        cannot be written (`pgjax.commands.checks.check_output_file`).
    """
    for name in ("runs", "compile_updates"):
        values = getattr(args, name)
        if not values and name == "runs":
            raise ValueError("--runs needs at least one number of runs")
        bad = [v for v in values if v < 1]
        if bad:
            raise ValueError(f"{options.flag(name)} must be >= 1 each, got {bad[0]}")
        repeated = sorted({v for v in values if values.count(v) > 1})
        if repeated:
            raise ValueError(f"{options.flag(name)} lists {repeated[0]} twice: give each value once")
    for name in ("num_updates", "env_limit_steps"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"{options.flag(name)} must be >= 1, got {value}")
    check_output_file("--out", args.out)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    preset_name, env = options.prescan(argv, "--preset") or "default", options.prescan(argv, "--env")
    try:
        description = f"{__doc__.splitlines()[0]}\n\n{options.environments_text()}"  # --env's help points to it
        args = parse(bench_arguments(preset_name, env), argv, "pgjax.bench", description)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 2
    console = make_console()
    try:
        check_bench_args(args)
        preset = preset_config(args.preset, args.env)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    static = preset.static
    run_counts, env_steps, compile_updates = args.runs, args.env_limit_steps, args.compile_updates
    if args.quick:
        static = dataclasses.replace(static, num_updates=5)
        run_counts, env_steps, compile_updates = (1, 8), 100, ()
    elif args.num_updates is not None:
        static = dataclasses.replace(static, num_updates=args.num_updates)
    paths = FastPaths(feature_major_dense=args.feature_major_backward)
    config = Config(static, preset.hparams)
    try:
        validate_config(config)
        spec = make_env(static.env)
        policy = make_policy(spec, config)
    except ValueError as error:
        print(f"error: {options.with_flag_names(str(error))}", file=sys.stderr)
        return 2
    device = device_description()
    console.print(f"device: {device['num_devices']} x {device['device_kind']} ({device['platform']}); "
                  f"preset {args.preset}, {static.env}, {static.num_updates} updates x "
                  f"{static.episodes_per_update} episodes per run")

    rows, compile_ladder, stopped = [], [], None
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)

    def write(complete: bool) -> None:
        if args.out is not None:
            outputs.write_json(args.out, {
                "complete": complete, "device": device,
                "versions": {**outputs.package_versions(), "pgjax": version()}, "command": sys.argv,
                "xla_flags": os.environ.get("XLA_FLAGS", ""), "backend_choices": backend_choices().as_dict(),
                "settings": {**dataclasses.asdict(args), "config": config.to_dict(),
                             "feature_major_backward_used": isinstance(policy, MLPPolicy)
                             and feature_major(policy, spec, paths)},
                "ladder": rows, "stopped": stopped, "compile_vs_updates": compile_ladder,
            })

    write(False)
    for num_runs in run_counts:
        reason = rung_fits(config, num_runs)
        if reason is None:
            try:
                row = measure_rung(config, spec, num_runs, env_steps, paths)
            except RuntimeError as error:  # XLA's errors (out of memory, say) are RuntimeErrors
                reason = f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
        if reason is not None:
            stopped = {"runs": num_runs, "reason": reason}
            console.print(f"  runs {num_runs}: stopped climbing: {reason}", soft_wrap=True)
            write(False)
            break
        rows.append(row)
        write(False)
        console.print(
            f"  runs {num_runs}: env limit {row['env_limit']['steps_per_second'] / 1e6:.2f} M/s, training "
            f"{row['training']['steps_per_second'] / 1e6:.2f} M/s ({row['training_fraction_of_env_limit']:.0%}), "
            f"rollout {row['rollout']['steps_per_second'] / 1e6:.2f} M/s"
        )

    if compile_updates and rows:
        middle = rows[len(rows) // 2]["runs"]
        compile_ladder = [{"runs": middle, "num_updates": u,
                           "compile_seconds": compile_seconds(config, middle, u, paths)} for u in compile_updates]

    print_table(rows, compile_ladder, console)
    write(True)
    if args.out:
        console.print(f"wrote {args.out}")
    return 0


def print_table(rows: list[dict], compile_ladder: list[dict], console: Console) -> None:
    mega = lambda x: f"{x / 1e6:.2f}"
    table = Table(title="throughput in million env steps per second (training and rollout: useful steps only)")
    for column in ("runs", "envs", "env limit", "rollout", "training", "train/limit", "useful/computed",
                   "compile s", "train s", "XLA memory MiB", "peak RSS MiB", "solved"):
        table.add_column(column, justify="right")
    for r in rows:
        t = r["training"]
        memory = t["memory_bytes"]
        table.add_row(
            str(r["runs"]), str(r["parallel_envs"]), mega(r["env_limit"]["steps_per_second"]),
            mega(r["rollout"]["steps_per_second"]), mega(t["steps_per_second"]),
            f"{r['training_fraction_of_env_limit']:.0%}", f"{t['useful_env_steps'] / t['computed_env_steps']:.0%}",
            f"{t['compile_seconds']:.2f}", f"{t['run_seconds']:.2f}",
            "-" if memory is None else f"{memory / 2**20:.0f}", f"{r['peak_rss_bytes'] / 2**20:.0f}",
            f"{t['solved']}/{r['runs']}" if "solved" in t else "-",
        )
    console.print(table)
    if compile_ladder:
        text = ", ".join(f"{c['num_updates']} updates: {c['compile_seconds']:.2f} s" for c in compile_ladder)
        console.print(f"compile time with {compile_ladder[0]['runs']} runs - {text}")


if __name__ == "__main__":
    sys.exit(run_command(main))
