"""What training in segments with a live progress bar costs, against one uninterrupted scan.

    python experiments/progress_cost.py [--num-seeds 64] [--repeats 5] [--out experiments/results/progress_cost.json]

Trains the default preset three ways in one process, alternating, `--repeats` times:
  whole     all updates in one compiled segment, no progress display;
  segments  `pgjax.running.sweep.SEGMENT_UPDATES` updates per segment, no display (what --quiet does);
  progress  the same segments drawing the rich progress bar on a terminal console.
The figures are training seconds (`train_sweep`'s run_seconds: execution only, the
compile of each call left out), their median over repeats, and the ratios to `whole`.
"""

from __future__ import annotations

from pgjax.running.devices import configure_cpu

configure_cpu()

import dataclasses
import io
import statistics
from pathlib import Path

import jax
from rich.console import Console

from pgjax.algo.presets import PRESETS
from pgjax.running import grid, sweep
from pgjax.running.progress import SweepProgress
from pgjax.running.run_folder import files


@dataclasses.dataclass
class Args:
    num_seeds: int = 64
    """Seeds of the default preset."""
    repeats: int = 5
    """Alternating repetitions of the three ways."""
    out: Path = Path("experiments/results/progress_cost.json")
    """JSON file to write."""


def main(args: Args) -> dict:
    points = grid.expand_grid(PRESETS["default"])
    groups = grid.compile_groups(points)
    num_updates = points[0].config.static.num_updates

    def train(way: str) -> float:
        if way == "progress":
            console = Console(file=io.StringIO(), force_terminal=True, width=120)
            with SweepProgress(num_updates, console, enabled=True) as progress:
                _, info = sweep.train_sweep(groups, args.num_seeds, 0, on_segment=progress.report)
        else:
            length = num_updates if way == "whole" else sweep.SEGMENT_UPDATES
            _, info = sweep.train_sweep(groups, args.num_seeds, 0, segment_updates=length)
        return info["run_seconds"]

    ways = ("whole", "segments", "progress")
    seconds = {way: [] for way in ways}
    for way in ways:  # warm up caches and allocators
        train(way)
    for _ in range(args.repeats):
        for way in ways:
            seconds[way].append(train(way))
    median = {way: statistics.median(s) for way, s in seconds.items()}
    result = {
        "device": f"{len(jax.devices())} x {jax.devices()[0].device_kind}",
        "num_seeds": args.num_seeds, "num_updates": num_updates, "segment_updates": sweep.SEGMENT_UPDATES,
        "repeats": args.repeats, "seconds": seconds, "median_seconds": median,
        "ratio_to_whole": {way: median[way] / median["whole"] for way in ways},
        "versions": files.package_versions(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    files.write_json(args.out, result)
    for way in ways:
        print(f"{way:9s} {median[way]:.3f} s  ({median[way] / median['whole']:.3f} x whole)")
    return result


if __name__ == "__main__":
    import tyro

    main(tyro.cli(Args))
