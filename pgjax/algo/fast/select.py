"""The selection seam: each function returns a plain reference piece of the algorithm or its fast path.

`pgjax.algo.trainer` builds one run's update from these and from the two
builders that choose for themselves (`pgjax.algo.fast.rollout.make_collect`,
`pgjax.algo.fast.blocks.make_policy_gradient`, re-exported here), as
`FastPaths` says (`pgjax.algo.fast.paths`); each fast path has the per-run
interface of the plain piece it stands in for. The plain modules never import
the fast package.
"""

from __future__ import annotations

from functools import partial

from flax import linen as nn

from pgjax.algo import baselines, distributions
from pgjax.algo.envs import EnvSpec
from pgjax.algo.fast.blocks import default_block_rows, make_policy_gradient, make_value_forward, make_value_gradient
from pgjax.algo.fast.networks import fast_network
from pgjax.algo.fast.paths import DEFAULT, FastPaths, SpeedOptions
from pgjax.algo.fast.recurrent import make_value_forward as sliced_value_forward
from pgjax.algo.fast.recurrent import make_value_gradient as sliced_value_gradient
from pgjax.algo.fast.rollout import make_collect

__all__ = ["DEFAULT", "FastPaths", "SpeedOptions", "default_block_rows", "make_collect", "make_distribution",
           "make_network", "make_policy_gradient", "make_value_forward", "make_value_gradient", "make_weighting"]


def make_network(module: nn.Module, spec: EnvSpec, paths: FastPaths = DEFAULT) -> nn.Module:
    """The policy (or value) network `module` with the network-level fast paths `paths` takes swapped in."""
    return fast_network(module, spec, paths)


def make_distribution(spec: EnvSpec, squash: distributions.Squash = "clip",
                      paths: FastPaths = DEFAULT) -> distributions.Distribution:
    """`pgjax.algo.distributions.make_distribution`, sampling by inverse CDF where `paths.inverse_cdf_sampling`."""
    return distributions.make_distribution(spec, squash, paths.inverse_cdf_sampling)


def make_weighting(spec: EnvSpec, config, paths: FastPaths = DEFAULT) -> baselines.StepWeighting:
    """`pgjax.algo.baselines.make_weighting` with the value network's fast paths (network, blocks)."""
    if not paths.blocked_gradient:
        return baselines.make_weighting(spec, config, network=lambda module: make_network(module, spec, paths))
    rows = paths.block_rows or default_block_rows()
    return baselines.make_weighting(
        spec, config, network=lambda module: make_network(module, spec, paths),
        value_forward=partial(make_value_forward, paths=paths),
        value_gradient=partial(make_value_gradient, paths=paths),
        recurrent_forward=lambda rec, _: sliced_value_forward(rec, rows),
        recurrent_gradient=lambda rec, _: sliced_value_gradient(rec, rows),
    )
