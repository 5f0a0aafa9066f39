"""Search over ranges: a setting's range `LO:HI` or `LO:HI:log`, and the points drawn from ranges.

Pure functions of the ranges and the sampler's seed. A range is uniform
("linear") or log-uniform ("log", LO > 0). `draw` maps points of the unit cube
[0, 1)^D, one dimension per range, onto the ranges:

* "sobol" (the default): scrambled Sobol' points (`scipy.stats.qmc.Sobol`,
  seeded with the sampler's seed). Their balance (every dyadic slice of every
  dimension holds its share of the points) holds for a power of two of them;
  for another N the first N of the next power of two's points are taken (what
  `Sobol.random(N)` draws, without its warning; `balance_note` says so).
* "random": plain independent uniform points (`numpy.random.default_rng(seed)`).
* "tpe": not drawn here: Optuna's TPE asks them round by round from the
  results of the rounds before (`pgjax.running.tpe`).

A float range maps u in [0, 1) to LO + u (HI - LO), or to exp(log LO + u (log HI -
log LO)) on the log scale. An integer setting's range is drawn over
[LO - 0.5, HI + 0.5] (log-uniformly on the log scale) and rounded to the nearest
integer (halves up), then kept within [LO, HI], so each integer from LO to HI can
come out (as Optuna's integer distributions do).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Literal

import numpy as np

SAMPLERS = ("sobol", "random", "tpe")
Sampler = Literal["sobol", "random", "tpe"]  # "tpe": drawn round by round from the results (`pgjax.running.tpe`)
Scale = Literal["linear", "log"]


@dataclasses.dataclass(frozen=True)
class Range:
    """The interval a setting's values are drawn from.

    Attributes:
      low, high: the ends, low < high (both > 0 on the log scale).
      scale: "linear" (uniform) or "log" (log-uniform).
      integer: whether the setting is an integer (drawn values are rounded).
    """

    low: float
    high: float
    scale: Scale = "linear"
    integer: bool = False

    def to_dict(self) -> dict:
        """{"low", "high", "scale"} (as summary.json and config.json record it), with "integer": true for integers."""
        return {"low": self.low, "high": self.high, "scale": self.scale, **({"integer": True} if self.integer else {})}

    def values(self, unit: np.ndarray) -> list[float] | list[int]:
        """The values at `unit` ([N] in [0, 1)): floats, or ints for an integer range (module docstring)."""
        low, high = (self.low - 0.5, self.high + 0.5) if self.integer else (self.low, self.high)
        if self.scale == "log":
            values = np.exp(math.log(low) + unit * (math.log(high) - math.log(low)))
        else:
            values = low + unit * (high - low)
        if self.integer:
            return [int(v) for v in np.clip(np.floor(values + 0.5), self.low, self.high)]
        return [float(v) for v in np.clip(values, self.low, self.high)]


def looks_like_range(text: str) -> bool:
    """Whether `text` is meant as a range: two or three parts split by ":", the first two numbers."""
    parts = text.split(":")
    if len(parts) not in (2, 3):
        return False
    try:
        float(parts[0]), float(parts[1])
    except ValueError:
        return False
    return True


def parse_range(text: str, integer: bool = False) -> Range:
    """ "LO:HI" -> a uniform `Range`, "LO:HI:log" -> a log-uniform one.

    Raises ValueError (a message that names the text, not the flag) for another
    shape, ends that are not numbers (whole numbers if `integer`) or not finite,
    LO >= HI, or LO <= 0 on the log scale.
    """
    parts = text.split(":")
    shape = f"a range is LO:HI (uniform) or LO:HI:log (log-uniform), got '{text}'"
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "log"):
        raise ValueError(shape)
    try:
        low, high = (int(p) if integer else float(p) for p in parts[:2])
    except ValueError:
        kind = "whole numbers" if integer else "numbers"
        raise ValueError(f"{shape}: LO and HI must be {kind}") from None
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"the range '{text}' must have finite ends")
    if not low < high:
        raise ValueError(f"the range '{text}' needs LO < HI (for one value, give the value)")
    scale = "log" if len(parts) == 3 else "linear"
    if scale == "log" and not low > 0:
        raise ValueError(f"the log range '{text}' needs LO > 0")
    return Range(low, high, scale, integer)


def ranges_from_record(record: object) -> dict[str, Range]:
    """The ranges of a search's record (`Search.record`'s "ranges", read back from a file: untrusted).

    Raises:
      ValueError: not {setting: {"low", "high", "scale"[, "integer"]}} of ranges `parse_range` takes.
    """
    shape = "a search's ranges are {setting: {\"low\", \"high\", \"scale\"}}"
    if not isinstance(record, dict) or not record:
        raise ValueError(f"{shape}, got {type(record).__name__}")
    ranges = {}
    for name, entry in record.items():
        if not isinstance(entry, dict) or not {"low", "high", "scale"} <= set(entry) <= {"low", "high", "scale",
                                                                                        "integer"}:
            raise ValueError(f"{shape}; {name!r} has {entry!r}")
        integer, ends = entry.get("integer", False), (entry["low"], entry["high"])
        if integer is not True and integer is not False or entry["scale"] not in ("linear", "log") or any(
                isinstance(end, bool) or not isinstance(end, int if integer else (int, float)) for end in ends):
            raise ValueError(f"{shape}; {name!r} has {entry!r}")
        ranges[name] = parse_range(f"{ends[0]!r}:{ends[1]!r}" + (":log" if entry["scale"] == "log" else ""),
                                   integer)
    return ranges


def unit_points(num_samples: int, dims: int, sampler: Sampler, seed: int) -> np.ndarray:
    """`num_samples` points of [0, 1)^dims: [num_samples, dims] float64 (module docstring).

    Raises ValueError for num_samples < 1, dims < 1 or an unknown sampler.
    """
    if num_samples < 1 or dims < 1:
        raise ValueError(f"need at least one sample and one range, got {num_samples} and {dims}")
    if sampler == "sobol":
        from scipy.stats import qmc  # scipy: only when drawing

        engine = qmc.Sobol(dims, scramble=True, rng=np.random.default_rng(seed))
        return engine.random_base2(math.ceil(math.log2(num_samples)))[:num_samples]
    if sampler == "random":
        return np.random.default_rng(seed).random((num_samples, dims))
    if sampler == "tpe":
        raise ValueError("TPE's points are asked round by round from the results: pgjax.running.tpe")
    raise ValueError(f"unknown sampler {sampler!r}; choose from {', '.join(SAMPLERS)}")


def draw(ranges: Mapping[str, Range], num_samples: int, sampler: Sampler, seed: int) -> list[dict]:
    """`num_samples` points over `ranges`: one {setting: value} per point, the settings in `ranges`' order."""
    unit = unit_points(num_samples, len(ranges), sampler, seed)
    columns = {name: r.values(unit[:, d]) for d, (name, r) in enumerate(ranges.items())}
    return [{name: columns[name][i] for name in ranges} for i in range(num_samples)]


