"""How much memory a sweep needs, how much the devices have, and how many runs fit at once.

The estimate is made before anything compiles, from the shapes of a run: the
rollout buffers of `episodes_per_update` episodes of up to `max_steps` steps
(observations in the environment's storage dtype, actions as int32 or as
float32 vectors), the per-step weights (and a value baseline's values,
advantages and targets) and the copy the gradient blocks take, the parameters of
the policy (and value) network with Adam's moments, and one segment's metrics.
tests/test_sweep.py and tests/test_value_baseline.py check it against XLA's own
accounting of the compiled program (it lies between that and a few times that).
"""

from __future__ import annotations

import functools
import math
import os
from typing import Any

from pgjax.algo.config import StaticConfig

# Fraction of the free memory a sweep plans to use: XLA's temporaries, the host
# copies of results and allocator slack need the rest.
USABLE_FRACTION = 0.5


def count_params(obs_size: int, hidden: tuple[int, ...], num_actions: int) -> int:
    """Parameters of an MLP obs_size -> hidden... -> num_actions (weights and biases)."""
    widths = (obs_size, *hidden, num_actions)
    return sum((a + 1) * b for a, b in zip(widths[:-1], widths[1:]))


def _conv_layers(static: StaticConfig, obs_shape: tuple[int, ...]) -> list[tuple[int, int, int]]:
    """(positions, channels in, channels out) of each 3x3 'VALID' convolution of the CNN."""
    h, w, c = obs_shape if len(obs_shape) == 3 else (*obs_shape, 1)
    layers = []
    for out in static.conv:
        h, w = h - 2, w - 2
        layers.append((h * w, c, out))
        c = out
    return layers


def network_params(static: StaticConfig, obs_shape: tuple[int, ...], num_outputs: int) -> int:
    """Parameters of the network `static` describes (`networks.make_policy`), without a Gaussian's log std."""
    if static.network != "cnn" or len(obs_shape) < 2:
        return count_params(math.prod(obs_shape), static.hidden, num_outputs)
    layers = _conv_layers(static, obs_shape)
    conv = sum((9 * c_in + 1) * c_out for _, c_in, c_out in layers)
    positions, _, channels = layers[-1]
    return conv + count_params(positions * channels, static.hidden, num_outputs)


@functools.lru_cache(maxsize=None)
def _env_facts(env_id: str) -> tuple[tuple[int, ...], int, int]:
    """(observation shape, bytes per stored observation entry, stored action entries per step)."""
    from pgjax.algo.envs import make_env

    spec = make_env(env_id)
    obs_itemsize = 1 if spec.obs_dtype == "uint8" else 4
    return spec.obs_shape, obs_itemsize, spec.num_actions if spec.action_kind == "continuous" else 1


def run_bytes(static: StaticConfig, obs_size: int, num_actions: int, max_steps: int, segment_length: int) -> int:
    """Estimated device memory of one run while it trains, in bytes.

    Args:
      static: the run's static settings (environment, network, episodes per update, baseline).
      obs_size: D, observation entries; num_actions: A (actions, or action dimensions).
      max_steps: T, the environment's episode step limit (rollout buffers hold T rows).
      segment_length: L, updates per compiled segment (metrics are [L, ...]).
    """
    obs_shape, obs_itemsize, action_entries = _env_facts(static.env)
    steps = max_steps * static.episodes_per_update  # T x E rows
    # obs (f32 or u8), action (i32, or f32 x A), reward f32, valid bool
    trajectory = steps * (obs_itemsize * obs_size + 4 * action_entries + 4 + 1)
    per_step = 3 + (4 if static.value_baseline else 0)  # returns, weights, coefficients (+ values, targets, ...)
    weights = steps * per_step * 4
    # rollout buffers, a copy of them, the gradient's padded block copy
    rollout = 3 * trajectory + weights
    num_params = network_params(static, obs_shape, num_actions) + (num_actions if action_entries > 1 else 0)
    if static.value_baseline:
        num_params += network_params(static, obs_shape, 1)
        rollout += 2 * static.episodes_per_update * obs_size * 4  # the observations episodes ended in
    # params, Adam's two moments, gradient, update, and the pre-update copy kept for divergence
    params = 7 * 4 * num_params
    metrics = 2 * segment_length * 4 * (12 + static.episodes_per_update)
    return rollout + params + metrics


def device_bytes(static: StaticConfig, obs_size: int, num_actions: int, block_rows: int) -> int:
    """Estimated memory per device that does not grow with runs: one gradient block's activations."""
    obs_shape = _env_facts(static.env)[0]
    if static.network == "cnn" and len(obs_shape) >= 2:
        layers = _conv_layers(static, obs_shape)
        positions, _, channels = layers[-1]
        conv = sum(p * (9 * c_in + c_out) for p, c_in, c_out in layers)
        widths = (obs_size, conv, positions * channels, *static.hidden, 2 * num_actions)
    else:
        widths = (obs_size, *static.hidden, 2 * num_actions)
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
