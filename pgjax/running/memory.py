"""How much memory a sweep needs, how much the devices have, and how many runs fit at once.

What one run holds is estimated from the program's shapes by `pgjax.running.footprint`
(its docstring lists the parts: state, gradients, trajectory, step arrays,
metrics, activations); here those estimates are planned into chunks that fit
the devices' free memory.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.extend.core

from pgjax.algo.config import Config, StaticConfig
from pgjax.running import footprint
from pgjax.running.devices import backend_choices, host_available_bytes
from pgjax.running.footprint import USABLE_FRACTION, RunShapes, format_bytes


@functools.lru_cache(maxsize=64)
def run_shapes(static: StaticConfig) -> RunShapes:
    """The `RunShapes` of a run with these static settings (numeric settings change no shape).

    Raises:
      ValueError: settings the trainer rejects (`make_trainer`).
    """
    from pgjax.algo.trainer import make_trainer

    config = Config(static)
    return footprint.trainer_shapes(make_trainer(config), config)


def run_bytes(static: StaticConfig, segment_length: int) -> int:
    """Estimated device memory of one run while it trains, in bytes.

    Args:
      static: the run's static settings (environment, network, episodes per update, baseline).
      segment_length: L, updates per compiled segment (its metrics are [L, ...]).
    """
    return footprint.run_total(run_shapes(static), segment_length)


def device_bytes(static: StaticConfig, block_rows: int | None = None) -> int:
    """Estimated memory per device that does not grow with its runs, in bytes: one gradient block's values.

    Args:
      static: the runs' static settings.
      block_rows: steps a gradient block takes at once; None: what training
        takes, `pgjax.algo.fast.blocks.default_block_rows()`.
    """
    return footprint.block_total(run_shapes(static), block_rows)


def available_bytes(devices: list[Any]) -> int | None:
    """Free memory for arrays on `devices`, in bytes, summed over them.

    An accelerator reports its own free memory (`Device.memory_stats()`:
    "bytes_limit" less "bytes_in_use"); CPU devices share their host's
    available memory (Linux's MemAvailable), so each host counts once, as does
    an accelerator that reports no limit. Devices of other processes
    (`jax.distributed`) are assumed to have what this process's have.
    None if unknown.
    """
    local = [d for d in devices if d.process_index == jax.process_index()]
    hosts = len({d.process_index for d in devices})
    own = [footprint.own_free_bytes(device) for device in local]
    if None in own:
        host = host_available_bytes()
        return None if host is None else hosts * host
    return sum(own) * len(devices) // max(1, len(local))


# Trajectory buffers of a chunk from this size on get their padding measured for the plan line (one rollout
# of the initial policy, `initial_padding`); below it the figure is not worth the rollout's compile.
PADDING_SHOWN_FROM_BYTES = 64 * 2**20


def biggest_chunk(estimates: list[dict]) -> tuple[int, int, int]:
    """(group index, bytes, trajectory-buffer bytes) of the largest chunk of `plan_chunks`'s estimates; the
    buffers are what grows with the episodes' step limit (`pgjax.running.footprint.growing_total`)."""
    sizes = [e["chunk_size"] * e["run_bytes"] + e["device_bytes"] for e in estimates]
    index = max(range(len(estimates)), key=sizes.__getitem__)
    biggest = estimates[index]
    return index, sizes[index], biggest["chunk_size"] * footprint.growing_total(RunShapes(**biggest["parts"]))


def chunk_memory_text(estimates: list[dict], padding: float | None = None) -> str:
    """"memory about 9.7 GiB per chunk (97% trajectory buffers, 95% of them padding under the initial
    policy)": `biggest_chunk`'s figures, and `initial_padding` where given."""
    _, largest, buffers = biggest_chunk(estimates)
    padded = "" if padding is None else f", {padding:.1%} of them padding under the initial policy"
    return f"memory about {format_bytes(largest)} per chunk ({buffers / largest:.0%} trajectory buffers{padded})"


def initial_padding(config: Config, seed: int = 0) -> float:
    """The share of one update's trajectory buffer [T, E] that a fresh policy's episodes leave as padding.

    One run initialised from `seed` collects one update's E episodes of up to T steps (compiled and run on
    the default device), and the share is 1 - steps / (T E): what an episode cap (`--max-episode-steps`)
    would save in the first updates. A policy that learns to survive longer fills more of the buffer.
    """
    from pgjax.algo.envs import env_for
    from pgjax.algo.trainer import make_trainer

    _, collect = footprint.update_collect(env_for(config.static), config)
    init_key, collect_key = jax.random.split(jax.random.key(seed))
    params = jax.jit(make_trainer(config).init)(init_key, config.hparams.as_arrays()).params
    return 1.0 - float(jax.jit(collect)(params, collect_key).valid.mean())


def default_max_parallel(devices: list[Any]) -> int | None:
    """The cap on runs at once when the user gives none: `BackendChoices.runs_per_device` of the
    devices' platform times their number (64 per CPU device; None, memory alone, on accelerators)."""
    platforms = {d.platform for d in devices}
    if len(platforms) != 1:
        return None
    per_device = backend_choices(platforms.pop()).runs_per_device
    return None if per_device is None else per_device * len(devices)


class OneRunTooBig(ValueError):
    """Not even one run per device fits the memory budget (`chunk_size`); `fitting_advice` says what would."""


def fitting_advice(problem: str, static: StaticConfig, per_run: int, num_devices: int, available: int,
                   block_rows: int | None = None) -> str:
    """`problem`, then the flags that would bring one run per device under the budget, each with the memory
    it would take (`pgjax.running.footprint.fitting_advice`); `per_run` is `run_bytes` of the run as planned."""
    from pgjax.algo.envs import env_for

    budget = USABLE_FRACTION * available / num_devices  # per device, for one run and one gradient block
    return footprint.fitting_advice(problem, run_shapes(static), per_run, budget, env_for(static).max_steps,
                                    static.episodes_per_update, block_rows)


def chunk_size(
    num_runs: int,
    per_run: int,
    per_device: int,
    num_devices: int,
    available: int | None,
    max_parallel: int | None = None,
) -> int:
    """How many runs to train at once: a multiple of `num_devices`, within memory and `max_parallel`.

    Args:
      num_runs: runs of the group still to train.
      per_run, per_device: `run_bytes` and `device_bytes`.
      available: `available_bytes` (None: no memory limit known).
      max_parallel: the user's cap on runs at once (None: none).

    Raises:
      ValueError: `max_parallel` is below the number of devices or asks for more
        memory than there is, or not even one run per device fits; the message
        says what it would need and what to set.
    """
    if max_parallel is not None and max_parallel < num_devices:
        raise ValueError(
            f"--max-parallel {max_parallel} is below the {num_devices} devices that train at once; "
            f"set it to at least {num_devices}"
        )
    wanted = min(num_runs, max_parallel) if max_parallel else num_runs
    wanted = num_devices * math.ceil(wanted / num_devices)
    if available is None:
        return wanted
    budget = USABLE_FRACTION * available - num_devices * per_device
    fits = int(budget // per_run) // num_devices * num_devices if budget > 0 else 0
    if fits < num_devices:
        raise OneRunTooBig(
            f"one run per device needs {format_bytes(num_devices * (per_run + per_device))} but only "
            f"{format_bytes(available)} is free (half of it is planned for)"
        )
    if max_parallel is not None and wanted > fits:
        raise ValueError(
            f"--max-parallel {max_parallel} needs about {format_bytes(wanted * per_run)} but only "
            f"{format_bytes(available)} is free (half of it is used); set --max-parallel {fits} or less, "
            "or leave it out to chunk automatically"
        )
    return min(wanted, fits)


# Results (metrics and final states of every run) may take this share of the host's free memory;
# the chunks in training and the copies made while writing the files need the rest.
RESULTS_FRACTION = 0.25
# Below this many run-updates the results cannot come near the host's memory, and their size is not checked.
CHECKED_RUN_UPDATES = 10**6


def result_bytes(static: StaticConfig) -> int:
    """Host bytes of one run's results: its final `RunState` and its metrics of every update."""
    shapes = run_shapes(static)
    return shapes.state + static.num_updates * shapes.metrics


def results_budget(run_updates: int) -> tuple[float, int] | None:
    """(the host bytes a sweep's results may take, the host's free bytes), or None where they are not checked.

    Args:
      run_updates: runs x updates of the sweep; below `CHECKED_RUN_UPDATES` nothing is checked.

    Returns:
      None for a small sweep or where the free memory cannot be told; else
      (`RESULTS_FRACTION` of the free bytes, the free bytes).
    """
    if run_updates < CHECKED_RUN_UPDATES:
        return None
    available = host_available_bytes()
    return None if available is None else (RESULTS_FRACTION * available, available)


def check_host_memory(groups: list[list[Any]], num_seeds: int) -> None:
    """Raise ValueError if the sweep's results could not fit in this host's memory, blaming what is too big.

    One run alone too big names --num-updates (its metrics) or the network (its final state); one seed of every
    grid point too big names the grid points; else it says how many --num-seeds fit.

    `groups`: the sweep's compile groups (lists of `pgjax.running.grid.GridPoint`).
    A run's results are its metrics ([U] per `Metrics` field of one update) and
    its final `RunState` (`pgjax.running.run_shapes`, which the chunk
    plan reads too); they stay on the host until the files are written. Small
    sweeps are not checked.
    """
    budget_free = results_budget(sum(len(g) * num_seeds * g[0].config.static.num_updates for g in groups))
    if budget_free is None:
        return
    budget, available = budget_free
    per_seed = sum(len(group) * result_bytes(group[0].config.static) for group in groups)
    total = num_seeds * per_seed
    if total <= budget:
        return
    free = f"{format_bytes(available)} is free"
    static = max((g[0].config.static for g in groups), key=result_bytes)
    shapes = run_shapes(static)
    if result_bytes(static) > budget:  # one run alone: blame what makes it big
        if static.num_updates * shapes.metrics > shapes.state:
            runs = sum(len(g) for g in groups) * num_seeds
            fits = max(0, int((budget - runs * shapes.state) // (runs * shapes.metrics)))
            raise ValueError(
                f"the metrics of one run over --num-updates {static.num_updates:,} alone would need about "
                f"{format_bytes(static.num_updates * shapes.metrics)} of host memory and {free}; --num-updates "
                f"{fits:,} or fewer fit the {runs:,} runs")
        raise ValueError(f"the final state of one run (its network: --hidden {static.hidden}) alone would need "
                         f"about {format_bytes(shapes.state)} of host memory and {free}: give a smaller network")
    num_points = sum(len(g) for g in groups)
    if per_seed > budget:  # one seed of every grid point: blame the grid
        raise ValueError(
            f"the results of {num_points:,} grid points would need about {format_bytes(per_seed)} of host memory "
            f"with one seed each and {free}; about {int(num_points * budget // per_seed):,} grid points fit (give a "
            "smaller --num-samples or fewer listed values)")
    raise ValueError(
        f"the results of {num_seeds:,} seeds would need about {format_bytes(total)} of host memory and "
        f"{free}; --num-seeds {max(0, int(budget // per_seed)):,} or fewer fit "
        "(or split the seeds over several commands with --seed)")
