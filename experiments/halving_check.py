"""Successive halving against the full sweep on the same grid and seeds: env steps, estimate, winner.

    python experiments/halving_check.py [--out experiments/results/halving_check.json] [ARGS ...]

Runs `python -m pgjax.train` twice in fresh processes, with and without
`--halving 3 --rungs 3` (ARGS replace the default grid: 16 seeds, six learning
rates), and records the env steps the halving spent, its estimate of the full
sweep's, what the full sweep spent, the training seconds of both, and whether
the halving's best configuration is among the full sweep's best 3 by IQM
(ties at the third place count as among them).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

GRID = ["--num-seeds", "16", "--lr", "0.003", "0.01", "0.02", "0.03", "0.05", "0.1"]
HALVING = ["--halving", "3", "--rungs", "3"]


def train(args: list[str], out: Path) -> dict:
    command = [sys.executable, "-m", "pgjax.train", "--quiet", "--out", str(out), *args]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return json.loads((out / "summary.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("grid", nargs="*", default=None)
    args, extra = parser.parse_known_args()
    grid = [*args.grid, *extra] or GRID
    with tempfile.TemporaryDirectory() as folder:
        halved = train([*grid, *HALVING], Path(folder) / "halving")
        full = train(grid, Path(folder) / "full")
    iqms = {g["index"]: g["statistics"]["iqm"] for g in full["groups"]}
    third = sorted(iqms.values(), reverse=True)[min(2, len(iqms) - 1)]
    winner = halved["halving"]["winner"]
    result = {
        "command": ["python", "-m", "pgjax.train", *grid, *HALVING],
        "rung_updates": halved["halving"]["rung_updates"],
        "survivors": halved["halving"]["survivors"],
        "env_steps_halving": halved["halving"]["env_steps"],
        "env_steps_full_sweep_estimate": halved["halving"]["env_steps_full_sweep"],
        "env_steps_full_sweep_own_rate_estimate": halved["halving"]["env_steps_full_sweep_own_rate"],
        "env_steps_full_sweep": full["env_steps_total"],
        "train_seconds_halving": halved["train_seconds"],
        "train_seconds_full_sweep": full["train_seconds"],
        "winner": winner,
        "winner_learning_rate": halved["groups"][winner]["hyperparameters"]["learning_rate"],
        "full_sweep_iqm": iqms,
        "winner_among_full_sweeps_best_3": iqms[winner] >= third,
        "device_kind": full["device_kind"], "devices": full["devices"],
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
