"""How much memory a sweep needs, how much the devices have, and how many runs fit at once.

The estimate is made before anything compiles, from the shapes of a run: the
rollout buffers of `episodes_per_update` episodes of up to `max_steps` steps, the
per-step weights and the copy the gradient blocks take, the parameters with
Adam's moments, and one segment's metrics. tests/test_memory.py checks it
against XLA's own accounting of the compiled program (it lies between that and a
few times that).
"""

from __future__ import annotations

import math
import os
from typing import Any

from pgjax.config import StaticConfig

# Fraction of the free memory a sweep plans to use: XLA's temporaries, the host
# copies of results and allocator slack need the rest.
USABLE_FRACTION = 0.5


def count_params(obs_size: int, hidden: tuple[int, ...], num_actions: int) -> int:
    """Parameters of an MLP obs_size -> hidden... -> num_actions (weights and biases)."""
    widths = (obs_size, *hidden, num_actions)
    return sum((a + 1) * b for a, b in zip(widths[:-1], widths[1:]))


def run_bytes(static: StaticConfig, obs_size: int, num_actions: int, max_steps: int, segment_length: int) -> int:
    """Estimated device memory of one run while it trains, in bytes.

    Args:
      static: the run's static settings (hidden sizes, episodes per update).
      obs_size: D, observation entries; num_actions: A.
      max_steps: T, the environment's episode step limit (rollout buffers hold T rows).
      segment_length: L, updates per compiled segment (metrics are [L, ...]).
    """
    steps = max_steps * static.episodes_per_update  # T x E rows
    trajectory = steps * (4 * obs_size + 4 + 4 + 1)  # obs f32, action i32, reward f32, valid bool
    weights = steps * 3 * 4  # returns, weights and coefficients, f32
    # rollout buffers, their time-major -> run-major copy, the gradient's padded block copy
    rollout = 3 * trajectory + weights
    # params, Adam's two moments, gradient, update, and the pre-update copy kept for divergence
    params = 7 * 4 * count_params(obs_size, static.hidden, num_actions)
    metrics = 2 * segment_length * 4 * (10 + static.episodes_per_update)
    return rollout + params + metrics


def device_bytes(static: StaticConfig, obs_size: int, num_actions: int, block_rows: int) -> int:
    """Estimated memory per device that does not grow with runs: one gradient block's activations."""
    widths = (obs_size, *static.hidden, num_actions)
    return 3 * 4 * block_rows * sum(widths)


def _host_available_bytes() -> int | None:
    """MemAvailable of this host (Linux), else physical memory; None if unknown."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def available_bytes(devices: list[Any]) -> int | None:
    """Free memory for arrays on `devices`, in bytes, summed over them.

    Accelerators report their own limit (`Device.memory_stats()`); CPU devices
    share their host's memory, so each host counts once. Devices of other
    processes (`jax.distributed`) are assumed to have what this process's have.
    None if unknown.
    """
    import jax

    local = [d for d in devices if d.process_index == jax.process_index()]
    hosts = len({d.process_index for d in devices})
    total = 0
    for device in local:
        stats = device.memory_stats() if hasattr(device, "memory_stats") else None
        if not stats or "bytes_limit" not in stats:
            host = _host_available_bytes()
            return None if host is None else hosts * host
        total += int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    return total * len(devices) // max(1, len(local))


def format_bytes(num: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(num) < 1024 or unit == "TiB":
            return f"{num:.0f} {unit}" if unit == "B" else f"{num:.1f} {unit}"
        num /= 1024
    raise AssertionError("unreachable")


# Runs per CPU device trained at once when --max-parallel is not given. On the 2-core CPU of
# the README, 4096 seeds of the default preset trained at 12.2 M env steps/s in chunks of 128
# runs (64 per device) and at 10.3 M/s all at once: smaller batches keep the rollout buffers
# in cache and end their loops sooner. Accelerators want every run they can hold at once.
CPU_RUNS_PER_DEVICE = 64


def default_max_parallel(devices: list[Any]) -> int | None:
    """The cap on runs at once when the user gives none: 64 per CPU device, none on accelerators."""
    if devices and all(d.platform == "cpu" for d in devices):
        return CPU_RUNS_PER_DEVICE * len(devices)
    return None


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
        raise ValueError(
            f"one run per device needs {format_bytes(num_devices * (per_run + per_device))} but only "
            f"{format_bytes(available)} is free; lower --episodes-per-update or --hidden"
        )
    if max_parallel is not None and wanted > fits:
        raise ValueError(
            f"--max-parallel {max_parallel} needs about {format_bytes(wanted * per_run)} but only "
            f"{format_bytes(available)} is free (half of it is used); set --max-parallel {fits} or less, "
            "or leave it out to chunk automatically"
        )
    return min(wanted, fits)
