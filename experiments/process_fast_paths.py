"""What each process fast path is worth: the default command with every fast path on, and each one off.

    python experiments/process_fast_paths.py                # experiments/results/process_fast_paths.json and .md
    python experiments/process_fast_paths.py --repeats 5    # more rounds

The fast paths are those of `pgjax.algo.config.PROCESS_FAST_PATHS`
(small_loops, llvm_level, gc_freeze), switched off one at a
time through PGJAX_SPEED_OFF. Each measurement is the default command,
`python -m pgjax.train --quiet --compile-cache off --out <temporary folder>`,
in a fresh process (PYTHONPATH set to this checkout, XLA_FLAGS emptied so that
pgjax's own XLA options are the ones measured). The variants alternate in
rounds: round 1 runs every variant once, round 2 again, and so on, `--repeats`
rounds, after one untimed run that warms the disk caches.

Reported per variant: the medians of the command's wall time seen from outside
(from starting the interpreter to its exit: imports, compiles, training,
writing, teardown) and of summary.json's wall_seconds, compile_seconds and
train_seconds, each over the same figure with every fast path on (above 1: turning
the fast path off costs that much), and whether its runs trained bitwise the same
results as every fast path on: env_steps_total, the solved fraction and the
digests of metrics.npz and params.msgpack (`experiments/digests.py`).
small_loops and gc_freeze change no result; llvm_level does
(level 2's compiled code does not give bitwise level 1's floats, and training
carries the difference on), which the table shows.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tyro
from digests import file_digest, metrics_digest

from pgjax.algo.config import PROCESS_FAST_PATHS, SPEED_OFF_VARIABLE
from pgjax.running.devices import cpu_model
from pgjax.running.run_folder import files
from pgjax.running.run_folder.files import METRICS_FILE, PARAMS_FILE, SUMMARY_FILE

REPO = Path(__file__).resolve().parents[1]
FIGURES = ("command_seconds", "wall_seconds", "compile_seconds", "train_seconds")  # command: seen from outside
FIGURE_LABELS = {"command_seconds": "command wall s (outside)", "wall_seconds": "summary wall s",
                 "compile_seconds": "compile s", "train_seconds": "train s"}
RESULT_KEYS = ("env_steps_total", "solved_fraction", "metrics.npz", "params.msgpack")
KEEP_RATIO = 1.05  # the bar: a fast path stays if it gains at least 5% on the train or command figure


@dataclasses.dataclass
class Args:
    repeats: int = 3
    """Rounds: every variant runs once per round, in turn."""
    paths: tuple[str, ...] = PROCESS_FAST_PATHS
    """Devices to turn off one at a time."""
    train_args: str = ""
    """Extra arguments of `python -m pgjax.train`, in one string (default: none, the default command)."""
    out: Path = Path("experiments/results/process_fast_paths.json")
    """JSON output; a Markdown table is written next to it."""


def variants(paths: tuple[str, ...]) -> dict[str, str]:
    """{"all on": "", "<path> off": "<path>", ...}: variant name -> PGJAX_SPEED_OFF."""
    return {"all on": "", **{f"{name} off": name for name in paths}}


def run_once(speed_off: str, train_args: list[str], folder: Path) -> dict:
    """One default command with PGJAX_SPEED_OFF=`speed_off` in a fresh process: its timings and result digests."""
    out = folder / "run"
    environ = {**os.environ, "PYTHONPATH": str(REPO), "XLA_FLAGS": "", SPEED_OFF_VARIABLE: speed_off}
    command = [sys.executable, "-m", "pgjax.train", "--quiet", "--compile-cache", "off", "--out", str(out),
               *train_args]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=environ, cwd=REPO)
    command_seconds = time.perf_counter() - start
    summary = json.loads((out / SUMMARY_FILE).read_text())
    return {
        "command_seconds": command_seconds,
        **{name: summary[name] for name in FIGURES[1:]},
        "env_steps_total": summary["env_steps_total"],
        "solved_fraction": summary["solved_fraction"],
        "metrics.npz": metrics_digest(out / METRICS_FILE),
        "params.msgpack": file_digest(out / PARAMS_FILE),
    }


def main() -> int:
    args = tyro.cli(Args)
    unknown = set(args.paths) - set(PROCESS_FAST_PATHS)
    if unknown:
        print(f"error: --paths: unknown {sorted(unknown)}; choose from {', '.join(PROCESS_FAST_PATHS)}",
              file=sys.stderr)
        return 2
    train_args = shlex.split(args.train_args)
    named = variants(args.paths)
    runs: dict[str, list[dict]] = {name: [] for name in named}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as folder:
        run_once("", train_args, Path(folder) / "warmup")
        for round_ in range(1, args.repeats + 1):
            for name, speed_off in named.items():
                with tempfile.TemporaryDirectory(dir=folder) as run_folder:
                    run = run_once(speed_off, train_args, Path(run_folder))
                runs[name].append(run)
                print(f"round {round_} {name:22s} command {run['command_seconds']:6.2f} s  "
                      f"wall {run['wall_seconds']:6.2f} s  compile {run['compile_seconds']:5.2f} s  "
                      f"train {run['train_seconds']:5.2f} s", flush=True)
    load_after = os.getloadavg()

    rows = {name: summarise(speed_off, runs[name]) for name, speed_off in named.items()}
    reference = rows["all on"]
    for row in rows.values():
        row.update({f"ratio_{f}": row[f"median_{f}"] / reference[f"median_{f}"] for f in FIGURES})
        row["gains_5_percent"] = max(row["ratio_command_seconds"], row["ratio_train_seconds"]) >= KEEP_RATIO
        row["same_results_as_all_on"] = row["results"] is not None and row["results"] == reference["results"]
    versions = files.package_versions()
    device = {"cpu": cpu_model(), "cpu_count": os.cpu_count()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    files.write_json(args.out, {
        "device": device, "versions": versions, "command": sys.argv,
        "settings": dataclasses.asdict(args),
        "load_average_before": load_before, "load_average_after": load_after,
        "variants": rows,
    })
    lines = markdown(rows, device, versions, args.repeats, train_args, load_before, load_after)
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}")
    return 0


def summarise(speed_off: str, runs: list[dict]) -> dict:
    """A variant's row: its runs, the median of each figure, and its results (None if its runs disagree)."""
    row = {SPEED_OFF_VARIABLE: speed_off, "runs": runs}
    row.update({f"median_{f}": statistics.median(r[f] for r in runs) for f in FIGURES})
    row["median_outside_seconds"] = statistics.median(r["command_seconds"] - r["wall_seconds"] for r in runs)
    results = {tuple((k, r[k]) for k in RESULT_KEYS) for r in runs}
    row["results"] = dict(next(iter(results))) if len(results) == 1 else None
    return row


