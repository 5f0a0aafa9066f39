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
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pgjax.running.checkpoints import check_chunk_folders, chunk_dir
from pgjax.running.grid import GridPoint, expand_grid
from pgjax.running.search import Range
from pgjax.running.segments import Chunk, concat_trees, split_into_chunks
from pgjax.running.sweep import ChunkRunner, GroupResult, SegmentReport

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
