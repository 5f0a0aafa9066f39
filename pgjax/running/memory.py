"""How much memory a sweep needs, how much the devices have, and how many runs fit at once.

The estimate is made before anything compiles, from the shapes the program
itself gives (`jax.eval_shape` and `jax.make_jaxpr` trace, but compile nothing),
so it follows any network, action space or environment without recounting them:

    state         `make_trainer(config).init`'s TrainState: parameters (policy and
                  value network), optimizer states, PRNG key, counters
    gradients     a pytree like the trainable parameters
    trajectory    `pgjax.algo.rollout.make_collect`'s Trajectory of one update's
                  E episodes of up to T steps
    step arrays   per-step float arrays (returns, weights, ...) shaped like its rewards [T, E]
    metrics       `Trainer.update`'s Metrics of one update, times the segment's updates
    activations   the values the network computes per observation (its jaxpr),
                  times the rows of a gradient block

Each is counted as many times as the compiled program holds copies of it (the
`*_COPIES` constants below). tests/test_memory.py checks the estimate against
XLA's own accounting of the compiled segment (`compiled.memory_analysis()`,
`pgjax.running.sharding.memory_bytes`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import jax
import jax.extend.core
import jax.numpy as jnp

from pgjax.algo.config import Config, StaticConfig
from pgjax.algo.returns import is_learned
from pgjax.running.devices import backend_choices, device_memory_stats, host_available_bytes
from pgjax.running.sharding import is_key

# Fraction of the free memory a sweep plans to use: XLA's temporaries, the host
# copies of results and allocator slack need the rest.
USABLE_FRACTION = 0.5

# Copies the compiled segment holds of each part of a run.
STATE_COPIES = 2  # the state a segment takes and the one it returns (the pre-update state the divergence guard keeps)
GRADIENT_COPIES = 2  # the gradient and the optimizer's update
TRAJECTORY_COPIES = 3  # the rollout loop's buffers, their copy in the trajectory's layout, the gradient blocks' copy
STEP_ARRAYS = 3  # per-step float arrays without a value baseline: returns, weights, loss coefficients
VALUE_STEP_ARRAYS = 4  # and with one: values, advantages, value targets, value-loss coefficients
METRICS_COPIES = 2  # the segment's stacked metrics and their copy with the run axis first
ACTIVATION_COPIES = 3  # per gradient-block row: the forward values, the residuals kept for the backward, cotangents


def tree_bytes(tree: Any) -> int:
    """Bytes of a pytree of arrays or `jax.ShapeDtypeStruct`s; typed PRNG keys count as their key data."""
    total = 0
    for leaf in jax.tree.leaves(tree):
        if is_key(leaf):
            leaf = jax.eval_shape(jax.random.key_data, leaf)
        total += math.prod(leaf.shape) * leaf.dtype.itemsize
    return total


def _jaxpr_value_bytes(jaxpr: jax.extend.core.Jaxpr) -> int:
    """Bytes of every value a jaxpr's equations compute (inside calls and custom rules, not the calls' outputs)."""
    total = 0
    for eqn in jaxpr.eqns:
        inner = list(jax.extend.core.jaxprs_in_params(eqn.params))
        if inner:
            total += sum(_jaxpr_value_bytes(sub) for sub in inner)
        else:
            total += sum(math.prod(v.aval.shape) * v.aval.dtype.itemsize for v in eqn.outvars)
    return total


def activation_bytes(apply_fn: Any, params: Any, obs: jax.ShapeDtypeStruct) -> int:
    """Bytes a network computes per observation: its values for 2 observations less those for 1.

    Args:
      apply_fn: `(params, obs [N, *obs_shape]) -> out [N, K]`.
      params: its parameters (arrays or `jax.ShapeDtypeStruct`s).
      obs: one observation's shape and dtype.

    The difference leaves out what depends on the parameters alone (a
    reshaped kernel, say), which a gradient block computes once, not per row.
    """

    def values(rows: int) -> int:
        batch = jax.ShapeDtypeStruct((rows, *obs.shape), obs.dtype)
        return _jaxpr_value_bytes(jax.make_jaxpr(apply_fn)(params, batch).jaxpr)

    return values(2) - values(1)


@dataclasses.dataclass(frozen=True)
class RunShapes:
    """What one run holds while it trains, in bytes, from the program's shapes (see the module's docstring).

    Attributes:
      state: one TrainState.
      gradients: one gradient of every trainable parameter (policy and value network).
      trajectory: one update's Trajectory [T, E, ...].
      step_arrays: every per-step float32 array [T, E] of one update together
        (`STEP_ARRAYS`, and `VALUE_STEP_ARRAYS` more with a value baseline).
      metrics: one update's Metrics.
      activations_per_step: what the larger network (policy or value) computes per observation.
    """

    state: int
    gradients: int
    trajectory: int
    step_arrays: int
    metrics: int
    activations_per_step: int


@functools.lru_cache(maxsize=64)
def run_shapes(static: StaticConfig) -> RunShapes:
    """The `RunShapes` of a run with these static settings (numeric settings change no shape).

    Raises:
      ValueError: settings the trainer rejects (`make_trainer`).
    """
    from pgjax.algo.distributions import make_distribution
    from pgjax.algo.envs import env_for
    from pgjax.algo.fast import make_network
    from pgjax.algo.networks import make_apply_fn, make_policy, make_value_fn, make_value_network
    from pgjax.algo.rollout import make_collect
    from pgjax.algo.trainer import Metrics, make_trainer

    config = Config(static)
    hparams = config.hparams.as_arrays()
    trainer = make_trainer(config)
    key = jax.random.key(0)
    state = jax.eval_shape(trainer.init, key, hparams)
    metrics = Metrics.shapes(static.episodes_per_update)  # declared: tracing a whole update is slow
    spec = env_for(static)
    apply_fn = make_apply_fn(make_network(make_policy(spec, config), spec))  # the network training computes
    collect = make_collect(spec, apply_fn, static.episodes_per_update, make_distribution(spec, static.squash),
                           keep_last_obs=is_learned(static.baseline), skip_auto_reset=True)
    trajectory = jax.eval_shape(collect, state.params, key)
    obs = jax.ShapeDtypeStruct(spec.obs_shape, jnp.float32)
    activations = activation_bytes(apply_fn, state.params, obs)
    if is_learned(static.baseline):
        value_fn = make_value_fn(make_network(make_value_network(spec, config), spec))
        activations = max(activations, activation_bytes(value_fn, state.value_params, obs))
    step_arrays = STEP_ARRAYS + (VALUE_STEP_ARRAYS if is_learned(static.baseline) else 0)
    return RunShapes(
        state=tree_bytes(state),
        gradients=tree_bytes((state.params, state.value_params)),
        trajectory=tree_bytes(trajectory),
        step_arrays=step_arrays * tree_bytes(trajectory.reward),
        metrics=tree_bytes(metrics),
        activations_per_step=activations,
    )


def run_bytes(static: StaticConfig, segment_length: int) -> int:
    """Estimated device memory of one run while it trains, in bytes.

    Args:
      static: the run's static settings (environment, network, episodes per update, baseline).
      segment_length: L, updates per compiled segment (its metrics are [L, ...]).
    """
    shapes = run_shapes(static)
    return (STATE_COPIES * shapes.state + GRADIENT_COPIES * shapes.gradients
            + TRAJECTORY_COPIES * shapes.trajectory + shapes.step_arrays
            + METRICS_COPIES * segment_length * shapes.metrics)


def device_bytes(static: StaticConfig, block_rows: int | None = None) -> int:
    """Estimated memory per device that does not grow with its runs, in bytes: one gradient block's values.

    Args:
      static: the runs' static settings.
      block_rows: steps a gradient block takes at once; None: what training
        takes, `pgjax.algo.fast.blocks.default_block_rows()`.
    """
    if block_rows is None:
        from pgjax.algo.fast.blocks import default_block_rows

        block_rows = default_block_rows()
    return ACTIVATION_COPIES * block_rows * run_shapes(static).activations_per_step


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
    total = 0
    for device in local:
        stats = device_memory_stats(device)
        if not stats or "bytes_limit" not in stats:
            host = host_available_bytes()
            return None if host is None else hosts * host
        total += int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    return total * len(devices) // max(1, len(local))


def format_bytes(num: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(num) < 1024 or unit == "TiB":
            return f"{num:.0f} {unit}" if unit == "B" else f"{num:.1f} {unit}"
        num /= 1024
    raise AssertionError("unreachable")


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


def trajectory_bytes(static: StaticConfig) -> int:
    """Bytes of one run that grow with its episodes' step limit T and with E: its trajectory copies and step arrays."""
    shapes = run_shapes(static)
    return TRAJECTORY_COPIES * shapes.trajectory + shapes.step_arrays


