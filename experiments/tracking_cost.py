"""What --tensorboard and --wandb (offline) cost the default command, against no tracking.

    python experiments/tracking_cost.py [--repeats 5] [--out experiments/results/tracking_cost.json]

Runs `python -m pgjax.train --quiet` (the default preset: 64 seeds, 100 updates)
in one process three ways, alternating, `--repeats` times after one warm-up
each: none, --tensorboard (its default folder), --wandb (WANDB_MODE=offline).
Records per way and repeat: summary.json's `train_seconds` (compiled training,
what the issue's 2% bound is about: logging runs on the host between segments,
while the next segment computes), its `wall_seconds`, and the host seconds
spent in the trackers, apart: opening them, logging segments (`log_segment`)
and the end (`log_final` and `close`: HParams, W&B summaries, the runs table,
finishing the W&B runs).
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

from pgjax.commands import train
from pgjax.results import tracking
from pgjax.running.run_folder import files, loading


@dataclasses.dataclass
class Args:
    repeats: int = 5
    """Alternating repetitions of the three ways."""
    out: Path = Path("experiments/results/tracking_cost.json")
    """JSON file to write."""


WAYS = {"none": [], "tensorboard": ["--tensorboard"], "wandb": ["--wandb", "pgjax-tracking-cost"]}


class HostTimer:
    """Seconds spent in `tracking.open_tracking` and the `Tracking` methods, by phase."""

    def __init__(self):
        self.seconds = {"open": 0.0, "log_segment": 0.0, "final": 0.0}
        self.originals = {}

    def wrap(self, owner, name: str, phase: str) -> None:
        original = getattr(owner, name)
        self.originals[(owner, name)] = original

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[phase] += time.perf_counter() - start

        setattr(owner, name, timed)

    def __enter__(self):
        self.wrap(tracking, "open_tracking", "open")
        self.wrap(tracking.Tracking, "log_segment", "log_segment")
        self.wrap(tracking.Tracking, "log_final", "final")
        self.wrap(tracking.Tracking, "close", "final")
        return self

    def __exit__(self, *exc):
        for (owner, name), original in self.originals.items():
            setattr(owner, name, original)


def run_once(way: str, folder: Path) -> dict:
    out = folder / f"{way}-{time.monotonic_ns()}"
    with HostTimer() as timer, contextlib.redirect_stdout(io.StringIO()):
        code = train.main(["--quiet", "--out", str(out), *WAYS[way]])
    if code != 0:
        raise RuntimeError(f"{way}: exit {code}")
    summary = loading.load_summary(out)
    return {"train_seconds": summary["train_seconds"], "wall_seconds": summary["wall_seconds"],
            "host_seconds": timer.seconds}


def main(args: Args) -> dict:
    os.environ["WANDB_MODE"] = "offline"
    os.environ["WANDB_SILENT"] = "true"
    records = {way: [] for way in WAYS}
    with tempfile.TemporaryDirectory(prefix="pgjax-tracking-cost-") as folder:
        for way in WAYS:  # warm up: compile cache, imports, W&B's service
            run_once(way, Path(folder))
        for _ in range(args.repeats):
            for way in WAYS:
                records[way].append(run_once(way, Path(folder)))
    median = {way: {
        "train_seconds": statistics.median(r["train_seconds"] for r in rs),
        "wall_seconds": statistics.median(r["wall_seconds"] for r in rs),
        **{f"host_{phase}_seconds": statistics.median(r["host_seconds"][phase] for r in rs)
           for phase in ("open", "log_segment", "final")},
    } for way, rs in records.items()}
    base = median["none"]["train_seconds"]
    result = {
        "device": f"{len(jax.devices())} x {jax.devices()[0].device_kind}",
        "command": "python -m pgjax.train --quiet (64 seeds x 100 updates, CartPole-v1)",
        "repeats": args.repeats, "runs": records, "median": median,
        "train_seconds_ratio_to_none": {way: m["train_seconds"] / base for way, m in median.items()},
        "log_segment_share_of_training": {way: m["host_log_segment_seconds"] / base for way, m in median.items()},
        "versions": files.package_versions(("pgjax", "jax", "jaxlib", "tensorboardX", "tensorboard", "wandb")),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    files.write_json(args.out, result)
    for way, m in median.items():
        print(f"{way:12s} train {m['train_seconds']:.3f} s ({m['train_seconds'] / base:.3f} x none) | host: open "
              f"{m['host_open_seconds']:.3f} s, segments {m['host_log_segment_seconds']:.4f} s, end "
              f"{m['host_final_seconds']:.3f} s | wall {m['wall_seconds']:.2f} s")
    return result


if __name__ == "__main__":
    import tyro

    main(tyro.cli(Args))
