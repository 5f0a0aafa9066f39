"""What one run occupies while it trains, in bytes, from the program's own shapes, and whether it fits.

The estimate is made before anything compiles, from the shapes the program
itself gives (`jax.eval_shape` and `jax.make_jaxpr` trace, but compile nothing),
so it follows any network, action space or environment without recounting them:

    state         `make_trainer(config).init`'s RunState: parameters (policy and
                  value network), optimizer states, PRNG key, counters
    gradients     a pytree like the trainable parameters
    trajectory    `pgjax.algo.rollout.make_collect`'s Trajectory of one update's
                  E episodes of up to T steps
    step arrays   per-step float arrays (returns, weights, ...) shaped like its rewards [T, E]
    metrics       `Trainer.update`'s Metrics of one update, times the segment's updates
    activations   the values the network computes per observation (its jaxpr),
                  times the rows of a gradient block
    episode gradients  with `StaticConfig.gradient_stats` only: the update's per-episode
                  gradient estimates [E, P] and the network's values over a time slice of
                  all E episodes (`pgjax.algo.gradients.sliced_episode_gradients`:
                  S = min(SLICE_STEPS, T) steps at once)

Each is counted as many times as the compiled program holds copies of it (the
`*_COPIES` constants below). `pgjax.running.memory` plans sweeps with it;
`check_train` checks that one run fits before `make_train` (`check_one_run`).
tests/test_memory.py checks the estimate against XLA's own accounting of the
compiled segment.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any

import jax
import jax.extend.core
import jax.numpy as jnp

from pgjax.algo.config import Config
from pgjax.algo.envs import EnvSpec
from pgjax.algo.fast.blocks import default_block_rows
from pgjax.algo.gradients import SLICE_STEPS
from pgjax.algo.pieces import choose_network
from pgjax.algo.policy import make_apply_fn, make_distribution, make_policy, make_value_network, recurrence
from pgjax.algo.rollout import make_collect
from pgjax.algo.trainer import Metrics, Trainer, make_trainer
from pgjax.algo.weights import is_learned
from pgjax.running.devices import device_memory_stats, host_available_bytes

# Fraction of the free memory a sweep plans to use: XLA's temporaries, the host
# copies of results and allocator slack need the rest.
USABLE_FRACTION = 0.5

# Copies the compiled segment holds of each part of a run.
STATE_COPIES = 2  # the state a segment takes and the one it returns (the pre-update state the divergence guard keeps)
GRADIENT_COPIES = 2  # the gradient and the optimizer's update
# the rollout loop's buffers and one copy (in the trajectory's layout, or the gradient blocks'): XLA's figure
# grows by about two trajectories per step of the step limit (experiments/long_episode_memory.py)
TRAJECTORY_COPIES = 2
STEP_ARRAYS = 3  # per-step float arrays without a value baseline: returns, weights, loss coefficients
VALUE_STEP_ARRAYS = 4  # and with one: values, advantages, value targets, value-loss coefficients
METRICS_COPIES = 2  # the segment's stacked metrics and their copy with the run axis first
ACTIVATION_COPIES = 3  # per gradient-block row: the forward values, the residuals kept for the backward, cotangents
# the per-episode gradient estimates [E, P] (gradient_stats): as pytrees of the parameters' shapes, and flattened
EPISODE_GRADIENT_COPIES = 2
# per row of a recurrent network's time slice: the residuals its scan stacks (its forward values and cotangents
# live one step at a time)
RECURRENT_ACTIVATION_COPIES = 1


def tree_bytes(tree: Any) -> int:
    """Bytes of a pytree of arrays or `jax.ShapeDtypeStruct`s; typed PRNG keys count as their key data."""
    total = 0
    for leaf in jax.tree.leaves(tree):
        if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
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


def per_step_fn(module: Any) -> Any:
    """`(params, obs [N, *obs_shape]) -> out [N, K]`: the network on N observations, each one step.

    A feed-forward network's apply function; a recurrent one's step of N
    episodes from the zero state, which is what each row of a gradient slice
    computes (its apply function would read N as time and scan it).
    """
    steps = recurrence(module)
    if steps is None:
        return make_apply_fn(module)
    return lambda params, obs: steps.step(params, steps.initial_carry(obs.shape[:1]), obs)[1]


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
      state: one RunState.
      gradients: one gradient of every trainable parameter (policy and value network).
      trajectory: one update's Trajectory [T, E, ...].
      step_arrays: every per-step float32 array [T, E] of one update together
        (`STEP_ARRAYS`, and `VALUE_STEP_ARRAYS` more with a value baseline).
      metrics: one update's Metrics.
      activations_per_step: what the larger network (policy or value) computes per observation.
      activation_copies: how many copies of it a gradient block holds per row (`ACTIVATION_COPIES`,
        `RECURRENT_ACTIVATION_COPIES` for a recurrent policy).
      episode_gradients: with `StaticConfig.gradient_stats`, the per-episode gradient estimates
        (`EPISODE_GRADIENT_COPIES` of [E, P] float32, and the sum over the slices) and the policy's values over
        a time slice of S * E steps (`ACTIVATION_COPIES` of each); 0 without.
    """

    state: int
    gradients: int
    trajectory: int
    step_arrays: int
    metrics: int
    activations_per_step: int
    activation_copies: int = ACTIVATION_COPIES
    episode_gradients: int = 0