def fitting_advice(problem: str, static: StaticConfig, per_run: int, num_devices: int, available: int,
                   block_rows: int | None = None) -> str:
    """`problem` (one line), then the settings that would bring one run per device under the budget, each with
    the memory it would take: a smaller gradient block, a shorter episode cap, fewer episodes per update.
    `per_run` is `run_bytes` of the run as planned.

    The trajectory and the per-step arrays grow linearly in the step limit T and
    in E; the gradient block's values linearly in its rows (`device_bytes`).
    """
    from pgjax.algo.envs import env_for
    from pgjax.algo.fast.blocks import default_block_rows

    budget = USABLE_FRACTION * available / num_devices  # per device, for one run and one gradient block
    rows = block_rows or default_block_rows()
    per_device = device_bytes(static, rows)
    growing = trajectory_bytes(static)
    steps, episodes = env_for(static).max_steps, static.episodes_per_update
    options = []
    per_row = device_bytes(static, 1)
    rows_fit = int((budget - per_run) // per_row) if per_row else 0
    if 1 <= rows_fit < rows:
        rows_fit = 2 ** int(math.log2(rows_fit))
        options.append(f"--gradient-block-rows {rows_fit:,} (about {format_bytes(per_run + rows_fit * per_row)})")
    for flag, size in (("--max-episode-steps", steps), ("--episodes-per-update", episodes)):
        fixed = per_run - growing + per_device
        fit = int((budget - fixed) * size // growing) if growing else 0
        if 1 <= fit < size:
            options.append(f"{flag} {fit:,} (about {format_bytes(fixed + growing * fit / size)})")
    if not options:
        return f"{problem}; no episode cap, episodes per update or gradient block brings it under: give a smaller " \
               "network (--hidden, --conv)"
    return f"{problem}; each of these would fit: {', '.join(options)}"


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
    """Host bytes of one run's results: its final `TrainState` and its metrics of every update."""
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
    its final `TrainState` (`pgjax.running.run_shapes`, which the chunk
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
