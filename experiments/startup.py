"""How long each command takes to answer `--help`, `--version` and a bad flag (a checkout's start-up).

    python experiments/startup.py [--checkout DIR] [--repeats 5] [--label NAME] [--out FILE.json]

Each measurement runs `python -m pgjax.<command> ARGS` in a subprocess with the
checkout first on PYTHONPATH, `--repeats` times, and records the wall time the
parent sees (`time.perf_counter` around `subprocess.run`), and whether the
command imported JAX (one more run under `python -X importtime`). Prints the medians; with --out,
merges them under --label into that JSON file (so "before" and "after" sit side
by side). A benchmark, not a test: the figures depend on the machine's load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = ("train", "evaluate", "plot", "compare", "bench")
CASES = {"help": ["--help"], "version": ["--version"], "bad_flag": ["--no-such-flag"]}


def timed(checkout: Path, args: list[str], repeats: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(checkout), "JAX_PLATFORMS": "cpu"}
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, *args], env=env, cwd=checkout, capture_output=True, text=True)
        seconds.append(time.perf_counter() - start)
    traced = subprocess.run([sys.executable, "-X", "importtime", *args], env=env, cwd=checkout,
                            capture_output=True, text=True)
    imported_jax = any(line.rsplit("|", 1)[-1].strip() == "jax" for line in traced.stderr.splitlines())
    return {"median_s": round(statistics.median(seconds), 3), "min_s": round(min(seconds), 3),
            "runs_s": [round(s, 3) for s in seconds], "exit_status": done.returncode, "imports_jax": imported_jax}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--label", default="after")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    figures: dict = {"import_jax": timed(args.checkout, ["-c", "import jax"], args.repeats)}
    for command in COMMANDS:
        for case, flags in CASES.items():
            figures[f"{command} {case}"] = timed(args.checkout, ["-m", f"pgjax.{command}", *flags], args.repeats)
    for name, figure in figures.items():
        print(f"{name:20s} {figure['median_s']:6.3f} s  (exit {figure['exit_status']}, "
              f"jax imported: {figure['imports_jax']})")
    if args.out:
        data = json.loads(args.out.read_text()) if args.out.exists() else {}
        data["device"] = f"{os.cpu_count()}-core CPU container ({platform.processor() or platform.machine()})"
        data["python"] = platform.python_version()
        data["repeats"] = args.repeats
        data[args.label] = figures
        args.out.write_text(json.dumps(data, indent=2) + "\n")


if __name__ == "__main__":
    main()
