"""The pieces of one update, and the one table that chooses each: the reference function or its fast path.

`choose_pieces(spec, config, paths)` returns what `pgjax.algo.trainer` builds one
update from (`Pieces`: the policy network, its action distribution, the
rollout, the step weighting and the policy gradient). For each piece it takes
the plain reference function of `pgjax.algo.policy`, `rollout`, `weights` or
`loss`, or the fast path of `pgjax.algo.fast` that replaces it whole, as the
switches of `FastPaths` say; no reference piece branches on a switch, and the
trainer imports nothing of `pgjax.algo.fast`. `choose_network` and
`choose_collect` are the same choices for the evaluation and the benchmark.
This module imports no JAX at its top (the command line reads `FastPaths` and
PGJAX_SPEED_OFF before JAX starts); the pieces are imported when chosen.

Every fast path computes the same function as the plain reference path
(`FastPaths.reference()`); they change only how XLA lays out and orders the
work, so float sums may differ in their order, and nothing else (inverse-CDF
sampling draws from the same distribution, other samples):

* `fold_runs`: `pgjax.algo.fast.folded.fold_vmap` folds `jax.vmap` over runs
  into one explicit run axis, so that the rollout's `while_loop` stops when the
  batch's longest episode ends (off: a plain `jax.vmap`, whose batched loop
  predicate carries every buffer through a `select` per step).
* `blocked_gradient`: the losses' gradients (and the value network's values)
  go over blocks of runs and time slices up to each block's longest episode
  (`pgjax.algo.fast.blocks`; off: `pgjax.algo.loss`'s `jax.value_and_grad` of
  the loss over the whole [T, E] trajectory of each run). `block_rows` sets the
  steps a block takes (None: `pgjax.algo.fast.blocks.default_block_rows()`).
* `feature_major_dense`: an MLP's dense layers take the hand-written
  feature-major backward pass of `pgjax.algo.fast.networks.dense_stack`. None
  (the default) decides by the first layer (`pgjax.algo.fast.networks`), True
  takes it for every MLP, False never (autodiff of the plain layers).
* `inverse_cdf_sampling`: categorical actions drawn by inverse-CDF sampling
  from one uniform number per draw (`pgjax.algo.policy.sample`; off:
  `jax.random.categorical`). The default preset was tuned with it, so it stays
  although its gain was under 5%.
* `im2col_convolution`: the CNN's 3x3 convolutions are one matrix product over
  the 9 shifted copies of the input (`pgjax.algo.fast.networks.Im2colConv`;
  off: `lax.conv_general_dilated`, a grouped convolution once vmapped over runs).
* `run_major_buffers`: with `fold_runs`, the rollout writes image observations
  into run-major [R, T, E, ...] buffers (`pgjax.algo.fast.rollout`; off:
  time-major buffers moved to run-major after the loop, as vectors always are).
* `skip_auto_reset`: the rollout steps an environment by `step_env` and
  `is_truncated`, without the reset that gymnax's `step` computes at every
  step and pgjax throws away, where that is the environment's own step less
  its reset (`pgjax.algo.envs.steps_directly`: gymnax's environments, not
  wrappers or classes with a `step` of their own; off: its `step`). The key
  given to `step_env` is the step's key itself, not its split as in `step`:
  other samples from the same distribution for environments that draw in
  their step.
* `entropy_bonus` is a setting that travels with the switches, not a fast path:
  whether any run trained has a non-zero entropy coefficient. None decides at
  run time (a `lax.cond` in the blocked gradient, which compiles the gradient
  twice); True or False fixes it when tracing. False leaves the entropy term out
  of the loss, ignoring `Hyperparams.entropy_coef`: the same function only where
  every run's is 0, which is where the sweep sets it.

The environment variable PGJAX_SPEED_OFF, a comma-separated list of names,
turns fast paths off, read here only (`fast_paths_off`): the switches above
(`FastPaths.from_environment()`, what `pgjax.algo.trainer.make_trainer` takes
by default) and the process fast paths `PROCESS_FAST_PATHS`, which
`pgjax.running.devices` applies (XLA options and the garbage collector around
the compiles), e.g. `PGJAX_SPEED_OFF=small_loops,blocked_gradient python -m pgjax.train`.

`experiments/fast_paths.py` measures each fast path on and off, and
tests/test_reference.py checks that the defaults and `reference()` give the
same loss, gradients and updates. A fast path stays only while it gains at
least 5% of the default preset's training time or the default command's wall
time, or where it applies only to some environments, there (the docs'
performance page gives the measurements).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

SPEED_OFF_VARIABLE = "PGJAX_SPEED_OFF"
# The process fast paths (`pgjax.running.devices`): XLA CPU options and `gc.freeze` around the compiles.
PROCESS_FAST_PATHS = ("small_loops", "llvm_level", "gc_freeze")
SWITCHES = ("fold_runs", "blocked_gradient", "feature_major_dense", "inverse_cdf_sampling", "im2col_convolution",
            "run_major_buffers", "skip_auto_reset")


@dataclasses.dataclass(frozen=True)
class FastPaths:
    """One switch per fast path, and their settings (hashable, static: each combination compiles its own program).

    Attributes: see the module docstring; True (the default) uses the fast path,
    `feature_major_dense` None decides by the network.
    """

    fold_runs: bool = True
    blocked_gradient: bool = True
    feature_major_dense: bool | None = None
    inverse_cdf_sampling: bool = True
    im2col_convolution: bool = True
    run_major_buffers: bool = True
    skip_auto_reset: bool = True
    block_rows: int | None = None
    entropy_bonus: bool | None = None

    def __post_init__(self) -> None:
        if self.block_rows is not None and self.block_rows < 1:
            raise ValueError(f"block_rows must be >= 1, got {self.block_rows}")

    @classmethod
    def reference(cls) -> FastPaths:
        """Every fast path off: the plain reference path."""
        return cls(**{name: False for name in SWITCHES})

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The fast paths' switch names, in declaration order."""
        return SWITCHES

    @classmethod
    def from_environment(cls) -> FastPaths:
        """The defaults with the switches PGJAX_SPEED_OFF names turned off.

        Raises:
          ValueError: PGJAX_SPEED_OFF names an unknown fast path (`fast_paths_off`).
        """
        return cls(**{name: False for name in fast_paths_off() if name in SWITCHES})


