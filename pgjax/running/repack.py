"""Repacking successive halving's survivors: the chunk size of a later rung, chosen by measured cost.

The first rung's chunk size of a compile group serves every rung unless a
smaller batch pays: after a rung, the survivors hold fewer runs, and in the
first rung's chunks the rest of each chunk is padding that costs as much as a
real run. A rung may instead train its runs in the fewest chunks the first
rung's size allows, each as small as that lets it be (rounded up to the
number of devices), at the price of compiling the group's segment program for
that batch shape once:

    choice = choose_chunk_size(runs=36, first_size=108, num_devices=2, slot_steps=22 * 180.0, cost=cost)
    choice.size     # 36 when the compile costs less than the padding saves, else 108

`RungCost` is measured on the first rung (training seconds per rollout-loop
step of one run slot, padding included; the compile of its programs). A
rung's padded slots would each run as many loop steps as the survivors'
batches do: the rung's updates times the survivors' loop steps per update at
the end of the last rung (an underestimate while they learn to last longer).
The model counts a batch's time in proportion to its runs, which holds on a
CPU and overstates what a smaller batch saves on an accelerator with idle
lanes (where the compile also costs more). A choice is recorded in the run folder
(`checkpoints/rung-<k>/chunk_sizes.json`) before the rung trains, so that a
resumed sweep trains the rung with the same chunks whatever it measures.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from pathlib import Path
from typing import Literal

CHUNK_SIZES_FILE = "chunk_sizes.json"  # in checkpoints/rung-<k>/: the rung's chunk size per compile group
# by the cost model; never (the first rung's size); whenever smaller (the flag --repack)
RepackMode = Literal["auto", "off", "always"]
REPACK_MODES = typing.get_args(RepackMode)


@dataclasses.dataclass(frozen=True)
class RungCost:
    """What a compile group's first rung measured.

    Attributes:
      seconds_per_slot_step: training seconds per rollout-loop step of one run
        slot (run seconds / the sum over its updates of the chunk sizes times
        the runs' mean loop steps), padding included.
      compile_seconds: seconds its segment program took to compile (what a
        new batch shape costs again).
    """

    seconds_per_slot_step: float
    compile_seconds: float


@dataclasses.dataclass(frozen=True)
class SizeChoice:
    """A rung's chunk size for one compile group, and why.

    Attributes:
      size: runs per chunk of the rung; first_size: the first rung's.
      runs: the group's real runs in the rung; chunks: how many chunks they fill.
      padded_runs_saved: run slots (x the rung's updates: padded run-updates) no longer trained.
      seconds_saved, compile_seconds: the model's estimates for the fitted size (None: nothing
        measured, or no smaller size to weigh).
    """

    size: int
    first_size: int
    runs: int
    chunks: int
    padded_runs_saved: int
    seconds_saved: float | None = None
    compile_seconds: float | None = None

    @property
    def repacked(self) -> bool:
        return self.size != self.first_size

    def text(self) -> str:
        """e.g. "36 runs in 1 chunk of 36, repacked from 108 (a compile, about 2.1 s, for about 5.3 s of
        padding)" or "12 runs in 1 chunk of 108, padding of 96 kept (a compile, about 4.6 s, for about 1.2 s
        of padding)"."""
        chunks = f"{self.runs} runs in {self.chunks} chunk{'s' * (self.chunks > 1)} of {self.size}"
        estimate = ""
        if self.seconds_saved is not None:
            estimate = (f" (a compile, about {self.compile_seconds:.1f} s, for about {self.seconds_saved:.1f} s "
                        "of padding)")
        if self.repacked:
            return f"{chunks}, repacked from {self.first_size}{estimate}"
        padding = self.chunks * self.size - self.runs
        if not padding:
            return chunks
        return f"{chunks}, padding of {padding} kept{estimate}" if estimate else f"{chunks}, padding of {padding}"


def fitted_size(runs: int, first_size: int, num_devices: int) -> int:
    """The smallest chunk size that trains `runs` in as few chunks as `first_size` does: ceil(runs / chunks),
    rounded up to a multiple of `num_devices` (never above `first_size`)."""
    chunks = math.ceil(runs / first_size)
    return min(first_size, num_devices * math.ceil(math.ceil(runs / chunks) / num_devices))


