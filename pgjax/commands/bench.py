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

import dataclasses
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import tyro

from pgjax.algo.config import Config
from pgjax.algo.presets import PRESETS, preset_config
from pgjax.commands import options
from pgjax.commands.outputs import check_output_file, json_object
from pgjax.commands.process import prepare_process, run_command
from pgjax.commands.shared import make_console, parse, version

if TYPE_CHECKING:
    from rich.console import Console

def bench_arguments(preset: str = "default", env: str | None = None) -> type:
    """The tyro dataclass of `python -m pgjax.bench`'s command line.

    --preset, --env, --env-kwargs, --max-episode-steps and --num-updates are the training settings' own declarations
    (`pgjax.commands.options.setting_flags`, one value each), their help showing
    `preset` on `env`'s values; the rest are the benchmark's (--feature-major-backward
    sets the fast path `FastPaths.feature_major_dense`).
    """
    defaults = preset_config(preset if preset in PRESETS else "default", env)
    arg = lambda help, hint=None, metavar=None: tyro.conf.arg(help=help, help_behavior_hint=hint, metavar=metavar)
    return dataclasses.make_dataclass("BenchArguments", [
        options.preset_flag("Training configuration to measure."),
        *options.setting_flags(("env", "env_kwargs", "max_episode_steps", "num_updates"), defaults, sweep=False),
        ("feature_major_backward", Annotated[bool | None, arg(
            "Whether the MLP takes the hand-written feature-major backward pass (default: where its first layer "
            "is at least as wide as the flattened observation).", "")], dataclasses.field(default=None)),
        # "INT...": one value or more, as check_command_line requires (tyro's own "[INT [INT ...]]" says none will do)
        ("runs", Annotated[tuple[int, ...], arg("Numbers of runs (seeds) to measure, one row each.", None, "INT...")],
         dataclasses.field(default=(1, 16, 64, 256, 1024))),
        ("env_limit_steps", Annotated[int | None, arg("Steps of the random-action scan that measures the "
                                                      "environment limit (default: 20 million env steps, at least "
                                                      "1000).", "")], dataclasses.field(default=None)),
        ("compile_updates", Annotated[tuple[int, ...], arg("Update counts at which compile time is measured for "
                                                           "the middle rung.", None, "INT...")],
         dataclasses.field(default=(10, 100, 1000))),
        ("quick", Annotated[bool, arg("Smoke test: runs 1 and 8, 5 updates, 100 env-limit steps, no compile "
                                      "ladder.")], dataclasses.field(default=False)),
        ("out", Annotated[Path | None, arg("Write the results as JSON here.", "")], dataclasses.field(default=None)),
    ], frozen=True)


# What an earlier --out of bench holds: it may be written over (`pgjax.commands.outputs`).
BENCH_FILE = json_object('a pgjax.bench JSON (with "complete", "device" and "ladder")',
                         ("complete", "device", "ladder"))


