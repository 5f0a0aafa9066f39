"""Train a batch of runs in one compiled call, spread over every local device.

The runs (seeds, or grid points x seeds) form one axis. `train_runs` shards it
over the devices with `jax.shard_map`, so each device `jax.vmap`s the pure
`train` over its own slice and runs its own rollout loops; there is no
communication between devices. On a CPU, `pgjax.running.devices.configure_cpu`
gives XLA one device per core, so the slices train in parallel.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pgjax.algo.fast.folded import pad_runs


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
            data = place(key_data(x))
            return jax.jit(wrap_keys, out_shardings=sharding)(data)
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(place, padded)


def is_key(x: Any) -> bool:
    """Whether `x` is a typed PRNG key array (or the `jax.ShapeDtypeStruct` of one).

    The one test of pgjax's running code for a typed key: `key_data` and
    `wrap_keys` convert by it, for placing (`place_runs`), fetching (`fetch`),
    checkpoints (`pgjax.running.run_folder.checkpoints`), segments (`pgjax.running.segments`)
    and memory estimates (`pgjax.running.memory`).

    Args:
      x: a pytree leaf: an array, a `jax.ShapeDtypeStruct`, or anything else.

    Returns:
      True when its dtype is a typed PRNG key's; False for any other dtype or none.
    """
    import jax

    dtype = getattr(x, "dtype", None)
    return dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)


def key_data(tree: Any) -> Any:
    """`tree` with every typed PRNG key leaf replaced by its key data (`jax.random.key_data`).

    Args:
      tree: a pytree of arrays, some of them typed keys (or one array).

    Returns:
      The same structure: keys as their uint32 key data, the other leaves as they were.
    """
    import jax

    return jax.tree.map(lambda x: jax.random.key_data(x) if is_key(x) else x, tree)


def wrap_keys(tree: Any, like: Any = None) -> Any:
    """Key data back into typed PRNG keys (`jax.random.wrap_key_data`): `key_data`'s inverse.

    Args:
      tree: key data (one array), or a pytree holding some.
      like: a pytree of `tree`'s structure whose typed-key leaves say which leaves
        of `tree` are key data (a template, e.g. of a checkpoint); None: every leaf is.

    Returns:
      The same structure, the key data wrapped as typed keys (of the default implementation).
    """
    import jax

    if like is None:
        return jax.tree.map(jax.random.wrap_key_data, tree)
    return jax.tree.map(lambda template, x: jax.random.wrap_key_data(x) if is_key(template) else x, like, tree)


def fetch(tree: Any) -> Any:
    """Bring (possibly multi-process) device arrays to NumPy on this host; typed PRNG keys become key data.

    An array spread over the devices of several processes (`jax.distributed`) is gathered whole on every
    process (a collective: every process calls `fetch` on the same structure at the same point); any other
    leaf, NumPy arrays included, is this process's own and is returned as it is, never concatenated with the
    other processes' copies (a second `fetch` of a fetched tree is the same tree).
    """
    import jax

    leaves, structure = jax.tree.flatten(key_data(tree))
    spread = [i for i, leaf in enumerate(leaves) if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable]
    if spread:
        from jax.experimental import multihost_utils

        gathered = multihost_utils.process_allgather([leaves[i] for i in spread], tiled=True)
        for i, whole in zip(spread, gathered):
            leaves[i] = whole
    return jax.tree.unflatten(structure, jax.device_get(leaves))


def any_process(flag: bool) -> bool:
    """Whether `flag` is True in any process of a multi-process run (a collective: every process calls it at the
    same point), so that they all take the same branch (a stop that reached one of them); `flag` itself in a
    one-process run."""
    import jax
    import numpy as np

    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return bool(np.asarray(multihost_utils.process_allgather(np.array([flag], np.int32))).any())
    return flag


def process_0_values(values: Any) -> Any:
    """`values` (a NumPy array) as process 0 has them, on every process of a multi-process run (a collective:
    every process calls it at the same point); `values` itself in a one-process run."""
    import jax

    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return multihost_utils.broadcast_one_to_all(values)
    return values


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
      keys: [N] PRNG keys, one per run.
      hparams: `Hyperparams` whose leaves are [N] arrays.

    Returns:
      (state, metrics, info): pytrees with a leading [N] axis, and `run_sharded`'s info.
    """
    import jax

    (state, metrics), info = run_sharded(jax.vmap(train), keys, hparams, devices=devices)
    return state, metrics, info
