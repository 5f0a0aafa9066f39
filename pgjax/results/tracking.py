"""Experiment tracking: TensorBoard (`--tensorboard [DIR]`) and Weights & Biases (`--wandb PROJECT`).

    check_installed(run_options)                                  # before the run folder is made
    tracking = open_tracking(run_options, run_dir, points, num_seeds)
    train_sweep(..., on_segment=tracking.log_segment)             # on the host, between compiled segments
    tracking.log_final(summary); tracking.close()

Nothing is logged from inside a compiled function: `pgjax.running.sweep` hands
the host every segment's metrics (`SegmentReport.metrics`) and `GroupCurves`
turns them into statistics over each group's runs, one point per update:

    return/iqm, return/mean, return/q25, return/median, return/q75
                          the update's mean episode return, over the group's runs
    loss/mean, entropy/mean, diverged/fraction
    gradient_variance/median, gradient_snr/median, gradient_cosine/median
                          with --gradient-stats: the medians over the group's runs (NaNs left out)
    speed/env_steps_per_second  at each segment's last update: the env steps per second of the
                          chunk that trained the group's runs (a chunk's runs train at once and
                          share it; a group over several chunks: their steps over their seconds)

against env steps: the mean over the group's runs of their env steps after the
update. An update's point needs every run of the group: a group whose runs are
all in one chunk is logged after each segment, while it trains; a group spread
over several chunks (more seeds than a chunk holds) is logged as its last chunk
trains, its earlier chunks' values kept on the host until then. Statistics take
every run, diverged or not (as `learning_curves.png` does); `diverged/fraction`
says how many had diverged.

At the end every group gets its settings and final results: TensorBoard's
HParams plugin (settings as hparams, `final/return_iqm`, `final/return_mean`,
`final/return_median`, `final/solved_fraction` as metrics), and a W&B run per
group (settings as config, statistics as summary) plus one run of the sweep
holding a table of every run's final figures (runs.csv's rows).

The trackers themselves, and the `GroupCurve` they are fed, are in
`pgjax.results.trackers`. Their packages are optional extras: `pip install
'pgjax[tensorboard]'` (tensorboardX writes, TensorBoard reads) and `pip install
'pgjax[wandb]'`.
"""

from __future__ import annotations

import importlib.util
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from pgjax.algo.trainer import GRADIENT_STATS
from pgjax.results.stats import iqm
from pgjax.results.trackers import RETURN_TAGS, GroupCurve, TensorBoardTracker, WandbTracker
from pgjax.running.grid import GridPoint, compile_groups
from pgjax.running.run_folder.files import TENSORBOARD_DIR
from pgjax.running.sweep import SegmentReport

# option -> (the modules it imports, the extra that installs them)
REQUIRED = {"tensorboard": (("tensorboardX",), "tensorboard"), "wandb": (("wandb",), "wandb")}


def check_installed(run_options: Any) -> None:
    """Raise ImportError (one line naming the extra) if a tracker asked for in `run_options` cannot be imported.

    `run_options`: a `pgjax.commands.options.RunOptions` (its `tensorboard` and `wandb`). Imports nothing.
    """
    for option, (modules, extra) in REQUIRED.items():
        if getattr(run_options, option) is None:
            continue
        missing = [m for m in modules if importlib.util.find_spec(m) is None]
        if missing:
            raise ImportError(f"--{option} needs {', '.join(missing)}: pip install 'pgjax[{extra}]'")


def tensorboard_dir(run_options: Any, run_dir: Path) -> Path | None:
    """Where --tensorboard writes: its DIR, or the run folder's tensorboard/ for the flag without one."""
    if run_options.tensorboard is None:
        return None
    return Path(run_options.tensorboard) if run_options.tensorboard else run_dir / TENSORBOARD_DIR


