"""A live progress bar for a sweep, fed by `pgjax.running.sweep`'s per-segment reports (rich)."""

from __future__ import annotations

import math

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from pgjax.running.sweep import SegmentReport


class SweepProgress:
    """Updates done of total, env steps per second, mean return and ETA, on one line.

    Use as a context manager and pass `report` as `train_sweep(on_segment=...)`.
    Disabled (prints nothing, costs nothing) when `enabled` is False; pgjax
    turns it off for `--quiet` and whenever the console is not a terminal.

    Args:
      total_updates: updates of every chunk added up (a chunk's update trains
        all of its runs at once).
      console: where to draw.
      enabled: whether to draw at all.
    """

    def __init__(self, total_updates: int, console: Console, enabled: bool):
        self.enabled = enabled
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("updates"),
            TextColumn("{task.fields[speed]}"),
            TextColumn("return {task.fields[mean_return]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
            disable=not enabled,
        )
        self._task = self._progress.add_task("compiling", total=total_updates, speed="", mean_return="-")

    def __enter__(self) -> SweepProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.__exit__(*exc)

    def report(self, report: SegmentReport) -> None:
        if report.restored:
            self._progress.update(self._task, advance=report.new_updates)
            return
        speed = report.env_steps / report.seconds if report.seconds > 0 else math.nan
        chunk = f"chunk {report.chunk.index + 1}/{report.num_chunks}" if report.num_chunks > 1 else "training"
        self._progress.update(
            self._task,
            advance=report.new_updates,
            description=chunk,
            speed=f"{speed / 1e6:.2f} M steps/s",
            mean_return=f"{report.mean_return:.1f}",
        )
