"""Device and XLA setup, in one place for every entry point; call before JAX starts its backends.

* `backend_choices(platform)`: every choice pgjax makes by backend (XLA options,
  runs per device, gradient block size), in this one place; `expected_platform()`
  says which backend a process will get before JAX starts it.
* `configure_cpu()`: sets the XLA options of the backend this process will use:
  on a CPU, one XLA CPU device per core (so that `pgjax.running.sharding`
  trains slices of the runs on all cores at once) and CPU-only XLA options
  (`PGJAX_CPU_DEVICES=1` keeps a single CPU device); on an accelerator, none.
* `use_compile_cache()`: keep compiled programs on disk for later processes.
* `start_distributed()`: join the other processes of a multi-host run.
* `process_fast_path_on(name)`: whether each process fast path is on.

Process fast paths (they act before or after the training, or around its
compiles; `experiments/process_fast_paths.py` measures each one on and off):

* `small_loops`: XLA's CPU backend compiles each while loop that touches less
  than `SMALL_LOOP_BYTES` into one kernel (`configure_cpu`); results bitwise
  the same;
* `llvm_level`: LLVM optimisation level 1 instead of XLA's 2 (`configure_cpu`);
  the compiled code's float results are not bitwise level 2's, so neither are
  the trained runs (pgjax's reference results are level 1's);
* `gc_freeze`: each command moves the objects its imports made into the
  garbage collector's permanent generation (`gc.freeze()`, in
  `pgjax.commands.process.freeze_imports`: once as it starts, and the train command again
  after its late imports) before it traces and compiles, so that the
  collections that tracing sets off do not walk them again; same outputs.

All are on by default. The environment variable PGJAX_SPEED_OFF turns some
off: a comma-separated list of their names, e.g.
`PGJAX_SPEED_OFF=small_loops,gc_freeze python -m pgjax.train`; it is read in
`pgjax.algo.config`, the one place that also reads it for the training
path's fast paths. An environment variable, because these act before the
command line is parsed or after the training, and a measurement needs a fresh
process per variant.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
import sys
from collections.abc import Iterator
from pathlib import Path

from pgjax.algo.config import PROCESS_FAST_PATHS, fast_paths_off

_HOST_DEVICE_FLAG = "--xla_force_host_platform_device_count"
_LLVM_LEVEL_FLAG = "--xla_backend_optimization_level"
_EXTRA_OPTIONS_FLAG = "--xla_backend_extra_options"
_MAX_ISA_FLAG = "--xla_cpu_max_isa"
CPU_ISAS = ("SSE4_2", "AVX", "AVX2", "AVX512", "AVX512_VNNI", "AVX512_BF16", "AMX", "AMX_FP16")  # XLA's names
SMALL_LOOP_BYTES = 65536  # XLA's CPU default is 1 KiB


def process_speeds_off(value: str | None = None) -> frozenset[str]:
    """The process fast paths turned off: those of `PROCESS_FAST_PATHS` that PGJAX_SPEED_OFF (or `value`) names.

    Raises:
      ValueError: a name that is no fast path (`pgjax.algo.config.fast_paths_off`).
    """
    return fast_paths_off(value) & frozenset(PROCESS_FAST_PATHS)


def process_fast_path_on(name: str) -> bool:
    """Whether the process fast path `name` is on (not listed in PGJAX_SPEED_OFF), read now.

    Raises:
      ValueError: PGJAX_SPEED_OFF names an unknown fast path, or `name` is not one of `PROCESS_FAST_PATHS`.
    """
    if name not in PROCESS_FAST_PATHS:
        raise ValueError(f"{name!r} is not a process fast path ({', '.join(PROCESS_FAST_PATHS)})")
    return name not in process_speeds_off()


def _accelerator_installed() -> bool:
    """Whether JAX could use a GPU or TPU here (a PJRT plugin or libtpu is installed)."""
    import importlib.metadata
    import importlib.util

    return bool(importlib.metadata.entry_points(group="jax_plugins")) or importlib.util.find_spec("libtpu") is not None


def _backends_started() -> bool:
    if "jax" not in sys.modules:
        return False
    from jax._src import xla_bridge

    return xla_bridge.backends_are_initialized()


_PLATFORM_ALIASES = {"cuda": "gpu", "rocm": "gpu"}


def expected_platform() -> str:
    """The platform ("cpu", "gpu", "tpu", ...) of JAX's default backend in this process, read without starting it.

    Once JAX has started its backends, `jax.default_backend()`. Before: the
    first platform of JAX_PLATFORMS where set (cuda and rocm read as "gpu");
    else "tpu" where libtpu is installed, "gpu" where another PJRT plugin is
    (JAX's CUDA and ROCm plugins), "cpu" where neither is.
    """
    if _backends_started():
        import jax

        return jax.default_backend()
    requested = os.environ.get("JAX_PLATFORMS", "").split(",")[0].strip().lower()
    if requested:
        return _PLATFORM_ALIASES.get(requested, requested)
    if not _accelerator_installed():
        return "cpu"
    import importlib.util

    return "tpu" if importlib.util.find_spec("libtpu") is not None else "gpu"


# Runs per CPU device trained at once when --max-parallel is not given: smaller batches keep the
# rollout buffers in cache and end their loops sooner (docs/performance.md measures it).
# Accelerators want every run they can hold at once.
CPU_RUNS_PER_DEVICE = 64


@dataclasses.dataclass(frozen=True)
class BackendChoices:
    """What pgjax chooses by backend, in this one place (`backend_choices`).

    Attributes:
      platform: "cpu", "gpu", "tpu", ... (JAX's platform name).
      xla_flags: XLA options for XLA_FLAGS, set before JAX starts (`configure_cpu`):
        on a CPU, one host device per core and the process fast paths `llvm_level` and
        `small_loops` (those not switched off in PGJAX_SPEED_OFF); none elsewhere.
      runs_per_device: the cap on runs trained at once per device when
        --max-parallel is not given (`pgjax.running.memory.default_max_parallel`);
        None: memory alone decides.
      gradient_block_rows: (a property) steps a gradient block takes at once when
        the settings give none: `pgjax.algo.fast.blocks.default_block_rows(platform)`, which
        keeps the rule beside the gradient because the algorithm layer imports
        nothing from here; read on demand, as importing it starts JAX's backends.
    """

    platform: str
    xla_flags: tuple[str, ...]
    runs_per_device: int | None

    @property
    def gradient_block_rows(self) -> int:
        from pgjax.algo.fast.blocks import default_block_rows

        return default_block_rows(self.platform)

    def as_dict(self) -> dict:
        """The choices as JSON-ready values, the gradient block rows included."""
        return {**dataclasses.asdict(self), "xla_flags": list(self.xla_flags),
                "gradient_block_rows": self.gradient_block_rows}


def backend_choices(platform: str | None = None, cpu_devices: int | None = None) -> BackendChoices:
    """pgjax's choices for `platform` (default: `expected_platform()`).

    Args:
      platform: a JAX platform name; any other than "cpu" gets the accelerator choices.
      cpu_devices: XLA CPU devices to ask for on a CPU (default: PGJAX_CPU_DEVICES,
        else every core).

    Raises:
      ValueError: PGJAX_SPEED_OFF names an unknown fast path.
    """
    platform = platform or expected_platform()
    off = process_speeds_off()
    if platform != "cpu":
        return BackendChoices(platform, (), None)
    count = cpu_devices or int(os.environ.get("PGJAX_CPU_DEVICES", 0)) or os.cpu_count() or 1
    flags = [f"{_HOST_DEVICE_FLAG}={count}"]
    if "llvm_level" not in off:
        flags.append(f"{_LLVM_LEVEL_FLAG}=1")
    if "small_loops" not in off:
        flags.append(f"{_EXTRA_OPTIONS_FLAG}=xla_cpu_small_while_loop_byte_threshold={SMALL_LOOP_BYTES}")
    isa = cpu_max_isa()
    if isa:
        flags.append(f"{_MAX_ISA_FLAG}={isa}")
    return BackendChoices(platform, tuple(flags), CPU_RUNS_PER_DEVICE)


def cpu_max_isa() -> str | None:
    """PGJAX_CPU_MAX_ISA: the newest x86-64 instruction set XLA's CPU code may use (`CPU_ISAS`), or None.

    XLA compiles for the CPU it runs on; the cap keeps its generated code to
    one set (AVX2, say). It does not make two CPUs with different newest sets
    train the same floats: docs/devices.md says what it was measured to change
    and what it does not.

    Raises:
      ValueError: not one of `CPU_ISAS`.
    """
    isa = os.environ.get("PGJAX_CPU_MAX_ISA", "").strip().upper()
    if isa and isa not in CPU_ISAS:
        raise ValueError(f"PGJAX_CPU_MAX_ISA={isa} is not an instruction set XLA knows: give one of "
                         f"{', '.join(CPU_ISAS)} (or unset it)")
    return isa or None


FLOAT_PACKAGES = ("pgjax", "jax", "jaxlib", "flax", "optax", "gymnax", "numpy")


def float_determinants() -> dict:
    """What decides a run's floats besides its settings and seeds, for summary.json: the packages' versions,
    Python's, the XLA backend and device kind, the CPU's model and newest instruction set, the cap on it
    (PGJAX_CPU_MAX_ISA) and the XLA flags in effect."""
    from importlib.metadata import PackageNotFoundError, version

    import jax

    def installed(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    return {"versions": {name: installed(name) for name in FLOAT_PACKAGES}, "python": platform.python_version(),
            "backend": jax.default_backend(), "device_kind": jax.devices()[0].device_kind, "cpu": cpu_model(),
            "cpu_isa": cpu_isa(), "cpu_max_isa": cpu_max_isa(), "xla_flags": os.environ.get("XLA_FLAGS", "")}


def cpu_isa() -> str:
    """The newest of `CPU_ISAS` this machine's CPU has ("unknown" off Linux x86-64), from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo") as info:
            flags = next((line.split(":", 1)[1].split() for line in info if line.startswith("flags")), [])
    except OSError:
        return "unknown"
    found = {"sse4_2": "SSE4_2", "avx": "AVX", "avx2": "AVX2", "avx512f": "AVX512", "avx512_vnni": "AVX512_VNNI",
             "avx512_bf16": "AVX512_BF16", "amx_tile": "AMX", "amx_fp16": "AMX_FP16"}
    have = [isa for flag, isa in found.items() if flag in flags]
    return max(have, key=CPU_ISAS.index) if have else "unknown"


def configure_cpu(count: int | None = None) -> list[str]:
    """Set the XLA options of the backend this process will use (`backend_choices`); returns the flags it added.

    On a CPU (`expected_platform()`):

    * one CPU device per core (`count`, else PGJAX_CPU_DEVICES, else every core),
      so that `run_sharded` trains slices of the runs on all cores at once;
    * LLVM optimisation level 1 instead of 2, which compiles faster (fast path
      device `llvm_level`; the float results are level 1's, not bitwise level 2's);
    * XLA's CPU backend compiles each while loop that touches less than
      `SMALL_LOOP_BYTES` into one kernel (XLA's
      `xla_cpu_small_while_loop_byte_threshold`, 1 KiB by default) rather than
      dispatching a kernel per operation on every iteration (process fast path
      `small_loops`). The loops it catches are the threefry hashes of every
      random-number call (a 5-step loop on CPU). Results are bitwise the same.

    On an accelerator (a GPU or TPU plugin installed, or JAX_PLATFORMS naming
    one first) it adds nothing. A process fast path listed in PGJAX_SPEED_OFF
    (`process_speeds_off`) adds no flag. Must run before JAX initialises its
    backends; afterwards it changes nothing, nor does it override a flag
    already in XLA_FLAGS.

    Raises:
      ValueError: PGJAX_SPEED_OFF names an unknown fast path (checked before anything is set).
    """
    process_speeds_off()
    cpu_max_isa()
    if _backends_started():
        return []
    flags = os.environ.get("XLA_FLAGS", "")
    added = [flag for flag in backend_choices(expected_platform(), count).xla_flags
             if flag.split("=", 1)[0] not in flags]
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
    there instead of compiling it again. None or "off" leaves the cache off,
    and so does a folder that cannot be created or written. A per-process
    setting: it takes effect only if this process has compiled nothing yet, and
    JAX keeps what it found at its first compile (a later call changes nothing).
    Returns the folder asked for, or None.
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

    Raises:
      ValueError: (one line) PGJAX_NUM_PROCESSES or PGJAX_PROCESS_ID is not a
        whole number, no cluster is found (no coordinator address), or joining failed.
    """
    import jax

    numbers = {}
    for name in ("PGJAX_NUM_PROCESSES", "PGJAX_PROCESS_ID"):
        value = os.environ.get(name)
        if value is not None and not value.strip().isdigit():
            raise ValueError(f"{name} must be a whole number, got {value!r}")
        numbers[name] = None if value is None else int(value)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(num_processes=numbers["PGJAX_NUM_PROCESSES"],
                                   process_id=numbers["PGJAX_PROCESS_ID"])
    except ValueError as error:
        if "coordinator_address" in str(error):
            raise ValueError("found no cluster to join (no SLURM, Open MPI, Kubernetes or Cloud TPU job): set "
                             "JAX_COORDINATOR_ADDRESS=host:port, PGJAX_NUM_PROCESSES and PGJAX_PROCESS_ID in every "
                             "process, or leave --distributed out") from None
        raise ValueError(f"cannot join the other processes: {(str(error).splitlines() or [''])[0]}") from None
    except RuntimeError as error:
        raise ValueError(f"cannot join the other processes: {(str(error).splitlines() or [''])[0]}") from None


def cpu_model() -> str:
    """The CPU's model name (Linux), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_memory_stats(device) -> dict | None:
    """A device's own memory counters (`Device.memory_stats()`: "bytes_limit", "bytes_in_use",
    "peak_bytes_in_use", ... in bytes), or None where it keeps none (a CPU device; some backends)."""
    stats = None if device.platform == "cpu" else device.memory_stats()
    return dict(stats) if stats else None


def host_available_bytes() -> int | None:
    """Memory this host can still give (Linux's MemAvailable), else its physical memory; None if unknown."""
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