def curve_of(update0: int, env_steps: np.ndarray, returns: np.ndarray, loss: np.ndarray, entropy: np.ndarray,
             diverged: np.ndarray, speed: dict[int, float], gradient: dict[str, np.ndarray] | None = None
             ) -> GroupCurve:
    """A `GroupCurve` from a group's runs' values [runs, K] at updates update0 + 1 ... update0 + K.

    `gradient`: {`GRADIENT_STATS` field: [runs, K]} with --gradient-stats (None: without), logged as their
    medians over the runs."""
    returns = np.asarray(returns, np.float64)
    q25, median, q75 = np.percentile(returns, [25, 50, 75], axis=0)
    values = dict(zip(RETURN_TAGS, (iqm(returns, axis=0), returns.mean(axis=0), q25, median, q75)))
    values["loss/mean"] = np.asarray(loss, np.float64).mean(axis=0)
    values["entropy/mean"] = np.asarray(entropy, np.float64).mean(axis=0)
    values["diverged/fraction"] = np.asarray(diverged, np.float64).mean(axis=0)
    for name, array in (gradient or {}).items():
        with warnings.catch_warnings():  # an update where every run's value is NaN (the first cosine): NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            values[f"{name}/median"] = np.nanmedian(np.asarray(array, np.float64), axis=0)
    num = returns.shape[1]
    return GroupCurve(np.arange(update0 + 1, update0 + num + 1), np.asarray(env_steps, np.float64).mean(axis=0),
                      values, speed)


