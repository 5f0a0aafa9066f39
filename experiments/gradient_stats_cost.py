"""What --gradient-stats costs training: time and memory, against the same command without it.

    python experiments/gradient_stats_cost.py [--repeats 3] [--out experiments/results/gradient_stats_cost.json]

Runs `python -m pgjax.train --quiet` in one process, for each configuration below, with and without
--gradient-stats, alternating, `--repeats` times after one warm-up each (which compiles; the compile cache is
left off so that every run compiles alike). Records per run summary.json's `train_seconds` (compiled training
only) and `memory_bytes` (XLA's own figure for the compiled segment: arguments, outputs and temporaries, the
largest over the command's programs), and config.json's memory estimate of the chunk (`run_bytes` x chunk size +
the devices' `device_bytes`, `pgjax.running.memory`, which plans the chunks), with its `episode_gradients` part.
The statistics leave training bitwise as it is (tests/test_gradient_stats.py); the runs of a pair give the same
returns, checked here too.
"""

from __future__ import annotations

from pgjax.running.devices import configure_cpu

configure_cpu()

import contextlib
import dataclasses
import io
import os
import statistics
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

from pgjax.commands import train
from pgjax.running.footprint import format_bytes
from pgjax.running.run_folder import files, loading


@dataclasses.dataclass
class Args:
    repeats: int = 3
    """Alternating repetitions of off and on, after one warm-up each."""
    out: Path = Path("experiments/results/gradient_stats_cost.json")
    """JSON file to write."""


# name -> arguments of `python -m pgjax.train` (64 seeds each: the default command's)
CONFIGURATIONS = {
    "default": [],  # CartPole-v1's default preset: 8 episodes per update, hidden 32, 100 updates
    "bigger": ["--episodes-per-update", "32", "--hidden", "64,64", "--num-updates", "25"],
}
WAYS = {"off": [], "on": ["--gradient-stats"]}


def cpu_model() -> str:
    """The host CPU's model name (Linux's /proc/cpuinfo), or "unknown CPU"."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return "unknown CPU"
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown CPU")


def run_once(arguments: list[str], folder: Path) -> dict:
    out = folder / f"run-{time.monotonic_ns()}"
    with contextlib.redirect_stdout(io.StringIO()):
        code = train.main(["--quiet", "--compile-cache", "off", "--out", str(out), *arguments])
    if code != 0:
        raise RuntimeError(f"{' '.join(arguments)}: exit {code}")
    summary = loading.load_summary(out)
    (estimate,) = loading.load_json(out / files.CONFIG_FILE)["memory_estimate"]
    returns = np.asarray(loading.load_group_metrics(out, 0)["episode_return"])
    return {"train_seconds": summary["train_seconds"], "compile_seconds": summary["compile_seconds"],
            "xla_memory_bytes": summary["memory_bytes"],
            "planned_chunk_bytes": estimate["chunk_size"] * estimate["run_bytes"]
            + summary["devices"] * estimate["device_bytes"],
            "chunk_size": estimate["chunk_size"], "run_bytes": estimate["run_bytes"],
            "episode_gradients_bytes": estimate["parts"].get("episode_gradients", 0),
            "returns_digest": float(returns.sum(dtype=np.float64))}


def main(args: Args) -> dict:
    records = {name: {way: [] for way in WAYS} for name in CONFIGURATIONS}
    with tempfile.TemporaryDirectory(prefix="pgjax-gradient-stats-cost-") as folder:
        for name, arguments in CONFIGURATIONS.items():
            for way, extra in WAYS.items():  # warm-up: imports, the environment's first build
                run_once([*arguments, *extra], Path(folder))
            for _ in range(args.repeats):
                for way, extra in WAYS.items():
                    records[name][way].append(run_once([*arguments, *extra], Path(folder)))
                    print(f"{name:8s} {way:3s} train {records[name][way][-1]['train_seconds']:.2f} s", flush=True)
    result = {
        "device": f"{len(jax.devices())} x {jax.devices()[0].device_kind} on {cpu_model()} ({os.cpu_count()} cores)",
        "command": "python -m pgjax.train --quiet --compile-cache off [--gradient-stats] (64 seeds)",
        "configurations": {name: " ".join(arguments) or "(the default preset)"
                           for name, arguments in CONFIGURATIONS.items()},
        "repeats": args.repeats, "runs": records, "summary": {},
        "versions": files.package_versions(("pgjax", "jax", "jaxlib")),
    }
    for name, ways in records.items():
        median = {way: {key: statistics.median(r[key] for r in rs) for key in ("train_seconds", "compile_seconds")}
                  for way, rs in ways.items()}
        off, on = ways["off"][0], ways["on"][0]
        same = all(a["returns_digest"] == b["returns_digest"] for a, b in zip(ways["off"], ways["on"]))
        result["summary"][name] = {
            "median_train_seconds": {way: m["train_seconds"] for way, m in median.items()},
            "train_seconds_ratio": median["on"]["train_seconds"] / median["off"]["train_seconds"],
            "median_compile_seconds": {way: m["compile_seconds"] for way, m in median.items()},
            "xla_memory_bytes": {"off": off["xla_memory_bytes"], "on": on["xla_memory_bytes"]},
            "xla_memory_ratio": on["xla_memory_bytes"] / off["xla_memory_bytes"],
            "planned_chunk_bytes": {"off": off["planned_chunk_bytes"], "on": on["planned_chunk_bytes"]},
            "chunk_size": {"off": off["chunk_size"], "on": on["chunk_size"]},
            "episode_gradients_bytes_per_run": on["episode_gradients_bytes"],
            "same_returns": same,
        }
        s = result["summary"][name]
        print(f"{name:8s} train {s['median_train_seconds']['off']:.2f} s -> {s['median_train_seconds']['on']:.2f} s "
              f"({s['train_seconds_ratio']:.2f} x) | XLA memory {format_bytes(s['xla_memory_bytes']['off'])} -> "
              f"{format_bytes(s['xla_memory_bytes']['on'])} ({s['xla_memory_ratio']:.2f} x) | planned "
              f"{format_bytes(s['planned_chunk_bytes']['off'])} -> "
              f"{format_bytes(s['planned_chunk_bytes']['on'])} | same returns {same}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    files.write_json(args.out, result)
    return result


if __name__ == "__main__":
    import tyro

    main(tyro.cli(Args))
