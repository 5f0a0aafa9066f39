"""Model-based search (`--sampler tpe`): Optuna's TPE asked for a round of points at a time, each round vmapped.

    asker = TpeAsker(ranges, seed=0, startup=round_sizes(64)[0])
    points, results, info = train_tpe(slots, 16, 0, asker, round_sizes(64), chunk_size, halving_score)

A search of N points trains in `ROUNDS` rounds of ceil(N / ROUNDS) points (the
last one may hold fewer, `round_sizes`). Before each round the sampler is asked
for the round's points at once (Optuna's batched ask: `constant_liar` keeps the
pending points of the round apart); the round's runs train like the chunks of a
plain sweep, under the one compile of the search's compile group (the points
are the numeric settings of the same static settings, vmapped); after it every
point's score (the IQM over its seeds of the final return, the score of
successive halving) is told to the sampler. The first round is TPE's start-up:
points drawn at random over the ranges; the later ones come from TPE's model of
the scores told so far. A run that diverged scores -inf, told as the lowest
finite score of the search so far (as bad as the worst point), or as a failed
trial while none is finite.

The sampler is seeded and each round's points are a function of the seed and
the scores told before, which are bitwise functions of the trained runs: a
resumed search asks the same points again, and `train_tpe` checks them against
the ones the interrupted command recorded (a ValueError where another Optuna
asks others). Optuna is optional (`pip install 'pgjax[tpe]'`), imported only here.

`TpeSearch` is the search as a stage of a plan (`pgjax.running.strategy`): the
places of its points before they are asked (`slot_points`), its chunks (a chunk
never spans two rounds), and its rounds trained with the hooks' `on_round`,
which records each round's asked points in config.json before the round trains
(so that --resume asks them again and checks them); `check_search` is what it
refuses on the command line, `record` its "search" record.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pgjax.algo.config import is_static
from pgjax.running.grid import GridPoint, compile_groups, expand_grid
from pgjax.running.progress import SweepProgress
from pgjax.running.run_folder.checkpoints import check_chunk_folders, chunk_dir
from pgjax.running.search import Range, Search, ranges_from_record
from pgjax.running.segments import Chunk, concat_trees, split_into_chunks
from pgjax.running.strategy import Hooks, Plan, Trained, Work
from pgjax.running.sweep import ChunkRunner, GroupResult, SegmentReport, chunk_work, each_of

ROUNDS = 8  # rounds of a search: its first one TPE's random start-up, the other 7 modelled on the rounds before
MISSING = "--sampler tpe needs Optuna: pip install 'pgjax[tpe]' (or pip install optuna)"


def round_sizes(num_samples: int) -> list[int]:
    """The points of each round of a search of `num_samples` points: ceil(N / ROUNDS) each, the rest last.

    >>> round_sizes(64), round_sizes(20), round_sizes(3)
    ([8, 8, 8, 8, 8, 8, 8, 8], [3, 3, 3, 3, 3, 3, 2], [1, 1, 1])
    """
    if num_samples < 1:
        raise ValueError(f"a search needs at least one point, got {num_samples}")
    size = math.ceil(num_samples / ROUNDS)
    return [min(size, num_samples - begin) for begin in range(0, num_samples, size)]


def round_chunks(sizes: Sequence[int], num_seeds: int, chunk_size: int) -> list[list[Chunk]]:
    """Each round's chunks: its points' runs (point-major, `num_seeds` each) cut into chunks of `chunk_size`.

    A chunk never spans two rounds (a round's points are asked only once the round before has trained);
    the chunks are numbered through the rounds (their checkpoint folders).
    """
    rounds, first_run, first_chunk = [], 0, 0
    for size in sizes:
        runs = np.arange(first_run, first_run + size * num_seeds)
        rounds.append(split_into_chunks(0, runs, chunk_size, first_chunk))
        first_run, first_chunk = first_run + runs.size, first_chunk + len(rounds[-1])
    return rounds


def tpe_chunk_size(planned: int, round_runs: int, num_devices: int) -> int:
    """Runs per chunk: the planned size (what fits memory), at most a round's runs rounded up to the devices."""
    return max(num_devices, min(planned, math.ceil(round_runs / num_devices) * num_devices))


class TpeAsker:
    """Optuna's TPE (`optuna.samplers.TPESampler`) over `ranges`, asked and told a round of points at a time.

    Args:
      ranges: setting -> `Range` (log ranges sampled log-uniformly, integer ranges as integers).
      seed: the sampler's seed; startup: points drawn at random before TPE models the scores.

    Raises:
      ImportError: Optuna is not installed (`MISSING`).
    """

    def __init__(self, ranges: Mapping[str, Range], seed: int, startup: int):
        try:
            import optuna
        except ImportError:
            raise ImportError(MISSING) from None
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._optuna, self.names = optuna, list(ranges)
        self.distributions = {
            name: (optuna.distributions.IntDistribution(int(r.low), int(r.high), log=r.scale == "log") if r.integer
                   else optuna.distributions.FloatDistribution(r.low, r.high, log=r.scale == "log"))
            for name, r in ranges.items()}
        with warnings.catch_warnings():  # multivariate TPE is "experimental" in Optuna's words
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, multivariate=True,
                                                 constant_liar=True)
        self.study = optuna.create_study(direction="maximize", sampler=sampler)
        self._pending: list = []
        self._lowest = math.inf

    def ask(self, n: int) -> list[dict]:
        """`n` points, {setting: value} each in the ranges' order (ints for integer ranges)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", self._optuna.exceptions.ExperimentalWarning)
            self._pending = [self.study.ask(self.distributions) for _ in range(n)]
        return [{name: trial.params[name] for name in self.names} for trial in self._pending]

    def tell(self, scores: Sequence[float]) -> None:
        """Tell the last asked points their scores (higher is better; a non-finite one: module docstring)."""
        if len(scores) != len(self._pending):
            raise ValueError(f"{len(self._pending)} points were asked and {len(scores)} scores told")
        finite = [s for s in scores if math.isfinite(s)]
        self._lowest = min([self._lowest, *finite])
        for trial, score in zip(self._pending, scores):
            if math.isfinite(score):
                self.study.tell(trial, float(score))
            elif math.isfinite(self._lowest):
                self.study.tell(trial, self._lowest)
            else:
                self.study.tell(trial, state=self._optuna.trial.TrialState.FAIL)
        self._pending = []


def slot_points(base: GridPoint, ranges: Mapping[str, Range], num_samples: int) -> list[GridPoint]:
    """The N places of a search's points before they are asked: `base` with each range at its high end.

    They plan the chunks and build the compiled programs (only the static settings and the count matter);
    no slot trains as it is: `train_tpe` puts each round's asked points in before the round trains.
    """
    highs = {name: (int(r.high) if r.integer else r.high) for name, r in ranges.items()}
    config = expand_grid(base.config, {}, {}, [highs])[0].config
    return [GridPoint(i, config) for i in range(num_samples)]


@dataclasses.dataclass(frozen=True)
class TpeRounds:
    """How a TPE search trains: the points of each round and the runs per chunk.

    Attributes:
      sizes: [K] points of each round (`round_sizes`); chunk_size: runs per chunk (`tpe_chunk_size`).
      recorded: the points an interrupted command asked and recorded (config.json's grid), to ask again.
    """

    sizes: tuple[int, ...]
    chunk_size: int
    recorded: tuple[GridPoint, ...] = ()


def train_tpe(
    slots: Sequence[GridPoint], num_seeds: int, first_seed: int, asker: TpeAsker, rounds: TpeRounds,
    score: Callable[[Any], float], *, on_round: Callable[[list[GridPoint]], None] | None = None,
    devices: list | None = None, run_dir: Path | None = None, checkpoint_every: int | None = None,
    should_stop: Callable[[], bool] | None = None, block_rows: int | None = None,
    on_segment: Callable[[SegmentReport], None] | None = None,
) -> tuple[list[GridPoint], list[GroupResult], dict]:
    """Train a TPE search round by round (module docstring).

    Args:
      slots: [N] `slot_points` (one compile group); num_seeds, first_seed: every point's seeds.
      asker: the sampler; rounds: its rounds (with the points to ask again when resuming).
      score: a point's score from its `Metrics` (leaves [S, U, ...]), higher is better.
      on_round: called with the points asked so far before each round that was not recorded trains
        (the command records them in config.json).
      devices, run_dir, checkpoint_every, should_stop, block_rows, on_segment: as `sweep.train_sweep`'s.

    Returns:
      (points, results, info): the N asked points (grid points 0..N-1), one `GroupResult` of their
      runs, and `train_sweep`'s info.

    Raises:
      ValueError: the sampler asks other points than `rounds.recorded` (another Optuna version), or a
        checkpoint folder that is not one of the plan's.
      Interrupted: `should_stop` was triggered (the current chunk is checkpointed).
    """
    points = list(slots)
    runner = ChunkRunner([points], num_seeds, first_seed, devices=devices, checkpoint_every=checkpoint_every,
                         on_segment=on_segment, should_stop=should_stop, block_rows=block_rows)
    chunks_by_round = round_chunks(rounds.sizes, num_seeds, rounds.chunk_size)
    every_chunk = [chunk for chunks in chunks_by_round for chunk in chunks]
    runner.loop.num_chunks = len(every_chunk)
    runner.info.update({"chunks": len(every_chunk), "chunk_sizes": [rounds.chunk_size]})
    if run_dir is not None:
        check_chunk_folders(run_dir, {chunk_dir(run_dir, c.index) for c in every_chunk}, len(every_chunk))
        runner.check_checkpoints(every_chunk, lambda c: chunk_dir(run_dir, c.index))
    trained, begin = [], 0
    for size, chunks in zip(rounds.sizes, chunks_by_round):
        asked = [dataclasses.replace(p, index=begin + i)
                 for i, p in enumerate(expand_grid(slots[0].config, {}, {}, asker.ask(size)))]
        _check_recorded(asked, rounds.recorded)
        points[begin:begin + size] = asked
        if on_round is not None and begin + size > len(rounds.recorded):
            on_round(points[:begin + size])
        runner.set_points(0, points)
        done = [runner.train_chunk(c, chunk_dir(run_dir, c.index) if run_dir is not None else None) for c in chunks]
        trained += done
        metrics = concat_trees([m for _, m in done])
        asker.tell([score(_rows(metrics, i * num_seeds, (i + 1) * num_seeds)) for i in range(size)])
        begin += size
    runs, seeds, _ = runner.group_runs(0)
    result = GroupResult(runs=runs, seeds=seeds, state=concat_trees([s for s, _ in trained]),
                         metrics=concat_trees([m for _, m in trained]))
    return points, [result], runner.info


def _rows(tree: Any, begin: int, end: int) -> Any:
    import jax

    return jax.tree.map(lambda x: x[begin:end], tree)


def _check_recorded(asked: list[GridPoint], recorded: Sequence[GridPoint]) -> None:
    """The asked points that an interrupted command recorded must be the ones it recorded (module docstring)."""
    for point in asked:
        if point.index < len(recorded) and recorded[point.index].config != point.config:
            import optuna

            raise ValueError(f"the TPE sampler (Optuna {optuna.__version__}) asks other points than the interrupted "
                             f"search recorded (grid point {point.index}): it cannot be resumed with this Optuna "
                             "version (or its config.json was edited); resume it with the one that started it")


def check_search(given: dict[str, Any], search: Search, run: Any) -> None:
    """Refuse what a TPE search cannot do, in one line naming the flags.

    Args:
      given: the settings given on the command line; search: the ranges drawn from; run: the command's run
        options (its `tensorboard`, `wandb` and `halving`).

    Raises:
      ValueError: with --halving, --tensorboard or --wandb (the trackers take each group's settings before it
        trains), with a range over a static setting (its values change the compiled shapes, and a round trains
        under one compile), or with a listed flag of several values.
      ImportError: Optuna is not installed.
    """
    def flag(name: str) -> str:
        return "--" + name.replace("_", "-")

    trackers = [f"--{name}" for name in ("tensorboard", "wandb") if getattr(run, name) is not None]
    if trackers:
        raise ValueError(f"--sampler tpe asks its points while it trains and {trackers[0]} takes every group's "
                         "settings before: leave it out (the run folder has every curve), or use --sampler sobol")
    if run.halving is not None:
        raise ValueError("--sampler tpe asks each round's points from the scores of the rounds before and trains "
                         "them to the end; it does not take --halving (halve a --sampler sobol or random search)")
    for name in search.ranges:
        if is_static(name):
            raise ValueError(f"--sampler tpe trains each round under one compile and {flag(name)} changes the "
                             "compiled shapes: list its values in a search of their own, or use --sampler sobol")
    for name, values in given.items():
        if name not in search.ranges and isinstance(values, tuple) and len(values) > 1:
            raise ValueError(f"--sampler tpe searches its ranges alone and {flag(name)} lists {len(values)} values: "
                             "give one (a search per value), or use --sampler sobol to cross them")
    import importlib.util

    if importlib.util.find_spec("optuna") is None:
        raise ImportError(MISSING)


def record(search: Search) -> dict:
    """summary.json's and config.json's "search" of a TPE search: `Search.record` with its rounds, and the
    grid points asked so far (none yet)."""
    return {**search.record(), "rounds": round_sizes(search.num_samples), "asked_points": 0}


def is_tpe(search: dict | None) -> bool:
    """Whether a search record (config.json's "search") is a TPE search's."""
    return search is not None and search.get("sampler") == "tpe"


def recorded_points(search: dict, num_points: int, config_file: Path | None) -> int:
    """How many of a TPE search's grid points were asked ("asked_points", checked as untrusted data).

    Raises:
      ValueError: one line: not a whole number from 0 to the grid's points.
    """
    asked = search.get("asked_points")
    if isinstance(asked, bool) or not isinstance(asked, int) or not 0 <= asked <= num_points:
        raise ValueError(f"{config_file} is damaged: its search has asked_points {asked!r}, not a whole number "
                         f"from 0 to its {num_points} grid points")
    return asked


@dataclasses.dataclass(frozen=True)
class TpeSearch:
    """A TPE search (a `pgjax.running.strategy.Strategy`): `train_tpe` over rounds of `sizes` points, asked
    by a `TpeAsker` over `ranges` seeded with `seed`; the first `recorded` points were asked and recorded by
    an interrupted command (config.json's grid), asked again and checked.

    The plan's points are the search's places (`slot_points`) until they are asked, its chunks
    `fit_chunks`'s; the hooks' `on_round` records each round's asked points before the round trains.
    """

    ranges: Mapping[str, Range]
    seed: int
    sizes: tuple[int, ...]
    recorded: int = 0

    @classmethod
    def of(cls, search: dict, num_points: int, seed: int, config_file: Path | None = None) -> TpeSearch:
        """The search of config.json's (or a new command's) "search" record over `num_points` grid points.

        Raises:
          ValueError: a damaged "asked_points" (`recorded_points`; `config_file` names the file).
        """
        recorded = recorded_points(search, num_points, config_file)
        return cls(ranges_from_record(search.get("ranges")), seed, tuple(round_sizes(num_points)), recorded)

    def fit_chunks(self, chunks: list[Chunk], num_seeds: int, num_devices: int, resuming: bool) -> list[Chunk]:
        """The rounds' chunks, flat: runs per chunk as planned (`tpe_chunk_size`; a resumed search's saved size)."""
        size = chunks[0].size if resuming else tpe_chunk_size(max(c.size for c in chunks), self.sizes[0] * num_seeds,
                                                              num_devices)
        return [chunk for chunks in round_chunks(self.sizes, num_seeds, size) for chunk in chunks]

    def notes(self) -> tuple[str, ...]:
        return (f"TPE (Optuna): {len(self.sizes)} rounds of {self.sizes[0]} points, trained one after another; the "
                "first drawn at random, each later one fit to the scores so far (IQM of the final return over the "
                "seeds)",)

    def work(self, plan: Plan) -> Work:
        return chunk_work(plan)

    def train(self, plan: Plan, hooks: Hooks, before: Trained | None) -> Trained:
        asker = TpeAsker(self.ranges, self.seed, startup=self.sizes[0])
        rounds = TpeRounds(self.sizes, plan.chunks[0].size, tuple(plan.points[:self.recorded]))
        with SweepProgress(int(chunk_work(plan).run_updates), hooks.console, hooks.mode) as progress:
            points, results, timings = train_tpe(
                plan.points, plan.num_seeds, plan.seed, asker, rounds, hooks.score, on_round=hooks.on_round,
                devices=plan.devices, run_dir=hooks.folder, checkpoint_every=plan.checkpoint_every,
                should_stop=hooks.should_stop, block_rows=plan.block_rows,
                on_segment=each_of(progress.report, hooks.on_segment))
        return Trained(points, compile_groups(points), results, timings, None,
                       {**plan.search, "asked_points": len(points)})