class GroupCurves:
    """Turns segment reports into `GroupCurve`s, each update once every run of its group has it.

    Args:
      points: the sweep's grid points (groups); num_seeds: runs per group.
    """

    FIELDS = ("env_steps", "episode_return", "loss", "entropy", "diverged")

    def __init__(self, points: Sequence[GridPoint], num_seeds: int):
        self.compile_groups = [[p.index for p in group] for group in compile_groups(points)]
        self.num_seeds = num_seeds
        self.next_update = {p.index: 0 for p in points}  # updates of each group logged so far
        self.pending: dict[int, dict[str, np.ndarray]] = {}  # group -> field -> [num_seeds, U]; "count" [U]
        self.speed: dict[int, dict[int, list[float]]] = {}  # group -> update -> [env steps, seconds]
        self.fields = self.FIELDS  # and the gradient statistics where the metrics hold them (`add`)

    def add(self, report: SegmentReport) -> list[tuple[int, GroupCurve]]:
        """The (group, curve) pairs that `report` completes, in group order (none without metrics)."""
        metrics = report.metrics
        if metrics is None or report.new_updates == 0:
            return []
        self.fields = self.FIELDS + tuple(name for name in GRADIENT_STATS if getattr(metrics, name) is not None)
        positions = np.asarray(report.chunk.positions)
        points = np.asarray(self.compile_groups[report.chunk.group])[positions // self.num_seeds]
        seed_index = positions % self.num_seeds
        first = report.updates_done - report.new_updates
        done = []
        for group in dict.fromkeys(points.tolist()):
            rows = np.flatnonzero(points == group)
            if report.seconds > 0:
                record = self.speed.setdefault(group, {}).setdefault(report.updates_done, [0.0, 0.0])
                record[0] += report.env_steps
                record[1] += report.seconds
            block = {name: np.asarray(getattr(metrics, name))[rows] for name in self.fields}
            if rows.size == self.num_seeds and group not in self.pending and self.next_update[group] == first:
                last = first + report.new_updates
                done.append((group, self._curve(group, first, block, last)))  # the whole group at once
                continue
            done.extend(self._buffer(group, seed_index[rows], first, block, report.num_updates))
        return done

    def _curve(self, group: int, first: int, block: dict[str, np.ndarray], last: int) -> GroupCurve:
        speed = {u: steps / seconds for u, (steps, seconds) in self.speed.get(group, {}).items()
                 if first < u <= last and seconds > 0}
        for u in speed:
            del self.speed[group][u]
        self.next_update[group] = last
        return curve_of(first, block["env_steps"], block["episode_return"], block["loss"], block["entropy"],
                        block["diverged"], speed, {name: block[name] for name in GRADIENT_STATS if name in block})

    def _buffer(self, group: int, seeds: np.ndarray, first: int, block: dict[str, np.ndarray],
                num_updates: int) -> list[tuple[int, GroupCurve]]:
        """Keep a part of a group's runs; return its curve from the first update not logged to the last complete."""
        width = first + block["env_steps"].shape[1]
        pending = self.pending.get(group)
        if pending is None or pending["count"].size < width:
            size = max(num_updates, width)
            grown = {name: np.zeros((self.num_seeds, size), block[name].dtype) for name in self.fields}
            grown["count"] = np.zeros(size, np.int64)
            if pending is not None:
                for name, array in pending.items():
                    grown[name][..., :array.shape[-1]] = array
            pending = self.pending[group] = grown
        for name in self.fields:
            pending[name][seeds, first:width] = block[name]
        pending["count"][first:width] += seeds.size
        start = self.next_update[group]
        complete = pending["count"][start:] >= self.num_seeds
        stop = start + (int(np.argmin(complete)) if not complete.all() else complete.size)
        if stop == start:
            return []
        curve = self._curve(group, start, {name: pending[name][:, start:stop] for name in self.fields}, stop)
        if stop == pending["count"].size:
            del self.pending[group]
        return [(group, curve)]


class Tracker(Protocol):
    """An experiment tracker: opened once the run folder exists, fed group curves, closed at the end."""

    def open(self, run_dir: Path, points: Sequence[GridPoint], num_seeds: int) -> None: ...

    def log_segment(self, group: int, curve: GroupCurve) -> None: ...

    def log_final(self, summary: dict) -> None: ...

    def close(self) -> None: ...

    def where(self) -> str: ...


class Tracking:
    """Every tracker asked for, fed from segment reports; a tracker that fails is dropped with one warning."""

    def __init__(self, trackers: Sequence[Tracker], points: Sequence[GridPoint], num_seeds: int):
        self.trackers = list(trackers)
        self.curves = GroupCurves(points, num_seeds) if self.trackers else None
        self._closed = False

    def _each(self, method: str, *args: Any) -> None:
        for tracker in list(self.trackers):
            try:
                getattr(tracker, method)(*args)
            except Exception as error:  # a logging failure must not lose a sweep's training
                print(f"warning: {type(tracker).__name__} failed ({type(error).__name__}: {error}); "
                      "training goes on without it", file=sys.stderr)
                self.trackers.remove(tracker)

    def log_segment(self, report: SegmentReport) -> None:
        if not self.trackers:
            return
        for group, curve in self.curves.add(report):
            self._each("log_segment", group, curve)

    def log_final(self, summary: dict) -> None:
        self._each("log_final", summary)

    def close(self) -> None:
        """Flush and finish every tracker, once (later calls do nothing)."""
        if not self._closed:
            self._closed = True
            self._each("close")

    def where(self) -> list[str]:
        return [tracker.where() for tracker in self.trackers]


def open_tracking(run_options: Any, run_dir: Path, points: Sequence[GridPoint], num_seeds: int) -> Tracking:
    """The trackers `run_options` asks for (`--tensorboard`, `--wandb`), opened on `run_dir` (which exists).

    Raises:
      ValueError: a tracker could not start (one line naming its flag: a file
        where the TensorBoard folder should be, W&B without a login, ...); the
        trackers opened before it are closed.
    """
    trackers: list[tuple[str, Tracker]] = []
    directory = tensorboard_dir(run_options, run_dir)
    if directory is not None:
        trackers.append(("--tensorboard", TensorBoardTracker(directory)))
    if run_options.wandb is not None:
        trackers.append(("--wandb", WandbTracker(run_options.wandb)))
    opened: list[Tracker] = []
    for flag, tracker in trackers:
        try:
            tracker.open(run_dir, points, num_seeds)
        except Exception as error:  # any library's failure to start is the user's to fix, in one line
            for started in opened:
                started.close()
            message = " ".join(str(error).split()) or type(error).__name__
            raise ValueError(f"{flag} could not start: {message}") from None
        opened.append(tracker)
    return Tracking(opened, points, num_seeds)
