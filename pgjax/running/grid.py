"""Hyperparameter grids: from lists of values to grid points, compile groups and paired runs.

A sweep is every combination of the values given (the grid points) times
`num_seeds` seeds. Run k of every grid point uses seed `seed + k`, so grid points
are compared on the same seeds (paired). Grid points that share their static
settings form one compile group: their numeric settings are stacked and
`jax.vmap`-ped under one compile.

A search (`pgjax.running.search`) adds points drawn from ranges: each drawn
point is crossed with every combination of the listed values, and is a grid
point like the others.

Run order (the index of a run in summary.json and metrics): grid point by grid
point, seeds in order within each; grid points in `itertools.product` order of
the static values first, then the numeric ones, then the drawn points.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pgjax.algo.config import Config, Hyperparams, StaticConfig, is_static
from pgjax.algo.validation import validate_static


@dataclasses.dataclass(frozen=True)
class GridPoint:
    """One combination of settings; its runs are `num_seeds` seeds of it."""

    index: int
    config: Config

    def hyperparameters(self) -> dict:
        """Every setting, static and numeric, as one flat dict."""
        return {**dataclasses.asdict(self.config.static), **dataclasses.asdict(self.config.hparams)}


def expand_grid(
    base: Config,
    static_values: Mapping[str, Sequence] | None = None,
    numeric_values: Mapping[str, Sequence[float]] | None = None,
    samples: Sequence[Mapping[str, Any]] | None = None,
) -> list[GridPoint]:
    """Every combination of the given values, crossed with the drawn points, put over `base`.

    Args:
      base: the settings not swept.
      static_values: `StaticConfig` field -> values to try (e.g. {"hidden": [(32,), (128,)]}).
      numeric_values: `Hyperparams` field -> values to try (e.g. {"learning_rate": [1e-3, 1e-2]}).
      samples: drawn points, {field of either class: value} each
        (`pgjax.running.search.draw`), none of their fields in the values above;
        each combination of the values is taken with every sample in turn.

    Returns:
      The grid points, each validated (ValueError names the bad value; gradient_stats varied).
    """
    static_values = {k: list(v) for k, v in (static_values or {}).items()}
    numeric_values = {k: list(v) for k, v in (numeric_values or {}).items()}
    for name, values in {**static_values, **numeric_values}.items():
        if not values:
            raise ValueError(f"no values given for {name}")
    if len(set(static_values.get("gradient_stats", ()))) > 1 or any("gradient_stats" in s for s in samples or ()):
        raise ValueError("gradient_stats takes one value for every grid point (it records statistics of training, "
                         "which it leaves as it is): give it once")
    samples = list(samples) if samples else [{}]
    points = []
    for static_combo in itertools.product(*static_values.values()):
        static = dataclasses.replace(base.static, **dict(zip(static_values, static_combo)))
        validate_static(static)
        for numeric_combo in itertools.product(*numeric_values.values()):
            hparams = base.hparams.replace(**dict(zip(numeric_values, numeric_combo)))
            hparams.validate()
            for sample in samples:
                drawn_static = {k: v for k, v in sample.items() if is_static(k)}
                point_static = dataclasses.replace(static, **drawn_static) if drawn_static else static
                validate_static(point_static)
                point_hparams = hparams.replace(**{k: v for k, v in sample.items() if not is_static(k)})
                point_hparams.validate()
                points.append(GridPoint(len(points), Config(point_static, point_hparams)))
    return points


def compile_groups(points: Sequence[GridPoint]) -> list[list[GridPoint]]:
    """Grid points grouped by their static settings (one compile each), in grid order."""
    groups: dict[StaticConfig, list[GridPoint]] = {}
    for point in points:
        groups.setdefault(point.config.static, []).append(point)
    return list(groups.values())


def run_index(point: GridPoint, seed_index: int, num_seeds: int) -> int:
    """Index of seed `seed_index` of `point` among all runs of the sweep."""
    return point.index * num_seeds + seed_index


def group_runs(
    points: Sequence[GridPoint], num_seeds: int, first_seed: int
) -> tuple[np.ndarray, np.ndarray, Hyperparams]:
    """The runs of a compile group, in run order.

    Returns:
      (run_indices [R], seeds [R], hparams with float32 leaves [R]) for
      R = len(points) * num_seeds; seed k of every point is `first_seed + k`.
    """
    runs = np.array([run_index(p, k, num_seeds) for p in points for k in range(num_seeds)], np.int64)
    seeds = np.tile(np.arange(first_seed, first_seed + num_seeds, dtype=np.int64), len(points))
    fields = [f.name for f in dataclasses.fields(Hyperparams)]
    hparams = Hyperparams(**{
        name: np.repeat(np.array([getattr(p.config.hparams, name) for p in points], np.float32), num_seeds)
        for name in fields
    })
    return runs, seeds, hparams


def varied_settings(settings: Sequence[Mapping[str, Any]]) -> list[str]:
    """Names of the settings whose values differ between flat settings dicts, in first-seen order.

    Args:
      settings: one dict per grid point (`GridPoint.hyperparameters()`, or the
        "hyperparameters" of summary.json's groups); a name missing from a dict
        counts as None there, and a tuple equals the list of its items (as JSON
        writes it).

    Returns:
      The names (for labels and table columns); [] for fewer than two dicts.
    """
    names = list(dict.fromkeys(name for s in settings for name in s))
    return [name for name in names if len({_comparable(s.get(name)) for s in settings}) > 1]


def _comparable(value: Any) -> Any:
    """A hashable stand-in for a setting's value: lists and tuples become tuples, recursively."""
    if isinstance(value, (list, tuple)):
        return tuple(_comparable(v) for v in value)
    return value
