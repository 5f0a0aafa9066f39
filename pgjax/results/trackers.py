"""The trackers of `pgjax.results.tracking`: TensorBoard (tensorboardX's event files) and Weights & Biases.

Each implements `pgjax.results.tracking.Tracker`; `open_tracking` makes them.
Their packages are imported when a tracker opens. What a tracker is fed, a
`GroupCurve` and its tags, is defined here; `pgjax.results.tracking` imports
this module, never the other way round.
"""

from __future__ import annotations

import dataclasses
import math
import queue
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pgjax.results.exports import runs_table
from pgjax.results.tables import format_setting
from pgjax.running.grid import GridPoint

QUEUE_EVENTS = 10_000  # events tensorboardX's writing thread may hold
RETURN_TAGS = ("return/iqm", "return/mean", "return/q25", "return/median", "return/q75")
SPEED_TAG = "speed/env_steps_per_second"


@dataclasses.dataclass
class GroupCurve:
    """Statistics over one group's runs at K consecutive updates.

    Attributes:
      update: [K] update numbers (1 for the first).
      env_steps: [K] mean over the group's runs of their cumulative env steps after the update.
      values: tag -> [K] (`RETURN_TAGS`, "loss/mean", "entropy/mean", "diverged/fraction", and with
        --gradient-stats "gradient_variance/median", "gradient_snr/median", "gradient_cosine/median").
      speed: update -> env steps per second, at the updates that ended a segment.
    """

    update: np.ndarray
    env_steps: np.ndarray
    values: dict[str, np.ndarray]
    speed: dict[int, float]


def hparam_value(value: Any) -> bool | int | float | str:
    """A setting as a tracker's config takes it: widths as "64,64", None as "None", infinity as "inf"."""
    if isinstance(value, (list, tuple)):
        return format_setting(value)
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return str(value)
    return value


def final_metrics(group: dict) -> dict[str, float]:
    """A summary.json group's final results as tracker metrics: final/return_iqm, ... (NaN where missing)."""
    stats = group.get("statistics") or {}
    metrics = {f"final/return_{name}": stats.get(name) for name in ("iqm", "mean", "median")}
    if group.get("solved_fraction") is not None:
        metrics["final/solved_fraction"] = group["solved_fraction"]
    metrics["final/num_diverged"] = group["num_diverged"]
    return {name: math.nan if value is None else float(value) for name, value in metrics.items()}


class TensorBoardTracker:
    """Event files under `directory`: a run per group (group<g>/), the HParams experiment at the top."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.writers: dict[int, Any] = {}

    def open(self, run_dir: Path, points: Sequence[GridPoint], num_seeds: int) -> None:
        from tensorboardX import SummaryWriter
        from tensorboardX.proto.summary_pb2 import Summary

        self._writer_class, self._summary = SummaryWriter, Summary
        self.directory.mkdir(parents=True, exist_ok=True)

    def _writer(self, group: int) -> Any:
        if group not in self.writers:  # a long queue: adding an event does not wait for the writing thread
            self.writers[group] = self._writer_class(logdir=str(self.directory / f"group{group}"),
                                                     max_queue=QUEUE_EVENTS)
        return self.writers[group]

    def log_segment(self, group: int, curve: GroupCurve) -> None:
        """One event per update holding every tag's value (not one event per value: nine times fewer to queue)."""
        writer = self._writer(group).file_writer
        steps = np.rint(curve.env_steps).astype(np.int64).tolist()
        columns = {tag: values.tolist() for tag, values in curve.values.items()}
        for k, (update, step) in enumerate(zip(curve.update.tolist(), steps)):
            values = [self._summary.Value(tag=tag, simple_value=column[k]) for tag, column in columns.items()]
            if update in curve.speed:
                values.append(self._summary.Value(tag=SPEED_TAG, simple_value=curve.speed[update]))
            writer.add_summary(self._summary(value=values), step)

    def log_final(self, summary: dict) -> None:
        from tensorboardX.summary import hparams

        experiment = None
        for group in summary["groups"]:
            writer = self._writer(group["index"])
            settings = {name: hparam_value(v) for name, v in group["hyperparameters"].items()}
            metrics = final_metrics(group)
            experiment, start, end = hparams(settings, metrics)
            for summary_proto in (start, end):
                writer.file_writer.add_summary(summary_proto)
            steps = [summary["runs"][r]["env_steps"] for r in group["runs"]]
            values = [self._summary.Value(tag=tag, simple_value=value) for tag, value in metrics.items()]
            writer.file_writer.add_summary(self._summary(value=values), int(np.mean(steps)))
        if experiment is not None:  # every group has the same settings and metrics: one experiment, at the top
            with self._writer_class(logdir=str(self.directory)) as top:
                top.file_writer.add_summary(experiment)

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()
        self.writers = {}

    def where(self) -> str:
        return f"TensorBoard: tensorboard --logdir {self.directory}"