def choose_chunk_size(runs: int, first_size: int, num_devices: int, slot_steps: float, cost: RungCost | None,
                      mode: str = "auto", compiled: bool = False) -> SizeChoice:
    """The chunk size of a rung's `runs` real runs of one compile group.

    Args:
      runs: real runs in the rung (survivors x seeds); first_size: the first rung's chunk size.
      num_devices: devices a chunk is spread over (sizes are multiples of it).
      slot_steps: rollout-loop steps one run slot is expected to run in the rung
        (its updates x the survivors' loop steps per update).
      cost: the group's `RungCost` (None: not measured, e.g. every first-rung chunk
        was restored from checkpoints; "auto" then repacks whenever it saves padding).
      mode: "auto" (the model: repack when the padded work it saves takes longer
        than a compile), "off" (always `first_size`) or "always" (whenever smaller).
      compiled: the fitted size is compiled already (no compile to count).

    Returns:
      The `SizeChoice`.
    """
    if mode not in REPACK_MODES:
        raise ValueError(f"repack mode must be one of {', '.join(REPACK_MODES)}, got {mode!r}")
    fitted = fitted_size(runs, first_size, num_devices)
    chunks = math.ceil(runs / first_size)
    saved_runs = chunks * (first_size - fitted)
    seconds_saved = compile_seconds = None
    if cost is not None and saved_runs:
        seconds_saved = saved_runs * slot_steps * cost.seconds_per_slot_step
        compile_seconds = 0.0 if compiled else cost.compile_seconds
    if mode == "off" or saved_runs == 0:
        size = first_size
    elif mode == "always" or seconds_saved is None:
        size = fitted
    else:
        size = fitted if seconds_saved > compile_seconds else first_size
    return SizeChoice(size, first_size, runs, chunks, saved_runs if size != first_size else 0, seconds_saved,
                      compile_seconds)


def sizes_file(run_dir: Path, rung: int) -> Path:
    """`<run_dir>/checkpoints/rung-<k>/chunk_sizes.json`."""
    from pgjax.running.run_folder.checkpoints import CHECKPOINT_DIR  # imports JAX: the CLI reads RepackMode before JAX
    return Path(run_dir) / CHECKPOINT_DIR / f"rung-{rung}" / CHUNK_SIZES_FILE


def read_sizes(run_dir: Path, rung: int, first_sizes: dict[int, int], num_devices: int) -> dict[int, int] | None:
    """The chunk sizes a rung of the run in `run_dir` was planned with (None: not planned yet).

    The file is untrusted: every size must be one this plan could have chosen.

    Args:
      first_sizes: compile group -> the first rung's chunk size, for the groups in the rung.

    Raises:
      CheckpointMismatch: the file is not such a record (edited or damaged).
    """
    from pgjax.running.run_folder.checkpoints import CheckpointMismatch  # imports JAX (see sizes_file)
    path = sizes_file(run_dir, rung)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        sizes = {int(g): size for g, size in record.items()} if isinstance(record, dict) else None
    except (OSError, ValueError, UnicodeDecodeError):
        sizes = None
    if sizes is None or set(sizes) != set(first_sizes) or not all(
            type(size) is int and 1 <= size <= first_sizes[g] and size % num_devices == 0
            for g, size in sizes.items()):
        raise CheckpointMismatch(run_dir, f"{path.relative_to(run_dir).as_posix()} is not the chunk sizes of rung "
                                          f"{rung + 1}'s compile groups {sorted(first_sizes)}, each a multiple of "
                                          f"{num_devices} up to its first rung's")
    return sizes


def write_sizes(run_dir: Path, rung: int, sizes: dict[int, int]) -> None:
    """Record a rung's chunk sizes (compile group -> size) before it trains."""
    from pgjax.running.run_folder.checkpoints import write_record  # imports JAX (see sizes_file)
    write_record(sizes_file(run_dir, rung), {str(g): size for g, size in sorted(sizes.items())})