def fast_paths_off(value: str | None = None) -> frozenset[str]:
    """The fast paths turned off: the names in PGJAX_SPEED_OFF (or in `value`).

    Args:
      value: a comma-separated list of names from `SWITCHES` and `PROCESS_FAST_PATHS`
        (spaces and empty items ignored); None reads the environment variable
        PGJAX_SPEED_OFF (unset: none off).

    Returns:
      The names listed.

    Raises:
      ValueError: a name that is no fast path (a one-line message that lists them).
    """
    value = os.environ.get(SPEED_OFF_VARIABLE, "") if value is None else value
    names = frozenset(name.strip() for name in value.split(",") if name.strip())
    known = (*PROCESS_FAST_PATHS, *SWITCHES)
    unknown = sorted(names - set(known))
    if unknown:
        raise ValueError(f"{SPEED_OFF_VARIABLE}: unknown fast path{'s' * (len(unknown) > 1)} "
                         f"{', '.join(map(repr, unknown))}; give a comma-separated list of {', '.join(known)}")
    return names

DEFAULT = FastPaths()


class Pieces(NamedTuple):
    """What one run's update is built from (`choose_pieces`), each with the per-run interface of the reference.

    Attributes:
      policy: the policy's Flax module (`pgjax.algo.policy.make_policy`, fast layers swapped in).
      dist: the action distribution its output parameterises (`pgjax.algo.policy.Distribution`).
      collect: `(params, key) -> Trajectory` of one update's episodes (`pgjax.algo.rollout.make_collect`).
      weighting: the step weights and what they learn (`pgjax.algo.weights.StepWeighting`).
      policy_gradient: `(params, obs, action, weight, coef, valid, entropy_coef) -> (loss, grads, entropy)`
        (`pgjax.algo.loss.make_policy_gradient`).
    """

    policy: Any
    dist: Any
    collect: Callable
    weighting: Any
    policy_gradient: Callable


