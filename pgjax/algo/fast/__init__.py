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

`pgjax.algo.fast.select` is the selection seam that `pgjax.algo.trainer` builds
with: each of its functions returns the plain reference piece or its fast path,
as `paths` says; this package exports them (imported on first use, so that
`pgjax.algo.fast.paths` imports no JAX).
What each fast path gains is measured by `experiments/fast_paths.py`
(docs/performance.md gives the figures).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["DEFAULT", "FastPaths", "SpeedOptions", "default_block_rows", "make_collect", "make_distribution",
           "make_network", "make_policy_gradient", "make_value_forward", "make_value_gradient", "make_weighting"]


def __getattr__(name: str) -> Any:
    """The seam's names (`pgjax.algo.fast.select`), imported on first use; submodules as usual."""
    if name in __all__:
        return getattr(importlib.import_module("pgjax.algo.fast.select"), name)
    if name in ("blocks", "dense", "folded", "networks", "paths", "recurrent", "rollout", "select"):
        return importlib.import_module(f"pgjax.algo.fast.{name}")
    raise AttributeError(f"module 'pgjax.algo.fast' has no attribute {name!r}")