def update_collect(spec: EnvSpec, config: Config) -> tuple[Any, Any]:
    """The policy network training computes, and `collect(params, key) -> Trajectory` of one update's episodes
    (`pgjax.algo.rollout.make_collect`, as the rollout fills its buffers)."""
    static = config.static
    policy = choose_network(make_policy(spec, config), spec)
    collect = make_collect(spec, make_apply_fn(policy), static.episodes_per_update,
                           make_distribution(spec, static.squash), keep_last_obs=is_learned(static.baseline),
                           skip_auto_reset=True, recurrence=recurrence(policy))
    return policy, collect


def measure_run(state: Any, metrics: Any, spec: EnvSpec, config: Config) -> RunShapes:
    """The `RunShapes` of one run: `state` and `metrics` are the shapes of its RunState and of one update's Metrics."""
    static = config.static
    policy, collect = update_collect(spec, config)
    with warnings.catch_warnings():  # buffers past int32's indices (billions of episodes, refused by the plan):
        warnings.filterwarnings("ignore", "Explicitly requested dtype int64", UserWarning)  # JAX's warning, not ours
        trajectory = jax.eval_shape(collect, state.params, jax.random.key(0))
    obs = jax.ShapeDtypeStruct(spec.obs_shape, jnp.float32)
    activations = activation_bytes(per_step_fn(policy), state.params, obs)
    if is_learned(static.baseline):
        value_out = per_step_fn(choose_network(make_value_network(spec, config), spec))  # [N, 1]

        def value_fn(params, obs):  # V [N], as the baseline takes it
            return value_out(params, obs)[..., 0]

        activations = max(activations, activation_bytes(value_fn, state.value_params, obs))
    step_arrays = STEP_ARRAYS + (VALUE_STEP_ARRAYS if is_learned(static.baseline) else 0)
    episode_gradients = 0
    if static.gradient_stats:  # [E, P] estimates, and the policy's values over every step of the update at once
        steps = min(SLICE_STEPS, trajectory.reward.shape[0]) * static.episodes_per_update  # S * E
        episode_gradients = ((EPISODE_GRADIENT_COPIES + 1) * static.episodes_per_update * tree_bytes(state.params)
                             + ACTIVATION_COPIES * steps * activation_bytes(per_step_fn(policy), state.params, obs))
    return RunShapes(
        state=tree_bytes(state),
        gradients=tree_bytes((state.params, state.value_params)),
        trajectory=tree_bytes(trajectory),
        step_arrays=step_arrays * tree_bytes(trajectory.reward),
        metrics=tree_bytes(metrics),
        activations_per_step=activations,
        activation_copies=ACTIVATION_COPIES if recurrence(policy) is None else RECURRENT_ACTIVATION_COPIES,
        episode_gradients=episode_gradients,
    )


def run_total(shapes: RunShapes, segment_length: int) -> int:
    """Device bytes of one run while it trains, its metrics kept for `segment_length` updates."""
    return (STATE_COPIES * shapes.state + GRADIENT_COPIES * shapes.gradients
            + TRAJECTORY_COPIES * shapes.trajectory + shapes.step_arrays
            + METRICS_COPIES * segment_length * shapes.metrics + shapes.episode_gradients)


def block_total(shapes: RunShapes, block_rows: int | None = None) -> int:
    """Device bytes of one gradient block's values (None rows: `default_block_rows()`, what training takes)."""
    return shapes.activation_copies * (block_rows or default_block_rows()) * shapes.activations_per_step


def growing_total(shapes: RunShapes) -> int:
    """The part of `run_total` that grows linearly with the step limit T and with E: trajectory and step arrays."""
    return TRAJECTORY_COPIES * shapes.trajectory + shapes.step_arrays


