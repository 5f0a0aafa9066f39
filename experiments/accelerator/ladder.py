"""The accelerator measurements of issue 17, each step bounded in time and recorded as it finishes.

    python experiments/accelerator/ladder.py [--small] [--budget S] [--work DIR] [--steps A,B]
                                             [--require-platform gpu] OUT_DIR

`run.sh` beside this file installs what the machine lacks and calls it; README.md
says how to run it on a lent GPU. Each step is a fresh process of one of pgjax's
commands (this process never starts JAX, so that each step has the accelerator's
memory to itself), killed at its time limit:

    describe      the device, driver (nvidia-smi), versions, XLA flags and pgjax's
                  backend choices (a process of this file with --describe)
    train         python -m pgjax.train, default preset, 1024 seeds
    train_large   the same with 4096 seeds
    bench         python -m pgjax.bench over the ladder 1, 64, 1024, 4096, 16384,
                  65536 runs (it stops climbing where memory would not allow)
    grid          python -m pgjax.train --lr 0.01 0.03 0.05 --num-seeds 1024
    seed_b        python -m pgjax.train --preset seed-b --num-seeds 4096 --num-episodes 2000
    train_cached  `train` again: its programs come from the compile cache that
                  `train` filled (summary.json's compile_cache_hits)

--small runs the same steps with the ladder 1 and 8 and a few seeds and updates,
to check on a CPU that the whole thing works. Each step's time limit is its own
and at most what is left of --budget; a step with less than `MIN_STEP_SECONDS`
left is skipped. --steps runs some of them only (a second try);
--require-platform gpu stops after describe if JAX did not start the GPU.

Writes, in OUT_DIR (three files, so that a device tool that returns a few files
returns them all):

    accelerator.json   {"complete", "small", "budget_seconds", "work", "nvidia_smi",
                       "machine" (describe's output), "steps": [{"name", "command", "timeout_seconds",
                       "returncode", "timed_out", "skipped", "seconds", "result",
                       "output_tail"}, ...], "stopped" (only where --require-platform
                       stopped it), "seconds" (at the end)}, rewritten after every step
    bench.json         python -m pgjax.bench --out (rewritten after each rung)
    steps.log          every step's raw output (stdout and stderr), in order

The training run folders go to --work (default: a new temporary folder), with the
compile cache of the train steps (--work/xla-cache, emptied at the start).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MIN_STEP_SECONDS = 20
OUTPUT_TAIL_CHARS = 3000
FULL_LADDER = (1, 64, 1024, 4096, 16384, 65536)
KEPT_GROUPS = 20  # groups of a run's summary.json kept in accelerator.json (a 10,000-point search has 10,000)


def train_step(name: str, timeout: float, *args: str) -> dict:
    return {"name": name, "kind": "train", "timeout": timeout, "args": ["-m", "pgjax.train", *args]}


def plan(small: bool) -> list[dict]:
    """The steps in order: {"name", "kind" (describe, bench or train), "timeout" (seconds), "args" (after python)}.

    Full: the issue's sizes, their limits adding up to more than the default
    budget (the last steps get what is left). Small: the same steps with a few
    seeds and updates, sized for a CPU.
    """
    ranges = ["--lr", "1e-4:1e-1:log", "--entropy-coef", "0:0.02"]
    if small:
        seeds, large, grid_seeds, seed_b_seeds, episodes = "4", "8", "2", "4", "20"
        budget = ["--num-updates", "5"]
        bench = ["--quick"]
        search = [*ranges, "--num-samples", "16", "--num-seeds", "2", "--num-updates", "9", "--halving", "3",
                  "--rungs", "2", "--confirm-seeds", "2"]
    else:
        seeds, large, grid_seeds, seed_b_seeds, episodes = "1024", "4096", "1024", "4096", "2000"
        budget = []
        # a fixed env-limit scan: the default (20 million steps) would scan 2.5 million steps one after
        # another for 1 run, which costs a launch per step on a GPU
        bench = ["--runs", *map(str, FULL_LADDER), "--env-limit-steps", "2000", "--compile-updates", "1000"]
        # issue 25: 10,000 configurations x 16 seeds by successive halving, the winner confirmed on 16 fresh seeds
        search = [*ranges, "--num-samples", "10000", "--num-seeds", "16", "--halving", "3"]
    return [
        {"name": "describe", "kind": "describe", "timeout": 45, "args": [__file__, "--describe"]},  # + FILE
        train_step("train", 60, "--num-seeds", seeds, *budget),
        train_step("train_large", 60, "--num-seeds", large, *budget),
        {"name": "bench", "kind": "bench", "timeout": 210, "args": ["-m", "pgjax.bench", *bench]},
        train_step("grid", 60, "--lr", "0.01", "0.03", "0.05", "--num-seeds", grid_seeds, *budget),
        train_step("search_plan", 45, *search, "--plan-only"),
        train_step("search", 180, *search),
        train_step("seed_b", 75, "--preset", "seed-b", "--num-seeds", seed_b_seeds, "--num-episodes", episodes),
        train_step("train_cached", 40, "--num-seeds", seeds, *budget),
    ]


def run_step(command: list[str], timeout: float, log: Path, env: dict | None = None) -> dict:
    """Run `command`, its stdout and stderr appended to `log`; killed after `timeout` s.

    The step stays in this process's session and group, so that whatever ends this
    process (the device tool's own time limit) ends the step with it.

    Returns:
      {"returncode" (None if killed), "timed_out", "seconds" (wall), "output_tail"
      (the last `OUTPUT_TAIL_CHARS` characters it wrote)}.
    """
    with log.open("ab") as out:
        out.write(f"\n==== {' '.join(command)} (limit {timeout:.0f} s)\n".encode())
        out.flush()
        begin = out.tell()
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            returncode, timed_out = process.wait(timeout=timeout), False
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            returncode, timed_out = None, True
        seconds = time.perf_counter() - start
    with log.open("rb") as written:
        written.seek(begin)
        tail = written.read().decode(errors="replace")[-OUTPUT_TAIL_CHARS:]
    return {"returncode": returncode, "timed_out": timed_out, "seconds": seconds, "output_tail": tail}


def train_result(folder: Path) -> dict | None:
    """summary.json of a run folder, less its per-run lists, with the solved runs counted and the runs'
    episode counts ("episodes_per_run", distinct values); of more than `KEPT_GROUPS` groups only the best
    (by its "ranking"), the others counted in "groups_left_out"; None if missing."""
    path = folder / "summary.json"
    if not path.exists():
        return None
    summary = json.loads(path.read_text())
    runs = summary.pop("runs", [])
    summary["groups"] = [{k: v for k, v in g.items() if k != "runs"} for g in summary.get("groups", [])]
    if len(summary["groups"]) > KEPT_GROUPS:  # a search: its best groups, the rest counted (the file stays small)
        best = set((summary.get("ranking") or {}).get("groups", [])[:KEPT_GROUPS])
        summary["groups_left_out"] = len(summary["groups"]) - len(best)
        summary["groups"] = [g for g in summary["groups"] if g.get("index") in best]
        if isinstance(summary.get("comparison"), dict):
            summary["comparison"]["groups"] = [g for g in summary["comparison"].get("groups", [])
                                               if g.get("group") in best]
    summary["solved_runs"] = sum(bool(r.get("solved")) for r in runs)
    summary["episodes_per_run"] = sorted({r["episodes"] for r in runs})
    return summary


def describe() -> dict:
    """The machine as a pgjax command sees it (run in its own process: it starts JAX)."""
    given_flags = os.environ.get("XLA_FLAGS", "")
    from pgjax.running.devices import configure_cpu

    added = configure_cpu()
    import importlib.metadata
    import platform

    import jax

    from pgjax.algo.host_memory import device_memory_stats
    from pgjax.commands.shared import version
    from pgjax.running.devices import backend_choices, cpu_model

    versions = {"python": platform.python_version(), "pgjax": version()}
    for package in ("jax", "jaxlib", "flax", "optax", "chex", "orbax-checkpoint", "gymnax", "gymnasium", "tyro",
                    "numpy", "scipy", "rich"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    plugins = sorted({f"{d.metadata['Name']} {d.version}" for d in importlib.metadata.distributions()
                      if (d.metadata["Name"] or "").lower().replace("_", "-").startswith(
                          ("jax-cuda", "jax-rocm", "libtpu"))})
    import gymnax
    import tyro

    import pgjax

    devices = jax.devices()
    return {
        "platform": devices[0].platform,
        "device_kind": devices[0].device_kind,
        "num_devices": len(devices),
        "devices": [str(d) for d in devices],
        "memory_stats": device_memory_stats(devices[0]),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "versions": versions,
        "jax_plugins": plugins,
        "imported_from": {name: str(Path(module.__file__).parent) for name, module in
                          (("jax", jax), ("gymnax", gymnax), ("tyro", tyro), ("pgjax", pgjax))},
        "xla_flags_given": given_flags,
        "xla_flags_added_by_pgjax": added,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "jax_platforms": os.environ.get("JAX_PLATFORMS"),
        "backend_choices": backend_choices().as_dict(),
    }


def nvidia_smi() -> dict | None:
    """The GPUs as nvidia-smi lists them (name, driver, memory, clocks), or None where there is no nvidia-smi."""
    if not shutil.which("nvidia-smi"):
        return None
    fields = "name,driver_version,memory.total,memory.used,clocks.max.sm,clocks.max.mem,power.limit"
    try:
        done = subprocess.run(["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return {"error": str(error)}
    rows = [dict(zip(fields.split(","), (v.strip() for v in line.split(",")))) for line in done.stdout.splitlines()]
    return {"gpus": rows, "returncode": done.returncode, "stderr": done.stderr.strip()[-500:]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, nargs="?", help="folder for accelerator.json, bench.json and steps.log")
    parser.add_argument("--small", action="store_true", help="ladder 1 and 8, a few seeds: a check on a CPU")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds for all steps together (default: 560; --small: 600)")
    parser.add_argument("--work", type=Path, default=None, help="folder for run folders and the compile cache")
    parser.add_argument("--steps", default=None,
                        help="comma-separated names of the steps to run (default: all), e.g. bench,seed_b for a "
                             "second try; describe always runs")
    parser.add_argument("--require-platform", default=None, metavar="PLATFORM",
                        help="stop after describe unless JAX's platform is this one (gpu, tpu, cpu): a machine "
                             "whose accelerator did not start would otherwise spend the budget on its CPU")
    parser.add_argument("--describe", type=Path, metavar="FILE", help="write describe's JSON there and stop (a step)")
    args = parser.parse_args(argv)
    if args.describe:
        args.describe.write_text(json.dumps(describe(), indent=2) + "\n")
        return 0
    if args.out is None:
        parser.error("OUT_DIR is required")
    steps = plan(args.small)
    if args.steps:
        wanted = {name.strip() for name in args.steps.split(",") if name.strip()}
        unknown = sorted(wanted - {s["name"] for s in steps})
        if unknown:
            names = ", ".join(s["name"] for s in steps)
            parser.error(f"--steps: unknown step {', '.join(unknown)}; choose from {names}")
        steps = [s for s in steps if s["name"] in wanted | {"describe"}]
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    work = args.work or Path(tempfile.mkdtemp(prefix="pgjax-accelerator-"))
    work.mkdir(parents=True, exist_ok=True)
    budget = args.budget if args.budget is not None else (600.0 if args.small else 560.0)
    log, record_path = out / "steps.log", out / "accelerator.json"
    log.write_text(f"pgjax accelerator ladder{' (small)' if args.small else ''}: work folder {work}\n")
    shutil.rmtree(work / "xla-cache", ignore_errors=True)  # `train` compiles, `train_cached` loads
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PGJAX_COMPILE_CACHE": str(work / "xla-cache")}
    record = {"complete": False, "small": args.small, "budget_seconds": budget, "work": str(work),
              "nvidia_smi": nvidia_smi(), "machine": None, "steps": []}

    def write() -> None:
        tmp = record_path.with_name(record_path.name + ".tmp")
        tmp.write_text(json.dumps(record, indent=2) + "\n")
        os.replace(tmp, record_path)

    write()
    start = time.perf_counter()
    for step in steps:
        left = budget - (time.perf_counter() - start)
        command = [sys.executable, *step["args"]]
        written = {"describe": work / "machine.json", "bench": out / "bench.json"}.get(step["kind"],
                                                                                    work / step["name"])
        if written.is_dir():  # a --work given again: no earlier run's results may pass for this one's
            shutil.rmtree(written)
        written.unlink(missing_ok=True)
        command += [str(written)] if step["kind"] == "describe" else ["--out", str(written)]
        entry = {"name": step["name"], "command": command[1:], "timeout_seconds": min(step["timeout"], left)}
        if left < MIN_STEP_SECONDS:
            entry.update(skipped=f"{max(left, 0):.0f} s of the budget left", result=None)
        else:
            entry.update(run_step(command, entry["timeout_seconds"], log, env))
            entry["result"] = step_result(step, entry, out, work)
            if step["kind"] == "describe":
                record["machine"] = entry["result"]
        record["steps"].append(entry)
        write()
        status = "skipped" if "skipped" in entry else "timed out" if entry["timed_out"] else \
            f"exit {entry['returncode']}"
        print(f"{step['name']}: {status}, {entry.get('seconds', 0):.1f} s", flush=True)
        platform = (record["machine"] or {}).get("platform")
        if step["kind"] == "describe" and args.require_platform and platform != args.require_platform:
            record["stopped"] = f"JAX's platform is {platform}, not {args.require_platform}: see steps.log"
            print(f"stopped: {record['stopped']}", flush=True)
            break
    record["complete"] = True
    record["seconds"] = time.perf_counter() - start
    write()
    print(f"wrote {record_path}")
    return 0 if all(s.get("returncode") == 0 for s in record["steps"]) and "stopped" not in record else 1


def step_result(step: dict, entry: dict, out: Path, work: Path) -> dict | None:
    """What a finished (or cut-off) step left: describe's JSON, bench.json or the run folder's summary."""
    if step["kind"] == "train":
        return train_result(work / step["name"])
    path = work / "machine.json" if step["kind"] == "describe" else out / "bench.json"
    return json.loads(path.read_text()) if path.exists() else None


if __name__ == "__main__":
    sys.exit(main())
