"""The fast paths of the training path, and the one place that selects them.

The reference algorithm (`pgjax.algo.trainer`, `rollout`, `loss`, `baselines`,
`returns`) is written for one run. Each fast path here computes the same
function with the same per-run interface, laid out for XLA, and is switched in
`FastPaths` (`pgjax.algo.fast.paths`); `FastPaths.reference()` is the plain path:

* `folded` and `rollout`: the rollout's `while_loop` over a whole batch of runs,
  which stops when the batch's longest episode ends (a vmap of the plain loop
  runs a batched predicate that copies every buffer per step), with run-major
  image buffers;
* `blocks`: the policy gradient and the value network's values and gradient
  over blocks of runs and time slices up to each block's longest episode (the
  plain one differentiates every padded step up to the step limit);
* `dense`: the MLP's feature-major backward pass (no transposed copies of the
  activations for the weight gradients);
* `networks`: swaps those dense layers, and im2col convolutions (one matrix
  product rather than a grouped convolution under vmap), into the plain modules;
* inverse-CDF sampling (`pgjax.algo.distributions.sample`): one uniform number
  per categorical draw rather than A Gumbel numbers.

The functions below are the selection seam that `pgjax.algo.trainer` builds
with: each returns the plain reference piece or its fast path, as `paths` says.
What each fast path gains is measured by `experiments/fast_paths.py`
(docs/performance.md gives the figures).
"""

from __future__ import annotations

from functools import partial

from flax import linen as nn

from pgjax.algo import baselines, distributions
from pgjax.algo.envs import EnvSpec
from pgjax.algo.fast.blocks import default_block_rows, make_policy_gradient, make_value_forward, make_value_gradient
from pgjax.algo.fast.networks import fast_network
from pgjax.algo.fast.paths import DEFAULT, FastPaths, SpeedOptions
from pgjax.algo.fast.rollout import make_collect

__all__ = ["DEFAULT", "FastPaths", "SpeedOptions", "default_block_rows", "make_collect", "make_distribution",
           "make_network", "make_policy_gradient", "make_weighting"]


def make_network(module: nn.Module, spec: EnvSpec, paths: FastPaths = DEFAULT) -> nn.Module:
    """The policy (or value) network `module` with the network-level fast paths `paths` takes swapped in."""
    return fast_network(module, spec, paths)


def make_distribution(spec: EnvSpec, squash: distributions.Squash = "clip",
                      paths: FastPaths = DEFAULT) -> distributions.Distribution:
    """`pgjax.algo.distributions.make_distribution`, sampling by inverse CDF where `paths.inverse_cdf_sampling`."""
    return distributions.make_distribution(spec, squash, paths.inverse_cdf_sampling)


def make_weighting(spec: EnvSpec, config, paths: FastPaths = DEFAULT) -> baselines.StepWeighting:
    """`pgjax.algo.baselines.make_weighting` with the value network's fast paths (network, blocks)."""
    return baselines.make_weighting(
        spec, config, network=lambda module: make_network(module, spec, paths),
        value_forward=partial(make_value_forward, paths=paths),
        value_gradient=partial(make_value_gradient, paths=paths),
    )