def markdown(rows: dict, device: dict, versions: dict, repeats: int, train_args: list[str],
             load_before: tuple, load_after: tuple) -> list[str]:
    """The .md file's lines: what was run, the table of medians and ratios, and whether the results agree."""
    train = " ".join(["python -m pgjax.train --quiet --compile-cache off", *train_args])
    lines = [
        f"`{train}` in a fresh process per run, on {device['cpu']} ({device['cpu_count']} cores), "
        f"jax {versions['jax']}; variants alternating in {repeats} round{'s' * (repeats > 1)} "
        "(after one untimed run). "
        "Medians per variant; x: the median over that of every fast path on (above 1: turning the fast path "
        "off costs that much). Command wall: seen from outside, from the interpreter's start to its exit; "
        "the others are summary.json's wall_seconds, compile_seconds and train_seconds. "
        f"Load average (1, 5, 15 min) {', '.join(f'{x:.2f}' for x in load_before)} before and "
        f"{', '.join(f'{x:.2f}' for x in load_after)} after.",
        "",
        "| variant | " + " | ".join(f"{FIGURE_LABELS[f]} | x" for f in FIGURES)
        + " | command - summary wall s | gains >= 5% | env steps | solved | results |",
        "|---|" + "---:|---:|" * len(FIGURES) + "---:|---|---:|---:|---|",
    ]
    reference = rows["all on"]["results"]
    for name, row in rows.items():
        cells = " | ".join(f"{row[f'median_{f}']:.2f} | {row[f'ratio_{f}']:.2f}" for f in FIGURES)
        gains = "" if name == "all on" else ("yes" if row["gains_5_percent"] else "no")
        results = row["results"]
        if results is None:
            outcome, steps, solved = "differ between its own runs", "-", "-"
        else:
            outcome = ("bitwise the same" if row["same_results_as_all_on"] else "differ") if name != "all on" else ""
            steps, solved = f"{results['env_steps_total']:,}", f"{results['solved_fraction']}"
        outside = f"{row['median_outside_seconds']:.2f}"
        lines.append(f"| {name} | {cells} | {outside} | {gains} | {steps} | {solved} | {outcome} |")
    differ = [name for name, row in rows.items() if name != "all on" and not row["same_results_as_all_on"]]
    lines += [
        "",
        f"gains >= 5%: x >= {KEEP_RATIO} on the command's wall time or on the training time (the issue's bar). "
        "command - summary wall: the part of the command outside summary.json's wall_seconds (the "
        "interpreter's start before pgjax.train's first line, and its exit).",
        "results: the runs' env_steps_total and the digests of metrics.npz and params.msgpack "
        "(`experiments/digests.py`) against every fast path on"
        + (f" ({reference['metrics.npz']} / {reference['params.msgpack']})." if reference else "."),
        "",
        "Every variant trained bitwise the same runs." if not differ else
        f"Not the same results as every fast path on: {', '.join(differ)}.",
    ]
    return lines


if __name__ == "__main__":
    sys.exit(main())
