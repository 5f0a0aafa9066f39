"""Learning curves of the three presets in one figure: seed-a and seed-b (the tutorials) and default.

    python experiments/plot_presets.py [--num-seeds 64] [--out experiments/results/presets.png]

Trains each preset with `python -m pgjax.train --preset P --num-seeds N` (its own budget:
5000 episodes for the tutorials, 800 for default) into a temporary folder, then overlays
the three folders with `python -m pgjax.plot`. Writes the PNG and, next to it,
presets.json with each run's command, summary statistics and timings.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import tempfile
from pathlib import Path

from pgjax.running.run_folder import files, loading

PRESETS = ("seed-a", "seed-b", "default")


@dataclasses.dataclass
class Args:
    num_seeds: int = 64
    """Seeds per preset."""
    out: Path = Path("experiments/results/presets.png")
    """PNG to write (presets.json goes next to it)."""


def main(args: Args) -> dict:
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        folders = []
        for preset in PRESETS:
            folder = Path(tmp) / preset
            command = [sys.executable, "-m", "pgjax.train", "--preset", preset, "--num-seeds", str(args.num_seeds),
                       "--quiet", "--out", str(folder)]
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            summary = loading.load_summary(folder)
            results[preset] = {
                "command": " ".join(["python", *command[1:-2]]),
                **{key: summary[key] for key in ("num_runs", "solved_fraction", "final_return_mean",
                                                   "interval_method", "statistics", "env_steps_total",
                                                   "train_seconds", "wall_seconds", "device_kind", "devices")},
            }
            folders.append(str(folder))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pgjax.plot", *folders, "--out", str(args.out)], check=True)
    files.write_json(args.out.with_suffix(".json"), {"figure": str(args.out), "presets": results,
                                                       "versions": files.package_versions()})
    for preset, result in results.items():
        stats = result["statistics"]
        print(f"{preset:8s} IQM final return {stats['iqm']:.1f} {stats['iqm_ci95']}, "
              f"solved {result['solved_fraction']:.2f}, train {result['train_seconds']:.1f} s")
    return results


if __name__ == "__main__":
    import tyro

    main(tyro.cli(Args))
