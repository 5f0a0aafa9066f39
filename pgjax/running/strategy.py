"""What a training command trains, and the one interface every way of training it has.

    plan = pgjax.running.plan.make_plan(...)          # a `Plan`: points, chunks, devices, stages
    trained = pgjax.running.plan.run_plan(plan, hooks) # each stage's `train` in turn

A `Plan` is worked out once, before anything trains: the grid points, their
compile groups, the chunks (what fits memory, or a resumed run's saved plan),
the memory estimates, the devices and the stages. A stage is a `Strategy`: a
plain sweep (`pgjax.running.sweep.PlainSweep`), successive halving
(`pgjax.running.halving.Halving`), TPE rounds (`pgjax.running.tpe.TpeSearch`),
then, after a search, the confirmation on fresh seeds
(`pgjax.running.confirm.Confirm`). Each says what it adds to the plan's lines
(`notes`, `work`), may fit the chunks to itself (`fit_chunks`) and trains
(`train`), given what the stage before it trained; a new way to search is one
module with such a class.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from pgjax.running.grid import GridPoint
from pgjax.running.segments import Chunk, SegmentReport


@dataclasses.dataclass(frozen=True)
class Work:
    """A stage's share of --plan-only's estimate.

    Attributes:
      lines: what it says of itself (printed before the work line for the first stage, after it for later ones).
      run_updates: updates of single runs it trains; chunk_updates: in updates of a first-stage chunk of the
        first chunk's size (a chunk's update takes time in proportion to its size).
      compiles: the compiles it adds to the compile groups'.
    """

    lines: tuple[str, ...] = ()
    run_updates: float = 0
    chunk_updates: float = 0
    compiles: int = 0


@dataclasses.dataclass(frozen=True)
class Plan:
    """Everything a training command trains, worked out before anything trains.

    Attributes:
      preset: the preset's name; points: the grid points (a TPE search's: places until they are asked).
      groups: their compile groups (`pgjax.running.grid.compile_groups`).
      chunks: the first stage's chunks (a resumed run's saved plan); estimates: the memory estimate per
        compile group (`pgjax.running.sweep.plan_chunks`; None for a resumed run).
      devices: what every chunk is spread over; spec: the environment's `EnvSpec`.
      num_seeds, seed, checkpoint_every, block_rows, max_parallel: the runs' seeds and how they train.
      search: the record of the ranges the points were drawn from (config.json's and summary.json's "search";
        None for a plain grid).
      stages: the `Strategy`s that train, one after another (the search, then a confirmation).
      resuming: the run continues an interrupted one (its chunks were read back).
      env_has_preset: the environment has a default preset of its own.
      suite_preset: that preset is its suite adapter's (`pgjax.algo.suites.suite_preset`), which the command says.
    """

    preset: str
    points: list[GridPoint]
    groups: list[list[GridPoint]]
    chunks: list[Chunk]
    estimates: list[dict] | None
    devices: list
    spec: Any
    num_seeds: int
    seed: int
    stages: tuple[Strategy, ...]
    checkpoint_every: int | None = None
    block_rows: int | None = None
    max_parallel: int | None = None
    search: dict | None = None
    resuming: bool = False
    env_has_preset: bool = True
    suite_preset: bool = False

    @property
    def num_runs(self) -> int:
        return len(self.points) * self.num_seeds


@dataclasses.dataclass(frozen=True)
class Hooks:
    """What a run of a plan reports to, and the functions of the layers above it that it uses.

    Attributes:
      folder: the run folder (checkpoints; None: none).
      console, mode: where progress goes, and how (`pgjax.running.progress.SweepProgress`: "bar", "lines", "off").
      should_stop: polled between segments; True checkpoints and raises `Interrupted`.
      on_segment: also called with every `SegmentReport` (the trackers); None: nothing.
      on_round: a TPE search's asked points so far, before a round trains (config.json records them).
      score: a grid point's score from its `Metrics` ([seeds, updates, ...]), higher is better (halving, TPE).
      rank: `(points, num_seeds, results, threshold, stopped_early) -> (indices best first, {index: IQM})`,
        the search's ranking (a confirmation's best).
    """

    folder: Path | None = None
    console: Any = None
    mode: str = "off"
    should_stop: Callable[[], bool] | None = None
    on_segment: Callable[[SegmentReport], None] | None = None
    on_round: Callable[[list[GridPoint]], None] | None = None
    score: Callable[[Any], float] | None = None
    rank: Callable[..., tuple[list[int], dict]] | None = None

    def say(self, line: str) -> None:
        """Print a line unless the progress is off (--quiet, or a process other than process 0)."""
        if self.mode != "off":
            self.console.print(line, soft_wrap=True)


@dataclasses.dataclass(frozen=True)
class Confirmed:
    """What a confirmation trained: its `pgjax.running.confirm.Confirmation`, results and timings, and the
    search's IQM per ranked grid point on the tuning seeds."""

    confirmation: Any
    results: list
    timings: dict
    tuning_iqm: dict[int, float]


@dataclasses.dataclass(frozen=True)
class Trained:
    """What the stages trained.

    Attributes:
      points: the grid points (a TPE search's as asked); groups: their compile groups.
      results: one `GroupResult` per compile group (per grid point where `outcome` is not None).
      timings: `pgjax.running.sweep.train_sweep`'s info.
      outcome: successive halving's `HalvingOutcome`, None without it.
      search: the plan's search record (a TPE search's with its asked points).
      confirmed: the confirmation's, None without one.
    """

    points: list[GridPoint]
    groups: list[list[GridPoint]]
    results: list
    timings: dict
    outcome: Any = None
    search: dict | None = None
    confirmed: Confirmed | None = None


class Strategy(Protocol):
    """A stage of a plan: how its runs train."""

    def fit_chunks(self, chunks: list[Chunk], num_seeds: int, num_devices: int, resuming: bool) -> list[Chunk]:
        """The chunks it trains, from those planned for the compile groups (or a resumed run's)."""
        ...

    def notes(self) -> Sequence[str]:
        """Lines said before the plan line."""
        ...

    def work(self, plan: Plan) -> Work:
        """Its share of --plan-only's estimate."""
        ...

    def train(self, plan: Plan, hooks: Hooks, before: Trained | None) -> Trained:
        """Train (`before`: what the stages before it trained, None for the first).

        Raises:
          Interrupted: `hooks.should_stop` said so; what was trained is checkpointed (with `hooks.folder`).
        """
        ...
