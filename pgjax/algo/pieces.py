"""The pieces of one update, and the one table that chooses each: the reference function or its fast path.

`choose_pieces(spec, config, paths)` returns what `pgjax.algo.trainer` builds one
update from (`Pieces`: the policy network, its action distribution, the
rollout, the step weighting and the policy gradient). For each piece it takes
the plain reference function of `pgjax.algo.policy`, `rollout`, `weights` or
`loss`, or the fast path of `pgjax.algo.fast` that replaces it whole, as the
switches of `FastPaths` say; no reference piece branches on a switch, and the
trainer imports nothing of `pgjax.algo.fast`. `choose_network` and
`choose_collect` are the same choices for the evaluation and the benchmark.
The switches (`pgjax.algo.config.FastPaths`) say which fast path each piece
takes; `FastPaths.reference()` takes none. `experiments/fast_paths.py` measures each fast path on and off, and
tests/test_reference.py checks that the defaults and `reference()` give the
same loss, gradients and updates. A fast path stays only while it gains at
least 5% of the default preset's training time or the default command's wall
time, or where it applies only to some environments, there (the docs'
performance page gives the measurements).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

from pgjax.algo import loss, policy, weights
from pgjax.algo.config import FastPaths
from pgjax.algo.fast import blocks, recurrent
from pgjax.algo.fast.networks import fast_network
from pgjax.algo.fast.rollout import make_folded_collect
from pgjax.algo.rollout import make_collect

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
        policy_gradient = blocks.make_policy_gradient(apply_fn, dist, block_rows=paths.block_rows,
                                                      fold_runs=paths.fold_runs, entropy_bonus=paths.entropy_bonus,
                                                      recurrence=steps, step_loss=step_loss)
    else:
        policy_gradient = loss.make_policy_gradient(apply_fn, dist, paths.entropy_bonus, step_loss=step_loss)
    return Pieces(module, dist, collect, step_weighting, policy_gradient)


def _blocked_value_weighting(spec: Any, config: Any, paths: FastPaths, network: Callable) -> Any:
    """`pgjax.algo.weights.value_weighting` with the value network's values and gradient in blocks."""
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
    return fast_network(module, spec, paths.feature_major_dense, paths.im2col_convolution)


def choose_collect(spec: Any, apply_fn: Callable, num_episodes: int, dist: Any = None, paths: FastPaths = DEFAULT,
                   *, greedy: bool = False, keep_last_obs: bool = False, recurrence: Any = None) -> Callable:
    """`collect(params, key) -> Trajectory` of one run (`pgjax.algo.rollout.make_collect`'s arguments): the
    folded rollout of `pgjax.algo.fast.rollout` with `paths.fold_runs`, else the plain one."""
    settings = dict(greedy=greedy, keep_last_obs=keep_last_obs, skip_auto_reset=paths.skip_auto_reset,
                    recurrence=recurrence)
    if not paths.fold_runs:
        return make_collect(spec, apply_fn, num_episodes, dist, **settings)
    return make_folded_collect(spec, apply_fn, num_episodes, dist, run_major_buffers=paths.run_major_buffers,
                               **settings)
