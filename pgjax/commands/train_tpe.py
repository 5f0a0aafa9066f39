"""`python -m pgjax.train --sampler tpe`: a search whose points Optuna's TPE asks round by round.

The command's part of a TPE search (`pgjax.running.tpe`): what it refuses
(`check_search`), the places of its points before they are asked
(`slot_points`), the chunk plan of its rounds (`chunks_of`), and `train`,
which trains the rounds and records each round's asked points in config.json
before the round trains (its "grid", and "search"'s "asked_points": the grid
points from that one on are the places not asked yet), so that --resume asks
them again and checks them.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from pgjax.commands.options import RunOptions
    from pgjax.running.grid import GridPoint
    from pgjax.running.search import Search


def check_search(given: dict[str, Any], search: Search, run: RunOptions) -> None:
    """Refuse what a TPE search cannot do, in one line naming the flags.

    Raises:
      ValueError: with --halving, --tensorboard or --wandb (the trackers take each group's settings before it
        trains), with a range over a static setting (its values change the compiled shapes, and a round trains
        under one compile), or with a listed flag of several values.
      ImportError: Optuna is not installed.
    """
    from pgjax.algo.config import is_static
    from pgjax.commands.options import flag

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
        from pgjax.running.tpe import MISSING

        raise ImportError(MISSING)


def slot_points(preset: str, given: dict[str, Any], search: Search, num_seeds: int) -> list[GridPoint]:
    """The N places of the search's points (`pgjax.running.tpe.slot_points`), validated as a grid point is."""
    from pgjax.commands.grid_settings import resolve_grid
    from pgjax.running import tpe

    base = resolve_grid(preset, given, dataclasses.replace(search, sampler="sobol", num_samples=1), num_seeds)[0]
    return tpe.slot_points(base, search.ranges, search.num_samples)


def record(search: Search) -> dict:
    """summary.json's and config.json's "search" of a TPE search: `Search.record` with its rounds, and the
    grid points asked so far (none yet)."""
    from pgjax.running.tpe import round_sizes

    return {**search.record(), "rounds": round_sizes(search.num_samples), "asked_points": 0}


def is_tpe(search: dict | None) -> bool:
    return search is not None and search.get("sampler") == "tpe"


def chunks_of(chunks: list, num_points: int, num_seeds: int, num_devices: int, resuming: bool) -> list:
    """The rounds' chunks, flat: runs per chunk as planned (`tpe_chunk_size`; a resumed search's saved size)."""
    from pgjax.running.tpe import round_chunks, round_sizes, tpe_chunk_size

    sizes = round_sizes(num_points)
    size = chunks[0].size if resuming else tpe_chunk_size(max(c.size for c in chunks), sizes[0] * num_seeds,
                                                          num_devices)
    return [chunk for chunks in round_chunks(sizes, num_seeds, size) for chunk in chunks]


def train(points: list[GridPoint], search: dict, opts: RunOptions, chunks: list, out: Path, devices: list,
          on_segment, stop) -> tuple[list[GridPoint], list, dict]:
    """Train the rounds (`pgjax.running.tpe.train_tpe`): (the asked points, results, timings).

    Args:
      points: config.json's grid (its first "asked_points" asked by an interrupted command);
      search: its "search"; chunks: `chunks_of`'s; on_segment, stop: as `pgjax.running.sweep.train_sweep`'s.
    """
    import jax

    from pgjax.results import loading, outputs
    from pgjax.results.folder import CONFIG_FILE
    from pgjax.results.summary import halving_score
    from pgjax.running import tpe
    from pgjax.running.search import ranges_from_record

    sizes = tpe.round_sizes(len(points))
    seed = opts.seed if opts.sampler_seed is None else opts.sampler_seed  # run options: checked on --resume
    asker = tpe.TpeAsker(ranges_from_record(search.get("ranges")), seed, startup=sizes[0])
    config_file = out / CONFIG_FILE
    recorded = recorded_points(search, len(points), config_file)
    rounds = tpe.TpeRounds(tuple(sizes), chunks[0].size, tuple(points[:recorded]))

    def on_round(asked: list[GridPoint]) -> None:
        if jax.process_index() != 0:  # process 0 writes the run folder
            return
        saved = loading.load_json(config_file)
        saved["grid"][:len(asked)] = [{"index": p.index, "config": p.config.to_dict()} for p in asked]
        saved["search"]["asked_points"] = len(asked)
        outputs.write_json(config_file, saved)

    return tpe.train_tpe(points, opts.num_seeds, opts.seed, asker, rounds, halving_score, on_round=on_round,
                         devices=devices, run_dir=out, checkpoint_every=opts.checkpoint_every, should_stop=stop,
                         block_rows=opts.gradient_block_rows, on_segment=on_segment)


def recorded_points(search: dict, num_points: int, config_file: Path) -> int:
    """How many of a resumed TPE search's grid points were asked ("asked_points", checked as untrusted data).

    Raises:
      ValueError: one line: not a whole number from 0 to the grid's points.
    """
    asked = search.get("asked_points")
    if isinstance(asked, bool) or not isinstance(asked, int) or not 0 <= asked <= num_points:
        raise ValueError(f"{config_file} is damaged: its search has asked_points {asked!r}, not a whole number "
                         f"from 0 to its {num_points} grid points")
    return asked