def balance_note(num_samples: int, sampler: Sampler) -> str | None:
    """For Sobol' points whose number is not a power of two: that a power of two keeps their balance."""
    if sampler != "sobol" or num_samples & (num_samples - 1) == 0:
        return None
    below, above = 2 ** (num_samples.bit_length() - 1), 2 ** num_samples.bit_length()
    return (f"--num-samples {num_samples} is not a power of two: Sobol' points are balanced over the ranges for "
            f"{below} or {above} (the first {num_samples} of {above} are taken)")


@dataclasses.dataclass(frozen=True)
class Search:
    """A search: ranges of settings, how many points to draw from them and how.

    Attributes:
      ranges: setting (field name) -> its `Range`, in flag order.
      num_samples: points drawn.
      sampler: "sobol", "random" or "tpe" (whose points `pgjax.running.tpe` asks while training).
      seed: the sampler's seed.
    """

    ranges: dict[str, Range]
    num_samples: int
    sampler: Sampler = "sobol"
    seed: int = 0

    def points(self) -> list[dict]:
        """The drawn points, {setting: value} each (`draw`)."""
        return draw(self.ranges, self.num_samples, self.sampler, self.seed)

    def record(self) -> dict:
        """What config.json and summary.json keep under "search": sampler, seed, num_samples, ranges."""
        return {"sampler": self.sampler, "seed": self.seed, "num_samples": self.num_samples,
                "ranges": {name: r.to_dict() for name, r in self.ranges.items()}}
