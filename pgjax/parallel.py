"""Train a batch of runs in one compiled call, spread over every local device.

The runs (seeds, or grid points x seeds) form one axis. `train_runs` shards it
over the local devices with `jax.shard_map`, so each device `jax.vmap`s the
pure `train` over its own slice and runs its own rollout loops; there is no
communication between devices.

On a CPU, XLA offers one device that runs such loops on about one core.
`use_cpu_cores()` asks XLA for one CPU device per core instead, before JAX
starts, so that the slices train in parallel; pgjax's command-line entry points
call it. Set `PGJAX_CPU_DEVICES=1` to keep a single CPU device.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any

_HOST_DEVICE_FLAG = "--xla_force_host_platform_device_count"


def use_cpu_cores(count: int | None = None) -> int | None:
    """Ask XLA for `count` CPU devices (default: PGJAX_CPU_DEVICES or every core).

    Must run before JAX initialises its backends; afterwards, or when XLA_FLAGS
    already sets the device count, it changes nothing. Only the CPU platform is
    affected. Returns the count set, or None.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if _HOST_DEVICE_FLAG in flags:
        return None
    if "jax" in sys.modules:
        from jax._src import xla_bridge

        if xla_bridge.backends_are_initialized():
            return None
    count = count or int(os.environ.get("PGJAX_CPU_DEVICES", 0)) or os.cpu_count() or 1
    os.environ["XLA_FLAGS"] = f"{flags} {_HOST_DEVICE_FLAG}={count}".strip()
    return count


def _pad_runs(tree: Any, num_runs: int, multiple: int) -> Any:
    """Repeat the last run so that the run axis divides evenly over devices."""
    import jax
    import jax.numpy as jnp

    pad = -num_runs % multiple
    if pad == 0:
        return tree
    return jax.tree.map(lambda x: jnp.concatenate([x, jnp.repeat(x[-1:], pad, axis=0)]), tree)


def train_runs(
    train: Callable, keys: Any, hparams: Any, devices: list | None = None
) -> tuple[Any, Any, dict[str, float]]:
    """Compile and run `train` for every run, spread over `devices`.

    Args:
      train: `train(key, hparams) -> (state, metrics)` for one run (`make_train`).
      keys: [N] PRNG keys, one per run.
      hparams: `Hyperparams` whose leaves are [N] arrays.
      devices: devices to spread over (default: all local devices).

    Returns:
      (state, metrics, timings): pytrees with a leading [N] axis, as NumPy-backed
      host arrays, and {"compile_seconds", "train_seconds", "devices"}.
      Compile time counts tracing and XLA compilation; train time the run only.
    """
    import jax
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    devices = devices or jax.local_devices()
    num_runs = keys.shape[0]
    mesh = Mesh(devices, ("runs",))
    runs = PartitionSpec("runs")
    sharded = jax.jit(
        jax.shard_map(jax.vmap(train), mesh=mesh, in_specs=runs, out_specs=runs, check_vma=False)
    )
    args = jax.device_put(_pad_runs((keys, hparams), num_runs, len(devices)), NamedSharding(mesh, runs))
    start = time.perf_counter()
    compiled = sharded.lower(*args).compile()
    compile_seconds = time.perf_counter() - start
    start = time.perf_counter()
    state, metrics = jax.block_until_ready(compiled(*args))
    train_seconds = time.perf_counter() - start
    state, metrics = jax.tree.map(lambda x: x[:num_runs], (state, metrics))
    timings = {"compile_seconds": compile_seconds, "train_seconds": train_seconds, "devices": len(devices)}
    return state, metrics, timings