def choose_pieces(spec: Any, config: Any, paths: FastPaths = DEFAULT, *, weighting: Callable | None = None,
                  step_loss: Callable | None = None) -> Pieces:
    """The pieces of one run's update for `config` on the environment `spec`, as `paths` says.

    Args:
      spec, config: the environment (`pgjax.algo.envs.EnvSpec`) and what to train.
      paths: the fast paths to take (`FastPaths.reference()`: none).
      weighting: a weighting of one's own, `weights(traj, hparams) -> weight [T, E]`
        (`pgjax.algo.weights.custom_weighting`); None: the config's returns and baseline.
      step_loss: a per-step loss of one's own (`pgjax.algo.loss.StepLoss`); None: REINFORCE's.
    """
    from pgjax.algo import loss, policy, weights

    network = partial(choose_network, spec=spec, paths=paths)
    module = network(policy.make_policy(spec, config))
    apply_fn, steps = policy.make_apply_fn(module), policy.recurrence(module)  # steps: None if feed-forward
    dist = policy.make_distribution(spec, config.static.squash, paths.inverse_cdf_sampling)
    if weighting is not None:
        step_weighting = weights.custom_weighting(config, weighting)
    elif not weights.is_learned(config.static.baseline):
        step_weighting = weights.returns_baseline(config)
    elif paths.blocked_gradient:
        step_weighting = _blocked_value_weighting(spec, config, paths, network)
    else:
        step_weighting = weights.value_weighting(spec, config, network=network)
    collect = choose_collect(spec, apply_fn, config.static.episodes_per_update, dist, paths,
                             keep_last_obs=step_weighting.keeps_last_obs, recurrence=steps)
    if paths.blocked_gradient:
        from pgjax.algo.fast import blocks

        policy_gradient = blocks.make_policy_gradient(apply_fn, dist, block_rows=paths.block_rows,
                                                      fold_runs=paths.fold_runs, entropy_bonus=paths.entropy_bonus,
                                                      recurrence=steps, step_loss=step_loss)
    else:
        policy_gradient = loss.make_policy_gradient(apply_fn, dist, paths.entropy_bonus, step_loss=step_loss)
    return Pieces(module, dist, collect, step_weighting, policy_gradient)


def _blocked_value_weighting(spec: Any, config: Any, paths: FastPaths, network: Callable) -> Any:
    """`pgjax.algo.weights.value_weighting` with the value network's values and gradient in blocks."""
    from pgjax.algo import weights
    from pgjax.algo.fast import blocks, recurrent

    rows = paths.block_rows or blocks.default_block_rows()
    return weights.value_weighting(
        spec, config, network=network,
        value_forward=partial(blocks.make_value_forward, block_rows=paths.block_rows, fold_runs=paths.fold_runs),
        value_gradient=partial(blocks.make_value_gradient, block_rows=paths.block_rows, fold_runs=paths.fold_runs),
        recurrent_forward=lambda recurrence, _: recurrent.make_value_forward(recurrence, rows),
        recurrent_gradient=lambda recurrence, _: recurrent.make_value_gradient(recurrence, rows),
    )


def choose_network(module: Any, spec: Any, paths: FastPaths = DEFAULT) -> Any:
    """The policy (or value) network `module` with the network fast paths `paths` takes swapped in
    (`pgjax.algo.fast.networks`: feature-major dense layers, im2col convolutions); `module` where none applies."""
    if paths.feature_major_dense is False and not paths.im2col_convolution:
        return module
    from pgjax.algo.fast.networks import fast_network

    return fast_network(module, spec, paths.feature_major_dense, paths.im2col_convolution)


def choose_collect(spec: Any, apply_fn: Callable, num_episodes: int, dist: Any = None, paths: FastPaths = DEFAULT,
                   *, greedy: bool = False, keep_last_obs: bool = False, recurrence: Any = None) -> Callable:
    """`collect(params, key) -> Trajectory` of one run (`pgjax.algo.rollout.make_collect`'s arguments): the
    folded rollout of `pgjax.algo.fast.rollout` with `paths.fold_runs`, else the plain one."""
    settings = dict(greedy=greedy, keep_last_obs=keep_last_obs, skip_auto_reset=paths.skip_auto_reset,
                    recurrence=recurrence)
    if not paths.fold_runs:
        from pgjax.algo.rollout import make_collect

        return make_collect(spec, apply_fn, num_episodes, dist, **settings)
    from pgjax.algo.fast.rollout import make_folded_collect

    return make_folded_collect(spec, apply_fn, num_episodes, dist, run_major_buffers=paths.run_major_buffers,
                               **settings)