def fitting_advice(problem: str, shapes: RunShapes, per_run: int, budget: float, max_steps: int, episodes: int,
                   block_rows: int | None = None, python: bool = False) -> str:
    """`problem` (one line), then the settings that would bring one run under `budget` bytes, each with the
    memory it would take: a smaller gradient block, a shorter episode cap, fewer episodes per update.

    Args:
      shapes, per_run: the run's `RunShapes` and `run_total` as planned.
      budget: the bytes one run and one gradient block may take (per device).
      max_steps, episodes: its step limit T and episodes per update E.
      python: name the settings as Python (`FastPaths(block_rows=...)`, `max_episode_steps=`), not flags.
    """
    rows = block_rows or default_block_rows()
    names = (("FastPaths(block_rows={})", "max_episode_steps={}", "episodes_per_update={}") if python else
             ("--gradient-block-rows {}", "--max-episode-steps {}", "--episodes-per-update {}"))
    options = []
    per_row = block_total(shapes, 1)
    rows_fit = int((budget - per_run) // per_row) if per_row else 0
    if 1 <= rows_fit < rows:
        rows_fit = 2 ** int(math.log2(rows_fit))
        options.append(f"{names[0].format(rows_fit)} (about {format_bytes(per_run + rows_fit * per_row)})")
    growing, per_block = growing_total(shapes), block_total(shapes, rows)
    for name, size in ((names[1], max_steps), (names[2], episodes)):
        fixed = per_run - growing + per_block
        fit = int((budget - fixed) * size // growing) if growing else 0
        if 1 <= fit < size:
            options.append(f"{name.format(fit)} (about {format_bytes(fixed + growing * fit / size)})")
    if not options:
        return f"{problem}; no episode cap, episodes per update or gradient block brings it under: give a " \
               "smaller network"
    return f"{problem}; each of these would fit: {', '.join(options)}"


def format_bytes(num: float) -> str:
    """`num` bytes in B, KiB, MiB, GiB or TiB, e.g. "9.7 GiB"."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(num) < 1024 or unit == "TiB":
            return f"{num:.0f} {unit}" if unit == "B" else f"{num:.1f} {unit}"
        num /= 1024
    raise AssertionError("unreachable")


def own_free_bytes(device: Any) -> int | None:
    """Free memory for arrays on `device` by its own counters (limit less in use); None where it keeps none."""
    stats = device_memory_stats(device)
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    return None


def free_bytes(device: Any) -> int | None:
    """Free memory for arrays on `device`: its own counters (`own_free_bytes`), else its host's; None if unknown."""
    own = own_free_bytes(device)
    return host_available_bytes() if own is None else own


def might_not_fit(spec: EnvSpec, episodes: int, share: float = 0.05) -> bool:
    """A quick bound, before any tracing: whether one run's float32 trajectory copies could exceed `share` of
    the default device's free memory (if not, `check_one_run` need not trace anything)."""
    available = free_bytes(jax.devices()[0])
    observations = TRAJECTORY_COPIES * spec.max_steps * episodes * math.prod(spec.obs_shape) * 4
    return available is not None and observations > share * available


def trainer_shapes(trainer: Trainer, config: Config) -> RunShapes:
    """The `RunShapes` of one run of `trainer` (made for `config`): its initial state traced, its metrics
    as declared (tracing a whole update is slow)."""
    state = jax.eval_shape(trainer.init, jax.random.key(0), config.hparams.as_arrays())
    return measure_run(state, Metrics.shapes(config.static.episodes_per_update, config.static.gradient_stats),
                       trainer.spec, config)


def check_train(config: Config, env: Any = None, fast: Any = None) -> None:
    """Check that one run of `config` (all its updates' metrics kept) fits half the default device's free
    memory, before `pgjax.make_train(config, env, fast)` is compiled; the command line plans its chunks
    with the same estimate. A quick bound (`might_not_fit`) skips the tracing where memory is plentiful.

    Raises:
      ValueError: it would not fit; the message names the settings that would (as Python).
    """
    trainer = make_trainer(config, env, fast)
    if not might_not_fit(trainer.spec, config.static.episodes_per_update):
        return
    check_one_run(trainer_shapes(trainer, config), trainer.num_updates, trainer.spec, config, trainer.paths.block_rows)


def check_one_run(shapes: RunShapes, num_updates: int, spec: EnvSpec, config: Config,
                  block_rows: int | None = None) -> None:
    """Raise ValueError if one run, all its updates' metrics kept, would not fit `USABLE_FRACTION` of the
    default device's free memory; the message says what would (`fitting_advice`, as Python)."""
    available = free_bytes(jax.devices()[0])
    if available is None:
        return
    per_run = run_total(shapes, num_updates)
    needed = per_run + block_total(shapes, block_rows)
    budget = USABLE_FRACTION * available
    if needed <= budget:
        return
    problem = (f"make_train: one run of {spec.name} needs about {format_bytes(needed)} but only "
               f"{format_bytes(available)} is free (half of it is planned for)")
    raise ValueError(fitting_advice(problem, shapes, per_run, budget, spec.max_steps,
                                    config.static.episodes_per_update, block_rows, python=True)
                     + "")
