"""The grid points a training command asks for: the settings given, listed values and ranges, over a preset.

    given = given_settings(args)                    # field name -> values, or a range's text
    search = search_of(given, num_samples=32)       # the ranges and how to draw from them (or None)
    points = resolve_grid("default", given, search) # every combination, each a `GridPoint`

Flags and fields are declared in `pgjax.commands.options`; errors here name the flags
(`pgjax.commands.options.with_flag_names`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from pgjax.algo.config import HYPERPARAMS_FIELDS, StaticConfig, is_static, setting_type
from pgjax.algo.presets import preset_config
from pgjax.algo.validation import unused_settings
from pgjax.commands.checks import check_seeds
from pgjax.commands.options import WORDS_VALUED, flag, rangeable, with_flag_names
from pgjax.running import grid
from pgjax.running.search import Search, looks_like_range, parse_range

# Most points --num-samples draws in one command: each is a grid point of --num-seeds runs that is drawn, validated
# (about 0.1 ms each) and trained apart, so 65,536 take seconds before training starts; a larger search is
# several commands (another --sampler-seed each).
MAX_SAMPLES = 2**16


def given_settings(args: Any) -> dict[str, Any]:
    """The settings given on the command line: field name -> value (tuple of values where it sweeps).

    A numeric setting's values are numbers of its type, and a range stays its
    text ("1e-3:1e-1:log", for `search_of`).
    """
    given = {}
    for f in dataclasses.fields(args.settings):
        value = getattr(args.settings, f.name)
        if value is None or value is False:  # not given (a switch: off)
            continue
        if value is True:  # a switch given: its one value
            value = (True,)
        if rangeable(f.name):
            kind = setting_type(f.name)[1]
            value = tuple(v if ":" in v else kind(v) for v in value)
        elif f.name in WORDS_VALUED:
            value = (tuple(value),)  # one value (the factory's arguments), not a sweep
        given[f.name] = value
    return given


def ranges_of(given: dict[str, Any]) -> dict[str, Any]:
    """The ranges among the settings given (`pgjax.running.search.parse_range` of each), by field name.

    Raises:
      ValueError: (naming the flags) a malformed range, a range given with other values of the same
        flag, or a range-like value of a setting that takes none.
    """
    ranges = {}
    for name, values in given.items():
        texts = [v for v in values if isinstance(v, str) and ":" in v] if isinstance(values, tuple) else []
        if not rangeable(name):
            shown = values if isinstance(values, tuple) else (values,)
            ranged = [v for v in shown if isinstance(v, str) and looks_like_range(v)]
            if ranged:
                raise ValueError(with_flag_names(f"{name} takes no range ('{ranged[0]}'): ranges LO:HI are for "
                                                 "numeric settings (FLOAT... and INT... flags); list its values"))
            continue
        if not texts:
            continue
        if len(values) > 1:
            listed = " ".join(str(v) for v in values)
            raise ValueError(with_flag_names(f"{name} takes listed values or one range, not both ({listed}): give "
                                             "the range alone (its drawn points cross the other flags' values)"))
        try:
            ranges[name] = parse_range(texts[0], integer=setting_type(name)[1] is int)
        except ValueError as error:
            raise ValueError(with_flag_names(f"{name}: {error}")) from None
    return ranges


def search_of(given: dict[str, Any], num_samples: int | None, sampler: str = "sobol",
              sampler_seed: int | None = None, seed: int = 0) -> Search | None:
    """The search the settings' ranges and --num-samples ask for; None without either.

    Args:
      given: `given_settings`'s dict (ranges as text).
      num_samples, sampler, sampler_seed: those flags (`RunOptions`); seed: --seed,
        the sampler's seed where `sampler_seed` is None.

    Raises ValueError (naming the flags and how to fix it) for a malformed range,
    a range given with other values of the same flag, a range without
    --num-samples, --num-samples (or --sampler random, --sampler-seed) without a
    range, num_samples < 1, and a range-like value of a setting that takes none.
    """
    ranges = ranges_of(given)
    if num_samples is None:
        if ranges:
            name, text = next((n, given[n][0]) for n in ranges)
            raise ValueError(with_flag_names(f"{name} {text} is a range: add --num-samples N to draw N points "
                                             "from it (or list values instead)"))
        if sampler != "sobol" or sampler_seed is not None:
            raise ValueError("--sampler and --sampler-seed apply to --num-samples: give --num-samples N and a "
                             "range such as --lr 1e-3:1e-1:log")
        return None
    if num_samples < 1:
        raise ValueError(f"--num-samples must be >= 1, got {num_samples}")
    if num_samples > MAX_SAMPLES:
        raise ValueError(f"--num-samples {num_samples:,} is more than the {MAX_SAMPLES:,} points one command draws "
                         "(each is a grid point trained apart): draw fewer, or split the search over several "
                         "commands with another --sampler-seed each")
    if not ranges:
        raise ValueError(f"--num-samples {num_samples} draws points from ranges and no setting has one: give a "
                         "range such as --lr 1e-3:1e-1:log (or leave --num-samples out)")
    if sampler_seed is not None:
        check_seeds("--sampler-seed", sampler_seed)
    else:
        check_seeds("--seed", seed)
    search = Search(ranges, num_samples, sampler, seed if sampler_seed is None else sampler_seed)
    if sampler == "tpe" or not any(r.integer for r in ranges.values()):  # only integer ranges can repeat a point
        # (TPE's points are asked while training, `pgjax.running.tpe`)
        return search
    points = [tuple(point.values()) for point in search.points()]
    if len(set(points)) < len(points):  # its runs would train twice
        integers = " ".join(f"{flag(name)} {given[name][0]}" for name, r in ranges.items() if r.integer)
        raise ValueError(f"--num-samples {num_samples} draws the same point more than once from the integer "
                         f"range{'s' * (integers.count(':') > 1)} {integers}: draw fewer points, or list its values")
    return search


def parse_widths(value: str, name: str = "hidden") -> tuple[int, ...]:
    """ "64,64" or "64x64" -> (64, 64); ValueError naming the flag otherwise."""
    try:
        widths = tuple(int(w) for w in value.replace("x", ",").split(","))
    except ValueError:
        raise ValueError(f"{flag(name)} takes widths like 32 or 64,64, got '{value}'") from None
    if not widths or min(widths) < 1:
        raise ValueError(f"{flag(name)} takes positive widths like 32 or 64,64, got '{value}'")
    return widths


def check_no_repeats(name: str, values: list) -> None:
    """Refuse a value listed twice for swept setting `name` (it would train the same grid point twice).

    Numeric settings are compared as training computes them, in float32 (0.01 and 0.0100000001 are one value).

    Raises:
      ValueError: one line naming the flag and the value.
    """
    is_float = name in HYPERPARAMS_FIELDS
    seen: dict[Any, Any] = {}
    for value in values:
        with np.errstate(over="ignore"):  # a value float32 cannot hold: Hyperparams.validate names it
            key = np.float32(value).item() if is_float else value
        if key in seen:
            shown = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
            same = "" if seen[key] == value else f" ({seen[key]} and {value} are one value in float32)"
            raise ValueError(with_flag_names(f"{name} lists {shown} twice{same}: each value trains its own grid "
                                             "point; give each value once"))
        seen[key] = value


def check_points_fit(base: Any, num_points: int, num_seeds: int) -> None:
    """Refuse, before any point is drawn, a grid whose results could not fit in this host's memory.

    The estimate of `pgjax.running.memory.check_host_memory` (which checks the grid again once drawn), taken for
    `num_points` grid points of `base`'s static settings. Only too many grid points are refused here; where
    not even one fits, `check_host_memory` blames --num-updates, the network or --num-seeds once the (few)
    points are made.

    Raises:
      ValueError: one line with the figures and how many grid points fit.
    """
    from pgjax.running import footprint, memory

    budget_free = memory.results_budget(num_points * num_seeds * base.static.num_updates)
    if budget_free is None:
        return
    budget, available = budget_free
    per_point = num_seeds * memory.result_bytes(base.static)
    if budget < per_point:  # not even one grid point: `check_host_memory` names what is too big, once drawn
        return
    if num_points * per_point > budget:
        raise ValueError(
            f"{num_points:,} grid points x {num_seeds:,} seeds would need about "
            f"{footprint.format_bytes(num_points * per_point)} of host memory for their results and "
            f"{footprint.format_bytes(available)} is free; at most {int(budget // per_point):,} grid points fit "
            "(give a smaller --num-samples, fewer listed values or fewer --num-seeds)")


def resolve_grid(preset: str, given: dict[str, Any], search: Search | None = None,
                 num_seeds: int | None = None) -> list[grid.GridPoint]:
    """The grid points: `preset` on `given["env"]` with every given setting put over it, one per combination.

    With a `search` (`search_of`), the ranged settings of `given` take the
    search's drawn points instead, each crossed with every combination of the
    listed values (`pgjax.running.grid.expand_grid`).

    Args:
      preset: the preset's name; given: `given_settings`'s dict; search: `search_of`'s search, or None;
      num_seeds: --num-seeds, to refuse before drawing a grid whose results would not fit (None: not checked).

    Returns:
      The grid points, each validated.

    Raises:
      ValueError: (naming flags) for values outside their domain (a range's
        ends included, and values training's float32 cannot hold), a value listed
        twice, settings that cannot work together, a setting given explicitly that
        does not apply to any grid point (e.g. --squash with Discrete actions), and
        a grid too large for the host's memory.
    """
    ranges = search.ranges if search is not None else {}
    given_ranges = {name: given[name][0] for name in ranges}
    given = {name: values for name, values in given.items() if name not in ranges}
    env, num_updates, num_episodes = given.pop("env", None), given.pop("num_updates", None), \
        given.pop("num_episodes", None)
    base = preset_config(preset, env)
    if num_updates is not None:
        base = dataclasses.replace(base, static=dataclasses.replace(base.static, num_updates=num_updates))
    static_values, numeric_values = {}, {}
    for name, values in given.items():
        if name in ("hidden", "conv"):
            values = [parse_widths(v, name) for v in values]
        check_no_repeats(name, list(values))
        (static_values if is_static(name) else numeric_values)[name] = values
    try:
        for name, value_range in ranges.items():  # the ends first: a message names the range's, not a drawn value
            try:
                grid.expand_grid(base, {}, {}, [{name: value_range.low}, {name: value_range.high}])
            except ValueError as error:
                raise ValueError(f"{error} (an end of the range {given_ranges[name]})") from None
        if num_seeds is not None:
            budget = base if num_episodes is None else dataclasses.replace(base, static=dataclasses.replace(
                base.static, num_updates=max(1, math.ceil(num_episodes / base.static.episodes_per_update))))
            check_points_fit(budget, math.prod(len(v) for v in given.values() if isinstance(v, tuple))
                             * (search.num_samples if search else 1), num_seeds)
        points = grid.expand_grid(base, static_values, numeric_values, search.points() if search else None)
    except ValueError as error:
        raise ValueError(with_flag_names(str(error))) from None
    points = with_episode_budget(points, num_episodes, num_updates)
    check_settings_apply(points, [*given, *ranges])
    return points


def with_episode_budget(points: list[grid.GridPoint], num_episodes: int | None,
                        num_updates: int | None) -> list[grid.GridPoint]:
    """`points` with --num-episodes turned into each point's num_updates (ceil(episodes / episodes_per_update)).

    Raises:
      ValueError: --num-episodes with --num-updates, or below 1.
    """
    if num_episodes is None:
        return points
    if num_updates is not None:
        raise ValueError("give --num-updates or --num-episodes, not both")
    if num_episodes < 1:
        raise ValueError(f"--num-episodes must be >= 1, got {num_episodes}")
    return [
        dataclasses.replace(p, config=dataclasses.replace(p.config, static=dataclasses.replace(
            p.config.static, num_updates=math.ceil(num_episodes / p.config.static.episodes_per_update))))
        for p in points
    ]


def check_settings_apply(points: list[grid.GridPoint], names: list[str]) -> None:
    """Refuse a setting given explicitly that applies to no grid point (e.g. --squash with Discrete actions).

    Raises:
      ValueError: (naming the flag) why it does not apply, and to leave it out.
    """
    from pgjax.algo.envs import env_for

    static = points[0].config.static
    continuous = env_for(static).action_kind == "continuous"
    for name in names:
        reasons = [unused_settings(p.config.static, continuous).get(name) for p in points]
        if all(reasons):
            actions = "Box" if continuous else "Discrete"
            raise ValueError(with_flag_names(f"{name} {reasons[0]} (here: {static.env}, {actions} actions, "
                                             f"{_describe(static, name)}); leave it out"))


def _describe(static: StaticConfig, name: str) -> str:
    """The settings that make `name` unused, for its error message."""
    if name == "conv":
        return f"--network {static.network}"
    if name == "gae_lambda":
        return f"--advantage {static.advantage}, --baseline {static.baseline}"
    if name in ("squash", "init_log_std"):
        return "a categorical policy"
    return f"--baseline {static.baseline}"
