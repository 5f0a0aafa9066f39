"""The issue's scale check: a 1,024-configuration x 16-seed halving search with its winner confirmed, whole
command, from a cold compile cache; and `--plan-only` for 10,000 configurations x 16 seeds.

    python experiments/search_scale.py [--warm] [--out experiments/results/search_scale]

Each command runs in a fresh process with a new, empty `--compile-cache` folder
(cold: every program compiled in the command), timed from the parent (start to
exit, Python's start-up and JAX's import included); `--warm` runs the search once
more on the same cache. Records the wall seconds, the peak resident memory of the
command (its own `ru_maxrss`), and from summary.json the training,
compile and confirmation seconds, the rungs and the confirmed winner. Writes
OUT.json and OUT.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pgjax.running.devices import cpu_isa, cpu_model

SEARCH = ["--lr", "1e-4:1e-1:log", "--entropy-coef", "0:0.02", "--num-seeds", "16", "--halving", "3"]
COMMANDS = {
    "1,024 x 16, --halving 3 --rungs 4, confirmed": [*SEARCH, "--num-samples", "1024", "--rungs", "4"],
    "10,000 x 16, --halving 3, --plan-only": [*SEARCH, "--num-samples", "10000", "--plan-only"],
}


def timed(args: list[str], cache: Path) -> dict:
    """Run `python -m pgjax.train ARGS` on `cache`; its wall seconds and peak memory (MiB)."""
    command = [sys.executable, "-m", "pgjax.train", "--quiet", "--compile-cache", str(cache), *args]
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    printed = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)  # this child's own resource use (Linux: ru_maxrss in KiB)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{printed}")
    return {"command": ["python", "-m", "pgjax.train", *args], "wall_seconds": round(wall, 1),
            "peak_mib": round(usage.ru_maxrss / 1024), "printed": printed}


def search_record(folder: Path) -> dict:
    summary = json.loads((folder / "summary.json").read_text())
    confirmation = summary["confirmation"]
    winner = confirmation["winner"]
    return {"train_seconds": summary["train_seconds"], "compile_seconds": summary["compile_seconds"],
            "env_steps": summary["env_steps_total"], "device_kind": summary["device_kind"],
            "devices": summary["devices"], "rung_updates": summary["halving"]["rung_updates"],
            "rung_configurations": [len(s) for s in summary["halving"]["survivors"]],
            "confirmation_seconds": confirmation["train_seconds"], "confirmation_seeds": confirmation["seeds"],
            "tuning_seeds": confirmation["tuning_seeds"],
            "winner": {key: winner[key] for key in winner},
            "winner_settings": confirmation["configurations"][0]["varied"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warm", action="store_true", help="also run the search again on the warm cache")
    parser.add_argument("--out", type=Path, default=Path("experiments/results/search_scale"))
    args = parser.parse_args()
    results = {"machine": {"processor": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                           "cpu": cpu_model(), "cpu_isa": cpu_isa()}}
    with tempfile.TemporaryDirectory() as scratch:
        for name, command in COMMANDS.items():
            cache = Path(scratch) / f"cache-{len(results)}"
            out = Path(scratch) / f"run-{len(results)}"
            plan_only = "--plan-only" in command
            result = timed(command if plan_only else [*command, "--out", str(out)], cache)
            if not plan_only:
                result.update(search_record(out))
                if args.warm:
                    warm = timed([*command, "--out", str(out), "--overwrite"], cache)
                    result["warm_wall_seconds"] = warm["wall_seconds"]
            results[name] = result
            print(name, {k: v for k, v in result.items() if k != "printed"}, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=2))
    args.out.with_suffix(".md").write_text(table(results))
    print(table(results))


def table(results: dict) -> str:
    machine = results["machine"]
    lines = [f"Machine: {machine['cpus']} CPUs ({machine.get('cpu', machine['processor'])}, newest instruction set "
             f"{machine.get('cpu_isa', 'not recorded')}); each command in a fresh process on an empty "
             "compile cache; wall seconds from start to exit; peak MiB: the command's largest resident set.",
             "", "| command | wall s (cold cache) | wall s (warm) | train s | compile s | confirm s | peak MiB |",
             "|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        if name == "machine":
            continue
        cell = (lambda key, fmt="{:.1f}": fmt.format(r[key]) if key in r else "-")
        lines.append(f"| {name} | {r['wall_seconds']:.1f} | {cell('warm_wall_seconds')} | {cell('train_seconds')} | "
                     f"{cell('compile_seconds')} | {cell('confirmation_seconds')} | {r['peak_mib']:,} |")
    search = next((r for r in results.values() if isinstance(r, dict) and "winner" in r), None)
    if search is not None:
        w = search["winner"]
        lines += ["", f"Rungs end at {search['rung_updates']} updates, with {search['rung_configurations']} "
                  "configurations.", "",
                  f"Winner {search['winner_settings']}: tuning IQM {w['tuning_iqm']:.1f} on seeds "
                  f"{search['tuning_seeds']}, confirmed IQM {w['iqm']:.1f} (95% CI {w['iqm_ci95']}) on seeds "
                  f"{search['confirmation_seeds']}; "
                  f"P(improvement over the reference) {w.get('probability_of_improvement')}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
