"""The default command's speed in two checkouts, alternating in one run (a refactor's before/after).

    python experiments/checkout_speed.py OLD_CHECKOUT NEW_CHECKOUT [--repeats 3] [--out FILE.json]

Each repeat runs `python -m pgjax.train --quiet --compile-cache off` once with
each checkout on PYTHONPATH (old, new, old, new, ...: the machine's drift hits
both alike) and records the whole command's wall time as the shell sees it and
summary.json's training, compile and in-process wall times. Prints the medians
and the ratios new / old.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FIELDS = ("command_seconds", "wall_seconds", "train_seconds", "compile_seconds")


def run_once(checkout: Path, out: Path, extra: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    command = [sys.executable, "-m", "pgjax.train", "--quiet", "--compile-cache", "off", "--out", str(out), *extra]
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL, cwd=checkout)
    seconds = time.perf_counter() - start
    summary = json.loads((out / "summary.json").read_text())
    return {"command_seconds": seconds, **{k: summary[k] for k in FIELDS[1:]},
            "solved_fraction": summary["solved_fraction"], "env_steps_total": summary["env_steps_total"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, help="JSON file for every run and the medians")
    parser.add_argument("extra", nargs="*", help="more arguments for pgjax.train (after --)")
    args = parser.parse_args()
    runs = {"old": [], "new": []}
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(args.repeats):
            for name in ("old", "new"):
                result = run_once(getattr(args, name).resolve(), Path(folder) / f"{name}{repeat}", args.extra)
                runs[name].append(result)
                print(f"{name} {repeat}: " + "  ".join(f"{k} {result[k]:.2f}" for k in FIELDS), flush=True)
    medians = {name: {k: statistics.median(r[k] for r in rs) for k in FIELDS} for name, rs in runs.items()}
    for k in FIELDS:
        print(f"{k:16s} old {medians['old'][k]:6.2f} s  new {medians['new'][k]:6.2f} s  "
              f"new/old {medians['new'][k] / medians['old'][k]:.3f}")
    if args.out:
        args.out.write_text(json.dumps({"runs": runs, "medians": medians, "old": str(args.old), "new": str(args.new),
                                        "extra": args.extra}, indent=2) + "\n")


if __name__ == "__main__":
    main()
