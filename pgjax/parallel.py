"""Train a batch of runs in one compiled call, spread over every local device.

The runs (seeds, or grid points x seeds) form one axis. `train_runs` shards it
over the local devices with `jax.shard_map`, so each device `jax.vmap`s the
pure `train` over its own slice and runs its own rollout loops; there is no
communication between devices.

On a CPU, XLA offers one device that runs such loops on about one core.
`configure_cpu()` asks XLA for one CPU device per core instead, before JAX
starts, so that the slices train in parallel; pgjax's command-line entry points
call it. Set `PGJAX_CPU_DEVICES=1` to keep a single CPU device.
`use_compile_cache()` keeps compiled programs on disk for later processes.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

_HOST_DEVICE_FLAG = "--xla_force_host_platform_device_count"
_LLVM_LEVEL_FLAG = "--xla_backend_optimization_level"
_EXTRA_OPTIONS_FLAG = "--xla_backend_extra_options"
SMALL_LOOP_BYTES = 65536  # XLA's CPU default is 1 KiB


def _accelerator_installed() -> bool:
    """Whether JAX could use a GPU or TPU here (a PJRT plugin or libtpu is installed)."""
    import importlib.metadata
    import importlib.util

    return bool(importlib.metadata.entry_points(group="jax_plugins")) or importlib.util.find_spec("libtpu") is not None


def configure_cpu(count: int | None = None) -> list[str]:
    """Set XLA's CPU options for pgjax's loops; returns the flags it added.

    * one CPU device per core (`count`, else PGJAX_CPU_DEVICES, else every core),
      so that `run_sharded` trains slices of the runs on all cores at once;
    * where no accelerator is installed, LLVM optimisation level 1 instead of 2:
      on the 2-core CPU of the README it cut compile time by about 30% and left
      run time unchanged;
    * where no accelerator is installed, XLA's CPU backend compiles each while
      loop that touches less than `SMALL_LOOP_BYTES` into one kernel (XLA's
      `xla_cpu_small_while_loop_byte_threshold`, 1 KiB by default) rather than
      dispatching a kernel per operation on every iteration. The loops it catches
      are the threefry hashes of every random-number call (a 5-step loop on
      CPU); on the README's CPU, 100 updates of the default preset took 0.86x
      the time and XLA compile 0.93x, with bitwise the same results
      (`experiments/compile_time.py`, variant small_loops_1k).

    Must run before JAX initialises its backends; afterwards it changes nothing,
    nor does it override a flag already in XLA_FLAGS.
    """
    if "jax" in sys.modules:
        from jax._src import xla_bridge

        if xla_bridge.backends_are_initialized():
            return []
    flags = os.environ.get("XLA_FLAGS", "")
    added = []
    if _HOST_DEVICE_FLAG not in flags:
        count = count or int(os.environ.get("PGJAX_CPU_DEVICES", 0)) or os.cpu_count() or 1
        added.append(f"{_HOST_DEVICE_FLAG}={count}")
    if not _accelerator_installed():
        if _LLVM_LEVEL_FLAG not in flags:
            added.append(f"{_LLVM_LEVEL_FLAG}=1")
        if _EXTRA_OPTIONS_FLAG not in flags:
            added.append(f"{_EXTRA_OPTIONS_FLAG}=xla_cpu_small_while_loop_byte_threshold={SMALL_LOOP_BYTES}")
    if added:
        os.environ["XLA_FLAGS"] = " ".join([flags, *added]).strip()
    return added


DEFAULT_COMPILE_CACHE = "~/.cache/pgjax/xla"
COMPILE_CACHE_BYTES = 2**30  # least recently used executables are deleted past this size
_CACHE_HIT_EVENT = "/jax/compilation_cache/cache_hits"


def use_compile_cache(directory: str | os.PathLike | None) -> Path | None:
    """Keep compiled executables in `directory` across processes (JAX's persistent compilation cache).

    A later process that compiles the same program (same shapes, settings,
    versions and XLA flags; numeric settings and seeds are data) loads it from
    there instead: on the README's 2-core CPU, 0.2 s instead of about 3 s for
    the default training run. None or "off" leaves the cache off, and so does a
    folder that cannot be created or written. A per-process setting: it takes
    effect only if this process has compiled nothing yet, and JAX keeps what it
    found at its first compile (a later call changes nothing). Returns the
    folder asked for, or None.
    """
    if directory is None or str(directory) == "off":
        return None
    import jax

    path = Path(directory).expanduser().absolute()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    if not os.access(path, os.W_OK | os.X_OK):
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)  # only pgjax's own programs
    jax.config.update("jax_compilation_cache_max_size", COMPILE_CACHE_BYTES)
    return path


@contextlib.contextmanager
def count_cache_hits() -> Iterator[list[int]]:
    """Count executables loaded from the compile cache in the block: yields a one-item list, [hits]."""
    import jax

    hits = [0]

    def listen(event: str, **_) -> None:
        if event == _CACHE_HIT_EVENT:
            hits[0] += 1

    jax.monitoring.register_event_listener(listen)
    try:
        yield hits
    finally:
        jax.monitoring.unregister_event_listener(listen)


def start_distributed() -> None:
    """`jax.distributed.initialize()` before JAX starts its backends.

    JAX finds the processes by itself on SLURM, Open MPI, Kubernetes and Cloud
    TPU; elsewhere it reads JAX_COORDINATOR_ADDRESS, and pgjax passes it the
    process count and index from PGJAX_NUM_PROCESSES and PGJAX_PROCESS_ID.
    CPU devices exchange data across processes through gloo collectives.
    """
    import jax

    count, index = os.environ.get("PGJAX_NUM_PROCESSES"), os.environ.get("PGJAX_PROCESS_ID")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        num_processes=None if count is None else int(count), process_id=None if index is None else int(index)
    )


def pad_runs(tree: Any, num_runs: int, multiple: int) -> Any:
    """Repeat the last run so that the run axis (leading, of `num_runs`) is a multiple of `multiple`."""
    import jax
    import jax.numpy as jnp

    pad = -num_runs % multiple
    if pad == 0:
        return tree
    return jax.tree.map(lambda x: jnp.concatenate([x, jnp.repeat(x[-1:], pad, axis=0)]), tree)


def run_mesh(devices: list | None = None) -> Any:
    """A one-axis `Mesh` named "runs" over `devices` (default: every device of every process)."""
    import jax
    from jax.sharding import Mesh

    return Mesh(devices or jax.devices(), ("runs",))


def shard_runs(fn: Callable, mesh: Any) -> Callable:
    """`fn` jitted over `mesh`'s "runs" axis: every argument and output is split along its leading
    (run) axis, and each device applies `fn` to its own slice, with no communication."""
    import jax
    from jax.sharding import PartitionSpec

    runs = PartitionSpec("runs")
    return jax.jit(jax.shard_map(fn, mesh=mesh, in_specs=runs, out_specs=runs, check_vma=False))


def place_runs(tree: Any, mesh: Any) -> Any:
    """Pad the leading (run) axis of `tree` to a multiple of the mesh size and spread it over the mesh.

    Works across processes (`jax.distributed`): every process passes the same
    host values and supplies the slices of its own devices.
    """
    import jax
    import numpy as np
    from jax.sharding import NamedSharding, PartitionSpec

    num_runs = jax.tree.leaves(tree)[0].shape[0]
    sharding = NamedSharding(mesh, PartitionSpec("runs"))
    padded = pad_runs(tree, num_runs, mesh.size)

    def place(x):
        if is_key(x):  # placed as key data, then wrapped where it lies
            data = place(jax.random.key_data(x))
            return jax.jit(jax.random.wrap_key_data, out_shardings=sharding)(data)
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(place, padded)


def is_key(x: Any) -> bool:
    """Whether `x` is a typed PRNG key array."""
    import jax

    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def fetch(tree: Any) -> Any:
    """Bring (possibly multi-process) device arrays to NumPy on this host; typed PRNG keys become key data."""
    import jax

    tree = jax.tree.map(lambda x: jax.random.key_data(x) if is_key(x) else x, tree)
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return multihost_utils.process_allgather(tree, tiled=True)
    return jax.device_get(tree)


def compile_sharded(fn: Callable, *args: Any, devices: list | None = None) -> tuple[Any, Any, float]:
    """Compile `fn` with its arguments' leading (run) axis spread over devices.

    Args:
      fn: maps each device's slice of `args` (pytrees with a leading axis) to
        outputs with the same leading axis; typically `jax.vmap` of a per-run
        function. Slices run independently, with no communication.
      args: pytrees whose leaves share a leading axis of N runs; it is padded
        to a multiple of the number of devices.
      devices: devices to spread over (default: all devices, of every process).

    Returns:
      (compiled, placed_args, compile_seconds): the executable, the padded
      arguments placed on the devices, and the time spent tracing and compiling.
    """
    mesh = run_mesh(devices)
    placed = place_runs(args, mesh)
    start = time.perf_counter()
    compiled = shard_runs(fn, mesh).lower(*placed).compile()
    return compiled, placed, time.perf_counter() - start


def memory_bytes(compiled: Any, num_devices: int) -> int | None:
    """XLA's estimate of an executable's arguments, outputs and temporaries, summed over devices."""
    memory = compiled.memory_analysis()
    if memory is None:
        return None
    return num_devices * int(memory.argument_size_in_bytes + memory.output_size_in_bytes + memory.temp_size_in_bytes)


def run_sharded(
    fn: Callable, *args: Any, devices: list | None = None
) -> tuple[Any, dict[str, float]]:
    """Compile and run `fn` over `args` spread over devices (see `compile_sharded`).

    Returns:
      (outputs, info): outputs with the leading [N] axis, and {"compile_seconds",
      "run_seconds", "devices", "memory_bytes"}. Compile time counts tracing and
      XLA compilation; run time the execution only; memory is XLA's estimate of
      what the executable needs for arguments, outputs and temporaries, summed
      over devices.
    """
    import jax

    devices = devices or jax.devices()
    compiled, placed, compile_seconds = compile_sharded(fn, *args, devices=devices)
    start = time.perf_counter()
    out = jax.block_until_ready(compiled(*placed))
    run_seconds = time.perf_counter() - start
    info = {"compile_seconds": compile_seconds, "run_seconds": run_seconds,
            "devices": len(devices), "memory_bytes": memory_bytes(compiled, len(devices))}
    num_runs = jax.tree.leaves(args)[0].shape[0]
    return jax.tree.map(lambda x: x[:num_runs], out), info


def train_runs(
    train: Callable, keys: Any, hparams: Any, devices: list | None = None
) -> tuple[Any, Any, dict[str, float]]:
    """Train every run: `train(key, hparams)` vmapped and spread over `devices`.

    Args:
      train: `train(key, hparams) -> (state, metrics)` for one run (`make_train`);
        its `train.batched`, where it has one, takes each device's runs at once.
      keys: [N] PRNG keys, one per run.
      hparams: `Hyperparams` whose leaves are [N] arrays.

    Returns:
      (state, metrics, info): pytrees with a leading [N] axis, and `run_sharded`'s info.
    """
    (state, metrics), info = run_sharded(batched(train), keys, hparams, devices=devices)
    return state, metrics, info


def batched(train: Callable) -> Callable:
    """`train.batched` (`pgjax.trainer.make_train`), else `jax.vmap(train)`: the same results over a run axis."""
    import jax

    return getattr(train, "batched", None) or jax.vmap(train)