class WandbTracker:
    """A W&B run per group in `project` (grouped by the run folder's name), and one run of the sweep's table.

    `run.log` sends a message to W&B's service process and waits for the socket, once per
    update; a thread of its own does that, so that the training loop only hands it the rows.
    """

    def __init__(self, project: str):
        self.project = project
        self.runs: dict[int, Any] = {}
        self._rows: queue.SimpleQueue = queue.SimpleQueue()
        self._sender: threading.Thread | None = None
        self._error: BaseException | None = None

    def open(self, run_dir: Path, points: Sequence[GridPoint], num_seeds: int) -> None:
        import wandb

        self.wandb, self.run_dir = wandb, Path(run_dir)
        self.settings = {p.index: p.hyperparameters() for p in points}
        self.num_seeds = num_seeds
        for point in points:  # before training: a W&B run takes a while to start
            self._run(point.index)
        self._sender = threading.Thread(target=self._send, name="pgjax-wandb", daemon=True)
        self._sender.start()

    def _send(self) -> None:
        """The sender thread: log the queued (run, row, step) until None; keep the first error."""
        while (item := self._rows.get()) is not None:
            if self._error is None:
                try:
                    run, row, step = item
                    run.log(row, step=step)
                except BaseException as error:  # raised in the training thread by the next call
                    self._error = error

    def _drain(self) -> None:
        """Wait until every queued row is logged; raise the sender's error, if any."""
        if self._sender is not None:
            self._rows.put(None)
            self._sender.join()
            self._sender = None
        self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _init(self, name: str, job_type: str, config: dict) -> Any:
        return self.wandb.init(
            project=self.project, name=name, group=self.run_dir.name, job_type=job_type, config=config,
            dir=str(self.run_dir), reinit="create_new",
            settings=self.wandb.Settings(console="off", silent=True, save_code=False),
        )

    def _run(self, group: int) -> Any:
        if group not in self.runs:
            config = {name: hparam_value(v) for name, v in self.settings[group].items()}
            run = self._init(f"{self.run_dir.name}/group{group}", "group",
                             {**config, "group": group, "num_seeds": self.num_seeds, "run_folder": str(self.run_dir)})
            run.define_metric("env_steps")
            run.define_metric("*", step_metric="env_steps")
            self.runs[group] = run
        return self.runs[group]

    def log_segment(self, group: int, curve: GroupCurve) -> None:
        self._raise()
        run = self._run(group)
        columns = {tag: values.tolist() for tag, values in curve.values.items()}
        for k, (update, steps) in enumerate(zip(curve.update.tolist(), curve.env_steps.tolist())):
            row = {tag: column[k] for tag, column in columns.items()}
            if update in curve.speed:
                row[SPEED_TAG] = curve.speed[update]
            self._rows.put((run, {**row, "env_steps": steps, "update": update}, update))

    def log_final(self, summary: dict) -> None:
        self._drain()
        for group in summary["groups"]:
            run = self._run(group["index"])
            statistics = {f"statistics/{k}": v for k, v in (group.get("statistics") or {}).items()}
            extra = {k: group[k] for k in ("rung", "stopped_early") if k in group}
            run.summary.update({**final_metrics(group), **statistics, **extra,
                                "final_return_mean": group["final_return_mean"]})
        columns, rows = runs_table(summary)
        sweep = self._init(self.run_dir.name, "sweep", {
            "env": summary["env"], "preset": summary["preset"], "num_seeds": summary["num_seeds"],
            "num_groups": summary["num_groups"], "run_folder": str(self.run_dir)})
        sweep.log({"runs": self.wandb.Table(columns=columns, data=[[_table_cell(v) for v in row] for row in rows])})
        sweep.summary.update({k: summary[k] for k in ("num_runs", "solved_fraction", "final_return_mean",
                                                      "num_diverged", "env_steps_total", "train_seconds")})
        sweep.summary.update({f"statistics/{k}": v for k, v in (summary.get("statistics") or {}).items()})
        self.runs[-1] = sweep

    def close(self) -> None:
        try:
            self._drain()
        finally:
            for run in self.runs.values():
                run.finish()
            self.runs = {}

    def where(self) -> str:
        return f"W&B: project {self.project}, group {self.run_dir.name} (local files in {self.run_dir / 'wandb'})"


def _table_cell(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value