def check_bench_args(args) -> None:
    """Refuse the benchmark's flags that cannot work, all of them before any benchmarking.

    Args:
      args: the parsed `bench_arguments`.

    Raises:
      ValueError: one line naming the flag: --runs, --compile-updates (each), --num-updates or
        --env-limit-steps < 1, --runs or --compile-updates given a value twice, or an --out that
        cannot be written or is an existing file that is not an earlier --out of bench
        (`pgjax.commands.outputs.check_output_file`).
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
    for name in ("num_updates", "env_limit_steps", "max_episode_steps"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"{options.flag(name)} must be >= 1, got {value}")
    check_output_file("--out", args.out, BENCH_FILE, make_folders=True)


def bench_config(args: Any) -> Config:
    """The configuration measured: the preset on --env, with --quick's and --num-updates' changes
    (the ladder's own settings are `ladder_settings`', the fast paths `bench_paths`')."""
    preset = preset_config(args.preset, args.env)
    static = preset.static
    for name in ("env_kwargs", "max_episode_steps"):
        if getattr(args, name) is not None:
            static = dataclasses.replace(static, **{name: getattr(args, name)})
    if args.quick:
        static = dataclasses.replace(static, num_updates=5)
    elif args.num_updates is not None:
        static = dataclasses.replace(static, num_updates=args.num_updates)
    return Config(static, preset.hparams)


def bench_paths(args: Any):
    """The fast paths measured (`pgjax.algo.config.FastPaths`): all, --feature-major-backward deciding the MLP's."""
    from pgjax.algo.config import FastPaths

    return FastPaths(feature_major_dense=args.feature_major_backward)


def ladder_settings(args: Any) -> tuple[tuple[int, ...], int | None, tuple[int, ...]]:
    """(runs of each rung, env-limit steps, compile-ladder updates): --quick's small ones, else the flags'."""
    if args.quick:
        return (1, 8), 100, ()
    return args.runs, args.env_limit_steps, args.compile_updates


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    preset_name, env = options.prescan(argv, "--preset") or "default", options.prescan(argv, "--env")
    try:
        description = f"{__doc__.splitlines()[0]}\n\n{options.environments_text()}"  # --env's help points to it
        args = parse(bench_arguments(preset_name, env), argv, "pgjax.bench", description)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 2
    try:
        check_bench_args(args)
        config = bench_config(args)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    from pgjax.algo.envs import env_for
    from pgjax.algo.validation import validate_config

    try:
        validate_config(config)
        spec = env_for(config.static)
    except ValueError as error:
        print(f"error: {options.with_flag_names(str(error))}", file=sys.stderr)
        return 2
    try:
        return run_ladder(args, config, spec, make_console())
    except ValueError as error:  # --out could not be written (a full disk): one line naming it, exit status 1
        if not isinstance(error.__cause__, OSError):
            raise
        print(f"error: {error}", file=sys.stderr)
        return 1


def run_ladder(args: Any, config: Config, spec, console: Console) -> int:
    """Measure every rung (until one does not fit or fails), then the compile ladder; print, and write --out."""
    from pgjax.results import throughput

    static = config.static
    paths = bench_paths(args)
    device = throughput.device_description()
    console.print(f"device: {device['num_devices']} x {device['device_kind']} ({device['platform']}); "
                  f"preset {args.preset}, {static.env}, {static.num_updates} updates x "
                  f"{static.episodes_per_update} episodes per run")
    run_counts, env_steps, compile_updates = ladder_settings(args)
    record = {"rows": [], "compile_ladder": [], "stopped": None}
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
    write = lambda complete: write_record(args, config, spec, paths, device, record, complete)
    write(False)
    for num_runs in run_counts:
        reason = throughput.rung_fits(config, num_runs)
        if reason is None:
            try:
                row = throughput.measure_rung(config, spec, num_runs, env_steps, paths)
            except RuntimeError as error:  # XLA's errors (out of memory, say) are RuntimeErrors
                reason = f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
        if reason is not None:
            record["stopped"] = {"runs": num_runs, "reason": reason}
            console.print(f"  runs {num_runs}: stopped climbing: {reason}", soft_wrap=True)
            write(False)
            break
        record["rows"].append(row)
        write(False)
        from pgjax.running.progress import format_rate

        console.print(
            f"  runs {num_runs}: env limit {format_rate(row['env_limit']['steps_per_second'])}, training "
            f"{format_rate(row['training']['steps_per_second'])} ({row['training_fraction_of_env_limit']:.0%}), "
            f"rollout {format_rate(row['rollout']['steps_per_second'])}"
        )
    rows = record["rows"]
    if compile_updates and rows:
        middle = rows[len(rows) // 2]["runs"]
        record["compile_ladder"] = [{"runs": middle, "num_updates": u,
                                     "compile_seconds": throughput.compile_seconds(config, middle, u, paths)}
                                    for u in compile_updates]
    print_table(rows, record["compile_ladder"], console)
    write(True)
    if args.out:
        console.print(f"wrote {args.out}")
    return 0


def write_record(args: Any, config: Config, spec, paths, device: dict, record: dict, complete: bool) -> None:
    """Write --out's JSON (nothing without --out): "complete" false until the ladder's end."""
    if args.out is None:
        return
    from pgjax.algo.fast.networks import feature_major
    from pgjax.algo.policy import MLPPolicy, make_policy
    from pgjax.running.devices import backend_choices
    from pgjax.running.run_folder import files

    files.write_json(args.out, {
        "complete": complete, "device": device,
        "versions": {**files.package_versions(), "pgjax": version()}, "command": sys.argv,
        "xla_flags": os.environ.get("XLA_FLAGS", ""), "backend_choices": backend_choices().as_dict(),
        "settings": {**dataclasses.asdict(args), "config": config.to_dict(),
                     "feature_major_backward_used": isinstance(policy := make_policy(spec, config), MLPPolicy)
                     and feature_major(policy, spec, paths.feature_major_dense)},
        "ladder": record["rows"], "stopped": record["stopped"], "compile_vs_updates": record["compile_ladder"],
    })


def print_table(rows: list[dict], compile_ladder: list[dict], console: Console) -> None:
    """The ladder's table, then the compile times."""
    from rich.table import Table

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
    prepare_process(sys.argv)  # XLA set up before anything starts JAX's backends
    sys.exit(run_command(main))
