"""Successive halving's training time against the full sweep's on one chunk, with and without repacking.

    python experiments/halving_time.py [--repeats 2] [--out experiments/results/halving_time]

For each case (a search whose runs all fit one chunk), trains in fresh
processes, alternating, `repeats` times: the full sweep, `--halving 3 --rungs 3
--repack off` (the survivors padded in the first rung's chunk) and `--halving 3
--rungs 3` (`--repack auto`: smaller chunks where the cost model says so), and
records the training seconds (executions only), the compile seconds and the
env steps of each. The issue's target: the halving's training time about its
share of the full sweep's env steps, plus the compiles it adds. Writes
OUT.json and OUT.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CASES = {
    "27 x 4 (issue)": ["--lr", "1e-4:1e-1:log", "--num-samples", "27", "--num-seeds", "4", "--num-updates", "100"],
    "81 x 8, one chunk": ["--lr", "1e-4:1e-1:log", "--num-samples", "81", "--num-seeds", "8", "--num-updates", "100",
                          "--max-parallel", "648"],
}
VARIANTS = {
    "full sweep": [],
    "halving, --repack off": ["--halving", "3", "--rungs", "3", "--repack", "off"],
    "halving, --repack auto": ["--halving", "3", "--rungs", "3"],
}


def train(args: list[str], out: Path) -> dict:
    command = [sys.executable, "-m", "pgjax.train", "--quiet", "--compile-cache", "off", "--confirm-seeds", "0",
               "--out", str(out), *args]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    summary = json.loads((out / "summary.json").read_text())
    halving = summary.get("halving") or {}
    return {"train_seconds": summary["train_seconds"], "compile_seconds": summary["compile_seconds"],
            "env_steps": summary["env_steps_total"], "chunk_sizes": halving.get("chunk_sizes"),
            "device_kind": summary["device_kind"], "devices": summary["devices"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("experiments/results/halving_time"))
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for case, grid in CASES.items():
            runs = {name: [] for name in VARIANTS}
            for repeat in range(args.repeats):
                order = list(VARIANTS) if repeat % 2 == 0 else list(reversed(VARIANTS))
                for name in order:
                    runs[name].append(train([*grid, *VARIANTS[name]], Path(folder) / f"{len(results)}-{repeat}-{name}"))
                    print(case, name, runs[name][-1], flush=True)
            results[case] = {"command": ["python", "-m", "pgjax.train", *grid], "runs": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=2))
    args.out.with_suffix(".md").write_text(table(results))
    print(table(results))


def table(results: dict) -> str:
    """A markdown table: per case and variant, medians over the repeats, and the ratios to the full sweep."""
    first = next(iter(results.values()))["runs"]["full sweep"][0]
    lines = [f"Device: {first['devices']} x {first['device_kind']}; medians of the repeats; compile cache off.", "",
             "| case | variant | env steps | train s | compile s | env steps / full | train s / full | "
             "later rungs' chunk sizes |", "|---|---|---|---|---|---|---|---|"]
    for case, result in results.items():
        median = {name: {key: statistics.median(r[key] for r in runs) for key in
                         ("train_seconds", "compile_seconds", "env_steps")}
                  for name, runs in result["runs"].items()}
        full = median["full sweep"]
        for name, m in median.items():
            sizes = result["runs"][name][0]["chunk_sizes"]
            shown = "-" if sizes is None else " / ".join(
                ",".join(str(v) for v in rung.values()) for rung in sizes[1:])
            lines.append(f"| {case} | {name} | {m['env_steps']:,.0f} | {m['train_seconds']:.2f} | "
                         f"{m['compile_seconds']:.2f} | {m['env_steps'] / full['env_steps']:.2f} | "
                         f"{m['train_seconds'] / full['train_seconds']:.2f} | {shown} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
